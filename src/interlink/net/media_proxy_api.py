"""``GET /v1/media-proxy`` (DESIGN Flow 5; issue 6 §4): gatekeeper clients fetch third-party
media through the hub. A thin handler: authenticate the bearer token → check the account is a
gatekeeper account → :meth:`~interlink.media.proxy.MediaProxy.fetch` → stream.

The response never echoes an upstream header: the body is ciphertext (XEP-0454), served as
``application/octet-stream`` with ``nosniff`` and ``no-store``. Refusals before the body starts are
RFC 9457 problem+json (the :class:`~interlink.media.errors.MediaProxyRefusal` raised, through the
app's one handler); a failure while streaming (size cap, time budget, broken upstream) aborts the
response, so the client sees an incomplete download, never a complete-looking truncated one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Header, Query
from fastapi.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from interlink.media.errors import MediaProxyRefusal
from interlink.media.proxy import MAX_URL_LENGTH, MediaProxy, MediaStream
from interlink.media.tokens import MediaTokens
from interlink.xmpp.jid import JID, InvalidJID

_RESPONSE_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'none'; sandbox",
    "Referrer-Policy": "no-referrer",
}


class _ProxiedResponse(StreamingResponse):
    """Streams a :class:`MediaStream` and closes the upstream however the response ends
    (completed, aborted, or the client going away)."""

    def __init__(self, stream: MediaStream) -> None:
        headers = dict(_RESPONSE_HEADERS)
        if stream.content_length is not None:
            headers["Content-Length"] = str(stream.content_length)
        super().__init__(stream.chunks(), headers=headers, media_type="application/octet-stream")
        self._stream = stream

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self._stream.aclose()


def media_proxy_router(
    proxy: MediaProxy,
    tokens: MediaTokens,
    is_home: Callable[[JID], bool],
    clock: Callable[[], float],
) -> APIRouter:
    """The router; ``is_home`` tells a gatekeeper service's users (the proxy is theirs);
    ``clock`` is wall-clock seconds (token expiry), e.g. ``time.time``."""
    router = APIRouter(prefix="/v1/media-proxy", tags=["media"])

    @router.get(
        "",
        response_class=StreamingResponse,
        response_model=None,
        responses={
            200: {"content": {"application/octet-stream": {}}, "description": "the media bytes"},
            400: {"description": "bad URL"},
            401: {"description": "missing, forged or expired token"},
            403: {"description": "provider, host, address or redirect refused"},
            404: {"description": "the media host has no such file"},
            413: {"description": "larger than the size cap"},
            502: {"description": "the media host failed"},
            504: {"description": "the media host was too slow"},
        },
    )
    async def media_proxy(
        url: Annotated[str | None, Query(description="the https URL of the media")] = None,
        provider: Annotated[str | None, Query(description="the sender's provider id")] = None,
        authorization: Annotated[str | None, Header()] = None,
    ) -> Response:
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise MediaProxyRefusal(
                401, "media-token-missing", "send Authorization: Bearer <media token>"
            )
        jid = tokens.verify(token.strip(), clock())
        try:
            account = JID.parse(jid)
        except InvalidJID:
            account = None
        if account is None or account.local is None or not is_home(account):
            # Third-party users fetch from their own side.
            raise MediaProxyRefusal(
                403, "not-a-gatekeeper-account", "the media proxy is for hub accounts"
            )
        if not url or not provider:
            raise MediaProxyRefusal(400, "bad-url", "give the query parameters url and provider")
        if len(url) > MAX_URL_LENGTH or len(provider) > 63:
            raise MediaProxyRefusal(400, "bad-url", "the url or provider parameter is too long")
        return _ProxiedResponse(await proxy.fetch(url, provider, account.domain))

    return router
