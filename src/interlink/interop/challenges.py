"""Enlistment challenges (DESIGN Flow 2, step 1): nonces kept in memory, each usable once,
until it expires.

A challenge only makes a device's proof fresh; it grants nothing by itself. Losing the open ones
at a restart therefore only means the client asks again, so they are not written to storage
(that was a durable transaction, with an fsync, for every challenge). The token id (``jti``),
which must never be accepted twice, stays in storage.

The store is bounded: when it is full, the oldest challenge is dropped. A flood of challenge
requests thus costs at most ``capacity`` entries of memory and can only push out challenges
older than the flood's own, never block new ones. Time comes in as a parameter; no clock, no
asyncio inside, so single use and expiry are exact and testable.
"""

from __future__ import annotations

import base64
import secrets
from collections import OrderedDict

CHALLENGE_BYTES = 32
CHALLENGE_TTL = 300.0
# ~200 bytes each, ~20 MB at most. Challenges live 5 minutes; at ~330 requests/s the store holds
# them all, at ~1,000/s (what the hub serves on one core) the oldest are pushed out after ~100 s,
# and a client whose challenge went asks again. Configurable as interop.open_challenges.
DEFAULT_CAPACITY = 100_000


class ChallengeStore:
    def __init__(self, *, ttl: float = CHALLENGE_TTL, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.ttl = ttl
        self.capacity = capacity
        # Insertion order is issue order, so the front holds the oldest (first to expire).
        self._open: OrderedDict[str, float] = OrderedDict()

    def __len__(self) -> int:
        return len(self._open)

    def issue(self, now: float) -> tuple[str, float]:
        """A new challenge and the time it expires."""
        self._forget_expired(now)
        while len(self._open) >= self.capacity:
            self._open.popitem(last=False)
        nonce = base64.urlsafe_b64encode(secrets.token_bytes(CHALLENGE_BYTES)).rstrip(b"=")
        challenge = nonce.decode()
        expires_at = now + self.ttl
        self._open[challenge] = expires_at
        return challenge, expires_at

    def take(self, challenge: str, now: float) -> float | None:
        """Use ``challenge`` up: its expiry time if it was open and unexpired, else ``None``.
        Either way it is open no more."""
        expires_at = self._open.pop(challenge, None)
        if expires_at is None or expires_at <= now:
            return None
        return expires_at

    def give_back(self, challenge: str, expires_at: float) -> None:
        """Reopen a challenge taken by a request that was then refused (so a refusal uses
        nothing up). It keeps its expiry; with the store full, it is not reopened."""
        if len(self._open) < self.capacity:
            self._open[challenge] = expires_at

    def _forget_expired(self, now: float) -> None:
        while self._open:
            challenge, expires_at = next(iter(self._open.items()))
            if expires_at > now:
                break
            del self._open[challenge]
