"""SQLite: the hub's own secrets (migration 0001)."""

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
