"""PostgreSQL: private XML storage fragments (migration 0012)."""

from __future__ import annotations

from collections.abc import Sequence

from interlink.storage.postgres.database import PostgresDatabase, fetch_one, lock
from interlink.storage.private import PrivateFragment


class _OverBudget(Exception):
    """Inside :meth:`PostgresPrivate.put`: undo the write, a limit would be exceeded."""


class PostgresPrivate:
    def __init__(self, db: PostgresDatabase) -> None:
        self._db = db

    async def get(self, owner: str, namespace: str) -> str | None:
        row = await self._db.fetch_one(
            "SELECT fragment FROM private_fragments WHERE owner = %s AND namespace = %s",
            (owner, namespace),
        )
        return None if row is None else str(row[0])

    async def put(
        self, owner: str, fragments: Sequence[PrivateFragment], *, quota: int, max_fragments: int
    ) -> bool:
        try:
            async with self._db.transaction() as conn:
                await lock(conn, "private:" + owner)  # the budget check sees every write
                async with conn.cursor() as cur:
                    await cur.executemany(
                        "INSERT INTO private_fragments (owner, namespace, fragment, size) "
                        "VALUES (%s, %s, %s, %s) ON CONFLICT (owner, namespace) DO UPDATE SET "
                        "fragment = excluded.fragment, size = excluded.size",
                        [(owner, f.namespace, f.xml, f.size) for f in fragments],
                    )
                row = await fetch_one(
                    conn,
                    "SELECT COALESCE(SUM(size), 0), COUNT(*) FROM private_fragments "
                    "WHERE owner = %s",
                    (owner,),
                )
                assert row is not None
                if int(row[0]) > quota or int(row[1]) > max_fragments:
                    raise _OverBudget  # rolls the transaction back
        except _OverBudget:
            return False
        return True

    async def bytes_used(self, owner: str) -> int:
        row = await self._db.fetch_one(
            "SELECT COALESCE(SUM(size), 0) FROM private_fragments WHERE owner = %s", (owner,)
        )
        return int(row[0]) if row else 0
