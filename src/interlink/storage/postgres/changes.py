"""The operator change feed on PostgreSQL: ``operator_changes``, written inside the transaction
of each change (:func:`record`), read by every running node (:mod:`interlink.interop.operator`).

The follower reads "every change after the last ``seq`` I applied". On SQLite one writer at a
time makes ``seq`` order commit order. On PostgreSQL a sequence alone would not: transaction A
takes seq 7, B takes seq 8 and commits first, a follower reads 8 and moves past 7, which A then
commits -- and no node ever applies it. So :func:`record` first takes the feed's advisory lock,
held until the transaction ends, and only then takes a ``seq``: while A holds the lock no other
writer can take a ``seq``, so a ``seq`` is only ever taken once every smaller one is committed
or rolled back (a gap, never filled later). PostgreSQL makes a commit visible before it releases
the transaction's locks, so any snapshot that sees seq 8 also sees seq 7.

The lock is taken by the last statement of a change's transaction, and held only for its commit:
operator changes (providers, account removals, settings) are few.
"""

from __future__ import annotations

from interlink.storage.postgres.database import Connection, PostgresDatabase

# pg_advisory_xact_lock key of the change feed (any constant the hub uses for nothing else)
FEED_LOCK = 0x494C_4645_4544  # "ILFEED"


async def record(conn: Connection, kind: str, subject: str) -> None:
    """Inside a change's transaction, as its last statement: the change feed entry."""
    await conn.execute("SELECT pg_advisory_xact_lock(%s)", (FEED_LOCK,))
    await conn.execute(
        "INSERT INTO operator_changes (kind, subject, at) "
        "VALUES (%s, %s, extract(epoch FROM clock_timestamp()))",
        (kind, subject),
    )


class PostgresChanges:
    def __init__(self, db: PostgresDatabase) -> None:
        self._db = db

    async def record(self, kind: str, subject: str) -> None:
        async with self._db.transaction() as conn:
            await record(conn, kind, subject)

    async def since(self, after: int, limit: int) -> list[tuple[int, str, str]]:
        rows = await self._db.fetch_all(
            "SELECT seq, kind, subject FROM operator_changes WHERE seq > %s ORDER BY seq LIMIT %s",
            (after, limit),
        )
        return [(int(r[0]), str(r[1]), str(r[2])) for r in rows]

    async def latest(self) -> int:
        row = await self._db.fetch_one("SELECT COALESCE(MAX(seq), 0) FROM operator_changes")
        return int(row[0]) if row else 0

    async def prune(self, before: float) -> int:
        async with self._db.transaction() as conn:
            cur = await conn.execute("DELETE FROM operator_changes WHERE at < %s", (before,))
            return cur.rowcount
