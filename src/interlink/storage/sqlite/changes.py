"""The operator change feed on SQLite: ``operator_changes``, written inside the transaction of
each change (:data:`RECORD`), read by a running hub (see :mod:`interlink.interop.operator`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from interlink.storage.sqlite.database import SqliteDatabase

# The time is SQLite's (seconds since the epoch): the entry only says when, nothing decides on it.
RECORD = (
    "INSERT INTO operator_changes (kind, subject, at) "
    "VALUES (?, ?, (julianday('now') - 2440587.5) * 86400.0)"
)


class SqliteChanges:
    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db

    async def record(self, kind: str, subject: str) -> None:
        """A change that is not part of another repository's write (e.g. a user's settings)."""
        async with self._db.transaction() as conn:
            await conn.execute(RECORD, (kind, subject))

    async def since(self, after: int, limit: int) -> list[tuple[int, str, str]]:
        async with self._db.conn.execute(
            "SELECT seq, kind, subject FROM operator_changes WHERE seq > ? ORDER BY seq LIMIT ?",
            (after, limit),
        ) as cur:
            return [(int(r[0]), str(r[1]), str(r[2])) for r in await cur.fetchall()]

    async def latest(self) -> int:
        async with self._db.conn.execute(
            "SELECT COALESCE(MAX(seq), 0) FROM operator_changes"
        ) as cur:
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    async def prune(self, before: float) -> int:
        async with self._db.transaction() as conn:
            cur = await conn.execute("DELETE FROM operator_changes WHERE at < ?", (before,))
            return cur.rowcount
