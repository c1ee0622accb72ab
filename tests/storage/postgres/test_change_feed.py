"""The operator change feed on PostgreSQL is commit-ordered: a follower that reads "after the
last seq I applied" never moves past a change that commits later, however the writers'
transactions (on several connections and processes) interleave."""

from __future__ import annotations

import asyncio
import random

from interlink.interop.operator import ChangeFeedFollower
from interlink.storage.postgres.changes import record
from interlink.storage.postgres.engine import PostgresStorage, open_postgres


async def _seen_by_a_follower(pg: PostgresStorage) -> list[tuple[int, str, str]]:
    return await pg.changes.since(0, 1000)


async def test_a_plain_sequence_would_let_a_follower_skip_a_change(pg: PostgresStorage) -> None:
    """Why the feed needs its lock: without it, the later transaction takes the larger seq,
    commits first, the follower moves past it, and the earlier one's seq is never read."""
    hold = asyncio.Event()
    plain = "INSERT INTO operator_changes (kind, subject, at) VALUES (%s, %s, 0)"

    async def slow_writer() -> None:
        async with pg.db.transaction() as conn:
            await conn.execute(plain, ("provider", "slow"))
            await hold.wait()

    slow = asyncio.create_task(slow_writer())
    await asyncio.sleep(0.2)
    async with pg.db.transaction() as conn:
        await conn.execute(plain, ("provider", "fast"))
    position = max(seq for seq, _, _ in await pg.changes.since(0, 10))
    hold.set()
    await slow
    assert await pg.changes.since(position, 10) == []  # "slow" is lost to this follower
    assert len(await pg.changes.since(0, 10)) == 2


async def test_a_change_waits_for_an_earlier_one_to_commit(
    pg: PostgresStorage, pg_other_node: PostgresStorage
) -> None:
    hold = asyncio.Event()
    recorded = asyncio.Event()

    async def slow_writer() -> None:
        async with pg.db.transaction() as conn:
            await record(conn, "provider", "slow")
            recorded.set()
            await hold.wait()

    slow = asyncio.create_task(slow_writer())
    await recorded.wait()
    fast = asyncio.create_task(pg_other_node.changes.record("provider", "fast"))
    await asyncio.sleep(0.3)
    assert not fast.done()  # it waits for the feed's lock, before it has a seq
    assert await pg_other_node.changes.since(0, 10) == []
    hold.set()
    await asyncio.wait_for(asyncio.gather(slow, fast), 10)
    changes = await pg_other_node.changes.since(0, 10)
    assert [subject for _, _, subject in changes] == ["slow", "fast"]
    assert changes[0][0] < changes[1][0]
    assert await pg.changes.latest() == changes[1][0]


async def test_a_rolled_back_change_leaves_a_gap_never_filled(pg: PostgresStorage) -> None:
    class Abort(Exception):
        pass

    try:
        async with pg.db.transaction() as conn:
            await record(conn, "provider", "undone")
            raise Abort
    except Abort:
        pass
    await pg.changes.record("provider", "kept")
    assert [s for _, _, s in await pg.changes.since(0, 10)] == ["kept"]


async def test_followers_on_two_nodes_apply_every_change_of_concurrent_writers(
    pg_dsn: str, pg: PostgresStorage, pg_other_node: PostgresStorage
) -> None:
    """Forty writers on two nodes, each holding its transaction open a random while after its
    change; two followers, each on a node of its own, polling all along. Each follower applies
    all forty, once, in the same order. (Without the feed's lock, this fails.)"""
    rng = random.Random(17)
    delays = [rng.uniform(0, 0.02) for _ in range(40)]

    async def writer(i: int) -> None:
        node = pg if i % 2 else pg_other_node
        await asyncio.sleep(delays[-i - 1])
        async with node.db.transaction() as conn:
            await conn.execute("SELECT pg_sleep(%s)", (delays[i],))  # work before the change
            await record(conn, "account-removed", f"u{i}")
            await asyncio.sleep(delays[i])  # and after it, before the commit

    applied: dict[str, list[str]] = {"a": [], "b": []}
    followers = {}
    readers = [await open_postgres(pg_dsn, pool_size=1) for _ in range(2)]
    for name, node in zip(("a", "b"), readers, strict=True):

        async def handle(kind: str, subject: str, name: str = name) -> None:
            applied[name].append(subject)

        async def resync() -> None:
            raise AssertionError("no change fails here")

        followers[name] = ChangeFeedFollower(
            node.changes.since, handle, resync=resync, interval=0.001
        )
        followers[name].start(0)
    try:
        await asyncio.wait_for(asyncio.gather(*(writer(i) for i in range(40))), 60)
        await asyncio.sleep(0.05)
        for follower in followers.values():
            await follower.poll()
    finally:
        for follower in followers.values():
            await follower.stop()
        for reader in readers:
            await reader.close()
    expected = {f"u{i}" for i in range(40)}
    assert sorted(applied["a"]) == sorted(expected)
    assert applied["a"] == applied["b"]
    order = [s for _, _, s in await pg.changes.since(0, 100)]
    assert applied["a"] == order
