"""Asking a provider whether an account is still active at login (issue 4 §3).

For providers with the ``introspection`` feature, every OAUTHBEARER login is followed by
``POST {callback}/interlink/v1/introspect``: a JWS signed by the hub (like pushes) whose claims
name the provider's own subject; the provider answers ``{"active": true|false}``. An inactive
account is refused; an endpoint that is down, slow or answers nonsense makes the login fail with
a temporary error, and only that login waits (other connections are unaffected).
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable

import httpx

from interlink.errors import AuthenticationRefused
from interlink.interop.push import HubSigner
from interlink.storage.providers import Provider

INTROSPECT_PATH = "/interlink/v1/introspect"


class Introspector:
    def __init__(
        self,
        signer: HubSigner,
        client: httpx.AsyncClient,
        *,
        hub_domain: str,
        timeout: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._signer = signer
        self._client = client
        self._domain = hub_domain
        self._timeout = timeout
        self._clock = clock

    async def check(self, provider: Provider, subject: str, service: str | None = None) -> None:
        """Raise :class:`AuthenticationRefused` unless the provider says the account is active
        (on ``service``, the gatekeeper service the login is for: the request's ``iss``)."""
        if "introspection" not in provider.features:
            return
        body = self._signer.sign(
            {
                "iss": service or self._domain,
                "aud": provider.id,
                "sub": subject,
                "jti": secrets.token_urlsafe(12),
                "iat": int(self._clock()),
            }
        )
        try:
            response = await self._client.post(
                provider.callback_url + INTROSPECT_PATH,
                content=body,
                headers={"Content-Type": "application/jose"},
                timeout=self._timeout,
                follow_redirects=False,
            )
        except httpx.HTTPError:
            raise AuthenticationRefused(
                "the provider could not be asked whether the account is active", temporary=True
            ) from None
        if response.status_code != 200:
            raise AuthenticationRefused(
                f"the provider's introspection answered {response.status_code}", temporary=True
            )
        try:
            active = json.loads(response.content).get("active")
        except (ValueError, AttributeError):
            active = None
        if not isinstance(active, bool):
            raise AuthenticationRefused(
                "the provider's introspection answer is invalid", temporary=True
            )
        if not active:
            raise AuthenticationRefused("the provider reports this account as inactive")
