"""The cluster test kit: a test taking ``nodes`` runs once per implementation (in-process, and
Redis where ``redis-server`` is installed: a throwaway server the session starts once, a fresh
key prefix per test) and makes the nodes of one cluster with ``nodes(node_id)``.

``INTERLINK_TEST_CLUSTERS`` (comma-separated: ``local``, ``redis``) picks the implementations."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from interlink.cluster import Cluster
from interlink.cluster.local import LocalBackplane, LocalCluster
from interlink.cluster.redis import open_redis_cluster
from tests.servers import RedisServer, redis_available

TTL = 0.5  # node lease in these tests: a stopped node is dead after this long

MakeNode = Callable[[str], Awaitable[Cluster]]


def clusters_under_test() -> list[str]:
    default = "local,redis" if redis_available() else "local"
    return [n.strip() for n in os.environ.get("INTERLINK_TEST_CLUSTERS", default).split(",")]


@pytest.fixture(params=clusters_under_test())
async def nodes(request: pytest.FixtureRequest) -> AsyncIterator[MakeNode]:
    opened: list[Cluster] = []
    if request.param == "local":
        plane = LocalBackplane(node_ttl=TTL)

        async def make(node_id: str) -> Cluster:
            node = LocalCluster(node_id, plane)
            await node.directory.heartbeat()
            opened.append(node)
            return node

    else:
        server: RedisServer = request.getfixturevalue("redis")
        prefix = f"t{uuid.uuid4().hex[:10]}:"

        async def make(node_id: str) -> Cluster:
            node = await open_redis_cluster(server.url, node_id, prefix=prefix, node_ttl=TTL)
            opened.append(node)
            return node

    try:
        yield make
    finally:
        for node in opened:
            await node.close()
