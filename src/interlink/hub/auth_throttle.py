"""Throttling of password and token guessing: exponential back-off per source, per account and
per (account, source) pair, with time passed in.

Theory of operation
-------------------
Every SASL attempt that names an account (SCRAM, PLAIN) or presents a token (OAUTHBEARER) asks
:meth:`AuthThrottle.begin` first. On its pair and account an attempt is *counted as a failure
when it begins* and uncounted when it succeeds (:meth:`AuthThrottle.succeeded`): so parallel
guessers of one account cannot slip through a window before their failures are known, and an
abandoned exchange counts as failed. On its source it counts only once it has failed
(:meth:`AuthThrottle.failed`): many users behind one address (a carrier NAT, an office, a load
test) logging in at once are not a failure, and an exchange abandoned before the password was
checked tested nothing.

Three counters decide, each with its own :class:`Backoff` (``free`` failures without waiting,
then ``first`` seconds, doubling up to ``cap``):

- the **pair** (account, source): one source guessing one account. Reset by a success.
- the **source** (an IPv4 address, or the IPv6 network of ``ipv6_prefix`` bits, /64 by default):
  one source spraying many accounts; OAUTHBEARER attempts count here only.
- the **account**, from every source: distributed guessing. A source adds at most ``pair.free``
  failures to it (per-source weighting), so one stubborn source — a guesser, or the user's own
  old client with a changed password — cannot push the account into back-off for everyone.

A success never resets the source or account counters (an attacker could log in to an account
of their own between guesses); it only takes back its own provisional failure, resets the pair
and makes the pair *trusted* for ``trusted_for`` seconds. A trusted pair — a device that logged
in before from that address — is held back by its pair counter only, never by the source or
account back-off: a victim whose account is under attack keeps logging in from known places,
and only a first login from a new place can be made to wait (at most ``cap`` seconds between
two attempts that are let through). docs/security.md discusses the choice. An attempt whose
source is *claimed* rather than seen (a client address carried by a provider proxy's PROXY
header) begins with ``may_trust=False``: it neither uses a trusted pair nor makes one, since a
proxy could claim a victim's usual address to skip the source and account back-off.

The throttle never asks whether an account exists: an unknown account's key is counted exactly
like a real one's, and a refusal is the same whatever the account.

Memory is bounded: each table is an LRU of at most ``max_keys`` entries; a key unused for
``forget_after`` seconds starts afresh.
"""

from __future__ import annotations

import ipaddress
import math
from collections import OrderedDict
from dataclasses import dataclass, field

_NEVER = -math.inf


@dataclass(frozen=True, slots=True)
class Backoff:
    """``free`` failures are allowed without waiting; after ``n >= free`` failures the next
    attempt waits ``min(first * 2 ** (n - free), cap)`` seconds after the last one."""

    free: int
    first: float
    cap: float

    def __post_init__(self) -> None:
        if self.free < 0 or self.first <= 0 or self.cap < self.first:
            raise ValueError("a back-off needs free >= 0 and 0 < first <= cap")

    def delay(self, failures: int) -> float:
        if failures < self.free:
            return 0.0
        return min(self.first * 2.0 ** min(failures - self.free, 64), self.cap)


@dataclass(frozen=True, slots=True)
class ThrottleLimits:
    pair: Backoff = field(default_factory=lambda: Backoff(5, 1.0, 300.0))
    source: Backoff = field(default_factory=lambda: Backoff(20, 1.0, 60.0))
    account: Backoff = field(default_factory=lambda: Backoff(20, 1.0, 60.0))
    forget_after: float = 3600.0  # a key without attempts this long starts afresh
    trusted_for: float = 30 * 86400.0  # a pair that succeeded skips source and account back-off
    max_keys: int = 100_000  # per table (pairs, sources, accounts, trusted pairs)
    ipv6_prefix: int = 64  # IPv6 sources are counted per network of this many bits

    def __post_init__(self) -> None:
        longest = max(self.pair.cap, self.source.cap, self.account.cap)
        if self.forget_after < longest:
            raise ValueError("forget_after must be at least the longest back-off")
        if self.max_keys < 1 or not 0 < self.ipv6_prefix <= 128:
            raise ValueError("max_keys must be positive and ipv6_prefix in 1..128")


@dataclass(slots=True)
class _Count:
    failures: int
    last: float


class _Table:
    """Failure counts by key, least recently used first."""

    def __init__(self, backoff: Backoff, limits: ThrottleLimits) -> None:
        self.backoff = backoff
        self._forget_after = limits.forget_after
        self._max_keys = limits.max_keys
        self._counts: OrderedDict[str, _Count] = OrderedDict()

    def __len__(self) -> int:
        return len(self._counts)

    def _current(self, key: str, now: float) -> _Count | None:
        count = self._counts.get(key)
        if count is not None and now - count.last >= self._forget_after:
            del self._counts[key]
            return None
        return count

    def failures(self, key: str, now: float) -> int:
        count = self._current(key, now)
        return 0 if count is None else count.failures

    def wait(self, key: str, now: float) -> float:
        """Seconds until ``key`` may try again (0: now)."""
        count = self._current(key, now)
        if count is None:
            return 0.0
        return max(0.0, count.last + self.backoff.delay(count.failures) - now)

    def add(self, key: str, now: float) -> int:
        """Count one failure; returns the count."""
        count = self._current(key, now)
        if count is None:
            count = self._counts[key] = _Count(0, now)
            if len(self._counts) > self._max_keys:
                self._counts.popitem(last=False)
        else:
            self._counts.move_to_end(key)
        count.failures += 1
        count.last = now
        return count.failures

    def take_back(self, key: str) -> None:
        count = self._counts.get(key)
        if count is not None and count.failures > 0:
            count.failures -= 1

    def reset(self, key: str) -> None:
        self._counts.pop(key, None)


@dataclass(frozen=True, slots=True)
class AuthAttempt:
    """One attempt let through; give it back to :meth:`AuthThrottle.succeeded` or
    :meth:`AuthThrottle.failed`."""

    source: str
    account: str | None
    counted_on_account: bool
    pair_failures: int  # including this attempt
    may_trust: bool = True  # False: a claimed source, which never makes its pair trusted


@dataclass(frozen=True, slots=True)
class AuthThrottled:
    """The attempt is refused without looking at credentials; try again in ``retry_after``."""

    retry_after: float

    @property
    def text(self) -> str:
        """The one SASL failure text for every throttled attempt, whatever the account."""
        return f"too many failed attempts; try again in {math.ceil(self.retry_after)} s"


class AuthThrottle:
    """The back-off state of every source and account (pure: ``now`` is passed in)."""

    def __init__(self, limits: ThrottleLimits | None = None) -> None:
        self.limits = limits = limits if limits is not None else ThrottleLimits()
        self._pairs = _Table(limits.pair, limits)
        self._sources = _Table(limits.source, limits)
        self._accounts = _Table(limits.account, limits)
        self._trusted: OrderedDict[str, float] = OrderedDict()  # pair key -> until
        self.failures = 0  # attempts that failed (or were abandoned), for metrics
        self.throttled = 0  # attempts refused by a back-off

    def __len__(self) -> int:
        """Keys held in all tables (what the memory bound is about)."""
        return len(self._pairs) + len(self._sources) + len(self._accounts) + len(self._trusted)

    def source_key(self, address: str) -> str:
        """The source an address counts as: IPv4 (and IPv4-mapped IPv6) addresses as they are,
        IPv6 addresses by their ``ipv6_prefix`` network; anything else as given."""
        try:
            ip = ipaddress.ip_address(address.strip("[]"))
        except ValueError:
            return address
        if isinstance(ip, ipaddress.IPv6Address):
            if ip.ipv4_mapped is not None:
                return str(ip.ipv4_mapped)
            net = ipaddress.IPv6Network((ip, self.limits.ipv6_prefix), strict=False)
            return str(net)
        return str(ip)

    def _is_trusted(self, pair: str, now: float) -> bool:
        until = self._trusted.get(pair)
        if until is None:
            return False
        if now >= until:
            del self._trusted[pair]
            return False
        return True

    def begin(
        self, now: float, source: str, account: str | None, *, may_trust: bool = True
    ) -> AuthAttempt | AuthThrottled:
        """Let an attempt by ``source`` on ``account`` (``None`` for a bearer token) through, or
        refuse it. ``source`` is a :meth:`source_key`; ``account`` any stable name of the
        account, whether or not it exists. ``may_trust=False`` (a source claimed by a proxy,
        not seen): the pair's trust is neither used now nor granted on success."""
        pair = _pair(account, source) if account is not None else None
        wait = 0.0
        if pair is not None:
            wait = self._pairs.wait(pair, now)
        if pair is None or not may_trust or not self._is_trusted(pair, now):
            wait = max(wait, self._sources.wait(source, now))
            if account is not None:
                wait = max(wait, self._accounts.wait(account, now))
        if wait > 0.0:
            self.throttled += 1
            return AuthThrottled(wait)
        pair_failures = 0
        counted_on_account = False
        if pair is not None and account is not None:
            pair_failures = self._pairs.add(pair, now)
            if pair_failures <= self.limits.pair.free:
                self._accounts.add(account, now)
                counted_on_account = True
        return AuthAttempt(source, account, counted_on_account, pair_failures, may_trust)

    def succeeded(self, attempt: AuthAttempt, now: float) -> None:
        """Take back the attempt's provisional failure; reset and (unless the source was
        claimed) trust its pair."""
        if attempt.account is None:
            return
        if attempt.counted_on_account:
            self._accounts.take_back(attempt.account)
        pair = _pair(attempt.account, attempt.source)
        self._pairs.reset(pair)
        if not attempt.may_trust:
            return
        self._trusted[pair] = now + self.limits.trusted_for
        self._trusted.move_to_end(pair)
        if len(self._trusted) > self.limits.max_keys:
            self._trusted.popitem(last=False)

    def failed(self, attempt: AuthAttempt, now: float) -> None:
        """The attempt failed: its pair and account counted it when it began; its source
        counts it now."""
        self._sources.add(attempt.source, now)
        self.failures += 1

    def account_failures(self, account: str, now: float) -> int:
        return self._accounts.failures(account, now)

    def source_failures(self, source: str, now: float) -> int:
        return self._sources.failures(source, now)


def _pair(account: str, source: str) -> str:
    return f"{account}\x00{source}"


__all__ = ["AuthAttempt", "AuthThrottle", "AuthThrottled", "Backoff", "ThrottleLimits"]
