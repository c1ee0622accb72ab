"""Two hub nodes on one PostgreSQL and one Redis (started by the tests, on loopback), real
clients (slixmpp) on each: what is not a message for an account also crosses nodes --
presence broadcasts and probes between contacts, carbons (XEP-0280) to a second resource of the
same account, PEP notifications (XEP-0163), and a room (XEP-0045) whose occupants entered
through different nodes."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any
from xml.etree.ElementTree import Element

import pytest
import slixmpp
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath

from interlink.hub.nodes import home_of
from interlink.storage.roster import RosterItem, Subscription
from interlink.xmpp.xml import parse_fragment
from tests.integration.kit import DOMAIN, TIMEOUT, Xmpp, running_hub
from tests.integration.test_cluster import (  # the fixture, shared with that module
    cluster_sections,  # noqa: F401
    wait_for,
)
from tests.servers import postgres_available, redis_available

pytestmark = pytest.mark.skipif(
    not (postgres_available() and redis_available()),
    reason="PostgreSQL and redis-server are not installed (scripts/test installs them)",
)
ROOM = f"team@groups.{DOMAIN}"
MUC = "http://jabber.org/protocol/muc"
PUBSUB = "http://jabber.org/protocol/pubsub"
EVENT = "http://jabber.org/protocol/pubsub#event"


async def next_where(queue: asyncio.Queue[Any], match: Callable[[Any], bool]) -> Any:
    """The next stanza in ``queue`` that ``match``es (others are skipped)."""
    deadline = asyncio.get_running_loop().time() + TIMEOUT
    while True:
        left = deadline - asyncio.get_running_loop().time()
        assert left > 0, "timed out"
        stanza = await asyncio.wait_for(queue.get(), left)
        if match(stanza):
            return stanza


def presence_from(jid: str, kind: str = "available") -> Callable[[Any], bool]:
    return lambda p: str(p["from"]) == jid and p["type"] == kind


async def test_presence_carbons_pep_and_a_room_across_nodes(
    tmp_path: Path,
    cluster_sections: dict[str, Any],  # noqa: F811
) -> None:
    def node(name: str) -> dict[str, Any]:
        return {**cluster_sections, "cluster": {**cluster_sections["cluster"], "node_id": name}}

    async with (
        running_hub(tmp_path / "a", accounts=("alice", "bob"), **node("a")) as (one, certs_one),
        running_hub(tmp_path / "b", accounts=(), **node("b")) as (two, certs_two),
    ):
        assert one.storage is not None
        assert one.cluster is not None
        cluster = one.cluster
        roster = one.storage.roster
        await roster.put(
            f"alice@{DOMAIN}", RosterItem(f"bob@{DOMAIN}", subscription=Subscription.BOTH)
        )
        await roster.put(
            f"bob@{DOMAIN}", RosterItem(f"alice@{DOMAIN}", subscription=Subscription.BOTH)
        )
        alice = Xmpp(f"alice@{DOMAIN}/laptop", "pw", certs_one)
        bob = Xmpp(f"bob@{DOMAIN}/phone", "pw", certs_two)
        tablet = Xmpp(f"alice@{DOMAIN}/tablet", "pw", certs_two)
        received: asyncio.Queue[Any] = asyncio.Queue()
        # slixmpp's "message" event needs a body
        events: asyncio.Queue[Any] = asyncio.Queue()
        invitations: asyncio.Queue[Any] = asyncio.Queue()
        for name, path, queue in (
            ("pep", f"{{{EVENT}}}event", events),
            ("invite", f"{{{MUC}#user}}x", invitations),
        ):
            bob.client.register_handler(
                Callback(name, MatchXPath(f"{{jabber:client}}message/{path}"), queue.put_nowait)
            )
        sent: asyncio.Queue[Any] = asyncio.Queue()
        tablet.client.register_plugin("xep_0280")
        tablet.client.add_event_handler("carbon_received", received.put_nowait)
        tablet.client.add_event_handler("carbon_sent", sent.put_nowait)
        clients = (alice, bob, tablet)
        try:
            await alice.login(one.ports["c2s-starttls"])

            async def on(bare: str, count: int) -> bool:
                found = await cluster.directory.locate(bare)
                return len([s for s in found if s.available]) == count

            await wait_for(lambda: on(f"alice@{DOMAIN}", 1))
            # presence: bob comes online on node b; alice (node a) sees him, and he sees her
            # (his node asked hers: the probe is answered where alice's session is)
            await bob.login(two.ports["c2s-starttls"])
            await next_where(alice.presences, presence_from(f"bob@{DOMAIN}/phone"))
            await next_where(bob.presences, presence_from(f"alice@{DOMAIN}/laptop"))
            # a status change crosses too
            bob.client.send_presence(pstatus="in a meeting")
            got = await next_where(alice.presences, presence_from(f"bob@{DOMAIN}/phone"))
            assert got["status"] == "in a meeting"

            # carbons: alice's tablet on node b enables them; bob writes to her laptop (on a)
            await tablet.login(two.ports["c2s-starttls"])
            await wait_for(lambda: on(f"alice@{DOMAIN}", 2))
            carbons: Any = tablet.client.plugin["xep_0280"]
            await carbons.enable(timeout=TIMEOUT)
            bob.send_chat(f"alice@{DOMAIN}/laptop", "for the laptop")
            assert (await alice.next_message())["body"] == "for the laptop"
            copy = await asyncio.wait_for(received.get(), TIMEOUT)
            assert copy["carbon_received"]["body"] == "for the laptop"
            alice.send_chat(f"bob@{DOMAIN}", "from the laptop")
            assert (await bob.next_message())["body"] == "from the laptop"
            copy = await asyncio.wait_for(sent.get(), TIMEOUT)
            assert copy["carbon_sent"]["body"] == "from the laptop"

            # PEP: alice (node a) publishes; bob (node b) subscribes to the node, and gets
            # the next publication
            for item in ("first", "second"):
                pub: Any = alice.client.make_iq_set()
                pub.append(
                    _element(
                        f"<pubsub xmlns='{PUBSUB}'><publish node='urn:example:mood'>"
                        f"<item id='{item}'><mood xmlns='urn:example:mood'>{item}</mood></item>"
                        "</publish></pubsub>"
                    )
                )
                await pub.send(timeout=TIMEOUT)
                if item == "first":
                    sub: Any = bob.client.make_iq_set(ito=slixmpp.JID(f"alice@{DOMAIN}"))
                    sub.append(
                        _element(
                            f"<pubsub xmlns='{PUBSUB}'><subscribe node='urn:example:mood' "
                            f"jid='bob@{DOMAIN}/phone'/></pubsub>"
                        )
                    )
                    await sub.send(timeout=TIMEOUT)
            event = await asyncio.wait_for(events.get(), TIMEOUT)
            assert str(event["from"]) == f"alice@{DOMAIN}"
            item = event.xml.find(f"{{{EVENT}}}event/{{{EVENT}}}items/{{{EVENT}}}item")
            assert item is not None
            assert item.get("id") == "second"

            # a room: alice creates it through node a, invites bob, who enters through node b;
            # the room lives on node b, so what alice sends it and gets from it crosses nodes
            assert home_of(ROOM, {"a", "b"}) == "b"
            alice.client.send_raw(f"<presence to='{ROOM}/alice'><x xmlns='{MUC}'/></presence>")
            await next_where(alice.presences, presence_from(f"{ROOM}/alice"))
            owner: Any = alice.client.make_iq_set(ito=slixmpp.JID(ROOM))
            owner.append(
                _element(
                    f"<query xmlns='{MUC}#owner'><x xmlns='jabber:x:data' type='submit'/></query>"
                )
            )
            await owner.send(timeout=TIMEOUT)
            alice.client.send_raw(
                f"<message to='{ROOM}'><x xmlns='{MUC}#user'><invite to='bob@{DOMAIN}'/></x></message>"
            )
            invitation = await asyncio.wait_for(invitations.get(), TIMEOUT)
            assert str(invitation["from"]) == ROOM
            bob.client.send_raw(f"<presence to='{ROOM}/bob'><x xmlns='{MUC}'/></presence>")
            await next_where(bob.presences, presence_from(f"{ROOM}/alice"))
            await next_where(bob.presences, presence_from(f"{ROOM}/bob"))
            await next_where(alice.presences, presence_from(f"{ROOM}/bob"))
            alice.client.send_message(mto=slixmpp.JID(ROOM), mbody="hello room", mtype="groupchat")
            said = await next_where(bob.messages, lambda m: m["type"] == "groupchat")
            assert (str(said["from"]), said["body"]) == (f"{ROOM}/alice", "hello room")
            bob.client.send_message(mto=slixmpp.JID(ROOM), mbody="hello alice", mtype="groupchat")
            said = await next_where(
                alice.messages, lambda m: m["type"] == "groupchat" and m["body"] == "hello alice"
            )
            assert str(said["from"]) == f"{ROOM}/bob"
            # bob leaves (his node ends the session): the room, wherever it is, lets him go
            await bob.close()
            await next_where(alice.presences, presence_from(f"{ROOM}/bob", "unavailable"))
            await next_where(alice.presences, presence_from(f"bob@{DOMAIN}/phone", "unavailable"))
        finally:
            for client in clients:
                await client.close()


def _element(xml: str) -> Element:
    return parse_fragment(xml)


async def test_a_push_is_sent_once_through_the_node_of_the_app_server(
    tmp_path: Path,
    cluster_sections: dict[str, Any],  # noqa: F811
) -> None:
    """The app server (XEP-0114) is connected to node b only; messages stored by node a and by
    node b each yield exactly one push, both through b's connection."""
    from tests.integration.test_app_push import (
        APP,
        COMPONENTS,
        NET,
        AppServer,
        enable,
        iq_set,
        message_count,
        offline_count,
    )

    def node(name: str) -> dict[str, Any]:
        return {
            **cluster_sections,
            "cluster": {**cluster_sections["cluster"], "node_id": name},
            "components": COMPONENTS,
            "net": NET,
        }

    async with (
        running_hub(tmp_path / "a", accounts=("alice", "bob"), **node("a")) as (one, certs_one),
        running_hub(tmp_path / "b", accounts=(), **node("b")) as (two, certs_two),
    ):
        assert one.cluster is not None
        cluster = one.cluster
        app = AppServer()
        await app.connect(two.ports["component"])
        alice = Xmpp(f"alice@{DOMAIN}/laptop", "pw", certs_one)
        tablet = Xmpp(f"alice@{DOMAIN}/tablet", "pw", certs_two)
        try:

            async def app_on_b() -> bool:
                return [w.node for w in await cluster.directory.locate(APP)] == ["b"]

            await wait_for(app_on_b)
            bob = Xmpp(f"bob@{DOMAIN}/phone", "pw", certs_one)
            await bob.login(one.ports["c2s-starttls"])
            await iq_set(bob, enable("bob-node"))  # registered through node a
            await bob.close()
            await alice.login(one.ports["c2s-starttls"])
            await tablet.login(two.ports["c2s-starttls"])
            alice.send_chat(f"bob@{DOMAIN}", "stored by a")
            await alice.ping_server()
            assert await offline_count(one, "bob") == 1
            first = await asyncio.wait_for(app.pushes.get(), TIMEOUT)
            assert message_count(first) == "1"
            tablet.send_chat(f"bob@{DOMAIN}", "stored by b")
            await tablet.ping_server()
            assert await offline_count(one, "bob") == 2
            second = await asyncio.wait_for(app.pushes.get(), TIMEOUT)
            assert message_count(second) == "1"
            await asyncio.sleep(0.5)
            assert app.pushes.empty()  # once per message, not once per node
            assert one.app_push is not None
            assert two.app_push is not None
            assert (one.app_push.stats.sent, two.app_push.stats.sent) == (1, 1)
        finally:
            for client in (alice, tablet):
                await client.close()
            await app.close()


async def test_media_through_any_node_and_metrics_of_every_node(
    tmp_path: Path,
    cluster_sections: dict[str, Any],  # noqa: F811
) -> None:
    """XEP-0363 with ``media.dir`` shared by both nodes: the slot (node a) and its record are in
    PostgreSQL, the file in the shared directory, so node b serves it. And a scrape of either
    node shows both nodes' series, told apart by a ``node`` label."""
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    from interlink.xmpp.ext import http_upload

    shared = tmp_path / "media"

    def node(name: str) -> dict[str, Any]:
        return {
            **cluster_sections,
            "cluster": {**cluster_sections["cluster"], "node_id": name},
            "media": {"dir": str(shared)},
        }

    async with (
        running_hub(tmp_path / "a", accounts=("alice",), **node("a")) as (one, certs_one),
        running_hub(tmp_path / "b", accounts=(), **node("b")) as (two, certs_two),
    ):
        alice = Xmpp(f"alice@{DOMAIN}/laptop", "pw", certs_one)
        await alice.login(one.ports["c2s-starttls"])
        try:
            data = b"ciphertext " * 1000
            ask: Any = alice.client.make_iq_get(ito=slixmpp.JID(DOMAIN))
            ask.append(
                http_upload.request_element(
                    http_upload.SlotRequest("photo.bin", len(data), "application/octet-stream")
                )
            )
            answer = await ask.send(timeout=TIMEOUT)
            slot = http_upload.parse_slot(answer.xml)
            assert slot is not None
            async with httpx.AsyncClient(verify=certs_one.client_context(), timeout=10) as http:
                put = await http.put(
                    slot.put_url,
                    content=data,
                    headers={**slot.put_headers, "Content-Type": "application/octet-stream"},
                )
                assert put.status_code == 201, put.text
            path = httpx.URL(slot.get_url).raw_path.decode()
            b_url = f"https://127.0.0.1:{two.ports['http']}{path}"
            assert str(two.ports["http"]) not in slot.get_url  # the slot named node a
            async with httpx.AsyncClient(verify=certs_two.client_context(), timeout=10) as http:
                got = await http.get(b_url)
            assert got.status_code == 200
            assert got.content == data
            assert list((shared / "files").iterdir())  # in the shared directory

            # /metrics on either node: every node's series, each with its node label
            for server in (one, two):
                assert server.metrics is not None
                exposed = (await server.metrics.render()).decode()
                assert 'interlink_sessions{node="a"} 1.0' in exposed
                assert 'interlink_sessions{node="b"} 0.0' in exposed
                assert exposed.count("# TYPE interlink_sessions gauge") == 1
                assert list(text_string_to_metric_families(exposed))  # well-formed
        finally:
            await alice.close()
