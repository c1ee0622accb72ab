"""SQLite: accounts and their SCRAM credentials (migration 0001)."""

from __future__ import annotations

import sqlite3

from interlink.errors import AccountExistsError, AccountNotFoundError
from interlink.storage.rows.accounts import credentials_from_rows
from interlink.storage.sqlite.changes import RECORD
from interlink.storage.sqlite.database import Row, SqliteDatabase
from interlink.xmpp.sasl import StoredCredentials


def _credentials_params(jid: str, credentials: StoredCredentials) -> list[Row]:
    return [
        (jid, mechanism, c.salt, c.stored_key, c.server_key, c.iterations)
        for mechanism, c in credentials.scram.items()
    ]


class SqliteAccounts:
    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db

    async def create(self, jid: str, credentials: StoredCredentials, now: float) -> None:
        async with self._db.transaction() as conn:
            try:
                await conn.execute(
                    "INSERT INTO accounts (jid, created_at) VALUES (?, ?)", (jid, now)
                )
            except sqlite3.IntegrityError:
                raise AccountExistsError(f"account {jid} already exists") from None
            await self._write_credentials(jid, credentials)

    async def _write_credentials(self, jid: str, credentials: StoredCredentials) -> None:
        await self._db.conn.executemany(
            "INSERT OR REPLACE INTO credentials "
            "(jid, mechanism, salt, stored_key, server_key, iterations) VALUES (?, ?, ?, ?, ?, ?)",
            _credentials_params(jid, credentials),
        )

    async def exists(self, jid: str) -> bool:
        return await self._db.fetch_one("SELECT 1 FROM accounts WHERE jid = ?", (jid,)) is not None

    async def get_credentials(self, jid: str) -> StoredCredentials | None:
        return credentials_from_rows(
            await self._db.fetch_all(
                "SELECT mechanism, salt, stored_key, server_key, iterations "
                "FROM credentials WHERE jid = ?",
                (jid,),
            )
        )

    async def set_credentials(self, jid: str, credentials: StoredCredentials) -> None:
        async with self._db.transaction():
            if await self._db.fetch_one("SELECT 1 FROM accounts WHERE jid = ?", (jid,)) is None:
                raise AccountNotFoundError(f"no account {jid}")
            await self._write_credentials(jid, credentials)

    async def delete(self, jid: str) -> None:
        async with self._db.transaction() as conn:
            cur = await conn.execute("DELETE FROM accounts WHERE jid = ?", (jid,))
            if cur.rowcount == 0:
                raise AccountNotFoundError(f"no account {jid}")
            await conn.execute(RECORD, ("account-removed", jid))
            # Others' roster entries pointing at the account stay: they are the others' data.

    async def list_jids(self) -> list[str]:
        return [
            str(r[0]) for r in await self._db.fetch_all("SELECT jid FROM accounts ORDER BY jid")
        ]
