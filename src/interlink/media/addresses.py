"""Which IP addresses the media proxy may connect to (DESIGN "no open proxy and no SSRF").

A media host is a third party's server on the public Internet. Anything else — loopback, private
(RFC 1918, RFC 4193 ULA), link-local (RFC 3927, with the 169.254.169.254 cloud metadata service,
and fe80::/10), multicast, unspecified, reserved, shared address space (RFC 6598 CGNAT,
100.64.0.0/10) and every other special-purpose block that is not globally reachable — is refused,
so that a URL in a message cannot make the hub reach into its own network. IPv6 forms that embed an
IPv4 address (IPv4-mapped ``::ffff:a.b.c.d``, NAT64 ``64:ff9b::/96``, 6to4 ``2002::/16``) are judged
by the IPv4 address they lead to.

The operator (tests, the demo) may allow named private hosts or networks explicitly with an
:class:`AddressAllowlist`. Pure functions, no I/O.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_CGNAT = ipaddress.IPv4Network("100.64.0.0/10")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


class AddressClass(StrEnum):
    """Why an address is not a public one; the value names it in errors and metrics."""

    UNSPECIFIED = "unspecified"
    LOOPBACK = "loopback"
    LINK_LOCAL = "link-local"
    MULTICAST = "multicast"
    SHARED = "shared (CGNAT)"
    PRIVATE = "private"
    RESERVED = "reserved"
    SPECIAL = "special-purpose"


def classify(address: IPAddress) -> AddressClass | None:
    """The reason ``address`` is not publicly routable, or ``None`` for a public address."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            return classify(embedded)
    if address.is_unspecified:
        return AddressClass.UNSPECIFIED
    if address.is_loopback:
        return AddressClass.LOOPBACK
    if address.is_link_local:
        return AddressClass.LINK_LOCAL
    if address.is_multicast:
        return AddressClass.MULTICAST
    if isinstance(address, ipaddress.IPv4Address) and address in _CGNAT:
        return AddressClass.SHARED
    if address.is_private or (isinstance(address, ipaddress.IPv6Address) and address.is_site_local):
        return AddressClass.PRIVATE
    if address.is_reserved:
        return AddressClass.RESERVED
    if not address.is_global:
        return AddressClass.SPECIAL
    return None


def parse_address(text: str) -> IPAddress | None:
    """``text`` as an IP address (IPv6 may be bracketed), or ``None`` when it is a name."""
    try:
        return ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class AddressAllowlist:
    """Non-public hosts and networks the operator lets the proxy reach anyway.

    Entries are host names (every address the name resolves to is then allowed), IP addresses or
    networks in CIDR notation. Empty by default: production needs none.
    """

    names: frozenset[str] = frozenset()
    networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def parse(cls, entries: Iterable[str]) -> AddressAllowlist:
        names: set[str] = set()
        networks: list[IPNetwork] = []
        for raw in entries:
            entry = raw.strip().lower().rstrip(".")
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
            except ValueError:
                names.add(entry)
        return cls(frozenset(names), tuple(networks))

    def allows(self, host: str, address: IPAddress) -> bool:
        if host.lower().rstrip(".") in self.names:
            return True
        candidates = [address]
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            candidates.append(address.ipv4_mapped)
        return any(a in n for a in candidates for n in self.networks if a.version == n.version)


def refusal(host: str, address: IPAddress, allowlist: AddressAllowlist) -> AddressClass | None:
    """Why connecting to ``address`` (resolved from ``host``) is refused; ``None`` if it is not."""
    kind = classify(address)
    if kind is None or allowlist.allows(host, address):
        return None
    return kind
