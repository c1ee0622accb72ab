"""XEP-0352 client state indication against slixmpp's xep_0352 plugin: an inactive client gets
presence and chat states held (only the latest of each), a message at once after what was held,
and everything on <active/>; stream management keeps counting what was really sent."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import slixmpp
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath

from interlink.xmpp.jid import JID
from tests.integration.kit import DOMAIN, TIMEOUT, Xmpp, running_hub

CHATSTATES = "http://jabber.org/protocol/chatstates"


def recording(x: Xmpp) -> list[str]:
    """Every presence and message ``x`` receives, in order, as 'kind:detail'."""
    seen: list[str] = []

    def on_presence(p: Any) -> None:
        if p["from"].bare == f"alice@{DOMAIN}":
            seen.append(f"presence:{p['show'] or 'available'}")

    def on_message(m: Any) -> None:
        state = m.xml.find(f"{{{CHATSTATES}}}*")
        body = m["body"]
        seen.append(f"body:{body}" if body else f"state:{state.tag.split('}')[1]}")

    x.client.add_event_handler("presence", on_presence)
    # every message, chat states alone included (slixmpp's "message" event skips those)
    x.client.register_handler(
        Callback("all messages", MatchXPath("{jabber:client}message"), on_message)
    )
    return seen


def send_state(alice: Xmpp, to: str, state: str) -> None:
    msg = alice.client.make_message(mto=slixmpp.JID(to), mtype="chat")
    msg.xml.append(ET.Element(f"{{{CHATSTATES}}}{state}"))
    msg.send()


async def settle(*clients: Xmpp) -> None:
    for c in clients:
        await c.ping_server()
    await asyncio.sleep(0.3)


async def test_inactive_holds_presence_and_chat_states_until_a_message(tmp_path: Path) -> None:
    async with running_hub(tmp_path) as (server, certs):
        port = server.ports["c2s-starttls"]
        bob = Xmpp(f"bob@{DOMAIN}/phone", "pw", certs)
        bob.client.register_plugin("xep_0352")
        bob.client.register_plugin("xep_0198")
        seen = recording(bob)
        await bob.login(port, presence=False)
        alice = Xmpp(f"alice@{DOMAIN}/laptop", "pw", certs)
        await alice.login(port, presence=False)
        bob_full = f"bob@{DOMAIN}/phone"
        try:
            assert bob.client.plugin["xep_0352"].enabled  # the hub offered <csi/>
            csi: Any = bob.client.plugin["xep_0352"]
            csi.send_inactive()
            await bob.ping_server()
            alice.client.send_presence(pto=slixmpp.JID(bob_full), pshow="away")
            send_state(alice, bob_full, "composing")
            alice.client.send_presence(pto=slixmpp.JID(bob_full), pshow="dnd")
            send_state(alice, bob_full, "paused")
            await settle(alice, bob)
            assert seen == []  # all held
            alice.send_chat(bob_full, "hello")
            await bob.next_message()
            await settle(alice, bob)
            # what was held first (superseded ones dropped), then the message
            assert seen == ["presence:dnd", "state:paused", "body:hello"]
            seen.clear()
            alice.client.send_presence(pto=slixmpp.JID(bob_full), pshow="xa")
            await settle(alice, bob)
            assert seen == []
            csi.send_active()
            await settle(bob)
            assert seen == ["presence:xa"]
            # stream management counted as sent exactly what bob received
            assert server.hub is not None
            session = server.hub.ctx.sessions.get(JID.parse(bob_full))
            assert session is not None
            driver: Any = session.port
            assert driver.stream.sm.sent == bob.client.plugin["xep_0198"].handled
            assert server.hub.sessions == 2  # nobody was disconnected
        finally:
            await alice.close()
            await bob.close()


async def test_csi_can_be_switched_off(tmp_path: Path) -> None:
    async with running_hub(tmp_path, csi={"enabled": False}) as (server, certs):
        bob = Xmpp(f"bob@{DOMAIN}/phone", "pw", certs)
        bob.client.register_plugin("xep_0352")
        await bob.login(server.ports["c2s-starttls"])
        try:
            assert not bob.client.plugin["xep_0352"].enabled
            await asyncio.wait_for(bob.ping_server(), TIMEOUT)
        finally:
            await bob.close()
