"""SQLite: the interop control plane's token ids, interop accounts and key history (migrations
0004 and 0007)."""

from __future__ import annotations

from dataclasses import dataclass

import aiosqlite

from interlink.storage.enlistment import CommitOutcome, InteropAccount, LoginState
from interlink.storage.rows.enlistment import account_from_row
from interlink.storage.sqlite.changes import RECORD
from interlink.storage.sqlite.database import Row, SqliteDatabase
from interlink.storage.sqlite.group import GroupCommit


def _account_params(a: InteropAccount) -> Row:
    return (a.jid, a.provider_id, a.subject, a.user_id, a.identity_key, a.enlisted_at, a.updated_at)


class SqliteEnlistment:
    """Token ids, interop accounts and their key history.

    Every statement is a hop to aiosqlite's thread and back, which under load costs far more
    than the statement, so reads are one hop each (:meth:`SqliteDatabase.fetch_one`) and
    expired token ids are pruned once per ``JTI_PRUNE_INTERVAL``, not on every insert (the
    prune scans the table: ``expires_at`` has no index). Challenges are not stored
    here: they live in memory (:mod:`interlink.interop.challenges`); the table
    ``enlistment_challenges`` of migration 0004 is no longer used.

    Enlistments and logins' token ids are written by group commits
    (:mod:`interlink.storage.sqlite.group`): concurrent ones share one transaction, its few
    round trips and its one fsync, and each caller is answered once its row is durable.
    """

    JTI_PRUNE_INTERVAL = 60.0
    JTI_KEEP_AFTER_EXPIRY = 3600.0  # well past any clock skew, so a replay is still recognized

    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db
        self._next_prune = float("-inf")
        self._login_jtis: GroupCommit[tuple[str, str, float, float], bool] = GroupCommit(
            self._record_jtis
        )
        self._enlistments: GroupCommit[_Enlistment, CommitOutcome] = GroupCommit(
            self._write_enlistments, max_group=64
        )

    async def jti_seen(self, issuer: str, jti: str) -> bool:
        row = await self._db.fetch_one(
            "SELECT 1 FROM seen_token_ids WHERE issuer = ? AND jti = ?", (issuer, jti)
        )
        return row is not None

    @property
    def login_jti_commits(self) -> int:
        """How many group commits recorded login token ids (for tests and metrics)."""
        return self._login_jtis.groups

    @property
    def enlistment_commits(self) -> int:
        """How many group commits wrote enlistments (for tests and metrics)."""
        return self._enlistments.groups

    async def login_state(self, issuer: str, jti: str, jid: str) -> LoginState:
        """(token id seen, account enlisted), in one round trip."""
        row = await self._db.fetch_one(
            "SELECT EXISTS (SELECT 1 FROM seen_token_ids WHERE issuer = ? AND jti = ?), "
            "EXISTS (SELECT 1 FROM interop_accounts WHERE jid = ?)",
            (issuer, jti, jid),
        )
        assert row is not None
        seen, enlisted = row
        return LoginState(bool(seen), bool(enlisted))

    async def account(self, jid: str) -> InteropAccount | None:
        row = await self._db.fetch_one(
            "SELECT jid, provider_id, subject, user_id, identity_key, enlisted_at, "
            "updated_at FROM interop_accounts WHERE jid = ?",
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
        """Concurrent enlistments share one transaction (group commit); each is answered once
        the transaction holding it has committed."""
        return await self._enlistments.submit(
            _Enlistment(issuer, jti, jti_expires_at, account, new_key, now)
        )

    async def _write_enlistments(self, items: list[_Enlistment]) -> list[CommitOutcome]:
        """A group of enlistments in one transaction: their token ids first, in one
        ``INSERT OR IGNORE ... RETURNING`` (a replayed id -- also a repeat inside the group --
        gets "replayed" and changes nothing), then the accounts, key and history rows of the
        others, one ``executemany`` per table, in the group's order (so the result is the one
        the enlistments would have had one after the other)."""
        now = max(item.now for item in items)
        async with self._db.transaction() as conn:
            fresh = await self._insert_jtis(
                conn, [(i.issuer, i.jti, i.jti_expires_at) for i in items], now
            )
            outcomes = [CommitOutcome.OK if new else CommitOutcome.REPLAYED for new in fresh]
            ok = [item for item, new in zip(items, fresh, strict=True) if new]
            if ok:
                await conn.executemany(
                    "INSERT OR IGNORE INTO accounts (jid, created_at) VALUES (?, ?)",
                    [(i.account.jid, i.now) for i in ok],
                )
                await conn.executemany(
                    "INSERT OR REPLACE INTO interop_accounts (jid, provider_id, subject, user_id, "
                    "identity_key, enlisted_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [_account_params(i.account) for i in ok],
                )
                keys = [(i.account.jid, i.account.identity_key, i.now) for i in ok if i.new_key]
                if keys:
                    await conn.executemany(
                        "INSERT INTO interop_key_history (jid, identity_key, seen_at) "
                        "VALUES (?, ?, ?)",
                        keys,
                    )
        return outcomes

    async def remember_jti(self, issuer: str, jti: str, expires_at: float, now: float) -> bool:
        """Record a login's token id; concurrent logins share one commit (group commit)."""
        return await self._login_jtis.submit((issuer, jti, expires_at, now))

    async def _record_jtis(self, items: list[tuple[str, str, float, float]]) -> list[bool]:
        """A group of logins' token ids: one statement, committed (and fsynced) by SQLite as
        it ends."""
        now = max(item[3] for item in items)
        async with self._db.exclusive() as conn:
            return await self._insert_jtis(conn, [item[:3] for item in items], now)

    async def _insert_jtis(
        self, conn: aiosqlite.Connection, ids: list[tuple[str, str, float]], now: float
    ) -> list[bool]:
        """Insert token ids (issuer, jti, expires_at); for each, whether it was new. One
        ``INSERT OR IGNORE ... RETURNING``: it names exactly the rows it inserted. A repeat
        inside ``ids`` is a replay of the first."""
        if now >= self._next_prune:
            self._next_prune = now + self.JTI_PRUNE_INTERVAL
            await conn.execute(
                "DELETE FROM seen_token_ids WHERE expires_at < ?",
                (now - self.JTI_KEEP_AFTER_EXPIRY,),
            )
        fresh: dict[tuple[str, str], float] = {}
        for issuer, jti, expires_at in ids:
            fresh.setdefault((issuer, jti), expires_at)
        params = [value for (issuer, jti), exp in fresh.items() for value in (issuer, jti, exp)]
        placeholders = ", ".join(["(?, ?, ?)"] * len(fresh))  # only placeholders
        rows = await conn.execute_fetchall(
            "INSERT OR IGNORE INTO seen_token_ids (issuer, jti, expires_at) "  # noqa: S608
            f"VALUES {placeholders} RETURNING issuer, jti",
            params,
        )
        inserted = {(str(r[0]), str(r[1])) for r in rows}
        results = []
        for issuer, jti, _ in ids:
            results.append((issuer, jti) in inserted)
            inserted.discard((issuer, jti))
        return results

    async def commit_unenlistment(
        self, *, issuer: str, jti: str, jti_expires_at: float, jid: str, now: float
    ) -> CommitOutcome:
        try:
            async with self._db.transaction() as conn:
                if not (await self._insert_jtis(conn, [(issuer, jti, jti_expires_at)], now))[0]:
                    raise _Rollback(CommitOutcome.REPLAYED)
                cur = await conn.execute("DELETE FROM accounts WHERE jid = ?", (jid,))
                if cur.rowcount != 1:
                    raise _Rollback(CommitOutcome.NOT_ENLISTED)
                # A running hub ends the account's sessions (the operator change feed).
                await conn.execute(RECORD, ("account-removed", jid))
        except _Rollback as stop:
            return stop.outcome
        return CommitOutcome.OK

    async def key_history(self, jid: str) -> list[bytes]:
        rows = await self._db.fetch_all(
            "SELECT identity_key FROM interop_key_history WHERE jid = ? ORDER BY rowid", (jid,)
        )
        return [bytes(r[0]) for r in rows]


@dataclass(frozen=True, slots=True)
class _Enlistment:
    issuer: str
    jti: str
    jti_expires_at: float
    account: InteropAccount
    new_key: bool
    now: float


class _Rollback(Exception):
    def __init__(self, outcome: CommitOutcome) -> None:
        self.outcome = outcome
