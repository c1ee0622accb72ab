"""Push registrations (XEP-0357): which app servers a gatekeeper account asked to be notified
through, one row per (account, app server JID, node)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class PushRegistration:
    """One ``<enable/>`` (XEP-0357 §5): notifications for ``account`` go to ``service`` (the
    app server's JID) on ``node``, with ``publish_options`` (the serialized
    ``publish-options`` data form the client gave, or ``""``) added to each."""

    account: str
    service: str
    node: str
    publish_options: str
    created: float


class PushRegistrationRepository(Protocol):
    async def register(self, registration: PushRegistration, *, max_per_account: int) -> bool:
        """Store ``registration``, replacing the one with the same account, service and node.
        Nothing is stored and ``False`` returned if the account would then hold more than
        ``max_per_account`` registrations (a replacement does not count twice)."""
        ...

    async def unregister(self, account: str, service: str, node: str | None = None) -> int:
        """Remove ``account``'s registration with ``service`` on ``node``, or all of them with
        ``service`` when ``node`` is ``None``; returns how many were removed."""
        ...

    async def for_account(self, account: str) -> Sequence[PushRegistration]:
        """``account``'s registrations, oldest first."""
        ...


__all__ = ["PushRegistration", "PushRegistrationRepository"]
