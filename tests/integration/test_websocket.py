"""XMPP over WebSocket (RFC 7395) with the independent `websockets` client library."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path
from xml.etree.ElementTree import Element

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidHandshake, InvalidStatus
from websockets.typing import Subprotocol

from interlink.xmpp.parser import (
    ElementReceived,
    Framing,
    StreamFooter,
    StreamHeader,
    StreamParser,
)
from tests.integration.kit import DOMAIN, TIMEOUT, Xmpp, running_hub

FRAMING = "urn:ietf:params:xml:ns:xmpp-framing"
XMPP = Subprotocol("xmpp")
OPEN = f"<open xmlns='{FRAMING}' to='{DOMAIN}' version='1.0'/>"


async def frame(ws: ClientConnection) -> Element:
    data = await asyncio.wait_for(ws.recv(), TIMEOUT)
    raw = data.encode() if isinstance(data, str) else data
    (ev,) = StreamParser(framing=Framing.WEBSOCKET).feed_frame(raw)
    if isinstance(ev, StreamHeader):  # our parser reports <open/> and <close/> as stream events
        return Element(ev.tag, ev.attrs)
    if isinstance(ev, StreamFooter):
        return Element(f"{{{FRAMING}}}close")
    assert isinstance(ev, ElementReceived), ev
    return ev.element


async def frame_until(ws: ClientConnection, local: str) -> Element:
    for _ in range(20):
        el = await frame(ws)
        if el.tag.rsplit("}", 1)[-1] == local:
            return el
    raise AssertionError(f"no <{local}/>")


async def test_websocket_login_and_message_exchange(tmp_path: Path) -> None:
    async with running_hub(tmp_path) as (server, certs):
        bob = Xmpp(f"bob@{DOMAIN}/phone", "pw", certs)
        await bob.login(server.ports["c2s-starttls"])
        uri = f"wss://127.0.0.1:{server.ports['http']}/xmpp-websocket"
        ctx = certs.client_context()
        async with connect(uri, subprotocols=[XMPP], ssl=ctx, server_hostname=DOMAIN) as ws:
            assert ws.subprotocol == "xmpp"
            await ws.send(OPEN)
            opened = await frame(ws)
            assert opened.tag == f"{{{FRAMING}}}open"
            assert opened.get("from") == DOMAIN
            features = await frame(ws)
            mechanisms = [m.text for f in features for m in f]
            assert "PLAIN" in mechanisms  # the HTTP port is TLS
            token = base64.b64encode(b"\0alice\0pw").decode()
            await ws.send(
                f"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{token}</auth>"
            )
            assert (await frame(ws)).tag.endswith("success")
            await ws.send(OPEN)
            await frame_until(ws, "features")
            await ws.send(
                "<iq xmlns='jabber:client' type='set' id='b'>"
                "<bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>web</resource></bind></iq>"
            )
            bound = await frame_until(ws, "iq")
            assert bound.get("type") == "result"
            await ws.send("<presence xmlns='jabber:client'/>")
            await ws.send(
                f"<message xmlns='jabber:client' to='bob@{DOMAIN}' type='chat'><body>from the web</body></message>"
            )
            msg = await bob.next_message()
            assert msg["body"] == "from the web"
            assert str(msg["from"]) == f"alice@{DOMAIN}/web"
            bob.send_chat(f"alice@{DOMAIN}/web", "to the web")
            got = await frame_until(ws, "message")
            assert got.tag == "{jabber:client}message"
            assert got.findtext("{jabber:client}body") == "to the web"
            await ws.send(f"<close xmlns='{FRAMING}'/>")
            closing = await frame_until(ws, "close")
            assert closing.tag == f"{{{FRAMING}}}close"
        await bob.close()


async def test_websocket_requires_the_xmpp_subprotocol(tmp_path: Path) -> None:
    async with running_hub(tmp_path) as (server, certs):
        uri = f"wss://127.0.0.1:{server.ports['http']}/xmpp-websocket"
        with pytest.raises((InvalidStatus, InvalidHandshake)):
            async with connect(uri, ssl=certs.client_context(), server_hostname=DOMAIN) as ws:
                await ws.recv()


async def test_websocket_frame_with_partial_element_is_rejected(tmp_path: Path) -> None:
    async with running_hub(tmp_path) as (server, certs):
        uri = f"wss://127.0.0.1:{server.ports['http']}/xmpp-websocket"
        async with connect(
            uri, subprotocols=[XMPP], ssl=certs.client_context(), server_hostname=DOMAIN
        ) as ws:
            await ws.send(OPEN)
            await frame_until(ws, "features")
            await ws.send("<message xmlns='jabber:client'><body>")
            err = await frame_until(ws, "error")
            assert err[0].tag.endswith("not-well-formed")
            assert (await frame(ws)).tag == f"{{{FRAMING}}}close"
