"""The SDK's group commit under faults (found in review): a stanza never leaves when the state
behind it was lost, half an operation is never saved, and held-back effects do not wait for a
full batch."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from omemo.storage import StorageException

from interlink.client.client import InterlinkClient
from interlink.client.durable import CryptoGate
from interlink.client.store import SqliteOmemoStorage


class FlakyConn(sqlite3.Connection):
    """A connection whose next COMMIT fails (``fail_commit``), or whose write of a key in
    ``full_on`` fails the way SQLite may fail SQLITE_FULL / SQLITE_IOERR: the whole
    transaction is rolled back automatically and the statement raises."""

    fail_commit = False
    full_on: str | None = None

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
        if self.fail_commit and sql == "COMMIT":
            self.fail_commit = False
            raise sqlite3.OperationalError("disk I/O error")
        if (
            self.full_on is not None
            and sql.startswith("INSERT OR REPLACE INTO omemo")
            and args
            and args[0][0] == self.full_on
        ):
            super().execute("ROLLBACK")  # SQLite's automatic rollback of the transaction
            raise sqlite3.OperationalError("database or disk is full")
        return super().execute(sql, *args)


async def _storage(path: Path) -> tuple[SqliteOmemoStorage, FlakyConn]:
    first = await SqliteOmemoStorage.open(path)  # creates the tables
    await first.close()
    conn = sqlite3.connect(path, isolation_level=None, factory=FlakyConn)
    conn.execute("PRAGMA journal_mode=WAL")
    assert isinstance(conn, FlakyConn)
    return SqliteOmemoStorage(conn), conn


def _on_disk(path: Path, key: str) -> str | None:
    with sqlite3.connect(path) as other:
        row = other.execute("SELECT value FROM omemo WHERE key = ?", (key,)).fetchone()
    return None if row is None else str(row[0])


async def _turns(n: int = 5) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


async def test_failed_before_sending_commit_does_not_release_held_stanzas(tmp_path: Path) -> None:
    """omemo_session's ``before_sending`` hook commits in the middle of an operation
    (``gate.commit_now``). If that commit fails, the writes of earlier, finished operations are
    rolled back too; their stanzas, still held by the gate, must then fail, not leave (the
    storage's epoch changed), or a stanza would be out whose ratchet state is not on disk."""
    path = tmp_path / "omemo.sqlite3"
    storage, conn = await _storage(path)
    gate = CryptoGate(storage)
    sent: list[str] = []
    try:
        async with gate.operation():  # send A: the sending chain advances
            await storage.store("/ratchet", {"n": 1})
        stanza_a = gate.after(lambda: sent.append("A"))
        async with gate.operation():  # the next operation: python-omemo publishes a bundle
            await storage.store("/bundle", {"k": 2})
            conn.fail_commit = True
            with pytest.raises(StorageException):
                gate.commit_now()  # what before_sending does (python-omemo may swallow it)
        await _turns()
        assert _on_disk(path, "/ratchet") is None  # A's state was rolled back...
        assert sent == [], "a stanza left whose ratchet state was rolled back"
        assert stanza_a.done()
        assert isinstance(stanza_a.exception(), StorageException)
    finally:
        await storage.close()


async def test_what_python_omemo_sends_mid_operation_leaves_after_what_was_held(
    tmp_path: Path,
) -> None:
    """A text encrypted (held back for its commit), then a key exchange received in the next
    operation, which python-omemo answers at once through ``before_sending``: the text leaves
    first, in the order of encryption. The other way round the answer, on the session the key
    exchange built, would reach the peer before the text that starts our own session, and the
    peer would keep our session while we keep its one (found with Gajim in CI)."""
    path = tmp_path / "omemo.sqlite3"
    storage, _ = await _storage(path)
    gate = CryptoGate(storage)
    wire: list[str] = []
    try:
        async with gate.operation():  # encrypt the text: a new session, a sending chain
            await storage.store("/session", {"ours": 1})
            gate.after(lambda: wire.append("text"))
        async with gate.operation():  # decrypt the peer's key exchange: its session
            await storage.store("/session", {"theirs": 1})
            gate.commit_now()  # the hook, before python-omemo's empty answer
            wire.append("answer")
            assert _on_disk(path, "/session") == '{"theirs": 1}'
        assert wire == ["text", "answer"]
    finally:
        await storage.close()


async def test_write_error_with_automatic_rollback_does_not_release_held_stanzas(
    tmp_path: Path,
) -> None:
    """SQLite may roll back the whole transaction on SQLITE_FULL / SQLITE_IOERR / SQLITE_NOMEM
    (https://sqlite.org/lang_transaction.html, "Response To Errors Within A Transaction"). The
    storage notices (no transaction any more), drops its cache and changes its epoch, so the
    held stanzas fail and no value the disk lost is read back."""
    path = tmp_path / "omemo.sqlite3"
    storage, conn = await _storage(path)
    gate = CryptoGate(storage)
    sent: list[str] = []
    try:
        async with gate.operation():
            await storage.store("/ratchet", {"n": 1})
        gate.after(lambda: sent.append("A"))

        async def disk_full() -> None:
            async with gate.operation():
                conn.full_on = "/other"
                await storage.store("/other", {"k": 2})

        with pytest.raises(StorageException):
            await disk_full()
        conn.full_on = None
        await _turns()
        assert _on_disk(path, "/ratchet") is None
        assert sent == [], "a stanza left whose ratchet state was rolled back by SQLite"
        assert (await storage.load("/ratchet")).is_nothing, "the cache outlives the rollback"
    finally:
        await storage.close()


async def test_close_never_saves_half_an_operation(tmp_path: Path) -> None:
    """``close()`` cancels the receive worker while an operation is suspended half-way (a
    network fetch inside python-omemo): the operation's writes are undone (its savepoint) and
    ``close()`` waits for that before it commits, so the disk never holds half of it (a
    session advanced for a message the app never got)."""
    path = tmp_path / "omemo.sqlite3"
    client = InterlinkClient("me@hub.test", "pw", data_dir=tmp_path)
    storage = await SqliteOmemoStorage.open(path)
    client._storage = storage
    client._gate = CryptoGate(storage)
    halfway = asyncio.Event()

    async def decrypting() -> None:
        async with client.gate.operation():
            await storage.store("/session", "advanced")  # python-omemo's first write
            halfway.set()
            await asyncio.Event().wait()  # e.g. a bundle download
            await storage.store("/skipped-keys", "stored")  # its second write

    client._worker = asyncio.create_task(decrypting())
    await halfway.wait()
    await client.close()
    both = (_on_disk(path, "/session"), _on_disk(path, "/skipped-keys"))
    assert both in ((None, None), ('"advanced"', '"stored"')), f"half an operation saved: {both}"


async def test_held_effects_do_not_wait_for_a_full_batch_when_operations_suspend() -> None:
    """When every operation waits on the network inside and the next one starts without
    yielding (the receive worker's backlog), no loop turn finds the gate idle; held effects are
    still released at a boundary between operations once they have waited ``max_delay``."""
    from tests.client.test_durable import FakeStorage

    async def backlog(max_delay: float) -> list[str]:
        log: list[str] = []
        storage = FakeStorage(log)
        gate = CryptoGate(storage, max_delay=max_delay)

        async def op(i: int) -> None:
            async with gate.operation():
                storage.write()
                await asyncio.sleep(0.005)  # a fetch inside python-omemo
            gate.after(lambda: log.append(f"m{i}"))

        for i in range(10):  # at least 50 ms
            await op(i)
        return log

    assert "m0" in await backlog(max_delay=0.01)
    assert await backlog(max_delay=60.0) == []  # the bound is max_delay, not chance
