"""The provider kit's HTTP app.

- ``GET /.well-known/jwks.json``: the kit's public signing key (register it with the hub).
- ``POST /v1/token``: a user's app trades username, password and the thumbprint of its device's
  identity key for a short-lived token (enlistment and OAUTHBEARER login).
- ``POST /interlink/v1/introspect``: the hub asks whether an account is active.
- ``POST /interlink/v1/push``: the hub's push; verified and recorded.
- ``POST /interlink/v1/report``: an abuse report about one of the kit's users; verified and
  recorded (``interlink provider reports`` lists them).
- ``POST /v1/pushes``: a user's app reads the pushes recorded for it (username + password).
- ``POST /v1/media/slots`` (when the kit hosts media): a user's app asks for an upload slot
  (username, password, filename, size, content type) and gets the PUT URL, the headers to send
  with it and the GET URL to share, with the semantics of the hub's XEP-0363 slots (per-file
  limit, content-type policy, quota and open slots per user, expiry); ``PUT`` and
  ``GET|HEAD /media/{id}/{filename}`` are :func:`interlink.net.media_api.media_router`.

Requests from the hub are compact JWS verified with the hub's published keys
(``{hub_url}/.well-known/interlink/jwks.json``, cached, refetched on an unknown key id).
Refusals are raised (:class:`KitRefusal`, the media store's errors) and answered as RFC 9457
problem+json by the hub's own handler (:func:`interlink.net.problems.install_problem_handler`).
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import secrets
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet, OKPKey
from pydantic import BaseModel, ConfigDict, Field

from interlink.errors import HttpProblem
from interlink.media import MediaStore, slot_urls
from interlink.net.media_api import media_router
from interlink.net.problems import install_problem_handler
from interlink.provider.store import KitStore

TOKEN_LIFETIME = 300
log = logging.getLogger("interlink.provider")


@dataclass(frozen=True, slots=True)
class KitConfig:
    provider_id: str
    hub_domain: str
    hub_url: str  # https base URL of the hub (for its JWK set)
    public_url: str = ""  # base URL of the kit's own HTTP listener, as users reach it (media URLs)


class TokenIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str = Field(max_length=255)
    password: str = Field(max_length=1024)
    thumbprint: str = Field(
        description="RFC 7638 thumbprint of the device's identity key", max_length=64
    )


class PushesIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str = Field(max_length=255)
    password: str = Field(max_length=1024)


class MediaSlotIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str = Field(max_length=255)
    password: str = Field(max_length=1024)
    filename: str = Field(max_length=1024)
    size: int = Field(description="exact size of the (encrypted) file in bytes")
    content_type: str | None = Field(
        default=None, description="defaults to application/octet-stream", max_length=255
    )


class MediaSlotOut(BaseModel):
    put_url: str
    put_headers: dict[str, str] = Field(description="send these headers with the PUT")
    get_url: str = Field(description="where recipients download the file")


class KitRefusal(HttpProblem):
    """The kit refused a request: ``status`` and ``kind`` say why (the title is the kind)."""

    def __init__(self, status: int, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.kind = kind
        self.title = kind


class HubKeys:
    def __init__(self, client: httpx.AsyncClient, hub_url: str, clock: Callable[[], float]) -> None:
        self._client = client
        self._url = hub_url.rstrip("/") + "/.well-known/interlink/jwks.json"
        self._clock = clock
        self._keys: KeySet | None = None
        self._fetched = 0.0

    async def keys(self, kid: str) -> KeySet:
        now = self._clock()
        known = self._keys is not None and any(k.kid == kid for k in self._keys.keys)
        if not known and (self._keys is None or now - self._fetched > 60):
            response = await self._client.get(self._url)
            response.raise_for_status()
            self._keys = KeySet.import_key_set(response.json())
            self._fetched = now
        assert self._keys is not None
        return self._keys


def build_kit_app(
    config: KitConfig,
    store: KitStore,
    signing_seed: bytes,
    hub_client: httpx.AsyncClient,
    clock: Callable[[], float] = time.time,
    *,
    media: MediaStore | None = None,
) -> FastAPI:
    """``media``, when given, makes the kit its users' media host (slots, PUT, GET) at
    ``config.public_url``."""
    if media is not None and not config.public_url:
        raise ValueError("a media host needs the kit's public_url")
    app = FastAPI(title="Interlink provider kit")
    install_problem_handler(app)
    private = Ed25519PrivateKey.from_private_bytes(signing_seed)
    key = OKPKey.import_key(private)
    kid = key.thumbprint()
    signing_key = OKPKey.import_key(key.as_dict(private=True), parameters={"kid": kid})
    hub_keys = HubKeys(hub_client, config.hub_url, clock)

    async def verified_hub_claims(request: Request) -> dict[str, Any]:
        """The claims of the hub's JWS in the body; raises :class:`KitRefusal` (401) if it is not
        one, is not for this kit, or is stale."""
        body = (await request.body()).decode(errors="replace")
        try:
            head = body.split(".", 1)[0]
            header: Any = json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))
            keys = await hub_keys.keys(str(header.get("kid", "")))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                signed = jws.deserialize_compact(body, keys, algorithms=["Ed25519"])
            claims: dict[str, Any] = json.loads(signed.payload)
        except (JoseError, ValueError, AttributeError, httpx.HTTPError):
            raise KitRefusal(401, "bad-signature", "not a JWS signed by the hub") from None
        if claims.get("iss") != config.hub_domain or claims.get("aud") != config.provider_id:
            raise KitRefusal(401, "wrong-audience", "not addressed to this provider by the hub")
        iat = claims.get("iat")
        if not isinstance(iat, int | float) or abs(clock() - iat) > 300:
            raise KitRefusal(401, "stale", "iat too far from now")
        return claims

    @app.get("/.well-known/jwks.json")
    async def jwks() -> dict[str, Any]:
        public = signing_key.as_dict(private=False)
        public.update({"use": "sig", "alg": "Ed25519"})
        return {"keys": [public]}

    @app.post("/v1/token")
    async def token(body: TokenIn) -> Response:
        user = await store.check_password(body.username, body.password)
        if user is None or not user.active:
            raise KitRefusal(401, "unauthorized", "unknown user, wrong password or inactive")
        now = int(clock())
        claims = {
            "iss": config.provider_id,
            "sub": user.subject,
            "aud": config.hub_domain,
            "iat": now,
            "exp": now + TOKEN_LIFETIME,
            "jti": secrets.token_urlsafe(16),
            "interlink_uid": user.username,
            "cnf": {"jkt": body.thumbprint},
        }
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            text = jwt.encode(
                {"alg": "Ed25519", "kid": kid}, claims, signing_key, algorithms=["Ed25519"]
            )
        log.info("token issued", extra={"user": user.username, "expires_in": TOKEN_LIFETIME})
        return JSONResponse({"token": text, "expires_in": TOKEN_LIFETIME})

    @app.post("/interlink/v1/introspect")
    async def introspect(request: Request) -> Response:
        claims = await verified_hub_claims(request)
        user = await store.by_subject(str(claims.get("sub")))
        active = bool(user and user.active)
        log.info(
            "introspection",
            extra={"user": None if user is None else user.username, "active": active},
        )
        return JSONResponse({"active": active})

    @app.post("/interlink/v1/push")
    async def push(request: Request) -> Response:
        claims = await verified_hub_claims(request)
        await store.record_push(str(claims.get("sub")), claims, clock())
        user = await store.by_subject(str(claims.get("sub")))
        log.info(
            "push received",
            extra={
                "user": None if user is None else user.username,
                "count": claims.get("count"),
                "service": claims.get("iss"),
            },
        )
        return Response(status_code=204)

    @app.post("/interlink/v1/report")
    async def report(request: Request) -> Response:
        claims = await verified_hub_claims(request)
        if not isinstance(claims.get("report_id"), int):
            raise KitRefusal(400, "bad-report", "report_id missing")
        await store.record_report(claims, clock())
        log.info(
            "report received",
            extra={"report": claims["report_id"], "reason": claims.get("reason")},
        )
        return Response(status_code=204)

    @app.post("/v1/pushes")
    async def pushes(body: PushesIn) -> Response:
        user = await store.check_password(body.username, body.password)
        if user is None:
            raise KitRefusal(401, "unauthorized", "unknown user or wrong password")
        return JSONResponse({"pushes": await store.pushes(user.subject)})

    if media is not None:
        app.include_router(media_router(media))

        @app.middleware("http")
        async def log_media(request: Request, call_next: Any) -> Any:
            """Who fetched or stored media: for a gatekeeper user's download through the hub's
            proxy, the peer is the hub, never the user. The path is not logged: its file id is
            the capability to fetch the file (or to upload it) and its name may say what the file
            is; ``file``, a short hash of that id, tells one file's requests from another's."""
            response = await call_next(request)
            if request.url.path.startswith("/media/"):
                peer = request.client.host if request.client is not None else None
                log.info(
                    "media request",
                    extra={
                        "method": request.method,
                        "file": media_log_id(request.url.path),
                        "status": response.status_code,
                        "peer": peer,
                        "user_agent": request.headers.get("user-agent", ""),
                    },
                )
            return response

        @app.post("/v1/media/slots", status_code=201)
        async def media_slot(body: MediaSlotIn) -> Response:
            user = await store.check_password(body.username, body.password)
            if user is None or not user.active:
                raise KitRefusal(401, "unauthorized", "unknown user, wrong password or inactive")
            # The subject, not the username: the quota follows the account.
            slot = await media.request_slot(
                user.subject, body.filename, body.size, body.content_type
            )
            urls = slot_urls(config.public_url, slot)
            log.info("media slot issued", extra={"user": user.username, "size": body.size})
            out = MediaSlotOut(
                put_url=urls.put_url, put_headers=urls.put_headers, get_url=urls.get_url
            )
            return JSONResponse(out.model_dump(), status_code=201)

    return app


def media_log_id(path: str) -> str:
    """What the kit's log says of a ``/media/<slot or file id>/<filename>`` path: 12 hex digits
    of the SHA-256 of the id (not reversible: the id is a random capability)."""
    file_id = path.removeprefix("/media/").partition("/")[0]
    return hashlib.sha256(file_id.encode()).hexdigest()[:12]
