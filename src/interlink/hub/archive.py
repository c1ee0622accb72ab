"""XEP-0313 Message Archive Management for the hub's own accounts (wire code:
:mod:`interlink.xmpp.ext.mam`; storage: :mod:`interlink.storage.archive`).

What is archived. The router hands every 1:1 message it accepted to :meth:`ArchiveService.plan`
(only after the consent rules let it through, so a refused stanza is never archived): a message
worth archiving (:func:`~interlink.xmpp.ext.mam.worth_archiving`) goes into the archive of each
party that is an account of one of this hub's gatekeeper services and whose preferences (§6)
want it. A third party's own history stays with its provider: across the interop boundary only
the gatekeeper user's side is archived. The hub sees ciphertext only, and archives it as such.

Ids. Both copies of a message share one random id; the recipient's copy is delivered with
``<stanza-id by='recipient' id/>`` (XEP-0359 §3) and ids a client forged ``by`` one of this hub's
addresses are removed before anything else (§5).

Durability. An archive copy is written only after the message itself was delivered or durably
stored (a message stored offline is archived once the store succeeded), so a message is
acknowledged under the hub's rule whatever happens to its copy. How the copy is written is a
choice (``archive.durable_before_ack``):

- *write-behind* (the default): the copies are queued and a background writer commits them in
  batches (``WRITE_BATCH`` entries a transaction), oldest first, so the sender goes on at once. A
  crash loses the copies still queued (at most ``write_queue_max`` entries; in practice the few
  milliseconds of traffic of the batch being written). When the queue is full, the sender's next
  stanza waits until the writer has made room — until the queue is down to half its limit, so a
  sender held back once then sends on for a while rather than waiting again at every stanza of
  the read it was in: memory stays bounded and nothing is dropped. (Waiting only for what came
  before it, with the queue still near full, held a busy sender back stanza after stanza; its
  stream's input — its XEP-0198 ``<a/>`` too — went unread for seconds while messages to it
  went on, until stream management's ``max_unacked`` disconnected it; the driver now also
  tells the stream while it holds a client's input, and the limit allows for it.) Queries,
  metadata requests and pruning first wait for what was queued before them.
- *durable before ack*: the copies are part of the work the transport awaits before it reads the
  sender's next stanza and before stream management acknowledges it; concurrent senders share
  group commits. Each sender then waits for one commit per archived message, which bounds a
  single sender's rate by the commit rate (docs/performance.md has both measured).

A failed archive write is logged and counted, never turned into a refusal of a message that was
already delivered.

Rooms (XEP-0045) have archives too (:mod:`interlink.hub.groups.history` decides what and for
whom): their entries go through the same writer (``rooms=True``; one queue in arrival order,
so a query waits for exactly what came before it, whichever archive), the same retention and
their own quota (``max_messages_per_room``), and their queries through :meth:`ArchiveService.
answer_query`, the one place where archive pages are read and sent.

Preferences are cached (``prefs_cache_ttl`` seconds, ``prefs_cache_size`` accounts) so the
routing path decides without storage; ``roster`` mode needs a roster lookup, which makes the
delivery of that message wait for it.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import secrets
from collections import deque
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any

from interlink.errors import StanzaError, StanzaErrorCondition
from interlink.storage.archive import ArchivedMessage, ArchiveEntry, ArchiveFilter, MessageArchive
from interlink.xmpp.ext import mam, rsm
from interlink.xmpp.jid import JID
from interlink.xmpp.stanza import Iq, IqType, iq_result

if TYPE_CHECKING:
    from interlink.hub.context import HubContext
    from interlink.hub.session import Session

log = logging.getLogger("interlink.archive")
DAY = 86400.0
WRITE_BATCH = 4096  # archive entries the write-behind writer puts in one transaction


@dataclass(frozen=True, slots=True)
class ArchiveLimits:
    """The ``[archive]`` settings (docs/operations.md)."""

    enabled: bool = True
    retention: float = 30 * DAY  # messages older than this are pruned
    prune_interval: float = 3600.0
    max_messages_per_account: int = 100_000  # past it, the oldest are dropped
    max_messages_per_room: int = 100_000  # the same for a room's archive (hub.groups)
    page_max: int = 250  # messages one query returns at most (a larger max is clamped)
    page_default: int = 50  # when the query names no max
    default_mode: mam.Default = mam.Default.ALWAYS  # for accounts that set no preferences
    max_pref_jids: int = 1000  # JIDs in one account's always + never lists
    prefs_cache_ttl: float = 60.0
    prefs_cache_size: int = 100_000
    # True: a sender's next stanza (and its stream-management ack) waits for the archive
    # commit. False: write-behind, at most write_queue_max entries behind (see the docstring).
    durable_before_ack: bool = False
    write_queue_max: int = 20_000

    def __post_init__(self) -> None:
        for name in (
            "max_messages_per_account",
            "max_messages_per_room",
            "page_max",
            "page_default",
            "prefs_cache_size",
            "write_queue_max",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"archive {name} must be at least 1")
        if self.page_default > self.page_max:
            raise ValueError("archive page_default cannot exceed page_max")


class Decision(Enum):
    KEEP = "keep"
    SKIP = "skip"
    LOOKUP = "lookup"  # needs storage: preferences not cached, or the owner's roster


@dataclass(frozen=True, slots=True)
class ArchivePlan:
    """What archiving one message means: the entries to write and the message to deliver (with
    the recipient's stanza-id when the recipient archives it)."""

    entries: tuple[ArchiveEntry, ...]
    delivered: str  # serialized


class ArchiveService:
    def __init__(self, ctx: HubContext) -> None:
        self._ctx = ctx
        self.limits = ctx.settings.archive
        self.enabled = self.limits.enabled
        self.page_max = self.limits.page_max
        self._is_home = ctx.addressing.is_home
        self._prefs: dict[str, tuple[mam.Prefs | None, float]] = {}
        self.write_failures = 0  # archive writes that failed (logged), for metrics
        # The write-behind queue: entries not yet written, in arrival order, as runs of one
        # kind (True: the rooms' archives) so each batch goes to one repository; how many
        # were ever queued and written, and who waits for the writer to reach a count.
        self._queue: deque[tuple[bool, list[ArchiveEntry]]] = deque()
        self._queue_len = 0
        self._queued = 0
        self._written = 0
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._room_waiters: list[asyncio.Future[None]] = []  # senders held by a full queue
        self._writer: bool | None = None
        self._random: list[bytes] = []

    # -- archiving ----------------------------------------------------------------------------
    def new_id(self) -> str:
        """A fresh archive id: 96 random bits, URL-safe (unguessable, and says nothing of
        the archive). The randomness is read from the OS a few thousand ids at a time."""
        pool = self._random
        if not pool:
            chunk = secrets.token_bytes(12 * 1024)
            pool.extend(chunk[i : i + 12] for i in range(0, len(chunk), 12))
        return base64.urlsafe_b64encode(pool.pop()).decode()

    def decide(self, owner: JID, peer: JID) -> Decision:
        """Whether ``owner`` (an account of this hub) archives a message with ``peer``, as far
        as that can be told without storage; ``LOOKUP`` when storage must tell (preferences
        not cached, or ``roster`` mode): then :meth:`resolve` decides."""
        if not self._is_home(owner):
            return Decision.SKIP
        cached = self._prefs.get(str(owner))
        if cached is None or cached[1] < self._ctx.clock():
            return Decision.LOOKUP  # look it up (the slow path)
        return self._decide_with(cached[0], owner, peer)

    def _decide_with(self, prefs: mam.Prefs | None, owner: JID, peer: JID) -> Decision:
        if prefs is None:
            default = self.limits.default_mode
        else:
            contact = str(peer.bare)
            if contact in prefs.always:
                return Decision.KEEP
            if contact in prefs.never:
                return Decision.SKIP
            default = prefs.default
        if default is mam.Default.ALWAYS:
            return Decision.KEEP
        if default is mam.Default.NEVER:
            return Decision.SKIP
        if owner.bare == peer.bare:
            return Decision.KEEP  # one's own messages to oneself
        return Decision.LOOKUP

    async def resolve(self, owner: JID, peer: JID) -> bool:
        """The full decision (reads the preferences, and the roster in ``roster`` mode)."""
        if not self._is_home(owner):
            return False
        prefs = await self._load_prefs(str(owner))
        decision = self._decide_with(prefs, owner, peer)
        if decision is Decision.LOOKUP:
            item = await self._ctx.storage.roster.get(str(owner.bare), str(peer.bare))
            return item is not None
        return decision is Decision.KEEP

    async def _load_prefs(self, owner: str) -> mam.Prefs | None:
        now = self._ctx.clock()
        cached = self._prefs.get(owner)
        if cached is not None and cached[1] >= now:
            return cached[0]
        prefs = await self._ctx.storage.archive.get_prefs(owner)
        self._remember(owner, prefs, now)
        return prefs

    def forget_account(self, owner: JID) -> None:
        """``owner`` was removed (its preferences went with it): drop its cached preferences,
        so an account created again under the address (a recycled phone number) starts from
        the defaults rather than the previous holder's."""
        self._prefs.pop(str(owner.bare), None)

    def _remember(self, owner: str, prefs: mam.Prefs | None, now: float) -> None:
        cache = self._prefs
        cache.pop(owner, None)
        if len(cache) >= self.limits.prefs_cache_size:
            del cache[next(iter(cache))]  # the longest cached
        cache[owner] = (prefs, now + self.limits.prefs_cache_ttl)

    def plan(
        self, sender: JID, to: JID, delivered: str, sent: str, keep: tuple[bool, bool]
    ) -> ArchivePlan:
        """The entries for a message from ``sender`` to ``to`` (``keep``: whether the sender's
        and the recipient's archives take it); ``sent`` is the message as the sender sent it,
        ``delivered`` as the recipient gets it, both serialized (with their namespace)."""
        for_sender, for_recipient = keep
        if sender.bare == to.bare:
            for_recipient = for_recipient or for_sender
            for_sender = False  # one archive, one copy
        archive_id = self.new_id()
        now = self._ctx.clock()
        entries: list[ArchiveEntry] = []
        if for_sender:
            entries.append(
                ArchiveEntry(
                    str(sender.bare),
                    archive_id,
                    str(to.bare),
                    to.resource or "",
                    now,
                    sent,
                )
            )
        if for_recipient:
            entries.append(
                ArchiveEntry(
                    str(to.bare),
                    archive_id,
                    str(sender.bare),
                    sender.resource or "",
                    now,
                    delivered,
                )
            )
            delivered = mam.stamped(delivered, str(to.bare), archive_id)
        return ArchivePlan(tuple(entries), delivered)

    def write(
        self, entries: Sequence[ArchiveEntry], *, rooms: bool = False
    ) -> Coroutine[Any, Any, None] | None:
        """Archive ``entries`` (in the rooms' archives with ``rooms``). With
        ``durable_before_ack``, the coroutine to await: the write, durable when it returns.
        Otherwise (write-behind) they are queued for the background writer and ``None`` comes
        back, unless the queue is full: then the coroutine waits until the writer has made
        room (the sender is held back, nothing is dropped; see :meth:`_room`). A failed write
        is logged and counted, never raised."""
        if self.limits.durable_before_ack:
            return self._write_now(entries, rooms=rooms)
        queue = self._queue
        if queue and queue[-1][0] is rooms:
            queue[-1][1].extend(entries)
        else:
            queue.append((rooms, list(entries)))
        self._queue_len += len(entries)
        self._queued += len(entries)
        if self._writer is None:
            self._writer = True
            self._ctx.spawn(self._write_behind(), name="archive writer")
        if self._queue_len >= self.limits.write_queue_max:
            return self._room()
        return None

    async def _room(self) -> None:
        """Return once the queue is down to half its limit (at once if no writer runs)."""
        if self._writer is None:
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._room_waiters.append(waiter)
        await waiter

    def _release_room(self, *, everyone: bool = False) -> None:
        if everyone or self._queue_len <= self.limits.write_queue_max // 2:
            waiters, self._room_waiters = self._room_waiters, []
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)

    def _repository(self, rooms: bool) -> MessageArchive:
        storage = self._ctx.storage
        return storage.room_archive if rooms else storage.archive

    async def _write_now(self, entries: Sequence[ArchiveEntry], *, rooms: bool = False) -> None:
        limits = self.limits
        quota = limits.max_messages_per_room if rooms else limits.max_messages_per_account
        try:
            await self._repository(rooms).append(entries, quota)
        except Exception:
            self.write_failures += 1
            log.exception("archiving a message failed", extra={"entries": len(entries)})

    async def _write_behind(self) -> None:
        """Write the queue, oldest first, a batch per transaction, until it is empty."""
        try:
            while self._queue:
                rooms, run = self._queue[0]
                batch = run[:WRITE_BATCH]
                del run[:WRITE_BATCH]
                if not run:
                    self._queue.popleft()
                self._queue_len -= len(batch)
                await self._write_now(batch, rooms=rooms)
                self._written += len(batch)
                self._release_room()
                while self._waiters and self._waiters[0][0] <= self._written:
                    _, waiter = self._waiters.pop(0)
                    if not waiter.done():
                        waiter.set_result(None)
        finally:
            self._writer = None
            self._release_room(everyone=True)
            for _, waiter in self._waiters:  # nothing left to wait for (or cancelled)
                if not waiter.done():
                    waiter.set_result(None)
            self._waiters.clear()

    async def caught_up(self) -> None:
        """Return once everything queued before this call is written (at once if nothing is
        queued): queries read what was archived before them."""
        if self._writer is None:
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((self._queued, waiter))
        await waiter

    async def prune(self, now: float) -> int:
        """Forget the messages older than the retention period, in the accounts' and the
        rooms' archives; returns how many."""
        await self.caught_up()
        cutoff = now - self.limits.retention
        storage = self._ctx.storage
        return await storage.archive.prune(cutoff) + await storage.room_archive.prune(cutoff)

    # -- queries ------------------------------------------------------------------------------
    async def handle_iq(self, session: Session, iq: Iq) -> None:
        """Answer a query, preferences or metadata request of the account's own session.

        Raises:
            StanzaError: ``feature-not-implemented`` for a third party's account (its history
                is its provider's); ``bad-request`` for a malformed request; ``item-not-found``
                for an unknown after/before id; ``not-acceptable`` for too many preference
                JIDs or more ``ids`` than ``page_max``.
        """
        query = iq.query
        assert query is not None
        owner = session.jid.bare
        if not self.enabled or not self._is_home(owner):
            raise StanzaError(
                StanzaErrorCondition.FEATURE_NOT_IMPLEMENTED,
                "this hub keeps message archives for its own accounts only",
            )
        if query.tag == mam.QUERY:
            if iq.type is IqType.GET:
                session.deliver(iq_result(iq, mam.query_fields(), from_=None))
            else:
                await self._query(session, iq, mam.parse_query(query, max_ids=self.limits.page_max))
        elif query.tag == mam.PREFS:
            await self._prefs_iq(session, iq, str(owner))
        elif iq.type is IqType.GET:  # metadata
            await self.answer_metadata(session, iq, owner)
        else:
            raise StanzaError(StanzaErrorCondition.BAD_REQUEST, "archive metadata is read-only")

    async def _query(self, session: Session, iq: Iq, query: mam.ArchiveQuery) -> None:
        await self.answer_query(session, iq, query, session.jid.bare)

    async def answer_query(
        self,
        session: Session,
        iq: Iq,
        query: mam.ArchiveQuery,
        owner: JID,
        *,
        rooms: bool = False,
        shown: Callable[[ArchivedMessage], str | None] | None = None,
        reply_from: JID | None = None,
    ) -> None:
        """Send ``session`` the page of ``owner``'s archive (a room's with ``rooms``) that
        ``query`` asks for (§4.2, §4.3): each match as a result message from ``owner``, then
        the iq result (from ``reply_from``) with the RSM set. ``shown`` gives the forwarded
        stanza of a match as the querier may see it (``None``: not sent, though still counted
        and paged over).

        Raises:
            StanzaError: ``item-not-found`` for an unknown after/before id.
        """
        await self.caught_up()
        page = query.page
        limit = self.limits.page_default if page.max is None else page.max
        limit = min(limit, self.limits.page_max)  # XEP-0059 §2.1: fewer, never more
        with_ = query.with_
        where = ArchiveFilter(
            peer=None if with_ is None else str(with_.bare),
            peer_resource=None if with_ is None else with_.resource,
            start=query.start,
            end=query.end,
            after_id=query.after_id,
            before_id=query.before_id,
            ids=query.ids,
        )
        found = await self._repository(rooms).page(
            str(owner), where, after=page.after, before=page.before, limit=limit
        )
        if found is None:
            raise StanzaError(
                StanzaErrorCondition.ITEM_NOT_FOUND, "no message with that id in the archive"
            )
        messages = list(found.messages)
        for message in reversed(messages) if query.flip else messages:
            stanza = message.stanza if shown is None else shown(message)
            if stanza is None:
                continue
            session.deliver_xml(
                mam.result_xml(session.jid, owner, query.query_id, message.id, message.at, stanza)
            )
        result = rsm.PageResult(
            count=found.count,
            first=messages[0].id if messages else None,
            first_index=found.first_index,
            last=messages[-1].id if messages else None,
        )
        session.deliver(iq_result(iq, mam.fin(found.complete, result), from_=reply_from))

    async def answer_metadata(
        self,
        session: Session,
        iq: Iq,
        owner: JID,
        *,
        rooms: bool = False,
        reply_from: JID | None = None,
    ) -> None:
        """The archive's first and last entry (§7, #extended)."""
        await self.caught_up()
        edges = await self._repository(rooms).edges(str(owner))
        first = last = None
        if edges is not None:
            first = mam.Edge(edges[0].id, edges[0].at)
            last = mam.Edge(edges[1].id, edges[1].at)
        session.deliver(iq_result(iq, mam.metadata_element(first, last), from_=reply_from))

    async def _prefs_iq(self, session: Session, iq: Iq, owner: str) -> None:
        repo = self._ctx.storage.archive
        query = iq.query
        assert query is not None
        if iq.type is IqType.GET:
            prefs = await repo.get_prefs(owner) or mam.Prefs(self.limits.default_mode)
        else:
            prefs = mam.parse_prefs(query, self.limits.max_pref_jids)
            await repo.set_prefs(owner, prefs)
            self._remember(owner, prefs, self._ctx.clock())
        session.deliver(iq_result(iq, mam.prefs_element(prefs), from_=None))


def disco_features() -> tuple[str, ...]:
    """What an account's disco#info lists when archiving is on (XEP-0313 §6.1, XEP-0359 §8)."""
    return (mam.NS, mam.EXTENDED, mam.SID)
