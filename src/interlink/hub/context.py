"""What every hub service shares: settings, clock, addressing, sessions, storage, observers and
background tasks. Built once by :class:`~interlink.hub.hub.Hub` from what the composition root
gives it."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from interlink.cluster import Cluster
from interlink.cluster.local import LocalCluster
from interlink.hub.addressing import Addressing
from interlink.hub.archive import ArchiveLimits
from interlink.hub.auth_throttle import ThrottleLimits
from interlink.hub.groups.settings import GroupSettings
from interlink.hub.nodes import Fanout
from interlink.hub.observers import HubObservers
from interlink.hub.policy.limits import PolicyLimits
from interlink.hub.session import BindConflictPolicy, SessionRegistry
from interlink.hub.stats import HubStats
from interlink.storage import Storage
from interlink.xmpp.jid import JID

log = logging.getLogger("interlink.hub")


@dataclass(frozen=True, slots=True)
class HubSettings:
    offline_max_per_account: int = 1000
    offline_max_bytes_per_account: int = 16 * 1024 * 1024  # the stanzas of one queue
    offline_drain_batch: int = 100
    # seconds before a drain the database was too busy for is tried again (while the account
    # has a session to deliver to)
    offline_drain_retry: float = 1.0
    bind_conflict: BindConflictPolicy = BindConflictPolicy.OVERRIDE
    max_roster_items: int = 1000
    max_roster_name_length: int = 1023
    max_roster_groups: int = 64
    max_roster_bytes: int = 1024 * 1024  # contacts, names and groups of one roster (UTF-8)
    max_pending_subscriptions: int = 1000  # requests kept for one account to answer
    max_pending_subscription_bytes: int = 4096  # one kept request; beyond, kept bare
    max_directed_presences: int = 1000  # addresses one session sent directed presence to
    write_stall_timeout: float = 30.0  # a reader this slow during an offline drain is dropped
    sm_resume_window: float = 300.0  # XEP-0198: a lost session waits this long to be resumed
    pep_max_nodes: int = 256  # per account
    pep_max_items: int = 256  # per node; what "max" means in publish options
    pep_max_item_bytes: int = 128 * 1024  # one serialized item payload
    pep_quota_bytes: int = 1024 * 1024  # all stored item payloads of one account
    pep_max_subscriptions: int = 1024  # explicit subscriptions one account holds, everywhere
    private_quota_bytes: int = 256 * 1024  # XEP-0049: all stored fragments of one account
    private_max_fragments: int = 64  # XEP-0049: namespaces one account stores
    private_max_fragment_bytes: int = 64 * 1024  # XEP-0049: one serialized fragment
    vcard_max_bytes: int = 128 * 1024  # XEP-0054: one account's serialized vCard
    max_sessions_per_account: int = 32  # bound resources of one account at once
    auth_throttle: ThrottleLimits = field(default_factory=ThrottleLimits)  # SASL back-off
    policy: PolicyLimits = field(default_factory=PolicyLimits)  # consent and abuse (hub.policy)
    archive: ArchiveLimits = field(default_factory=ArchiveLimits)  # XEP-0313 (hub.archive)
    groups: GroupSettings = field(default_factory=GroupSettings)  # XEP-0045 rooms (hub.groups)
    fanout_backlog: int = 10_000  # in a cluster: stanzas waiting for other nodes (hub.nodes)

    def __post_init__(self) -> None:
        for name in (
            "offline_max_per_account",
            "offline_drain_batch",
            "max_roster_items",
            "max_sessions_per_account",
            "fanout_backlog",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")


class KeyedLock:
    """One asyncio lock per key, forgotten when nobody holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[JID, tuple[asyncio.Lock, int]] = {}

    def __len__(self) -> int:
        return len(self._locks)

    @asynccontextmanager
    async def hold_all(self, *keys: JID) -> AsyncIterator[None]:
        """Hold the locks of several keys, taken in one global order (no deadlock)."""
        async with AsyncExitStack() as stack:
            for key in sorted(set(keys), key=str):
                await stack.enter_async_context(self.hold(key))
            yield

    @asynccontextmanager
    async def hold(self, key: JID) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (None, 0))
        if lock is None:
            lock = asyncio.Lock()
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)


class HubContext:
    def __init__(
        self,
        settings: HubSettings,
        storage: Storage,
        clock: Callable[[], float],
        addressing: Addressing,
        sessions: SessionRegistry,
        observers: HubObservers,
        cluster: Cluster | None = None,
    ) -> None:
        self.settings = settings
        # the other hub processes (the in-process default: this one alone)
        self.cluster: Cluster = LocalCluster() if cluster is None else cluster
        self.storage = storage
        self.clock = clock
        self.addressing = addressing
        self.observers = observers
        self.sessions = sessions
        # Roster changes read, decide and write; one owner's changes must not interleave.
        self.roster_locks = KeyedLock()
        self.pep_locks = KeyedLock()
        # Refusals by reason (consent rules, rate limits, full queues), for metrics.
        self.refusals: Counter[str] = Counter()
        self.stats = HubStats()  # stanzas and routing latency, for metrics
        # in a cluster: what goes to sessions on other nodes without holding up routing
        self.fanout = Fanout(self.cluster, settings.fanout_backlog)
        self._tasks: set[asyncio.Task[None]] = set()

    def spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        """Run ``coro`` in the background; errors are logged, the task is awaited on shutdown."""
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error(
                "background task failed",
                exc_info=task.exception(),
                extra={"task": task.get_name()},
            )

    async def drain_tasks(self) -> None:
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
