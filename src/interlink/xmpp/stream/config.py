"""What a stream needs to know about its server, built once by the composition root."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from interlink.xmpp.parser import XmlLimits
from interlink.xmpp.stream.csi import CsiConfig
from interlink.xmpp.stream.sm import SmConfig


class HostedDomains(Protocol):
    """The domains this server answers for (RFC 6120 §4.7.1 ``to``, §4.9.3.6 host-unknown).

    ``default`` is used when a stream header names no domain; ``serves`` decides whether a domain
    the peer asked for is ours. The hub's implementation knows every gatekeeper domain it hosts
    and their ``<provider>.interop.<domain>`` subdomains; :class:`SingleDomain` is the simplest.
    Domains are compared as :class:`~interlink.xmpp.jid.JID` keeps them (lower case, no dot at
    the end).
    """

    @property
    def default(self) -> str: ...

    def serves(self, domain: str) -> bool: ...


@dataclass(frozen=True, slots=True)
class SingleDomain:
    """One domain, plus any subdomain ending with one of ``subdomain_suffixes``
    (e.g. ``".interop.example.com"``)."""

    default: str
    subdomain_suffixes: tuple[str, ...] = ()

    def serves(self, domain: str) -> bool:
        return domain == self.default or any(
            domain.endswith(suffix) and len(domain) > len(suffix)
            for suffix in self.subdomain_suffixes
        )


#: Before authentication: a SASL ``<auth/>`` with an OAUTHBEARER token is the largest thing a
#: client sends (2–3 KiB); nothing has more than a handful of elements.
PRE_AUTH_LIMITS = XmlLimits(max_stanza_bytes=10 * 1024, max_elements=100)


@dataclass(frozen=True, slots=True)
class StreamConfig:
    """Settings shared by every stream of one listener.

    ``hosts``, ``limits``, ``pre_auth_limits``, ``starttls_available``, ``tls_required``,
    ``auth_timeout`` and ``max_auth_failures`` are read by the stream machine; the SASL fields
    (``decoy_*``, ``oauthbearer``) by the client-to-server role, which decides what is offered.

    ``pre_auth_limits`` hold until SASL succeeds, ``limits`` from the stream restart that follows:
    before authentication nobody is accountable and nothing legitimate is large (RFC 6120
    §13.12), so an anonymous connection may make us hold far less.
    """

    hosts: HostedDomains
    limits: XmlLimits = field(default_factory=XmlLimits)
    pre_auth_limits: XmlLimits = field(default_factory=lambda: PRE_AUTH_LIMITS)
    starttls_available: bool = True
    tls_required: bool = True
    auth_timeout: float = 30.0  # until a resource is bound
    max_auth_failures: int = 3
    decoy_secret: bytes = b""
    decoy_iterations: int = 4096
    oauthbearer: bool = False  # offer SASL OAUTHBEARER (inside TLS) for third-party users
    sm: SmConfig | None = field(default_factory=SmConfig)  # XEP-0198; None: not offered
    csi: CsiConfig | None = field(default_factory=CsiConfig)  # XEP-0352; None: not offered


__all__ = ["PRE_AUTH_LIMITS", "HostedDomains", "SingleDomain", "StreamConfig"]
