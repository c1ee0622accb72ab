"""The interop address rule, shared by the hub and the SDK (DESIGN "Addresses").

A gatekeeper service has a domain (``wa.example``); its own users are ``<user>@wa.example``. The
users of a third-party provider that connect plug-and-play get addresses on a subdomain of that
service: ``<opaque>@<provider>.interop.wa.example``. This module is the only place that knows
how such a domain is spelled: everything else asks it (the hub through
:class:`interlink.hub.addressing.Addressing`, which knows which services it hosts and which
providers exist; the SDK and the chat client through :func:`interop_provider`).

Each service also has a group service (XEP-0045 rooms): ``<room>@groups.wa.example``; the
label is configurable (:func:`groups_domain`).

Pure functions on domain strings (already lower-case, as :class:`~interlink.xmpp.jid.JID` keeps
them); no I/O.
"""

from __future__ import annotations

INTEROP_LABEL = "interop"


def interop_domain(provider_id: str, service_domain: str) -> str:
    """The plug-and-play subdomain of ``provider_id``'s users on ``service_domain``."""
    return f"{provider_id}.{INTEROP_LABEL}.{service_domain}"


def interop_suffix(service_domain: str) -> str:
    """What every interop subdomain of ``service_domain`` ends with (``.interop.<service>``)."""
    return f".{INTEROP_LABEL}.{service_domain}"


def interop_provider(domain: str, service_domain: str) -> str | None:
    """The provider id if ``domain`` is a plug-and-play subdomain of ``service_domain``
    (exactly one label before ``.interop.<service>``), else ``None``."""
    suffix = interop_suffix(service_domain)
    if not domain.endswith(suffix):
        return None
    provider_id = domain[: -len(suffix)]
    if not provider_id or "." in provider_id:
        return None
    return provider_id


def interop_service(domain: str, provider_id: str) -> str | None:
    """The service a plug-and-play subdomain of ``provider_id`` belongs to
    (``<provider>.interop.<service>`` -> ``<service>``), else ``None``."""
    prefix = f"{provider_id}.{INTEROP_LABEL}."
    if not domain.startswith(prefix) or len(domain) == len(prefix):
        return None
    return domain[len(prefix) :]


GROUPS_LABEL = "groups"


def groups_domain(service_domain: str, label: str = GROUPS_LABEL) -> str:
    """The domain of ``service_domain``'s group service (XEP-0045 rooms live there)."""
    return f"{label}.{service_domain}"


def home_service(domain: str) -> str:
    """The service an account's domain belongs to: the domain itself for a service's own
    users, ``<service>`` for ``<provider>.interop.<service>``."""
    provider_id = domain.partition(".")[0]
    return interop_service(domain, provider_id) or domain


def domain_of(address: str) -> str:
    """The domain part of a JID given as text (``local@domain/resource``)."""
    rest = address.partition("/")[0]
    return rest.rpartition("@")[2]
