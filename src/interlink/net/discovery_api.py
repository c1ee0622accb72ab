"""``POST /v1/discovery`` (DESIGN Flow 6): a phone number in, an interop-reachable JID out; thin
handler over :class:`~interlink.interop.discovery.DiscoveryService`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header
from pydantic import BaseModel, ConfigDict, Field

from interlink.interop.discovery import DiscoveryError, DiscoveryService


class DiscoveryIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    phone: str = Field(description="E.164 phone number, e.g. +4915112345678", max_length=32)


class DiscoveryOut(BaseModel):
    jid: str = Field(description="the address to write to")


NOT_FOUND = "no account can be reached at this number"


def discovery_router(service: DiscoveryService) -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["discovery"])

    @router.post(
        "/discovery",
        responses={404: {"description": "not found, not opted in or not discoverable"}},
    )
    async def discover(
        body: DiscoveryIn, authorization: Annotated[str | None, Header()] = None
    ) -> DiscoveryOut:
        """Authenticate with ``Authorization: Bearer <fresh provider JWT>`` (as for a login)."""
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise DiscoveryError(401, "token-missing", "send Authorization: Bearer <provider JWT>")
        jid = await service.lookup(token, body.phone)
        if jid is None:
            raise DiscoveryError(404, "not-found", NOT_FOUND)
        return DiscoveryOut(jid=jid)

    return router
