"""The SQLite connection every repository shares, with its write lock.

One aiosqlite connection serves the whole hub. Multi-statement writes run inside
:meth:`SqliteDatabase.transaction`, which serialises them, so coroutines never interleave their
statements inside one transaction. ``synchronous=FULL`` with WAL makes every commit durable
(fsync) before the awaiting caller continues: the hub acknowledges nothing that is not on disk.

Every statement is a hop to aiosqlite's thread and back, so reads go through :meth:`fetch_all`
and :meth:`fetch_one`, one hop each (``execute_fetchall``), not execute + fetch + close.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeAlias

import aiosqlite

from interlink.errors import StorageError

SYNCHRONOUS_MODES = ("OFF", "NORMAL", "FULL", "EXTRA")

# A row as SQLite gives it: its values' types are the columns' (dynamic) ones, which the row
# mappers beside each query convert.
Row: TypeAlias = tuple[Any, ...]
Params: TypeAlias = Iterable[Any]  # a sequence for ``?``, a mapping for ``:name``


class SqliteDatabase:
    """The connection plus the write lock."""

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self.conn = conn
        self._lock = asyncio.Lock()

    async def fetch_all(self, sql: str, params: Params = ()) -> list[Row]:
        """Every row ``sql`` answers, in one hop to the SQLite thread."""
        return [tuple(row) for row in await self.conn.execute_fetchall(sql, params)]

    async def fetch_one(self, sql: str, params: Params = ()) -> Row | None:
        """The first row ``sql`` answers (``None`` if none); for queries of one row."""
        rows = await self.fetch_all(sql, params)
        return rows[0] if rows else None

    @asynccontextmanager
    async def exclusive(self) -> AsyncIterator[aiosqlite.Connection]:
        """The connection, with no other transaction open or starting meanwhile: for a write
        that is a single statement, which SQLite commits (durably) on its own when it ends."""
        async with self._lock:
            yield self.conn

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """``BEGIN IMMEDIATE`` … ``COMMIT``; rolled back if the body raises."""
        async with self._lock:
            await self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.conn
            except BaseException:
                await self.conn.rollback()
                raise
            await self.conn.commit()

    async def close(self) -> None:
        await self.conn.close()


async def connect(path: Path | str, *, synchronous: str = "FULL") -> SqliteDatabase:
    """Open (creating if needed) the database at ``path`` (``":memory:"`` works) in WAL mode
    with foreign keys on. Raises :class:`~interlink.errors.StorageError` for a bad mode."""
    if synchronous.upper() not in SYNCHRONOUS_MODES:
        raise StorageError(f"sqlite synchronous must be one of {SYNCHRONOUS_MODES}")
    conn = await aiosqlite.connect(str(path), isolation_level=None)
    try:
        await conn.execute("PRAGMA journal_mode=WAL")
        await conn.execute(f"PRAGMA synchronous={synchronous.upper()}")
        await conn.execute("PRAGMA foreign_keys=ON")
        await conn.execute("PRAGMA busy_timeout=10000")
    except BaseException:
        await conn.close()
        raise
    return SqliteDatabase(conn)
