"""SQLite: vCards (migration 0013)."""

from __future__ import annotations

from interlink.storage.sqlite.database import SqliteDatabase


class SqliteVcard:
    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db

    async def get(self, owner: str) -> str | None:
        row = await self._db.fetch_one("SELECT vcard FROM vcards WHERE owner = ?", (owner,))
        return None if row is None else str(row[0])

    async def put(self, owner: str, vcard: str) -> None:
        async with self._db.transaction() as conn:
            await conn.execute(
                "INSERT OR REPLACE INTO vcards (owner, vcard) VALUES (?, ?)", (owner, vcard)
            )
