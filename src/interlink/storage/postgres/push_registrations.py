"""PostgreSQL: XEP-0357 push registrations (migration 0015)."""

from __future__ import annotations

from collections.abc import Sequence

from interlink.storage.postgres.database import PostgresDatabase, fetch_one, lock
from interlink.storage.push_registrations import PushRegistration


class _OverLimit(Exception):
    """Inside :meth:`PostgresPushRegistrations.register`: undo the write."""


class PostgresPushRegistrations:
    def __init__(self, db: PostgresDatabase) -> None:
        self._db = db

    async def register(self, registration: PushRegistration, *, max_per_account: int) -> bool:
        r = registration
        try:
            async with self._db.transaction() as conn:
                await lock(conn, "push:" + r.account)  # the count sees every registration
                await conn.execute(
                    "INSERT INTO push_registrations "
                    "(account, service, node, publish_options, created) "
                    "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (account, service, node) DO UPDATE "
                    "SET publish_options = excluded.publish_options, created = excluded.created",
                    (r.account, r.service, r.node, r.publish_options, r.created),
                )
                row = await fetch_one(
                    conn,
                    "SELECT COUNT(*) FROM push_registrations WHERE account = %s",
                    (r.account,),
                )
                assert row is not None
                if int(row[0]) > max_per_account:
                    raise _OverLimit  # rolls the transaction back
        except _OverLimit:
            return False
        return True

    async def unregister(self, account: str, service: str, node: str | None = None) -> int:
        if node is None:
            sql = "DELETE FROM push_registrations WHERE account = %s AND service = %s"
            args: tuple[str, ...] = (account, service)
        else:
            sql = "DELETE FROM push_registrations WHERE account = %s AND service = %s AND node = %s"
            args = (account, service, node)
        async with self._db.transaction() as conn:
            cursor = await conn.execute(sql, args)
            return int(cursor.rowcount)

    async def for_account(self, account: str) -> Sequence[PushRegistration]:
        rows = await self._db.fetch_all(
            "SELECT account, service, node, publish_options, created FROM push_registrations "
            "WHERE account = %s ORDER BY created, service, node",
            (account,),
        )
        return [
            PushRegistration(str(a), str(s), str(n), str(p), float(c)) for a, s, n, p, c in rows
        ]
