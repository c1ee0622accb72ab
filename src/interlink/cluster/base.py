"""The cluster's protocols and records.

*Nodes.* Each hub process is a node with an id (``cluster.node_id``, unique in the cluster). A
node is alive while it renews its lease (:meth:`SessionDirectory.heartbeat`) within
``node_ttl`` seconds; one that stops (killed, frozen, cut off) is dead once the lease runs out,
and then: its sessions vanish from every lookup, and a survivor (:meth:`NodeBus.reclaim`) takes
the stanzas still in its inbox, to store them offline. A node whose lease ran out while it was
still running is *fenced*: its next heartbeat raises :class:`NodeFencedError`, and it must stop
serving (its inbox may already be another node's), not carry on.

*Failures.* A call that needs the shared server raises :class:`ClusterError` when the server
cannot be reached, times out, or no connection is free within the pool's bounded wait; the
caller decides what that means (routing stores the message offline instead).

*Delivery.* :meth:`NodeBus.send` puts a stanza in a live node's inbox and returns ``True``, or
returns ``False`` for a node that is not alive (the caller stores the message offline). A stanza
in an inbox is either handled by that node (:meth:`NodeBus.receive` … :meth:`NodeBus.done`,
once it was delivered or stored), or, if the node dies first, reclaimed by a survivor: never
dropped. Inboxes keep their order.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple, Protocol, TypeAlias

from interlink.errors import InterlinkError

ChangeCallback: TypeAlias = Callable[[str], None]  # (kind)


class ClusterError(InterlinkError):
    """The shared server could not be reached, did not answer in time, or no connection to it
    was free within the pool's wait: the operation may or may not have taken effect. Every
    call of the protocols below that talks to a server raises this, and only this, for such
    failures (the in-process cluster never does)."""


class NodeFencedError(ClusterError):
    """This node's lease ran out: the cluster treats it as dead."""


@dataclass(frozen=True, slots=True)
class Located:
    """A session somewhere in the cluster."""

    full_jid: str
    node: str
    available: bool
    priority: int


class InboxEntry(NamedTuple):
    id: str  # the inbox's own id of the entry (its order)
    payload: str


class SessionDirectory(Protocol):
    """Which node holds which full JID."""

    async def heartbeat(self) -> None:
        """Renew this node's lease. Raises :class:`NodeFencedError` if it ran out; the next
        call takes a new lease (the node rejoins, once it has ended the sessions it held)."""

    async def bind(self, full_jid: str, *, available: bool, priority: int) -> None:
        """This node holds ``full_jid`` (again, with new presence)."""

    async def unbind(self, full_jid: str) -> None:
        """This node no longer holds ``full_jid`` (a no-op if another node holds it now)."""

    async def locate(self, bare_jid: str, *, cached: bool = False) -> list[Located]:
        """The sessions of ``bare_jid`` on live nodes, in no particular order.

        ``cached``: an answer this node may have kept from an earlier lookup, dropped when a
        notice says the account's sessions changed (and after a bounded time). It may still
        name a session that just left or a node that just died, or miss one that just came:
        fit for routing, where a stale answer costs a detour (a node that no longer holds the
        session stores the message; :meth:`NodeBus.send` refuses a dead node), never a message.
        Without it, the answer is read from the shared server now."""
        ...

    def peek(self, bare_jid: str) -> list[Located] | None:
        """The answer :meth:`locate` with ``cached`` would give without I/O, if this node holds
        one now; else ``None``. For work that may be skipped when the account has no session
        elsewhere (copies, not messages)."""
        ...

    async def live_nodes(self) -> set[str]: ...

    async def dead_nodes(self) -> set[str]:
        """Nodes that held sessions or had an inbox and whose lease ran out."""
        ...

    async def forget(self, node: str) -> int:
        """Remove a dead node's sessions from the directory; returns how many."""
        ...


class NodeBus(Protocol):
    """Each node's inbox of stanzas routed to it by the others."""

    async def send(self, node: str, payload: str) -> bool:
        """Append ``payload`` to ``node``'s inbox if it is alive; whether it was. Sends to one
        node made at about the same time may be appended together (one round trip), in the
        order they were made. Raises :class:`ClusterError` (then it may have been appended)."""
        ...

    async def receive(self, wait: float, limit: int = 100) -> list[InboxEntry]:
        """The next entries of this node's own inbox, oldest first, each once (a node that
        starts again under its id gets those it left undone first); waiting up to ``wait``
        seconds for one."""
        ...

    async def done(self, ids: list[str]) -> None:
        """Remove handled entries from this node's inbox: at once, or (Redis) together with
        the next :meth:`receive`, or when the node closes. Either way, entries handled by a
        node killed before they were removed are delivered again by the survivor that
        reclaims its inbox (at least once across a crash)."""

    async def reclaim(self, node: str, limit: int = 100) -> list[InboxEntry]:
        """The oldest entries of dead ``node``'s inbox, for a survivor to store offline; none
        while ``node`` is alive, or while another survivor is reclaiming it."""
        ...

    async def reclaimed(self, node: str, ids: list[str]) -> None:
        """Remove entries of ``node``'s inbox a survivor has stored."""


class SharedBuckets(Protocol):
    """Token buckets every node draws from (rate limits, throttles)."""

    async def take(self, key: str, *, count: float, period: float, now: float) -> float:
        """Take one token from the bucket ``key`` (``count`` tokens per ``period`` seconds,
        at most ``count`` saved up): 0.0 if one was there, else the seconds until one will be.
        ``now`` is the caller's clock, seconds since the epoch."""
        ...

    async def take_all(self, buckets: list[tuple[str, float, float]], now: float) -> float:
        """Take one token from each bucket ``(key, count, period)`` if every one has one (0.0),
        else take none and return the seconds until every one will have one. Atomic."""
        ...


class Invalidation(Protocol):
    """Notices that operator state changed, so every node reloads it at once instead of at its
    next poll of the change feed."""

    async def publish(self, kind: str) -> None: ...

    def subscribe(self, callback: ChangeCallback) -> None:
        """``callback(kind)`` for every notice, from any node (this one included)."""


class Cluster(Protocol):
    """One node's view of the cluster."""

    @property
    def node_id(self) -> str: ...

    @property
    def directory(self) -> SessionDirectory: ...

    @property
    def bus(self) -> NodeBus: ...

    @property
    def buckets(self) -> SharedBuckets: ...

    @property
    def invalidation(self) -> Invalidation: ...

    @property
    def shared(self) -> bool:
        """Whether other nodes may exist (False: in-process, this node alone)."""
        ...

    async def ping(self) -> None:
        """Raise if the shared server cannot answer (readiness)."""

    async def close(self) -> None:
        """Leave: release the lease, so survivors need not wait for it to run out."""
