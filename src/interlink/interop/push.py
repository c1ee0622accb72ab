"""Push to providers (DESIGN Flow 4): when a message for a third-party user is stored because the
user has no available resource, the hub tells the provider, so it can wake the user's app.

A push carries no content and no sender: it is a JWS signed with the hub's key (public JWK set at
``/.well-known/interlink/jwks.json``) whose claims are the provider's own subject for the
recipient, a count, a random id and a time. Pushes for the same recipient that are still queued
coalesce into one. Each provider has its own bounded queue and worker; delivery is retried with
exponential backoff; counters say what happened.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx
from joserfc import jws
from joserfc.jwk import OKPKey

from interlink.errors import reason
from interlink.interop.providers import ProviderRegistry
from interlink.storage.enlistment import InteropAccount
from interlink.storage.providers import ProviderStatus
from interlink.tasks import cancel_and_wait
from interlink.xmpp.addressing import domain_of, interop_service
from interlink.xmpp.ext.interop import NO_PUSH
from interlink.xmpp.stanza import Message

log = logging.getLogger("interlink.push")
PUSH_PATH = "/interlink/v1/push"
# A message marked with the no-push hint (xmpp/ext/interop.py) is stored like any other but wakes
# nobody: the SDK puts it on python-omemo's own protocol messages (session completion, ratchet
# heartbeats), which carry no content for the user.


def wants_no_push(message: Message) -> bool:
    return message.find(NO_PUSH) is not None


ALGORITHM = "Ed25519"


@dataclass(frozen=True, slots=True)
class Delivery:
    delivered: bool
    refused: bool  # the provider answered 4xx (not 429): retrying will not help
    error: str
    retries: int


async def post_jws(
    client: httpx.AsyncClient, url: str, body: str, *, attempts: int, backoff: float
) -> Delivery:
    """POST a hub-signed JWS to a provider's callback, retrying network errors, 5xx and 429 with
    exponential backoff (``backoff`` seconds, doubling); redirects are not followed."""
    error, retries = "not delivered", 0
    for attempt in range(attempts):
        if attempt:
            retries += 1
            await asyncio.sleep(backoff * 2 ** (attempt - 1))
        try:
            response = await client.post(
                url,
                content=body,
                headers={"Content-Type": "application/jose"},
                follow_redirects=False,
            )
        except httpx.HTTPError as exc:
            error = reason(exc)
            continue
        if 200 <= response.status_code < 300:
            return Delivery(True, False, "", retries)
        error = f"HTTP {response.status_code}"
        if 400 <= response.status_code < 500 and response.status_code != 429:
            return Delivery(False, True, error, retries)
    return Delivery(False, False, error, retries)


class AccountLookup(Protocol):
    async def account(self, jid: str) -> InteropAccount | None: ...


class HubSigner:
    """The hub's signing key (Ed25519), from a 32-byte seed kept in storage."""

    def __init__(self, seed: bytes) -> None:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        private = Ed25519PrivateKey.from_private_bytes(seed)
        key = OKPKey.import_key(private)
        self.kid = key.thumbprint()
        self._key = OKPKey.import_key(key.as_dict(private=True), parameters={"kid": self.kid})

    def jwks(self) -> dict[str, Any]:
        public = self._key.as_dict(private=False)
        public.update({"use": "sig", "alg": ALGORITHM})
        return {"keys": [public]}

    def sign(self, claims: dict[str, Any], typ: str = "interlink-push+jwt") -> str:
        import json

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # joserfc warns about EdDSA; Ed25519 is the new name
            return jws.serialize_compact(
                {"alg": ALGORITHM, "kid": self.kid, "typ": typ},
                json.dumps(claims, separators=(",", ":")).encode(),
                self._key,
                algorithms=[ALGORITHM],
            )


@dataclass
class PushStats:
    queued: int = 0
    coalesced: int = 0
    sent: int = 0
    retried: int = 0
    failed: int = 0
    dropped: int = 0


@dataclass
class _Job:
    subject: str
    service: str  # the gatekeeper service the message waits on (the push's ``iss``)
    count: int = 1


@dataclass
class _ProviderQueue:
    # by (subject, service); insertion ordered
    jobs: dict[tuple[str, str], _Job] = field(default_factory=dict)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    worker: asyncio.Task[None] | None = None


class PushNotifier:
    def __init__(
        self,
        accounts: AccountLookup,
        registry: ProviderRegistry,
        signer: HubSigner,
        client: httpx.AsyncClient,
        *,
        hub_domain: str,
        clock: Callable[[], float] = time.time,
        queue_max: int = 1000,
        max_attempts: int = 5,
        backoff: float = 1.0,
    ) -> None:
        self._accounts = accounts
        self._registry = registry
        self._signer = signer
        self._client = client
        self._domain = hub_domain
        self._clock = clock
        self._queue_max = queue_max
        self._max_attempts = max_attempts
        self._backoff = backoff
        self._queues: dict[str, _ProviderQueue] = {}
        self.stats: dict[str, PushStats] = {}
        self._pending: set[asyncio.Task[None]] = set()

    def notify(self, bare_jid: str) -> None:
        """A message for the third-party account ``bare_jid`` was stored offline (called from
        the routing path; an address that is no enlisted account is ignored)."""
        task = asyncio.get_running_loop().create_task(self._enqueue(bare_jid))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _enqueue(self, bare_jid: str) -> None:
        account = await self._accounts.account(bare_jid)
        if account is None:
            return
        provider_id = account.provider_id
        service = interop_service(domain_of(bare_jid), provider_id) or self._domain
        key = (account.subject, service)
        stats = self.stats.setdefault(provider_id, PushStats())
        queue = self._queues.setdefault(provider_id, _ProviderQueue())
        job = queue.jobs.get(key)
        if job is not None:
            job.count += 1
            stats.coalesced += 1
            return
        if len(queue.jobs) >= self._queue_max:
            stats.dropped += 1
            log.warning("push queue full", extra={"provider": provider_id})
            return
        queue.jobs[key] = _Job(account.subject, service)
        stats.queued += 1
        queue.wake.set()
        if queue.worker is None or queue.worker.done():
            queue.worker = asyncio.get_running_loop().create_task(self._work(provider_id, queue))

    async def _work(self, provider_id: str, queue: _ProviderQueue) -> None:
        stats = self.stats[provider_id]
        while queue.jobs:
            job = queue.jobs.pop(next(iter(queue.jobs)))
            try:
                provider = await self._registry.get(provider_id)
            except Exception:  # the provider was removed
                return
            if provider.status is not ProviderStatus.APPROVED:
                stats.dropped += 1
                continue
            claims = {
                "iss": job.service,  # the service the user's messages wait on
                "aud": provider_id,
                "sub": job.subject,
                "count": job.count,
                "jti": secrets.token_urlsafe(12),
                "iat": int(self._clock()),
            }
            delivery = await post_jws(
                self._client,
                provider.callback_url + PUSH_PATH,
                self._signer.sign(claims),
                attempts=self._max_attempts,
                backoff=self._backoff,
            )
            stats.retried += delivery.retries
            if delivery.delivered:
                stats.sent += 1
            else:
                stats.failed += 1
                if not delivery.refused:
                    log.warning(
                        "push failed", extra={"provider": provider_id, "error": delivery.error}
                    )

    async def close(self) -> None:
        workers = [queue.worker for queue in self._queues.values() if queue.worker is not None]
        await cancel_and_wait([*self._pending, *workers])
