"""The consent rules as a table (hub/policy/decision.py), tested the way h11 tests its state
machine: rows of (facts, expected decision) for every stanza kind, both directions and every
reason an address cannot be reached; then every combination of the enumerated facts, to show
that there is a decision for each and that no unreachable reason can be told from another."""

from __future__ import annotations

import itertools
from dataclasses import replace
from pathlib import Path

import pytest

from interlink.hub.policy.decision import (
    ANSWERED,
    FELLOW_KINDS,
    RULES,
    WRITE_IN,
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
    rules_table,
)
from interlink.xmpp.ext.interop import InteropSettings

NOW = 1_000.0
PROVIDER = "examplechat"
IN, OUT = Direction.INBOUND, Direction.OUTBOUND
ON = InteropSettings(enabled=True)
LIMIT = 3


def facts(direction: Direction = IN, kind: Kind = Kind.MESSAGE, **changes: object) -> Facts:
    """Reachable, opted in, no conversation yet, every bucket full."""
    base = Facts(
        direction=direction,
        kind=kind,
        provider=PROVIDER,
        settings=ON,
        recipient_exists=True,
        approved=True,
        same_service=True,
        sender_blocks=False,
        recipient_blocks=False,
        conversation=Stage.NONE,
        request_messages=0,
        request_limit=LIMIT,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


# Every way an address cannot be reached, as the facts show it.
UNREACHABLE_IN: dict[str, dict[str, object]] = {
    "no such account": {"recipient_exists": False},
    "chats off": {"settings": InteropSettings()},
    "provider not allowed": {
        "settings": InteropSettings(enabled=True, providers=frozenset({"other"}))
    },
    "provider not approved": {"approved": False},
    "another service": {"same_service": False},
    "blocked by the recipient": {"recipient_blocks": True},
    "another third party": {"recipient_home": False},
}
# A gatekeeper user is told when the provider is not approved (rows below); the rest is one.
UNREACHABLE_OUT: dict[str, dict[str, object]] = {
    "not enlisted": {"recipient_exists": False},
    "another service": {"same_service": False},
    "blocked by the third party": {"recipient_blocks": True},
}

CHARGED = {"charge_sender": True, "charge_provider": True}  # a third party's rates
CHARGED_OUT = {"charge_sender": True}  # a gatekeeper user's (no provider bucket)


def deliver(**effects: object) -> Decision:
    return Decision(Verdict.DELIVER, **effects)  # type: ignore[arg-type]


def drop(reason: Reason | None = None, /, **effects: object) -> Decision:
    return Decision(Verdict.DROP, reason=reason, **effects)  # type: ignore[arg-type]


def refuse(refusal: Refusal, reason: Reason, **effects: object) -> Decision:
    return Decision(Verdict.REFUSE, refusal, reason, **effects)  # type: ignore[arg-type]


REQUEST_1 = deliver(
    **CHARGED, first_contact=True, record=Stage.REQUEST, messages=1, at=NOW, mark=Mark.REQUEST
)
GENERIC = refuse(Refusal.GENERIC, Reason.UNREACHABLE, **CHARGED, first_contact=True)

# (facts, decision): one row each, grouped by what is being shown.
ROWS: list[tuple[str, Facts, Decision]] = [
    # -- a third party writing: messages, directed presence and subscription requests -------
    ("message opens a request", facts(), REQUEST_1),
    (
        "a fellow room member reads another third party's keys",
        facts(kind=Kind.PEP_READ, recipient_home=False, fellow_members=True),
        deliver(),
    ),
    (
        "but never writes to them",
        facts(recipient_home=False, fellow_members=True),
        GENERIC,
    ),
    ("a room invitation opens a request like a message", facts(kind=Kind.INVITE), REQUEST_1),
    (
        "a room invitation to an unreachable address",
        facts(kind=Kind.INVITE, settings=InteropSettings()),
        GENERIC,
    ),
    (
        "message within a request's budget",
        facts(conversation=Stage.REQUEST, request_messages=LIMIT - 1),
        deliver(**CHARGED, record=Stage.REQUEST, messages=LIMIT, at=NOW, mark=Mark.REQUEST),
    ),
    (
        "message past a request's budget",
        facts(conversation=Stage.REQUEST, request_messages=LIMIT),
        refuse(Refusal.REQUEST_LIMIT, Reason.REQUEST_LIMIT, **CHARGED),
    ),
    (
        "message in an accepted conversation",
        facts(conversation=Stage.ACCEPTED),
        deliver(**CHARGED, mark=Mark.PLAIN),
    ),
    ("message to an unreachable address", facts(recipient_exists=False), GENERIC),
    (
        "message to an unreachable address already charged this period",
        facts(recipient_exists=False, contacted=True),
        refuse(Refusal.GENERIC, Reason.UNREACHABLE, **CHARGED),
    ),
    (
        "message to an unreachable address with a conversation still costs a first contact",
        facts(recipient_blocks=True, conversation=Stage.ACCEPTED),
        GENERIC,
    ),
    (
        "message to a new address past the new-conversation budget",
        facts(new_conversation_budget=False),
        refuse(Refusal.RATE_NEW_CONVERSATIONS, Reason.RATE_NEW_CONVERSATIONS, **CHARGED),
    ),
    (
        "message to an unreachable address past the budget: the same answer",
        facts(new_conversation_budget=False, settings=InteropSettings()),
        refuse(Refusal.RATE_NEW_CONVERSATIONS, Reason.RATE_NEW_CONVERSATIONS, **CHARGED),
    ),
    (
        "message in an accepted conversation past the new-conversation budget",
        facts(new_conversation_budget=False, conversation=Stage.ACCEPTED),
        deliver(**CHARGED, mark=Mark.PLAIN),
    ),
    (
        "message past the sender's rate",
        facts(sender_rate=False),
        refuse(Refusal.RATE_SENDER, Reason.RATE_SENDER),
    ),
    (
        "message past the provider's rate",
        facts(provider_rate=False),
        refuse(Refusal.RATE_PROVIDER, Reason.RATE_PROVIDER, charge_sender=True),
    ),
    (
        "message to an address on the sender's own block list",
        facts(sender_blocks=True, recipient_exists=False),
        refuse(Refusal.BLOCKED, Reason.SENDER_BLOCKED),
    ),
    ("directed presence opens a request", facts(kind=Kind.DIRECTED), REQUEST_1),
    ("subscription request opens a request", facts(kind=Kind.SUBSCRIBE), REQUEST_1),
    (
        "directed presence past a request's budget is dropped, not answered",
        facts(kind=Kind.DIRECTED, conversation=Stage.REQUEST, request_messages=LIMIT),
        drop(Reason.REQUEST_LIMIT, **CHARGED),
    ),
    (
        "subscription request past a request's budget",
        facts(kind=Kind.SUBSCRIBE, conversation=Stage.REQUEST, request_messages=LIMIT),
        drop(Reason.REQUEST_LIMIT, **CHARGED),
    ),
    (
        "directed presence to an unreachable address: dropped, first contact charged",
        facts(kind=Kind.DIRECTED, settings=InteropSettings()),
        drop(Reason.UNREACHABLE, **CHARGED, first_contact=True),
    ),
    (
        "directed presence past the new-conversation budget",
        facts(kind=Kind.DIRECTED, new_conversation_budget=False),
        drop(Reason.RATE_NEW_CONVERSATIONS, **CHARGED),
    ),
    (
        "subscription request past the sender's rate",
        facts(kind=Kind.SUBSCRIBE, sender_rate=False),
        drop(Reason.RATE_SENDER),
    ),
    (
        "directed presence in an accepted conversation",
        facts(kind=Kind.DIRECTED, conversation=Stage.ACCEPTED),
        deliver(**CHARGED, mark=Mark.PLAIN),
    ),
    # -- a third party's activity and answers: only within an accepted conversation ---------
    (
        "receipt in an accepted conversation",
        facts(kind=Kind.ACTIVITY, conversation=Stage.ACCEPTED),
        deliver(**CHARGED, mark=Mark.PLAIN),
    ),
    (
        "receipt to a request: dropped, never answered",
        facts(kind=Kind.ACTIVITY, conversation=Stage.REQUEST),
        drop(Reason.ACTIVITY_DROPPED, **CHARGED),
    ),
    (
        "receipt to an unreachable address: dropped, no first contact",
        facts(kind=Kind.ACTIVITY, recipient_exists=False, conversation=Stage.ACCEPTED),
        drop(Reason.ACTIVITY_DROPPED, **CHARGED),
    ),
    (
        "receipt past the sender's rate is answered (the rate is the sender's own)",
        facts(kind=Kind.ACTIVITY, sender_rate=False),
        refuse(Refusal.RATE_SENDER, Reason.RATE_SENDER),
    ),
    (
        "session upkeep to a request",
        facts(kind=Kind.PROTOCOL, conversation=Stage.REQUEST),
        drop(Reason.ACTIVITY_DROPPED, **CHARGED),
    ),
    (
        "error message in an accepted conversation: the error alone",
        facts(kind=Kind.ERROR, conversation=Stage.ACCEPTED),
        deliver(**CHARGED, mark=Mark.PLAIN, keep=Keep.ERROR),
    ),
    (
        "error message to a request",
        facts(kind=Kind.ERROR, conversation=Stage.REQUEST),
        drop(Reason.ERROR_DROPPED, **CHARGED),
    ),
    (
        "error message to an unreachable address",
        facts(kind=Kind.ERROR, approved=False, conversation=Stage.ACCEPTED),
        drop(Reason.ERROR_DROPPED, **CHARGED),
    ),
    *[
        (
            f"{kind} in an accepted conversation",
            facts(kind=kind, conversation=Stage.ACCEPTED),
            deliver(**CHARGED, mark=Mark.PLAIN),
        )
        for kind in (
            Kind.SUBSCRIBED,
            Kind.UNSUBSCRIBE,
            Kind.UNSUBSCRIBED,
            Kind.PROBE,
            Kind.PRESENCE_ERROR,
        )
    ],
    *[
        (
            f"{kind} to a request",
            facts(kind=kind, conversation=Stage.REQUEST),
            drop(Reason.PRESENCE, **CHARGED),
        )
        for kind in (
            Kind.SUBSCRIBED,
            Kind.UNSUBSCRIBE,
            Kind.UNSUBSCRIBED,
            Kind.PROBE,
            Kind.PRESENCE_ERROR,
        )
    ],
    (
        "probe with no conversation: no first contact, nothing learnt",
        facts(kind=Kind.PROBE),
        drop(Reason.PRESENCE, **CHARGED),
    ),
    # -- what the hub fans out for a third party --------------------------------------------
    (
        "broadcast to a subscriber in an accepted conversation: not metered",
        facts(kind=Kind.PRESENCE, conversation=Stage.ACCEPTED),
        deliver(mark=Mark.PLAIN),
    ),
    (
        "broadcast to a request",
        facts(kind=Kind.PRESENCE, conversation=Stage.REQUEST),
        drop(Reason.PRESENCE),
    ),
    (
        "broadcast to an unreachable address",
        facts(kind=Kind.PRESENCE, recipient_blocks=True, conversation=Stage.ACCEPTED),
        drop(Reason.UNREACHABLE),
    ),
    (
        "goodbye to a request: bare",
        facts(kind=Kind.GONE, conversation=Stage.REQUEST),
        deliver(mark=Mark.REQUEST, keep=Keep.NOTHING),
    ),
    (
        "goodbye in an accepted conversation",
        facts(kind=Kind.GONE, conversation=Stage.ACCEPTED),
        deliver(mark=Mark.PLAIN),
    ),
    ("goodbye with no conversation", facts(kind=Kind.GONE), drop(Reason.PRESENCE)),
    # -- a third party's queries -------------------------------------------------------------
    (
        "iq to the account: a first contact, no request",
        facts(kind=Kind.IQ),
        deliver(**CHARGED, first_contact=True),
    ),
    (
        "iq to the account during a request",
        facts(kind=Kind.IQ, conversation=Stage.REQUEST),
        deliver(**CHARGED),
    ),
    (
        "iq to an unreachable account",
        facts(kind=Kind.IQ, same_service=False),
        GENERIC,
    ),
    (
        "iq to a resource during a request: as if unreachable",
        facts(kind=Kind.IQ_RESOURCE, conversation=Stage.REQUEST),
        refuse(Refusal.GENERIC, Reason.UNREACHABLE, **CHARGED),
    ),
    (
        "iq to a resource with no conversation",
        facts(kind=Kind.IQ_RESOURCE),
        GENERIC,
    ),
    (
        "iq to a resource in an accepted conversation",
        facts(kind=Kind.IQ_RESOURCE, conversation=Stage.ACCEPTED),
        deliver(**CHARGED),
    ),
    (
        "iq response during a request",
        facts(kind=Kind.IQ_RESPONSE, conversation=Stage.REQUEST),
        deliver(),
    ),
    (
        "iq response to an unreachable account: dropped, not counted",
        facts(kind=Kind.IQ_RESPONSE, recipient_exists=False),
        drop(),
    ),
    ("PEP read", facts(kind=Kind.PEP_READ), deliver()),
    ("PEP read of an unreachable account", facts(kind=Kind.PEP_READ, approved=False), drop()),
    (
        "PEP notification to a subscriber",
        facts(kind=Kind.PEP_NOTIFICATION),
        deliver(mark=Mark.PLAIN),
    ),
    # -- a gatekeeper user writing -----------------------------------------------------------
    (
        "a gatekeeper user's room invitation starts an accepted conversation like a message",
        facts(OUT, kind=Kind.INVITE),
        deliver(**CHARGED_OUT, first_contact=True, record=Stage.ACCEPTED, at=NOW),
    ),
    (
        "first message starts an accepted conversation",
        facts(OUT),
        deliver(**CHARGED_OUT, first_contact=True, record=Stage.ACCEPTED, at=NOW),
    ),
    (
        "first message to an address already charged (keys read first)",
        facts(OUT, contacted=True, new_conversation_budget=False),
        deliver(**CHARGED_OUT, record=Stage.ACCEPTED, at=NOW),
    ),
    (
        "first message past the new-conversation budget",
        facts(OUT, new_conversation_budget=False),
        refuse(Refusal.RATE_NEW_CONVERSATIONS, Reason.RATE_NEW_CONVERSATIONS, **CHARGED_OUT),
    ),
    (
        "reply to a request",
        facts(OUT, conversation=Stage.REQUEST),
        refuse(Refusal.REQUEST_NOT_ACCEPTED, Reason.REQUEST_NOT_ACCEPTED, **CHARGED_OUT),
    ),
    (
        "message in an accepted conversation",
        facts(OUT, conversation=Stage.ACCEPTED),
        deliver(**CHARGED_OUT),
    ),
    (
        "message with chats turned off",
        facts(OUT, settings=InteropSettings(), recipient_exists=False),
        refuse(Refusal.OWN_SETTINGS_OFF, Reason.OWN_SETTINGS, **CHARGED_OUT),
    ),
    (
        "message to a provider the user's settings leave out",
        facts(OUT, settings=InteropSettings(enabled=True, providers=frozenset())),
        refuse(Refusal.OWN_SETTINGS_PROVIDER, Reason.OWN_SETTINGS, **CHARGED_OUT),
    ),
    (
        "message to an unreachable third party: no first contact",
        facts(OUT, recipient_exists=False),
        refuse(Refusal.GENERIC, Reason.UNREACHABLE, **CHARGED_OUT),
    ),
    (
        "message to an address on the user's own block list",
        facts(OUT, sender_blocks=True),
        refuse(Refusal.BLOCKED, Reason.SENDER_BLOCKED),
    ),
    (
        "message past the user's rate (no provider bucket for the hub's users)",
        facts(OUT, sender_rate=False, provider_rate=False),
        refuse(Refusal.RATE_SENDER, Reason.RATE_SENDER),
    ),
    (
        "subscription request starts an accepted conversation",
        facts(OUT, Kind.SUBSCRIBE),
        deliver(**CHARGED_OUT, first_contact=True, record=Stage.ACCEPTED, at=NOW),
    ),
    (
        "subscription request to a request: dropped",
        facts(OUT, Kind.SUBSCRIBE, conversation=Stage.REQUEST),
        drop(Reason.REQUEST_NOT_ACCEPTED, **CHARGED_OUT),
    ),
    (
        "subscription request with chats off: dropped",
        facts(OUT, Kind.SUBSCRIBE, settings=InteropSettings()),
        drop(Reason.OWN_SETTINGS, **CHARGED_OUT),
    ),
    # -- a gatekeeper user's activity, presence and answers ----------------------------------
    (
        "receipt in an accepted conversation",
        facts(OUT, Kind.ACTIVITY, conversation=Stage.ACCEPTED),
        deliver(**CHARGED_OUT),
    ),
    (
        "receipt while not sharing activity",
        facts(
            OUT,
            Kind.ACTIVITY,
            conversation=Stage.ACCEPTED,
            settings=InteropSettings(enabled=True, share_activity=False),
        ),
        drop(**CHARGED_OUT),
    ),
    (
        "session upkeep while not sharing activity",
        facts(
            OUT,
            Kind.PROTOCOL,
            conversation=Stage.ACCEPTED,
            settings=InteropSettings(enabled=True, share_activity=False),
        ),
        deliver(**CHARGED_OUT),
    ),
    (
        "receipt to a request",
        facts(OUT, Kind.ACTIVITY, conversation=Stage.REQUEST),
        drop(**CHARGED_OUT),
    ),
    ("receipt with no conversation", facts(OUT, Kind.ACTIVITY), drop(**CHARGED_OUT)),
    (
        "receipt with chats off is answered (the user's own settings)",
        facts(OUT, Kind.ACTIVITY, settings=InteropSettings()),
        refuse(Refusal.OWN_SETTINGS_OFF, Reason.OWN_SETTINGS, **CHARGED_OUT),
    ),
    (
        "error message with chats off",
        facts(OUT, Kind.ERROR, settings=InteropSettings(), conversation=Stage.ACCEPTED),
        drop(Reason.ERROR_DROPPED, **CHARGED_OUT),
    ),
    (
        "error message in an accepted conversation",
        facts(OUT, Kind.ERROR, conversation=Stage.ACCEPTED),
        deliver(**CHARGED_OUT, keep=Keep.ERROR),
    ),
    *[
        (
            f"{kind} to {stage}",
            facts(OUT, kind, conversation=stage),
            drop(Reason.PRESENCE, **CHARGED_OUT),
        )
        for kind in (
            Kind.DIRECTED,
            Kind.SUBSCRIBED,
            Kind.UNSUBSCRIBE,
            Kind.UNSUBSCRIBED,
            Kind.PROBE,
            Kind.PRESENCE_ERROR,
        )
        for stage in (Stage.NONE, Stage.REQUEST)
    ],
    (
        "approving a subscription in an accepted conversation",
        facts(OUT, Kind.SUBSCRIBED, conversation=Stage.ACCEPTED),
        deliver(**CHARGED_OUT),
    ),
    (
        "broadcast to a third party subscriber",
        facts(OUT, Kind.PRESENCE, conversation=Stage.ACCEPTED),
        deliver(),
    ),
    (
        "broadcast to a request",
        facts(OUT, Kind.PRESENCE, conversation=Stage.REQUEST),
        drop(Reason.PRESENCE),
    ),
    (
        "goodbye to a request",
        facts(OUT, Kind.GONE, conversation=Stage.REQUEST),
        drop(Reason.PRESENCE),
    ),
    (
        "broadcast with chats off",
        facts(OUT, Kind.PRESENCE, conversation=Stage.ACCEPTED, settings=InteropSettings()),
        drop(Reason.OWN_SETTINGS),
    ),
    # -- a gatekeeper user's queries ---------------------------------------------------------
    (
        "iq to a request's sender: queries follow the iq rules",
        facts(OUT, Kind.IQ, conversation=Stage.REQUEST),
        deliver(**CHARGED_OUT),
    ),
    (
        "iq to a resource with no conversation",
        facts(OUT, Kind.IQ_RESOURCE),
        deliver(**CHARGED_OUT),
    ),
    (
        "iq with chats off",
        facts(OUT, Kind.IQ, settings=InteropSettings()),
        refuse(Refusal.OWN_SETTINGS_OFF, Reason.OWN_SETTINGS, **CHARGED_OUT),
    ),
    (
        "iq to an unreachable third party",
        facts(OUT, Kind.IQ, same_service=False),
        refuse(Refusal.GENERIC, Reason.UNREACHABLE, **CHARGED_OUT),
    ),
    (
        "iq to a provider not approved: told so before anything else",
        facts(OUT, Kind.IQ, approved=False, sender_blocks=True, sender_rate=False),
        refuse(Refusal.PROVIDER_NOT_APPROVED, Reason.PROVIDER_NOT_APPROVED),
    ),
    (
        "message to a provider not approved",
        facts(OUT, approved=False, conversation=Stage.ACCEPTED),
        refuse(Refusal.PROVIDER_NOT_APPROVED, Reason.PROVIDER_NOT_APPROVED),
    ),
    (
        "presence to a provider not approved: dropped",
        facts(OUT, Kind.DIRECTED, approved=False, conversation=Stage.ACCEPTED),
        drop(Reason.PROVIDER_NOT_APPROVED),
    ),
    (
        "iq response to a request: nothing goes back",
        facts(OUT, Kind.IQ_RESPONSE, conversation=Stage.REQUEST),
        drop(),
    ),
    ("iq response with no conversation", facts(OUT, Kind.IQ_RESPONSE), deliver()),
    (
        "PEP notification to a request",
        facts(OUT, Kind.PEP_NOTIFICATION, conversation=Stage.REQUEST),
        drop(),
    ),
    (
        "PEP notification to a subscriber with no conversation",
        facts(OUT, Kind.PEP_NOTIFICATION),
        deliver(),
    ),
    (
        "PEP read of a request's sender",
        facts(OUT, Kind.PEP_READ, conversation=Stage.REQUEST),
        deliver(),
    ),
    (
        "PEP read with chats off",
        facts(OUT, Kind.PEP_READ, settings=InteropSettings()),
        drop(),
    ),
    # -- between occupants of one room ----------------------------------------------------------
    (
        "a third-party occupant's message reaches a gatekeeper occupant who allows its provider",
        facts(kind=Kind.ROOM),
        deliver(),
    ),
    (
        "... with no conversation needed, and no rate of the 1:1 buckets (the room's apply)",
        facts(kind=Kind.ROOM, sender_rate=False, provider_rate=False),
        deliver(),
    ),
    (
        "... not one who has not opted in: dropped, never answered (no oracle of who is in)",
        facts(kind=Kind.ROOM, settings=InteropSettings()),
        drop(),
    ),
    (
        "... nor one who allows only other providers",
        facts(kind=Kind.ROOM, settings=InteropSettings(enabled=True, providers=frozenset({"x"}))),
        drop(),
    ),
    (
        "... nor one who blocked it",
        facts(kind=Kind.ROOM, recipient_blocks=True, conversation=Stage.ACCEPTED),
        drop(),
    ),
    (
        "a gatekeeper occupant's message reaches a third-party occupant it allows",
        facts(OUT, Kind.ROOM),
        deliver(),
    ),
    (
        "... not while the gatekeeper user's own settings leave the provider out",
        facts(OUT, Kind.ROOM, settings=InteropSettings()),
        drop(),
    ),
    (
        "... nor a third party it blocked",
        facts(OUT, Kind.ROOM, sender_blocks=True),
        drop(),
    ),
    (
        "... nor one of a provider no longer approved",
        facts(OUT, Kind.ROOM, approved=False),
        drop(),
    ),
]


@pytest.mark.parametrize(("case", "given", "expected"), ROWS, ids=[row[0] for row in ROWS])
def test_decision_table(case: str, given: Facts, expected: Decision) -> None:
    assert decide(given, NOW) == expected, case


def test_every_kind_has_rows_in_both_directions() -> None:
    assert {(f.direction, f.kind) for _, f, _ in ROWS} == set(itertools.product(Direction, Kind))


# What every unreachable address gets, whatever the reason and the conversation's state.
DROPPED_UNREACHABLE = drop(Reason.UNREACHABLE, **CHARGED)
DROPPED_UNREACHABLE_OUT = drop(Reason.UNREACHABLE, **CHARGED_OUT)
GENERIC_OUT = refuse(Refusal.GENERIC, Reason.UNREACHABLE, **CHARGED_OUT)
UNREACHABLE: dict[tuple[Direction, Kind], Decision] = {
    (IN, Kind.MESSAGE): GENERIC,
    (IN, Kind.INVITE): GENERIC,
    (IN, Kind.ACTIVITY): drop(Reason.ACTIVITY_DROPPED, **CHARGED),
    (IN, Kind.PROTOCOL): drop(Reason.ACTIVITY_DROPPED, **CHARGED),
    (IN, Kind.ERROR): drop(Reason.ERROR_DROPPED, **CHARGED),
    (IN, Kind.PRESENCE): drop(Reason.UNREACHABLE),
    (IN, Kind.GONE): drop(Reason.UNREACHABLE),
    (IN, Kind.DIRECTED): drop(Reason.UNREACHABLE, **CHARGED, first_contact=True),
    (IN, Kind.SUBSCRIBE): drop(Reason.UNREACHABLE, **CHARGED, first_contact=True),
    (IN, Kind.SUBSCRIBED): DROPPED_UNREACHABLE,
    (IN, Kind.UNSUBSCRIBE): DROPPED_UNREACHABLE,
    (IN, Kind.UNSUBSCRIBED): DROPPED_UNREACHABLE,
    (IN, Kind.PROBE): DROPPED_UNREACHABLE,
    (IN, Kind.PRESENCE_ERROR): DROPPED_UNREACHABLE,
    (IN, Kind.IQ): GENERIC,
    (IN, Kind.IQ_RESOURCE): GENERIC,
    (IN, Kind.IQ_RESPONSE): drop(),
    (IN, Kind.PEP_READ): drop(),
    (IN, Kind.PEP_NOTIFICATION): drop(),
    (IN, Kind.ROOM): drop(),
    (OUT, Kind.MESSAGE): GENERIC_OUT,
    (OUT, Kind.INVITE): GENERIC_OUT,
    (OUT, Kind.ACTIVITY): GENERIC_OUT,
    (OUT, Kind.PROTOCOL): GENERIC_OUT,
    (OUT, Kind.ERROR): drop(Reason.ERROR_DROPPED, **CHARGED_OUT),
    (OUT, Kind.PRESENCE): drop(Reason.UNREACHABLE),
    (OUT, Kind.GONE): drop(Reason.UNREACHABLE),
    (OUT, Kind.DIRECTED): DROPPED_UNREACHABLE_OUT,
    (OUT, Kind.SUBSCRIBE): DROPPED_UNREACHABLE_OUT,
    (OUT, Kind.SUBSCRIBED): DROPPED_UNREACHABLE_OUT,
    (OUT, Kind.UNSUBSCRIBE): DROPPED_UNREACHABLE_OUT,
    (OUT, Kind.UNSUBSCRIBED): DROPPED_UNREACHABLE_OUT,
    (OUT, Kind.PROBE): DROPPED_UNREACHABLE_OUT,
    (OUT, Kind.PRESENCE_ERROR): DROPPED_UNREACHABLE_OUT,
    (OUT, Kind.IQ): GENERIC_OUT,
    (OUT, Kind.IQ_RESOURCE): GENERIC_OUT,
    (OUT, Kind.IQ_RESPONSE): drop(),
    (OUT, Kind.PEP_READ): drop(),
    (OUT, Kind.PEP_NOTIFICATION): drop(),
    (OUT, Kind.ROOM): drop(),
}
UNREACHABLE_ROWS = [
    (direction, kind, reason, stage)
    for direction, reasons in ((IN, UNREACHABLE_IN), (OUT, UNREACHABLE_OUT))
    for kind in Kind
    for reason in reasons
    for stage in Stage
]


@pytest.mark.parametrize(
    ("direction", "kind", "reason", "stage"),
    UNREACHABLE_ROWS,
    ids=[f"{d}-{k}-{r}-{s}" for d, k, r, s in UNREACHABLE_ROWS],
)
def test_every_unreachable_reason_is_the_same_decision(
    direction: Direction, kind: Kind, reason: str, stage: Stage
) -> None:
    """Every stanza kind × direction × reason an address cannot be reached × conversation
    state: one decision per kind and direction (the exhaustive check below covers the other
    facts)."""
    changes = (UNREACHABLE_IN if direction is IN else UNREACHABLE_OUT)[reason]
    given = facts(direction, kind, conversation=stage, **changes)
    assert decide(given, NOW) == UNREACHABLE[direction, kind]


def test_rules_cover_every_kind_in_both_directions() -> None:
    assert set(RULES) == set(itertools.product(Direction, Kind))


def test_one_rule_for_writing_whatever_the_stanza() -> None:
    """A third party's message, directed presence and subscription request are one row."""
    assert RULES[IN, Kind.MESSAGE] is RULES[IN, Kind.DIRECTED] is RULES[IN, Kind.SUBSCRIBE]
    assert RULES[IN, Kind.MESSAGE] is WRITE_IN
    assert RULES[OUT, Kind.MESSAGE] is RULES[OUT, Kind.SUBSCRIBE]
    assert RULES[IN, Kind.INVITE] is WRITE_IN  # a room invitation is a message request
    assert RULES[OUT, Kind.INVITE] is RULES[OUT, Kind.MESSAGE]


def test_the_documented_table_is_the_rules() -> None:
    """docs/protocol.md carries RULES as a table; it must say what the code does."""
    doc = (Path(__file__).parents[2] / "docs" / "protocol.md").read_text()
    start = doc.index("<!-- rules-table:")
    body = doc[doc.index("\n", start) + 1 : doc.index("<!-- /rules-table -->")]
    assert body == rules_table(), "regenerate the table with rules_table()"


def _combinations() -> itertools.product[tuple[object, ...]]:
    return itertools.product(
        list(Kind),
        list(Stage),
        (0, LIMIT),  # request messages so far
        (False, True),  # sender_blocks
        (False, True),  # sender_rate
        (False, True),  # provider_rate
        (False, True),  # new_conversation_budget
        (False, True),  # contacted
        (False, True),  # share_activity
    )


def test_every_combination_of_facts_has_a_decision_and_no_oracle() -> None:
    """Every combination of the enumerated facts yields a valid decision (no gaps: no
    KeyError, no invalid Decision), and for a third party every unreachable reason yields the
    very same decision as every other, whatever the rest of the facts."""
    checked = 0
    for direction, reasons in ((IN, UNREACHABLE_IN), (OUT, UNREACHABLE_OUT)):
        for combination in _combinations():
            kind, stage, count, s_blocks, s_rate, p_rate, budget, contacted, share = combination
            assert isinstance(kind, Kind)
            base = facts(
                direction,
                kind,
                settings=InteropSettings(enabled=True, share_activity=bool(share)),
                conversation=stage,
                request_messages=count,
                sender_blocks=s_blocks,
                sender_rate=s_rate,
                provider_rate=p_rate,
                new_conversation_budget=budget,
                contacted=contacted,
            )
            reachable = decide(base, NOW)
            _check_invariants(base, reachable)
            unreachable = set()
            for changes in reasons.values():
                given = replace(base, **changes)  # type: ignore[arg-type]
                decision = decide(given, NOW)
                _check_invariants(given, decision)
                unreachable.add(decision)
            checked += 1 + len(reasons)
            assert len(unreachable) == 1, (direction, combination, unreachable)
            if direction is OUT:
                suspended = replace(base, approved=False)
                decision = decide(suspended, NOW)
                _check_invariants(suspended, decision)
                assert decision.reason in (Reason.PROVIDER_NOT_APPROVED, None)
                checked += 1
    combinations = len(list(_combinations()))
    assert checked == combinations * (3 + len(UNREACHABLE_IN) + len(UNREACHABLE_OUT))


def _check_invariants(given: Facts, decision: Decision) -> None:
    if decision.verdict is Verdict.REFUSE:
        assert given.kind in ANSWERED, (given, decision)
    if given.direction is OUT:
        assert decision.mark is Mark.NONE
        assert not decision.charge_provider
    if decision.first_contact:
        assert not given.contacted
        assert given.new_conversation_budget
    if decision.charge_sender or decision.charge_provider or decision.first_contact:
        assert given.sender_rate
    if decision.verdict is Verdict.DELIVER:
        assert not given.sender_blocks
        assert given.recipient_exists
        assert given.approved
        assert given.same_service
        assert not given.recipient_blocks
        if given.recipient_home:
            assert given.settings.allows(given.provider)
        else:  # another third party: a fellow member of a room, for its keys only
            assert given.fellow_members
            assert given.kind in FELLOW_KINDS
    if decision.record is Stage.REQUEST:
        assert given.direction is IN
        assert decision.messages <= given.request_limit
