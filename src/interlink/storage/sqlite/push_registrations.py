"""SQLite: XEP-0357 push registrations (migration 0015)."""

from __future__ import annotations

from collections.abc import Sequence

from interlink.storage.push_registrations import PushRegistration
from interlink.storage.sqlite.database import SqliteDatabase


class _OverLimit(Exception):
    """Inside :meth:`SqlitePushRegistrations.register`: undo the write."""


class SqlitePushRegistrations:
    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db

    async def register(self, registration: PushRegistration, *, max_per_account: int) -> bool:
        r = registration
        try:
            async with self._db.transaction() as conn:
                await conn.execute(
                    "INSERT OR REPLACE INTO push_registrations "
                    "(account, service, node, publish_options, created) VALUES (?, ?, ?, ?, ?)",
                    (r.account, r.service, r.node, r.publish_options, r.created),
                )
                row = await self._db.fetch_one(
                    "SELECT COUNT(*) FROM push_registrations WHERE account = ?", (r.account,)
                )
                assert row is not None
                if int(row[0]) > max_per_account:
                    raise _OverLimit  # rolls the transaction back
        except _OverLimit:
            return False
        return True

    async def unregister(self, account: str, service: str, node: str | None = None) -> int:
        if node is None:
            sql = "DELETE FROM push_registrations WHERE account = ? AND service = ?"
            args: tuple[str, ...] = (account, service)
        else:
            sql = "DELETE FROM push_registrations WHERE account = ? AND service = ? AND node = ?"
            args = (account, service, node)
        async with self._db.transaction() as conn:
            cursor = await conn.execute(sql, args)
            return int(cursor.rowcount)

    async def for_account(self, account: str) -> Sequence[PushRegistration]:
        rows = await self._db.fetch_all(
            "SELECT account, service, node, publish_options, created FROM push_registrations "
            "WHERE account = ? ORDER BY created, service, node",
            (account,),
        )
        return [
            PushRegistration(str(a), str(s), str(n), str(p), float(c)) for a, s, n, p, c in rows
        ]
