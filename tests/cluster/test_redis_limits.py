"""The Redis cluster at its limits, on a real ``redis-server``: a pool with no free connection
makes calls wait (bounded), then fail as :class:`ClusterError`; so do a Redis that stopped and
one that answers too slowly (never redis-py's own exceptions, which reached the streams as
internal errors and lost messages); sends to one node made together go in few round trips; a
node's cached directory answers follow the other nodes' writes."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from redis.asyncio import Redis

from interlink.cluster import ClusterError
from interlink.cluster.redis import RedisCluster, RedisLimits, _Link, open_redis_cluster
from tests.servers import RedisServer, redis_available, start_redis

pytestmark = pytest.mark.skipif(
    not redis_available(), reason="redis-server is not installed (scripts/test installs it)"
)
BOB = "bob@hub.test"
Open = Callable[..., Awaitable[RedisCluster]]


@pytest.fixture
async def nodes(redis: RedisServer) -> AsyncIterator[Open]:
    prefix = f"t{uuid.uuid4().hex[:10]}:"
    opened: list[RedisCluster] = []

    async def make(node_id: str, url: str = redis.url, **limits: Any) -> RedisCluster:
        node = await open_redis_cluster(
            url,
            node_id,
            prefix=prefix,
            node_ttl=5.0,
            limits=RedisLimits(**limits),
        )
        opened.append(node)
        await asyncio.wait_for(node.invalidation.subscribed(), 5)
        return node

    try:
        yield make
    finally:
        for node in opened:
            await node.close()


async def test_many_sends_at_once_wait_for_the_few_connections_and_go_together(
    nodes: Open,
) -> None:
    a = await nodes("a", max_connections=4, pool_timeout=5.0, send_batch=64)
    b = await nodes("b")
    sent = await asyncio.gather(*(a.bus.send("b", f"m{i}") for i in range(500)))
    located = await asyncio.gather(*(a.directory.locate(f"u{i}@hub.test") for i in range(200)))
    assert all(sent)
    assert located == [[]] * 200
    # one script call per batch of at most 64, not one per message
    assert a.counters["sends"] == 500
    assert 8 <= a.counters["send_batches"] <= 20
    got: list[str] = []
    while len(got) < 500:
        entries = await b.bus.receive(1.0, limit=200)
        assert entries
        got += [e.payload for e in entries]
    assert got == [f"m{i}" for i in range(500)]  # in the order they were sent


async def test_no_free_connection_within_the_wait_is_a_cluster_error(nodes: Open) -> None:
    a = await nodes("a", max_connections=6, pool_timeout=0.2)  # the smallest pool allowed
    await nodes("b")
    # the notice subscription holds one connection; five blocking reads hold the rest
    holders = [a.redis.blpop([uuid.uuid4().hex], timeout=1) for _ in range(5)]
    held = asyncio.gather(*holders)
    await asyncio.sleep(0.1)
    with pytest.raises(ClusterError, match="No connection available"):
        await a.directory.locate(BOB)
    with pytest.raises(ClusterError):
        await a.bus.send("b", "m")
    assert a.counters["send_failures"] == 1
    await held
    assert await a.bus.send("b", "m")  # connections free again
    assert await a.directory.locate(BOB) == []


async def test_the_smallest_pool_keeps_room_for_the_lease_with_every_link_taken(
    nodes: Open,
) -> None:
    """At the smallest pool allowed (cluster.redis_max_connections = 6), with the notice
    subscription and both inbox links holding theirs, and two other calls waiting on Redis,
    the lease is still renewed (with one connection fewer it would wait and fail)."""
    a = await nodes("a", max_connections=6, pool_timeout=0.3)
    await nodes("b")
    assert await a.bus.send("b", "m")  # the sends' link takes its connection
    assert await a.bus.receive(0.05) == []  # and the reads' link
    holders = [a.redis.blpop([uuid.uuid4().hex], timeout=1) for _ in range(2)]
    held = asyncio.gather(*holders)
    await asyncio.sleep(0.1)
    await a.directory.heartbeat()
    await held


async def test_a_redis_too_slow_to_answer_is_a_cluster_error(
    nodes: Open, redis: RedisServer
) -> None:
    a = await nodes("a", command_timeout=0.3)
    await nodes("b")
    pauser = Redis.from_url(redis.url)
    await pauser.client_pause(700, all=True)  # Redis answers no one
    try:
        with pytest.raises(ClusterError, match="Timeout"):
            await a.bus.send("b", "m")
        with pytest.raises(ClusterError, match="Timeout"):
            await a.directory.locate(BOB)
    finally:
        await pauser.aclose()
        await asyncio.sleep(0.5)  # the pause ends
    assert await a.bus.send("b", "m")


@pytest.mark.skipif(
    bool(os.environ.get("INTERLINK_TEST_REDIS_URL")),
    reason="stops its own redis-server; an external one cannot be stopped",
)
async def test_a_redis_that_stopped_is_a_cluster_error(nodes: Open) -> None:
    server = start_redis()
    try:
        a = await nodes("a", server.url, command_timeout=1.0)
        await a.bus.send("a", "m")
    finally:
        server.stop()
    for call in (
        lambda: a.bus.send("a", "m"),
        lambda: a.directory.locate(BOB),
        lambda: a.directory.bind(f"{BOB}/x", available=True, priority=0),
        lambda: a.directory.unbind(f"{BOB}/x"),
        lambda: a.bus.receive(0.1),
        lambda: a.directory.heartbeat(),
        lambda: a.buckets.take("k", count=1, period=1, now=0),
        lambda: a.ping(),
    ):
        with pytest.raises(ClusterError):
            await call()


async def test_cached_answers_follow_the_other_nodes_writes(nodes: Open) -> None:
    a, b = await nodes("a"), await nodes("b")
    assert await a.directory.locate(BOB, cached=True) == []
    hits = a.cache.hits
    assert await a.directory.locate(BOB, cached=True) == []  # from the cache
    assert a.cache.hits == hits + 1

    async def a_sees(nodes_: list[str]) -> None:
        deadline = time.monotonic() + 5
        while sorted(s.node for s in await a.directory.locate(BOB, cached=True)) != nodes_:
            assert time.monotonic() < deadline, "the notice did not arrive"
            await asyncio.sleep(0.01)

    await b.directory.bind(f"{BOB}/phone", available=True, priority=0)
    await a_sees(["b"])
    await b.directory.unbind(f"{BOB}/phone")
    await a_sees([])
    await a.directory.bind(f"{BOB}/laptop", available=True, priority=0)
    # a's own write: at once, without waiting for its notice
    assert [s.node for s in await a.directory.locate(BOB, cached=True)] == ["a"]
    await b.directory.bind(f"{BOB}/phone", available=True, priority=0)
    await a_sees(["a", "b"])
    await b.close()  # b leaves; a dead node's sessions are forgotten by a survivor
    assert [s.node for s in await a.directory.locate(BOB)] == ["a"]  # fresh: leases checked
    await asyncio.sleep(0)
    assert await a.directory.forget("b") == 1
    await a_sees(["a"])


async def test_handled_entries_leave_with_the_next_read_or_at_close(nodes: Open) -> None:
    a, b = await nodes("a"), await nodes("b")
    for i in range(3):
        assert await a.bus.send("b", f"m{i}")
    first = await b.bus.receive(1.0, limit=1)
    await b.bus.done([e.id for e in first])
    second = await b.bus.receive(1.0, limit=1)  # m0 leaves in this round trip
    assert [e.payload for e in first + second] == ["m0", "m1"]
    assert await a.redis.xlen(a.key("inbox", "b")) == 2
    await b.bus.done([e.id for e in second])
    await b.close()  # m1 leaves as the node closes
    assert await a.redis.xlen(a.key("inbox", "b")) == 1
    again = await nodes("b")
    assert [e.payload for e in await again.bus.receive(1.0)] == ["m2"]


async def test_sends_to_several_nodes_share_a_round_trip_and_survive_lost_scripts(
    nodes: Open,
) -> None:
    a, b, c = await nodes("a"), await nodes("b"), await nodes("c")
    assert await a.bus.send("b", "warm")  # the send connection is open
    await a.redis.script_flush()  # as after a Redis restart: the scripts are gone
    commands = (await a.redis.info("commandstats"))["cmdstat_evalsha"]["calls"]
    sent = await asyncio.gather(
        *(a.bus.send(node, f"{node}{i}") for i in range(5) for node in ("b", "c", "gone"))
    )
    # b and c took theirs, the node with no lease refused; every script call after the reload
    # went in the same round trip as the refused ones (one call per node, not per message)
    assert sent == [True, True, False] * 5
    calls = (await a.redis.info("commandstats"))["cmdstat_evalsha"]["calls"] - commands
    assert calls == 6  # 3 refused (no script), 3 again
    for node, reader in (("b", b), ("c", c)):
        got = [e.payload for e in await reader.bus.receive(1.0)]
        assert got == (["warm"] if node == "b" else []) + [f"{node}{i}" for i in range(5)]


class HalfAnswering:
    """A connection whose first reply comes and whose second times out."""

    def __init__(self) -> None:
        self.replies: list[Any] = ["1", TimeoutError("Timeout reading from socket")]
        self.disconnected = False

    def pack_commands(self, commands: list[tuple[Any, ...]]) -> list[bytes]:
        return [b"packed"]

    async def send_packed_command(self, packed: list[bytes]) -> None:
        return None

    async def read_response(self) -> Any:
        reply = self.replies.pop(0)
        if isinstance(reply, Exception):
            raise reply
        return reply

    async def disconnect(self, nowait: bool = False) -> None:
        self.disconnected = True


async def test_the_replies_read_before_a_failed_read_stand(nodes: Open) -> None:
    """Sends for several nodes share a round trip: one reply timing out makes only it and those
    after it unknown; the node whose append was answered is told so (no offline copy of an
    entry its inbox has: no duplicate)."""
    a = await nodes("a")
    link = _Link(a)
    conn = HalfAnswering()
    link._conn = conn
    replies = await link.call([("EVALSHA", "x"), ("EVALSHA", "y"), ("EVALSHA", "z")], "send")
    assert replies[0] == "1"
    assert [type(r) for r in replies[1:]] == [ClusterError, ClusterError]
    assert "Timeout" in str(replies[1])
    assert conn.disconnected
