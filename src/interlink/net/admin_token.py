"""The admin token check, in one place for every door that takes it: the admin API
(``/admin/v1``, a bearer token), ``/metrics`` (a bearer token unless metrics are public) and the
console's login form.

The token is compared in constant time. Wrong tokens are counted per source (an IPv4 address, an
IPv6 /64) by the SASL throttle's machinery (:class:`~interlink.hub.auth_throttle.AuthThrottle`,
per source only: the one admin token is not an account that could be locked for everyone):
beyond ``free`` failures each further attempt from that source must wait, doubling up to a cap,
and an attempt that comes too early is refused with 429 and ``Retry-After`` *without the token
being compared*. The doors share one guard, so guessing through the API and the console counts
against the same budget. A request that presents no token at all is refused (401) without being
counted: it guessed nothing.
"""

from __future__ import annotations

import hmac
import math
import time
from collections.abc import Callable

from interlink.errors import HttpProblem
from interlink.hub.auth_throttle import AuthThrottle, AuthThrottled, Backoff, ThrottleLimits


class AdminAuthError(HttpProblem):
    """No admin bearer token, or the wrong one."""

    status = 401
    kind = "unauthorized"
    title = "admin token required"

    def __init__(self, detail: str = "send Authorization: Bearer <admin token>") -> None:
        super().__init__(detail)

    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": "Bearer"}


class WrongAdminToken(AdminAuthError):
    """A token was presented, and it is not the admin token (counted against its source)."""

    def __init__(self) -> None:
        super().__init__("wrong admin token")


class AdminThrottled(HttpProblem):
    """Too many wrong admin tokens from this source: wait ``retry_after`` seconds."""

    status = 429
    kind = "too-many-attempts"
    title = "too many failed attempts"

    def __init__(self, retry_after: float) -> None:
        self.retry_after = max(1, math.ceil(retry_after))
        super().__init__(
            f"too many wrong admin tokens from your address; try again in {self.retry_after} s"
        )

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class AdminTokenGuard:
    """Checks a presented admin token for a source address (see the module docstring)."""

    def __init__(
        self, token: str, backoff: Backoff, clock: Callable[[], float] = time.time
    ) -> None:
        self._expected = token.encode()
        self._throttle = AuthThrottle(
            ThrottleLimits(source=backoff, forget_after=max(3600.0, backoff.cap))
        )
        self._clock = clock

    def source(self, host: str | None) -> str:
        """The source ``host`` (the peer's address) counts as; also what logs may name."""
        return self._throttle.source_key(host or "?")

    def check(self, host: str | None, presented: str | None) -> None:
        """Return if ``presented`` is the admin token; else raise :class:`AdminThrottled` (the
        source must wait; the token was not compared), :class:`WrongAdminToken` (counted) or
        :class:`AdminAuthError` (no token)."""
        if not presented:
            raise AdminAuthError
        now = self._clock()
        attempt = self._throttle.begin(now, self.source(host), None)
        if isinstance(attempt, AuthThrottled):
            raise AdminThrottled(attempt.retry_after)
        if not hmac.compare_digest(presented.encode(), self._expected):
            self._throttle.failed(attempt, now)
            raise WrongAdminToken

    def failures(self, host: str | None) -> int:
        """Wrong tokens counted against ``host``'s source now."""
        return self._throttle.source_failures(self.source(host), self._clock())


def bearer(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, else ``None``."""
    scheme, _, value = (authorization or "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None
