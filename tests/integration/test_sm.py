"""XEP-0198 stream management against slixmpp's xep_0198 plugin (STARTTLS) and raw WebSocket
frames: acks both ways, offline drains settled by acks, a dropped connection's unacknowledged
messages stored and settled by the client's count, nothing lost, nothing twice."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path
from typing import Any

from websockets.asyncio.client import connect

from interlink.app import HubServer
from interlink.hub.hub import Hub
from tests.integration.kit import DOMAIN, TIMEOUT, Certs, Xmpp, running_hub
from tests.integration.test_websocket import FRAMING, OPEN, XMPP, frame_until

SM = "urn:xmpp:sm:3"


def sm_client(jid: str, certs: Certs) -> Xmpp:
    x = Xmpp(jid, "pw", certs)
    x.client.register_plugin("xep_0198")
    return x


def plugin(x: Xmpp) -> Any:
    return x.client.plugin["xep_0198"]


async def eventually(check: Any, what: str) -> None:
    for _ in range(int(TIMEOUT * 20)):
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"never: {what}")


async def stored(server: HubServer, local: str) -> int:
    assert server.storage is not None
    return await server.storage.offline.count(f"{local}@{DOMAIN}")


async def test_acks_both_ways_and_an_offline_drain_settled_by_acks(tmp_path: Path) -> None:
    limits = {"offline_drain_batch": 7, "sm_request_every": 3}
    async with running_hub(tmp_path, limits=limits) as (server, certs):
        alice = sm_client(f"alice@{DOMAIN}/a", certs)
        await alice.login(server.ports["c2s-starttls"])
        await eventually(lambda: plugin(alice).enabled_in, "stream management enabled")
        for i in range(25):
            alice.send_chat(f"bob@{DOMAIN}", f"m{i}")
        await alice.ping_server()
        plugin(alice).request_ack()
        # the hub acknowledged every stanza alice sent (its <a h/> emptied her queue)
        await eventually(lambda: not plugin(alice).unacked_queue, "alice's stanzas acked")
        assert await stored(server, "bob") == 25
        bob = sm_client(f"bob@{DOMAIN}/b", certs)
        await bob.login(server.ports["c2s-starttls"])
        got = [(await bob.next_message())["body"] for _ in range(25)]
        assert got == [f"m{i}" for i in range(25)]
        # bob's acks (answers to the hub's <r/>) let the drain delete every batch
        await eventually(
            lambda: _is_zero(stored(server, "bob")), "the drained messages deleted on ack"
        )
        await asyncio.sleep(0.3)
        assert bob.messages.empty()
        await alice.close()
        await bob.close()


async def _is_zero(count: Any) -> bool:
    return bool(await count == 0)


async def test_a_dropped_connection_is_resumed_and_the_unacked_resent_once(
    tmp_path: Path,
) -> None:
    # The hub asks for acks rarely: what bob receives stays unacknowledged on the hub's side.
    async with running_hub(tmp_path, limits={"sm_request_every": 1000}) as (server, certs):
        alice = sm_client(f"alice@{DOMAIN}/a", certs)
        await alice.login(server.ports["c2s-starttls"])
        bob = sm_client(f"bob@{DOMAIN}/b", certs)
        await bob.login(server.ports["c2s-starttls"])
        await eventually(lambda: plugin(bob).sm_id, "an id (bob asked for resumption)")
        for i in range(5):
            alice.send_chat(f"bob@{DOMAIN}", f"live{i}")
        assert [(await bob.next_message())["body"] for _ in range(5)] == [
            f"live{i}" for i in range(5)
        ]
        plugin(bob).handled -= 2  # as if the last two had not reached bob
        bob.client.abort()  # the connection drops; the hub never got an ack
        await eventually(lambda: len(_hub(server).resumable) == 1, "the session parked")
        alice.send_chat(f"bob@{DOMAIN}", "while away")  # routed to the parked session
        await alice.ping_server()
        assert await stored(server, "bob") == 0
        bob.started.clear()
        resumed = asyncio.Event()
        bob.client.add_event_handler("session_resumed", lambda _: resumed.set())
        bob.client.connect("127.0.0.1", server.ports["c2s-starttls"])
        await asyncio.wait_for(resumed.wait(), TIMEOUT)
        got = [(await bob.next_message())["body"] for _ in range(3)]
        assert got == ["live3", "live4", "while away"]  # what bob lacked, once, in order
        await asyncio.sleep(0.3)
        assert bob.messages.empty()
        alice.send_chat(f"bob@{DOMAIN}", "after")
        assert (await bob.next_message())["body"] == "after"
        await alice.close()
        await bob.close()


async def test_an_expired_session_stores_the_unacked_and_the_count_settles_them(
    tmp_path: Path,
) -> None:
    async with running_hub(
        tmp_path, limits={"sm_request_every": 1000}, xmpp={"sm_resume_window": 0.5}
    ) as (server, certs):
        alice = sm_client(f"alice@{DOMAIN}/a", certs)
        await alice.login(server.ports["c2s-starttls"])
        bob = sm_client(f"bob@{DOMAIN}/b", certs)
        await bob.login(server.ports["c2s-starttls"])
        await eventually(lambda: plugin(bob).sm_id, "an id")
        for i in range(5):
            alice.send_chat(f"bob@{DOMAIN}", f"live{i}")
        assert [(await bob.next_message())["body"] for _ in range(5)] == [
            f"live{i}" for i in range(5)
        ]
        plugin(bob).handled -= 2  # bob has only the first three
        bob.client.abort()
        # not resumed in time: the five unacknowledged go to offline storage
        await eventually(lambda: _equals(stored(server, "bob"), 5), "the unacked stored")
        assert len(_hub(server).resumable) == 0
        alice.send_chat(f"bob@{DOMAIN}", "after")  # stored behind them
        await alice.ping_server()
        # <resume previd h=3/> → <failed/> (expired), the three bob has are settled; he binds
        # again and gets what he lacks, once, in order.
        bob.started.clear()
        await bob.login(server.ports["c2s-starttls"])
        got = [(await bob.next_message())["body"] for _ in range(3)]
        assert got == ["live3", "live4", "after"]
        await asyncio.sleep(0.3)
        assert bob.messages.empty()
        await eventually(lambda: _equals(stored(server, "bob"), 0), "all delivered")
        await alice.close()
        await bob.close()


def _hub(server: HubServer) -> Hub:
    assert server.hub is not None
    return server.hub


async def _equals(count: Any, expected: int) -> bool:
    return bool(await count == expected)


async def test_acks_over_websocket(tmp_path: Path) -> None:
    async with running_hub(tmp_path) as (server, certs):
        bob = Xmpp(f"bob@{DOMAIN}/phone", "pw", certs)
        await bob.login(server.ports["c2s-starttls"])
        uri = f"wss://127.0.0.1:{server.ports['http']}/xmpp-websocket"
        ctx = certs.client_context()
        async with connect(uri, subprotocols=[XMPP], ssl=ctx, server_hostname=DOMAIN) as ws:
            await ws.send(OPEN)
            await frame_until(ws, "features")
            token = base64.b64encode(b"\0alice\0pw").decode()
            await ws.send(
                f"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{token}</auth>"
            )
            await frame_until(ws, "success")
            await ws.send(OPEN)
            features = await frame_until(ws, "features")
            assert features.find(f"{{{SM}}}sm") is not None
            await ws.send(
                "<iq xmlns='jabber:client' type='set' id='b'>"
                "<bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>web</resource></bind></iq>"
            )
            await frame_until(ws, "iq")
            await ws.send(f"<enable xmlns='{SM}' resume='true'/>")
            enabled = await frame_until(ws, "enabled")
            assert enabled.get("id")
            await ws.send("<presence xmlns='jabber:client'/>")
            await ws.send(
                f"<message xmlns='jabber:client' to='bob@{DOMAIN}' type='chat'><body>w</body></message>"
            )
            await ws.send(f"<r xmlns='{SM}'/>")
            ack = await frame_until(ws, "a")
            assert ack.get("h") == "2"  # the presence and the message
            assert (await bob.next_message())["body"] == "w"
            bob.send_chat(f"alice@{DOMAIN}/web", "to the web")
            await frame_until(ws, "message")
            await ws.send(f"<a xmlns='{SM}' h='2'/>")  # the presence echo and the message
            await ws.send(f"<r xmlns='{SM}'/>")
            assert (await frame_until(ws, "a")).get("h") == "2"
            await ws.send(f"<close xmlns='{FRAMING}'/>")
            await frame_until(ws, "close")
        await bob.close()


async def test_a_drain_interrupted_by_a_lost_connection_goes_on_after_resumption(
    tmp_path: Path,
) -> None:
    limits = {"offline_drain_batch": 10, "sm_request_every": 1000}
    async with running_hub(tmp_path, limits=limits) as (server, certs):
        alice = sm_client(f"alice@{DOMAIN}/a", certs)
        await alice.login(server.ports["c2s-starttls"])
        n = 60
        for i in range(n):
            alice.send_chat(f"bob@{DOMAIN}", f"m{i:02d}")
        await alice.ping_server()
        bob = sm_client(f"bob@{DOMAIN}/b", certs)
        await bob.login(server.ports["c2s-starttls"])
        got = [(await bob.next_message())["body"] for _ in range(25)]
        bob.client.abort()  # mid-drain
        await eventually(lambda: len(_hub(server).resumable) == 1, "the session parked")
        while not bob.messages.empty():
            got.append(bob.messages.get_nowait()["body"])
        alice.send_chat(f"bob@{DOMAIN}", "new")  # queues behind the stored ones
        await alice.ping_server()
        resumed = asyncio.Event()
        bob.client.add_event_handler("session_resumed", lambda _: resumed.set())
        bob.client.connect("127.0.0.1", server.ports["c2s-starttls"])
        await asyncio.wait_for(resumed.wait(), TIMEOUT)
        while len(got) < n + 1:
            got.append((await bob.next_message())["body"])
        assert got == [f"m{i:02d}" for i in range(n)] + ["new"]
        await asyncio.sleep(0.3)
        assert bob.messages.empty()
        await eventually(lambda: _equals(stored(server, "bob"), 0), "all settled")
        await alice.close()
        await bob.close()


async def _ws_login(ws: Any) -> None:
    await ws.send(OPEN)
    await frame_until(ws, "features")
    token = base64.b64encode(b"\0alice\0pw").decode()
    await ws.send(
        f"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{token}</auth>"
    )
    await frame_until(ws, "success")
    await ws.send(OPEN)
    await frame_until(ws, "features")


async def test_resumption_over_websocket(tmp_path: Path) -> None:
    async with running_hub(tmp_path) as (server, certs):
        bob = Xmpp(f"bob@{DOMAIN}/phone", "pw", certs)
        await bob.login(server.ports["c2s-starttls"])
        uri = f"wss://127.0.0.1:{server.ports['http']}/xmpp-websocket"
        ctx = certs.client_context()
        ws = await connect(uri, subprotocols=[XMPP], ssl=ctx, server_hostname=DOMAIN)
        await _ws_login(ws)
        await ws.send(
            "<iq xmlns='jabber:client' type='set' id='b'>"
            "<bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>web</resource></bind></iq>"
        )
        await frame_until(ws, "iq")
        await ws.send(f"<enable xmlns='{SM}' resume='true'/>")
        previd = (await frame_until(ws, "enabled")).get("id")
        bob.send_chat(f"alice@{DOMAIN}/web", "one")
        assert (await frame_until(ws, "message")).findtext("{jabber:client}body") == "one"
        ws.transport.abort()  # the connection is lost: no <close/>
        await eventually(lambda: len(_hub(server).resumable) == 1, "the session parked")
        bob.send_chat(f"alice@{DOMAIN}/web", "two")
        await bob.ping_server()
        async with connect(uri, subprotocols=[XMPP], ssl=ctx, server_hostname=DOMAIN) as ws2:
            await _ws_login(ws2)
            await ws2.send(f"<resume xmlns='{SM}' previd='{previd}' h='1'/>")
            resumed = await frame_until(ws2, "resumed")
            assert resumed.get("previd") == previd
            resent = await frame_until(ws2, "message")
            assert resent.findtext("{jabber:client}body") == "two"  # "one" was covered by h=1
            await ws2.send(f"<a xmlns='{SM}' h='2'/>")
            await ws2.send(f"<close xmlns='{FRAMING}'/>")
            await frame_until(ws2, "close")
        await bob.close()


async def test_resuming_while_the_old_connection_still_looks_alive(tmp_path: Path) -> None:
    async with running_hub(tmp_path, limits={"sm_request_every": 1000}) as (server, certs):
        alice = sm_client(f"alice@{DOMAIN}/a", certs)
        await alice.login(server.ports["c2s-starttls"])
        old = sm_client(f"bob@{DOMAIN}/b", certs)
        await old.login(server.ports["c2s-starttls"])
        await eventually(lambda: plugin(old).sm_id, "an id")
        alice.send_chat(f"bob@{DOMAIN}", "one")
        assert (await old.next_message())["body"] == "one"
        # The same client on a new connection (the hub has not noticed the old one is dead).
        new = sm_client(f"bob@{DOMAIN}/b", certs)
        plugin(new).sm_id = plugin(old).sm_id
        plugin(new).handled = 0  # "one" never reached it: sent again
        resumed = asyncio.Event()
        new.client.add_event_handler("session_resumed", lambda _: resumed.set())
        new.client.connect("127.0.0.1", server.ports["c2s-starttls"])
        await asyncio.wait_for(resumed.wait(), TIMEOUT)
        assert (await new.next_message())["body"] == "one"
        alice.send_chat(f"bob@{DOMAIN}", "two")
        assert (await new.next_message())["body"] == "two"
        assert old.messages.empty()
        await alice.close()
        await new.close()
        await old.close()
