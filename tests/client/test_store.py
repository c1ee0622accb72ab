"""The SDK's SQLite storage for python-omemo: values survive a reopen; writes are immediate."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from omemo.types import JSONType

from interlink.client.store import PRUNE_EVERY, SqliteOmemoStorage


async def test_values_survive_reopening(tmp_path: Path) -> None:
    path = tmp_path / "omemo.sqlite3"
    store = await SqliteOmemoStorage.open(path)
    await store.store("/a", {"k": [1, 2, 3], "s": "x"})
    await store.store_bytes("/b", b"\x00\x01")
    await store.store("/gone", 5)
    await store.delete("/gone")
    await store.close()
    store = await SqliteOmemoStorage.open(path)
    try:
        assert (await store.load("/a")).from_just() == {"k": [1, 2, 3], "s": "x"}
        assert (await store.load_bytes("/b")).from_just() == b"\x00\x01"
        assert (await store.load("/gone")).is_nothing
    finally:
        await store.close()


async def test_readers_never_share_a_value(tmp_path: Path) -> None:
    """What python-omemo's deep copies guaranteed: changing a value one got changes nothing for
    anyone else, nor what is stored."""
    store = await SqliteOmemoStorage.open(tmp_path / "omemo.sqlite3")
    try:
        value: dict[str, JSONType] = {"chain": [1, 2], "n": 0}
        await store.store("/ratchet", value)
        value["n"] = 99  # the writer keeps changing its own object
        first = (await store.load("/ratchet")).from_just()
        assert first == {"chain": [1, 2], "n": 0}
        assert isinstance(first, dict)
        first["n"] = 1
        loaded = await store.load("/ratchet")
        assert loaded.from_just() == {"chain": [1, 2], "n": 0}
        assert loaded.from_just() == {"chain": [1, 2], "n": 0}  # a second read of one Maybe
        mapped = (await store.load_list("/ratchet/none", int)).maybe([])
        assert mapped == []
        await store.store("/list", [3, 4])
        ints = await store.load_list("/list", int)
        got = ints.from_just()
        got.append(5)
        assert ints.from_just() == [3, 4]  # mapped values are rebuilt, not shared
        assert (await store.load_list("/list", int)).from_just() == [3, 4]
    finally:
        await store.close()


async def test_writes_are_on_disk_before_the_call_returns(tmp_path: Path) -> None:
    """Another connection sees every changed value at once; an unchanged one is not rewritten
    but is still there."""

    path = tmp_path / "omemo.sqlite3"
    store = await SqliteOmemoStorage.open(path)
    other = sqlite3.connect(path)
    try:
        for n in range(3):
            await store.store("/k", {"n": n})
            await store.store("/k", {"n": n})  # unchanged: skipped
            row = other.execute("SELECT value FROM omemo WHERE key = '/k'").fetchone()
            assert row == (f'{{"n": {n}}}',)
        await store.delete("/k")
        assert other.execute("SELECT value FROM omemo WHERE key = '/k'").fetchone() is None
    finally:
        other.close()
        await store.close()


async def test_old_replay_records_are_forgotten(tmp_path: Path) -> None:
    store = await SqliteOmemoStorage.open(tmp_path / "omemo.sqlite3")
    try:
        assert await store.first_sight(b"a" * 32, 1000.0, 100.0)
        # pruned at most once per PRUNE_EVERY seconds: still remembered a little past keep_for
        assert not await store.first_sight(b"a" * 32, 1200.0, 100.0)
        assert await store.first_sight(b"a" * 32, 1000.0 + PRUNE_EVERY + 200.0, 100.0)
    finally:
        await store.close()


async def test_replay_records_commit_with_the_next_write_or_a_flush(tmp_path: Path) -> None:
    """A received message's record becomes durable together with the session update that
    decrypts it (one commit), or at ``flush``; this connection sees it at once."""
    path = tmp_path / "omemo.sqlite3"
    store = await SqliteOmemoStorage.open(path)
    other = sqlite3.connect(path)

    def durable() -> int:
        return int(other.execute("SELECT count(*) FROM seen_keys").fetchone()[0])

    try:
        assert await store.first_sight(b"d" * 32, 1000.0, 100.0)
        assert not await store.first_sight(b"d" * 32, 1001.0, 100.0)  # a replay, even now
        assert durable() == 0
        await store.store("/ratchet", {"n": 1})
        assert durable() == 1
        assert other.execute("SELECT value FROM omemo").fetchall() == [('{"n": 1}',)]
        assert await store.first_sight(b"e" * 32, 1002.0, 100.0)
        await store.store("/ratchet", {"n": 1})  # unchanged: no write, no commit
        assert durable() == 1
        await store.flush()
        assert durable() == 2
        assert await store.first_sight(b"f" * 32, 1003.0, 100.0)
    finally:
        other.close()
        await store.close()  # commits what is pending
        await store.close()  # again: nothing
    store = await SqliteOmemoStorage.open(path)
    try:
        for digest in (b"d", b"e", b"f"):
            assert not await store.first_sight(digest * 32, 1004.0, 100.0)
    finally:
        await store.close()
