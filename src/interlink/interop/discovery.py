"""Discovery by phone number (DESIGN Flow 6): a third-party user, authenticated with a fresh
provider token like a login, asks which interop address a phone number has.

The answer is the gatekeeper user's JID only when that user turned on third-party chats, allows
the caller's provider, made the number discoverable and has not blocked the caller; every other
case — no such number, not opted in, not discoverable, provider not allowed, blocked — is the same
"not found", decided after the same single lookup. Token buckets per caller and per provider bound
how fast numbers can be tried.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

from interlink.cluster import SharedBuckets
from interlink.errors import AuthenticationRefused, HttpProblem
from interlink.hub.policy.engine import InteropPolicy
from interlink.hub.policy.limits import BucketTable, Rate
from interlink.storage.policy import PolicyRepository
from interlink.xmpp.jid import JID

_E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")
_SEPARATORS = re.compile(r"[ \-().]")


def normalize_phone(text: str) -> str | None:
    """``text`` as an E.164 number (``+`` and 7 to 15 digits; spaces, dashes, dots and
    parentheses are dropped), or ``None`` if it is not one."""
    compact = _SEPARATORS.sub("", text.strip())
    return compact if _E164.match(compact) else None


class DiscoveryError(HttpProblem):
    """A lookup was refused: ``status`` and ``kind`` say why; ``retry_after`` (seconds) for 429."""

    title = "discovery refused"

    def __init__(self, status: int, kind: str, detail: str, retry_after: int = 0) -> None:
        super().__init__(detail)
        self.status = status
        self.kind = kind
        self.retry_after = retry_after

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)} if self.retry_after else {}


class DiscoveryService:
    """Phone-number discovery for third-party users, bounded per user and per provider."""

    def __init__(
        self,
        repo: PolicyRepository,
        policy: InteropPolicy,
        authenticate: Callable[[str], Awaitable[str]],
        *,
        per_user: Rate,
        per_provider: Rate,
        clock: Callable[[], float],
        max_keys: int = 100_000,
        shared: SharedBuckets | None = None,
    ) -> None:
        """``shared``: the buckets of a cluster, so every node draws from the same ones (by
        default this process's own)."""
        self._repo = repo
        self._shared = shared
        self._rates = (per_user, per_provider)
        self._policy = policy
        self._authenticate = authenticate
        self._per_user = BucketTable(per_user, max_keys)
        self._per_provider = BucketTable(per_provider, max_keys)
        self._clock = clock
        self.lookups = 0
        self.found = 0
        self.limited = 0

    async def lookup(self, token: str, phone: str) -> str | None:
        """The JID to write to, or ``None`` (not found, for every reason)."""
        try:
            caller = JID.parse(await self._authenticate(token))
        except AuthenticationRefused as exc:
            if exc.temporary:
                raise DiscoveryError(503, "provider-unavailable", str(exc)) from None
            raise DiscoveryError(401, "unauthorized", str(exc)) from None
        provider_id = self._policy.provider_of(caller)
        if provider_id is None:
            raise DiscoveryError(403, "forbidden", "discovery is for third-party users")
        now = self._clock()
        wait = await self._take(str(caller), provider_id, now)
        if wait:
            self.limited += 1
            raise DiscoveryError(
                429,
                "rate-limited",
                "too many lookups; try again later",
                retry_after=max(1, int(wait + 0.999)),
            )
        number = normalize_phone(phone)
        if number is None:
            raise DiscoveryError(400, "bad-phone", "give an E.164 number like +4915112345678")
        self.lookups += 1
        service = self._policy.service_of(caller)
        jid, reach = await self._repo.reach_by_phone(number, service or "")
        target = JID.parse(jid) if jid is not None else caller
        found = (
            reach.exists
            & reach.settings.discoverable
            & reach.settings.allows(provider_id)
            & self._policy.approved(caller)
            & self._policy.linked(caller, target)
            & (not self._policy.blocks.blocks(target, caller))
        )
        if not found:
            return None
        self.found += 1
        return jid

    async def _take(self, user: str, provider_id: str, now: float) -> float:
        """Take a lookup from the user's and the provider's buckets, from both or neither:
        0.0, or the seconds until both allow one."""
        if self._shared is None:
            wait = max(self._per_user.peek(user, now), self._per_provider.peek(provider_id, now))
            if not wait:
                self._per_user.take(user, now)
                self._per_provider.take(provider_id, now)
            return wait
        per_user, per_provider = self._rates
        buckets = [
            (f"discovery-user:{user}", float(rate.count), rate.period)
            for rate in (per_user,)
            if not rate.unlimited
        ] + [
            (f"discovery-provider:{provider_id}", float(rate.count), rate.period)
            for rate in (per_provider,)
            if not rate.unlimited
        ]
        return await self._shared.take_all(buckets, now)
