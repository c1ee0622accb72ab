"""SQLite: the hub's own secrets and small named values (migration 0001)."""

from __future__ import annotations

import secrets

from interlink.storage.sqlite.database import SqliteDatabase


class SqliteServerState:
    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db

    async def get_or_create_secret(self, name: str, size: int) -> bytes:
        async with self._db.transaction() as conn:
            row = await self._db.fetch_one("SELECT value FROM server_state WHERE name = ?", (name,))
            if row is not None:
                return bytes(row[0])
            value = secrets.token_bytes(size)
            await conn.execute(
                "INSERT INTO server_state (name, value) VALUES (?, ?)", (name, value)
            )
            return value

    async def get_value(self, name: str) -> str | None:
        row = await self._db.fetch_one("SELECT value FROM server_state WHERE name = ?", (name,))
        return None if row is None else bytes(row[0]).decode()

    async def put_value(self, name: str, value: str) -> None:
        async with self._db.transaction() as conn:
            await conn.execute(
                "INSERT OR REPLACE INTO server_state (name, value) VALUES (?, ?)",
                (name, value.encode()),
            )
