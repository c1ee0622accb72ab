"""SQLite connection handling and schema migrations.

One aiosqlite connection serves the whole hub. Multi-statement writes run inside
:meth:`SqliteDatabase.transaction`, which serialises them, so coroutines never interleave their
statements inside one transaction. ``synchronous=FULL`` with WAL makes every commit durable
(fsync) before the awaiting caller continues: the hub acknowledges nothing that is not on disk.

Migrations are the files ``migrations/NNNN_name.sql``, applied in order; ``PRAGMA user_version``
records the last one applied, inside the same transaction as the migration itself.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path

import aiosqlite

from interlink.errors import StorageError
from interlink.storage.sqlite.changes import SqliteChanges
from interlink.storage.sqlite.enlistment_repos import SqliteEnlistment
from interlink.storage.sqlite.media_repos import SqliteMedia
from interlink.storage.sqlite.policy_repos import SqlitePolicy
from interlink.storage.sqlite.repos import (
    SqliteAccounts,
    SqliteOffline,
    SqlitePep,
    SqliteProviders,
    SqliteRoster,
    SqliteServerState,
)

_MIGRATION_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")
SYNCHRONOUS_MODES = ("OFF", "NORMAL", "FULL", "EXTRA")


def migrations() -> list[tuple[int, str]]:
    """All migrations shipped with the package, as (number, SQL), in order."""
    found = []
    folder = resources.files("interlink.storage.sqlite") / "migrations"
    for entry in folder.iterdir():
        match = _MIGRATION_NAME.match(entry.name)
        if match:
            found.append((int(match.group(1)), entry.read_text(encoding="utf-8")))
    found.sort()
    numbers = [n for n, _ in found]
    if numbers != list(range(1, len(numbers) + 1)):
        raise StorageError(f"migrations are not numbered 1..n without gaps: {numbers}")
    return found


class SqliteDatabase:
    """The connection plus the write lock."""

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self.conn = conn
        self._lock = asyncio.Lock()

    @asynccontextmanager
    async def exclusive(self) -> AsyncIterator[aiosqlite.Connection]:
        """The connection, with no other transaction open or starting meanwhile: for a write
        that is a single statement, which SQLite commits (durably) on its own when it ends."""
        async with self._lock:
            yield self.conn

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        async with self._lock:
            await self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.conn
            except BaseException:
                await self.conn.rollback()
                raise
            await self.conn.commit()


class SqliteStorage:
    """The :class:`~interlink.storage.Storage` bundle for SQLite."""

    def __init__(self, db: SqliteDatabase) -> None:
        self.db = db
        self.accounts = SqliteAccounts(db)
        self.roster = SqliteRoster(db)
        self.offline = SqliteOffline(db)
        self.server_state = SqliteServerState(db)
        self.pep = SqlitePep(db)
        self.providers = SqliteProviders(db)
        self.enlistment = SqliteEnlistment(db)
        self.policy = SqlitePolicy(db)
        self.media = SqliteMedia(db)
        self.changes = SqliteChanges(db)

    async def ping(self) -> None:
        async with self.db.conn.execute("SELECT 1") as cur:
            await cur.fetchone()

    async def close(self) -> None:
        await self.db.conn.close()


async def open_sqlite(path: Path | str, *, synchronous: str = "FULL") -> SqliteStorage:
    """Open (creating if needed) and migrate the database at ``path`` (``":memory:"`` works)."""
    if synchronous.upper() not in SYNCHRONOUS_MODES:
        raise StorageError(f"sqlite synchronous must be one of {SYNCHRONOUS_MODES}")
    conn = await aiosqlite.connect(str(path), isolation_level=None)
    try:
        await conn.execute("PRAGMA journal_mode=WAL")
        await conn.execute(f"PRAGMA synchronous={synchronous.upper()}")
        await conn.execute("PRAGMA foreign_keys=ON")
        await conn.execute("PRAGMA busy_timeout=10000")
        await _migrate(conn)
    except BaseException:
        await conn.close()
        raise
    return SqliteStorage(SqliteDatabase(conn))


async def _migrate(conn: aiosqlite.Connection) -> None:
    async with conn.execute("PRAGMA user_version") as cur:
        row = await cur.fetchone()
    current = int(row[0]) if row else 0
    available = migrations()
    if current > len(available):
        raise StorageError(
            f"database schema version {current} is newer than this Interlink "
            f"({len(available)}); upgrade Interlink"
        )
    for number, sql in available[current:]:
        await conn.executescript(f"BEGIN IMMEDIATE;\n{sql}\nPRAGMA user_version={number};\nCOMMIT;")
