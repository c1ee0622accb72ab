"""PostgreSQL: vCards (migration 0013)."""

from __future__ import annotations

from interlink.storage.postgres.database import PostgresDatabase


class PostgresVcard:
    def __init__(self, db: PostgresDatabase) -> None:
        self._db = db

    async def get(self, owner: str) -> str | None:
        row = await self._db.fetch_one("SELECT vcard FROM vcards WHERE owner = %s", (owner,))
        return None if row is None else str(row[0])

    async def put(self, owner: str, vcard: str) -> None:
        async with self._db.transaction() as conn:
            await conn.execute(
                "INSERT INTO vcards (owner, vcard) VALUES (%s, %s) "
                "ON CONFLICT (owner) DO UPDATE SET vcard = excluded.vcard",
                (owner, vcard),
            )
