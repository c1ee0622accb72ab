"""Fixtures every test package may use: the real servers of :mod:`tests.servers`, started once
per session, and only if a test asks for them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.servers import PostgresServer, RedisServer, postgres_server, redis_server


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    with postgres_server() as server:
        yield server


@pytest.fixture(scope="session")
def redis() -> Iterator[RedisServer]:
    with redis_server() as server:
        yield server
