"""The operator change feed: every change an operator makes (provider records, accounts), in
order, written in the transaction of the change itself, so that a running hub (or each node of a
cluster) follows changes made by another process (see :mod:`interlink.interop.operator`)."""

from __future__ import annotations

from typing import Protocol


class ChangeFeedRepository(Protocol):
    async def record(self, kind: str, subject: str) -> None:
        """A change that is not part of another repository's write."""

    async def since(self, after: int, limit: int) -> list[tuple[int, str, str]]:
        """``(seq, kind, subject)`` of at most ``limit`` changes after ``after``, oldest first."""
        ...

    async def latest(self) -> int:
        """The newest ``seq`` (0 when there is none)."""
        ...

    async def prune(self, before: float) -> int:
        """Forget the changes recorded before ``before`` (seconds since the epoch): every
        follower has applied them long since. Returns how many."""
        ...
