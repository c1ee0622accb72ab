"""What the hub processes of a cluster share, behind protocols (:mod:`interlink.cluster.base`):
which node holds which session (:class:`SessionDirectory`), each node's inbox of stanzas routed
to it by others (:class:`NodeBus`), token buckets every node draws from (:class:`SharedBuckets`)
and notices that operator state changed (:class:`Invalidation`).

Two implementations: :mod:`interlink.cluster.local`, in-process (the embedded default, one
process, no server; also several nodes in one process for tests), and
:mod:`interlink.cluster.redis` on a Redis server (Debian's ``redis-server``). The cluster layer
sits beside storage: it imports only :mod:`interlink.cluster` and :mod:`interlink.errors`."""

from __future__ import annotations

from interlink.cluster.base import (
    Cluster,
    ClusterError,
    Invalidation,
    Located,
    NodeBus,
    NodeFencedError,
    SessionDirectory,
    SharedBuckets,
)

__all__ = [
    "Cluster",
    "ClusterError",
    "Invalidation",
    "Located",
    "NodeBus",
    "NodeFencedError",
    "SessionDirectory",
    "SharedBuckets",
]
