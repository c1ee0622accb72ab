"""Where an address lives: the one object that answers it for the whole hub.

A hub hosts one or more gatekeeper *services* (``hub.domains``: say ``wa.example`` and
``msg.example``, as one operator running two messengers that both offer interoperability). Each
service has its own users (``<user>@<service>``) and, for every provider onboarded to it, a
plug-and-play subdomain where that provider's users live (``<opaque>@<provider>.interop.<service>``,
spelled by :mod:`interlink.xmpp.addressing`), and a group service (``groups.<service>``, the label
configurable) whose rooms are ``<room>@groups.<service>``. A provider in federated mode runs its
own XMPP server: its users keep their own addresses (``alice@chat.example``) on the server domains
its record names, reached over server-to-server streams (:mod:`interlink.hub.federation`).
Anything else is remote: not reachable from here.

:class:`Addressing` classifies addresses; :class:`ProviderDirectory` is its view of which providers
may be reached on which service, kept by the operator-state owner (see
:mod:`interlink.hub.operator`): no other module tests domain strings or keeps its own copy of
provider approvals.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum

from interlink.errors import ConfigError
from interlink.xmpp import addressing as rule
from interlink.xmpp.jid import JID, InvalidJID


class Kind(Enum):
    HOME = "home"  # a gatekeeper service's own user, or the service's domain itself
    INTEROP = "interop"  # a third-party provider's user (or subdomain), plug-and-play
    GROUPS = "groups"  # a service's group service (XEP-0045 rooms), or one of its rooms
    FEDERATED = "federated"  # a federated provider's user (or server), on its own server
    REMOTE = "remote"  # not hosted here, not federated


@dataclass(frozen=True, slots=True)
class Location:
    kind: Kind
    service: str | None = None  # the gatekeeper service the address belongs to
    provider_id: str | None = None  # for INTEROP and FEDERATED


REMOTE = Location(Kind.REMOTE)
_ACCOUNTS = frozenset((Kind.HOME, Kind.INTEROP))


@dataclass(frozen=True, slots=True)
class ProviderAccess:
    """What the routing path needs of one provider: its name and the services it is approved
    for (empty: suspended, pending, or approved for no service here); for federation, its
    server domains and whether its mode federates (``server_domains`` are known even while it
    is suspended, so that its servers are told ``<policy-violation/>``, not ``<not-authorized/>``).
    """

    provider_id: str
    display_name: str
    services: frozenset[str]
    server_domains: frozenset[str] = frozenset()
    federates: bool = False
    plugs_in: bool = True


class ProviderDirectory:
    """Which providers may be reached, per service. In memory; written only by the owner of
    operator state, which keeps it equal to the database (its change feed)."""

    def __init__(self) -> None:
        self._by_id: dict[str, ProviderAccess] = {}
        self._server_domains: dict[str, str] = {}  # every provider's, approved or not
        self._federated: dict[str, ProviderAccess] = {}  # server domain -> approved, federating

    def put(self, access: ProviderAccess) -> None:
        for domain in [d for d, pid in self._server_domains.items() if pid == access.provider_id]:
            del self._server_domains[domain]
            self._federated.pop(domain, None)
        for domain in access.server_domains:
            self._server_domains[domain] = access.provider_id
            if access.services and access.federates:
                self._federated[domain] = access
        if access.services:
            self._by_id[access.provider_id] = access
        else:
            self._by_id.pop(access.provider_id, None)

    def replace_all(self, entries: Iterable[ProviderAccess]) -> None:
        self._by_id = {}
        self._server_domains = {}
        self._federated = {}
        for access in entries:
            self.put(access)

    def server_domain_owner(self, domain: str) -> str | None:
        """The provider whose record names ``domain`` as a server domain, in any state."""
        return self._server_domains.get(domain)

    def federated(self, domain: str) -> ProviderAccess | None:
        """The approved provider federating from ``domain``, else ``None``."""
        return self._federated.get(domain)

    def plugs_in(self, provider_id: str) -> bool:
        access = self._by_id.get(provider_id)
        return access is not None and access.plugs_in

    def approved(self, provider_id: str, service: str) -> bool:
        access = self._by_id.get(provider_id)
        return access is not None and service in access.services

    def display_name(self, provider_id: str) -> str:
        access = self._by_id.get(provider_id)
        return provider_id if access is None else access.display_name

    def for_service(self, service: str) -> dict[str, str]:
        """The approved providers of ``service``: id -> display name."""
        return {
            pid: access.display_name
            for pid, access in self._by_id.items()
            if service in access.services
        }


class Addressing:
    """Classifies addresses for a hub hosting ``services`` (the first is the default, used by
    streams that name no domain and by commands that are given none), each with a group
    service on the subdomain ``groups_label`` (``None``: no group service).

    Raises:
        ConfigError: for no services, a service that is no bare domain or is listed twice, one
            inside another's interop space or equal to another's group service, or a group
            label that is not one DNS label.
    """

    def __init__(
        self,
        services: Sequence[str],
        providers: ProviderDirectory,
        *,
        groups_label: str | None = rule.GROUPS_LABEL,
    ) -> None:
        if not services:
            raise ConfigError("hub.domains needs at least one domain")
        normalized: list[str] = []
        for service in services:
            try:
                domain = JID.parse(service)
            except InvalidJID as exc:
                raise ConfigError(f"hub.domains: {service!r} is not a domain: {exc}") from None
            if domain.local is not None or domain.resource is not None:
                raise ConfigError(f"hub.domains: {service!r} is not a bare domain")
            if domain.domain in normalized:
                raise ConfigError(f"hub.domains: {service!r} is listed twice")
            normalized.append(domain.domain)
        for a in normalized:
            for b in normalized:
                if a != b and b.endswith(rule.interop_suffix(a)):
                    raise ConfigError(f"hub.domains: {b!r} lies inside {a!r}'s interop space")
        self._groups: dict[str, str] = {}  # group service domain -> its service
        if groups_label is not None:
            label = groups_label.strip().lower()
            if not label or "." in label or "@" in label or "/" in label:
                raise ConfigError(f"groups.subdomain: {groups_label!r} is not one DNS label")
            for service in normalized:
                groups = rule.groups_domain(service, label)
                if groups in normalized:
                    raise ConfigError(f"hub.domains: {groups!r} is {service!r}'s group service")
                self._groups[groups] = service
        self.services: tuple[str, ...] = tuple(normalized)
        self._services = frozenset(normalized)
        self.default = normalized[0]
        self.providers = providers
        self._cache: dict[str, Location] = {}

    # -- classification ------------------------------------------------------------------------
    def locate_domain(self, domain: str) -> Location:
        hit = self._cache.get(domain)
        if hit is not None:
            return hit
        federated = self.providers.federated(domain)  # changes with operator state: not cached
        if federated is not None:
            service = next(s for s in self.services if s in federated.services)
            return Location(Kind.FEDERATED, service, federated.provider_id)
        if domain in self._services:
            found = Location(Kind.HOME, domain)
        elif domain in self._groups:
            found = Location(Kind.GROUPS, self._groups[domain])
        else:
            found = REMOTE
            for service in self.services:
                provider_id = rule.interop_provider(domain, service)
                if provider_id is not None:
                    found = Location(Kind.INTEROP, service, provider_id)
                    break
        if len(self._cache) >= 4096:
            self._cache.clear()
        self._cache[domain] = found
        return found

    def locate(self, jid: JID) -> Location:
        return self.locate_domain(jid.domain)

    def serves(self, domain: str) -> bool:
        """Whether streams to ``domain`` are accepted here (a service or an interop subdomain)."""
        return self.locate_domain(domain).kind in _ACCOUNTS

    def is_home(self, jid: JID) -> bool:
        """An address of one of the hosted gatekeeper services (its users or its domain)."""
        return jid.domain in self._services

    def is_home_domain(self, domain: str) -> bool:
        """Whether ``domain`` is one of the hosted gatekeeper services."""
        return domain in self._services

    def under_service(self, domain: str) -> bool:
        """Whether ``domain`` is a subdomain of a hosted service (served or not)."""
        return any(domain.endswith("." + service) for service in self.services)

    def is_local(self, jid: JID) -> bool:
        """Whether ``jid`` is an account address (or domain) hosted here: a service's users
        or a provider's plug-and-play users; not rooms, not federated users."""
        return self.locate_domain(jid.domain).kind in _ACCOUNTS

    def is_groups_domain(self, domain: str) -> bool:
        """Whether ``domain`` is one of the hosted group services."""
        return domain in self._groups

    def groups_domain(self, service: str) -> str | None:
        """The group service of ``service`` (``None`` when groups are off)."""
        for domain, owner in self._groups.items():
            if owner == service:
                return domain
        return None

    def is_federated(self, jid: JID) -> bool:
        """An address on an approved federated provider's own server."""
        return self.providers.federated(jid.domain) is not None

    def provider_of(self, jid: JID) -> str | None:
        """The provider of a third-party address (plug-and-play or federated), else ``None``."""
        return self.locate_domain(jid.domain).provider_id

    def service_of(self, jid: JID) -> str | None:
        """The gatekeeper service an address belongs to (``None`` when remote). A federated
        provider's users belong to the first of the hub's services it is approved for."""
        return self.locate_domain(jid.domain).service

    def same_service(self, a: JID, b: JID) -> bool:
        sa = self.service_of(a)
        return sa is not None and sa == self.service_of(b)

    def interop_domain(self, provider_id: str, service: str) -> str:
        return rule.interop_domain(provider_id, service)

    def service(self, name: str | None) -> str:
        """``name`` if hosted (``None``: the default service); raises ``ConfigError``."""
        if name is None:
            return self.default
        domain = name.strip().lower()
        if domain not in self._services:
            raise ConfigError(f"this hub serves {', '.join(self.services)}; not {name!r}")
        return domain

    # -- providers -------------------------------------------------------------------------------
    def reachable(self, jid: JID) -> bool:
        """Whether a third-party address's provider is approved for its service (home and
        remote addresses: ``True``; they are not a provider's)."""
        where = self.locate(jid)
        if where.kind is not Kind.INTEROP:
            return True  # a federated address is located only while its provider is approved
        assert where.provider_id is not None
        assert where.service is not None
        providers = self.providers
        return providers.approved(where.provider_id, where.service) and providers.plugs_in(
            where.provider_id
        )

    def approved(self, provider_id: str, service: str) -> bool:
        return self.providers.approved(provider_id, service)

    def provider_name(self, provider_id: str) -> str:
        return self.providers.display_name(provider_id)

    def approved_providers(self, service: str) -> Mapping[str, str]:
        return self.providers.for_service(service)


__all__ = ["REMOTE", "Addressing", "Kind", "Location", "ProviderAccess", "ProviderDirectory"]
