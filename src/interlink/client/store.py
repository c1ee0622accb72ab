"""python-omemo's key/value storage on SQLite: the SDK's crypto state survives restarts.

Theory of operation. python-omemo reads and rewrites about a dozen values per message, and its
own value cache (``Storage.__init__(disable_cache=False)``) protects every value with
``copy.deepcopy`` twice per read (``omemo.storage.Just``): ~45 % of an encryption, measured with
``bench/crypto.py``. This storage turns that cache off and keeps its own, of the JSON *text* of
each value, which cannot be changed from outside. A read hands out a freshly parsed value
(``json.loads`` is C and much cheaper than ``deepcopy``), so no two callers ever share an object,
which is what the copies were for. A write whose JSON text equals the cached one is skipped: this
process is the database's only writer and the value is already written. Every other write joins
one open transaction, which :meth:`SqliteOmemoStorage.commit` makes durable (WAL,
``synchronous=FULL``); this connection, and so python-omemo, sees the writes at once. When to
commit is :class:`~interlink.client.durable.CryptoGate`'s decision: after whole operations, and
always before anything they produced leaves the process. The replay memory's records
(:meth:`SqliteOmemoStorage.first_sight`) are in the same transaction. Deleted secrets are
overwritten on disk (``secure_delete``).

SQLite is called directly on the event loop's thread, not through a worker thread (aiosqlite):
after the first read of each key only writes reach SQLite, about one per message, and a thread
hand-off cost more than the write itself (a commit took ~0.1 ms, ~0.23 ms through aiosqlite, on
the benchmark VM, whose fsync takes ~0.06 ms). The price is that the loop waits for each commit's
fsync; on a device where that takes milliseconds, so does the wait (the gate's group commit
shares one among a burst of operations).
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from omemo.storage import Maybe, Nothing, Storage, StorageException
from omemo.types import JSONType

T = TypeVar("T")
U = TypeVar("U")
D = TypeVar("D")

PRUNE_EVERY = 3600.0  # seconds of ``now`` between two prunings of the replay memory
# python-omemo's keys from which it builds DeviceInformation (SessionManager.get_device_information)
DEVICE_KEYS = ("/devices/", "/trust/")
_SCALARS = (str, int, bool, type(None))  # immutable JSON values: no need to parse again


class Loaded(Maybe[T]):
    """A stored value, as python-omemo's ``Just`` but without deep copies.

    It keeps the JSON text and the functions mapped over it. The first read hands out the value
    computed when it was made; every later read parses the text again and re-applies the
    functions, so a caller that changes what it got never affects another reader. python-omemo's
    mapping functions are type checks and deserializers without side effects.
    """

    __slots__ = ("_fresh", "_functions", "_text", "_value")

    def __init__(
        self, text: str, value: Any, functions: tuple[Callable[[Any], Any], ...] = ()
    ) -> None:
        """``value``: what the functions make of a fresh ``json.loads(text)``, handed out first."""
        self._text = text
        self._value: Any = value
        self._functions = functions
        self._fresh = True

    @property
    def is_just(self) -> bool:
        return True

    @property
    def is_nothing(self) -> bool:
        return False

    def from_just(self) -> T:
        if self._fresh:
            self._fresh = False
            value: T = self._value
            self._value = None
            return value
        value = json.loads(self._text)
        for function in self._functions:
            value = function(value)
        return value

    def maybe(self, default: D) -> T:
        return self.from_just()

    def fmap(self, function: Callable[[T], U]) -> Loaded[U]:
        return Loaded(self._text, function(self.from_just()), (*self._functions, function))


class SqliteOmemoStorage(Storage):
    """Writes join one transaction until :meth:`commit`; see the module docstring for the text
    cache that replaces python-omemo's copying one."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        super().__init__(disable_cache=True)  # replaced by self._texts, without the deep copies
        self._conn = conn
        self._texts: dict[str, str | None] = {}  # key -> JSON text as stored, None if absent
        self._scalars: dict[str, tuple[str, Any]] = {}  # key -> (text, value) if immutable
        self._pruned_at = float("-inf")
        self._handled_pruned_at = float("-inf")
        self._closed = False
        self._in_operation = False  # between begin_operation and end_operation
        self._savepoint = False  # the operation's savepoint is open
        self.epoch = 0
        """Changes whenever uncommitted writes are lost (:meth:`rollback`, or SQLite rolling a
        transaction back by itself after an error): whatever was waiting for them to become
        durable never will."""
        self.device_generation = 0
        """Changes whenever a value under :data:`DEVICE_KEYS` does, so that device information
        built from them can be cached (see ``omemo_session``)."""

    @classmethod
    async def open(cls, path: Path | str) -> SqliteOmemoStorage:
        # isolation_level=None: no implicit transactions; writes open one with BEGIN IMMEDIATE.
        conn = sqlite3.connect(path, isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA secure_delete=ON")
            conn.execute(
                "CREATE TABLE IF NOT EXISTS omemo (key TEXT PRIMARY KEY, value TEXT NOT NULL)"
            )
            conn.execute(
                "CREATE TABLE IF NOT EXISTS seen_keys"
                " (digest BLOB PRIMARY KEY, seen_at REAL NOT NULL)"
            )
            conn.execute("CREATE INDEX IF NOT EXISTS seen_keys_seen_at ON seen_keys (seen_at)")
            conn.execute(  # messages this device decrypted or sent (client/archive.py)
                "CREATE TABLE IF NOT EXISTS handled_messages"
                " (key TEXT PRIMARY KEY, seen_at REAL NOT NULL)"
            )
            conn.execute(
                "CREATE INDEX IF NOT EXISTS handled_messages_seen_at ON handled_messages (seen_at)"
            )
            conn.execute(  # sent messages the hub has not acknowledged (client/outbox.py)
                "CREATE TABLE IF NOT EXISTS outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT,"
                " message_id TEXT NOT NULL UNIQUE, peer TEXT NOT NULL, report INTEGER NOT NULL,"
                " stanzas TEXT NOT NULL, queued_at REAL NOT NULL)"
            )
        except sqlite3.Error:
            conn.close()
            raise
        return cls(conn)

    async def close(self) -> None:
        """Commit what is pending and close; closing again does nothing."""
        if self._closed:
            return
        self._closed = True
        try:
            self.commit()
        finally:
            self._conn.close()

    @property
    def pending(self) -> bool:
        """Whether there are writes not yet committed."""
        return self._conn.in_transaction

    def commit(self) -> None:
        """Make every write so far durable. If that fails, the transaction is rolled back, the
        cached values are forgotten (the next reads see what is on disk) and StorageException
        is raised."""
        if not self._conn.in_transaction:
            return
        try:
            self._conn.execute("COMMIT")  # also ends an operation's savepoint
        except sqlite3.Error as exc:
            self.rollback()
            raise StorageException(f"cannot save the crypto state: {exc}") from exc
        self._savepoint = False

    def rollback(self) -> None:
        """Drop the writes not yet committed and everything cached: the next reads see what is
        on disk."""
        if self._conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                self._conn.execute("ROLLBACK")
        self._savepoint = False
        self.epoch += 1
        self._drop_cache()

    def begin_operation(self) -> None:
        """Start one crypto operation: its writes can be undone together (:meth:`end_operation`)
        without touching those of the operations before it."""
        self._in_operation = True
        self._savepoint = False  # opened lazily, at the operation's first write

    def end_operation(self, *, keep: bool) -> None:
        """End the operation; ``keep=False`` undoes its writes (it was interrupted half-way)."""
        self._in_operation = False
        if not self._savepoint:
            return
        self._savepoint = False
        try:
            if not keep:
                self._conn.execute("ROLLBACK TO operation")
            self._conn.execute("RELEASE operation")
        except sqlite3.Error:
            self.rollback()  # cannot tell what is left: drop everything uncommitted
            return
        if not keep:
            self._drop_cache()  # it may hold values of the undone writes

    def _drop_cache(self) -> None:
        self._texts.clear()
        self._scalars.clear()
        self._pruned_at = float("-inf")
        self.device_generation += 1

    async def flush(self) -> None:
        """:meth:`commit`, for callers that have no gate (tools and tests)."""
        self.commit()

    def _begin(self) -> bool:
        """Open the transaction (and the operation's savepoint) if needed; whether a
        transaction was open before."""
        was_open = bool(self._conn.in_transaction)
        if not was_open:
            self._conn.execute("BEGIN IMMEDIATE")
        if self._in_operation and not self._savepoint:
            self._conn.execute("SAVEPOINT operation")
            self._savepoint = True
        return was_open

    def _write_failed(self, was_open: bool) -> None:
        """After a failed write: SQLite may have rolled the whole transaction back by itself
        (SQLITE_FULL, SQLITE_IOERR, SQLITE_NOMEM); then earlier writes are lost too."""
        if was_open and not self._conn.in_transaction:
            self.rollback()

    async def first_sight(self, digest: bytes, now: float, keep_for: float) -> bool:
        """Record the key material ``digest`` of an incoming message; ``False`` if it was seen
        before (a replay). Records older than ``keep_for`` seconds are forgotten, at most once
        every :data:`PRUNE_EVERY` seconds.

        The record is in the same transaction as python-omemo's update of the session that
        decrypts this very message, so the two become durable together, and whoever delivers
        the message must have it committed first (the SDK's gate does). Until then this
        connection already sees the record, so a replay is refused; after a crash before the
        commit, the message was not delivered and its session was not advanced either.
        """
        was_open = bool(self._conn.in_transaction)
        try:
            was_open = self._begin()
            if now - self._pruned_at >= PRUNE_EVERY:
                self._conn.execute("DELETE FROM seen_keys WHERE seen_at < ?", (now - keep_for,))
                self._pruned_at = now
            cur = self._conn.execute(
                "INSERT OR IGNORE INTO seen_keys (digest, seen_at) VALUES (?, ?)", (digest, now)
            )
        except sqlite3.Error as exc:
            self._write_failed(was_open)
            raise StorageException(f"cannot record a received message: {exc}") from exc
        return bool(cur.rowcount == 1)

    async def handled(self, keys: Sequence[str]) -> bool:
        """Whether this device already handled a message known by any of ``keys`` (its archive
        id or sender and message id, see :mod:`interlink.client.archive`)."""
        try:
            for key in keys:
                row = self._conn.execute(
                    "SELECT 1 FROM handled_messages WHERE key = ?", (key,)
                ).fetchone()
                if row is not None:
                    return True
        except sqlite3.Error as exc:
            raise StorageException(f"cannot read the handled messages: {exc}") from exc
        return False

    async def note_handled(self, keys: Sequence[str], now: float, keep_for: float) -> None:
        """Record that this device handled (decrypted, or sent) a message known by ``keys``, in
        the same transaction as the ratchet update of its decryption (see :meth:`first_sight`);
        records older than ``keep_for`` seconds are forgotten."""
        if not keys:
            return
        was_open = bool(self._conn.in_transaction)
        try:
            was_open = self._begin()
            if now - self._handled_pruned_at >= PRUNE_EVERY:
                self._conn.execute(
                    "DELETE FROM handled_messages WHERE seen_at < ?", (now - keep_for,)
                )
                self._handled_pruned_at = now
            self._conn.executemany(
                "INSERT OR REPLACE INTO handled_messages (key, seen_at) VALUES (?, ?)",
                [(key, now) for key in keys],
            )
        except sqlite3.Error as exc:
            self._write_failed(was_open)
            raise StorageException(f"cannot record a handled message: {exc}") from exc

    async def outbox_add(
        self, message_id: str, peer: str, report: bool, stanzas: Sequence[str], now: float
    ) -> None:
        """Keep an outgoing message (its stanzas as XML text) until :meth:`outbox_remove`, in
        the open transaction: it is durable before the stanza may leave (the gate's commit)."""
        was_open = bool(self._conn.in_transaction)
        try:
            was_open = self._begin()
            self._conn.execute(
                "INSERT OR REPLACE INTO outbox (message_id, peer, report, stanzas, queued_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (message_id, peer, int(report), json.dumps(list(stanzas)), now),
            )
        except sqlite3.Error as exc:
            self._write_failed(was_open)
            raise StorageException(f"cannot keep an outgoing message: {exc}") from exc

    async def outbox_remove(self, message_id: str) -> None:
        """The hub acknowledged ``message_id``: it is not sent again."""
        was_open = bool(self._conn.in_transaction)
        try:
            was_open = self._begin()
            self._conn.execute("DELETE FROM outbox WHERE message_id = ?", (message_id,))
        except sqlite3.Error as exc:
            self._write_failed(was_open)
            raise StorageException(f"cannot drop an acknowledged message: {exc}") from exc

    async def outbox_entries(self) -> list[tuple[str, str, bool, list[str]]]:
        """(message id, peer, report, stanzas) of every kept message, oldest first."""
        try:
            rows = self._conn.execute(
                "SELECT message_id, peer, report, stanzas FROM outbox ORDER BY seq"
            ).fetchall()
        except sqlite3.Error as exc:
            raise StorageException(f"cannot read the outbox: {exc}") from exc
        return [(str(m), str(p), bool(r), [str(x) for x in json.loads(t)]) for m, p, r, t in rows]

    async def _load(self, key: str) -> Maybe[JSONType]:
        scalar = self._scalars.get(key)
        if scalar is not None:
            return Loaded(*scalar)
        if key in self._texts:
            text = self._texts[key]
            return Nothing() if text is None else Loaded(text, json.loads(text))
        try:
            row = self._conn.execute("SELECT value FROM omemo WHERE key = ?", (key,)).fetchone()
        except sqlite3.Error as exc:
            raise StorageException(f"cannot load {key}: {exc}") from exc
        if row is None:
            self._texts[key] = None
            return Nothing()
        text = str(row[0])
        value = json.loads(text)
        self._remember(key, text, value)
        return Loaded(text, value)  # a mutable value is not kept: this one is the caller's

    async def _store(self, key: str, value: JSONType) -> None:
        scalar = self._scalars.get(key)
        if scalar is not None and type(value) is type(scalar[1]) and value == scalar[1]:
            return  # unchanged: already durable
        text = json.dumps(value)
        if self._texts.get(key) == text:
            return
        was_open = bool(self._conn.in_transaction)
        try:
            was_open = self._begin()
            self._conn.execute(
                "INSERT OR REPLACE INTO omemo (key, value) VALUES (?, ?)", (key, text)
            )
        except sqlite3.Error as exc:
            self._forget(key)  # unknown whether it was written: read it again
            self._write_failed(was_open)
            raise StorageException(f"cannot store {key}: {exc}") from exc
        self._forget(key)
        self._remember(key, text, value)

    async def _delete(self, key: str) -> None:
        if key in self._texts and self._texts[key] is None:
            return  # known to be absent
        was_open = bool(self._conn.in_transaction)
        try:
            was_open = self._begin()
            self._conn.execute("DELETE FROM omemo WHERE key = ?", (key,))
        except sqlite3.Error as exc:
            self._forget(key)
            self._write_failed(was_open)
            raise StorageException(f"cannot delete {key}: {exc}") from exc
        self._forget(key)
        self._texts[key] = None

    def _remember(self, key: str, text: str, value: JSONType) -> None:
        self._texts[key] = text
        if isinstance(value, _SCALARS):
            self._scalars[key] = (text, value)

    def _forget(self, key: str) -> None:
        """Drop the cached value of ``key``, which is being changed."""
        self._texts.pop(key, None)
        self._scalars.pop(key, None)
        if key.startswith(DEVICE_KEYS):
            self.device_generation += 1
