"""The PostgreSQL connection pool every repository shares.

psycopg 3 (async) with :mod:`psycopg_pool`: fully typed (``mypy --strict`` checks every query
call), a pool that checks, replaces and bounds its connections, and ``%s`` placeholders, so the
SQL of each repository stays a line-for-line twin of its SQLite one.

Connections are in autocommit mode: a read (:meth:`PostgresDatabase.fetch_all`) is one round
trip on whichever pooled connection is free, and a write runs in
:meth:`PostgresDatabase.transaction`, ``BEGIN`` … ``COMMIT`` on one connection, committed before
the awaiting caller continues. Every connection sets ``synchronous_commit = on``: ``COMMIT``
returns once its WAL is flushed, so the hub acknowledges nothing that is not on disk, whatever
the server's default.

SQLite serialises every writer; PostgreSQL runs them side by side (READ COMMITTED). A repository
whose write checks a budget or cap before it stores (an offline queue's cap, a PEP quota) first
takes :func:`lock` on what the check reads, for the rest of its transaction, so the check and the
write cannot be split by a concurrent writer (on another connection, process or machine), and the
outcome is the one SQLite's serial writers would give.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Any, TypeAlias

from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from interlink.errors import StorageBusyError, StorageError

Row: TypeAlias = tuple[Any, ...]
Params: TypeAlias = (
    Iterable[Any] | dict[str, Any]
)  # a sequence for ``%s``, a mapping for ``%(name)s``
Connection: TypeAlias = AsyncConnection[Row]
Pool: TypeAlias = AsyncConnectionPool[Connection]


class PostgresDatabase:
    """The pool, and reads and transactions on it."""

    def __init__(self, pool: Pool) -> None:
        self.pool = pool

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[Connection]:
        """A pooled connection. Raises :class:`StorageBusyError` if none is free within the
        pool's wait (every one busy: the request fails, not the stream that made it)."""
        try:
            conn = await self.pool.getconn()
        except PoolTimeout as exc:
            raise StorageBusyError(f"no database connection free in time: {exc}") from exc
        try:
            yield conn
        finally:
            await self.pool.putconn(conn)

    async def fetch_all(self, sql: str, params: Params = ()) -> list[Row]:
        """Every row ``sql`` answers (one round trip, outside any transaction)."""
        async with self.connection() as conn:
            return await fetch_all(conn, sql, params)

    async def fetch_one(self, sql: str, params: Params = ()) -> Row | None:
        """The first row ``sql`` answers (``None`` if none)."""
        async with self.connection() as conn:
            return await fetch_one(conn, sql, params)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Connection]:
        """A pooled connection inside ``BEGIN`` … ``COMMIT``; rolled back if the body raises.
        Reads inside the transaction must use the connection it yields (:func:`fetch_one`)."""
        async with self.connection() as conn, conn.transaction():
            yield conn

    async def close(self) -> None:
        await self.pool.close()


async def fetch_all(conn: Connection, sql: str, params: Params = ()) -> list[Row]:
    """Every row ``sql`` answers on ``conn`` (inside its transaction, if one is open)."""
    cur = await conn.execute(sql, _params(params))
    return await cur.fetchall()


async def fetch_one(conn: Connection, sql: str, params: Params = ()) -> Row | None:
    cur = await conn.execute(sql, _params(params))
    return await cur.fetchone()


async def lock(conn: Connection, name: str) -> None:
    """Inside a transaction: wait for, then hold until it ends, the lock called ``name`` (e.g.
    ``"offline:alice@hub.test"``), a transaction-level advisory lock on its 64-bit hash. Two
    names with the same hash only wait for each other needlessly."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (name,))


async def lock_all(conn: Connection, names: Iterable[str]) -> None:
    """:func:`lock` for each of ``names``, in sorted order (two transactions locking some of
    the same names wait for each other, never deadlock), in one round trip: ``unnest`` yields
    the array's elements in order, and each row takes its lock as it is produced."""
    ordered = sorted(set(names))
    if ordered:
        await conn.execute(
            "SELECT count(pg_advisory_xact_lock(hashtextextended(name, 0))) "
            "FROM unnest(%b::text[]) AS name",
            (ordered,),
        )


def _params(params: Params) -> Any:
    return params if isinstance(params, dict) else tuple(params)


async def connect(dsn: str, *, pool_size: int = 10, wait: float = 10.0) -> PostgresDatabase:
    """Open a pool of ``pool_size`` connections to ``dsn`` (a libpq connection string or
    ``postgresql://`` URL), waiting at most ``wait`` seconds for the first ones.

    Raises :class:`~interlink.errors.StorageError` if the server cannot be reached, or if the
    database's collation is not ``C`` or its encoding not UTF-8 (docs/operations.md): JIDs are
    compared and ordered byte for byte, as on SQLite, which is what the ``C`` collation does."""
    if pool_size < 1:
        raise StorageError("storage.pool_size must be at least 1")
    pool: Pool = AsyncConnectionPool(
        dsn,
        min_size=pool_size,
        max_size=pool_size,
        kwargs={"autocommit": True, "options": "-c synchronous_commit=on"},
        timeout=wait,
        open=False,
    )
    try:
        await pool.open(wait=True, timeout=wait)
    except Exception as exc:
        await pool.close()
        raise StorageError(f"cannot connect to PostgreSQL: {exc}") from exc
    db = PostgresDatabase(pool)
    try:
        await _check_database(db)
    except BaseException:
        await db.close()
        raise
    return db


async def _check_database(db: PostgresDatabase) -> None:
    row = await db.fetch_one(
        "SELECT datcollate, datctype, pg_encoding_to_char(encoding) FROM pg_database "
        "WHERE datname = current_database()"
    )
    assert row is not None
    collate, ctype, encoding = (str(v) for v in row)
    if encoding != "UTF8" or collate not in ("C", "POSIX") or ctype not in ("C", "POSIX"):
        raise StorageError(
            f"the PostgreSQL database has encoding {encoding}, collation {collate} and ctype "
            f"{ctype}; Interlink needs UTF8 and C: CREATE DATABASE interlink ENCODING 'UTF8' "
            "LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0"
        )
