"""PostgreSQL: the interop control plane's token ids, interop accounts and key history
(migrations 0004 and 0007).

SQLite shares one transaction among concurrent enlistments (group commit) because it has one
writer and one fsync per commit; PostgreSQL runs each enlistment in its own transaction on its
own pooled connection and flushes the WAL of concurrent commits together by itself. Logins'
token ids, far more frequent, are group-committed here too (the engine-neutral
:class:`~interlink.storage.sqlite.group.GroupCommit`): one statement and one commit for all the
logins waiting, each answered once its row is committed. A token id is claimed by
``INSERT … ON CONFLICT DO NOTHING RETURNING``: of two concurrent claims (on any nodes) the second
waits for the first to commit and then finds it, a replay. An enlistment also holds the locks of
its account and of its (provider, subject), so two enlistments racing for either end as they
would one after the other.
"""

from __future__ import annotations

from interlink.storage.enlistment import CommitOutcome, InteropAccount, LoginState
from interlink.storage.postgres.changes import record
from interlink.storage.postgres.database import Connection, PostgresDatabase, lock_all
from interlink.storage.rows.enlistment import account_from_row
from interlink.storage.sqlite.group import GroupCommit


class PostgresEnlistment:
    """Token ids, interop accounts and their key history (challenges live in memory, see
    :mod:`interlink.interop.challenges`; the table of migration 0004 is unused)."""

    JTI_PRUNE_INTERVAL = 60.0
    JTI_KEEP_AFTER_EXPIRY = 3600.0  # well past any clock skew, so a replay is still recognized

    def __init__(self, db: PostgresDatabase) -> None:
        self._db = db
        self._next_prune = float("-inf")
        self._login_jtis: GroupCommit[tuple[str, str, float, float], bool] = GroupCommit(
            self._record_jtis
        )

    @property
    def login_jti_commits(self) -> int:
        """How many group commits recorded login token ids (for tests and metrics)."""
        return self._login_jtis.groups

    async def jti_seen(self, issuer: str, jti: str) -> bool:
        row = await self._db.fetch_one(
            "SELECT 1 FROM seen_token_ids WHERE issuer = %s AND jti = %s", (issuer, jti)
        )
        return row is not None

    async def login_state(self, issuer: str, jti: str, jid: str) -> LoginState:
        """(token id seen, account enlisted), in one round trip."""
        row = await self._db.fetch_one(
            "SELECT EXISTS (SELECT 1 FROM seen_token_ids WHERE issuer = %s AND jti = %s), "
            "EXISTS (SELECT 1 FROM interop_accounts WHERE jid = %s)",
            (issuer, jti, jid),
        )
        assert row is not None
        return LoginState(bool(row[0]), bool(row[1]))

    async def account(self, jid: str) -> InteropAccount | None:
        row = await self._db.fetch_one(
            "SELECT jid, provider_id, subject, user_id, identity_key, enlisted_at, "
            "updated_at FROM interop_accounts WHERE jid = %s",
            (jid,),
        )
        return None if row is None else account_from_row(row)

    async def commit_enlistment(
        self,
        *,
        issuer: str,
        jti: str,
        jti_expires_at: float,
        account: InteropAccount,
        new_key: bool,
        now: float,
    ) -> CommitOutcome:
        a = account
        async with self._db.transaction() as conn:
            if not await self._claim_jti(conn, issuer, jti, jti_expires_at, now):
                return CommitOutcome.REPLAYED  # nothing written: the transaction is empty
            await lock_all(conn, (f"enlist-jid:{a.jid}", f"enlist-sub:{a.provider_id}:{a.subject}"))
            await conn.execute(
                "INSERT INTO accounts (jid, created_at) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                (a.jid, now),
            )
            # SQLite's INSERT OR REPLACE: any row in the way (same jid, or same provider and
            # subject under another jid) goes first
            await conn.execute(
                "DELETE FROM interop_accounts WHERE jid = %s "
                "OR (provider_id = %s AND subject = %s)",
                (a.jid, a.provider_id, a.subject),
            )
            await conn.execute(
                "INSERT INTO interop_accounts (jid, provider_id, subject, user_id, identity_key, "
                "enlisted_at, updated_at) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                (
                    a.jid,
                    a.provider_id,
                    a.subject,
                    a.user_id,
                    a.identity_key,
                    a.enlisted_at,
                    a.updated_at,
                ),
            )
            if new_key:
                await conn.execute(
                    "INSERT INTO interop_key_history (jid, identity_key, seen_at) "
                    "VALUES (%s, %s, %s)",
                    (a.jid, a.identity_key, now),
                )
        return CommitOutcome.OK

    async def remember_jti(self, issuer: str, jti: str, expires_at: float, now: float) -> bool:
        """Record a login's token id; concurrent logins share one commit (group commit)."""
        return await self._login_jtis.submit((issuer, jti, expires_at, now))

    async def _record_jtis(self, items: list[tuple[str, str, float, float]]) -> list[bool]:
        """A group of logins' token ids in one statement: ``INSERT … ON CONFLICT DO NOTHING
        RETURNING`` names exactly the rows it inserted; a repeat inside the group is a replay
        of the first."""
        now = max(item[3] for item in items)
        fresh: dict[tuple[str, str], float] = {}
        for issuer, jti, expires_at, _ in items:
            fresh.setdefault((issuer, jti), expires_at)
        async with self._db.transaction() as conn:
            await self._prune_if_due(conn, now)
            cur = await conn.execute(
                "INSERT INTO seen_token_ids (issuer, jti, expires_at) "
                "SELECT * FROM unnest(%s::text[], %s::text[], %s::float8[]) "
                "ON CONFLICT DO NOTHING RETURNING issuer, jti",
                (
                    [k[0] for k in fresh],
                    [k[1] for k in fresh],
                    list(fresh.values()),
                ),
            )
            inserted = {(str(r[0]), str(r[1])) for r in await cur.fetchall()}
        results = []
        for issuer, jti, _, _ in items:
            results.append((issuer, jti) in inserted)
            inserted.discard((issuer, jti))
        return results

    async def _claim_jti(
        self, conn: Connection, issuer: str, jti: str, expires_at: float, now: float
    ) -> bool:
        """Inside a transaction: record a token id; whether it was new. Expired ids are pruned
        at most once per ``JTI_PRUNE_INTERVAL`` (by whichever call comes first)."""
        await self._prune_if_due(conn, now)
        cur = await conn.execute(
            "INSERT INTO seen_token_ids (issuer, jti, expires_at) VALUES (%s, %s, %s) "
            "ON CONFLICT DO NOTHING RETURNING 1",
            (issuer, jti, expires_at),
        )
        return await cur.fetchone() is not None

    async def _prune_if_due(self, conn: Connection, now: float) -> None:
        """Inside a transaction: forget expired token ids, at most once per
        ``JTI_PRUNE_INTERVAL`` (the delete scans the table)."""
        if now >= self._next_prune:
            self._next_prune = now + self.JTI_PRUNE_INTERVAL
            await conn.execute(
                "DELETE FROM seen_token_ids WHERE expires_at < %s",
                (now - self.JTI_KEEP_AFTER_EXPIRY,),
            )

    async def commit_unenlistment(
        self, *, issuer: str, jti: str, jti_expires_at: float, jid: str, now: float
    ) -> CommitOutcome:
        try:
            async with self._db.transaction() as conn:
                if not await self._claim_jti(conn, issuer, jti, jti_expires_at, now):
                    return CommitOutcome.REPLAYED
                cur = await conn.execute("DELETE FROM accounts WHERE jid = %s", (jid,))
                if cur.rowcount != 1:
                    raise _Rollback(CommitOutcome.NOT_ENLISTED)
                # A running hub ends the account's sessions (the operator change feed).
                await record(conn, "account-removed", jid)
        except _Rollback as stop:
            return stop.outcome
        return CommitOutcome.OK

    async def key_history(self, jid: str) -> list[bytes]:
        rows = await self._db.fetch_all(
            "SELECT identity_key FROM interop_key_history WHERE jid = %s ORDER BY id", (jid,)
        )
        return [bytes(r[0]) for r in rows]


class _Rollback(Exception):
    def __init__(self, outcome: CommitOutcome) -> None:
        self.outcome = outcome
