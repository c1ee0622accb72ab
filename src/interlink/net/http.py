"""The hub's HTTP app: XMPP over WebSocket now; the Enlistment and admin APIs join it later."""

from __future__ import annotations

from fastapi import FastAPI, WebSocket
from fastapi.responses import JSONResponse

from interlink import __version__
from interlink.hub.hub import Hub
from interlink.net.websocket import WebSocketContext, serve_websocket

WEBSOCKET_PATH = "/xmpp-websocket"


def build_http_app(hub: Hub, ws_ctx: WebSocketContext) -> FastAPI:
    app = FastAPI(title="Interlink hub", version=__version__)

    @app.websocket(WEBSOCKET_PATH)
    async def xmpp_websocket(ws: WebSocket) -> None:
        await serve_websocket(ws, ws_ctx)

    @app.get("/healthz")
    async def healthz() -> JSONResponse:
        return JSONResponse({"status": "ok", "sessions": hub.sessions})

    return app
