"""This node in a cluster (:mod:`interlink.cluster`): keeping the shared session directory in
step with the local registry, routing messages to accounts whose sessions are on other nodes,
taking what other nodes route here, and, for nodes that died, taking their undelivered stanzas
into offline storage.

Delivery across nodes: a message for an account with no session here, whose sessions are on
other nodes, is appended to those nodes' inboxes (:meth:`~interlink.cluster.NodeBus.send`, only
to a live node); failing that it is stored offline, as on one node. A node hands what arrives in
its inbox to its sessions or, if they are gone, to offline storage, and only then removes it
from the inbox. The inbox of a node that dies is reclaimed by one survivor, which stores each
message offline (or hands it to the account's sessions, if they are back on a live node). So a
message acknowledged to its sender is either delivered or stored, also when a node vanishes.

Stanzas for a session rather than an account (``live``: presence, carbons, PEP notifications)
are written to the session if it is still here, else dropped, like on one node when a session
has just gone. Other kinds of request (``probe``, ``room``) go to the service that registered
a handler for them.

With the in-process cluster (one node, the embedded default) none of this runs: the directory
is not written and no inbox is read.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from interlink.cluster import Cluster, NodeFencedError
from interlink.cluster.base import InboxEntry
from interlink.errors import StanzaError, StreamError, StreamErrorCondition
from interlink.hub.carbons import Carbons
from interlink.hub.context import HubContext
from interlink.hub.nodes import WHEN_AVAILABLE, WHEN_CARBONS, WHEN_ROSTER
from interlink.hub.offline import OfflineDelivery
from interlink.hub.session import Session
from interlink.tasks import cancel_and_wait
from interlink.xmpp.jid import JID, InvalidJID
from interlink.xmpp.stanza import Message, parse_stanza
from interlink.xmpp.xml import parse_fragment

log = logging.getLogger("interlink.cluster")
Handler = Callable[[Mapping[str, Any]], Awaitable[None]]  # the payload's body


def _meets(session: Session, when: str | None) -> bool:
    """Whether ``session`` is what a live stanza was sent for (see ``interlink.hub.nodes``)."""
    if when is None:
        return True
    if when == WHEN_AVAILABLE:
        return session.available
    if when == WHEN_CARBONS:
        return session.available and session.carbons
    if when == WHEN_ROSTER:
        return session.roster_requested
    if when.startswith("notify:"):
        return session.available and session.wants_notify(when[len("notify:") :])
    return False


class ClusterNode:
    """Renews this node's lease, handles its inbox and reclaims dead nodes' inboxes."""

    def __init__(
        self,
        ctx: HubContext,
        cluster: Cluster,
        offline: OfflineDelivery,
        *,
        heartbeat_every: float,
        on_fenced: Callable[[], None] | None = None,
        carbons: Carbons | None = None,
        handlers: Mapping[str, Handler] | None = None,
        on_nodes: Callable[[set[str]], None] | None = None,
        inbox_tries: int = 10,
    ) -> None:
        """``carbons`` copies a message delivered here to the account's other resources;
        ``handlers`` take the requests of other kinds, by kind; ``on_nodes`` hears the live
        nodes every ``heartbeat_every`` seconds (apart from the lease's renewal).
        ``inbox_tries``: attempts at handing over one entry of the inbox (delivering or
        storing it) before it is left in the inbox for later, so it cannot hold up the rest."""
        self._ctx = ctx
        self._on_nodes = on_nodes
        self._carbons = carbons
        self._handlers = dict(handlers or {})
        self._cluster = cluster
        self._offline = offline
        self._every = heartbeat_every
        self._on_fenced = on_fenced
        self.inbox_tries = inbox_tries
        self._tasks: list[asyncio.Task[None]] = []
        self.received = 0  # stanzas taken from this node's inbox (metrics, tests)
        self.reclaimed = 0  # stanzas taken from dead nodes' inboxes

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._lease(), name="cluster-lease"),
            loop.create_task(self._watch_nodes(), name="cluster-nodes"),
            loop.create_task(self._inbox(), name="cluster-inbox"),
        ]

    async def stop(self) -> None:
        await cancel_and_wait(self._tasks)
        self._tasks = []

    async def _lease(self) -> None:
        """Renew the lease every ``heartbeat_every`` seconds, counted from one renewal's start
        to the next: nothing else waits in this loop, so a slow reclaim of a dead node's inbox,
        or a busy event loop that makes every round trip slow, does not add up to a lapse
        (a saturated single node was seen fencing itself when renewals waited for those)."""
        loop = asyncio.get_running_loop()
        due = loop.time()
        while True:
            due += self._every
            await asyncio.sleep(max(0.0, due - loop.time()))
            due = max(due, loop.time() - self._every)  # after a long stall: no burst of renewals
            try:
                await self._cluster.directory.heartbeat()
            except NodeFencedError:
                log.error("this node's lease ran out: its sessions end, it rejoins")
                self._fenced()
            except Exception:
                log.warning("cluster heartbeat failed", exc_info=True)

    async def _watch_nodes(self) -> None:
        """Every ``heartbeat_every`` seconds: reclaim dead nodes' inboxes, hear the live ones."""
        while True:
            await asyncio.sleep(self._every)
            try:
                await self.reap()
                await self.read_nodes()
            except Exception:
                log.warning("reading the cluster's nodes failed", exc_info=True)

    async def read_nodes(self) -> None:
        """Tell ``on_nodes`` which nodes are alive now."""
        if self._on_nodes is not None:
            self._on_nodes(await self._cluster.directory.live_nodes())

    def _fenced(self) -> None:
        error = StreamError(
            StreamErrorCondition.SYSTEM_SHUTDOWN, "this node left the cluster; reconnect"
        )
        for session in self._ctx.sessions.all_sessions():
            session.port.terminate(error)
        if self._on_fenced is not None:
            self._on_fenced()

    async def _inbox(self) -> None:
        bus = self._cluster.bus
        pending: list[InboxEntry] = []  # read, not yet handed over (oldest first)
        failures = 0  # of the oldest pending entry, in a row
        while True:
            handled: list[str] = []
            try:
                if not pending:
                    pending = await bus.receive(1.0)
                while pending:
                    await self.handle(pending[0].payload, from_inbox=True)
                    handled.append(pending.pop(0).id)
                    failures = 0
            except asyncio.CancelledError:
                raise
            except Exception:
                # e.g. the database could not store it: the entry is tried again (it and those
                # after it stay in the inbox meanwhile, reclaimed if this node dies). One that
                # fails every time is left in the inbox (delivered again when the node restarts
                # or is reclaimed), so it cannot hold up the others for ever.
                failures += 1
                log.warning("handing over a stanza from this node's inbox failed", exc_info=True)
                if failures >= self.inbox_tries and pending:
                    log.error(
                        "a stanza left in this node's inbox after repeated failures",
                        extra={"entry": pending[0].id, "tries": failures},
                    )
                    pending.pop(0)
                    failures = 0
                await asyncio.sleep(0.5)
            finally:
                if handled:
                    # once per batch (on Redis, in the same round trip as the next read): a
                    # node killed between handing a batch over and its removal leaves it to
                    # be reclaimed (and delivered again). Under light load a batch is one
                    # stanza; under heavy load one round trip serves many.
                    with contextlib.suppress(Exception):
                        await bus.done(handled)
                    self.received += len(handled)

    async def handle(self, payload: str, *, from_inbox: bool) -> None:
        """Deliver one routed stanza here, or store it offline. A stanza that can be neither
        (malformed, no such account, a full queue) is logged: its sender was answered before."""
        try:
            data = json.loads(payload)
            if "drain" in data:  # stored messages for a resource of ours: deliver them
                bare = JID.parse(str(data["drain"]))
                if self._ctx.sessions.message_targets(bare):
                    self._offline.start_drain(bare)
                return
            if "live" in data:
                self._live(data["live"], data.get("when"))
                return
            for kind, handler in self._handlers.items():
                if kind in data:
                    try:
                        await handler(data[kind])
                    except Exception:  # one bad request must not hold up the inbox
                        log.exception("a request from another node failed", extra={"kind": kind})
                    return
            to = JID.parse(str(data["to"]))
            xml = str(data["xml"])
        except (ValueError, KeyError, TypeError, InvalidJID) as exc:
            log.error("a malformed stanza in a node inbox", extra={"error": str(exc)})
            return
        sessions = self._ctx.sessions
        if to.resource is not None:
            session = sessions.get(to)
            if session is not None:
                session.deliver_xml(xml)  # as the sending node serialized it
                # its copies need the message parsed: only if there may be copies to make
                if self._carbons is not None and self._carbons.may_copy_received(to.bare):
                    with contextlib.suppress(ValueError, KeyError):
                        copied = parse_stanza(parse_fragment(xml))
                        if isinstance(copied, Message):
                            self._copies(copied, xml, to.bare, (session,))
                return
        try:
            stanza = parse_stanza(parse_fragment(xml))
        except (ValueError, KeyError) as exc:
            log.error("a malformed stanza in a node inbox", extra={"error": str(exc)})
            return
        if not isinstance(stanza, Message):
            return
        targets = sessions.message_targets(to.bare)
        live = bool(targets) and not self._offline.is_draining(to.bare)
        try:
            # From this node's own inbox the sender's node chose us: do not route it on again
            # (a stale directory must not bounce it); a dead node's may go wherever it is now.
            await self._offline.accept(stanza, xml, to.bare, remote=not from_inbox)
        except StanzaError as err:
            log.warning(
                "a routed message could not be stored",
                extra={"to": str(to.bare), "condition": str(err.condition)},
            )
            return
        if live and from_inbox and self._carbons is not None:
            self._copies(stanza, xml, to.bare, targets)

    def _copies(
        self, msg: Message, xml: str, bare: JID, targets: tuple[Session, ...] | list[Session]
    ) -> None:
        """XEP-0280 ``received`` copies of a message delivered here, for the account's other
        resources here and on other nodes (the node that delivers a message copies it)."""
        assert self._carbons is not None
        self._carbons.received(msg, xml, bare, targets)
        self._carbons.received_elsewhere(msg, xml, bare)

    def _live(self, deliveries: Any, when: Any) -> None:
        """Stanzas for sessions of this node (``[[full JID, xml], ...]``), each written if the
        session is still here and meets ``when``."""
        sessions = self._ctx.sessions
        for full, xml in deliveries:
            session = sessions.get(JID.parse(str(full)))
            if session is not None and _meets(session, None if when is None else str(when)):
                session.deliver_xml(str(xml))

    async def reap(self) -> int:
        """Take the inboxes of dead nodes (stored offline, or delivered where the account is
        now) and forget their sessions. Returns how many stanzas were taken."""
        directory, bus = self._cluster.directory, self._cluster.bus
        taken = 0
        # not this node's own, even while its lease has lapsed: its inbox loop reads that
        for node in sorted(await directory.dead_nodes() - {self._cluster.node_id}):
            while entries := await bus.reclaim(node):
                for entry in entries:
                    await self.handle(entry.payload, from_inbox=False)
                await bus.reclaimed(node, [e.id for e in entries])
                taken += len(entries)
            forgotten = await directory.forget(node)
            log.warning(
                "a dead node's inbox was reclaimed",
                extra={"node": node, "stanzas": taken, "sessions": forgotten},
            )
        self.reclaimed += taken
        return taken
