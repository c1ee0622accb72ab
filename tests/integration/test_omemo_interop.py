"""Interoperability with an independent OMEMO client: slixmpp with the slixmpp-omemo plugin
(python-omemo's reference XMPP integration) against the Interlink SDK.

slixmpp-omemo has no Stanza Content Encryption, so it can neither send nor read OMEMO 2 content
("SCE not supported yet"): in practice it speaks legacy OMEMO only, although it publishes an
OMEMO 2 device list too. The test removes that list, so the peer is what the issue calls a
legacy-only peer, and checks that the SDK falls back to legacy OMEMO for it, both ways."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import slixmpp
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath

from interlink.client import InterlinkClient, TextMessage
from tests.integration.kit import DOMAIN, Xmpp, next_of, running_hub
from tests.integration.omemokit import decrypted_bodies, peer_omemo, send_encrypted

LEGACY = "eu.siacs.conversations.axolotl"
ALICE = f"alice@{DOMAIN}"


async def test_sdk_and_slixmpp_omemo_exchange_messages_both_ways(tmp_path: Path) -> None:
    async with running_hub(tmp_path) as (server, certs):
        port = server.ports["c2s-starttls"]
        peer = Xmpp(f"bob@{DOMAIN}/slixmpp-omemo", "pw", certs)
        omemo_plugin = peer_omemo(peer)
        received = decrypted_bodies(peer, omemo_plugin)
        alice = InterlinkClient(
            f"alice@{DOMAIN}/phone", "pw", data_dir=tmp_path / "alice", port=port, ca_file=certs.ca
        )
        await peer.login(port)
        await omemo_plugin.get_session_manager()  # keys published
        pubsub: Any = peer.client.plugin["xep_0060"]
        await pubsub.delete_node(
            slixmpp.JID(f"bob@{DOMAIN}"), "urn:xmpp:omemo:2:devices", timeout=10
        )
        await alice.connect()
        try:
            await alice.send_text(f"bob@{DOMAIN}", "from the Interlink SDK")
            assert await asyncio.wait_for(received.get(), 15) == "from the Interlink SDK"
            await send_encrypted(peer, omemo_plugin, ALICE, "from slixmpp-omemo")
            event = await next_of(alice, TextMessage, 15)
            assert event.text == "from slixmpp-omemo"
            assert event.sender == f"bob@{DOMAIN}/slixmpp-omemo"
            assert event.namespace == "eu.siacs.conversations.axolotl"
        finally:
            await alice.close()
            await peer.close()


async def test_a_client_that_advertises_legacy_omemo_only_gets_legacy_though_listed_in_both(
    tmp_path: Path,
) -> None:
    """As poezio-omemo 0.9: its device is in both device lists, it reads legacy OMEMO only and
    its capabilities say so (no ``urn:xmpp:omemo:2:devices+notify``). The SDK asks the client
    what it reads (disco#info of the resource that wrote) and answers with legacy OMEMO."""
    async with running_hub(tmp_path) as (server, certs):
        port = server.ports["c2s-starttls"]
        peer = Xmpp(f"bob@{DOMAIN}/poezio-like", "pw", certs)
        omemo_plugin = peer_omemo(peer)
        plugins: Any = peer.client.plugin
        received = decrypted_bodies(peer, omemo_plugin)
        await peer.login(port)
        await omemo_plugin.get_session_manager()  # keys published, in both device lists
        # what poezio-omemo advertises (slixmpp's remove_interest formats the wrong variable)
        plugins["xep_0030"].del_feature(feature="urn:xmpp:omemo:2:devices+notify")
        alice = InterlinkClient(
            f"alice@{DOMAIN}/phone", "pw", data_dir=tmp_path / "alice", port=port, ca_file=certs.ca
        )
        await alice.connect()
        try:
            await send_encrypted(peer, omemo_plugin, ALICE, "hello from a legacy-only client")
            event = await next_of(alice, TextMessage, 15)
            assert event.text == "hello from a legacy-only client"
            await alice.send_text(f"bob@{DOMAIN}", "a legacy answer")
            assert await asyncio.wait_for(received.get(), 15) == "a legacy answer"
        finally:
            await alice.close()
            await peer.close()


async def test_first_messages_crossing_leave_the_sdk_in_the_order_they_were_encrypted(
    tmp_path: Path,
) -> None:
    """Both sides write first at once (as Gajim does: it sends a key transport message as soon
    as it sees a new device). The SDK's text starts a session with a key exchange; the peer's
    key exchange arriving meanwhile replaces it, and OMEMO answers on the new session at once.
    That answer must not overtake the text: a peer that keeps the sessions it had (libsignal,
    Gajim) then stays on the session it answered last, ours, and can be read. Seen as
    "Key material decryption failed" on Gajim's reply in CI."""
    async with running_hub(tmp_path) as (server, certs):
        port = server.ports["c2s-starttls"]
        peer = Xmpp(f"bob@{DOMAIN}/gajim-like", "pw", certs)
        omemo_plugin = peer_omemo(peer)
        plugins: Any = peer.client.plugin
        from_alice: asyncio.Queue[Any] = asyncio.Queue()
        peer.client.register_handler(  # every one, body or not (the "message" event needs one)
            Callback(
                "legacy OMEMO",
                MatchXPath(f"{{jabber:client}}message/{{{LEGACY}}}encrypted"),
                from_alice.put_nowait,
            )
        )
        await peer.login(port)
        await omemo_plugin.get_session_manager()
        pubsub: Any = plugins["xep_0060"]
        await pubsub.delete_node(  # a legacy-only client, as Gajim
            slixmpp.JID(f"bob@{DOMAIN}"), "urn:xmpp:omemo:2:devices", timeout=10
        )
        alice = InterlinkClient(
            f"alice@{DOMAIN}/phone", "pw", data_dir=tmp_path / "alice", port=port, ca_file=certs.ca
        )
        await alice.connect()
        try:
            async with asyncio.timeout(15):  # OMEMO answers a key exchange at once from here
                await alice.caught_up()
            encrypted = await send_encrypted(peer, omemo_plugin, ALICE, "bob's first", held=True)
            # The interleaving made certain: alice's text waits for the crypto state first,
            # then bob's key exchange, which arrives while the text is being encrypted.
            async with alice.gate.operation():
                sending = asyncio.create_task(alice.send_text(f"bob@{DOMAIN}", "alice's first"))
                await asyncio.sleep(0)  # its turn is the next one
                for message in encrypted:
                    message.send()
                await peer.ping_server()  # the hub has passed it on to alice
                await asyncio.sleep(0.3)  # and alice's receiver waits for its turn
            await asyncio.wait_for(sending, 15)
            event = await next_of(alice, TextMessage, 15)  # until alice has read bob's key exchange
            assert event.text == "bob's first"
            await alice.close()  # nothing more from alice: the hub has all of it
            await peer.ping_server()  # answered after what the hub routed to bob before
            kinds: list[bool] = []  # per stanza from alice: does it start a session?
            while not from_alice.empty():
                xml = from_alice.get_nowait().xml
                kinds.append(
                    any(k.get("prekey") in ("true", "1") for k in xml.iter(f"{{{LEGACY}}}key"))
                )
            assert kinds, "nothing reached bob"
            if any(kinds):  # the text started a session: it came before anything else
                assert kinds[0], f"an answer overtook the text that starts the session: {kinds}"
        finally:
            await alice.close()
            await peer.close()
