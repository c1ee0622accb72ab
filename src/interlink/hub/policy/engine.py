"""The consent and abuse rules on the routing path (DESIGN Flows 6 and 7).

Every stanza between a third-party user (``<opaque>@<provider>.interop.<domain>``) and a
gatekeeper user (``<user>@<domain>``) passes :class:`InteropPolicy` before it is delivered or
stored. A third party is refused with one generic ``service-unavailable`` — the answer a
nonexistent account gets — whatever the reason: no such account, not opted in, provider not
allowed or not approved, blocked. The account lookup, the conversation lookup and every condition
are evaluated for every stanza before the one decision, so neither the answer nor the work done
tells the reasons apart.

Gatekeeper users are told plainly why their own stanzas are refused (their own settings, a
message request not yet accepted) but get the same generic answer about third-party accounts.
Third-party users cannot reach each other through the hub: it relays for no one.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import replace
from xml.etree.ElementTree import Element

from interlink.errors import AccountNotFoundError, StanzaError, StanzaErrorCondition
from interlink.hub.context import HubContext
from interlink.hub.policy.blocks import BlockLists
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
from interlink.xmpp.stanza import Message, MessageType, Presence

log = logging.getLogger("interlink.policy")

_ERROR = "{jabber:client}error"
_CONTENT = frozenset({"{jabber:client}body", "{urn:xmpp:omemo:2}encrypted"})
_LEGACY_ENCRYPTED = "{eu.siacs.conversations.axolotl}encrypted"
_ACTIVITY_NS = (
    "{" + ns.RECEIPTS + "}",
    "{" + ns.CHAT_MARKERS + "}",
    "{" + ns.CHATSTATES + "}",
)


def refusal() -> StanzaError:
    """The one answer for an unreachable account, whatever the reason (no text: no oracle)."""
    return StanzaError(StanzaErrorCondition.SERVICE_UNAVAILABLE)


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


class InteropPolicy:
    def __init__(
        self,
        ctx: HubContext,
        repo: PolicyRepository,
        limits: PolicyLimits,
        user_ids: Callable[[str], Awaitable[str | None]],
    ) -> None:
        """``user_ids`` gives the user-visible id a provider attested for one of its users."""
        self._ctx = ctx
        self._addressing = ctx.addressing
        self._user_ids = user_ids
        self._repo = repo
        self.limits = limits
        self.blocks = BlockLists(repo, limits.max_blocklist)
        self.refused = ctx.refusals  # by reason, for metrics
        self._cache: OrderedDict[str, tuple[float, Reach]] = OrderedDict()
        self._users: OrderedDict[str, tuple[float, str | None]] = OrderedDict()
        self._per_sender = BucketTable(limits.messages_per_sender, limits.rate_keys)
        self._new_conversations = BucketTable(limits.new_conversations_per_sender, limits.rate_keys)
        self._per_provider = BucketTable(limits.provider_messages, limits.rate_keys)
        self._contacted: OrderedDict[str, OrderedDict[str, float]] = OrderedDict()

    async def load(self) -> None:
        await self.blocks.load()

    # -- lookups ---------------------------------------------------------------------------------
    def provider_of(self, jid: JID) -> str | None:
        return self._addressing.provider_of(jid)

    def approved(self, jid: JID) -> bool:
        """Whether ``jid``'s provider is approved for the service its address belongs to."""
        return self._addressing.reachable(jid)

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

    # -- rate limits -----------------------------------------------------------------------------
    def _refuse(self, reason: str, error: StanzaError) -> StanzaError:
        self.refused[reason] += 1
        return error

    def _rate(self, sender: JID, provider_id: str | None, now: float) -> None:
        if self._per_sender.take(str(sender), now):
            raise self._refuse(
                "rate-sender",
                StanzaError(
                    StanzaErrorCondition.POLICY_VIOLATION,
                    f"rate limit: at most {self.limits.messages_per_sender.count} messages per "
                    f"{self.limits.messages_per_sender.period:g} s between this hub's users and "
                    "other services; try again later",
                ),
            )
        if provider_id is not None and self._per_provider.take(provider_id, now):
            raise self._refuse(
                "rate-provider",
                StanzaError(
                    StanzaErrorCondition.RESOURCE_CONSTRAINT,
                    f"the provider '{provider_id}' is over its aggregate message rate; "
                    "try again later",
                ),
            )

    def _first_contact(self, sender: JID, target: JID, now: float) -> None:
        """Charge ``sender``'s new-conversation budget for ``target`` once a budget period:
        the first message or query to an account it has no conversation with, whether that
        account is reachable or not (so probing costs the same as writing)."""
        key = str(sender)
        seen = self._contacted.get(key)
        if seen is None:
            seen = self._contacted[key] = OrderedDict()
            while len(self._contacted) > self.limits.rate_keys:
                self._contacted.popitem(last=False)
        self._contacted.move_to_end(key)
        since = seen.get(str(target))
        if since is not None and now - since < self.limits.new_conversations_per_sender.period:
            return
        self._new_conversation(sender, now)
        seen[str(target)] = now
        seen.move_to_end(str(target))
        while len(seen) > self.limits.contacts_remembered:
            seen.popitem(last=False)

    def _new_conversation(self, sender: JID, now: float) -> None:
        if self._new_conversations.take(str(sender), now):
            rate = self.limits.new_conversations_per_sender
            raise self._refuse(
                "rate-new-conversations",
                StanzaError(
                    StanzaErrorCondition.POLICY_VIOLATION,
                    f"rate limit: at most {rate.count} new conversations per {rate.period:g} s; "
                    "try again later",
                ),
            )

    # -- messages --------------------------------------------------------------------------------
    async def message(self, sender: JID, msg: Message, to: JID) -> Message | None:
        """Check a message between a third-party and a gatekeeper user. Returns what to deliver
        (marked, for a gatekeeper recipient), ``None`` to drop it quietly, or raises."""
        s_bare, r_bare = sender.bare, to.bare
        s_provider, r_provider = self.provider_of(s_bare), self.provider_of(r_bare)
        if self.blocks.blocks(s_bare, r_bare):
            raise self._refuse("sender-blocked-recipient", self.blocks.blocked_error())
        if msg.type is MessageType.ERROR:
            return await self._error_message(s_bare, r_bare, msg)
        now = self._ctx.clock()
        activity = is_activity(msg)
        # Every message counts: the activity hint is the client's word and must buy nothing.
        self._rate(s_bare, s_provider, now)
        payload = _strip(msg.payload)
        if s_provider is not None:
            return await self._from_third_party(
                s_bare, s_provider, r_bare, r_provider, msg, payload, activity, now
            )
        assert r_provider is not None
        return await self._to_third_party(s_bare, r_bare, r_provider, msg, payload, activity, now)

    async def _error_message(self, sender: JID, recipient: JID, msg: Message) -> Message | None:
        """An error message crosses only within an accepted conversation, counts against the
        sender's rate, and carries nothing but its ``<error/>`` (and the hub's marker)."""
        now = self._ctx.clock()
        self._rate(sender, self.provider_of(sender), now)
        home, other = (recipient, sender) if self.provider_of(sender) else (sender, recipient)
        conversation = await self._repo.conversation(str(home), str(other))
        accepted = conversation is not None and conversation.state is ConversationState.ACCEPTED
        if not (accepted and await self.may_exchange(sender, recipient)):
            self.refused["error-dropped"] += 1
            return None
        payload = tuple(el for el in msg.payload if el.tag == _ERROR)
        mark = await self.marker_for(sender, recipient)
        return replace(msg, payload=payload if mark is None else (*payload, mark))

    async def _from_third_party(
        self,
        sender: JID,
        provider_id: str,
        recipient: JID,
        r_provider: str | None,
        msg: Message,
        payload: tuple[Element, ...],
        activity: bool,
        now: float,
    ) -> Message | None:
        # Everything is looked up and evaluated before the one decision below.
        reach = await self.reach(recipient)
        conversation = await self._repo.conversation(str(recipient), str(sender))
        allowed = (
            reach.exists
            & reach.settings.allows(provider_id)
            & self.approved(sender)
            & self.linked(sender, recipient)
            & (not self.blocks.blocks(recipient, sender))
            & (r_provider is None)
        )
        if activity:
            # Receipts, typing and session upkeep are never answered, reachable or not: an
            # answer would tell a stranger, for free, who has opted in.
            accepted = conversation is not None and conversation.state is ConversationState.ACCEPTED
            if not (allowed and accepted):
                self.refused["activity-dropped"] += 1
                return None
        elif conversation is None or not allowed:
            # Unreachable accounts pay like new conversations, whatever their history, so that
            # the answer past the limit is the same for all of them.
            self._first_contact(sender, recipient, now)
        if not allowed:
            raise self._refuse("unreachable", refusal())
        request = conversation is None or conversation.state is ConversationState.REQUEST
        if request:
            count = 0 if conversation is None else conversation.messages
            if count >= self.limits.request_messages:
                raise self._refuse(
                    "request-limit",
                    StanzaError(
                        StanzaErrorCondition.POLICY_VIOLATION,
                        f"message request not accepted yet: at most "
                        f"{self.limits.request_messages} messages until the recipient accepts",
                    ),
                )
            try:
                await self._repo.put_conversation(
                    str(recipient), str(sender), ConversationState.REQUEST, count + 1, now
                )
            except AccountNotFoundError:
                self.forget(recipient)  # deleted since it was cached (e.g. by the CLI)
                raise self._refuse("unreachable", refusal()) from None
        mark = await self.marker(sender, provider_id, reach.settings, request=request)
        return replace(msg, payload=(*payload, mark))

    async def _to_third_party(
        self,
        sender: JID,
        recipient: JID,
        provider_id: str,
        msg: Message,
        payload: tuple[Element, ...],
        activity: bool,
        now: float,
    ) -> Message | None:
        own = await self.settings(sender)
        self._check_own(own, provider_id)
        reach = await self.reach(recipient)
        conversation = await self._repo.conversation(str(sender), str(recipient))
        allowed = (
            reach.exists
            & self.approved(recipient)
            & self.linked(sender, recipient)
            & (not self.blocks.blocks(recipient, sender))
        )
        if not allowed:
            raise self._refuse("unreachable", refusal())
        if conversation is not None and conversation.state is ConversationState.REQUEST:
            if activity:
                return None  # nothing goes back to a request before it is accepted
            raise self._refuse(
                "request-not-accepted",
                StanzaError(
                    StanzaErrorCondition.POLICY_VIOLATION,
                    f"accept the message request from {recipient} before replying",
                ),
            )
        if activity:
            if conversation is None:
                return None  # no typing or receipts into a conversation nobody started
            if own.share_activity or is_protocol(msg):
                return replace(msg, payload=payload)
            return None
        if conversation is None:
            self._first_contact(sender, recipient, now)
            try:
                await self._repo.put_conversation(
                    str(sender), str(recipient), ConversationState.ACCEPTED, 0, now
                )
            except AccountNotFoundError:
                self.forget(sender)
                raise self._refuse("unreachable", refusal()) from None
        return replace(msg, payload=payload)

    def _check_own(self, own: InteropSettings, provider_id: str) -> None:
        if not own.enabled:
            raise self._refuse(
                "own-settings",
                StanzaError(
                    StanzaErrorCondition.POLICY_VIOLATION,
                    "third-party chats are turned off in your settings",
                ),
            )
        if not own.allows(provider_id):
            raise self._refuse(
                "own-settings",
                StanzaError(
                    StanzaErrorCondition.POLICY_VIOLATION,
                    f"the provider '{provider_id}' is not among those your settings allow",
                ),
            )

    # -- presence, PEP and iq --------------------------------------------------------------------
    async def may_exchange(self, from_: JID, to: JID) -> bool:
        """Whether anything may pass from ``from_`` to ``to`` (bare JIDs; either may be local):
        presence, PEP notifications and items, iq traffic."""
        f_provider, t_provider = self.provider_of(from_), self.provider_of(to)
        if f_provider is None and t_provider is None:
            return not (self.blocks.blocks(to, from_) or self.blocks.blocks(from_, to))
        blocked = self.blocks.blocks(to, from_) | self.blocks.blocks(from_, to)
        if f_provider is not None:
            reach = await self.reach(to)
            return (
                reach.exists
                & reach.settings.allows(f_provider)
                & self.approved(from_)
                & self.linked(from_, to)
                & (not blocked)
                & (t_provider is None)
            )
        assert t_provider is not None
        own = await self.settings(from_)
        reach = await self.reach(to)
        conversation = await self._repo.conversation(str(from_), str(to))
        accepted = conversation is None or conversation.state is ConversationState.ACCEPTED
        return (
            own.allows(t_provider)
            & self.approved(to)
            & self.linked(from_, to)
            & reach.exists
            & (not blocked)
            & accepted
        )

    async def may_query(self, sender: JID, to: JID) -> bool:
        """Whether ``sender`` may ask ``to``'s account something (an iq, a PEP read): the
        exchange rules without the message-request state, which only holds back what the
        gatekeeper user sends."""
        s_bare, t_bare = sender.bare, to.bare
        if s_bare == t_bare:
            return True
        t_provider = self.provider_of(t_bare)
        if self.provider_of(s_bare) is None and t_provider is not None:
            own = await self.settings(s_bare)
            reach = await self.reach(t_bare)
            blocked = self.blocks.blocks(t_bare, s_bare) | self.blocks.blocks(s_bare, t_bare)
            return (
                own.allows(t_provider)
                & reach.exists
                & self.approved(t_bare)
                & self.linked(s_bare, t_bare)
                & (not blocked)
            )
        return await self.may_exchange(s_bare, t_bare)

    async def check_iq(self, sender: JID, to: JID) -> None:
        """An iq request across the boundary: raises the generic refusal, or tells a gatekeeper
        user that their own settings stop it."""
        s_bare, t_bare = sender.bare, to.bare
        if self.blocks.blocks(s_bare, t_bare):
            raise self._refuse("sender-blocked-recipient", self.blocks.blocked_error())
        t_provider, s_provider = self.provider_of(t_bare), self.provider_of(s_bare)
        if s_provider is None and t_provider is not None:
            self._check_own(await self.settings(s_bare), t_provider)
        now = self._ctx.clock()
        self._rate(s_bare, s_provider, now)  # queries count like messages
        allowed = await self.may_query(s_bare, t_bare)
        if s_provider is not None and t_provider is None:
            # A third party's first query to an account costs a first contact, reachable or
            # not, so reading keys is no cheaper a test of opt-in than writing.
            conversation = await self._repo.conversation(str(t_bare), str(s_bare))
            if conversation is None or not allowed:
                self._first_contact(s_bare, t_bare, now)
            if to.resource is not None:
                # Whether a resource answers tells that it is online: only within an accepted
                # conversation.
                allowed &= (
                    conversation is not None and conversation.state is ConversationState.ACCEPTED
                )
        elif to.resource is not None:
            allowed &= await self.may_exchange(t_bare, s_bare)
        if not allowed:
            raise self._refuse("unreachable", refusal())

    async def presence(self, sender: JID, presence: Presence, to: JID) -> Presence | None:
        """Presence across the boundary: dropped unless allowed; marked for a gatekeeper user."""
        if not await self.may_exchange(sender.bare, to.bare):
            self.refused["presence"] += 1
            return None
        payload = _strip(presence.payload)
        provider_id = self.provider_of(sender.bare)
        if provider_id is not None:
            settings = await self.settings(to.bare)
            payload = (
                *payload,
                await self.marker(sender.bare, provider_id, settings, request=False),
            )
        return replace(presence, payload=payload)

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
            self._first_contact(owner, peer, now)  # accepting ahead starts a conversation
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
