"""The cluster contract, on every implementation: the session directory with expiry on node
death, node inboxes that never drop an entry (handled by their node, or reclaimed by a survivor),
shared token buckets, and invalidation notices to every node."""

from __future__ import annotations

import asyncio

import pytest

from interlink.cluster import NodeFencedError
from tests.cluster.kit import TTL, MakeNode

T0 = 1_800_000_000.0


async def test_a_session_is_located_on_its_node_until_unbound(nodes: MakeNode) -> None:
    a, b = await nodes("a"), await nodes("b")
    await a.directory.bind("alice@hub.test/laptop", available=True, priority=5)
    await b.directory.bind("alice@hub.test/phone", available=False, priority=0)
    found = sorted(await b.directory.locate("alice@hub.test"), key=lambda s: s.full_jid)
    assert [(s.full_jid, s.node, s.available, s.priority) for s in found] == [
        ("alice@hub.test/laptop", "a", True, 5),
        ("alice@hub.test/phone", "b", False, 0),
    ]
    await b.directory.unbind("alice@hub.test/laptop")  # not b's: nothing happens
    assert len(await a.directory.locate("alice@hub.test")) == 2
    await a.directory.unbind("alice@hub.test/laptop")
    assert [s.full_jid for s in await a.directory.locate("alice@hub.test")] == [
        "alice@hub.test/phone"
    ]
    assert await a.directory.locate("nobody@hub.test") == []


async def test_a_rebind_on_another_node_moves_the_session(nodes: MakeNode) -> None:
    a, b = await nodes("a"), await nodes("b")
    await a.directory.bind("alice@hub.test/x", available=True, priority=0)
    await b.directory.bind("alice@hub.test/x", available=True, priority=1)
    await a.directory.unbind("alice@hub.test/x")  # the old node's late goodbye
    assert [(s.node, s.priority) for s in await a.directory.locate("alice@hub.test")] == [("b", 1)]


async def test_a_dead_nodes_sessions_vanish_and_can_be_forgotten(nodes: MakeNode) -> None:
    a, b = await nodes("a"), await nodes("b")
    await a.directory.bind("alice@hub.test/x", available=True, priority=0)
    await b.directory.bind("bob@hub.test/y", available=True, priority=0)
    assert await b.directory.live_nodes() == {"a", "b"}
    for _ in range(4):  # b keeps its lease, a does not (a was SIGKILLed)
        await asyncio.sleep(TTL / 3)
        await b.directory.heartbeat()
    assert await b.directory.locate("alice@hub.test") == []
    assert await b.directory.dead_nodes() == {"a"}
    assert await b.directory.live_nodes() == {"b"}
    assert await b.directory.forget("a") == 1
    assert await b.directory.dead_nodes() == set()
    assert len(await b.directory.locate("bob@hub.test")) == 1


async def test_a_node_whose_lease_ran_out_is_fenced(nodes: MakeNode) -> None:
    a = await nodes("a")
    await a.directory.heartbeat()
    await asyncio.sleep(TTL * 1.5)
    with pytest.raises(NodeFencedError):
        await a.directory.heartbeat()
    await a.directory.heartbeat()  # it ended its sessions; it rejoins with a new lease
    assert "a" in await a.directory.live_nodes()
    await a.directory.heartbeat()  # and keeps it


async def test_an_inbox_delivers_in_order_each_entry_once(nodes: MakeNode) -> None:
    a, b = await nodes("a"), await nodes("b")
    for i in range(5):
        assert await a.bus.send("b", f"m{i}")
    got = await b.bus.receive(1.0)
    assert [e.payload for e in got] == [f"m{i}" for i in range(5)]
    assert await b.bus.receive(0.05) == []  # not again
    await b.bus.done([e.id for e in got])
    waiting = asyncio.create_task(b.bus.receive(2.0))
    await asyncio.sleep(0.05)
    assert await a.bus.send("b", "later")
    assert [e.payload for e in await waiting] == ["later"]


async def test_nothing_is_sent_to_a_node_that_is_not_alive(nodes: MakeNode) -> None:
    a = await nodes("a")
    assert not await a.bus.send("never-started", "m")
    b = await nodes("b")
    await b.close()  # left the cluster
    assert not await a.bus.send("b", "m")


async def test_a_dead_nodes_inbox_is_reclaimed_by_one_survivor(nodes: MakeNode) -> None:
    a, b, c = await nodes("a"), await nodes("b"), await nodes("c")
    for i in range(3):
        assert await a.bus.send("b", f"m{i}")
    received = await b.bus.receive(1.0, limit=1)  # b took one, then died before handling it
    assert [e.payload for e in received] == ["m0"]
    assert await a.bus.reclaim("b") == []  # b is still alive
    for _ in range(4):
        await asyncio.sleep(TTL / 3)
        await a.directory.heartbeat()
        await c.directory.heartbeat()
    claimed = await a.bus.reclaim("b")
    assert [e.payload for e in claimed] == ["m0", "m1", "m2"]  # nothing dropped, in order
    assert await c.bus.reclaim("b") == []  # one survivor at a time
    await a.bus.reclaimed("b", [e.id for e in claimed])
    assert await a.bus.reclaim("b") == []
    await a.directory.forget("b")
    assert "b" not in await a.directory.dead_nodes()


async def test_a_dead_node_that_emptied_its_own_inbox_is_forgotten_for_good(
    nodes: MakeNode,
) -> None:
    a, b = await nodes("a"), await nodes("b")
    assert await a.bus.send("b", "m0")
    got = await b.bus.receive(1.0)
    await b.bus.done([e.id for e in got])
    assert await b.bus.receive(0.05) == []  # removed with this read: the inbox is empty
    for _ in range(4):  # then b stopped renewing its lease
        await asyncio.sleep(TTL / 3)
        await a.directory.heartbeat()
    assert await a.directory.dead_nodes() == {"b"}
    assert await a.bus.reclaim("b") == []  # nothing to take
    await a.directory.forget("b")
    assert await a.directory.dead_nodes() == set()  # not reaped again at every renewal


async def test_a_node_restarting_under_its_id_gets_what_it_left_undone(nodes: MakeNode) -> None:
    a, b = await nodes("a"), await nodes("b")
    assert await a.bus.send("b", "m0")
    assert await a.bus.send("b", "m1")
    first = await b.bus.receive(1.0)
    await b.bus.done([first[0].id])  # m0 handled, m1 not
    assert await b.bus.receive(0.05) == []  # the node's next read (it carries the removal)
    # then b was killed
    again = await nodes("b")
    assert [e.payload for e in await again.bus.receive(1.0)] == ["m1"]


async def test_a_shared_bucket_is_one_bucket_for_every_node(nodes: MakeNode) -> None:
    a, b = await nodes("a"), await nodes("b")
    waits = [
        await (a if i % 2 else b).buckets.take("auth:1.2.3.4", count=4, period=8, now=T0)
        for i in range(5)
    ]
    assert waits[:4] == [0.0] * 4
    assert waits[4] == pytest.approx(2.0)  # one token per 2 s
    assert await a.buckets.take("auth:1.2.3.4", count=4, period=8, now=T0 + 2) == 0.0
    assert await a.buckets.take("auth:other", count=4, period=8, now=T0) == 0.0
    # refilled, never beyond its size
    assert [
        await b.buckets.take("auth:1.2.3.4", count=4, period=8, now=T0 + 100) for _ in range(5)
    ][-1] == pytest.approx(2.0)


async def test_an_invalidation_notice_reaches_every_node(nodes: MakeNode) -> None:
    a, b = await nodes("a"), await nodes("b")
    got: dict[str, list[str]] = {"a": [], "b": []}
    a.invalidation.subscribe(got["a"].append)
    b.invalidation.subscribe(got["b"].append)
    for node in (a, b):
        ready = getattr(node.invalidation, "subscribed", None)
        if ready is not None:
            await asyncio.wait_for(ready(), 5)
    await a.invalidation.publish("provider")
    for _ in range(100):
        if got["a"] and got["b"]:
            break
        await asyncio.sleep(0.02)
    assert got == {"a": ["provider"], "b": ["provider"]}


async def test_take_all_takes_from_every_bucket_or_from_none(nodes: MakeNode) -> None:
    a, b = await nodes("a"), await nodes("b")
    pair = [("user:1", 3.0, 3600.0), ("provider:p", 5.0, 3600.0)]
    assert [await a.buckets.take_all(pair, T0) for _ in range(3)] == [0.0] * 3
    assert await b.buckets.take_all(pair, T0) == pytest.approx(1200.0)  # user:1 is empty
    other = [("user:2", 3.0, 3600.0), ("provider:p", 5.0, 3600.0)]
    assert await b.buckets.take_all(other, T0) == 0.0
    assert await a.buckets.take_all(other, T0) == 0.0  # the provider's 5th: the refusal took none
    assert await a.buckets.take_all(other, T0) == pytest.approx(720.0)  # provider empty
    assert await a.buckets.take_all([], T0) == 0.0
