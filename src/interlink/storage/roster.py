"""Rosters and pending subscription requests (RFC 6121 §2 and §3)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol


class Subscription(StrEnum):
    """Roster subscription states, RFC 6121 §2.1.2.5."""

    NONE = "none"
    TO = "to"
    FROM = "from"
    BOTH = "both"

    @property
    def has_to(self) -> bool:
        return self is Subscription.TO or self is Subscription.BOTH

    @property
    def has_from(self) -> bool:
        return self is Subscription.FROM or self is Subscription.BOTH

    @staticmethod
    def of(*, to: bool, from_: bool) -> Subscription:
        if to and from_:
            return Subscription.BOTH
        if to:
            return Subscription.TO
        if from_:
            return Subscription.FROM
        return Subscription.NONE


@dataclass(frozen=True, slots=True)
class RosterItem:
    contact: str
    name: str | None = None
    subscription: Subscription = Subscription.NONE
    ask: bool = False  # an outbound subscription request is pending
    groups: tuple[str, ...] = field(default_factory=tuple)

    @property
    def size(self) -> int:
        """What the item counts against its owner's roster budget: the UTF-8 bytes of its
        contact, name and groups."""
        text = (self.contact, self.name or "", *self.groups)
        return sum(len(t.encode()) for t in text)


@dataclass(frozen=True, slots=True)
class PendingSubscription:
    requester: str
    stanza: str


class RosterRepository(Protocol):
    async def items(self, owner: str) -> list[RosterItem]:
        """``owner``'s roster, in contact order."""
        ...

    async def get(self, owner: str, contact: str) -> RosterItem | None: ...

    async def count(self, owner: str) -> int: ...

    async def put(self, owner: str, item: RosterItem) -> None:
        """Create or replace the item for ``item.contact``."""

    async def remove(self, owner: str, contact: str) -> None: ...

    async def add_pending(
        self, owner: str, requester: str, stanza: str, now: float, *, cap: int | None = None
    ) -> bool:
        """Keep ``requester``'s subscription request (replacing an earlier one); whether it is
        kept. With ``cap``, a new requester is not kept when ``owner`` already has ``cap``
        requests pending."""

    async def remove_pending(self, owner: str, requester: str) -> bool:
        """Whether there was one to remove."""
        ...

    async def pending(self, owner: str) -> list[PendingSubscription]:
        """The requests ``owner`` has not answered, oldest first."""
        ...
