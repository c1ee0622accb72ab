"""Per-source connection budgets: how many connections one address may hold, and how fast it may
open them. Sans-I/O: addresses and time are passed in.

Theory of operation. A *source* is an IPv4 address, or an IPv6 address together with its /64
(one customer's network: an attacker holding a /64 has 2^64 addresses, so counting single IPv6
addresses alone would hold nothing). :meth:`SourceBudgets.admit` checks, in this order,

1. the connection rate of the source (a token bucket per IPv4 address or IPv6 /64),
2. the connections the address holds (``per_ip``),
3. the connections its IPv6 /64 holds (``per_ipv6_64``),

and either counts the connection (until :meth:`SourceBudgets.release`) or names the budget that
refused it. Addresses on the allowlist (a provider's proxy, a load balancer) are exempt from all
three; the transport's global caps still apply to them. Loopback is not exempt unless listed.

Memory is bounded: a source's count is forgotten when it drops to zero, and the rate table keeps
at most ``max_keys`` buckets (a forgotten bucket comes back full).
"""

from __future__ import annotations

import enum
import ipaddress
from collections import Counter
from dataclasses import dataclass, field

from interlink.hub.policy.limits import BucketTable, Rate

IPV6_PREFIX = 64
DEFAULT_RATE = Rate(60, 60.0)  # new connections a minute per source


class Budget(enum.StrEnum):
    """Which budget refused a connection (the ``budget`` label of the refusal metrics)."""

    GLOBAL = "global"
    PER_IP = "per-ip"
    PER_IPV6_64 = "per-ipv6-64"
    RATE = "rate"


@dataclass(frozen=True, slots=True)
class SourceLimits:
    """``per_ip`` and ``per_ipv6_64``: connections held at once; ``rate``: connections opened
    (``Rate(0, …)`` is unlimited); ``allowlist``: addresses or networks exempt from all three."""

    per_ip: int = 64
    per_ipv6_64: int = 128
    rate: Rate = DEFAULT_RATE
    allowlist: tuple[str, ...] = ()
    max_keys: int = 100_000

    def __post_init__(self) -> None:
        if self.per_ip < 1 or self.per_ipv6_64 < 1:
            raise ValueError("per-source connection budgets must be at least 1")
        for entry in self.allowlist:
            ipaddress.ip_network(entry, strict=False)  # raises ValueError when malformed


@dataclass(frozen=True, slots=True)
class Source:
    """A peer address as the budgets see it."""

    address: str  # normalised; "?" when the transport does not know it
    prefix: str | None  # the IPv6 /64, None for IPv4
    exempt: bool

    @property
    def rate_key(self) -> str:
        return self.prefix or self.address


@dataclass
class SourceBudgets:
    limits: SourceLimits = field(default_factory=SourceLimits)

    def __post_init__(self) -> None:
        self._allow = tuple(ipaddress.ip_network(a, strict=False) for a in self.limits.allowlist)
        self._rates = BucketTable(self.limits.rate, max_keys=self.limits.max_keys)
        self._per_ip: Counter[str] = Counter()
        self._per_prefix: Counter[str] = Counter()

    def source(self, address: str | None) -> Source:
        """Classify a peer address (a string from ``getpeername``; ``None`` if unknown)."""
        try:
            ip = ipaddress.ip_address((address or "").split("%", 1)[0])
        except ValueError:
            return Source("?", None, exempt=False)  # unknown peers share one budget
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        exempt = any(ip in net for net in self._allow)
        if isinstance(ip, ipaddress.IPv6Address):
            prefix = ipaddress.IPv6Network((ip, IPV6_PREFIX), strict=False)
            return Source(str(ip), str(prefix), exempt)
        return Source(str(ip), None, exempt)

    def admit(self, source: Source, now: float) -> Budget | None:
        """Count a new connection from ``source``: ``None``, or the budget that refuses it
        (then nothing was counted and :meth:`release` must not be called)."""
        if source.exempt:
            return None
        if self._rates.take(source.rate_key, now) > 0.0:
            return Budget.RATE
        if self._per_ip[source.address] >= self.limits.per_ip:
            return Budget.PER_IP
        if source.prefix is not None and self._per_prefix[source.prefix] >= self.limits.per_ipv6_64:
            return Budget.PER_IPV6_64
        self._per_ip[source.address] += 1
        if source.prefix is not None:
            self._per_prefix[source.prefix] += 1
        return None

    def release(self, source: Source) -> None:
        """A connection :meth:`admit` counted has ended (or no longer needs the budget)."""
        if source.exempt:
            return
        _decrement(self._per_ip, source.address)
        if source.prefix is not None:
            _decrement(self._per_prefix, source.prefix)

    def held_by(self, address: str) -> int:
        return self._per_ip[address]

    @property
    def sources(self) -> int:
        """Addresses holding at least one counted connection."""
        return len(self._per_ip)


def _decrement(counts: Counter[str], key: str) -> None:
    left = counts[key] - 1
    if left > 0:
        counts[key] = left
    else:
        del counts[key]


class CappedPool:
    """What each listener admits connections through: at most ``cap`` at once from all sources
    together (refused as :attr:`Budget.GLOBAL`), and each source within its
    :class:`SourceBudgets`; refusals counted by budget (for ``/metrics``)."""

    def __init__(self, cap: int, sources: SourceBudgets) -> None:
        if cap < 1:
            raise ValueError("a pool's cap must be at least 1")
        self.cap = cap
        self.sources = sources
        self.held = 0
        self.refused: Counter[Budget] = Counter()

    def admit(self, source: Source, now: float) -> Budget | None:
        """Take a place for ``source``: ``None``, or the budget that refuses it."""
        refused = Budget.GLOBAL if self.held >= self.cap else self.sources.admit(source, now)
        if refused is not None:
            self.refused[refused] += 1
            return refused
        self.held += 1
        return None

    def release(self, source: Source) -> None:
        self.held -= 1
        self.sources.release(source)
