"""PostgreSQL-only storage tests: skipped with a reason where PostgreSQL is not installed (the
contract tests one level up run on SQLite alone then); ``scripts/test`` installs it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from interlink.storage.postgres.engine import PostgresStorage, open_postgres
from tests.servers import PostgresServer, postgres_available


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if not postgres_available():
        skip = pytest.mark.skip(reason="PostgreSQL is not installed (scripts/test installs it)")
        for item in items:
            if "storage/postgres/" in str(item.path):
                item.add_marker(skip)


@pytest.fixture
def pg_dsn(postgres: PostgresServer) -> str:
    """A new empty database on the session's server."""
    return postgres.database()


@pytest.fixture
async def pg(pg_dsn: str) -> AsyncIterator[PostgresStorage]:
    storage = await open_postgres(pg_dsn, pool_size=4)
    try:
        yield storage
    finally:
        await storage.close()


@pytest.fixture
async def pg_other_node(pg_dsn: str, pg: PostgresStorage) -> AsyncIterator[PostgresStorage]:
    """The same database opened a second time: another hub process, its own pool."""
    storage = await open_postgres(pg_dsn, pool_size=4)
    try:
        yield storage
    finally:
        await storage.close()
