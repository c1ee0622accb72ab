"""Providers' signing keys: inline JWK sets, or JWK sets fetched from the provider's URL.

Fetched sets are cached (``ttl``) and refetched when a token names an unknown ``kid``, at most
once per ``min_refresh`` seconds per provider, so unknown ids cannot make the hub hammer a
provider. Fetching follows no redirects and reads at most ``max_bytes``; the URL itself was
checked when the provider was registered (https, or http on loopback when allowed).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import httpx

from interlink.interop.enlistment import EnlistmentError
from interlink.storage.providers import Provider


class ProviderKeys:
    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        clock: Callable[[], float] = time.monotonic,
        ttl: float = 3600.0,
        min_refresh: float = 60.0,
        max_bytes: int = 64 * 1024,
    ) -> None:
        self._client = client
        self._clock = clock
        self._ttl = ttl
        self._min_refresh = min_refresh
        self._max_bytes = max_bytes
        self._cache: dict[str, tuple[float, dict[str, Any]]] = {}

    async def keys(self, provider: Provider, *, refresh: bool) -> dict[str, Any]:
        if provider.jwks is not None:
            return provider.jwks
        assert provider.jwks_url is not None
        now = self._clock()
        cached = self._cache.get(provider.id)
        if cached is not None:
            fetched_at, jwks = cached
            fresh = now - fetched_at < self._ttl
            may_refresh = now - fetched_at >= self._min_refresh
            if fresh and not (refresh and may_refresh):
                return jwks
        jwks = await self._fetch(provider.jwks_url)
        self._cache[provider.id] = (now, jwks)
        return jwks

    async def _fetch(self, url: str) -> dict[str, Any]:
        try:
            async with self._client.stream("GET", url, follow_redirects=False) as response:
                if response.status_code != 200:
                    raise EnlistmentError(
                        503,
                        "provider-keys-unavailable",
                        f"JWKS URL answered {response.status_code}",
                    )
                body = b""
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > self._max_bytes:
                        raise EnlistmentError(
                            503, "provider-keys-unavailable", "the JWK set is too large"
                        )
        except httpx.HTTPError as exc:
            raise EnlistmentError(
                503, "provider-keys-unavailable", f"cannot fetch the JWK set: {type(exc).__name__}"
            ) from None
        try:
            jwks: Any = json.loads(body)
        except ValueError:
            raise EnlistmentError(
                503, "provider-keys-unavailable", "the JWK set is not JSON"
            ) from None
        if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list):
            raise EnlistmentError(503, "provider-keys-unavailable", "not a JWK set")
        return jwks
