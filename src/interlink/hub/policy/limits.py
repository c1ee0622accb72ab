"""Token buckets with time passed in, and a bounded table of them keyed by sender, provider, ...

A bucket holds up to ``capacity`` tokens and gains ``capacity / period`` tokens per second. Taking
a token either succeeds or says how many seconds until one is there (for ``Retry-After``). The
table forgets the least recently used buckets beyond ``max_keys``; a forgotten bucket comes back
full, which errs on the side of the sender but bounds memory whatever the traffic.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Rate:
    """``count`` events per ``period`` seconds; ``count == 0`` means unlimited."""

    count: int
    period: float

    def __post_init__(self) -> None:
        if self.count < 0 or self.period <= 0:
            raise ValueError("a rate needs count >= 0 and period > 0")

    @property
    def unlimited(self) -> bool:
        return self.count == 0


class TokenBucket:
    __slots__ = ("_rate", "_tokens", "_updated")

    def __init__(self, rate: Rate, now: float) -> None:
        self._rate = rate
        self._tokens = float(rate.count)
        self._updated = now

    def _refill(self, now: float) -> None:
        elapsed = max(0.0, now - self._updated)
        per_second = self._rate.count / self._rate.period
        self._tokens = min(float(self._rate.count), self._tokens + elapsed * per_second)
        self._updated = max(self._updated, now)

    def take(self, now: float) -> float:
        """Take one token: 0.0 if it was there, else the seconds until one will be."""
        self._refill(now)
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return 0.0
        per_second = self._rate.count / self._rate.period
        return (1.0 - self._tokens) / per_second

    def peek(self, now: float) -> float:
        """Like :meth:`take` without taking."""
        self._refill(now)
        if self._tokens >= 1.0:
            return 0.0
        return (1.0 - self._tokens) / (self._rate.count / self._rate.period)


class BucketTable:
    """One bucket per key, all with the same rate, at most ``max_keys`` of them."""

    def __init__(self, rate: Rate, max_keys: int = 100_000) -> None:
        if max_keys < 1:
            raise ValueError("max_keys must be at least 1")
        self.rate = rate
        self._max = max_keys
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def _bucket(self, key: str, now: float) -> TokenBucket:
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = TokenBucket(self.rate, now)
            if len(self._buckets) > self._max:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
        return bucket

    def take(self, key: str, now: float) -> float:
        """0.0 if ``key`` may go on now, else the seconds to wait."""
        if self.rate.unlimited:
            return 0.0
        return self._bucket(key, now).take(now)

    def peek(self, key: str, now: float) -> float:
        if self.rate.unlimited:
            return 0.0
        return self._bucket(key, now).peek(now)


def retry_after(seconds: float) -> int:
    """Whole seconds for an HTTP ``Retry-After`` header (at least 1)."""
    return max(1, math.ceil(seconds))


@dataclass(frozen=True, slots=True)
class PolicyLimits:
    request_messages: int = 3  # accepted from a third-party sender before the request is accepted
    messages_per_sender: Rate = Rate(120, 60.0)  # to or from third parties, per sender
    new_conversations_per_sender: Rate = Rate(20, 86_400.0)
    provider_messages: Rate = Rate(1_000, 1.0)  # aggregate from one provider's users
    max_blocklist: int = 1_000  # items per account
    max_allowed_providers: int = 256
    max_report_messages: int = 20
    max_report_text: int = 4_096
    cache_entries: int = 10_000  # account lookups kept in memory
    cache_seconds: float = 30.0
    rate_keys: int = 100_000  # buckets kept per table
    contacts_remembered: int = 1_000  # per sender: accounts already charged as first contacts
    reports_per_sender: Rate = Rate(10, 3600.0)

    def __post_init__(self) -> None:
        if self.request_messages < 1 or self.max_blocklist < 1 or self.cache_entries < 1:
            raise ValueError("request_messages, max_blocklist and cache_entries must be >= 1")
