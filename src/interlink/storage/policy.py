"""Consent and abuse controls: a gatekeeper user's interop settings and phone number, the state
of each conversation with a third-party user, block lists (XEP-0191) and reports (XEP-0377).

Only the records and the repository are here; the rules are in :mod:`interlink.hub.policy`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import NamedTuple, Protocol

from interlink.xmpp.ext.interop import InteropSettings


class ConversationState(StrEnum):
    REQUEST = "request"  # the third-party user wrote first; the gatekeeper user has not accepted
    ACCEPTED = "accepted"


@dataclass(frozen=True, slots=True)
class Conversation:
    """A gatekeeper user's (``owner``) conversation with a third-party user (``peer``)."""

    peer: str
    state: ConversationState
    messages: int  # messages accepted while a request
    created_at: float


@dataclass(frozen=True, slots=True)
class AttachedMessage:
    """A message the reporter chose to attach to a report, as the reporter's client decrypted it."""

    id: str
    at: str  # XEP-0082 timestamp, as given by the reporter
    body: str


@dataclass(frozen=True, slots=True)
class Report:
    id: int
    reporter: str
    reported: str
    provider_id: str | None
    reason: str  # an XEP-0377 reason URI, checked by the wire code
    text: str
    messages: tuple[AttachedMessage, ...]
    created_at: float
    forwarded_at: float | None = None
    forward_error: str | None = None
    forward_done: bool = False
    #: the room whose alias the reporter named (the account behind it is ``reported``)
    room: str | None = None


@dataclass(slots=True)
class Reach:
    """One lookup of an account for the routing rules: whether it exists and its settings (the
    defaults when it has none). Both answers come from the same query."""

    exists: bool
    settings: InteropSettings = field(default_factory=InteropSettings)


class PhoneOwner(NamedTuple):
    """The account holding a phone number (``None`` if none does) and its reach."""

    jid: str | None
    reach: Reach


class PolicyRepository(Protocol):
    async def reach(self, jid: str) -> Reach: ...

    async def put_settings(self, jid: str, settings: InteropSettings, now: float) -> None: ...

    async def set_phone(self, jid: str, phone: str | None) -> None:
        """Give ``jid`` the E.164 ``phone`` (``None`` removes it).

        Raises :class:`~interlink.errors.PhoneInUseError` and
        :class:`~interlink.errors.AccountNotFoundError`."""
        ...

    async def phone_of(self, jid: str) -> str | None: ...

    async def reach_by_phone(self, phone: str, service: str) -> PhoneOwner:
        """The account of ``service`` holding ``phone`` (or ``None``) and its reach, from one
        query. A number belongs to at most one account per service."""
        ...

    async def conversation(self, owner: str, peer: str) -> Conversation | None: ...

    async def put_conversation(
        self, owner: str, peer: str, state: ConversationState, messages: int, now: float
    ) -> None: ...

    async def conversations(self, owner: str, state: ConversationState) -> list[Conversation]: ...

    async def blocklists(self) -> dict[str, set[str]]:
        """Every account's block list (only accounts that have one)."""
        ...

    async def blocklist(self, owner: str) -> set[str]:
        """One account's block list (empty if it has none)."""
        ...

    async def block(self, owner: str, items: list[str], now: float) -> None: ...

    async def unblock(self, owner: str, items: list[str] | None) -> None:
        """Remove ``items`` from ``owner``'s list; ``None`` empties it."""
        ...

    async def add_report(self, report: Report) -> int: ...

    async def reports(self, limit: int, *, unforwarded: bool = False) -> list[Report]: ...

    async def report(self, report_id: int) -> Report | None: ...

    async def report_forwarded(
        self, report_id: int, now: float | None, error: str | None, *, done: bool
    ) -> None:
        """Record a forwarding outcome; ``done`` means no more attempts (delivered or refused)."""
        ...
