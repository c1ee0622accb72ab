"""PostgreSQL: disabled accounts and report resolutions (migration 0018), and the operator's
look-ups over accounts, phone numbers and interop accounts."""

from __future__ import annotations

from interlink.errors import AccountNotFoundError
from interlink.storage.enlistment import InteropAccount
from interlink.storage.moderation import ReportResolution
from interlink.storage.postgres.changes import record
from interlink.storage.postgres.database import PostgresDatabase, fetch_one
from interlink.storage.rows.enlistment import account_from_row
from interlink.storage.rows.moderation import resolution_from_row

_INTEROP_ACCOUNTS = (
    "SELECT jid, provider_id, subject, user_id, identity_key, enlisted_at, updated_at "
    "FROM interop_accounts "
)


class PostgresModeration:
    def __init__(self, db: PostgresDatabase) -> None:
        self._db = db

    async def set_disabled(self, jid: str, disabled: bool, now: float) -> bool:
        async with self._db.transaction() as conn:
            # FOR KEY SHARE: the account cannot be removed before this commits
            found = await fetch_one(
                conn, "SELECT 1 FROM accounts WHERE jid = %s FOR KEY SHARE", (jid,)
            )
            if found is None:
                raise AccountNotFoundError(f"no account {jid}")
            if disabled:
                cur = await conn.execute(
                    "INSERT INTO disabled_accounts (jid, disabled_at) VALUES (%s, %s) "
                    "ON CONFLICT DO NOTHING",
                    (jid, now),
                )
            else:
                cur = await conn.execute("DELETE FROM disabled_accounts WHERE jid = %s", (jid,))
            changed = cur.rowcount > 0
            if changed:  # every node ends the account's sessions or lets it log in again
                await record(conn, "account-disabled" if disabled else "account-enabled", jid)
            return changed

    async def disabled_at(self, jid: str) -> float | None:
        row = await self._db.fetch_one(
            "SELECT disabled_at FROM disabled_accounts WHERE jid = %s", (jid,)
        )
        return None if row is None else float(str(row[0]))

    async def disabled_accounts(self) -> list[str]:
        rows = await self._db.fetch_all("SELECT jid FROM disabled_accounts ORDER BY jid")
        return [str(r[0]) for r in rows]

    async def accounts_with_phone(self, phone: str) -> list[str]:
        rows = await self._db.fetch_all(
            "SELECT jid FROM account_phones WHERE phone = %s ORDER BY jid", (phone,)
        )
        return [str(r[0]) for r in rows]

    async def resolve_report(
        self, report_id: int, resolution: str, actor: str, now: float
    ) -> ReportResolution | None:
        async with self._db.transaction() as conn:
            # the first resolution stays: a concurrent second one finds it after its insert
            await conn.execute(
                "INSERT INTO report_resolutions (report_id, resolution, actor, resolved_at) "
                "SELECT id, %s, %s, %s FROM reports WHERE id = %s ON CONFLICT DO NOTHING",
                (resolution, actor, now, report_id),
            )
            row = await fetch_one(
                conn,
                "SELECT report_id, resolution, actor, resolved_at FROM report_resolutions "
                "WHERE report_id = %s",
                (report_id,),
            )
        return None if row is None else resolution_from_row(row)

    async def resolutions(self, report_ids: list[int]) -> dict[int, ReportResolution]:
        if not report_ids:
            return {}
        rows = await self._db.fetch_all(
            "SELECT report_id, resolution, actor, resolved_at FROM report_resolutions "
            "WHERE report_id = ANY(%s)",
            (list(report_ids),),
        )
        return {r.report_id: r for r in map(resolution_from_row, rows)}

    async def unresolved_reports(self, limit: int) -> list[int]:
        rows = await self._db.fetch_all(
            "SELECT id FROM reports WHERE id NOT IN (SELECT report_id FROM report_resolutions) "
            "ORDER BY id DESC LIMIT %s",
            (limit,),
        )
        return [int(str(r[0])) for r in rows]

    async def resolved_reports(self, limit: int) -> list[int]:
        rows = await self._db.fetch_all(
            "SELECT report_id FROM report_resolutions ORDER BY report_id DESC LIMIT %s", (limit,)
        )
        return [int(str(r[0])) for r in rows]

    async def accounts(self, limit: int) -> list[str]:
        rows = await self._db.fetch_all("SELECT jid FROM accounts ORDER BY jid LIMIT %s", (limit,))
        return [str(r[0]) for r in rows]

    async def enlisted(self, provider_id: str | None, limit: int) -> list[InteropAccount]:
        if provider_id is None:
            rows = await self._db.fetch_all(
                _INTEROP_ACCOUNTS + "ORDER BY enlisted_at DESC, jid LIMIT %s", (limit,)
            )
        else:
            rows = await self._db.fetch_all(
                _INTEROP_ACCOUNTS
                + "WHERE provider_id = %s ORDER BY enlisted_at DESC, jid LIMIT %s",
                (provider_id, limit),
            )
        return [account_from_row(r) for r in rows]
