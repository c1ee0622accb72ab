"""PostgreSQL: accounts and their SCRAM credentials (migration 0001)."""

from __future__ import annotations

from psycopg import errors

from interlink.errors import AccountExistsError, AccountNotFoundError
from interlink.storage.postgres.changes import record
from interlink.storage.postgres.database import Connection, PostgresDatabase, fetch_one
from interlink.storage.rows.accounts import credentials_from_rows
from interlink.xmpp.sasl import StoredCredentials


async def _write_credentials(conn: Connection, jid: str, credentials: StoredCredentials) -> None:
    async with conn.cursor() as cur:
        await cur.executemany(
            "INSERT INTO credentials (jid, mechanism, salt, stored_key, server_key, iterations) "
            "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (jid, mechanism) DO UPDATE SET "
            "salt = excluded.salt, stored_key = excluded.stored_key, "
            "server_key = excluded.server_key, iterations = excluded.iterations",
            [
                (jid, mechanism, c.salt, c.stored_key, c.server_key, c.iterations)
                for mechanism, c in credentials.scram.items()
            ],
        )


class PostgresAccounts:
    def __init__(self, db: PostgresDatabase) -> None:
        self._db = db

    async def create(self, jid: str, credentials: StoredCredentials, now: float) -> None:
        try:
            async with self._db.transaction() as conn:
                await conn.execute(
                    "INSERT INTO accounts (jid, created_at) VALUES (%s, %s)", (jid, now)
                )
                await _write_credentials(conn, jid, credentials)
        except errors.UniqueViolation:
            raise AccountExistsError(f"account {jid} already exists") from None

    async def exists(self, jid: str) -> bool:
        row = await self._db.fetch_one("SELECT 1 FROM accounts WHERE jid = %s", (jid,))
        return row is not None

    async def get_credentials(self, jid: str) -> StoredCredentials | None:
        return credentials_from_rows(
            await self._db.fetch_all(
                "SELECT mechanism, salt, stored_key, server_key, iterations "
                "FROM credentials WHERE jid = %s",
                (jid,),
            )
        )

    async def set_credentials(self, jid: str, credentials: StoredCredentials) -> None:
        async with self._db.transaction() as conn:
            # FOR KEY SHARE: the account cannot be deleted until these credentials are written
            row = await fetch_one(
                conn, "SELECT 1 FROM accounts WHERE jid = %s FOR KEY SHARE", (jid,)
            )
            if row is None:
                raise AccountNotFoundError(f"no account {jid}")
            await _write_credentials(conn, jid, credentials)

    async def delete(self, jid: str) -> None:
        async with self._db.transaction() as conn:
            cur = await conn.execute("DELETE FROM accounts WHERE jid = %s", (jid,))
            if cur.rowcount == 0:
                raise AccountNotFoundError(f"no account {jid}")
            await record(conn, "account-removed", jid)
            # Others' roster entries pointing at the account stay: they are the others' data.

    async def list_jids(self) -> list[str]:
        return [
            str(r[0]) for r in await self._db.fetch_all("SELECT jid FROM accounts ORDER BY jid")
        ]
