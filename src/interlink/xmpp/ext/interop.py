"""Our ``urn:interlink:interop:0`` extension: a gatekeeper user's choices about third-party
chats (see docs/protocol.md and docs/consent.md)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class InboxMode(StrEnum):
    SEPARATE = "separate"  # third-party chats in their own inbox (the default)
    COMBINED = "combined"


@dataclass(frozen=True, slots=True)
class InteropSettings:
    """A gatekeeper user's choices about third-party chats. Off until the user turns it on."""

    enabled: bool = False
    providers: frozenset[str] | None = None  # None: every approved provider
    inbox: InboxMode = InboxMode.SEPARATE
    discoverable: bool = False  # found by phone number through /v1/discovery
    share_activity: bool = True  # receipts, displayed markers and typing to third parties

    def allows(self, provider_id: str) -> bool:
        return self.enabled and (self.providers is None or provider_id in self.providers)
