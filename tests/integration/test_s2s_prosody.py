"""Federation with a stock Prosody 0.12 (issue 15): a slixmpp user on Prosody and a gatekeeper
user on the hub exchange messages over s2s under the message-request rules; an un-onboarded
Prosody domain is refused; suspending the provider closes its links at once; and what crossed
the s2s links never shows the gatekeeper user's phone-number address.

Prosody is Debian's package (scripts/test installs it); it runs from a temporary directory with
a generated configuration and certificates (tests/integration/prosodykit.py)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.etree.ElementTree import Element

import pytest
import slixmpp

from interlink.app import HubServer
from interlink.errors import StreamErrorCondition
from interlink.net.s2s import S2SService
from interlink.storage.enlistment import InteropAccount
from interlink.storage.providers import Provider, ProviderMode, ProviderStatus
from interlink.xmpp.ext import interop
from interlink.xmpp.s2s.certs import fingerprint, pem_to_der
from interlink.xmpp.sasl import derive_credentials
from tests.integration.kit import TIMEOUT, Xmpp, settings_for
from tests.integration.prosodykit import (
    FederationCerts,
    Prosody,
    federation_certs,
    loopback_dns,
    running_prosody,
)

# Not under .test: libunbound answers NXDOMAIN for the special-use names itself (RFC 6761).
DOMAIN = "hub.example"
GROUPS = f"groups.{DOMAIN}"
PEER = "chat.example"
ROGUE = "rogue.example"  # served by the same Prosody, never onboarded
PROVIDER = "chatprov"
PHONE = "4915112345678"
HOME = f"{PHONE}@{DOMAIN}"


@dataclass
class World:
    hub: HubServer
    s2s: S2SService
    prosody: Prosody
    certs: FederationCerts
    wire: list[bytes] = field(default_factory=list)

    def alias(self) -> str:
        assert self.hub.hub is not None
        return self.hub.hub.federation.aliases.alias(PHONE, PROVIDER, DOMAIN) + "@" + DOMAIN


@asynccontextmanager
async def world(
    tmp_path: Path,
    *,
    media_hosts: tuple[str, ...] = (),
    pinned: bool = False,
    admin: dict[str, Any] | None = None,
) -> AsyncIterator[World]:
    """The hub and a Prosody serving ``chat.example`` (onboarded, federated) and
    ``rogue.example`` (not). ``media_hosts``: the provider's upload hosts (loopback ones are
    then fetched by the media proxy, as in the demo). ``pinned``: the provider's record pins
    the SHA-256 fingerprint of Prosody's certificate and names no CA (the hub trusts nothing
    else about it: its issuer is unknown to the hub). ``admin``: the hub's ``[admin]`` section
    (an operator token, to onboard a plug-and-play provider beside the federated one)."""
    certs = federation_certs(tmp_path / "certs", DOMAIN, (PEER, ROGUE))
    loopback_media: dict[str, dict[str, Any]] = (
        {
            "media": {"proxy_private_allowlist": ["127.0.0.1"]},
            "interop": {"allow_insecure_loopback": True},
        }
        if media_hosts
        else {}
    )
    hub = HubServer(
        settings_for(
            tmp_path / "hub",
            certs.hub,
            hub={"domain": DOMAIN},
            net={"s2s_port": 0},
            s2s={"enabled": True},
            log={"level": "INFO"},
            **loopback_media,
            **({"admin": admin} if admin is not None else {}),
        )
    )
    await hub.start()
    try:
        s2s_port = hub.ports["s2s"]
        async with (
            loopback_dns(
                {DOMAIN: "127.0.0.1", GROUPS: "127.0.0.1"},
                {
                    f"_xmpp-server._tcp.{DOMAIN}": (DOMAIN, s2s_port),
                    f"_xmpp-server._tcp.{GROUPS}": (GROUPS, s2s_port),  # rooms (issue 18)
                },
            ) as dns_server,
            running_prosody(tmp_path / "prosody", (PEER, ROGUE), certs, dns_server.port) as prosody,
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
                    s2s_ca=None if pinned else certs.ca_pem,
                    s2s_fingerprints=(
                        (fingerprint(pem_to_der(certs.prosody_cert.read_bytes())),)
                        if pinned
                        else ()
                    ),
                    s2s_address=f"127.0.0.1:{prosody.s2s_port}",
                    media_hosts=media_hosts,
                ),
                "test",
            )
            await hub.registry.set_status(PROVIDER, ProviderStatus.APPROVED, "test")
            now = time.time()
            await hub.storage.accounts.create(HOME, derive_credentials("pw", 4096), now)
            w = World(hub, hub.s2s, prosody, certs)
            hub.s2s.taps.append(lambda _link, data: w.wire.append(data))
            yield w
    finally:
        await asyncio.wait_for(hub.stop(), timeout=TIMEOUT)


async def enlist(hub: HubServer, jid: str, identity_key: bytes = b"\x01" * 32) -> None:
    """What the Enlistment API stores for a federated user (its own JID as the account), with
    the Ed25519 identity key its client proved (the hub serves only that key's bundles)."""
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
    user = Xmpp(HOME, "pw", w.certs.hub)
    await user.login(w.hub.ports["c2s-starttls"])
    await interop_iq(user, f"<settings xmlns='{interop.NS}' enabled='true'/>")
    return user


async def interop_iq(user: Xmpp, payload: str) -> Any:
    iq = user.client.make_iq_set()
    iq.append(slixmpp.ET.fromstring(payload))
    return await iq.send(timeout=TIMEOUT)  # type: ignore[no-untyped-call]


async def on_prosody(w: World, local: str, host: str = PEER) -> Xmpp:
    w.prosody.register(local, host, "pw")
    user = Xmpp(f"{local}@{host}", "pw", w.certs.hub)
    user.client.add_event_handler("message_error", user.messages.put_nowait)
    await user.login(w.prosody.c2s_port)
    return user


def marker(msg: Any) -> Element | None:
    found: Element | None = msg.xml.find(interop.MARKER)
    return found


async def test_messages_cross_both_ways_under_the_request_rules(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        await enlist(w.hub, f"alice@{PEER}")
        home = await gatekeeper(w)
        alice = await on_prosody(w, "alice")
        try:
            alice.send_chat(w.alias(), "hello from prosody")
            first = await home.next_message(timeout=20)
            assert first["body"] == "hello from prosody"
            assert str(first["from"]).startswith(f"alice@{PEER}")
            mark = marker(first)
            assert mark is not None
            assert mark.get("provider") == PROVIDER
            assert mark.get("request") == "true"
            # accepted: the reply crosses to Prosody under the alias
            await interop_iq(home, f"<accept xmlns='{interop.NS}' jid='alice@{PEER}'/>")
            home.send_chat(f"alice@{PEER}", "hello from the gatekeeper")
            reply = await alice.next_message(timeout=20)
            assert reply["body"] == "hello from the gatekeeper"
            assert reply["from"].bare == w.alias()
            assert w.s2s.links_of(PROVIDER) >= 2  # one stream each way
            counters = w.s2s.counters[PROVIDER]
            assert counters.stanzas["in"] >= 1
            assert counters.stanzas["out"] >= 1
            assert counters.connections["in"] >= 1
            assert counters.connections["out"] >= 1
            assert w.hub.metrics is not None
            scraped = (await w.hub.metrics.render()).decode()
            assert (
                f'interlink_s2s_stanzas_total{{direction="out",provider="{PROVIDER}"}}' in scraped
            )
            assert f'interlink_s2s_links{{provider="{PROVIDER}"}} 2.0' in scraped
            # the packet capture of both links: no phone number of the gatekeeper user
            captured = b"".join(w.wire)
            assert b"hello from the gatekeeper" in captured
            assert PHONE.encode() not in captured
        finally:
            await alice.close()
            await home.close()


async def test_an_unenlisted_federated_user_reaches_nobody(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        home = await gatekeeper(w)
        bob = await on_prosody(w, "bob")
        try:
            bob.send_chat(w.alias(), "not enlisted")
            error = await bob.next_message(timeout=20)
            assert error["type"] == "error"
            assert error["error"]["condition"] == "service-unavailable"
            with pytest.raises(TimeoutError):
                await home.next_message(timeout=1)
            assert w.hub.metrics is not None
            scraped = (await w.hub.metrics.render()).decode()
            assert (
                "interlink_s2s_stanza_refusals_total"
                f'{{provider="{PROVIDER}",reason="s2s-not-enlisted"}} 1.0'
            ) in scraped
        finally:
            await bob.close()
            await home.close()


async def test_an_un_onboarded_prosody_domain_is_refused(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        home = await gatekeeper(w)
        mallory = await on_prosody(w, "mallory", ROGUE)
        try:
            mallory.send_chat(w.alias(), "let me in")
            bounced = await mallory.next_message(timeout=20)
            assert bounced["type"] == "error"  # Prosody bounces what it could not deliver
            with pytest.raises(TimeoutError):
                await home.next_message(timeout=1)
            assert w.s2s.links_of(PROVIDER) == 0
            assert b"<not-authorized " in b"".join(w.wire)
            assert w.s2s.unattributed_refusals >= 1
            assert "not-authorized" in w.prosody.log or "not onboarded" in w.prosody.log
        finally:
            await mallory.close()
            await home.close()


async def test_suspending_the_provider_closes_its_links_at_once(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        await enlist(w.hub, f"alice@{PEER}")
        home = await gatekeeper(w)
        alice = await on_prosody(w, "alice")
        try:
            alice.send_chat(w.alias(), "hi")
            await home.next_message(timeout=20)
            assert w.s2s.links_of(PROVIDER) >= 1
            assert w.hub.registry is not None
            await w.hub.registry.set_status(PROVIDER, ProviderStatus.SUSPENDED, "test")
            assert w.s2s.links_of(PROVIDER) == 0  # synchronously, in the same call
            assert f"<{StreamErrorCondition.POLICY_VIOLATION} ".encode() in b"".join(w.wire)
            # once Prosody has taken the closed stream down, a new one is refused at its header
            for _ in range(100):
                if "Destroying outgoing session chat.example->hub.example" in w.prosody.log:
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


async def test_omemo_device_lists_cross_over_s2s_pep_both_ways(tmp_path: Path) -> None:
    """Keys across the boundary: each side reads the other's OMEMO 2 and legacy device lists,
    the gatekeeper user from Prosody's PEP over s2s, the Prosody user from the hub's PEP at the
    alias (both after the conversation was accepted)."""
    async with world(tmp_path) as w:
        await enlist(w.hub, f"alice@{PEER}")
        home = await gatekeeper(w)
        alice = await on_prosody(w, "alice")
        for user in (home, alice):
            user.client.register_plugin("xep_0004")
            user.client.register_plugin("xep_0060")
        try:
            alice.send_chat(w.alias(), "hi")
            await home.next_message(timeout=20)
            await interop_iq(home, f"<accept xmlns='{interop.NS}' jid='alice@{PEER}'/>")
            lists = {
                "urn:xmpp:omemo:2:devices": "<devices xmlns='urn:xmpp:omemo:2'>"
                "<device id='{id}'/></devices>",
                "eu.siacs.conversations.axolotl.devicelist": "<list xmlns="
                "'eu.siacs.conversations.axolotl'><device id='{id}'/></list>",
            }
            for user, device in ((alice, "11"), (home, "22")):
                pubsub: Any = user.client.plugin["xep_0060"]
                for node, xml in lists.items():
                    await pubsub.publish(
                        user.client.boundjid.bare,
                        node,
                        id="current",
                        payload=slixmpp.ET.fromstring(xml.format(id=device)),
                        options=open_form(user),
                        timeout=TIMEOUT,
                    )
            for reader, owner, device in ((home, f"alice@{PEER}", "11"), (alice, w.alias(), "22")):
                pubsub = reader.client.plugin["xep_0060"]
                for node in lists:
                    result = await pubsub.get_items(owner, node, max_items=1, timeout=TIMEOUT)
                    payload = result["pubsub"]["items"]["item"]["payload"]
                    assert [d.get("id") for d in payload] == [device], (node, owner)
            assert PHONE.encode() not in b"".join(w.wire)
        finally:
            await alice.close()
            await home.close()


def open_form(user: Xmpp) -> Any:
    forms: Any = user.client.plugin["xep_0004"]
    form = forms.make_form(ftype="submit")
    form.add_field(
        var="FORM_TYPE", ftype="hidden", value="http://jabber.org/protocol/pubsub#publish-options"
    )
    form.add_field(var="pubsub#access_model", value="open")
    return form


async def next_presence(user: Xmpp, sender: str, kind: str, timeout: float = 20) -> Any:
    """The next presence of ``kind`` (``available``, ``subscribe``...) from ``sender`` (bare)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        presence = await asyncio.wait_for(user.presences.get(), deadline - loop.time())
        if presence["from"].bare == sender and presence["type"] == kind:
            return presence


async def test_subscriptions_and_presence_cross_both_ways_under_aliases(tmp_path: Path) -> None:
    """RFC 6121 across s2s (issue 15): the Prosody user asks the gatekeeper user (at its alias)
    for a subscription once the conversation is accepted; the gatekeeper user's client
    approves and asks back (slixmpp's defaults), Prosody approves for its user; each then sees
    the other available, and a status change crosses. Nothing shows the phone number."""
    async with world(tmp_path) as w:
        await enlist(w.hub, f"alice@{PEER}")
        home = await gatekeeper(w)
        alice = await on_prosody(w, "alice")
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


@pytest.mark.parametrize("first", ["prosody", "hub"])
async def test_pinned_fingerprints_without_a_ca_authenticate_both_ways_by_external(
    tmp_path: Path, first: str
) -> None:
    """A provider record with a pinned certificate fingerprint and no CA (issue 15): Prosody's
    certificate chains to nothing the hub trusts, yet its streams to the hub authenticate by
    SASL EXTERNAL (the pin decides), whichever side writes first, and the hub's to Prosody
    too."""
    async with world(tmp_path, pinned=True) as w:
        await enlist(w.hub, f"alice@{PEER}")
        home = await gatekeeper(w)
        alice = await on_prosody(w, "alice")
        try:
            alias = w.alias()
            if first == "hub":
                await interop_iq(home, f"<accept xmlns='{interop.NS}' jid='alice@{PEER}'/>")
                home.send_chat(f"alice@{PEER}", "first from the hub")
                assert (await alice.next_message(timeout=20))["body"] == "first from the hub"
            alice.send_chat(alias, "hello over a pinned link")
            got = await home.next_message(timeout=20)
            assert got["body"] == "hello over a pinned link"
            if first == "prosody":
                await interop_iq(home, f"<accept xmlns='{interop.NS}' jid='alice@{PEER}'/>")
                home.send_chat(f"alice@{PEER}", "and back")
                assert (await alice.next_message(timeout=20))["body"] == "and back"
            counters = w.s2s.counters[PROVIDER]
            assert counters.methods["in:sasl-external"] >= 1, counters.methods
            assert counters.methods["out:sasl-external"] >= 1, counters.methods
            assert counters.methods["in:dialback"] == 0
            assert w.hub.metrics is not None
            scraped = (await w.hub.metrics.render()).decode()
            assert (
                "interlink_s2s_authentications_total"
                f'{{direction="in",method="sasl-external",provider="{PROVIDER}"}}'
            ) in scraped
        finally:
            await alice.close()
            await home.close()
