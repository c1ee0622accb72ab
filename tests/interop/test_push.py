"""Push dispatch: coalescing, the bounded queue, retries with backoff, refusals not retried."""

from __future__ import annotations

import asyncio
import base64
import json
import time

import httpx

from interlink.interop.providers import ProviderRegistry
from interlink.interop.push import HubSigner, PushNotifier
from interlink.storage.enlistment import InteropAccount
from interlink.storage.providers import Provider, ProviderStatus
from interlink.storage.sqlite import open_sqlite

JWKS: dict[str, object] = {
    "keys": [
        {
            "kty": "OKP",
            "crv": "Ed25519",
            "kid": "k1",
            "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo",
        }
    ]
}


class Accounts:
    async def account(self, jid: str) -> InteropAccount | None:
        subject = jid.split("@", 1)[0]
        return InteropAccount(jid, "examplechat", subject, None, b"k" * 32, 0.0, 0.0)


async def setup(handler: httpx.MockTransport, **kwargs: object) -> tuple[PushNotifier, object]:
    storage = await open_sqlite(":memory:")
    registry = ProviderRegistry(storage.providers, time.time, services=("hub.test",))
    await registry.add(Provider("examplechat", "Ex", "https://push.example.chat", jwks=JWKS), "t")
    await registry.set_status("examplechat", ProviderStatus.APPROVED, "t")
    client = httpx.AsyncClient(transport=handler)
    notifier = PushNotifier(
        Accounts(),
        registry,
        HubSigner(b"s" * 32),
        client,
        hub_domain="hub.test",
        backoff=0.01,
        **kwargs,  # type: ignore[arg-type]
    )
    return notifier, storage


async def settle(notifier: PushNotifier) -> None:
    for _ in range(200):
        await asyncio.sleep(0.01)
        queues = notifier._queues.values()
        if all(not q.jobs and (q.worker is None or q.worker.done()) for q in queues):
            return


async def test_messages_for_one_user_coalesce_into_one_push() -> None:
    seen: list[httpx.Request] = []
    release = asyncio.Event()

    async def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        await release.wait()
        return httpx.Response(204)

    notifier, storage = await setup(httpx.MockTransport(handler))
    for _ in range(3):
        notifier.notify("alice@examplechat.interop.hub.test")
    notifier.notify("bob@examplechat.interop.hub.test")
    await asyncio.sleep(0.05)
    for _ in range(2):  # while the first push is in flight, more for alice queue as one
        notifier.notify("alice@examplechat.interop.hub.test")
    release.set()
    await settle(notifier)
    stats = notifier.stats["examplechat"]
    assert stats.sent == 3  # alice (3 coalesced), bob, alice again (2 coalesced)
    assert stats.coalesced == 3
    assert seen[0].url == "https://push.example.chat/interlink/v1/push"
    assert seen[0].headers["content-type"] == "application/jose"
    notifier.notify("not-an-interop-user@hub.test")  # ignored: not a third-party account
    await notifier.close()
    await storage.close()  # type: ignore[attr-defined]


async def test_queue_limit_at_the_boundary() -> None:
    release = asyncio.Event()

    async def handler(request: httpx.Request) -> httpx.Response:
        await release.wait()
        return httpx.Response(200)

    notifier, storage = await setup(httpx.MockTransport(handler), queue_max=2)
    for name in ("a", "b", "c", "d"):
        notifier.notify(f"{name}@examplechat.interop.hub.test")
        await asyncio.sleep(0.02)
    # "a" went to the worker at once; "b" and "c" fill the queue of 2; "d" is dropped.
    stats = notifier.stats["examplechat"]
    assert stats.dropped == 1
    release.set()
    await settle(notifier)
    assert stats.sent == 3
    await notifier.close()
    await storage.close()  # type: ignore[attr-defined]


async def test_retries_on_errors_but_not_on_refusals() -> None:
    answers = [503, 502, 200, 400]

    async def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(answers.pop(0))

    notifier, storage = await setup(httpx.MockTransport(handler), max_attempts=3)
    notifier.notify("a@examplechat.interop.hub.test")
    await settle(notifier)
    notifier.notify("b@examplechat.interop.hub.test")
    await settle(notifier)
    stats = notifier.stats["examplechat"]
    assert (stats.sent, stats.retried, stats.failed) == (1, 2, 1)
    assert answers == []
    await notifier.close()
    await storage.close()  # type: ignore[attr-defined]


async def test_a_push_names_the_service_the_message_waits_on() -> None:
    """Review finding: with several services (hub.domains) one provider user may be enlisted
    on two of them (the same ``sub``). A push carries ``iss`` = the hub's default domain and
    the provider's ``sub`` only, and the queue is keyed by ``sub``: a message waiting on
    msg.test is pushed as if from wa.test, and messages on both services merge into one push,
    so the provider cannot tell its user which service to connect to."""
    seen: list[httpx.Request] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(204)

    notifier, storage = await setup(httpx.MockTransport(handler))
    notifier.notify("alice@examplechat.interop.wa.test")
    notifier.notify("alice@examplechat.interop.msg.test")
    await settle(notifier)
    claims = []
    for request in seen:
        body = request.content.decode().split(".")[1]
        claims.append(json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))))
    assert sorted(c["iss"] for c in claims) == ["msg.test", "wa.test"]
    await notifier.close()
    await storage.close()  # type: ignore[attr-defined]
