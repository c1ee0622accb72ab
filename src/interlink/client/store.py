"""python-omemo's key/value storage on SQLite: the SDK's crypto state survives restarts."""

from __future__ import annotations

import json
from pathlib import Path

import aiosqlite
from omemo.storage import Just, Maybe, Nothing, Storage, StorageException
from omemo.types import JSONType


class SqliteOmemoStorage(Storage):
    """Every write is committed before the call returns, as python-omemo requires."""

    def __init__(self, conn: aiosqlite.Connection) -> None:
        super().__init__()
        self._conn = conn

    @classmethod
    async def open(cls, path: Path | str) -> SqliteOmemoStorage:
        conn = await aiosqlite.connect(str(path))
        await conn.execute("PRAGMA journal_mode=WAL")
        await conn.execute("PRAGMA synchronous=FULL")
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS omemo (key TEXT PRIMARY KEY, value TEXT NOT NULL)"
        )
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS seen_keys (digest BLOB PRIMARY KEY, seen_at REAL NOT NULL)"
        )
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
        value: JSONType = json.loads(row[0])
        return Just(value)

    async def _store(self, key: str, value: JSONType) -> None:
        try:
            await self._conn.execute(
                "INSERT OR REPLACE INTO omemo (key, value) VALUES (?, ?)", (key, json.dumps(value))
            )
            await self._conn.commit()
        except aiosqlite.Error as exc:
            raise StorageException(f"cannot store {key}: {exc}") from exc

    async def _delete(self, key: str) -> None:
        try:
            await self._conn.execute("DELETE FROM omemo WHERE key = ?", (key,))
            await self._conn.commit()
        except aiosqlite.Error as exc:
            raise StorageException(f"cannot delete {key}: {exc}") from exc
