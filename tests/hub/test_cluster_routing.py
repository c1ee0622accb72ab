"""Routing across the nodes of a cluster, at the boundary where the cluster fails or lies: hubs
in one process sharing one storage and one in-process backplane (each a node), with fakes of
the cluster's failures (a directory or a bus raising :class:`ClusterError`, as Redis's
exhausted pool or a timeout does) and of a stale directory cache. Whatever happens, a message
the sender had acknowledged is delivered or stored, and the sender never sees an internal
error."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import pytest

from interlink.cluster import Cluster, ClusterError, Located, NodeBus, SessionDirectory
from interlink.cluster.base import InboxEntry
from interlink.cluster.local import LocalBackplane, LocalCluster
from interlink.hub.addressing import Addressing, ProviderDirectory
from interlink.hub.cluster import ClusterNode
from interlink.hub.context import HubSettings
from interlink.hub.hub import Hub
from interlink.hub.nodes import DirectorySync
from interlink.hub.session import SessionRegistry
from interlink.interop.operator import OperatorState
from interlink.storage import Storage
from interlink.storage.sqlite import open_sqlite
from interlink.storage.sqlite.offline import SqliteOffline
from interlink.xmpp.jid import JID
from interlink.xmpp.stanza import Message
from tests.hubkit import DOMAIN, Clock, HubKit, no_bearer_tokens, no_user_ids, settle

BOB = f"bob@{DOMAIN}"


def chat(to: str, body: str) -> str:
    return f"<message xmlns='jabber:client' to='{to}' type='chat'><body>{body}</body></message>"


class Faults:
    """What the fake cluster is to fail at (as when Redis's pool has no free connection)."""

    def __init__(self) -> None:
        self.locate = False
        self.send = False
        self.stale: dict[str, list[Located]] = {}  # bare -> the cached answer to give


class FaultyDirectory:
    def __init__(self, inner: SessionDirectory, faults: Faults) -> None:
        self._inner = inner
        self._faults = faults

    async def heartbeat(self) -> None:
        await self._inner.heartbeat()

    async def bind(self, full_jid: str, *, available: bool, priority: int) -> None:
        await self._inner.bind(full_jid, available=available, priority=priority)

    async def unbind(self, full_jid: str) -> None:
        await self._inner.unbind(full_jid)

    async def locate(self, bare_jid: str, *, cached: bool = False) -> list[Located]:
        if self._faults.locate:
            raise ClusterError("Redis: locate failed: ConnectionError: No connection available.")
        if cached and bare_jid in self._faults.stale:
            return list(self._faults.stale[bare_jid])
        return await self._inner.locate(bare_jid)

    def peek(self, bare_jid: str) -> list[Located] | None:
        return self._inner.peek(bare_jid)

    async def live_nodes(self) -> set[str]:
        return await self._inner.live_nodes()

    async def dead_nodes(self) -> set[str]:
        return await self._inner.dead_nodes()

    async def forget(self, node: str) -> int:
        return await self._inner.forget(node)


class FaultyBus:
    def __init__(self, inner: NodeBus, faults: Faults) -> None:
        self._inner = inner
        self._faults = faults
        self.sent: list[tuple[str, bool]] = []  # (node, whether its inbox took it)

    async def send(self, node: str, payload: str) -> bool:
        if self._faults.send:
            raise ClusterError("Redis: send failed: TimeoutError: Timeout reading from socket")
        taken = await self._inner.send(node, payload)
        self.sent.append((node, taken))
        return taken

    async def receive(self, wait: float, limit: int = 100) -> list[InboxEntry]:
        return await self._inner.receive(wait, limit)

    async def done(self, ids: list[str]) -> None:
        await self._inner.done(ids)

    async def reclaim(self, node: str, limit: int = 100) -> list[InboxEntry]:
        return await self._inner.reclaim(node, limit)

    async def reclaimed(self, node: str, ids: list[str]) -> None:
        await self._inner.reclaimed(node, ids)


class FaultyCluster:
    """A node of the in-process cluster that fails as told."""

    shared = True

    def __init__(self, node: LocalCluster, faults: Faults) -> None:
        self._node = node
        self.node_id = node.node_id
        self.directory = FaultyDirectory(node.directory, faults)
        self.bus = FaultyBus(node.bus, faults)
        self.buckets = node.buckets
        self.invalidation = node.invalidation

    async def ping(self) -> None:
        await self._node.ping()

    async def close(self) -> None:
        await self._node.close()


@asynccontextmanager
async def node(
    storage: Storage, cluster: Cluster, clock: Clock
) -> AsyncIterator[tuple[HubKit, DirectorySync]]:
    """A hub on ``storage`` as ``cluster``'s node, its sessions written to the directory."""
    hub: Hub | None = None

    def bound(full_jid: str) -> None:  # as the application does (app.py)
        assert hub is not None
        bare = JID.parse(full_jid).bare
        if hub.ctx.sessions.message_targets(bare):
            hub.router.offline.start_drain(bare)

    sync = DirectorySync(cluster.directory, bound)
    addressing = Addressing((DOMAIN,), ProviderDirectory())
    sessions = SessionRegistry(sync)
    operator = OperatorState(addressing, sessions)
    hub = Hub(
        HubSettings(),
        storage,
        clock,
        addressing=addressing,
        sessions=sessions,
        authenticate_bearer=no_bearer_tokens,
        user_ids=no_user_ids,
        disabled=operator.is_disabled,
        cluster=cluster,
    )
    await hub.start()
    try:
        yield HubKit(hub, clock, operator), sync
    finally:
        await hub.shutdown()
        await sync.close()


async def bodies_of(client: object) -> list[str | None]:
    from tests.hubkit import Client

    assert isinstance(client, Client)
    return [s.body for s in client.stanzas() if isinstance(s, Message)]


async def eventually(check: object, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        assert callable(check)
        if await check():
            return
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.01)


@pytest.mark.parametrize("fault", ["locate", "send"])
async def test_a_message_is_stored_when_the_cluster_fails(fault: str) -> None:
    """The measured bug: Redis's pool had no free connection for the directory lookup; the
    error reached the sender's stream as an internal error and the message was lost. Now the
    message is stored and the sender hears nothing but the usual acknowledgement."""
    plane = LocalBackplane()
    faults = Faults()
    storage = await open_sqlite(":memory:")
    clock = Clock()
    async with AsyncExitStack() as stack:
        a_cluster = FaultyCluster(LocalCluster("a", plane), faults)
        await a_cluster.directory.heartbeat()
        b_cluster = LocalCluster("b", plane)
        await b_cluster.directory.heartbeat()
        a, _ = await stack.enter_async_context(node(storage, a_cluster, clock))
        b, b_sync = await stack.enter_async_context(node(storage, b_cluster, clock))
        await a.account("alice")
        await a.account("bob")
        alice = await a.connect("alice", "laptop")
        bob = await b.connect("bob", "phone")
        await b_sync.flush()
        alice.take()
        bob.take()

        setattr(faults, fault, True)
        await alice.send(chat(f"{BOB}/phone", "while Redis is unwell"))
        await alice.send(chat(BOB, "to the bare JID too"))
        assert alice.take() == []  # no error: the messages were taken
        assert await storage.offline.count(BOB) == 2
        assert await bodies_of(bob) == []

        # the drain notice could not be sent either: they wait for bob's next presence
        setattr(faults, fault, False)
        await b.disconnect(bob)
        bob = await b.connect("bob", "phone")
        await eventually(lambda: _count_is(storage, BOB, 0))
        await settle()
        assert await bodies_of(bob) == ["while Redis is unwell", "to the bare JID too"]
    await storage.close()


async def _count_is(storage: Storage, jid: str, count: int) -> bool:
    return await storage.offline.count(jid) == count


async def test_a_stale_cached_answer_costs_a_detour_not_the_message() -> None:
    """Node a's cache still says bob is on node b; he moved to node c. Node b, which no longer
    holds him, stores the message and asks node c to deliver it."""
    plane = LocalBackplane()
    faults = Faults()
    storage = await open_sqlite(":memory:")
    clock = Clock()
    async with AsyncExitStack() as stack:
        clusters = {"a": FaultyCluster(LocalCluster("a", plane), faults)}
        for name in ("b", "c"):
            clusters[name] = FaultyCluster(LocalCluster(name, plane), Faults())
        kits = {}
        for name, cluster in clusters.items():
            await cluster.directory.heartbeat()
            kits[name] = await stack.enter_async_context(node(storage, cluster, clock))
        a, b, c = kits["a"][0], kits["b"][0], kits["c"][0]
        await a.account("alice")
        await a.account("bob")
        alice = await a.connect("alice", "laptop")
        faults.stale[BOB] = [Located(f"{BOB}/phone", "b", True, 0)]  # what a once looked up
        bob = await c.connect("bob", "phone")
        await kits["c"][1].flush()
        alice.take()
        bob.take()

        await alice.send(chat(BOB, "found you"))
        await alice.send(chat(f"{BOB}/phone", "and you"))
        assert alice.take() == []
        assert clusters["a"].bus.sent == [("b", True), ("b", True)]  # the detour
        await eventually(lambda: _count_is(storage, BOB, 0))

        async def delivered() -> bool:
            got.extend(await bodies_of(bob))
            return len(got) == 2

        got: list[str | None] = []
        await eventually(delivered)
        assert got == ["found you", "and you"]
        assert b.hub.ctx.sessions.message_targets(bob.session.jid.bare) == []
    await storage.close()


async def test_a_dead_node_in_the_cache_is_looked_up_again() -> None:
    """Node a's cache names node b, which has since left the cluster: its inbox refuses, and
    node a looks the account up afresh and sends to node c at once (nothing stored)."""
    plane = LocalBackplane()
    faults = Faults()
    storage = await open_sqlite(":memory:")
    clock = Clock()
    async with AsyncExitStack() as stack:
        a_cluster = FaultyCluster(LocalCluster("a", plane), faults)
        c_cluster = LocalCluster("c", plane)
        for cluster in (a_cluster, c_cluster):
            await cluster.directory.heartbeat()
        a, _ = await stack.enter_async_context(node(storage, a_cluster, clock))
        c, c_sync = await stack.enter_async_context(node(storage, c_cluster, clock))
        await a.account("alice")
        await a.account("bob")
        alice = await a.connect("alice", "laptop")
        bob = await c.connect("bob", "phone")
        await c_sync.flush()
        faults.stale[BOB] = [Located(f"{BOB}/phone", "b", True, 0)]  # b: never alive now
        alice.take()
        bob.take()

        await alice.send(chat(BOB, "hello"))
        assert alice.take() == []
        assert a_cluster.bus.sent == [("b", False), ("c", True)]  # b refused: not appended
        assert await storage.offline.count(BOB) == 0

        got: list[str | None] = []

        async def delivered() -> bool:
            got.extend(await bodies_of(bob))
            return got == ["hello"]

        await eventually(delivered)
    await storage.close()


class FlakyOffline(SqliteOffline):
    """Offline storage that fails its next ``failures`` stores (the database went away)."""

    failures = 0

    async def store(self, *args: Any, **kwargs: Any) -> bool:
        if self.failures:
            self.failures -= 1
            raise OSError("the database does not answer")
        return await super().store(*args, **kwargs)


async def test_an_inbox_entry_the_node_cannot_store_yet_is_tried_again() -> None:
    """Node b takes a message from its inbox for an account that left it, and its database
    fails twice: the entry is tried again, and neither it nor the one after it is lost."""
    plane = LocalBackplane()
    faults = Faults()
    storage = await open_sqlite(":memory:")
    flaky = FlakyOffline(storage.db)
    storage.offline = flaky
    clock = Clock()
    async with AsyncExitStack() as stack:
        a_cluster = FaultyCluster(LocalCluster("a", plane), faults)
        b_cluster = LocalCluster("b", plane)
        for cluster in (a_cluster, b_cluster):
            await cluster.directory.heartbeat()
        a, _ = await stack.enter_async_context(node(storage, a_cluster, clock))
        b, _ = await stack.enter_async_context(node(storage, b_cluster, clock))
        await a.account("alice")
        await a.account("bob")
        alice = await a.connect("alice", "laptop")
        faults.stale[BOB] = [Located(f"{BOB}/phone", "b", True, 0)]  # he has left b
        alice.take()
        flaky.failures = 2
        await alice.send(chat(BOB, "first"))
        await alice.send(chat(BOB, "second"))
        assert alice.take() == []
        await eventually(lambda: _count_is(storage, BOB, 2))
        assert flaky.failures == 0
        assert b.hub.node is not None
        await eventually(lambda: _received(b.hub.node, 2))
        stored = await storage.offline.fetch(BOB, 10)
        assert ["first" in m.stanza for m in stored] == [True, False]
    await storage.close()


async def _received(node: ClusterNode, count: int) -> bool:
    return node.received == count


async def test_an_inbox_entry_that_keeps_failing_is_left_in_the_inbox() -> None:
    """After ``inbox_tries`` failures in a row the entry stays in the inbox (delivered again
    when the node restarts, or by the survivor that reclaims it) and the next one goes on."""
    plane = LocalBackplane()
    faults = Faults()
    storage = await open_sqlite(":memory:")
    flaky = FlakyOffline(storage.db)
    storage.offline = flaky
    clock = Clock()
    async with AsyncExitStack() as stack:
        a_cluster = FaultyCluster(LocalCluster("a", plane), faults)
        b_cluster = LocalCluster("b", plane)
        for cluster in (a_cluster, b_cluster):
            await cluster.directory.heartbeat()
        a, _ = await stack.enter_async_context(node(storage, a_cluster, clock))
        b, _ = await stack.enter_async_context(node(storage, b_cluster, clock))
        assert b.hub.node is not None
        b.hub.node.inbox_tries = 3
        await a.account("alice")
        await a.account("bob")
        alice = await a.connect("alice", "laptop")
        faults.stale[BOB] = [Located(f"{BOB}/phone", "b", True, 0)]
        alice.take()
        flaky.failures = 3
        await alice.send(chat(BOB, "first"))
        await alice.send(chat(BOB, "second"))
        await eventually(lambda: _count_is(storage, BOB, 1))
        stored = await storage.offline.fetch(BOB, 10)
        assert ["second" in m.stanza for m in stored] == [True]
        assert ["first" in e.payload for e in plane.inboxes["b"]] == [True]  # still there
        assert b.hub.node.received == 1
    await storage.close()


class FlakyBindDirectory(FaultyDirectory):
    """Fails its next ``failures`` binds (Redis had no free connection)."""

    failures = 0

    async def bind(self, full_jid: str, *, available: bool, priority: int) -> None:
        if self.failures:
            self.failures -= 1
            raise ClusterError("Redis: bind failed: ConnectionError: No connection available.")
        await super().bind(full_jid, available=available, priority=priority)


async def test_a_session_the_directory_failed_to_record_is_recorded_on_a_retry() -> None:
    plane = LocalBackplane()
    local = LocalCluster("b", plane)
    await local.directory.heartbeat()
    directory = FlakyBindDirectory(local.directory, Faults())
    directory.failures = 2
    sync = DirectorySync(directory, retries=(0.01, 0.01))
    storage = await open_sqlite(":memory:")
    clock = Clock()
    addressing = Addressing((DOMAIN,), ProviderDirectory())
    sessions = SessionRegistry(sync)
    hub = Hub(
        HubSettings(),
        storage,
        clock,
        addressing=addressing,
        sessions=sessions,
        authenticate_bearer=no_bearer_tokens,
        user_ids=no_user_ids,
    )
    kit = HubKit(hub, clock, OperatorState(addressing, sessions))
    try:
        await kit.account("bob")
        await kit.connect("bob", "phone")
        await sync.flush()
        assert [(s.node, s.available) for s in await local.directory.locate(BOB)] == [("b", True)]
        # more failures than tries, for both writes of a login (bound, then available): they
        # are dropped (and logged), the next change of the session writes it again
        directory.failures = 6
        await kit.connect("bob", "tablet")
        await sync.flush()
        assert [s.full_jid for s in await local.directory.locate(BOB)] == [f"{BOB}/phone"]
    finally:
        await hub.shutdown()
        await sync.close()
        await storage.close()
