"""The in-process cluster: the embedded default (one node, nothing shared with anyone), and
several nodes in one process sharing a :class:`LocalBackplane` (for tests). Same contract as
the Redis one (tests/cluster)."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable

from interlink.cluster.base import (
    ChangeCallback,
    InboxEntry,
    Located,
    NodeFencedError,
)


class LocalBackplane:
    """What the nodes of one process share (Redis's part, in memory)."""

    def __init__(self, *, node_ttl: float = 10.0, clock: Callable[[], float] = time.monotonic):
        self.node_ttl = node_ttl
        self.clock = clock
        self.leases: dict[str, float] = {}  # node -> lease end
        self.known: set[str] = set()
        self.sessions: dict[str, dict[str, Located]] = {}  # bare -> full -> where
        self.inboxes: dict[str, list[InboxEntry]] = {}
        self.arrived: dict[str, asyncio.Event] = {}
        self.ids = itertools.count(1)
        self.buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, updated)
        self.subscribers: list[ChangeCallback] = []
        self.reapers: dict[str, str] = {}  # dead node -> the survivor reclaiming its inbox

    def alive(self, node: str) -> bool:
        end = self.leases.get(node)
        return end is not None and end > self.clock()


class _Directory:
    def __init__(self, plane: LocalBackplane, node: str) -> None:
        self._plane = plane
        self._node = node
        self._leased = False  # False: the next heartbeat takes a new lease

    async def heartbeat(self) -> None:
        plane = self._plane
        if self._leased and not plane.alive(self._node):
            self._leased = False
            raise NodeFencedError(f"node {self._node}'s lease ran out")
        plane.known.add(self._node)
        plane.leases[self._node] = plane.clock() + plane.node_ttl
        self._leased = True

    async def bind(self, full_jid: str, *, available: bool, priority: int) -> None:
        bare = full_jid.split("/", 1)[0]
        where = Located(full_jid, self._node, available, priority)
        self._plane.sessions.setdefault(bare, {})[full_jid] = where

    async def unbind(self, full_jid: str) -> None:
        bare = full_jid.split("/", 1)[0]
        held = self._plane.sessions.get(bare, {})
        if (where := held.get(full_jid)) is not None and where.node == self._node:
            del held[full_jid]
            if not held:
                del self._plane.sessions[bare]

    def peek(self, bare_jid: str) -> list[Located] | None:
        plane = self._plane  # in one process the answer is always at hand, and exact
        return [s for s in plane.sessions.get(bare_jid, {}).values() if plane.alive(s.node)]

    async def locate(self, bare_jid: str, *, cached: bool = False) -> list[Located]:
        plane = self._plane
        return [s for s in plane.sessions.get(bare_jid, {}).values() if plane.alive(s.node)]

    async def live_nodes(self) -> set[str]:
        return {n for n in self._plane.known if self._plane.alive(n)}

    async def dead_nodes(self) -> set[str]:
        plane = self._plane
        return {n for n in plane.known if not plane.alive(n)}

    async def forget(self, node: str) -> int:
        plane = self._plane
        removed = 0
        for bare in list(plane.sessions):
            held = plane.sessions[bare]
            for full in [f for f, s in held.items() if s.node == node]:
                del held[full]
                removed += 1
            if not held:
                del plane.sessions[bare]
        if not plane.inboxes.get(node):
            plane.known.discard(node)
        return removed


class _Bus:
    def __init__(self, plane: LocalBackplane, node: str) -> None:
        self._plane = plane
        self._node = node
        self._last = 0  # the newest entry received

    async def send(self, node: str, payload: str) -> bool:
        plane = self._plane
        if not plane.alive(node):
            return False
        plane.inboxes.setdefault(node, []).append(InboxEntry(str(next(plane.ids)), payload))
        plane.arrived.setdefault(node, asyncio.Event()).set()
        return True

    async def receive(self, wait: float, limit: int = 100) -> list[InboxEntry]:
        plane = self._plane
        if not self._new():
            event = plane.arrived.setdefault(self._node, asyncio.Event())
            event.clear()
            try:
                # not wait_for: the inbox loop that waits here is cancelled on stop, and on
                # Python 3.11 wait_for can lose a cancellation that meets its timeout
                async with asyncio.timeout(wait):
                    await event.wait()
            except TimeoutError:
                return []
        entries = self._new()[:limit]
        if entries:
            self._last = int(entries[-1].id)
        return entries

    def _new(self) -> list[InboxEntry]:
        return [e for e in self._plane.inboxes.get(self._node, []) if int(e.id) > self._last]

    async def done(self, ids: list[str]) -> None:
        self._remove(self._node, ids)

    async def reclaim(self, node: str, limit: int = 100) -> list[InboxEntry]:
        plane = self._plane
        if plane.alive(node) or plane.reapers.setdefault(node, self._node) != self._node:
            return []
        return list(plane.inboxes.get(node, [])[:limit])

    async def reclaimed(self, node: str, ids: list[str]) -> None:
        plane = self._plane
        self._remove(node, ids)
        if not plane.inboxes.get(node):
            plane.reapers.pop(node, None)
            holds = any(s.node == node for held in plane.sessions.values() for s in held.values())
            if not plane.alive(node) and not holds:
                plane.known.discard(node)

    def _remove(self, node: str, ids: list[str]) -> None:
        gone = set(ids)
        inbox = self._plane.inboxes.get(node, [])
        self._plane.inboxes[node] = [e for e in inbox if e.id not in gone]


class _Buckets:
    def __init__(self, plane: LocalBackplane) -> None:
        self._plane = plane

    async def take(self, key: str, *, count: float, period: float, now: float) -> float:
        return take_token(self._plane.buckets, key, count=count, period=period, now=now)

    async def take_all(self, buckets: list[tuple[str, float, float]], now: float) -> float:
        table = self._plane.buckets
        refilled = {key: _refill(table, key, count, period, now) for key, count, period in buckets}
        wait = max(
            (
                (1.0 - refilled[key][0]) * period / count
                for key, count, period in buckets
                if refilled[key][0] < 1.0
            ),
            default=0.0,
        )
        for key, (tokens, updated) in refilled.items():
            table[key] = (tokens - (1.0 if wait == 0.0 else 0.0), updated)
        return wait


def _refill(
    table: dict[str, tuple[float, float]], key: str, count: float, period: float, now: float
) -> tuple[float, float]:
    tokens, updated = table.get(key, (count, now))
    tokens = min(count, tokens + max(0.0, now - updated) * count / period)
    return tokens, max(updated, now)


def take_token(
    buckets: dict[str, tuple[float, float]], key: str, *, count: float, period: float, now: float
) -> float:
    """The token bucket arithmetic (the Redis script does the same): refill by the time passed
    since the last take, at most ``count``; take one if there is one."""
    per_second = count / period
    tokens, updated = buckets.get(key, (count, now))
    tokens = min(count, tokens + max(0.0, now - updated) * per_second)
    updated = max(updated, now)
    if tokens >= 1.0:
        buckets[key] = (tokens - 1.0, updated)
        return 0.0
    buckets[key] = (tokens, updated)
    return (1.0 - tokens) / per_second


class _Invalidation:
    def __init__(self, plane: LocalBackplane) -> None:
        self._plane = plane

    async def publish(self, kind: str) -> None:
        for callback in list(self._plane.subscribers):
            callback(kind)

    def subscribe(self, callback: ChangeCallback) -> None:
        self._plane.subscribers.append(callback)


class LocalCluster:
    """One node on a :class:`LocalBackplane` (a fresh one of its own by default: the embedded
    hub, alone)."""

    def __init__(self, node_id: str = "local", plane: LocalBackplane | None = None) -> None:
        self.node_id = node_id
        self.plane = LocalBackplane() if plane is None else plane
        self.shared = plane is not None
        self.directory = _Directory(self.plane, node_id)
        self.bus = _Bus(self.plane, node_id)
        self.buckets = _Buckets(self.plane)
        self.invalidation = _Invalidation(self.plane)

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        self.plane.leases.pop(self.node_id, None)
