"""Federation with a stock ejabberd 23.01 (issue 15): a slixmpp user on ejabberd and a gatekeeper
user on the hub exchange messages over s2s under the message-request rules; an un-onboarded
ejabberd domain is refused; a federated user whose key is not enlisted reaches nobody;
suspending the provider closes its links at once; and what crossed the s2s links never shows
the gatekeeper user's phone-number address.

ejabberd is Debian's package (scripts/bootstrap installs it); it runs from a temporary directory
with the configuration of docs/provider-guide.md §10 (tests/integration/ejabberdkit.py)."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import trustme

from interlink.app import HubServer
from interlink.errors import StreamErrorCondition
from interlink.net.s2s import S2SService
from interlink.storage.enlistment import InteropAccount
from interlink.storage.providers import Provider, ProviderMode, ProviderStatus
from interlink.xmpp.ext import interop
from interlink.xmpp.sasl import derive_credentials
from tests.integration.ejabberdkit import Ejabberd, running_ejabberd
from tests.integration.kit import TIMEOUT, Xmpp, settings_for
from tests.integration.prosodykit import FederationCerts, federation_certs, loopback_dns
from tests.integration.test_s2s_prosody import interop_iq, marker

DOMAIN = "hub.example"
PEER = "chat.example"
ROGUE = "rogue.example"  # served by the same ejabberd, never onboarded
PROVIDER = "chatprov"
PHONE = "4915112345678"
HOME = f"{PHONE}@{DOMAIN}"


@dataclass
class World:
    hub: HubServer
    s2s: S2SService
    ejabberd: Ejabberd
    certs: FederationCerts
    wire: list[bytes] = field(default_factory=list)

    def alias(self) -> str:
        assert self.hub.hub is not None
        return self.hub.hub.federation.aliases.alias(PHONE, PROVIDER, DOMAIN) + "@" + DOMAIN


@asynccontextmanager
async def world(tmp_path: Path, *, trusts_hub: bool = True) -> AsyncIterator[World]:
    """The hub and an ejabberd serving ``chat.example`` (onboarded, federated) and
    ``rogue.example`` (not). ``trusts_hub=False``: ejabberd's ``ca_file`` is another CA's, so it
    cannot authenticate the hub by its certificate."""
    certs = federation_certs(tmp_path / "certs", DOMAIN, (PEER, ROGUE))
    ca_file = None
    if not trusts_hub:
        ca_file = tmp_path / "certs" / "other-ca.pem"
        trustme.CA().cert_pem.write_to_path(str(ca_file))
    hub = HubServer(
        settings_for(
            tmp_path / "hub",
            certs.hub,
            hub={"domain": DOMAIN},
            net={"s2s_port": 0},
            s2s={"enabled": True},
            log={"level": "INFO"},
        )
    )
    await hub.start()
    try:
        s2s_port = hub.ports["s2s"]
        async with (
            # ejabberd resolves the SRV target through the C library: "localhost"
            loopback_dns(
                {},
                {
                    f"_xmpp-server._tcp.{DOMAIN}": ("localhost", s2s_port),
                    # the rooms of the group service federate too (issue 18)
                    f"_xmpp-server._tcp.groups.{DOMAIN}": ("localhost", s2s_port),
                },
            ) as dns,
            running_ejabberd(
                tmp_path / "ejabberd", (PEER, ROGUE), certs, dns.port, ca_file=ca_file
            ) as ejabberd,
        ):
            assert hub.registry is not None
            assert hub.storage is not None
            assert hub.s2s is not None
            await hub.registry.add(
                Provider(
                    PROVIDER,
                    "Chat Test",
                    "https://chat.example/hub",
                    jwks_url="https://chat.example/jwks",
                    mode=ProviderMode.FEDERATED,
                    server_domains=(PEER,),
                    s2s_ca=certs.ca_pem,
                    s2s_address=f"127.0.0.1:{ejabberd.s2s_port}",
                ),
                "test",
            )
            await hub.registry.set_status(PROVIDER, ProviderStatus.APPROVED, "test")
            await hub.storage.accounts.create(HOME, derive_credentials("pw", 4096), time.time())
            w = World(hub, hub.s2s, ejabberd, certs)
            hub.s2s.taps.append(lambda _link, data: w.wire.append(data))
            yield w
    finally:
        await asyncio.wait_for(hub.stop(), timeout=TIMEOUT)


async def enlist(hub: HubServer, jid: str, identity_key: bytes = b"\x01" * 32) -> None:
    """What the Enlistment API stores for a federated user (its own JID as the account), with
    the identity key its client proved."""
    assert hub.storage is not None
    now = time.time()
    await hub.storage.enlistment.commit_enlistment(
        issuer=PROVIDER,
        jti=f"jti-{jid}-{identity_key.hex()}",
        jti_expires_at=now + 300,
        account=InteropAccount(jid, PROVIDER, jid, None, identity_key, now, now),
        new_key=True,
        now=now,
    )


async def gatekeeper(w: World) -> Xmpp:
    """The gatekeeper user, opted in to third-party messages."""
    user = Xmpp(HOME, "pw", w.certs.hub)
    await user.login(w.hub.ports["c2s-starttls"])
    await interop_iq(user, f"<settings xmlns='{interop.NS}' enabled='true'/>")
    return user


async def on_ejabberd(w: World, local: str, host: str = PEER) -> Xmpp:
    await w.ejabberd.register(local, host, "pw")
    user = Xmpp(f"{local}@{host}", "pw", w.certs.hub)
    user.client.add_event_handler("message_error", user.messages.put_nowait)
    await user.login(w.ejabberd.c2s_port)
    return user


async def test_messages_cross_both_ways_under_the_request_rules(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        await enlist(w.hub, f"alice@{PEER}")
        home = await gatekeeper(w)
        alice = await on_ejabberd(w, "alice")
        try:
            alice.send_chat(w.alias(), "hello from ejabberd")
            first = await home.next_message(timeout=20)
            assert first["body"] == "hello from ejabberd"
            assert str(first["from"]).startswith(f"alice@{PEER}")
            mark = marker(first)
            assert mark is not None
            assert mark.get("provider") == PROVIDER
            assert mark.get("request") == "true"
            await interop_iq(home, f"<accept xmlns='{interop.NS}' jid='alice@{PEER}'/>")
            home.send_chat(f"alice@{PEER}", "hello from the gatekeeper")
            reply = await alice.next_message(timeout=20)
            assert reply["body"] == "hello from the gatekeeper"
            assert reply["from"].bare == w.alias()
            assert w.s2s.links_of(PROVIDER) >= 2  # one stream each way
            counters = w.s2s.counters[PROVIDER]
            assert counters.connections["in"] >= 1
            assert counters.connections["out"] >= 1
            captured = b"".join(w.wire)
            assert b"hello from the gatekeeper" in captured
            assert PHONE.encode() not in captured
        finally:
            await alice.close()
            await home.close()


async def test_an_unenlisted_federated_user_reaches_nobody(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        home = await gatekeeper(w)
        bob = await on_ejabberd(w, "bob")
        try:
            bob.send_chat(w.alias(), "not enlisted")
            error = await bob.next_message(timeout=20)
            assert error["type"] == "error"
            assert error["error"]["condition"] == "service-unavailable"
            with pytest.raises(TimeoutError):
                await home.next_message(timeout=1)
        finally:
            await bob.close()
            await home.close()


async def test_an_un_onboarded_ejabberd_domain_is_refused(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        home = await gatekeeper(w)
        mallory = await on_ejabberd(w, "mallory", ROGUE)
        try:
            mallory.send_chat(w.alias(), "let me in")
            bounced = await mallory.next_message(timeout=20)
            assert bounced["type"] == "error"  # ejabberd bounces what it could not deliver
            with pytest.raises(TimeoutError):
                await home.next_message(timeout=1)
            assert w.s2s.links_of(PROVIDER) == 0
            assert b"<not-authorized " in b"".join(w.wire)
            assert w.s2s.unattributed_refusals >= 1
        finally:
            await mallory.close()
            await home.close()


async def test_suspending_the_provider_closes_its_links_at_once(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        await enlist(w.hub, f"alice@{PEER}")
        home = await gatekeeper(w)
        alice = await on_ejabberd(w, "alice")
        try:
            alice.send_chat(w.alias(), "hi")
            await home.next_message(timeout=20)
            assert w.s2s.links_of(PROVIDER) >= 1
            assert w.hub.registry is not None
            await w.hub.registry.set_status(PROVIDER, ProviderStatus.SUSPENDED, "test")
            assert w.s2s.links_of(PROVIDER) == 0  # synchronously, in the same call
            assert f"<{StreamErrorCondition.POLICY_VIOLATION} ".encode() in b"".join(w.wire)
            # once ejabberd has taken the closed stream down, a new one is refused at its header
            # (a stanza ejabberd writes on the old stream meanwhile is lost in flight: s2s
            # has no acknowledgements)
            for _ in range(100):
                if f"Closing outbound s2s connection {PEER} -> {DOMAIN}" in w.ejabberd.log:
                    break
                await asyncio.sleep(0.05)
            alice.send_chat(w.alias(), "still there?")
            bounced = await alice.next_message(timeout=20)
            assert bounced["type"] == "error"
            with pytest.raises(TimeoutError):
                await home.next_message(timeout=1)
        finally:
            await alice.close()
            await home.close()


async def test_the_hub_falls_back_to_dialback_when_ejabberd_cannot_check_its_certificate(
    tmp_path: Path,
) -> None:
    """XEP-0220 over TLS: ejabberd does not trust the hub's issuer, so it refuses the hub's SASL
    EXTERNAL (it offers the mechanism before looking at the certificate); the hub falls back to
    dialback (XEP-0178 §2.4), which ejabberd verifies by asking the hub's authoritative server,
    found through the SRV record, on a stream of its own."""
    async with world(tmp_path, trusts_hub=False) as w:
        await enlist(w.hub, f"alice@{PEER}")
        home = await gatekeeper(w)
        alice = await on_ejabberd(w, "alice")
        try:
            alice.send_chat(w.alias(), "hello")
            await home.next_message(timeout=20)
            await interop_iq(home, f"<accept xmlns='{interop.NS}' jid='alice@{PEER}'/>")
            home.send_chat(f"alice@{PEER}", "over dialback")
            reply = await alice.next_message(timeout=20)
            assert reply["body"] == "over dialback"
            captured = b"".join(w.wire)
            assert f'<db:result from="{DOMAIN}" to="{PEER}">'.encode() in captured
            assert re.search(rb'<db:verify from="hub.example" [^>]*type="valid"/>', captured)
            assert b'<auth xmlns="urn:ietf:params:xml:ns:xmpp-sasl" mechanism="EXTERNAL">' in (
                captured
            )  # tried first, refused
            assert PHONE.encode() not in captured
        finally:
            await alice.close()
            await home.close()


async def next_presence(user: Xmpp, sender: str, kind: str, timeout: float = 20) -> Any:
    """The next presence of ``kind`` (``available``, ``subscribe``...) from ``sender`` (bare)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        presence = await asyncio.wait_for(user.presences.get(), deadline - loop.time())
        if presence["from"].bare == sender and presence["type"] == kind:
            return presence


async def test_subscriptions_and_presence_cross_both_ways_under_aliases(tmp_path: Path) -> None:
    """RFC 6121 across s2s with ejabberd: its user asks the gatekeeper user (at the alias) for
    a subscription once the conversation is accepted; each side approves and asks back, each
    then sees the other available, and a status change crosses. No phone number crosses."""
    pytest.importorskip(
        "interlink.client.aliases",
        reason="presence over s2s comes with the federation branch (wt-fed), as do the aliases",
    )
    async with world(tmp_path) as w:
        await enlist(w.hub, f"alice@{PEER}")
        home = await gatekeeper(w)
        alice = await on_ejabberd(w, "alice")
        try:
            alias = w.alias()
            alice.send_chat(alias, "hi")
            await home.next_message(timeout=20)
            await interop_iq(home, f"<accept xmlns='{interop.NS}' jid='alice@{PEER}'/>")
            alice.client.send_presence(pto=alias, ptype="subscribe")
            request = await next_presence(home, f"alice@{PEER}", "subscribe")
            assert marker(request) is not None  # from a third party: marked
            await next_presence(alice, alias, "available")
            await next_presence(home, f"alice@{PEER}", "available")
            assert w.hub.storage is not None
            item = await w.hub.storage.roster.get(HOME, f"alice@{PEER}")
            assert item is not None
            assert item.subscription.value == "both"
            home.client.send_presence(pshow="away", pstatus="in a meeting")
            away = await next_presence(alice, alias, "away")
            assert away["status"] == "in a meeting"
            assert PHONE.encode() not in b"".join(w.wire)
        finally:
            await alice.close()
            await home.close()
