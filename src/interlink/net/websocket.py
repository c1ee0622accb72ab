"""XMPP over WebSocket (RFC 7395) on the hub's HTTP port.

The endpoint insists on the ``xmpp`` subprotocol (RFC 7395 §3.1). Each frame received must hold one
complete element; each frame sent holds one. Outgoing frames go through a queue drained by one
writer task, so a slow reader never blocks the routing of other sessions, and the queue is
bounded like a TCP write buffer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

from starlette.websockets import WebSocket, WebSocketDisconnect

from interlink.net.c2s import C2SContext
from interlink.net.driver import StreamDriver
from interlink.xmpp.framing import Framing
from interlink.xmpp.stream import ServerStream

log = logging.getLogger("interlink.websocket")
SUBPROTOCOL = "xmpp"


@dataclass(frozen=True, slots=True)
class WebSocketContext:
    c2s: C2SContext
    secure: bool  # the HTTP port serves TLS


class WsLink:
    def __init__(self, ws: WebSocket, high_water: int, low_water: int) -> None:
        self.ws = ws
        self.driver: StreamDriver | None = None
        self._queue: asyncio.Queue[str | None] = asyncio.Queue()
        self._buffered = 0
        self._high = high_water
        self._low = low_water
        self._paused = False
        self._closing = False
        self.writer = asyncio.get_running_loop().create_task(self._write_loop())

    def write(self, data: bytes) -> None:
        raise RuntimeError("WebSocket streams send frames, not bytes")

    def send_frames(self, frames: list[str]) -> None:
        if self._closing:
            return
        for frame in frames:
            self._buffered += len(frame)
            self._queue.put_nowait(frame)
        if self._buffered > self._high and not self._paused and self.driver is not None:
            self._paused = True
            self.driver.pause_writing()

    def buffered(self) -> int:
        return self._buffered

    def close(self) -> None:
        if not self._closing:
            self._closing = True
            self._queue.put_nowait(None)

    async def start_tls(self) -> None:
        raise ConnectionError("STARTTLS does not exist on WebSocket streams")

    async def _write_loop(self) -> None:
        try:
            while True:
                frame = await self._queue.get()
                if frame is None:
                    break
                await self.ws.send_text(frame)
                self._buffered -= len(frame)
                if self._paused and self._buffered <= self._low and self.driver is not None:
                    self._paused = False
                    self.driver.resume_writing()
        except (WebSocketDisconnect, RuntimeError, OSError):
            pass
        finally:
            with contextlib.suppress(RuntimeError, OSError):
                await self.ws.close()


async def serve_websocket(ws: WebSocket, ctx: WebSocketContext) -> None:
    if SUBPROTOCOL not in ws.scope.get("subprotocols", []):
        await ws.close(code=1002, reason="the 'xmpp' subprotocol is required (RFC 7395)")
        return
    await ws.accept(subprotocol=SUBPROTOCOL)
    c2s = ctx.c2s
    loop = asyncio.get_running_loop()
    stream = ServerStream(
        c2s.stream_config, now=loop.time(), framing=Framing.WEBSOCKET, secure=ctx.secure
    )
    link = WsLink(ws, c2s.limits.low_water_bytes * 4, c2s.limits.low_water_bytes)
    client = ws.client
    driver = StreamDriver(
        c2s.hub,
        stream,
        link,
        c2s.gate,
        c2s.limits,
        peer=f"ws:{client.host}:{client.port}" if client else "ws:?",
        source=c2s.gate.sources.source(client.host if client else None),
    )
    link.driver = driver
    try:
        while not stream.closed:
            message = await ws.receive()
            if message["type"] == "websocket.disconnect":
                break
            text = message.get("text")
            data = text.encode() if text is not None else message.get("bytes") or b""
            pending = driver.feed(data)
            if pending is not None:
                await pending
    except WebSocketDisconnect:
        pass
    finally:
        driver.connection_lost()
        link.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(link.writer, timeout=5)
