"""Third-party providers: the records the hub keeps about each one, their validation, and the
operations an operator performs on them (DESIGN Flow 1).

A provider is created ``pending``; only ``approved`` providers' users can enlist, log in or be
reached; ``suspended`` stops all of that at once. Every change is written to an audit log with
who did it.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Protocol
from urllib.parse import urlsplit

from interlink.errors import HttpProblem

_DNS_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$"
)
FEATURES = frozenset(("messaging", "media", "discovery", "introspection"))
RATE_TIERS = frozenset(("small", "standard", "large"))
_NULLABLE = frozenset(("jwks", "jwks_url"))


class ProviderError(HttpProblem):
    """A provider operation was refused (the detail names the field); HTTP 400."""

    status = 400
    kind = "invalid-provider"
    title = "provider request refused"


class ProviderNotFound(ProviderError):
    status = 404
    kind = "provider-not-found"


class ProviderExists(ProviderError):
    status = 409
    kind = "provider-exists"


class ProviderStatus(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    SUSPENDED = "suspended"


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
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


@dataclass(frozen=True, slots=True)
class AuditEntry:
    provider_id: str
    at: float
    actor: str
    action: str
    details: dict[str, object] = field(default_factory=dict)


def _check_url(url: str, what: str, *, allow_insecure_loopback: bool) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ProviderError(f"{what} must be an absolute https URL")
    if parts.username or parts.password or parts.fragment:
        raise ProviderError(f"{what} must not carry credentials or a fragment")
    host = parts.hostname
    loopback = host == "localhost"
    with contextlib.suppress(ValueError):  # a name, not an address
        loopback = loopback or ipaddress.ip_address(host).is_loopback
    if parts.scheme == "http" and not (allow_insecure_loopback and loopback):
        raise ProviderError(f"{what} must use https")
    return url.rstrip("/")


def validate(provider: Provider, *, allow_insecure_loopback: bool = False) -> Provider:
    """Normalise and check every field; raises :class:`ProviderError` naming the field."""
    pid = provider.id.strip().lower()
    if not _DNS_LABEL.match(pid):
        raise ProviderError("id must be a DNS label: a-z, 0-9 and '-', at most 63 characters")
    name = provider.display_name.strip()
    if not name or len(name) > 100:
        raise ProviderError("display_name must be 1 to 100 characters")
    if (provider.jwks is None) == (provider.jwks_url is None):
        raise ProviderError("give exactly one of jwks (inline) and jwks_url")
    if provider.jwks is not None:
        keys = provider.jwks.get("keys")
        if not isinstance(keys, list) or not keys:
            raise ProviderError("jwks must be a JWK set with at least one key")
        for key in keys:
            if not isinstance(key, dict) or "kid" not in key or "kty" not in key:
                raise ProviderError("every JWK needs 'kty' and 'kid'")
            if any(k in key for k in ("d", "p", "q", "dp", "dq", "qi", "k")):
                raise ProviderError("jwks must contain public keys only")
    jwks_url = provider.jwks_url
    if jwks_url is not None:
        jwks_url = _check_url(jwks_url, "jwks_url", allow_insecure_loopback=allow_insecure_loopback)
    callback = _check_url(
        provider.callback_url, "callback_url", allow_insecure_loopback=allow_insecure_loopback
    )
    hosts = tuple(sorted({h.strip().lower().rstrip(".") for h in provider.media_hosts}))
    for entry in hosts:
        host, _, port = entry.partition(":")  # host, or host:port for a non-default port
        if not _HOSTNAME.match(host) or (port and not (port.isdigit() and 0 < int(port) < 65536)):
            raise ProviderError(f"media host '{entry}' is not a host name (with an optional :port)")
    features = tuple(sorted(set(provider.features)))
    unknown = set(features) - FEATURES
    if unknown:
        raise ProviderError(f"unknown features {sorted(unknown)}; known: {sorted(FEATURES)}")
    if provider.rate_tier not in RATE_TIERS:
        raise ProviderError(f"rate_tier must be one of {sorted(RATE_TIERS)}")
    return replace(
        provider,
        id=pid,
        display_name=name,
        jwks_url=jwks_url,
        callback_url=callback,
        media_hosts=hosts,
        features=features,
    )


def provider_to_row(p: Provider) -> dict[str, object]:
    return {
        "id": p.id,
        "display_name": p.display_name,
        "status": str(p.status),
        "jwks": None if p.jwks is None else json.dumps(p.jwks),
        "jwks_url": p.jwks_url,
        "callback_url": p.callback_url,
        "media_hosts": json.dumps(list(p.media_hosts)),
        "features": json.dumps(list(p.features)),
        "rate_tier": p.rate_tier,
        "created_at": p.created_at,
        "updated_at": p.updated_at,
    }


def provider_from_row(row: Sequence[object]) -> Provider:
    (pid, name, status, jwks, jwks_url, callback, hosts, features, tier, created, updated) = row
    return Provider(
        id=str(pid),
        display_name=str(name),
        status=ProviderStatus(str(status)),
        jwks=None if jwks is None else json.loads(str(jwks)),
        jwks_url=None if jwks_url is None else str(jwks_url),
        callback_url=str(callback),
        media_hosts=tuple(json.loads(str(hosts))),
        features=tuple(json.loads(str(features))),
        rate_tier=str(tier),
        created_at=float(str(created)),
        updated_at=float(str(updated)),
    )


class ProviderRepository(Protocol):
    """The storage port the registry needs (implemented per engine under ``storage/``)."""

    async def get(self, provider_id: str) -> Provider | None: ...

    async def all(self) -> list[Provider]: ...

    async def put(self, provider: Provider, audit: AuditEntry) -> None:
        """Create or replace ``provider`` and append ``audit``, in one transaction."""

    async def audit(self, provider_id: str) -> list[AuditEntry]: ...


class ProviderRegistry:
    """Operator actions on providers. ``on_suspend`` lets the hub end the provider's sessions.

    Every token a provider signs needs its record, so :meth:`get` keeps records for
    ``cache_seconds`` (written through by this registry's own changes; a change made by another
    process, e.g. the CLI, is seen within that time). Operator actions read fresh records."""

    def __init__(
        self,
        repo: ProviderRepository,
        clock: Callable[[], float],
        *,
        allow_insecure_loopback: bool = False,
        cache_seconds: float = 5.0,
    ) -> None:
        self._repo = repo
        self._clock = clock
        self._insecure = allow_insecure_loopback
        self._cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, Provider]] = {}
        self.on_suspend: Callable[[str], None] | None = None
        self.on_approve: Callable[[str, str], None] | None = None  # (id, display name)

    async def add(self, provider: Provider, actor: str) -> Provider:
        now = self._clock()
        p = validate(
            replace(provider, status=ProviderStatus.PENDING, created_at=now, updated_at=now),
            allow_insecure_loopback=self._insecure,
        )
        if await self._repo.get(p.id) is not None:
            raise ProviderExists(f"provider '{p.id}' exists already")
        await self._repo.put(p, AuditEntry(p.id, now, actor, "add", p.public_view()))
        self._cache[p.id] = (now, p)
        return p

    async def get(self, provider_id: str) -> Provider:
        key = provider_id.strip().lower()
        hit = self._cache.get(key)
        now = self._clock()
        if hit is not None and 0 <= now - hit[0] < self._cache_seconds:
            return hit[1]
        p = await self._fresh(key)
        self._cache[key] = (now, p)
        return p

    async def _fresh(self, provider_id: str) -> Provider:
        p = await self._repo.get(provider_id.strip().lower())
        if p is None:
            self._cache.pop(provider_id.strip().lower(), None)
            raise ProviderNotFound(f"no provider '{provider_id}'")
        return p

    async def all(self) -> list[Provider]:
        return await self._repo.all()

    async def set_status(self, provider_id: str, status: ProviderStatus, actor: str) -> Provider:
        p = await self._fresh(provider_id)
        if p.status is status:
            return p
        now = self._clock()
        updated = replace(p, status=status, updated_at=now)
        details: dict[str, object] = {"from": str(p.status), "to": str(status)}
        await self._repo.put(updated, AuditEntry(p.id, now, actor, "status", details))
        self._cache[p.id] = (now, updated)
        if status is ProviderStatus.SUSPENDED and self.on_suspend is not None:
            self.on_suspend(p.id)
        if status is ProviderStatus.APPROVED and self.on_approve is not None:
            self.on_approve(p.id, p.display_name)
        return updated

    async def update(self, provider_id: str, changes: dict[str, object], actor: str) -> Provider:
        p = await self._fresh(provider_id)
        allowed = {
            "display_name",
            "callback_url",
            "jwks",
            "jwks_url",
            "media_hosts",
            "features",
            "rate_tier",
        }
        bad = set(changes) - allowed
        if bad:
            raise ProviderError(f"cannot change {sorted(bad)} this way")
        # jwks and jwks_url may be cleared (one replaces the other); the rest always has a value.
        nulls = sorted(k for k, v in changes.items() if v is None and k not in _NULLABLE)
        if nulls:
            raise ProviderError(f"{', '.join(nulls)} cannot be null")
        fields: dict[str, object] = dict(changes)
        for key in ("media_hosts", "features"):
            if key in fields:
                value = fields[key]
                if not isinstance(value, list | tuple):
                    raise ProviderError(f"{key} must be a list")
                fields[key] = tuple(str(v) for v in value)
        now = self._clock()
        try:
            candidate = replace(p, updated_at=now, **fields)  # type: ignore[arg-type]
        except TypeError as exc:
            raise ProviderError(str(exc)) from None
        updated = validate(candidate, allow_insecure_loopback=self._insecure)
        await self._repo.put(updated, AuditEntry(p.id, now, actor, "update", dict(changes)))
        self._cache[p.id] = (now, updated)
        return updated

    async def audit(self, provider_id: str) -> list[AuditEntry]:
        await self._fresh(provider_id)
        return await self._repo.audit(provider_id)
