"""The hub's HTTP app: XMPP over WebSocket, the operator's admin API, health. The Enlistment API
joins it with the rest of the interop control plane."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Header, Request, Response, WebSocket
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.types import Receive, Scope, Send

from interlink import __version__
from interlink.hub.hub import Hub
from interlink.interop.discovery import DiscoveryService
from interlink.interop.enlistment import EnlistmentService
from interlink.interop.moderation import Moderation
from interlink.interop.providers import ProviderRegistry
from interlink.interop.push import HubSigner
from interlink.net.admin import admin_router, check_bearer
from interlink.net.admin_token import AdminTokenGuard
from interlink.net.console import ConsoleLimits, console_router
from interlink.net.discovery_api import discovery_router
from interlink.net.enlist_api import EnlistmentFastPath, enlistment_router
from interlink.net.metrics import CONTENT_TYPE, HubMetrics
from interlink.net.problems import install_problem_handler, problem
from interlink.net.websocket import WebSocketContext, serve_websocket

WEBSOCKET_PATH = "/xmpp-websocket"
Handler = Callable[[Request, Exception], Any]


async def _validation_handler(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    details = "; ".join(
        f"{'.'.join(str(p) for p in err.get('loc', ()))}: {err.get('msg', '')}"
        for err in exc.errors()
    )
    return problem(422, "invalid-request", "the request body or parameters are invalid", details)


class HubApp(FastAPI):
    """FastAPI, with the enlistment fast path (:class:`EnlistmentFastPath`) asked first.

    The fast path answers before Starlette's middleware stack, so it is off as soon as any
    middleware is added (``add_middleware``, ``@app.middleware``): whatever a middleware does
    (record, limit, measure) then sees these requests too."""

    fast_path: EnlistmentFastPath | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        fast = self.fast_path
        if (
            fast is not None
            and not self.user_middleware
            and await fast.handle(scope, receive, send, super().__call__)
        ):
            return
        await super().__call__(scope, receive, send)


@dataclass(frozen=True, slots=True)
class OperatorDoors:
    """What the operator's doors serve: the admin API over ``registry`` (and ``moderation``:
    users, sessions, reports, enlistments), the console (with ``console`` limits; ``None``: no
    console) and ``/metrics`` (public or behind the admin token), all behind one
    :class:`AdminTokenGuard` on ``admin_token``."""

    registry: ProviderRegistry
    admin_token: str
    moderation: Moderation | None = None
    console: ConsoleLimits | None = None
    metrics: HubMetrics | None = None
    metrics_public: bool = False

    def install(self, app: FastAPI) -> None:
        """Add the doors' routes to ``app``."""
        limits = self.console or ConsoleLimits()
        guard = AdminTokenGuard(self.admin_token, limits.login_backoff)
        app.include_router(admin_router(self.registry, guard, self.moderation))
        metrics = self.metrics
        if self.console is not None and self.moderation is not None:
            app.include_router(
                console_router(
                    self.registry,
                    self.moderation,
                    guard,
                    None if metrics is None else metrics.samples,
                    limits=self.console,
                )
            )
        metrics_public = self.metrics_public

        @app.get("/metrics", response_class=Response)
        async def prometheus(
            request: Request, authorization: Annotated[str | None, Header()] = None
        ) -> Response:
            """Prometheus text format. Needs the admin bearer token unless metrics are public."""
            if metrics is None:
                return problem(404, "not-found", "metrics are not enabled", "")
            if not metrics_public:
                check_bearer(guard, request, authorization, "metrics")
            return Response(await metrics.render(), media_type=CONTENT_TYPE)


def build_http_app(
    hub: Hub,
    ws_ctx: WebSocketContext,
    enlistment: EnlistmentService,
    signer: HubSigner,
    discovery: DiscoveryService | None = None,
    *,
    operator: OperatorDoors | None,
    ready: Callable[[], Awaitable[str | None]] | None = None,
    routers: Sequence[tuple[APIRouter, dict[type[Exception], Handler]]] = (),
) -> FastAPI:
    """``ready`` returns ``None`` when the hub can serve, else why not (``/readyz``).
    ``operator``: the operator's doors, when this app serves them; ``None`` when they have a
    listener of their own (:func:`build_operator_app`).
    ``routers`` are further APIs (media), with exception handlers of their own if any: the
    domain errors (:class:`~interlink.errors.InterlinkError`) need none, the app's one handler
    answers them all as RFC 9457 problem+json."""
    app = HubApp(title="Interlink hub", version=__version__)
    app.fast_path = EnlistmentFastPath(enlistment)
    install_problem_handler(app)
    app.add_exception_handler(RequestValidationError, _validation_handler)
    if operator is not None:
        operator.install(app)
    app.include_router(enlistment_router(enlistment))
    if discovery is not None:
        app.include_router(discovery_router(discovery))
    for router, handlers in routers:
        for exc_type, handler in handlers.items():
            app.add_exception_handler(exc_type, handler)
        app.include_router(router)

    @app.websocket(WEBSOCKET_PATH)
    async def xmpp_websocket(ws: WebSocket) -> None:
        await serve_websocket(ws, ws_ctx)

    @app.get("/.well-known/interlink/jwks.json")
    async def hub_jwks() -> JSONResponse:
        """The hub's public signing keys: verify pushes with them."""
        return JSONResponse(signer.jwks())

    @app.get("/healthz")
    async def healthz() -> JSONResponse:
        """Liveness: the process answers."""
        return JSONResponse({"status": "ok", "sessions": hub.sessions})

    install_readiness(app, ready)

    return app


def build_operator_app(
    doors: OperatorDoors, ready: Callable[[], Awaitable[str | None]] | None = None
) -> FastAPI:
    """The app of the operator's own listener (``net.admin_port``): the admin API, the console,
    ``/metrics`` and ``/readyz``, and nothing a user or a provider calls."""
    app = FastAPI(title="Interlink hub (operator)", version=__version__)
    install_problem_handler(app)
    app.add_exception_handler(RequestValidationError, _validation_handler)
    doors.install(app)
    install_readiness(app, ready)
    return app


def install_readiness(app: FastAPI, ready: Callable[[], Awaitable[str | None]] | None) -> None:
    """``/readyz``: ``ready`` returns ``None`` when the hub serves (started, not shutting down,
    the database and the cluster's Redis answer), else why not."""

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        """Readiness: started, not shutting down, and the database answers."""
        reason = "not started" if ready is None else await ready()
        if reason is not None:
            return problem(503, "not-ready", "the hub is not ready", reason)
        return JSONResponse({"status": "ready"})
