"""The operator's HTTP API, ``/admin/v1``: provider onboarding (DESIGN Flow 1); users (find by
phone number, disable, remove, sessions), abuse reports (read, resolve, forward), enlistments
(list, revoke) and sessions (:class:`~interlink.interop.moderation.Moderation`).

Thin handlers: authenticate (a bearer token, :class:`~interlink.net.admin_token.AdminTokenGuard`:
compared in constant time, wrong ones throttled per source), parse with pydantic,
call the registry, serialize. Errors are raised (:class:`ProviderError`, :class:`AdminAuthError`)
and become RFC 9457 problem+json in the app's one handler (:mod:`interlink.net.problems`).
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from interlink.interop.moderation import Moderation, ReportStatus, enlistment_view
from interlink.interop.providers import ProviderError, ProviderRegistry
from interlink.net.admin_token import (
    AdminThrottled,
    AdminTokenGuard,
    WrongAdminToken,
    bearer,
)
from interlink.storage.providers import Provider, ProviderMode, ProviderStatus


def _mode(text: str) -> ProviderMode:
    try:
        return ProviderMode(text)
    except ValueError:
        raise ProviderError(f"mode must be one of {[str(m) for m in ProviderMode]}") from None


class ProviderIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(description="DNS label naming the provider, e.g. 'examplechat'")
    display_name: str
    callback_url: str = Field(description="base URL of the provider's interlink endpoints")
    jwks: dict[str, Any] | None = Field(None, description="inline JWK set (public keys)")
    jwks_url: str | None = Field(None, description="or the URL of the provider's JWK set")
    media_hosts: list[str] = []
    features: list[str] = ["messaging"]
    rate_tier: str = "standard"
    services: list[str] = Field(
        [], description="the gatekeeper services (domains) it joins; empty: the default one"
    )
    mode: str = Field(
        "plug-and-play", description="plug-and-play, federated (its own XMPP server, s2s) or both"
    )
    server_domains: list[str] = Field([], description="the XMPP domains of its servers (s2s)")
    s2s_fingerprints: list[str] = Field(
        [], description="pinned SHA-256 fingerprints of its server certificates"
    )
    s2s_ca: str | None = Field(
        None, description="PEM of the CA that issues its server certificates"
    )
    s2s_address: str | None = Field(None, description="host:port that replaces the SRV lookup")


class ProviderPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    display_name: str | None = None
    callback_url: str | None = None
    jwks: dict[str, Any] | None = None
    jwks_url: str | None = None
    media_hosts: list[str] | None = None
    features: list[str] | None = None
    rate_tier: str | None = None
    services: list[str] | None = None
    mode: str | None = None
    server_domains: list[str] | None = None
    s2s_fingerprints: list[str] | None = None
    s2s_ca: str | None = None
    s2s_address: str | None = None


class ResolutionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    resolution: str = Field(description="how the report was resolved (kept with it)")


Limit = Annotated[int, Query(ge=1, le=1000, description="at most this many")]
ReportId = Annotated[int, Path(ge=1, le=2**63 - 1, description="the report's number")]


log = logging.getLogger("interlink.admin")


def check_bearer(
    guard: AdminTokenGuard, request: Request, authorization: str | None, door: str
) -> None:
    """The admin bearer token of a request, checked by ``guard``; refusals logged at WARNING with
    the source (and counted failures), so a guessing source shows in the log."""
    host = request.client.host if request.client is not None else None
    try:
        guard.check(host, bearer(authorization))
    except AdminThrottled as exc:
        log.warning(
            "admin token throttled",
            extra={"door": door, "source": guard.source(host), "retry_after": exc.retry_after},
        )
        raise
    except WrongAdminToken:
        log.warning(
            "admin token refused",
            extra={"door": door, "source": guard.source(host), "failures": guard.failures(host)},
        )
        raise


def admin_router(
    registry: ProviderRegistry, guard: AdminTokenGuard, moderation: Moderation | None = None
) -> APIRouter:
    def authenticate(
        request: Request, authorization: Annotated[str | None, Header()] = None
    ) -> None:
        check_bearer(guard, request, authorization, "admin API")

    # Every route requires the token; the audit log names this API as the actor.
    router = APIRouter(prefix="/admin/v1", tags=["admin"], dependencies=[Depends(authenticate)])
    actor = "admin-api"

    @router.get("/providers")
    async def list_providers() -> list[dict[str, object]]:
        return [p.public_view() for p in await registry.all()]

    @router.post("/providers", status_code=201)
    async def add_provider(body: ProviderIn) -> dict[str, object]:
        provider = Provider(
            id=body.id,
            display_name=body.display_name,
            callback_url=body.callback_url,
            jwks=body.jwks,
            jwks_url=body.jwks_url,
            media_hosts=tuple(body.media_hosts),
            features=tuple(body.features),
            rate_tier=body.rate_tier,
            services=tuple(body.services),
            mode=_mode(body.mode),
            server_domains=tuple(body.server_domains),
            s2s_fingerprints=tuple(body.s2s_fingerprints),
            s2s_ca=body.s2s_ca,
            s2s_address=body.s2s_address,
        )
        return (await registry.add(provider, actor)).public_view()

    @router.get("/providers/{provider_id}")
    async def show_provider(provider_id: str) -> dict[str, object]:
        return (await registry.get(provider_id)).public_view()

    @router.patch("/providers/{provider_id}")
    async def update_provider(provider_id: str, body: ProviderPatch) -> dict[str, object]:
        changes = body.model_dump(exclude_unset=True)
        return (await registry.update(provider_id, changes, actor)).public_view()

    @router.post("/providers/{provider_id}/approve")
    async def approve(provider_id: str) -> dict[str, object]:
        return (
            await registry.set_status(provider_id, ProviderStatus.APPROVED, actor)
        ).public_view()

    @router.post("/providers/{provider_id}/suspend")
    async def suspend(provider_id: str) -> dict[str, object]:
        updated = await registry.set_status(provider_id, ProviderStatus.SUSPENDED, actor)
        return updated.public_view()

    @router.get("/providers/{provider_id}/audit")
    async def audit(provider_id: str) -> list[dict[str, object]]:
        return [
            {"at": e.at, "actor": e.actor, "action": e.action, "details": e.details}
            for e in await registry.audit(provider_id)
        ]

    if moderation is not None:
        _moderation_routes(router, moderation, actor)
    return router


def _moderation_routes(router: APIRouter, moderation: Moderation, actor: str) -> None:
    @router.get("/users")
    async def list_users(
        phone: Annotated[
            str | None, Query(description="find the accounts holding this E.164 number")
        ] = None,
        limit: Limit = 100,
    ) -> list[dict[str, object]]:
        """Accounts: those holding ``phone``, or the first ``limit`` in JID order."""
        if phone is not None:
            return [u.public_view() for u in await moderation.find_by_phone(phone)]
        return [(await moderation.user(j)).public_view() for j in await moderation.users(limit)]

    @router.get("/users/{jid}")
    async def show_user(jid: str) -> dict[str, object]:
        return (await moderation.user(jid)).public_view()

    @router.delete("/users/{jid}", status_code=204)
    async def delete_user(jid: str) -> Response:
        """Remove the account and everything stored for it; its sessions end."""
        await moderation.delete(jid)
        return Response(status_code=204)

    @router.post("/users/{jid}/disable")
    async def disable_user(jid: str) -> dict[str, object]:
        """The account may no longer log in; its sessions end at once."""
        return (await moderation.set_disabled(jid, True)).public_view()

    @router.post("/users/{jid}/enable")
    async def enable_user(jid: str) -> dict[str, object]:
        return (await moderation.set_disabled(jid, False)).public_view()

    @router.get("/users/{jid}/sessions")
    async def user_sessions(jid: str) -> list[str]:
        return await moderation.sessions(jid)

    @router.delete("/users/{jid}/sessions")
    async def end_user_sessions(jid: str) -> dict[str, object]:
        """End the account's sessions (it may log in again)."""
        return {"ended": await moderation.end_sessions(jid)}

    @router.get("/sessions")
    async def list_sessions(limit: Limit = 100) -> dict[str, object]:
        sessions = moderation.all_sessions(limit)
        return {"sessions": sessions}

    @router.get("/reports")
    async def list_reports(
        status: ReportStatus = ReportStatus.OPEN, limit: Limit = 100
    ) -> list[dict[str, object]]:
        """Abuse reports, newest first (attached messages counted, not shown)."""
        return [r.public_view() for r in await moderation.reports(status, limit)]

    @router.get("/reports/{report_id}")
    async def show_report(report_id: ReportId) -> dict[str, object]:
        """A report with the messages the reporter attached."""
        return (await moderation.report(report_id)).public_view(full=True)

    @router.post("/reports/{report_id}/resolve")
    async def resolve_report(report_id: ReportId, body: ResolutionIn) -> dict[str, object]:
        return (await moderation.resolve(report_id, body.resolution, actor)).public_view()

    @router.post("/reports/{report_id}/forward", status_code=202)
    async def forward_report(report_id: ReportId) -> dict[str, object]:
        """Send the report (again) to the reported user's provider, in the background."""
        return (await moderation.forward(report_id)).public_view()

    @router.get("/enlistments")
    async def list_enlistments(
        provider: Annotated[str | None, Query(description="only this provider's")] = None,
        limit: Limit = 100,
    ) -> list[dict[str, object]]:
        return [enlistment_view(a) for a in await moderation.enlistments(provider, limit)]

    @router.delete("/enlistments/{jid}", status_code=204)
    async def revoke_enlistment(jid: str) -> Response:
        """Remove the enlisted account; its sessions end (the user may enlist again)."""
        await moderation.revoke(jid)
        return Response(status_code=204)
