"""Consent as a pure decision: what becomes of one stanza crossing the interop boundary.

Theory of operation
===================

Every stanza between a third-party user and a gatekeeper user (DESIGN Flows 6 and 7) is reduced
to one :class:`Facts`: which way it goes, what kind of stanza it is, and what the hub knows at
that moment about the two parties: the recipient's account and the gatekeeper user's settings,
the provider's approval, blocks either way, the state of their conversation, and whether the
sender's rate buckets hold a token. :func:`decide` maps the facts to one :class:`Decision`:
deliver, drop silently or refuse with a given error, and the effects that go with it (take a
token from the sender's and the provider's buckets, charge a first contact to the
new-conversation budget, record the conversation, add the hub's marker). It does no I/O, awaits
nothing and reads no clock; ``now`` only stamps what it records. The shell
(:class:`interlink.hub.policy.engine.InteropPolicy`) gathers the facts with the same lookups
whatever the outcome will be, calls :func:`decide` and applies the effects.

The rules are data. :data:`RULES` gives every (direction, kind) a :class:`Rule`, and kinds that
must be treated alike share one row: a third party's directed presence and its subscription
request are :data:`WRITE_IN`, the row its messages use, so a rule cannot hold for messages and be
forgotten for presence. :func:`decide` applies a row in one fixed order:

1. for a gatekeeper user, a provider that is not approved (suspended or pending; they are
   told), then for everyone the sender's own block list (they are told: it is their own list);
2. the sender's rate, then, for a third party, its provider's aggregate rate;
3. a gatekeeper user's own settings (they are told: it is their own settings);
4. for a third party opening a conversation: the new-conversation budget, charged once a period
   for each address it has no conversation with *or cannot reach*, so that probing costs what
   writing costs;
5. reachability, one outcome for every reason (no account, chats off, provider not allowed or
   not approved, another service, blocked, another third party): never an oracle; another
   third party is reachable only by a fellow member of a room, and only for its keys
   (:data:`FELLOW_KINDS`);
6. the conversation's state, as the row needs it (a request's budget, accepted only, ...);
7. for a gatekeeper user starting a conversation: the new-conversation budget.

The first failing check decides. Kinds that no error can answer (presence, iq responses, PEP)
turn every refusal into a silent drop: an answer to presence would be the oracle the generic
refusal exists to prevent. Rows may hush more (a third party's receipts are dropped, never
answered, from the reachability check on). Charges made by the checks that passed stand even
when a later check refuses: that is what makes a refused probe cost the same as a delivered
message.

docs/protocol.md §5 carries :data:`RULES` as a table (:func:`rules_table`), and
tests/hub/test_decision.py checks the two against each other, the rows against a table of
(facts, decision) and every combination of the enumerated facts for gaps and oracles.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from interlink.xmpp.ext.interop import InteropSettings


class Direction(StrEnum):
    INBOUND = "inbound"  # from a third-party user (to a gatekeeper user, or to another third party)
    OUTBOUND = "outbound"  # from a gatekeeper user to a third-party user


class Kind(StrEnum):
    """The stanza as the rules see it."""

    MESSAGE = "message"  # what a person writes (a body, an encrypted payload)
    ACTIVITY = "activity"  # receipts, displayed markers, chat states (or hinted as such)
    PROTOCOL = "protocol"  # OMEMO session upkeep (``no-push``): not the user's activity
    ERROR = "error"  # a type='error' message
    PRESENCE = "presence"  # availability the hub fans out: broadcasts to subscribers, probe answers
    GONE = "gone"  # unavailability the hub fans out: broadcasts, goodbyes to directed targets
    DIRECTED = "directed"  # presence the sender addressed to this account (RFC 6121 §4.6)
    SUBSCRIBE = "subscribe"
    SUBSCRIBED = "subscribed"
    UNSUBSCRIBE = "unsubscribe"
    UNSUBSCRIBED = "unsubscribed"
    PROBE = "probe"
    PRESENCE_ERROR = "presence-error"
    IQ = "iq"  # an iq request to the account (bare JID)
    IQ_RESOURCE = "iq-resource"  # an iq request to one resource (full JID)
    IQ_RESPONSE = "iq-response"  # result or error
    PEP_READ = "pep-read"  # reading the owner's PEP nodes
    PEP_NOTIFICATION = "pep-notification"  # the owner's PEP event to a subscriber
    INVITE = "invite"  # an invitation to a room (XEP-0045 mediated), or being made a member
    ROOM = "room"  # what one occupant of a room brings another: its messages, its presence


ANSWERED = frozenset(
    {Kind.MESSAGE, Kind.ACTIVITY, Kind.PROTOCOL, Kind.ERROR, Kind.IQ, Kind.IQ_RESOURCE, Kind.INVITE}
)
"""Kinds whose refusal is answered with a stanza error; the rest are dropped silently."""


class Stage(StrEnum):
    """The gatekeeper user's conversation with the third party."""

    NONE = "none"
    REQUEST = "request"  # the third party wrote first; not accepted yet
    ACCEPTED = "accepted"


class Need(StrEnum):
    """What a row needs of the conversation's state to pass."""

    NOTHING = "nothing"  # any state: reachability alone
    NO_REQUEST = "no-request"  # anything but a request the gatekeeper user has not accepted
    STARTED = "started"  # a request or accepted; a request gets the stanza bare (no payload)
    ACCEPTED = "accepted"
    REQUEST_BUDGET = "request-budget"  # accepted, or counted as one of a request's messages
    REPLY = "reply"  # accepted, or none (which it starts, accepted); a request is refused


class Verdict(StrEnum):
    DELIVER = "deliver"
    DROP = "drop"  # silently
    REFUSE = "refuse"  # answered with :attr:`Decision.refusal`


class Refusal(StrEnum):
    """The error a refusal is answered with (the shell writes its condition and text)."""

    GENERIC = "generic"  # service-unavailable with no text: what a nonexistent account gets
    BLOCKED = "blocked"  # not-acceptable: the sender blocked the address (XEP-0191 §3.6)
    PROVIDER_NOT_APPROVED = "provider-not-approved"  # told to a gatekeeper user only
    OWN_SETTINGS_OFF = "own-settings-off"
    OWN_SETTINGS_PROVIDER = "own-settings-provider"
    REQUEST_NOT_ACCEPTED = "request-not-accepted"
    REQUEST_LIMIT = "request-limit"
    RATE_SENDER = "rate-sender"
    RATE_PROVIDER = "rate-provider"
    RATE_NEW_CONVERSATIONS = "rate-new-conversations"


class Reason(StrEnum):
    """Why a stanza was refused or dropped, as counted for metrics."""

    PROVIDER_NOT_APPROVED = "provider-not-approved"
    SENDER_BLOCKED = "sender-blocked-recipient"
    RATE_SENDER = "rate-sender"
    RATE_PROVIDER = "rate-provider"
    RATE_NEW_CONVERSATIONS = "rate-new-conversations"
    OWN_SETTINGS = "own-settings"
    UNREACHABLE = "unreachable"
    REQUEST_LIMIT = "request-limit"
    REQUEST_NOT_ACCEPTED = "request-not-accepted"
    ACTIVITY_DROPPED = "activity-dropped"
    ERROR_DROPPED = "error-dropped"
    PRESENCE = "presence"  # presence held back by the conversation's state


class Mark(StrEnum):
    """The hub's interop marker on what a gatekeeper user receives."""

    NONE = "none"
    PLAIN = "plain"
    REQUEST = "request"  # with request='true'


class Keep(StrEnum):
    """What of the sender's payload is delivered (forged markers never are)."""

    ALL = "all"
    ERROR = "error"  # only the <error/> element
    NOTHING = "nothing"


@dataclass(frozen=True, slots=True)
class Facts:
    """Everything :func:`decide` may know about one stanza. ``settings`` are the gatekeeper
    user's: the recipient's for an inbound stanza, the sender's own for an outbound one.
    ``recipient_exists`` is about the addressed account either way. The rate fields say whether
    the bucket holds a token now; ``contacted`` whether the sender was already charged a first
    contact for this address in the current budget period.

    Raises:
        ValueError: for facts that cannot be (a negative count, a limit below 1, an outbound
            stanza to anything but a third party).
    """

    direction: Direction
    kind: Kind
    provider: str  # the third party's provider id
    settings: InteropSettings
    recipient_exists: bool
    approved: bool  # the provider is approved for the gatekeeper user's service
    same_service: bool  # the third party's address belongs to the gatekeeper user's service
    sender_blocks: bool  # the sender's block list holds the recipient
    recipient_blocks: bool  # the recipient's block list holds the sender
    conversation: Stage
    request_messages: int  # messages counted while a request
    request_limit: int  # at most this many until accepted
    recipient_home: bool = True  # inbound: the recipient is a gatekeeper user, not a third party
    fellow_members: bool = False  # two third parties who are members of one room
    sender_rate: bool = True
    provider_rate: bool = True
    new_conversation_budget: bool = True
    contacted: bool = False

    def __post_init__(self) -> None:
        if self.request_messages < 0 or self.request_limit < 1:
            raise ValueError("request_messages must be >= 0 and request_limit >= 1")
        if self.direction is Direction.OUTBOUND and not self.recipient_home:
            raise ValueError("an outbound stanza comes from a gatekeeper user")


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome and its effects, for the shell to apply in this order: take the rate tokens
    and the first contact, count the reason, then (delivering) record the conversation and mark
    what is delivered.

    Raises:
        ValueError: for an inconsistent decision (a refusal without its error, a record or a
            marker on what is not delivered, a record without its time).
    """

    verdict: Verdict
    refusal: Refusal | None = None
    reason: Reason | None = None  # counted for metrics
    charge_sender: bool = False  # take a token from the sender's bucket
    charge_provider: bool = False  # ... and from its provider's
    first_contact: bool = False  # take a new-conversation token and remember the address
    record: Stage | None = None  # write the conversation in this state ...
    messages: int = 0  # ... with this many request messages ...
    at: float | None = None  # ... at this time
    mark: Mark = Mark.NONE
    keep: Keep = Keep.ALL

    def __post_init__(self) -> None:
        if (self.verdict is Verdict.REFUSE) != (self.refusal is not None):
            raise ValueError("a refusal, and only a refusal, names its error")
        delivering = self.verdict is Verdict.DELIVER
        if not delivering and (self.record is not None or self.mark is not Mark.NONE):
            raise ValueError("only what is delivered is recorded or marked")
        if (self.record is None) != (self.at is None):
            raise ValueError("a record needs its time, and only a record")


@dataclass(frozen=True, slots=True)
class Rule:
    """One row of :data:`RULES`."""

    name: str
    needs: Need
    metered: bool = True  # counts against the sender's rate (and its provider's)
    opens: bool = False  # a first contact costs the new-conversation budget
    hushed: Reason | None = None  # past the rates, whatever stops it drops it under this reason
    unmet: Reason | None = None  # counted when the conversation's state stops it
    unmet_refusal: Refusal | None = None  # answered with this (else dropped) when it does
    keep: Keep = Keep.ALL
    marked: bool = True  # inbound: carries the hub's marker
    shared: bool = False  # outbound: passes only if the user shares activity
    counted: bool = True  # its refusals are counted (not for routine checks such as PEP reads)


# -- the rules ---------------------------------------------------------------------------------
# A third party writing: a message, a directed presence, a subscription request. Until accepted
# each is one of the request's messages, and the first to an address is a first contact.
WRITE_IN = Rule("write_in", Need.REQUEST_BUDGET, opens=True)
# A third party's receipts and typing, and its answers within a conversation (error messages,
# subscription approvals, presence errors, probes): only within an accepted conversation.
ACTIVITY_IN = Rule("activity_in", Need.ACCEPTED, hushed=Reason.ACTIVITY_DROPPED)
ERROR_IN = Rule("error_in", Need.ACCEPTED, hushed=Reason.ERROR_DROPPED, keep=Keep.ERROR)
ANSWER_IN = Rule("answer_in", Need.ACCEPTED, unmet=Reason.PRESENCE)
# What the hub fans out for a third party: its availability to the gatekeeper users subscribed
# to it (they asked, which accepted the conversation), and its goodbye to whoever got its
# directed presence (bare while a request: the request has had its say).
FANOUT_IN = Rule("fanout_in", Need.ACCEPTED, metered=False, unmet=Reason.PRESENCE)
GONE_IN = Rule("gone_in", Need.STARTED, metered=False, unmet=Reason.PRESENCE)
# Queries: reachability alone for the account; one of its resources answers only within an
# accepted conversation (an answer would tell that it is online). Both are first contacts.
QUERY_IN = Rule("query_in", Need.NOTHING, opens=True, marked=False)
QUERY_RESOURCE_IN = Rule(
    "query_resource_in",
    Need.ACCEPTED,
    opens=True,
    marked=False,
    unmet=Reason.UNREACHABLE,
    unmet_refusal=Refusal.GENERIC,
)
RESPONSE_IN = Rule("response_in", Need.NOTHING, metered=False, marked=False, counted=False)
PEP_READ_IN = Rule("pep_read_in", Need.NOTHING, metered=False, marked=False, counted=False)
PEP_NOTIFICATION_IN = Rule("pep_notification_in", Need.NOTHING, metered=False, counted=False)
# Within a room both are members of: a third party's groupchat and private messages and its
# presence reach a gatekeeper occupant only while the user could be reached 1:1 (opted in,
# the provider allowed and approved, no block either way); no conversation is needed (the
# membership was consented to, as the ``invite`` row), and the room's rates meter it.
# Dropped otherwise, never answered: a refusal would tell who is in the room.
ROOM_IN = Rule("room_in", Need.NOTHING, metered=False, marked=False, counted=False)

# A gatekeeper user writing: a message or a subscription request. It starts an accepted
# conversation (a first contact); a request must be accepted before anything goes back.
WRITE_OUT = Rule(
    "write_out",
    Need.REPLY,
    opens=True,
    unmet=Reason.REQUEST_NOT_ACCEPTED,
    unmet_refusal=Refusal.REQUEST_NOT_ACCEPTED,
)
ACTIVITY_OUT = Rule("activity_out", Need.ACCEPTED, shared=True)
PROTOCOL_OUT = Rule("protocol_out", Need.ACCEPTED)
ERROR_OUT = Rule("error_out", Need.ACCEPTED, hushed=Reason.ERROR_DROPPED, keep=Keep.ERROR)
# A gatekeeper user's presence, of any kind, reaches a third party only within an accepted
# conversation: nothing goes back to a request, and presence opens nothing.
PRESENCE_OUT = Rule("presence_out", Need.ACCEPTED, unmet=Reason.PRESENCE)
FANOUT_OUT = Rule("fanout_out", Need.ACCEPTED, metered=False, unmet=Reason.PRESENCE)
QUERY_OUT = Rule("query_out", Need.NOTHING)
RESPONSE_OUT = Rule("response_out", Need.NO_REQUEST, metered=False, counted=False)
PEP_READ_OUT = Rule("pep_read_out", Need.NOTHING, metered=False, counted=False)
PEP_NOTIFICATION_OUT = Rule("pep_notification_out", Need.NO_REQUEST, metered=False, counted=False)
# A gatekeeper occupant's messages and presence to a third-party occupant: only while its own
# settings allow the provider and neither blocks the other.
ROOM_OUT = Rule("room_out", Need.NOTHING, metered=False, counted=False)

_IN, _OUT = Direction.INBOUND, Direction.OUTBOUND
RULES: dict[tuple[Direction, Kind], Rule] = {
    (_IN, Kind.MESSAGE): WRITE_IN,
    # Being invited to a room, or added to its members, is writing: a message request from the
    # third party, on the same budgets, refused like a message to a nonexistent account.
    (_IN, Kind.INVITE): WRITE_IN,
    (_IN, Kind.DIRECTED): WRITE_IN,
    (_IN, Kind.SUBSCRIBE): WRITE_IN,
    (_IN, Kind.ACTIVITY): ACTIVITY_IN,
    (_IN, Kind.PROTOCOL): ACTIVITY_IN,
    (_IN, Kind.ERROR): ERROR_IN,
    (_IN, Kind.SUBSCRIBED): ANSWER_IN,
    (_IN, Kind.UNSUBSCRIBE): ANSWER_IN,
    (_IN, Kind.UNSUBSCRIBED): ANSWER_IN,
    (_IN, Kind.PROBE): ANSWER_IN,
    (_IN, Kind.PRESENCE_ERROR): ANSWER_IN,
    (_IN, Kind.PRESENCE): FANOUT_IN,
    (_IN, Kind.GONE): GONE_IN,
    (_IN, Kind.IQ): QUERY_IN,
    (_IN, Kind.IQ_RESOURCE): QUERY_RESOURCE_IN,
    (_IN, Kind.IQ_RESPONSE): RESPONSE_IN,
    (_IN, Kind.PEP_READ): PEP_READ_IN,
    (_IN, Kind.PEP_NOTIFICATION): PEP_NOTIFICATION_IN,
    (_IN, Kind.ROOM): ROOM_IN,
    (_OUT, Kind.MESSAGE): WRITE_OUT,
    (_OUT, Kind.INVITE): WRITE_OUT,
    (_OUT, Kind.SUBSCRIBE): WRITE_OUT,
    (_OUT, Kind.ACTIVITY): ACTIVITY_OUT,
    (_OUT, Kind.PROTOCOL): PROTOCOL_OUT,
    (_OUT, Kind.ERROR): ERROR_OUT,
    (_OUT, Kind.DIRECTED): PRESENCE_OUT,
    (_OUT, Kind.SUBSCRIBED): PRESENCE_OUT,
    (_OUT, Kind.UNSUBSCRIBE): PRESENCE_OUT,
    (_OUT, Kind.UNSUBSCRIBED): PRESENCE_OUT,
    (_OUT, Kind.PROBE): PRESENCE_OUT,
    (_OUT, Kind.PRESENCE_ERROR): PRESENCE_OUT,
    (_OUT, Kind.PRESENCE): FANOUT_OUT,
    (_OUT, Kind.GONE): FANOUT_OUT,
    (_OUT, Kind.IQ): QUERY_OUT,
    (_OUT, Kind.IQ_RESOURCE): QUERY_OUT,
    (_OUT, Kind.IQ_RESPONSE): RESPONSE_OUT,
    (_OUT, Kind.PEP_READ): PEP_READ_OUT,
    (_OUT, Kind.PEP_NOTIFICATION): PEP_NOTIFICATION_OUT,
    (_OUT, Kind.ROOM): ROOM_OUT,
}


def rules_table() -> str:
    """:data:`RULES` as a Markdown table: docs/protocol.md §5 carries it, and a test keeps the
    two equal (as h11 checks its diagram against its tables)."""

    def yes(flag: bool) -> str:
        return "yes" if flag else ""

    lines = [
        "| from | stanza | row | needs | metered | first contact | answered | hushed as "
        "| held back by the state as |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for (direction, kind), rule in RULES.items():
        sender = "third party" if direction is Direction.INBOUND else "gatekeeper user"
        hushed = rule.hushed or ""
        if rule.needs is Need.NOTHING:
            unmet = "never"
        elif rule.needs is Need.REQUEST_BUDGET:
            unmet = Reason.REQUEST_LIMIT
        else:
            unmet = rule.unmet or rule.hushed or "dropped, not counted"
        lines.append(
            f"| {sender} | {kind} | `{rule.name}` | {rule.needs} | {yes(rule.metered)} "
            f"| {yes(rule.opens)} | {yes(kind in ANSWERED)} | {hushed} | {unmet} |"
        )
    return "\n".join(lines) + "\n"


FELLOW_KINDS = frozenset({Kind.IQ, Kind.PEP_READ, Kind.PEP_NOTIFICATION})
"""What one third party may ask of another when both are members of one room: their OMEMO
keys (an iq to the account and its PEP nodes), which group messages need; never a message."""


def reachable(facts: Facts) -> bool:
    """Whether the recipient may be reached at all, whatever the conversation: one answer for
    every reason it may not (evaluated without short-circuiting, like the lookups before it).
    A gatekeeper user's own settings are checked before, and told apart. Another third party
    is reached only by a fellow member of a room, and only for :data:`FELLOW_KINDS`."""
    common = (
        facts.recipient_exists & facts.approved & facts.same_service & (not facts.recipient_blocks)
    )
    if facts.direction is Direction.OUTBOUND:
        return common
    home = facts.recipient_home & facts.settings.allows(facts.provider)
    fellow = (not facts.recipient_home) & facts.fellow_members & (facts.kind in FELLOW_KINDS)
    return common & (home | fellow)


def decide(facts: Facts, now: float) -> Decision:
    """The one decision for ``facts``; ``now`` stamps what is recorded. Pure: no I/O.

    Raises:
        KeyError: for a (direction, kind) with no row in :data:`RULES` (a test proves there
            is none).
    """
    rule = RULES[facts.direction, facts.kind]
    inbound = facts.direction is Direction.INBOUND
    answered = facts.kind in ANSWERED
    sender = provider = first_contact = False

    def stop(reason: Reason, refusal: Refusal | None) -> Decision:
        refused = answered and refusal is not None
        return Decision(
            Verdict.REFUSE if refused else Verdict.DROP,
            refusal if refused else None,
            reason if rule.counted else None,
            charge_sender=sender,
            charge_provider=provider,
            first_contact=first_contact,
        )

    def hushed(reason: Reason, refusal: Refusal | None) -> Decision:
        return stop(rule.hushed, None) if rule.hushed is not None else stop(reason, refusal)

    def dropped() -> Decision:  # held back by the row, without an answer or a count
        return Decision(
            Verdict.DROP,
            charge_sender=sender,
            charge_provider=provider,
            first_contact=first_contact,
        )

    # 1. A gatekeeper user is told that the provider is not approved; then the sender's own
    # block list.
    if not inbound and not facts.approved:
        return stop(Reason.PROVIDER_NOT_APPROVED, Refusal.PROVIDER_NOT_APPROVED)
    if facts.sender_blocks:
        return stop(Reason.SENDER_BLOCKED, Refusal.BLOCKED)
    # 2. Rates. Every metered stanza counts: a hint that it is activity must buy nothing.
    if rule.metered:
        if not facts.sender_rate:
            return stop(Reason.RATE_SENDER, Refusal.RATE_SENDER)
        sender = True
        if inbound:
            if not facts.provider_rate:
                return stop(Reason.RATE_PROVIDER, Refusal.RATE_PROVIDER)
            provider = True
    # 3. A gatekeeper user's own settings.
    if not inbound and not facts.settings.allows(facts.provider):
        own = Refusal.OWN_SETTINGS_PROVIDER if facts.settings.enabled else Refusal.OWN_SETTINGS_OFF
        return hushed(Reason.OWN_SETTINGS, own)
    # 4. A third party's first contact: unreachable addresses pay like new conversations,
    # whatever their history, so that the answer past the budget is the same for all of them.
    can_reach = reachable(facts)
    stage = facts.conversation
    if inbound and rule.opens and (stage is Stage.NONE or not can_reach) and not facts.contacted:
        if not facts.new_conversation_budget:
            return stop(Reason.RATE_NEW_CONVERSATIONS, Refusal.RATE_NEW_CONVERSATIONS)
        first_contact = True
    # 5. Reachability: one outcome for every reason.
    if not can_reach:
        return hushed(Reason.UNREACHABLE, Refusal.GENERIC)
    # 6. The conversation's state.
    mark = Mark.PLAIN if inbound and rule.marked else Mark.NONE
    keep = rule.keep
    record: Stage | None = None
    count = 0
    needs = rule.needs
    unmet = (
        (needs is Need.NO_REQUEST and stage is Stage.REQUEST)
        or (needs is Need.STARTED and stage is Stage.NONE)
        or (needs is Need.ACCEPTED and stage is not Stage.ACCEPTED)
        or (needs is Need.REPLY and stage is Stage.REQUEST)
    )
    if unmet:
        if rule.hushed is not None:
            return stop(rule.hushed, None)
        if rule.unmet is None:
            return dropped()
        return stop(rule.unmet, rule.unmet_refusal)
    if needs is Need.STARTED and stage is Stage.REQUEST:
        keep, mark = Keep.NOTHING, Mark.REQUEST
    elif needs is Need.REQUEST_BUDGET and stage is not Stage.ACCEPTED:
        so_far = facts.request_messages if stage is Stage.REQUEST else 0
        if so_far >= facts.request_limit:
            return stop(Reason.REQUEST_LIMIT, Refusal.REQUEST_LIMIT)
        record, count, mark = Stage.REQUEST, so_far + 1, Mark.REQUEST
    elif needs is Need.REPLY and stage is Stage.NONE:
        # 7. A gatekeeper user starting a conversation.
        if not facts.contacted:
            if not facts.new_conversation_budget:
                return stop(Reason.RATE_NEW_CONVERSATIONS, Refusal.RATE_NEW_CONVERSATIONS)
            first_contact = True
        record = Stage.ACCEPTED
    if rule.shared and not facts.settings.share_activity:
        return dropped()
    return Decision(
        Verdict.DELIVER,
        charge_sender=sender,
        charge_provider=provider,
        first_contact=first_contact,
        record=record,
        messages=count,
        at=None if record is None else now,
        mark=mark,
        keep=keep,
    )
