"""The PostgreSQL engine's migrations: the files ``migrations/NNNN_name.sql`` of this package,
with the table ``interlink_schema`` recording the last one applied, updated in the same
transaction as the migration itself (PostgreSQL's DDL is transactional).

Several nodes may start at once on one database: the runner holds an advisory lock while it
reads the version and applies what is pending, so each migration runs exactly once."""

from __future__ import annotations

from collections.abc import Sequence

from interlink.storage.migrations import Migration, load_migrations, pending_after
from interlink.storage.postgres.database import Connection, PostgresDatabase, fetch_one

# pg_advisory_xact_lock key of the migrations (any constant the hub uses for nothing else)
MIGRATIONS_LOCK = 0x494C_4D49_4752  # "ILMIGR"

_CREATE = (
    "CREATE TABLE IF NOT EXISTS interlink_schema (one BOOLEAN PRIMARY KEY DEFAULT TRUE "
    "CHECK (one), version INTEGER NOT NULL)"
)


def postgres_migrations() -> list[Migration]:
    """Every migration shipped for PostgreSQL, in order."""
    return load_migrations("interlink.storage.postgres")


async def _version(conn: Connection) -> int:
    row = await fetch_one(conn, "SELECT to_regclass('interlink_schema') IS NOT NULL")
    if row is None or not row[0]:
        return 0
    row = await fetch_one(conn, "SELECT version FROM interlink_schema")
    return 0 if row is None else int(row[0])


class PostgresMigrations:
    """The :class:`~interlink.storage.migrations.MigrationRunner` of PostgreSQL."""

    def __init__(self, db: PostgresDatabase, migrations: Sequence[Migration] | None = None) -> None:
        self._db = db
        self._migrations = list(postgres_migrations() if migrations is None else migrations)

    @property
    def migrations(self) -> Sequence[Migration]:
        return self._migrations

    async def current_version(self) -> int:
        async with self._db.pool.connection() as conn:
            return await _version(conn)

    async def pending(self) -> list[Migration]:
        return pending_after(self._migrations, await self.current_version())

    async def apply(self) -> list[Migration]:
        async with self._db.pool.connection() as conn:
            # A session lock, taken before the version is read: a node that waited for it reads
            # the version (and the catalog) in transactions begun after the other committed.
            await conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATIONS_LOCK,))
            try:
                todo = pending_after(self._migrations, await _version(conn))
                for migration in todo:
                    async with conn.transaction():
                        await conn.execute(_CREATE)
                        await conn.execute(migration.sql.encode())  # no parameters: many statements
                        await conn.execute(
                            "INSERT INTO interlink_schema (version) VALUES (%s) "
                            "ON CONFLICT (one) DO UPDATE SET version = excluded.version",
                            (migration.number,),
                        )
            finally:
                await conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATIONS_LOCK,))
        return todo
