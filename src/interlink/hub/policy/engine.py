"""The shell around the consent rules (DESIGN Flows 6 and 7): gather the facts, decide, apply.

Every stanza between a third-party user (``<opaque>@<provider>.interop.<domain>``) and a
gatekeeper user (``<user>@<domain>``) passes :class:`InteropPolicy` before it is delivered or
stored: messages (:meth:`~InteropPolicy.message`), presence and subscriptions
(:meth:`~InteropPolicy.presence`), iq requests and responses (:meth:`~InteropPolicy.check_iq`,
:meth:`~InteropPolicy.iq_response`) and PEP reads and notifications
(:meth:`~InteropPolicy.may_query`, :meth:`~InteropPolicy.may_exchange`). Each of them does the
same three things:

1. gather the :class:`~interlink.hub.policy.decision.Facts` with the same lookups in the same
   order whatever the outcome will be: the addressed account and the gatekeeper user's settings
   (one cached query), the conversation, the in-memory block lists and provider approvals, and
   a peek at the rate buckets, taken after the last await so that nothing else can take their
   tokens before the decision is applied;
2. call :func:`~interlink.hub.policy.decision.decide`, where all the rules are;
3. apply its effects: take the tokens it charges, count the reason, record the conversation,
   strip forged markers and add the hub's, raise the refusal as a
   :class:`~interlink.errors.StanzaError` or return what to deliver (``None``: drop silently).

A third party is refused with one generic ``service-unavailable`` — the answer a nonexistent
account gets — whatever the reason; gatekeeper users are told plainly when their own settings,
block list or an unaccepted request stop them. Third-party users cannot reach each other through
the hub: it relays for no one.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from xml.etree.ElementTree import Element

from interlink.errors import AccountNotFoundError, StanzaError, StanzaErrorCondition
from interlink.hub.context import HubContext
from interlink.hub.policy.blocks import AccountBehind, BlockLists
from interlink.hub.policy.decision import (
    ANSWERED,
    Decision,
    Direction,
    Facts,
    Keep,
    Kind,
    Mark,
    Reason,
    Refusal,
    Stage,
    Verdict,
    decide,
)
from interlink.hub.policy.limits import BucketTable, PolicyLimits
from interlink.storage.policy import ConversationState, PolicyRepository, Reach
from interlink.xmpp import ns
from interlink.xmpp.ext import interop
from interlink.xmpp.ext.interop import (
    NO_PUSH,
    InteropMarker,
    InteropSettings,
    MessageRequest,
    marker_element,
    requests_element,
)
from interlink.xmpp.jid import JID
from interlink.xmpp.stanza import Message, MessageType, Presence, PresenceType

log = logging.getLogger("interlink.policy")

_ERROR = "{jabber:client}error"
_CONTENT = frozenset({"{jabber:client}body", "{urn:xmpp:omemo:2}encrypted"})
_LEGACY_ENCRYPTED = "{eu.siacs.conversations.axolotl}encrypted"
_ORIGIN_ID = "{urn:xmpp:sid:0}origin-id"
_ACTIVITY_NS = (
    "{" + ns.RECEIPTS + "}",
    "{" + ns.CHAT_MARKERS + "}",
    "{" + ns.CHATSTATES + "}",
)


def refusal() -> StanzaError:
    """The one answer for an unreachable account, whatever the reason (no text: no oracle)."""
    return StanzaError(StanzaErrorCondition.SERVICE_UNAVAILABLE)


def origin_id(message: Message) -> str | None:
    """The sender's own id of ``message`` (XEP-0359 ``<origin-id/>``), if it gave one."""
    for el in message.payload:
        if el.tag == _ORIGIN_ID and el.get("id"):
            return el.get("id")
    return None


def is_protocol(message: Message) -> bool:
    """OMEMO's own session-maintenance messages (the SDK marks them ``no-push``)."""
    return any(el.tag == NO_PUSH for el in message.payload)


def is_activity(message: Message) -> bool:
    """Receipts, displayed markers and chat states, and OMEMO's own protocol messages: what a
    user does not write. The SDK marks the encrypted ones with a hint; it is the client's word,
    so it only ever holds a message back, never lets one through."""
    content = False
    activity = False
    for el in message.payload:
        tag = el.tag
        if tag == interop.ACTIVITY or tag == NO_PUSH:
            return True
        if tag in _CONTENT or tag == _LEGACY_ENCRYPTED:
            content = True
        elif tag.startswith(_ACTIVITY_NS):
            activity = True
    return activity and not content


def _strip(payload: tuple[Element, ...]) -> tuple[Element, ...]:
    """Remove our namespace's elements from what a user sent: only the hub writes markers."""
    prefix = "{" + interop.NS + "}"
    if not any(el.tag.startswith(prefix) and el.tag != interop.ACTIVITY for el in payload):
        return payload
    return tuple(
        el for el in payload if not el.tag.startswith(prefix) or el.tag == interop.ACTIVITY
    )


def message_kind(message: Message) -> Kind:
    """What the rules see in ``message``."""
    if message.type is MessageType.ERROR:
        return Kind.ERROR
    if is_protocol(message):
        return Kind.PROTOCOL
    return Kind.ACTIVITY if is_activity(message) else Kind.MESSAGE


_PRESENCE_KINDS = {
    PresenceType.SUBSCRIBE: Kind.SUBSCRIBE,
    PresenceType.SUBSCRIBED: Kind.SUBSCRIBED,
    PresenceType.UNSUBSCRIBE: Kind.UNSUBSCRIBE,
    PresenceType.UNSUBSCRIBED: Kind.UNSUBSCRIBED,
    PresenceType.PROBE: Kind.PROBE,
    PresenceType.ERROR: Kind.PRESENCE_ERROR,
}


def presence_kind(presence: Presence, *, sent: bool) -> Kind:
    """What the rules see in ``presence``: ``sent`` when the sender addressed it to this
    account itself, rather than the hub fanning its broadcast out."""
    kind = _PRESENCE_KINDS.get(presence.type)
    if kind is not None:
        return kind
    if sent:
        return Kind.DIRECTED
    return Kind.PRESENCE if presence.type is PresenceType.AVAILABLE else Kind.GONE


_STAGES = {ConversationState.REQUEST: Stage.REQUEST, ConversationState.ACCEPTED: Stage.ACCEPTED}
_RECORDS = {Stage.REQUEST: ConversationState.REQUEST, Stage.ACCEPTED: ConversationState.ACCEPTED}


@dataclass(frozen=True, slots=True)
class _Crossing:
    """One stanza's facts and the accounts they are about (bare JIDs)."""

    facts: Facts
    sender: JID
    recipient: JID
    home: JID  # the gatekeeper user, whose conversation it is
    peer: JID  # the third party
    now: float  # when the buckets were looked at: the decision is taken and applied then

    @property
    def answered(self) -> bool:
        return self.facts.kind in ANSWERED


class InteropPolicy:
    def __init__(
        self,
        ctx: HubContext,
        repo: PolicyRepository,
        limits: PolicyLimits,
        user_ids: Callable[[str], Awaitable[str | None]],
        behind: AccountBehind,
    ) -> None:
        """``user_ids`` gives the user-visible id a provider attested for one of its users;
        ``behind`` the account behind an alias a user blocks (:class:`BlockLists`)."""
        self._ctx = ctx
        self._addressing = ctx.addressing
        self._user_ids = user_ids
        self._repo = repo
        self.limits = limits
        self.blocks = BlockLists(repo, limits.max_blocklist, behind, self._announce)
        self.refused = ctx.refusals  # by reason, for metrics
        self._cache: OrderedDict[str, tuple[float, Reach]] = OrderedDict()
        self._users: OrderedDict[str, tuple[float, str | None]] = OrderedDict()
        self._per_sender = BucketTable(limits.messages_per_sender, limits.rate_keys)
        self._new_conversations = BucketTable(limits.new_conversations_per_sender, limits.rate_keys)
        self._per_provider = BucketTable(limits.provider_messages, limits.rate_keys)
        self._contacted: OrderedDict[str, OrderedDict[str, float]] = OrderedDict()
        # (sender, recipient) -> the origin id and decision of its last message (its twin's)
        self._last: OrderedDict[tuple[str, str], tuple[str, tuple[_Crossing, Decision]]] = (
            OrderedDict()
        )

    async def load(self) -> None:
        """Read again what the routing path keeps of users: every block list; cached settings
        are forgotten (at start, and when a change from the feed could not be applied)."""
        await self.blocks.load()
        self._cache.clear()

    # -- lookups ---------------------------------------------------------------------------------
    def provider_of(self, jid: JID) -> str | None:
        return self._addressing.provider_of(jid)

    def approved(self, jid: JID) -> bool:
        """Whether ``jid``'s provider is approved for the service its address belongs to."""
        return self._addressing.reachable(jid)

    def service_of(self, jid: JID) -> str | None:
        """The gatekeeper service an address belongs to (``None``: not hosted here)."""
        return self._addressing.service_of(jid)

    def linked(self, a: JID, b: JID) -> bool:
        """Whether ``a`` and ``b`` belong to the same gatekeeper service (a provider's users on
        one service never reach another service's users through it)."""
        return self._addressing.same_service(a, b)

    async def reach(self, bare: JID) -> Reach:
        """Whether ``bare`` exists, and its settings; cached briefly, written through."""
        key = str(bare)
        now = self._ctx.clock()
        hit = self._cache.get(key)
        if hit is not None and now - hit[0] < self.limits.cache_seconds:
            self._cache.move_to_end(key)
            return hit[1]
        reach = await self._repo.reach(key)
        self._remember(key, reach, now)
        return reach

    def _remember(self, key: str, reach: Reach, now: float) -> None:
        self._cache[key] = (now, reach)
        self._cache.move_to_end(key)
        while len(self._cache) > self.limits.cache_entries:
            self._cache.popitem(last=False)

    async def settings(self, bare: JID) -> InteropSettings:
        return (await self.reach(bare)).settings

    async def put_settings(self, bare: JID, settings: InteropSettings) -> None:
        await self._repo.put_settings(str(bare), settings, self._ctx.clock())
        self._remember(str(bare), Reach(True, settings), self._ctx.clock())
        self._announce()

    def _announce(self) -> None:
        """A user's settings or block list were written, with an entry in the change feed: in
        a cluster, the other nodes read the feed now (they forget what they cached of that
        user's settings, and read its block list again), not at their next poll."""
        cluster = self._ctx.cluster
        if cluster.shared:
            self._ctx.spawn(cluster.invalidation.publish("policy"), "cluster-notice")

    def forget(self, bare: JID) -> None:
        self._cache.pop(str(bare), None)

    async def _user_id(self, bare: JID) -> str | None:
        key = str(bare)
        now = self._ctx.clock()
        hit = self._users.get(key)
        if hit is not None and now - hit[0] < self.limits.cache_seconds:
            return hit[1]
        user_id = await self._user_ids(key)
        self._users[key] = (now, user_id)
        while len(self._users) > self.limits.cache_entries:
            self._users.popitem(last=False)
        return user_id

    async def marker(
        self, sender: JID, provider_id: str, settings: InteropSettings, *, request: bool
    ) -> Element:
        """The interop marker for what ``sender`` sends to a gatekeeper user."""
        return marker_element(await self._marker(sender, provider_id, settings, request=request))

    async def _marker(
        self, sender: JID, provider_id: str, settings: InteropSettings, *, request: bool
    ) -> InteropMarker:
        name = self._addressing.provider_name(provider_id)
        user_id = await self._user_id(sender)
        return InteropMarker(provider_id, name, user_id, str(settings.inbox), request)

    async def marker_for(self, sender: JID, recipient: JID) -> Element | None:
        """The marker for what the hub delivers on ``sender``'s behalf (PEP notifications) to
        ``recipient``: only from a third party to one of the hub's own users."""
        provider_id = self.provider_of(sender.bare)
        if provider_id is None or not self._addressing.is_home(recipient):
            return None
        settings = await self.settings(recipient.bare)
        return await self.marker(sender.bare, provider_id, settings, request=False)

    # -- the decision: gather, decide, apply -----------------------------------------------------
    async def _gather(self, kind: Kind, sender: JID, recipient: JID) -> _Crossing:
        """The facts about ``kind`` from ``sender`` to ``recipient`` (bare; one of them a third
        party). The same lookups in the same order whatever the answer will be: the account and
        settings, then the conversation; everything after the last await is in memory."""
        s_provider = self.provider_of(sender)
        if s_provider is not None:
            direction, provider, home, peer = Direction.INBOUND, s_provider, recipient, sender
            reach = await self.reach(recipient)
            settings, exists = reach.settings, reach.exists
        else:
            r_provider = self.provider_of(recipient)
            assert r_provider is not None, "a stanza between two of the hub's own users"
            direction, provider, home, peer = Direction.OUTBOUND, r_provider, sender, recipient
            settings = await self.settings(sender)
            exists = (await self.reach(recipient)).exists
        conversation = await self._repo.conversation(str(home), str(peer))
        recipient_home = direction is Direction.OUTBOUND or self.provider_of(recipient) is None
        fellows = not recipient_home and await self._fellow_members(sender, recipient)
        now = self._ctx.clock()
        facts = Facts(
            direction=direction,
            kind=kind,
            provider=provider,
            settings=settings,
            recipient_exists=exists,
            approved=self.approved(peer),
            same_service=self.linked(sender, recipient),
            sender_blocks=self.blocks.blocks(sender, recipient),
            recipient_blocks=self.blocks.keeps_out(recipient, sender),
            conversation=Stage.NONE if conversation is None else _STAGES[conversation.state],
            request_messages=0 if conversation is None else conversation.messages,
            request_limit=self.limits.request_messages,
            recipient_home=recipient_home,
            fellow_members=fellows,
            sender_rate=not self._per_sender.peek(str(sender), now),
            provider_rate=s_provider is None or not self._per_provider.peek(s_provider, now),
            new_conversation_budget=not self._new_conversations.peek(str(sender), now),
            contacted=self._contacted_lately(sender, recipient, now),
        )
        return _Crossing(facts, sender, recipient, home, peer, now)

    async def _fellow_members(self, a: JID, b: JID) -> bool:
        """Whether ``a`` and ``b`` are both members of one room (XEP-0045 rooms of the group
        service): they then read each other's keys."""
        rooms = self._ctx.storage.rooms
        mine = set(await rooms.rooms_of(str(a)))
        return bool(mine) and not mine.isdisjoint(await rooms.rooms_of(str(b)))

    async def _decide(
        self, kind: Kind, sender: JID, recipient: JID
    ) -> tuple[_Crossing, Decision] | None:
        """Gather, decide and apply for one stanza: the decision to deliver it, or ``None`` to
        drop it.

        Raises:
            StanzaError: the refusal to answer the sender with.
        """
        crossing = await self._gather(kind, sender, recipient)
        now = crossing.now
        decision = decide(crossing.facts, now)
        self._charge(crossing, decision, now)
        if decision.verdict is Verdict.REFUSE:
            assert decision.refusal is not None
            raise self._error(decision.refusal, crossing.facts.provider, crossing.recipient)
        if decision.verdict is Verdict.DROP:
            return None
        if decision.record is not None:
            assert decision.at is not None
            try:
                await self._repo.put_conversation(
                    str(crossing.home),
                    str(crossing.peer),
                    _RECORDS[decision.record],
                    decision.messages,
                    decision.at,
                )
            except AccountNotFoundError:
                # Deleted since it was cached (e.g. by the CLI): unreachable after all.
                self.forget(crossing.home)
                self.refused[Reason.UNREACHABLE] += 1
                if crossing.answered:
                    raise refusal() from None
                return None
        return crossing, decision

    def _charge(self, crossing: _Crossing, decision: Decision, now: float) -> None:
        sender = str(crossing.sender)
        if decision.charge_sender:
            self._per_sender.take(sender, now)
        if decision.charge_provider:
            self._per_provider.take(crossing.facts.provider, now)
        if decision.first_contact:
            self._new_conversations.take(sender, now)
            self._remember_contact(crossing.sender, crossing.recipient, now)
        if decision.reason is not None:
            self.refused[decision.reason] += 1

    async def _payload(
        self, crossing: _Crossing, decision: Decision, payload: tuple[Element, ...]
    ) -> tuple[Element, ...]:
        """What is delivered of ``payload``: forged markers stripped, the hub's added."""
        if decision.keep is Keep.ALL:
            kept = _strip(payload)
        elif decision.keep is Keep.ERROR:
            kept = tuple(el for el in payload if el.tag == _ERROR)
        else:
            kept = ()
        if decision.mark is Mark.NONE:
            return kept
        facts = crossing.facts
        mark = await self.marker(
            crossing.peer, facts.provider, facts.settings, request=decision.mark is Mark.REQUEST
        )
        return (*kept, mark)

    def _error(self, refused: Refusal, provider: str, recipient: JID) -> StanzaError:
        """The stanza error for a refusal (the numbers in the texts are the configured ones)."""
        limits = self.limits
        if refused is Refusal.GENERIC:
            return refusal()
        if refused is Refusal.BLOCKED:
            return self.blocks.blocked_error()
        if refused is Refusal.PROVIDER_NOT_APPROVED:
            return StanzaError(
                StanzaErrorCondition.SERVICE_UNAVAILABLE,
                f"the recipient's provider '{provider}' is not approved (suspended or pending)",
            )
        if refused is Refusal.OWN_SETTINGS_OFF:
            text = "third-party chats are turned off in your settings"
        elif refused is Refusal.OWN_SETTINGS_PROVIDER:
            text = f"the provider '{provider}' is not among those your settings allow"
        elif refused is Refusal.REQUEST_NOT_ACCEPTED:
            text = f"accept the message request from {recipient} before replying"
        elif refused is Refusal.REQUEST_LIMIT:
            text = (
                f"message request not accepted yet: at most {limits.request_messages} "
                "messages until the recipient accepts"
            )
        elif refused is Refusal.RATE_SENDER:
            rate = limits.messages_per_sender
            text = (
                f"rate limit: at most {rate.count} messages per {rate.period:g} s between "
                "this hub's users and other services; try again later"
            )
        elif refused is Refusal.RATE_PROVIDER:
            return StanzaError(
                StanzaErrorCondition.RESOURCE_CONSTRAINT,
                f"the provider '{provider}' is over its aggregate message rate; try again later",
            )
        else:
            rate = limits.new_conversations_per_sender
            text = (
                f"rate limit: at most {rate.count} new conversations per {rate.period:g} s; "
                "try again later"
            )
        return StanzaError(StanzaErrorCondition.POLICY_VIOLATION, text)

    def _contacted_lately(self, sender: JID, target: JID, now: float) -> bool:
        """Whether ``sender`` was charged a first contact for ``target`` this budget period."""
        seen = self._contacted.get(str(sender))
        since = None if seen is None else seen.get(str(target))
        return since is not None and now - since < self.limits.new_conversations_per_sender.period

    def _remember_contact(self, sender: JID, target: JID, now: float) -> None:
        key = str(sender)
        seen = self._contacted.get(key)
        if seen is None:
            seen = self._contacted[key] = OrderedDict()
            while len(self._contacted) > self.limits.rate_keys:
                self._contacted.popitem(last=False)
        self._contacted.move_to_end(key)
        seen[str(target)] = now
        seen.move_to_end(str(target))
        while len(seen) > self.limits.contacts_remembered:
            seen.popitem(last=False)

    # -- what the router, presence and PEP call --------------------------------------------------
    async def message(self, sender: JID, msg: Message, to: JID) -> Message | None:
        """A message between a third-party and a gatekeeper user: what to deliver (marked, for
        a gatekeeper recipient) or ``None`` to drop it quietly.

        Raises:
            StanzaError: the refusal to answer the sender with.
        """
        origin = origin_id(msg)
        pair = (str(sender.bare), str(to.bare))
        last = self._last.pop(pair, None)
        if origin is not None and last is not None and last[0] == origin:
            # The twin of the message just decided (the same origin id, XEP-0359): one message
            # in two versions of OMEMO (the SDK's legacy twin, client/peer_caps.py), decided
            # and counted once. Only the very next one: an id cannot be reused to send more.
            return replace(msg, payload=await self._payload(*last[1], msg.payload))
        decided = await self._decide(message_kind(msg), sender.bare, to.bare)
        if decided is None:
            return None
        if origin is not None:
            self._last[pair] = (origin, decided)
            while len(self._last) > self.limits.rate_keys:
                self._last.popitem(last=False)
        return replace(msg, payload=await self._payload(*decided, msg.payload))

    async def invitation(
        self, inviter: JID, invitee: JID, payload: tuple[Element, ...]
    ) -> tuple[Element, ...]:
        """A room invitation (or membership) given by ``inviter`` to ``invitee`` across the
        boundary, decided as the ``invite`` row (a message request from a third party): what
        the invitation carries (the hub's marker added, for a gatekeeper invitee).

        Raises:
            StanzaError: the refusal to answer the inviter with (the generic one for an
                invitee who has not opted in, exactly as for no account).
        """
        decided = await self._decide(Kind.INVITE, inviter.bare, invitee.bare)
        if decided is None:
            raise refusal()
        return await self._payload(*decided, payload)

    async def presence(
        self, sender: JID, presence: Presence, to: JID, *, sent: bool = False
    ) -> Presence | None:
        """Presence across the boundary: what to deliver (marked, for a gatekeeper recipient)
        or ``None``. ``sent``: the sender addressed it to ``to`` itself (directed presence,
        subscriptions, probes), rather than the hub fanning a broadcast out. Never raises a
        refusal: presence is never answered with an error (it would be an oracle)."""
        kind = presence_kind(presence, sent=sent)
        decided = await self._decide(kind, sender.bare, to.bare)
        if decided is None:
            return None
        return replace(presence, payload=await self._payload(*decided, presence.payload))

    async def check_iq(self, sender: JID, to: JID) -> None:
        """An iq request across the boundary (to the account, or to one of its resources).

        Raises:
            StanzaError: the generic refusal, or what tells a gatekeeper user that their own
                settings, block list or rates stop it.
        """
        kind = Kind.IQ if to.resource is None else Kind.IQ_RESOURCE
        if await self._decide(kind, sender.bare, to.bare) is None:
            raise refusal()  # no iq row drops silently; should one, the iq still goes nowhere

    async def iq_response(self, sender: JID, to: JID) -> bool:
        """Whether an iq response (result or error) may cross from ``sender`` to ``to``."""
        return await self._decide(Kind.IQ_RESPONSE, sender.bare, to.bare) is not None

    async def may_query(self, sender: JID, to: JID) -> bool:
        """Whether ``sender`` may read ``to``'s PEP nodes (either may be local)."""
        return await self._between(Kind.PEP_READ, sender.bare, to.bare)

    async def may_exchange(self, from_: JID, to: JID) -> bool:
        """Whether ``from_``'s PEP notifications may reach ``to`` (either may be local)."""
        return await self._between(Kind.PEP_NOTIFICATION, from_.bare, to.bare)

    async def in_room(self, sender: JID, recipient: JID) -> bool:
        """Whether what occupant ``sender`` says or shows in a room reaches occupant
        ``recipient`` (the ``room`` rows): between a third party and a gatekeeper user, the
        user's consent as for 1:1 (opted in, the provider allowed, no block); between two of
        the hub's own users, blocks; between two third parties, fellow members, always."""
        sender, recipient = sender.bare, recipient.bare
        if self.provider_of(sender) is not None and self.provider_of(recipient) is not None:
            return True
        return await self._between(Kind.ROOM, sender, recipient)

    async def _between(self, kind: Kind, sender: JID, recipient: JID) -> bool:
        if sender == recipient:
            return True
        if self.provider_of(sender) is None and self.provider_of(recipient) is None:
            # Between the hub's own users only blocks apply (XEP-0191), within one service.
            blocks = self.blocks
            return self.linked(sender, recipient) and not (
                blocks.keeps_out(recipient, sender) or blocks.blocks(sender, recipient)
            )
        return await self._decide(kind, sender, recipient) is not None

    # -- conversations -------------------------------------------------------------------------
    async def accept(self, owner: JID, peer: JID) -> None:
        if self.provider_of(owner) is not None or self.provider_of(peer) is None:
            raise StanzaError(
                StanzaErrorCondition.BAD_REQUEST,
                "only this hub's users accept requests, and only from third-party addresses",
            )
        conversation = await self._repo.conversation(str(owner), str(peer))
        now = self._ctx.clock()
        if conversation is None:
            # Accepting ahead starts a conversation: a first contact, as writing would be.
            if not self._contacted_lately(owner, peer, now):
                if self._new_conversations.take(str(owner), now):
                    self.refused[Reason.RATE_NEW_CONVERSATIONS] += 1
                    raise self._error(
                        Refusal.RATE_NEW_CONVERSATIONS, str(self.provider_of(peer)), peer
                    )
                self._remember_contact(owner, peer, now)
        elif conversation.state is ConversationState.ACCEPTED:
            return
        messages = 0 if conversation is None else conversation.messages
        await self._repo.put_conversation(
            str(owner), str(peer), ConversationState.ACCEPTED, messages, self._ctx.clock()
        )

    async def requests(self, owner: JID) -> Element:
        pending = await self._repo.conversations(str(owner), ConversationState.REQUEST)
        settings = await self.settings(owner)
        requests = []
        for conversation in pending:
            peer = JID.parse(conversation.peer)
            provider_id = self.provider_of(peer)
            marker = None
            if provider_id is not None:
                marker = await self._marker(peer, provider_id, settings, request=True)
            if not self.blocks.blocks(owner, peer):
                requests.append(MessageRequest(conversation.peer, conversation.messages, marker))
        return requests_element(requests)
