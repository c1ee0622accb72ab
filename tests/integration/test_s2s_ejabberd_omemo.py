"""OMEMO end to end across the federation boundary with a stock ejabberd 23.01 (issue 15): an
Interlink SDK user on the hub and a slixmpp-omemo user on ejabberd exchange encrypted messages
both ways over s2s, under the message-request rules, each fetching the other's keys over PEP
(the hub's at the alias, ejabberd's through the s2s link).

slixmpp-omemo speaks legacy OMEMO only (no Stanza Content Encryption: see
tests/integration/test_omemo_interop.py), so the SDK falls back to legacy OMEMO for it."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import pytest
import slixmpp

from interlink.client import InterlinkClient, TextMessage
from interlink.xmpp.ext import interop
from tests.integration import test_omemo_interop
from tests.integration.kit import TIMEOUT, Xmpp
from tests.integration.test_omemo_interop import MemoryStorage, PeerOmemo
from tests.integration.test_s2s_ejabberd import (
    HOME,
    PEER,
    PHONE,
    World,
    enlist,
    gatekeeper,
    world,
)
from tests.integration.test_s2s_prosody import interop_iq, open_form


async def test_sdk_and_slixmpp_omemo_on_ejabberd_exchange_encrypted_messages(
    tmp_path: Path,
) -> None:
    async with world(tmp_path) as w:
        opt_in = await gatekeeper(w)  # the gatekeeper user's settings: third parties allowed
        PeerOmemo._store = MemoryStorage()
        await w.ejabberd.register("alice", PEER, "pw")
        peer = await on_ejabberd_with_omemo(w)
        plugins: Any = peer.client.plugin
        omemo_plugin: Any = plugins["xep_0384"]
        received: asyncio.Queue[str] = asyncio.Queue()

        async def on_message(msg: Any) -> None:
            if omemo_plugin.is_encrypted(msg):
                decrypted, _device = await omemo_plugin.decrypt_message(msg)
                received.put_nowait(decrypted["body"])

        peer.client.add_event_handler("message", on_message)
        sdk = InterlinkClient(
            f"{HOME}/sdk",
            "pw",
            data_dir=tmp_path / "sdk",
            port=w.hub.ports["c2s-starttls"],
            ca_file=w.certs.hub.ca,
        )
        try:
            # keys published on ejabberd; the device's identity key enlisted, as its provider
            # would through the Enlistment API
            manager = await omemo_plugin.get_session_manager()
            own_device, *_ = await manager.get_own_device_information()
            await enlist(w.hub, f"alice@{PEER}", own_device.identity_key)
            pubsub: Any = peer.client.plugin["xep_0060"]
            own = slixmpp.JID(f"alice@{PEER}")
            # slixmpp-omemo announces OMEMO 2 devices it cannot serve: announce none, and keep
            # it from announcing itself again when it sees the list change. (Its legacy nodes
            # need no opening, unlike on Prosody: ejabberd applies the publish-options
            # access model slixmpp-omemo asks for.)
            peer.client.del_event_handler(
                "twomemo_device_list_publish", omemo_plugin._on_device_list_update
            )
            await pubsub.publish(
                own,
                "urn:xmpp:omemo:2:devices",
                id="current",
                payload=slixmpp.ET.fromstring("<devices xmlns='urn:xmpp:omemo:2'/>"),
                options=open_form(peer),
                timeout=TIMEOUT,
            )
            # a first plaintext message: a request; the gatekeeper user accepts it
            peer.send_chat(w.alias(), "may I write to you?")
            await opt_in.next_message(timeout=20)
            await interop_iq(opt_in, f"<accept xmlns='{interop.NS}' jid='alice@{PEER}'/>")
            await sdk.connect()
            await sdk.send_text(f"alice@{PEER}", "from the Interlink SDK, over s2s")
            assert await asyncio.wait_for(received.get(), 20) == "from the Interlink SDK, over s2s"
            manager = await omemo_plugin.get_session_manager()
            await manager.refresh_device_lists(w.alias())
            stanza = peer.client.make_message(mto=slixmpp.JID(w.alias()), mtype="chat")
            stanza["body"] = "from slixmpp-omemo on ejabberd"
            encrypted, _errors = await omemo_plugin.encrypt_message(stanza, slixmpp.JID(w.alias()))
            for message in encrypted.values() if isinstance(encrypted, dict) else [encrypted]:
                message.send()
            while True:
                event = await sdk.next_event(20)
                if isinstance(event, TextMessage):
                    break
            assert event.text == "from slixmpp-omemo on ejabberd"
            assert event.sender.startswith(f"alice@{PEER}")
            assert event.namespace == "eu.siacs.conversations.axolotl"
            assert PHONE.encode() not in b"".join(w.wire)
        finally:
            await sdk.close()
            await peer.close()
            await opt_in.close()


async def on_ejabberd_with_omemo(w: World) -> Xmpp:
    peer = Xmpp(f"alice@{PEER}/slixmpp-omemo", "pw", w.certs.hub)
    peer.client.register_plugin("xep_0004")
    peer.client.register_plugin("xep_0384", module=sys.modules[test_omemo_interop.__name__])
    await peer.login(w.ejabberd.c2s_port)
    return peer


async def test_sdk_users_on_the_hub_and_on_ejabberd_exchange_omemo_2_messages(
    tmp_path: Path,
) -> None:
    """OMEMO 2 across the boundary: the Interlink SDK is an ordinary XMPP client, so it runs on
    ejabberd too (it publishes its keys there: ejabberd 23.01 knows no ``pubsub#max_items``
    publish option, and the SDK publishes again without it); both ends speak OMEMO 2 (SCE),
    which they prefer."""
    pytest.importorskip(
        "interlink.client.aliases",
        reason="the SDK seals OMEMO 2 envelopes from the alias the federated peer knows "
        "only with the aliases of the federation branch (wt-fed); without them the envelope "
        "names the phone number and the peer refuses it",
    )
    async with world(tmp_path) as w:
        opt_in = await gatekeeper(w)
        await w.ejabberd.register("alice", PEER, "pw")
        home = InterlinkClient(
            f"{HOME}/sdk",
            "pw",
            data_dir=tmp_path / "home",
            port=w.hub.ports["c2s-starttls"],
            ca_file=w.certs.hub.ca,
        )
        alice = InterlinkClient(
            f"alice@{PEER}/sdk",
            "pw",
            data_dir=tmp_path / "alice",
            port=w.ejabberd.c2s_port,
            ca_file=w.certs.hub.ca,
        )
        try:
            await alice.connect()  # keys published on ejabberd, and enlisted
            key = bytes.fromhex((await alice.fingerprint()).replace(" ", ""))
            await enlist(w.hub, f"alice@{PEER}", key)
            # the gatekeeper user writes first: an outgoing message accepts the conversation
            await interop_iq(opt_in, f"<accept xmlns='{interop.NS}' jid='alice@{PEER}'/>")
            await home.connect()
            await home.send_text(f"alice@{PEER}", "OMEMO 2 from the hub")
            event = await next_text(alice)
            assert event.text == "OMEMO 2 from the hub"
            assert event.namespace == "urn:xmpp:omemo:2"
            await alice.send_text(w.alias(), "OMEMO 2 from ejabberd")
            event = await next_text(home)
            assert event.text == "OMEMO 2 from ejabberd"
            assert event.namespace == "urn:xmpp:omemo:2"
            assert event.sender.startswith(f"alice@{PEER}")
            assert PHONE.encode() not in b"".join(w.wire)
        finally:
            await home.close()
            await alice.close()
            await opt_in.close()


async def next_text(sdk: InterlinkClient) -> TextMessage:
    while True:
        event = await sdk.next_event(20)
        if isinstance(event, TextMessage):
            return event
