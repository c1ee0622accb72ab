"""The storage test kit: a test that takes the ``storage`` fixture runs once per engine, on a fresh
migrated database, and sees it only through the :class:`~interlink.storage.Storage` protocol.

Engines under test: those named in ``INTERLINK_TEST_ENGINES`` (comma-separated); when it is
unset, SQLite and, where PostgreSQL is installed (``scripts/test`` installs it), PostgreSQL -- a
throwaway server the session starts once (:mod:`tests.servers`), with a new database per test.
An engine is added here with one entry in :data:`OPENERS`: how to open a fresh, empty database
of that engine for one test. Engine-specific tests (SQL plans, group commits on one connection,
commit order across connections) live under ``tests/storage/<engine>/``.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from interlink.storage import Storage, StorageConfig, open_storage
from interlink.xmpp.sasl import ScramCredentials, StoredCredentials
from tests.servers import PostgresServer, postgres_available

T0 = 1_800_000_000.0
DOMAIN = "hub.test"


async def _open_sqlite(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    return await open_storage(StorageConfig(engine="sqlite", sqlite_path=tmp_path / "hub.db"))


async def _open_postgres(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    server: PostgresServer = request.getfixturevalue("postgres")  # started on first use
    dsn = server.database()
    request.addfinalizer(lambda: server.drop(dsn))
    return await open_storage(
        StorageConfig(engine="postgres", postgres_dsn=dsn, postgres_pool_size=4)
    )


OPENERS: dict[str, Callable[[pytest.FixtureRequest, Path], Awaitable[Storage]]] = {
    "sqlite": _open_sqlite,
    "postgres": _open_postgres,
}


def default_engines() -> str:
    return "sqlite,postgres" if postgres_available() else "sqlite"


def engines_under_test() -> list[str]:
    chosen = os.environ.get("INTERLINK_TEST_ENGINES", default_engines())
    names = [n.strip() for n in chosen.split(",")]
    unknown = [n for n in names if n not in OPENERS]
    if unknown:
        raise RuntimeError(f"INTERLINK_TEST_ENGINES names unknown engines {unknown}")
    return names


@pytest.fixture(params=engines_under_test())
def engine(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
async def storage(
    engine: str, tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[Storage]:
    opened = await OPENERS[engine](request, tmp_path)
    try:
        yield opened
    finally:
        await opened.close()


def credentials(tag: bytes = b"a") -> StoredCredentials:
    """Fixed credentials (deriving real ones is slow and not what these tests are about)."""
    return StoredCredentials(
        {
            "SCRAM-SHA-1": ScramCredentials(tag * 16, tag * 20, tag * 20, 4096),
            "SCRAM-SHA-256": ScramCredentials(tag * 16, tag * 32, tag * 32, 4096),
        }
    )


def jid(local: str) -> str:
    return f"{local}@{DOMAIN}"


async def account(storage: Storage, local: str) -> str:
    """Create the account ``local@hub.test`` (most rows belong to an account) and return it."""
    address = jid(local)
    await storage.accounts.create(address, credentials(), T0)
    return address
