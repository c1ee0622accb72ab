"""The Enlistment API, ``/v1/enlistments`` (DESIGN Flow 2): thin handlers over
:class:`~interlink.interop.enlistment.EnlistmentService`; refusals are
:class:`~interlink.interop.enlistment.EnlistmentError`, which the app's one handler turns into
RFC 9457 problem+json.

The two hot handlers return their JSON directly: the response models are declared for the
OpenAPI document only (FastAPI does not validate and re-serialize a returned ``Response``).

The same two requests have a fast path, :class:`EnlistmentFastPath`, that the hub's app runs
before FastAPI's middleware, routing and dependency solving (about half of the hub's CPU per
enlistment went there). It serves only a well-formed request: ``POST`` to the exact path, and
for the enlistment a JSON body that :class:`EnlistIn` accepts. Anything else (another method, a
wrong content type, a body that does not validate, ...) is handed to FastAPI unchanged, body
included, so every error answer is FastAPI's own, and the routes below stay the contract
(OpenAPI document, validation, problem+json)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from interlink.interop.enlistment import EnlistmentError, EnlistmentService
from interlink.net.problems import problem_response


class ChallengeOut(BaseModel):
    challenge: str = Field(
        description="base64url nonce; sign challenge + hub domain with your identity key"
    )
    expires_at: float


class EnlistIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token: str = Field(
        description="provider-signed JWT (iss, sub, aud, exp, iat, jti, cnf.jkt)", max_length=8192
    )
    identity_key: str = Field(description="base64url Ed25519 public key (32 bytes)", max_length=64)
    challenge: str = Field(max_length=128)
    signature: str = Field(
        description="base64url Ed25519 signature over challenge + hub domain", max_length=128
    )


class EnlistOut(BaseModel):
    jid: str
    created: bool
    key_changed: bool
    user_id: str | None


class UnenlistOut(BaseModel):
    jid: str
    deleted: bool


CHALLENGE_PATH = "/v1/enlistments/challenge"
ENLIST_PATH = "/v1/enlistments"


def _challenge_response(service: EnlistmentService) -> JSONResponse:
    nonce, expires = service.challenge()
    return JSONResponse({"challenge": nonce, "expires_at": expires}, status_code=201)


async def _enlist_response(service: EnlistmentService, body: EnlistIn) -> JSONResponse:
    result = await service.enlist(body.token, body.identity_key, body.challenge, body.signature)
    out = {
        "jid": result.account.jid,
        "created": result.created,
        "key_changed": result.key_changed,
        "user_id": result.account.user_id,
    }
    return JSONResponse(out, status_code=201 if result.created else 200)


def enlistment_router(service: EnlistmentService) -> APIRouter:
    router = APIRouter(prefix="/v1/enlistments", tags=["enlistment"])

    @router.post("/challenge", status_code=201, response_model=ChallengeOut)
    async def challenge() -> JSONResponse:
        return _challenge_response(service)

    @router.post(
        "",
        status_code=201,
        response_model=EnlistOut,
        responses={200: {"model": EnlistOut, "description": "re-enlisted (account existed)"}},
    )
    async def enlist(body: EnlistIn) -> JSONResponse:
        return await _enlist_response(service, body)

    @router.delete("")
    async def unenlist(authorization: Annotated[str | None, Header()] = None) -> UnenlistOut:
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise EnlistmentError(401, "token-missing", "send Authorization: Bearer <provider JWT>")
        return UnenlistOut(jid=await service.unenlist(token), deleted=True)

    return router


# The largest body the fast path buffers itself; a larger one (never valid: the fields' limits
# add up to less) goes to FastAPI as it arrives.
_FAST_BODY_LIMIT = 16 * 1024


class EnlistmentFastPath:
    """``POST /v1/enlistments/challenge`` and ``POST /v1/enlistments`` without FastAPI's
    per-request machinery (see the module docstring). ``handle`` returns False, having consumed
    nothing, when the request is not one of the two; it calls ``fallback`` (FastAPI) itself for
    an enlistment it does not serve, with the body it has read."""

    def __init__(self, service: EnlistmentService) -> None:
        self._service = service

    async def handle(self, scope: Scope, receive: Receive, send: Send, fallback: ASGIApp) -> bool:
        if scope["type"] != "http" or scope["method"] != "POST":
            return False
        path = scope["path"]
        if path == CHALLENGE_PATH:
            await _challenge_response(self._service)(scope, receive, send)
            return True
        if path != ENLIST_PATH:
            return False
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return True
            chunk = message.get("body", b"")
            chunks.append(chunk)
            size += len(chunk)
            more = message.get("more_body", False)
            if size > _FAST_BODY_LIMIT:
                break
        body = b"".join(chunks)
        parsed = self._parse(scope, body) if not more else None
        if parsed is None:
            await fallback(scope, _replay(body, more, receive), send)
            return True
        try:
            response = await _enlist_response(self._service, parsed)
        except EnlistmentError as exc:
            response = problem_response(exc)
        except Exception:
            # What Starlette's ServerErrorMiddleware does: a plain 500, then the server logs it.
            await PlainTextResponse("Internal Server Error", status_code=500)(scope, receive, send)
            raise
        await response(scope, receive, send)
        return True

    @staticmethod
    def _parse(scope: Scope, body: bytes) -> EnlistIn | None:
        content_type = None
        for name, value in scope["headers"]:
            if name == b"content-type":
                if content_type is not None:
                    return None
                content_type = value
        if content_type is None or content_type.lower() != b"application/json":
            return None
        try:
            return EnlistIn.model_validate_json(body)
        except ValidationError:
            return None


def _replay(body: bytes, more: bool, receive: Receive) -> Receive:
    """A ``receive`` that first hands out the body already read, then reads on."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": more}

    return replayed
