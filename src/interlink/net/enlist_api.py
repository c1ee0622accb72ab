"""The Enlistment API, ``/v1/enlistments`` (DESIGN Flow 2): thin handlers over
:class:`~interlink.interop.enlistment.EnlistmentService`; errors are RFC 9457 problem+json.

The two hot handlers return their JSON directly: the response models are declared for the
OpenAPI document only (FastAPI does not validate and re-serialize a returned ``Response``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from interlink.interop.enlistment import EnlistmentError, EnlistmentService
from interlink.net.problems import problem


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


def enlistment_router(service: EnlistmentService) -> APIRouter:
    router = APIRouter(prefix="/v1/enlistments", tags=["enlistment"])

    @router.post("/challenge", status_code=201, response_model=ChallengeOut)
    async def challenge() -> JSONResponse:
        nonce, expires = service.challenge()
        return JSONResponse({"challenge": nonce, "expires_at": expires}, status_code=201)

    @router.post(
        "",
        status_code=201,
        response_model=EnlistOut,
        responses={200: {"model": EnlistOut, "description": "re-enlisted (account existed)"}},
    )
    async def enlist(body: EnlistIn) -> JSONResponse:
        result = await service.enlist(body.token, body.identity_key, body.challenge, body.signature)
        out = {
            "jid": result.account.jid,
            "created": result.created,
            "key_changed": result.key_changed,
            "user_id": result.account.user_id,
        }
        return JSONResponse(out, status_code=201 if result.created else 200)

    @router.delete("")
    async def unenlist(authorization: Annotated[str | None, Header()] = None) -> UnenlistOut:
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise EnlistmentError(401, "token-missing", "send Authorization: Bearer <provider JWT>")
        return UnenlistOut(jid=await service.unenlist(token), deleted=True)

    return router


async def enlistment_error_handler(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, EnlistmentError)
    return problem(exc.status, exc.kind, "enlistment refused", exc.detail)
