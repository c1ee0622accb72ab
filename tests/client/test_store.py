"""The SDK's SQLite storage for python-omemo: values survive a reopen; writes are durable at commit."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from omemo.storage import StorageException
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


async def test_writes_are_seen_at_once_and_durable_at_commit(tmp_path: Path) -> None:
    """This connection (python-omemo) sees a write at once; another connection, i.e. the disk,
    only after ``commit``. An unchanged value is not rewritten."""

    path = tmp_path / "omemo.sqlite3"
    store = await SqliteOmemoStorage.open(path)
    other = sqlite3.connect(path)

    def on_disk() -> tuple[str] | None:
        row: tuple[str] | None = other.execute(
            "SELECT value FROM omemo WHERE key = '/k'"
        ).fetchone()
        return row

    try:
        assert not store.pending
        for n in range(3):
            await store.store("/k", {"n": n})
            assert store.pending
            assert (await store.load("/k")).from_just() == {"n": n}
            assert on_disk() == (None if n == 0 else (f'{{"n": {n - 1}}}',))
            store.commit()
            assert not store.pending
            await store.store("/k", {"n": n})  # unchanged: skipped
            assert not store.pending
            assert on_disk() == (f'{{"n": {n}}}',)
        await store.delete("/k")
        assert on_disk() == ('{"n": 2}',)
        store.commit()
        assert on_disk() is None
    finally:
        other.close()
        await store.close()


class FailingCommits(sqlite3.Connection):
    """A connection whose COMMIT fails while ``fail`` is set (a full disk, an I/O error)."""

    fail = False

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
        if self.fail and sql == "COMMIT":
            raise sqlite3.OperationalError("disk I/O error")
        return super().execute(sql, *args)


async def test_a_failed_commit_rolls_back_and_forgets_the_cache(tmp_path: Path) -> None:
    """Nothing half-saved, and no cached value that the disk does not have."""
    path = tmp_path / "omemo.sqlite3"
    conn = sqlite3.connect(path, isolation_level=None, factory=FailingCommits)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE omemo (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    conn.execute("CREATE TABLE seen_keys (digest BLOB PRIMARY KEY, seen_at REAL NOT NULL)")
    store = SqliteOmemoStorage(conn)
    try:
        await store.store("/k", {"n": 1})
        store.commit()
        generation = store.device_generation
        await store.store("/k", {"n": 2})
        assert await store.first_sight(b"z" * 32, 1000.0, 100.0)
        assert isinstance(conn, FailingCommits)
        conn.fail = True
        with pytest.raises(StorageException, match="cannot save the crypto state"):
            store.commit()
        conn.fail = False
        assert not store.pending
        assert (await store.load("/k")).from_just() == {"n": 1}  # read again from disk
        assert await store.first_sight(b"z" * 32, 1001.0, 100.0)  # the record was rolled back
        assert store.device_generation != generation  # cached device information is stale
        store.commit()
    finally:
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


async def test_replay_records_commit_with_the_session_update(tmp_path: Path) -> None:
    """A received message's record becomes durable in the same commit as the session update
    that decrypts it; this connection sees it at once."""
    path = tmp_path / "omemo.sqlite3"
    store = await SqliteOmemoStorage.open(path)
    other = sqlite3.connect(path)

    def durable() -> int:
        return int(other.execute("SELECT count(*) FROM seen_keys").fetchone()[0])

    try:
        assert await store.first_sight(b"d" * 32, 1000.0, 100.0)
        assert not await store.first_sight(b"d" * 32, 1001.0, 100.0)  # a replay, even now
        await store.store("/ratchet", {"n": 1})
        assert durable() == 0
        store.commit()
        assert durable() == 1
        assert other.execute("SELECT value FROM omemo").fetchall() == [('{"n": 1}',)]
        assert await store.first_sight(b"e" * 32, 1002.0, 100.0)
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


async def test_an_undone_operation_leaves_the_earlier_ones(tmp_path: Path) -> None:
    """Each operation's writes sit behind a savepoint: undoing one (it was interrupted) keeps
    the operations before it in the same transaction, and reads see the undone value gone."""
    path = tmp_path / "omemo.sqlite3"
    store = await SqliteOmemoStorage.open(path)
    try:
        store.begin_operation()
        await store.store("/a", 1)
        store.end_operation(keep=True)
        store.begin_operation()
        await store.store("/a", 2)
        await store.store("/b", "half")
        store.end_operation(keep=False)
        assert (await store.load("/a")).from_just() == 1
        assert (await store.load("/b")).is_nothing
        store.begin_operation()
        await store.store("/c", "sent")
        store.commit()  # python-omemo sends something mid-operation: what came before is saved
        await store.store("/d", "after")
        store.end_operation(keep=False)
        store.commit()
    finally:
        await store.close()
    store = await SqliteOmemoStorage.open(path)
    try:
        assert (await store.load("/a")).from_just() == 1
        assert (await store.load("/c")).from_just() == "sent"
        assert (await store.load("/d")).is_nothing
        assert (await store.load("/b")).is_nothing
    finally:
        await store.close()
