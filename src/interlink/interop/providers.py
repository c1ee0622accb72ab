"""Third-party providers: the validation of their records and the operations an operator
performs on them (DESIGN Flow 1). The records and their repository are in
:mod:`interlink.storage.providers`.

A provider is created ``pending``; only ``approved`` providers' users can enlist, log in or be
reached; ``suspended`` stops all of that at once. Every change is written to an audit log with
who did it.
"""

from __future__ import annotations

import contextlib
import ipaddress
import re
from collections.abc import Callable, Sequence
from dataclasses import replace
from urllib.parse import urlsplit

from cryptography import x509

from interlink.errors import HttpProblem
from interlink.storage.providers import (
    AuditAction,
    AuditEntry,
    Provider,
    ProviderMode,
    ProviderRepository,
    ProviderStatus,
)
from interlink.xmpp.s2s import certs

_DNS_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$"
)
FEATURES = frozenset(("messaging", "media", "discovery", "introspection"))
RATE_TIERS = frozenset(("small", "standard", "large"))
_NULLABLE = frozenset(("jwks", "jwks_url", "s2s_ca", "s2s_address"))


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


def validate(
    provider: Provider,
    *,
    allow_insecure_loopback: bool = False,
    services: Sequence[str] | None = None,
) -> Provider:
    """Normalise and check every field; raises :class:`ProviderError` naming the field.
    ``services`` are the hub's service domains; a provider's must be among them (the first is
    taken when it names none)."""
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
        if "/" in entry:
            raise ProviderError(
                f"media host '{entry}' is a URL: give the host name alone, with :port when it "
                "is not 443 (e.g. media.example.chat or media.example.chat:8443)"
            )
        host, _, port = entry.partition(":")  # host, or host:port for a non-default port
        if not _HOSTNAME.match(host) or (port and not (port.isdigit() and 0 < int(port) < 65536)):
            raise ProviderError(
                f"media host '{entry}' is not a host name (with :port when it is not 443)"
            )
    features = tuple(sorted(set(provider.features)))
    unknown = set(features) - FEATURES
    if unknown:
        raise ProviderError(f"unknown features {sorted(unknown)}; known: {sorted(FEATURES)}")
    if provider.rate_tier not in RATE_TIERS:
        raise ProviderError(f"rate_tier must be one of {sorted(RATE_TIERS)}")
    onboarded = tuple(dict.fromkeys(d.strip().lower() for d in provider.services))
    if services is not None:
        if not onboarded:
            onboarded = (services[0],)
        unknown_services = [d for d in onboarded if d not in services]
        if unknown_services:
            raise ProviderError(
                f"services: this hub serves {', '.join(services)}; not {unknown_services}"
            )
    mode, server_domains, pins, ca, address = _federation(provider, services)
    return replace(
        provider,
        mode=mode,
        server_domains=server_domains,
        s2s_fingerprints=pins,
        s2s_ca=ca,
        s2s_address=address,
        id=pid,
        display_name=name,
        jwks_url=jwks_url,
        callback_url=callback,
        media_hosts=hosts,
        features=features,
        services=onboarded,
    )


def _federation(
    provider: Provider, services: Sequence[str] | None
) -> tuple[ProviderMode, tuple[str, ...], tuple[str, ...], str | None, str | None]:
    """The federation fields (issue 15), checked: a federating provider names its server
    domains, which are host names outside the hub's own services."""
    try:
        mode = ProviderMode(str(provider.mode))
    except ValueError:
        raise ProviderError(f"mode must be one of {[str(m) for m in ProviderMode]}") from None
    domains = tuple(dict.fromkeys(d.strip().lower().rstrip(".") for d in provider.server_domains))
    for domain in domains:
        if not _HOSTNAME.match(domain) or "." not in domain:
            raise ProviderError(f"server domain '{domain}' is not a host name")
        for service in services or ():
            if domain == service or domain.endswith("." + service):
                raise ProviderError(f"server domain '{domain}' lies inside the service {service}")
    if mode.federates and not domains:
        raise ProviderError(f"mode '{mode}' needs at least one server domain")
    try:
        pins = tuple(
            dict.fromkeys(certs.normalize_fingerprint(f) for f in provider.s2s_fingerprints)
        )
    except ValueError as exc:
        raise ProviderError(f"s2s_fingerprints: {exc}") from None
    ca = provider.s2s_ca
    if ca is not None:
        ca = ca.strip() + "\n"
        try:
            if not x509.load_pem_x509_certificates(ca.encode()):
                raise ValueError("no certificate")
        except ValueError:
            raise ProviderError("s2s_ca must be PEM certificates (the CA of its servers)") from None
    address = provider.s2s_address
    if address is not None:
        address = address.strip().lower()
        host, _, port = address.rpartition(":")
        host = host.strip("[]")
        valid_host = bool(_HOSTNAME.match(host))
        with contextlib.suppress(ValueError):
            ipaddress.ip_address(host)
            valid_host = True
        if not valid_host or not (port.isdigit() and 0 < int(port) < 65536):
            raise ProviderError(f"s2s_address '{address}' is not host:port")
    return mode, domains, pins, ca, address


class ProviderRegistry:
    """Operator actions on providers. Every change is handed to the ``on_change`` listeners
    (the hub's operator state, which ends sessions of a suspended provider's users).

    Every token a provider signs needs its record, so :meth:`get` keeps records for
    ``cache_seconds`` (written through by this registry's own changes; a change made by another
    process, e.g. the CLI, is seen within that time). Operator actions read fresh records."""

    def __init__(
        self,
        repo: ProviderRepository,
        clock: Callable[[], float],
        *,
        services: Sequence[str],
        allow_insecure_loopback: bool = False,
        cache_seconds: float = 5.0,
        on_change: Sequence[Callable[[Provider], None]] = (),
    ) -> None:
        """``services`` are the hub's gatekeeper service domains (the default first)."""
        if not services:
            raise ValueError("a registry needs the hub's services")
        self._repo = repo
        self._clock = clock
        self._services = tuple(services)
        self._insecure = allow_insecure_loopback
        self._cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, Provider]] = {}
        self._on_change = tuple(on_change)

    def _stored(self, provider: Provider) -> Provider:
        """A record as read: one from before services existed belongs to the default one."""
        if provider.services:
            return provider
        return replace(provider, services=(self._services[0],))

    def _changed(self, provider: Provider) -> None:
        for listener in self._on_change:
            listener(provider)

    async def _domains_free(self, provider: Provider) -> None:
        """A server domain federates for one provider only."""
        if not provider.server_domains:
            return
        mine = set(provider.server_domains)
        for other in await self._repo.all():
            taken = mine & set(other.server_domains)
            if other.id != provider.id and taken:
                raise ProviderExists(
                    f"server domain {sorted(taken)[0]} belongs to provider '{other.id}'"
                )

    def forget(self, provider_id: str) -> None:
        """Drop the cached record (another process changed it: the change feed says so)."""
        self._cache.pop(provider_id.strip().lower(), None)

    async def add(self, provider: Provider, actor: str) -> Provider:
        now = self._clock()
        p = validate(
            replace(provider, status=ProviderStatus.PENDING, created_at=now, updated_at=now),
            allow_insecure_loopback=self._insecure,
            services=self._services,
        )
        if await self._repo.get(p.id) is not None:
            raise ProviderExists(f"provider '{p.id}' exists already")
        await self._domains_free(p)
        await self._repo.put(p, AuditEntry(p.id, now, actor, AuditAction.ADD, p.public_view()))
        self._cache[p.id] = (now, p)
        self._changed(p)
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
        return self._stored(p)

    async def all(self) -> list[Provider]:
        return [self._stored(p) for p in await self._repo.all()]

    async def set_status(self, provider_id: str, status: ProviderStatus, actor: str) -> Provider:
        p = await self._fresh(provider_id)
        if p.status is status:
            return p
        now = self._clock()
        updated = replace(p, status=status, updated_at=now)
        details: dict[str, object] = {"from": str(p.status), "to": str(status)}
        await self._repo.put(updated, AuditEntry(p.id, now, actor, AuditAction.STATUS, details))
        self._cache[p.id] = (now, updated)
        self._changed(updated)
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
            "services",
            "mode",
            "server_domains",
            "s2s_fingerprints",
            "s2s_ca",
            "s2s_address",
        }
        bad = set(changes) - allowed
        if bad:
            raise ProviderError(f"cannot change {sorted(bad)} this way")
        # jwks and jwks_url may be cleared (one replaces the other); the rest always has a value.
        nulls = sorted(k for k, v in changes.items() if v is None and k not in _NULLABLE)
        if nulls:
            raise ProviderError(f"{', '.join(nulls)} cannot be null")
        fields: dict[str, object] = dict(changes)
        for key in ("media_hosts", "features", "services", "server_domains", "s2s_fingerprints"):
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
        updated = validate(
            candidate, allow_insecure_loopback=self._insecure, services=self._services
        )
        await self._domains_free(updated)
        await self._repo.put(
            updated, AuditEntry(p.id, now, actor, AuditAction.UPDATE, dict(changes))
        )
        self._cache[p.id] = (now, updated)
        self._changed(updated)
        return updated

    async def audit(self, provider_id: str) -> list[AuditEntry]:
        await self._fresh(provider_id)
        return await self._repo.audit(provider_id)
