"""Offline message storage (XEP-0160): a durable queue per account."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol


@dataclass(frozen=True, slots=True)
class OfflineMessage:
    id: int
    stanza: str
    stored_at: float


class OfflineTotals(NamedTuple):
    """What the offline queues hold (for metrics)."""

    messages: int
    accounts: int  # accounts with at least one message
    longest: int  # messages in the longest queue


class SentMark(NamedTuple):
    """A stored message was written as stanza number ``seq`` of the stream-management stream
    ``stream`` (XEP-0198): the client's ``h`` for that stream says whether it has it."""

    stream: str
    seq: int


class OfflineRepository(Protocol):
    async def store(
        self,
        owner: str,
        stanza: str,
        now: float,
        cap: int,
        sent: SentMark | None = None,
        *,
        max_bytes: int | None = None,
    ) -> bool:
        """Durably append ``stanza`` to ``owner``'s queue unless it already holds ``cap``
        messages or would then hold more than ``max_bytes`` bytes (UTF-8) of stanzas; return
        whether it was stored. Returns only after the write is durable."""

    async def mark_sent(self, owner: str, marks: Sequence[tuple[int, SentMark]]) -> None:
        """Durably record that the messages with these ids were written as these stanzas
        (replacing any earlier mark)."""

    async def delete_received(self, owner: str, stream: str, h: int) -> int:
        """Delete ``owner``'s messages written on ``stream`` as a stanza ``h`` covers; returns
        how many."""

    async def fetch(self, owner: str, limit: int) -> Sequence[OfflineMessage]:
        """The oldest ``limit`` messages, in arrival order."""

    async def delete(self, owner: str, up_to_id: int) -> None:
        """Remove ``owner``'s messages with ids up to and including ``up_to_id``."""

    async def count(self, owner: str) -> int: ...

    async def bytes_queued(self, owner: str) -> int:
        """The UTF-8 bytes of the stanzas in ``owner``'s queue."""
        ...

    async def totals(self) -> OfflineTotals: ...
