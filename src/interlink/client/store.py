"""python-omemo's key/value storage on SQLite: the SDK's crypto state survives restarts."""

from __future__ import annotations

import json
from pathlib import Path

import aiosqlite
from omemo.storage import Just, Maybe, Nothing, Storage, StorageException
from omemo.types import JSONType


class SqliteOmemoStorage(Storage):
    """Every write is committed before the call returns, as python-omemo requires.

    python-omemo rewrites about a dozen values per message although usually only the ratchet
    state changed; a write whose JSON equals what this process last read or wrote for the key is
    skipped (this process is the database's only writer), which roughly doubles throughput
    (measured with bench/crypto.py). Deleted secrets are overwritten on disk (secure_delete).
    """

    def __init__(self, conn: aiosqlite.Connection) -> None:
        super().__init__()
        self._conn = conn
        self._known: dict[str, str] = {}  # key -> JSON text as stored

    @classmethod
    async def open(cls, path: Path | str) -> SqliteOmemoStorage:
        conn = await aiosqlite.connect(str(path))
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
        await conn.commit()
        return cls(conn)

    async def close(self) -> None:
        await self._conn.close()

    async def first_sight(self, digest: bytes, now: float, keep_for: float) -> bool:
        """Record the key material ``digest`` of an incoming message; ``False`` if it was seen
        before (a replay). Records older than ``keep_for`` seconds are forgotten."""
        await self._conn.execute("DELETE FROM seen_keys WHERE seen_at < ?", (now - keep_for,))
        cur = await self._conn.execute(
            "INSERT OR IGNORE INTO seen_keys (digest, seen_at) VALUES (?, ?)", (digest, now)
        )
        await self._conn.commit()
        return cur.rowcount == 1

    async def _load(self, key: str) -> Maybe[JSONType]:
        try:
            async with self._conn.execute("SELECT value FROM omemo WHERE key = ?", (key,)) as cur:
                row = await cur.fetchone()
        except aiosqlite.Error as exc:
            raise StorageException(f"cannot load {key}: {exc}") from exc
        if row is None:
            return Nothing()
        text = str(row[0])
        self._known[key] = text
        value: JSONType = json.loads(text)
        return Just(value)

    async def _store(self, key: str, value: JSONType) -> None:
        text = json.dumps(value)
        if self._known.get(key) == text:
            return  # unchanged: already durable
        try:
            await self._conn.execute(
                "INSERT OR REPLACE INTO omemo (key, value) VALUES (?, ?)", (key, text)
            )
            await self._conn.commit()
        except aiosqlite.Error as exc:
            self._known.pop(key, None)
            raise StorageException(f"cannot store {key}: {exc}") from exc
        self._known[key] = text

    async def _delete(self, key: str) -> None:
        self._known.pop(key, None)
        try:
            await self._conn.execute("DELETE FROM omemo WHERE key = ?", (key,))
            await self._conn.commit()
        except aiosqlite.Error as exc:
            raise StorageException(f"cannot delete {key}: {exc}") from exc
