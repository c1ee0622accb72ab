"""The lease of a cluster node is renewed on its own schedule: nothing else this node does
with the cluster (reclaiming a dead node's inbox, reading the live nodes) can hold it up, or
a busy node would let its lease lapse and end every session it holds."""

from __future__ import annotations

import asyncio
from typing import Any, cast

from interlink.hub.cluster import ClusterNode


class StuckCluster:
    """Renewals are counted; everything else waits for ever (a slow Redis, a huge reclaim)."""

    def __init__(self) -> None:
        self.renewals = 0
        self.directory = self
        self.bus = self

    async def heartbeat(self) -> None:
        self.renewals += 1

    async def _never(self, *_: Any, **__: Any) -> Any:
        await asyncio.Event().wait()

    dead_nodes = live_nodes = receive = _never


async def test_the_lease_is_renewed_while_reclaiming_dead_nodes_is_stuck() -> None:
    cluster = StuckCluster()
    node = ClusterNode(cast(Any, None), cast(Any, cluster), cast(Any, None), heartbeat_every=0.01)
    node.start()
    try:
        async with asyncio.timeout(5):
            while cluster.renewals < 5:
                await asyncio.sleep(0.01)
    finally:
        await node.stop()
    assert cluster.renewals >= 5


class LapsedCluster:
    """This node's own lease has lapsed (it is among the dead) beside a really dead node."""

    node_id = "me"

    def __init__(self) -> None:
        self.directory = self
        self.bus = self
        self.reclaimed: list[str] = []
        self.forgotten: list[str] = []

    async def dead_nodes(self) -> set[str]:
        return {"me", "gone"}

    async def reclaim(self, node: str) -> list[Any]:
        self.reclaimed.append(node)
        return []

    async def forget(self, node: str) -> int:
        self.forgotten.append(node)
        return 0


async def test_a_node_whose_lease_lapsed_does_not_reap_itself() -> None:
    """Its inbox is read by its own inbox loop; reclaiming it too would deliver it twice, and
    forgetting it would unbind its sessions behind its back."""
    cluster = LapsedCluster()
    node = ClusterNode(cast(Any, None), cast(Any, cluster), cast(Any, None), heartbeat_every=1)
    assert await node.reap() == 0
    assert cluster.reclaimed == ["gone"]
    assert cluster.forgotten == ["gone"]
