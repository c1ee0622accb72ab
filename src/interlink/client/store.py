"""python-omemo's key/value storage on SQLite: the SDK's crypto state survives restarts.

Theory of operation. python-omemo reads and rewrites about a dozen values per message, and its
own value cache (``Storage.__init__(disable_cache=False)``) protects every value with
``copy.deepcopy`` twice per read (``omemo.storage.Just``): ~45 % of an encryption, measured with
``bench/crypto.py``. This storage turns that cache off and keeps its own, of the JSON *text* of
each value, which cannot be changed from outside. A read hands out a freshly parsed value
(``json.loads`` is C and much cheaper than ``deepcopy``), so no two callers ever share an object,
which is what the copies were for. A write whose JSON text equals the cached one is skipped: this
process is the database's only writer and the value is already durable. Every other write is
one SQLite statement in autocommit mode, so it is committed (WAL, ``synchronous=FULL``) before
the call returns, as python-omemo requires. Deleted secrets are overwritten on disk
(``secure_delete``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite
from omemo.storage import Maybe, Nothing, Storage, StorageException
from omemo.types import JSONType

T = TypeVar("T")
U = TypeVar("U")
D = TypeVar("D")

PRUNE_EVERY = 3600.0  # seconds of ``now`` between two prunings of the replay memory


class Loaded(Maybe[T]):
    """A stored value, as python-omemo's ``Just`` but without deep copies.

    It keeps the JSON text and the functions mapped over it. The first read hands out the value
    computed when it was made; every later read parses the text again and re-applies the
    functions, so a caller that changes what it got never affects another reader. python-omemo's
    mapping functions are type checks and deserializers without side effects.
    """

    __slots__ = ("_fresh", "_functions", "_text", "_value")

    def __init__(
        self, text: str, functions: tuple[Callable[[Any], Any], ...] = (), value: Any = None
    ) -> None:
        self._text = text
        self._functions = functions
        self._value: Any = json.loads(text) if not functions else value
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
        return Loaded(self._text, (*self._functions, function), function(self.from_just()))


class SqliteOmemoStorage(Storage):
    """Every write is committed before the call returns, as python-omemo requires; see the module
    docstring for the text cache that replaces python-omemo's copying one."""

    def __init__(self, conn: aiosqlite.Connection) -> None:
        super().__init__(disable_cache=True)  # replaced by self._texts, without the deep copies
        self._conn = conn
        self._texts: dict[str, str | None] = {}  # key -> JSON text as stored, None if absent
        self._pruned_at = float("-inf")

    @classmethod
    async def open(cls, path: Path | str) -> SqliteOmemoStorage:
        # isolation_level=None: autocommit, so each write is one statement and one commit.
        conn = await aiosqlite.connect(str(path), isolation_level=None)
        await conn.execute("PRAGMA journal_mode=WAL")
        await conn.execute("PRAGMA synchronous=FULL")
        await conn.execute("PRAGMA secure_delete=ON")
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS omemo (key TEXT PRIMARY KEY, value TEXT NOT NULL)"
        )
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS seen_keys (digest BLOB PRIMARY KEY, seen_at REAL NOT NULL)"
        )
        await conn.execute("CREATE INDEX IF NOT EXISTS seen_keys_seen_at ON seen_keys (seen_at)")
        return cls(conn)

    async def close(self) -> None:
        await self._conn.close()

    async def first_sight(self, digest: bytes, now: float, keep_for: float) -> bool:
        """Record the key material ``digest`` of an incoming message; ``False`` if it was seen
        before (a replay). The record is committed before this returns. Records older than
        ``keep_for`` seconds are forgotten, at most once every :data:`PRUNE_EVERY` seconds."""
        try:
            if now - self._pruned_at >= PRUNE_EVERY:
                await self._conn.execute(
                    "DELETE FROM seen_keys WHERE seen_at < ?", (now - keep_for,)
                )
                self._pruned_at = now
            cur = await self._conn.execute(
                "INSERT OR IGNORE INTO seen_keys (digest, seen_at) VALUES (?, ?)", (digest, now)
            )
        except aiosqlite.Error as exc:
            raise StorageException(f"cannot record a received message: {exc}") from exc
        return cur.rowcount == 1

    async def _load(self, key: str) -> Maybe[JSONType]:
        if key in self._texts:
            text = self._texts[key]
        else:
            try:
                rows = await self._conn.execute_fetchall(
                    "SELECT value FROM omemo WHERE key = ?", (key,)
                )
            except aiosqlite.Error as exc:
                raise StorageException(f"cannot load {key}: {exc}") from exc
            text = next((str(row[0]) for row in rows), None)
            self._texts[key] = text
        return Nothing() if text is None else Loaded(text)

    async def _store(self, key: str, value: JSONType) -> None:
        text = json.dumps(value)
        if self._texts.get(key) == text:
            return  # unchanged: already durable
        try:
            await self._conn.execute(
                "INSERT OR REPLACE INTO omemo (key, value) VALUES (?, ?)", (key, text)
            )
        except aiosqlite.Error as exc:
            self._texts.pop(key, None)  # unknown whether it was written: read it again
            raise StorageException(f"cannot store {key}: {exc}") from exc
        self._texts[key] = text

    async def _delete(self, key: str) -> None:
        if key in self._texts and self._texts[key] is None:
            return  # known to be absent
        try:
            await self._conn.execute("DELETE FROM omemo WHERE key = ?", (key,))
        except aiosqlite.Error as exc:
            self._texts.pop(key, None)
            raise StorageException(f"cannot delete {key}: {exc}") from exc
        self._texts[key] = None
