"""PostgreSQL: the hub's own secrets and small named values (migration 0001)."""

from __future__ import annotations

import secrets

from interlink.storage.postgres.database import PostgresDatabase, fetch_one


class PostgresServerState:
    def __init__(self, db: PostgresDatabase) -> None:
        self._db = db

    async def get_or_create_secret(self, name: str, size: int) -> bytes:
        # Nodes starting together race to create it: the first insert wins, all read that one.
        async with self._db.transaction() as conn:
            await conn.execute(
                "INSERT INTO server_state (name, value) VALUES (%s, %s) "
                "ON CONFLICT (name) DO NOTHING",
                (name, secrets.token_bytes(size)),
            )
            row = await fetch_one(conn, "SELECT value FROM server_state WHERE name = %s", (name,))
            assert row is not None
            return bytes(row[0])

    async def get_value(self, name: str) -> str | None:
        row = await self._db.fetch_one("SELECT value FROM server_state WHERE name = %s", (name,))
        return None if row is None else bytes(row[0]).decode()

    async def put_value(self, name: str, value: str) -> None:
        async with self._db.transaction() as conn:
            await conn.execute(
                "INSERT INTO server_state (name, value) VALUES (%s, %s) "
                "ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                (name, value.encode()),
            )
