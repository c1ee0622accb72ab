"""XEP-0357 push for the hub's own accounts, end to end over loopback: slixmpp clients register
an app server which is a slixmpp ``ComponentXMPP`` connected over XEP-0114; each message stored
offline yields exactly one content-free push; disable stops them; an error disables the
registration; a wrong component secret is refused with <not-authorized/>."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import pytest
import slixmpp
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath

from interlink.app import HubServer
from interlink.xmpp.jid import JID
from interlink.xmpp.stanza import Iq, IqType
from tests.integration.kit import DOMAIN, TIMEOUT, RawClient, Xmpp, running_hub

APP = "push.example.net"
SECRET = "a-component-secret-0123456789"
PUBSUB = "{http://jabber.org/protocol/pubsub}"
XDATA = "{jabber:x:data}"
PUSH = "urn:xmpp:push:0"
COMPONENTS = {"secrets": {APP: SECRET}}
NET = {"component_port": 0}


class AppServer:
    """A push app server as deployed: an external component that records every publish and
    answers it (or, when told, answers with an error)."""

    def __init__(self) -> None:
        self.component = slixmpp.ComponentXMPP(APP, SECRET)  # type: ignore[no-untyped-call]
        self.pushes: asyncio.Queue[ET.Element] = asyncio.Queue()
        self.refuse: set[str] = set()  # nodes answered with <item-not-found/>
        self.ready = asyncio.Event()
        self.component.add_event_handler("session_start", lambda _: self.ready.set())
        self.component.register_handler(
            Callback(
                "push publish",
                MatchXPath(f"{{jabber:component:accept}}iq/{PUBSUB}pubsub"),
                self._publish,
            )
        )

    def _publish(self, iq: Any) -> None:
        xml: ET.Element = iq.xml
        self.pushes.put_nowait(xml)
        node = xml.find(f"{PUBSUB}pubsub/{PUBSUB}publish")
        reply = iq.reply(clear=True)
        if node is not None and node.get("node") in self.refuse:
            reply["type"] = "error"
            reply["error"]["type"] = "cancel"
            reply["error"]["condition"] = "item-not-found"
        reply.send()

    async def connect(self, port: int) -> None:
        self.component.connect("127.0.0.1", port)
        await asyncio.wait_for(self.ready.wait(), TIMEOUT)

    async def next_push(self, timeout: float = TIMEOUT) -> ET.Element:
        return await asyncio.wait_for(self.pushes.get(), timeout)

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.component.disconnect(wait=1), timeout=5)


@asynccontextmanager
async def hub_with_app_server(tmp: Path) -> AsyncIterator[tuple[HubServer, Any, AppServer]]:
    async with running_hub(tmp, components=COMPONENTS, net=NET) as (server, certs):
        app = AppServer()
        await app.connect(server.ports["component"])
        try:
            yield server, certs, app
        finally:
            await app.close()


def enable(node: str, secret: str | None = None) -> ET.Element:
    el = ET.Element(f"{{{PUSH}}}enable", {"jid": APP, "node": node})
    if secret is not None:
        x = ET.SubElement(el, f"{XDATA}x", {"type": "submit"})
        for var, value in (
            ("FORM_TYPE", "http://jabber.org/protocol/pubsub#publish-options"),
            ("secret", secret),
        ):
            field = ET.SubElement(x, f"{XDATA}field", {"var": var})
            ET.SubElement(field, f"{XDATA}value").text = value
    return el


async def iq_set(client: Xmpp, payload: ET.Element) -> Any:
    iq = client.client.make_iq_set()
    iq.append(payload)
    return await iq.send(timeout=TIMEOUT)  # type: ignore[no-untyped-call]


async def registered(server: HubServer, local: str) -> list[str]:
    assert server.storage is not None
    regs = await server.storage.push_registrations.for_account(f"{local}@{DOMAIN}")
    return [r.node for r in regs]


async def offline_count(server: HubServer, local: str) -> int:
    assert server.storage is not None
    return await server.storage.offline.count(f"{local}@{DOMAIN}")


def message_count(push: ET.Element) -> str:
    path = f"{PUBSUB}pubsub/{PUBSUB}publish/{PUBSUB}item/{{{PUSH}}}notification/{XDATA}x"
    form = push.find(path)
    assert form is not None
    values = {f.get("var"): f.findtext(f"{XDATA}value") for f in form}
    return values["message-count"] or "0"


async def test_one_content_free_push_per_stored_message_until_disabled(tmp_path: Path) -> None:
    async with hub_with_app_server(tmp_path) as (server, certs, app):
        port = server.ports["c2s-starttls"]
        bob = Xmpp(f"bob@{DOMAIN}/phone", "pw", certs)
        await bob.login(port)
        info = await bob.client.plugin["xep_0030"].get_info(
            jid=slixmpp.JID(f"bob@{DOMAIN}"), timeout=TIMEOUT
        )
        assert PUSH in info["disco_info"]["features"]  # §5: on the account's bare JID
        await iq_set(bob, enable("bob-node", secret="app-secret-1"))
        await bob.close()

        alice = Xmpp(f"alice@{DOMAIN}/laptop", "pw", certs)
        await alice.login(port)
        try:
            for i in range(3):
                alice.send_chat(f"bob@{DOMAIN}", f"secret words {i}")
            await alice.ping_server()
            assert await offline_count(server, "bob") == 3
            # Each stored message is counted in exactly one push: one each when the app server
            # answers before the next is stored, coalesced while one is in flight.
            pushes: list[ET.Element] = []
            counted = 0
            while counted < 3:
                pushes.append(await app.next_push())
                counted += int(message_count(pushes[-1]))
            assert counted == 3
            for push in pushes:
                raw = ET.tostring(push, encoding="unicode")
                assert "secret words" not in raw  # content-free: no body ...
                assert "alice" not in raw  # ... and no sender
                assert push.get("from") == f"bob@{DOMAIN}"
                assert push.get("to") == APP
                publish = push.find(f"{PUBSUB}pubsub/{PUBSUB}publish")
                assert publish is not None
                assert publish.get("node") == "bob-node"
                form = publish.find(f"{PUBSUB}item/{{{PUSH}}}notification/{XDATA}x")
                assert form is not None
                fields = {f.get("var"): f.findtext(f"{XDATA}value") for f in form}
                assert set(fields) == {"FORM_TYPE", "message-count"}  # nothing else
                assert fields["FORM_TYPE"] == "urn:xmpp:push:summary"
                options = push.find(f"{PUBSUB}pubsub/{PUBSUB}publish-options/{XDATA}x")
                assert options is not None
                values = {f.get("var"): f.findtext(f"{XDATA}value") for f in options}
                assert values["secret"] == "app-secret-1"
            await asyncio.sleep(0.3)
            assert app.pushes.empty()  # exactly one per stored message
            assert server.metrics is not None
            exposed = (await server.metrics.render()).decode()
            assert f'interlink_app_pushes_total{{outcome="sent"}} {len(pushes)}.0' in exposed

            # disable (the whole app server), then nothing more
            bob = Xmpp(f"bob@{DOMAIN}/phone", "pw", certs)
            await bob.login(port, presence=False)
            await iq_set(bob, ET.Element(f"{{{PUSH}}}disable", {"jid": APP}))
            assert await registered(server, "bob") == []
            await bob.close()
            alice.send_chat(f"bob@{DOMAIN}", "after disable")
            await alice.ping_server()
            assert await offline_count(server, "bob") >= 4
            await asyncio.sleep(0.3)
            assert app.pushes.empty()
        finally:
            await alice.close()


async def test_an_error_from_the_app_server_disables_that_registration(tmp_path: Path) -> None:
    async with hub_with_app_server(tmp_path) as (server, certs, app):
        port = server.ports["c2s-starttls"]
        bob = Xmpp(f"bob@{DOMAIN}/phone", "pw", certs)
        await bob.login(port)
        await iq_set(bob, enable("kept"))
        await iq_set(bob, enable("gone"))
        await bob.close()
        app.refuse.add("gone")
        alice = Xmpp(f"alice@{DOMAIN}/laptop", "pw", certs)
        await alice.login(port)
        try:
            alice.send_chat(f"bob@{DOMAIN}", "one")
            await alice.ping_server()
            nodes = set()
            for _ in range(2):
                publish = (await app.next_push()).find(f"{PUBSUB}pubsub/{PUBSUB}publish")
                assert publish is not None
                nodes.add(publish.get("node"))
            assert nodes == {"kept", "gone"}
            for _ in range(50):
                if await registered(server, "bob") == ["kept"]:
                    break
                await asyncio.sleep(0.05)
            assert await registered(server, "bob") == ["kept"]
        finally:
            await alice.close()


async def test_enable_errors_and_the_registration_limit(tmp_path: Path) -> None:
    async with running_hub(
        tmp_path, components=COMPONENTS, net=NET, push={"max_registrations_per_account": 2}
    ) as (server, certs):
        bob = Xmpp(f"bob@{DOMAIN}/phone", "pw", certs)
        await bob.login(server.ports["c2s-starttls"])
        try:
            await iq_set(bob, enable("1"))
            await iq_set(bob, enable("2"))  # at the limit
            await iq_set(bob, enable("2"))  # a replacement does not count twice
            with pytest.raises(slixmpp.exceptions.IqError) as refused:
                await iq_set(bob, enable("3"))
            assert refused.value.iq["error"]["condition"] == "resource-constraint"
            assert await registered(server, "bob") == ["1", "2"]
            unreachable = ET.Element(f"{{{PUSH}}}enable", {"jid": "push.elsewhere", "node": "n"})
            with pytest.raises(slixmpp.exceptions.IqError) as unknown:
                await iq_set(bob, unreachable)
            assert unknown.value.iq["error"]["condition"] == "remote-server-not-found"
        finally:
            await bob.close()


async def test_a_wrong_component_secret_is_not_authorized(tmp_path: Path) -> None:
    async with running_hub(tmp_path, components=COMPONENTS, net=NET) as (server, _):
        raw = await RawClient.open(server.ports["component"])
        try:
            await raw.send(
                b"<stream:stream xmlns='jabber:component:accept' "
                b"xmlns:stream='http://etherx.jabber.org/streams' to='" + APP.encode() + b"'>"
                b"<handshake>0123456789abcdef0123456789abcdef01234567</handshake>"
            )
            assert await raw.stream_error() == "not-authorized"
        finally:
            await raw.close()


async def test_a_message_queued_for_a_parked_session_is_pushed_once(tmp_path: Path) -> None:
    """XEP-0198 + XEP-0357: a phone whose connection dropped (its session waits to be resumed)
    gets a push for each message queued for it, and none while it is connected."""
    async with hub_with_app_server(tmp_path) as (server, certs, app):
        port = server.ports["c2s-starttls"]
        bob = Xmpp(f"bob@{DOMAIN}/phone", "pw", certs)
        bob.client.register_plugin("xep_0198")
        await bob.login(port)
        await iq_set(bob, enable("phone"))
        for _ in range(100):
            if bob.client.plugin["xep_0198"].sm_id:
                break
            await asyncio.sleep(0.05)
        alice = Xmpp(f"alice@{DOMAIN}/laptop", "pw", certs)
        await alice.login(port)
        try:
            alice.send_chat(f"bob@{DOMAIN}", "while connected")
            assert (await bob.next_message())["body"] == "while connected"
            bob.client.abort()  # the connection drops: the session is parked
            assert server.hub is not None
            for _ in range(100):
                if len(server.hub.resumable) == 1:
                    break
                await asyncio.sleep(0.05)
            assert len(server.hub.resumable) == 1
            alice.send_chat(f"bob@{DOMAIN}", "while away")
            await alice.ping_server()
            assert await offline_count(server, "bob") == 0  # queued, not stored
            push = await app.next_push()
            publish = push.find(f"{PUBSUB}pubsub/{PUBSUB}publish")
            assert publish is not None
            assert publish.get("node") == "phone"
            assert "while away" not in ET.tostring(push, encoding="unicode")
            await asyncio.sleep(0.3)
            assert app.pushes.empty()  # one push, and none for the message bob received live
        finally:
            await alice.close()


async def test_a_component_gone_mid_request_is_no_answer(tmp_path: Path) -> None:
    async with running_hub(tmp_path, components=COMPONENTS, net=NET) as (server, _):
        raw = await RawClient.open(server.ports["component"])
        try:
            await raw.send(
                b"<stream:stream xmlns='jabber:component:accept' "
                b"xmlns:stream='http://etherx.jabber.org/streams' to='" + APP.encode() + b"'>"
            )
            data = await asyncio.wait_for(raw.reader.read(4096), TIMEOUT)
            stream_id = data.split(b' id="')[1].split(b'"')[0].decode()
            digest = hashlib.sha1((stream_id + SECRET).encode()).hexdigest()  # noqa: S324
            await raw.send(f"<handshake>{digest}</handshake>".encode())
            assert b"<handshake" in await asyncio.wait_for(raw.reader.read(4096), TIMEOUT)
            gateway = server.components
            assert gateway is not None
            assert gateway.connected(APP)
            iq = Iq(JID.parse(APP), JID.parse(f"bob@{DOMAIN}"), "x1", None, (), IqType.SET)
            asking = asyncio.ensure_future(gateway.request(iq, TIMEOUT))
            assert b"x1" in await asyncio.wait_for(raw.reader.read(4096), TIMEOUT)
            await raw.close()  # gone without answering
            assert await asyncio.wait_for(asking, TIMEOUT) is None
            assert not gateway.connected(APP)
        finally:
            await raw.close()
