"""Federation with stock servers (issue 15), each test once with Prosody 0.12 and once with
ejabberd 23.01 (tests/integration/federationkit.py): a slixmpp user on the stock server and a
gatekeeper user on the hub exchange messages, keys and presence over s2s under the
message-request rules; a federated user whose key is not enlisted reaches nobody; an
un-onboarded domain is refused; suspending the provider closes its links at once; a pinned
certificate authenticates a provider without a CA, and the hub falls back to dialback where
ejabberd cannot check the hub's certificate; and what crossed the s2s links never shows the
gatekeeper user's phone-number address.

The servers are Debian's packages (scripts/bootstrap installs them); each runs from a
temporary directory with a generated configuration (ejabberd's is docs/provider-guide.md §10's)
and certificates (tests/integration/prosodykit.py, ejabberdkit.py)."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest
import slixmpp

from interlink.errors import StreamErrorCondition
from interlink.storage.providers import ProviderStatus
from tests.integration.federationkit import (
    DOMAIN,
    EJABBERD_SERVER,
    HOME,
    PEER,
    PHONE,
    PROVIDER,
    ROGUE,
    StockServer,
    accept,
    marker,
    open_form,
    servers,
    users,
    world,
)
from tests.integration.kit import TIMEOUT, Xmpp


async def test_messages_cross_both_ways_under_the_request_rules(
    tmp_path: Path, stock_server: StockServer
) -> None:
    async with world(tmp_path, stock_server) as w, users(w, "alice") as (home, alice):
        alice.send_chat(w.alias(), f"hello from {stock_server.name}")
        first = await home.next_message(timeout=20)
        assert first["body"] == f"hello from {stock_server.name}"
        assert str(first["from"]).startswith(f"alice@{PEER}")
        mark = marker(first)
        assert mark is not None
        assert mark.get("provider") == PROVIDER
        assert mark.get("request") == "true"
        # accepted: the reply crosses to the stock server under the alias
        await accept(home, f"alice@{PEER}")
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
        scraped = await w.metrics()
        assert f'interlink_s2s_stanzas_total{{direction="out",provider="{PROVIDER}"}}' in scraped
        assert f'interlink_s2s_links{{provider="{PROVIDER}"}} 2.0' in scraped
        # the packet capture of both links: no phone number of the gatekeeper user
        captured = b"".join(w.wire)
        assert b"hello from the gatekeeper" in captured
        assert PHONE.encode() not in captured


async def test_an_unenlisted_federated_user_reaches_nobody(
    tmp_path: Path, stock_server: StockServer
) -> None:
    async with (
        world(tmp_path, stock_server) as w,
        users(w, "bob", enlisted=False) as (home, bob),
    ):
        bob.send_chat(w.alias(), "not enlisted")
        error = await bob.next_message(timeout=20)
        assert error["type"] == "error"
        assert error["error"]["condition"] == "service-unavailable"
        with pytest.raises(TimeoutError):
            await home.next_message(timeout=1)
        assert (
            "interlink_s2s_stanza_refusals_total"
            f'{{provider="{PROVIDER}",reason="s2s-not-enlisted"}} 1.0'
        ) in await w.metrics()


async def test_an_un_onboarded_domain_is_refused(tmp_path: Path, stock_server: StockServer) -> None:
    async with (
        world(tmp_path, stock_server) as w,
        users(w, "mallory", ROGUE, enlisted=False) as (home, mallory),
    ):
        mallory.send_chat(w.alias(), "let me in")
        bounced = await mallory.next_message(timeout=20)
        assert bounced["type"] == "error"  # the server bounces what it could not deliver
        with pytest.raises(TimeoutError):
            await home.next_message(timeout=1)
        assert w.s2s.links_of(PROVIDER) == 0
        assert b"<not-authorized " in b"".join(w.wire)
        assert w.s2s.unattributed_refusals >= 1
        assert "not-authorized" in w.peer.log or "not onboarded" in w.peer.log


async def test_suspending_the_provider_closes_its_links_at_once(
    tmp_path: Path, stock_server: StockServer
) -> None:
    async with world(tmp_path, stock_server) as w, users(w, "alice") as (home, alice):
        alice.send_chat(w.alias(), "hi")
        await home.next_message(timeout=20)
        assert w.s2s.links_of(PROVIDER) >= 1
        assert w.hub.registry is not None
        await w.hub.registry.set_status(PROVIDER, ProviderStatus.SUSPENDED, "test")
        assert w.s2s.links_of(PROVIDER) == 0  # synchronously, in the same call
        assert f"<{StreamErrorCondition.POLICY_VIOLATION} ".encode() in b"".join(w.wire)
        # once the server has taken the closed stream down, a new one is refused at its
        # header (a stanza the server writes on the old stream meanwhile is lost in flight:
        # s2s has no acknowledgements)
        for _ in range(100):
            if w.peer.closed_outgoing(PEER, DOMAIN):
                break
            await asyncio.sleep(0.05)
        alice.send_chat(w.alias(), "still there?")
        bounced = await alice.next_message(timeout=20)
        assert bounced["type"] == "error"
        with pytest.raises(TimeoutError):
            await home.next_message(timeout=1)


async def test_omemo_device_lists_cross_over_s2s_pep_both_ways(
    tmp_path: Path, stock_server: StockServer
) -> None:
    """Keys across the boundary: each side reads the other's OMEMO 2 and legacy device lists,
    the gatekeeper user from the stock server's PEP over s2s, its user from the hub's PEP at
    the alias (both after the conversation was accepted)."""
    async with world(tmp_path, stock_server) as w, users(w, "alice") as (home, alice):
        for user in (home, alice):
            user.client.register_plugin("xep_0004")
            user.client.register_plugin("xep_0060")
        alice.send_chat(w.alias(), "hi")
        await home.next_message(timeout=20)
        await accept(home, f"alice@{PEER}")
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


async def next_presence(user: Xmpp, sender: str, kind: str, timeout: float = 20) -> Any:
    """The next presence of ``kind`` (``available``, ``subscribe``...) from ``sender`` (bare)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        presence = await asyncio.wait_for(user.presences.get(), deadline - loop.time())
        if presence["from"].bare == sender and presence["type"] == kind:
            return presence


async def test_subscriptions_and_presence_cross_both_ways_under_aliases(
    tmp_path: Path, stock_server: StockServer
) -> None:
    """RFC 6121 across s2s (issue 15): the stock server's user asks the gatekeeper user (at its
    alias) for a subscription once the conversation is accepted; the gatekeeper user's client
    approves and asks back (slixmpp's defaults), the stock server approves for its user; each
    then sees the other available, and a status change crosses. Nothing shows the phone
    number."""
    async with world(tmp_path, stock_server) as w, users(w, "alice") as (home, alice):
        alias = w.alias()
        alice.send_chat(alias, "hi")
        await home.next_message(timeout=20)
        await accept(home, f"alice@{PEER}")
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


@pytest.mark.parametrize("first", ["peer", "hub"])
async def test_pinned_fingerprints_without_a_ca_authenticate_both_ways_by_external(
    tmp_path: Path, stock_server: StockServer, first: str
) -> None:
    """A provider record with a pinned certificate fingerprint and no CA (issue 15): the stock
    server's certificate chains to nothing the hub trusts, yet its streams to the hub
    authenticate by SASL EXTERNAL (the pin decides), whichever side writes first, and the
    hub's to the server too."""
    async with (
        world(tmp_path, stock_server, pinned=True) as w,
        users(w, "alice") as (home, alice),
    ):
        alias = w.alias()
        if first == "hub":
            await accept(home, f"alice@{PEER}")
            home.send_chat(f"alice@{PEER}", "first from the hub")
            assert (await alice.next_message(timeout=20))["body"] == "first from the hub"
        alice.send_chat(alias, "hello over a pinned link")
        got = await home.next_message(timeout=20)
        assert got["body"] == "hello over a pinned link"
        if first == "peer":
            await accept(home, f"alice@{PEER}")
            home.send_chat(f"alice@{PEER}", "and back")
            assert (await alice.next_message(timeout=20))["body"] == "and back"
        counters = w.s2s.counters[PROVIDER]
        assert counters.methods["in:sasl-external"] >= 1, counters.methods
        assert counters.methods["out:sasl-external"] >= 1, counters.methods
        assert counters.methods["in:dialback"] == 0
        assert (
            "interlink_s2s_authentications_total"
            f'{{direction="in",method="sasl-external",provider="{PROVIDER}"}}'
        ) in await w.metrics()


@pytest.mark.parametrize("stock_server", servers(EJABBERD_SERVER))
async def test_the_hub_falls_back_to_dialback_when_ejabberd_cannot_check_its_certificate(
    tmp_path: Path, stock_server: StockServer
) -> None:
    """XEP-0220 over TLS: ejabberd does not trust the hub's issuer, so it refuses the hub's SASL
    EXTERNAL (it offers the mechanism before looking at the certificate); the hub falls back to
    dialback (XEP-0178 §2.4), which ejabberd verifies by asking the hub's authoritative server,
    found through the SRV record, on a stream of its own. (Prosody, configured as a provider
    should be, with ``s2s_secure_auth``, accepts no dialback: ejabberd alone.)"""
    async with (
        world(tmp_path, stock_server, trusts_hub=False) as w,
        users(w, "alice") as (home, alice),
    ):
        alice.send_chat(w.alias(), "hello")
        await home.next_message(timeout=20)
        await accept(home, f"alice@{PEER}")
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
