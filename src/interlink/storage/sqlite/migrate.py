"""The SQLite engine's migrations: the files ``migrations/NNNN_name.sql`` of this package,
with ``PRAGMA user_version`` recording the last one applied, set inside the same transaction as
the migration itself."""

from __future__ import annotations

from collections.abc import Sequence

from interlink.storage.migrations import Migration, load_migrations, pending_after
from interlink.storage.sqlite.database import SqliteDatabase


def sqlite_migrations() -> list[Migration]:
    """Every migration shipped for SQLite, in order."""
    return load_migrations("interlink.storage.sqlite")


class SqliteMigrations:
    """The :class:`~interlink.storage.migrations.MigrationRunner` of SQLite."""

    def __init__(self, db: SqliteDatabase, migrations: Sequence[Migration] | None = None) -> None:
        self._db = db
        self._migrations = list(sqlite_migrations() if migrations is None else migrations)

    @property
    def migrations(self) -> Sequence[Migration]:
        return self._migrations

    async def current_version(self) -> int:
        row = await self._db.fetch_one("PRAGMA user_version")
        return int(row[0]) if row else 0

    async def pending(self) -> list[Migration]:
        return pending_after(self._migrations, await self.current_version())

    async def apply(self) -> list[Migration]:
        todo = await self.pending()
        async with self._db.exclusive() as conn:
            for migration in todo:
                try:
                    await conn.executescript(
                        f"BEGIN IMMEDIATE;\n{migration.sql}\n"
                        f"PRAGMA user_version={migration.number};\nCOMMIT;"
                    )
                except BaseException:
                    # A failed statement leaves the script's transaction open: undo it all.
                    if conn.in_transaction:
                        await conn.rollback()
                    raise
        return todo
