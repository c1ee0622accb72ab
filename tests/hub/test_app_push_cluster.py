"""XEP-0357 push in a cluster (two nodes on an in-process backplane, one storage): the node that
stored a message sends its notification once, through the node its app server is connected to
(the directory says which); the app server's answer comes back to it (an error still disables
the registration); with no node holding the app server the push fails, said so in the stats."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from interlink.cluster.local import LocalBackplane, LocalCluster
from interlink.hub.app_push import AppServerPush, ClusterAppServers
from interlink.hub.nodes import NodeCalls
from interlink.storage.sqlite.engine import SqliteStorage
from interlink.xmpp.jid import JID
from interlink.xmpp.stanza import Message, MessageType
from tests.hub.test_app_push import APP, BOB, FakeLink, answered, enable_iq, service, spawn
from tests.hub.test_app_push import storage as storage


class Components(FakeLink):
    """The components connected to one node (``connected``: whether the app server is)."""

    def __init__(self, connected: bool) -> None:
        super().__init__()
        self.up = connected

    def connected(self, domain: str) -> bool:
        return self.up and domain == APP


class Node:
    def __init__(self, name: str, plane: LocalBackplane, storage: SqliteStorage, up: bool):
        self.cluster = LocalCluster(name, plane)
        self.components = Components(up)
        calls = NodeCalls(self.cluster, spawn)
        self.link = ClusterAppServers(self.components, self.cluster, calls, spawn)
        self.push: AppServerPush = service(storage, self.link)  # type: ignore[arg-type]
        # what ClusterNode hands the requests of these kinds to
        self.handlers = {
            "component": calls.serve("component", self.link.answer),
            "reply": calls.replied,
        }
        self.task: asyncio.Task[None] | None = None

    async def inbox(self) -> None:
        """This node's inbox loop (ClusterNode's, for these kinds)."""
        while True:
            for entry in await self.cluster.bus.receive(1.0):
                data: dict[str, Any] = json.loads(entry.payload)
                for kind, body in data.items():
                    await self.handlers[kind](body)
                await self.cluster.bus.done([entry.id])


@pytest.fixture
async def nodes(storage: SqliteStorage) -> AsyncIterator[tuple[Node, Node]]:
    plane = LocalBackplane()
    a, b = Node("a", plane, storage, up=False), Node("b", plane, storage, up=True)
    for node in (a, b):
        await node.cluster.directory.heartbeat()
        node.task = asyncio.get_running_loop().create_task(node.inbox())
    b.link.changed(APP, True)  # the app server connects to node b
    await asyncio.sleep(0.01)
    yield a, b
    for node in (a, b):
        assert node.task is not None
        node.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await node.task


def stored() -> Message:
    return Message(BOB.bare, JID.parse("alice@hub.test/a"), "m", None, (), MessageType.CHAT)


async def until_idle(*pushes: AppServerPush) -> None:
    for svc in pushes:
        await asyncio.wait_for(svc.close(), 5)


async def test_a_push_goes_once_through_the_node_of_the_app_server(
    nodes: tuple[Node, Node],
) -> None:
    a, b = nodes
    assert (await answered(a.push, enable_iq("n1"))).get("type") == "result"
    a.push.message_stored(BOB, stored())  # node a stored the message
    await until_idle(a.push, b.push)
    assert len(b.components.requests) == 1  # sent once, by b's connection
    assert a.components.requests == []
    assert (a.push.stats.sent, a.push.stats.failed) == (1, 0)  # b's answer came back to a
    # an error answer, relayed, disables the registration on the node that asked
    b.components.answer = "cancel"
    a.push.message_stored(BOB, stored())
    await until_idle(a.push)
    assert a.push.stats.disabled == 1
    assert await a.push.notify(BOB.bare) == 0  # nothing registered any more
    assert len(b.components.requests) == 2


async def test_a_connected_app_server_is_used_here_and_a_missing_one_fails(
    nodes: tuple[Node, Node],
) -> None:
    a, b = nodes
    await answered(b.push, enable_iq("n1"))
    assert await b.push.notify(BOB.bare) == 1  # b holds it: straight out, no inbox
    assert len(b.components.requests) == 1
    b.components.up = False
    b.link.changed(APP, False)  # it left: nobody holds it
    await asyncio.sleep(0.01)
    assert await a.push.notify(BOB.bare) == 0
    assert a.push.stats.failed == 1
    assert len(b.components.requests) == 1
