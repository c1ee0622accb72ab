"""Durable offline delivery (RFC 6121 §8.5.2.1.1, XEP-0160, delay stamps per XEP-0203).

A message for an account without an available resource is written to storage and acknowledged
only after the write is durable. When a resource with non-negative priority becomes available the
queue is drained in order, batch by batch, each batch deleted after it was written to the
connection.

Ordering: while an account's queue is being drained, new messages for it take the storage path
too (the router checks :meth:`OfflineDelivery.is_draining`), so they queue behind the stored ones.
A per-account lock makes "decide where a message goes" and "store it" one step with respect to
the drain's "fetch, deliver, delete".
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence

from interlink.errors import (
    StanzaError,
    StanzaErrorCondition,
    StorageBusyError,
    StreamError,
    StreamErrorCondition,
)
from interlink.hub.context import HubContext, KeyedLock, log
from interlink.hub.nodes import ask_nodes_to_drain, send_to_nodes, send_to_session
from interlink.hub.observers import notify
from interlink.hub.session import AckPort, MarkSent, Session
from interlink.hub.sm import ParkedPort
from interlink.storage.offline import OfflineMessage, SentMark
from interlink.xmpp import ns
from interlink.xmpp.jid import JID
from interlink.xmpp.stanza import Message, MessageType, parse_stanza
from interlink.xmpp.xml import parse_fragment, split_qname

_ALL = 2**62  # an h beyond any stanza number
_NOT_STORED_NAMESPACES = frozenset((ns.CHATSTATES,))
_NO_STORE = ns.qname(ns.HINTS, "no-store")
_NO_PERMANENT_STORE = ns.qname(ns.HINTS, "no-permanent-store")


def worth_storing(message: Message) -> bool:
    """Chat and normal messages with content other than chat states, unless hinted not to be
    stored (XEP-0334)."""
    if message.type not in (MessageType.CHAT, MessageType.NORMAL):
        return False
    content = False
    for child in message.payload:
        if child.tag in (_NO_STORE, _NO_PERMANENT_STORE):
            return False
        if split_qname(child.tag)[0] not in _NOT_STORED_NAMESPACES:
            content = True
    return content


def _stamp(at: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(at)) + f".{int(at % 1 * 1000):03d}Z"


class OfflineDelivery:
    def __init__(self, ctx: HubContext) -> None:
        self._ctx = ctx
        self._locks = KeyedLock()
        self._draining: set[JID] = set()
        # Accounts whose drain stopped because the session's connection was lost and it waits
        # to be resumed (XEP-0198): still "draining", so new messages queue behind the stored
        # ones, until the resumed session's drain goes on (or the session expires).
        self._held: set[JID] = set()

    def delivered(self, bare: JID, message: Message, targets: Sequence[Session]) -> None:
        """``message`` for ``bare`` was just written to ``targets`` (its resources, chosen by the
        router or by :meth:`accept`). When every one of them is a session waiting to be resumed
        (XEP-0198: none is connected), the ``parked_queued`` observers hear of it, once per
        message whatever the number of parked sessions."""
        listeners = self._ctx.observers.parked_queued
        if listeners and targets and all(isinstance(t.port, ParkedPort) for t in targets):
            notify(listeners, bare, message)

    def is_draining(self, bare: JID) -> bool:
        return bare in self._draining

    async def accept(
        self,
        message: Message,
        xml: str,
        bare: JID,
        *,
        full: JID | None = None,
        remote: bool = True,
    ) -> None:
        """Deliver ``message`` to ``bare``'s best resources (or exactly ``full``, addressed
        but not here), on this node or, in a cluster and when ``remote``, on another; else
        store it durably.

        Raises ``service-unavailable`` for an account that does not exist and
        ``resource-constraint`` when the account's queue is full.
        """
        ctx = self._ctx
        async with self._locks.hold(bare):
            if (
                full is not None
                and remote
                and ctx.cluster.shared
                and ctx.sessions.get(full) is None
                and await send_to_session(ctx.cluster, full, xml)
            ):
                return  # that resource is on another node
            targets = ctx.sessions.message_targets(bare)
            if targets and bare not in self._draining:
                for session in targets:
                    session.deliver_xml(xml)
                self.delivered(bare, message, targets)
                return
            if (
                remote
                and ctx.cluster.shared
                and bare not in self._draining
                and await send_to_nodes(ctx.cluster, bare, full, xml)
            ):
                return
            if not await ctx.storage.accounts.exists(str(bare)):
                raise StanzaError(StanzaErrorCondition.SERVICE_UNAVAILABLE)
            if not worth_storing(message):
                return
            cap = ctx.settings.offline_max_per_account
            max_bytes = ctx.settings.offline_max_bytes_per_account
            if not await ctx.storage.offline.store(
                str(bare), xml, ctx.clock(), cap, max_bytes=max_bytes
            ):
                ctx.refusals["offline-full"] += 1
                raise StanzaError(
                    StanzaErrorCondition.RESOURCE_CONSTRAINT,
                    f"the recipient's offline queue is full ({cap} messages or {max_bytes} bytes)",
                )
        stored = ctx.observers.offline_stored
        if stored:
            notify(stored, bare, message)
        if ctx.cluster.shared:
            # a resource that became available on another node meanwhile (its directory entry
            # written after we looked) drains what we just stored
            await ask_nodes_to_drain(ctx.cluster, bare)
        if ctx.sessions.message_targets(bare) and bare not in self._draining:
            # A resource came online while we were storing: hand the message over now.
            self.start_drain(bare)

    async def take_back(
        self,
        session: Session,
        end: Callable[[], Awaitable[None] | None],
        take_unacked: Callable[[], list[tuple[str, SentMark | None]]],
    ) -> None:
        """A session with stream management ended: ``end()`` it (it leaves the registry), then
        store the messages the client did not acknowledge (``take_unacked()``, oldest first), all
        under the account's lock, so they queue before anything that arrives for the account
        after the session left. Stanzas still in offline storage are not among them."""
        ctx = self._ctx
        bare = session.jid.bare
        stored = 0
        async with self._locks.hold(bare):
            released = bare in self._held
            if released:
                self._held.discard(bare)
                self._draining.discard(bare)
            pending = end()
            unacked = take_unacked()
            # These were accepted already: they may take the queue past its cap (by at most
            # the session's unacknowledged stanzas, itself capped) rather than be lost.
            cap = ctx.settings.offline_max_per_account + len(unacked)
            for xml, sent in unacked:
                message = _message_of(xml)
                if message is None or not worth_storing(message):
                    continue
                if await ctx.storage.offline.store(str(bare), xml, ctx.clock(), cap, sent):
                    stored += 1
                else:
                    ctx.refusals["offline-full"] += 1
                    log.warning(
                        "unacknowledged message dropped: offline queue full",
                        extra={"jid": str(bare)},
                    )
        if stored:
            log.info("unacknowledged messages stored", extra={"jid": str(bare), "count": stored})
        if (stored or released) and ctx.sessions.message_targets(bare):
            self.start_drain(bare)
        if pending is not None:
            await pending

    async def settle_received(self, bare: JID, stream: str, h: int) -> None:
        """The client has the first ``h`` stanzas of stream-management stream ``stream``: the
        stored messages written there as those stanzas are delivered (deleted)."""
        async with self._locks.hold(bare):
            settled = await self._ctx.storage.offline.delete_received(str(bare), stream, h)
        if settled:
            log.info(
                "offline messages settled by the client's count",
                extra={"jid": str(bare), "count": settled},
            )

    def start_drain(self, bare: JID, resumed: tuple[Session, str] | None = None) -> None:
        """Deliver ``bare``'s stored messages. ``resumed``: a session just resumed on stream
        ``resumed[1]`` (XEP-0198), which may have stored messages in flight again: they are
        settled once acknowledged, before the rest of the queue follows (new messages queue
        behind meanwhile)."""
        if bare in self._draining and not (resumed is not None and bare in self._held):
            return
        self._held.discard(bare)
        self._draining.add(bare)
        self._ctx.spawn(self._drain(bare, resumed), name=f"offline-drain {bare}")

    async def _drain(self, bare: JID, resumed: tuple[Session, str] | None = None) -> None:
        ctx = self._ctx
        delivered = 0
        hold = False
        try:
            if resumed is not None:
                session, stream = resumed
                if session.acks is None or not await self._all_acked([session.acks], [session]):
                    return
                # Everything written on the stream is acknowledged: every mark on it is settled.
                async with self._locks.hold(bare):
                    await ctx.storage.offline.delete_received(str(bare), stream, _ALL)
            while True:
                async with self._locks.hold(bare):
                    batch = await ctx.storage.offline.fetch(
                        str(bare), ctx.settings.offline_drain_batch
                    )
                    # Chosen after the await: a session that went away meanwhile has left the
                    # registry already, so nothing is written to a dead connection and deleted.
                    targets = ctx.sessions.message_targets(bare)
                    if not batch or not targets:
                        return
                    # Exactly once when every target acknowledges (XEP-0198): the batch is
                    # deleted only once the clients' acks cover it. Otherwise it is deleted once
                    # written (docs/operations.md, "Durability", says when that can duplicate).
                    acking = [s.acks for s in targets if s.acks is not None]
                    exactly_once = len(acking) == len(targets)
                    domain = bare.domain  # the delay is stamped by the recipient's server
                    xmls = [_with_delay(i.stanza, domain, i.stored_at) for i in batch]
                    if exactly_once:
                        mark = self._marker(bare, batch) if len(acking) == 1 else _no_mark
                        for port in acking:  # a mark names one stream: only with one resource
                            await port.send_stored(xmls, mark)
                    else:
                        for xml in xmls:
                            for session in targets:
                                session.deliver_xml(xml)
                        await ctx.storage.offline.delete(str(bare), batch[-1].id)
                        delivered += len(batch)
                if exactly_once:
                    if not await self._all_acked(acking, targets):
                        # Still stored: sent again when a session comes back (resumed, or at
                        # the next available presence).
                        hold = any(isinstance(s.port, ParkedPort) for s in targets)
                        return
                    async with self._locks.hold(bare):
                        await ctx.storage.offline.delete(str(bare), batch[-1].id)
                    delivered += len(batch)
                for session in targets:
                    await self._wait_writable(session)
        except StorageBusyError:
            # what is stored stays stored; the drain comes back while someone can take it
            log.warning("offline delivery waits: the database is busy", extra={"jid": str(bare)})
            ctx.spawn(self._drain_later(bare), name=f"offline-drain-retry {bare}")
        finally:
            if hold:
                self._held.add(bare)
            else:
                self._draining.discard(bare)
            if delivered:
                log.info("offline messages delivered", extra={"jid": str(bare), "count": delivered})

    async def _drain_later(self, bare: JID) -> None:
        await asyncio.sleep(self._ctx.settings.offline_drain_retry)
        if self._ctx.sessions.message_targets(bare):  # none at shutdown: no retry loop
            self.start_drain(bare)

    def _marker(self, bare: JID, batch: Sequence[OfflineMessage]) -> MarkSent:
        """Records durably which stanza of a stream each message of ``batch`` becomes."""
        offline = self._ctx.storage.offline

        async def mark(stream: str, first: int) -> None:
            marks = [(item.id, SentMark(stream, first + n)) for n, item in enumerate(batch)]
            await offline.mark_sent(str(bare), marks)

        return mark

    async def _all_acked(self, ports: list[AckPort], targets: list[Session]) -> bool:
        """Wait for every client's ack; one that does not answer in ``write_stall_timeout`` is
        disconnected (its batch stays stored)."""
        timeout = self._ctx.settings.write_stall_timeout
        for port, session in zip(ports, targets, strict=True):
            try:
                if not await asyncio.wait_for(port.acked(), timeout):
                    return False
            except TimeoutError:
                session.port.terminate(
                    StreamError(
                        StreamErrorCondition.POLICY_VIOLATION,
                        f"the client acknowledged nothing for {timeout:g} s "
                        "while stored messages were waiting",
                    )
                )
                return False
        return True

    async def _wait_writable(self, session: Session) -> None:
        """Pace the drain to the reader; one that stalls is disconnected rather than holding up
        the account's other resources forever."""
        timeout = self._ctx.settings.write_stall_timeout
        try:
            await asyncio.wait_for(session.port.wait_writable(), timeout)
        except TimeoutError:
            session.port.terminate(
                StreamError(
                    StreamErrorCondition.POLICY_VIOLATION,
                    f"the client read nothing for {timeout:g} s while messages were waiting",
                )
            )


async def _no_mark(stream: str, first: int) -> None:
    return None


def _message_of(xml: str) -> Message | None:
    """The message a serialized stanza is, or ``None`` (another kind, or unreadable)."""
    if not xml.startswith("<message"):
        return None
    try:
        stanza = parse_stanza(parse_fragment(xml))
    except (StanzaError, ValueError, SyntaxError):
        return None
    return stanza if isinstance(stanza, Message) else None


def _with_delay(xml: str, domain: str, stored_at: float) -> str:
    delay = f'<delay xmlns="{ns.DELAY}" from="{domain}" stamp="{_stamp(stored_at)}"/>'
    if xml.endswith("</message>"):
        return xml[: -len("</message>")] + delay + "</message>"
    return xml  # stored messages always have content; keep anything unexpected untouched
