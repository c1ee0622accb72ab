"""Third-party providers (DMA Art. 7 interop) and the audit log of every change to them.

Only the records and the repository are here; their validation and the operator actions are in
:mod:`interlink.interop.providers`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol


class ProviderStatus(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    SUSPENDED = "suspended"


class ProviderMode(StrEnum):
    """How a provider's users reach the hub (issue 15)."""

    PLUG_AND_PLAY = "plug-and-play"  # its users' clients connect to the hub (c2s)
    FEDERATED = "federated"  # its own XMPP server connects to the hub (s2s)
    BOTH = "both"

    @property
    def federates(self) -> bool:
        return self is not ProviderMode.PLUG_AND_PLAY

    @property
    def plugs_in(self) -> bool:
        return self is not ProviderMode.FEDERATED


@dataclass(frozen=True, slots=True)
class Provider:
    id: str
    display_name: str
    callback_url: str
    status: ProviderStatus = ProviderStatus.PENDING
    jwks: dict[str, object] | None = None
    jwks_url: str | None = None
    media_hosts: tuple[str, ...] = ()
    features: tuple[str, ...] = ("messaging",)
    rate_tier: str = "standard"
    created_at: float = 0.0
    updated_at: float = 0.0
    # The gatekeeper services (domains) the provider is onboarded to: approval lets its users
    # reach those services' users, and no other's. Empty only in records from before a hub
    # could serve several services; the registry reads those as the default service.
    services: tuple[str, ...] = ()
    # Federation (migration 0020): the mode, its servers' XMPP domains, what authenticates their
    # certificates beyond a trusted chain naming the domain (pinned SHA-256 fingerprints, a CA
    # in PEM), and a static host:port that replaces the SRV lookup (private links, tests).
    mode: ProviderMode = ProviderMode.PLUG_AND_PLAY
    server_domains: tuple[str, ...] = ()
    s2s_fingerprints: tuple[str, ...] = ()
    s2s_ca: str | None = None
    s2s_address: str | None = None

    def public_view(self) -> dict[str, object]:
        return {
            "id": self.id,
            "display_name": self.display_name,
            "status": str(self.status),
            "callback_url": self.callback_url,
            "jwks": self.jwks,
            "jwks_url": self.jwks_url,
            "media_hosts": list(self.media_hosts),
            "features": list(self.features),
            "rate_tier": self.rate_tier,
            "services": list(self.services),
            "mode": str(self.mode),
            "server_domains": list(self.server_domains),
            "s2s_fingerprints": list(self.s2s_fingerprints),
            "s2s_ca": self.s2s_ca,
            "s2s_address": self.s2s_address,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


class AuditAction(StrEnum):
    ADD = "add"
    STATUS = "status"  # details: {"from": ..., "to": ...}
    UPDATE = "update"  # details: the fields changed


@dataclass(frozen=True, slots=True)
class AuditEntry:
    provider_id: str
    at: float
    actor: str
    action: AuditAction
    details: dict[str, object] = field(default_factory=dict)


class ProviderRepository(Protocol):
    async def get(self, provider_id: str) -> Provider | None: ...

    async def all(self) -> list[Provider]:
        """Every provider, in id order."""
        ...

    async def put(self, provider: Provider, audit: AuditEntry) -> None:
        """Create or replace ``provider`` and append ``audit``, in one transaction."""

    async def audit(self, provider_id: str) -> list[AuditEntry]:
        """``provider_id``'s audit log, oldest first."""
        ...
