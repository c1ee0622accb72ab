"""Client-to-server XMPP over TCP: STARTTLS (RFC 6120 §5) and direct TLS (XEP-0368) listeners."""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from dataclasses import dataclass
from typing import Protocol, cast

from interlink.hub.hub import Hub
from interlink.net.accept import HandshakeGate, TlsListener
from interlink.net.driver import ConnectionGate, DriverLimits, Pending, StreamDriver
from interlink.net.proxied import ProxiedClient, ProxyRegistry
from interlink.xmpp.stream import ServerStream, StreamConfig

log = logging.getLogger("interlink.c2s")


@dataclass(frozen=True, slots=True)
class C2SContext:
    hub: Hub
    stream_config: StreamConfig
    tls: ssl.SSLContext | None
    gate: ConnectionGate
    limits: DriverLimits
    tls_handshake_timeout: float = 10.0
    tls_shutdown_timeout: float = 2.0
    linger_timeout: float = 2.0  # after a plain-TCP stream ends, input is drained this long


class C2SProtocol(asyncio.Protocol):
    """One TCP connection. ``direct_tls`` means the socket is TLS from the first byte;
    ``origin``, the client a registered provider proxy relays (its address then stands for the
    peer's in every per-source budget and in login throttling)."""

    def __init__(
        self, ctx: C2SContext, *, direct_tls: bool, origin: ProxiedClient | None = None
    ) -> None:
        self.ctx = ctx
        self.direct_tls = direct_tls
        self.origin = origin
        self.transport: asyncio.Transport | None = None
        self.driver: StreamDriver | None = None
        self._busy = False
        self._backlog: list[bytes] = []
        self._lingering = False
        self._linger: asyncio.TimerHandle | None = None

    # -- Link ---------------------------------------------------------------------------------
    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def send_frames(self, frames: list[str]) -> None:
        self.write("".join(frames).encode())

    def buffered(self) -> int:
        return self.transport.get_write_buffer_size() if self.transport is not None else 0

    def close(self) -> None:
        transport = self.transport
        if transport is None or transport.is_closing() or self._linger is not None:
            return
        if not transport.can_write_eof():  # TLS: close() sends close_notify and reads on
            transport.close()
            return
        # A lingering close: half-close so that the peer gets our last bytes (a stream error),
        # and read and discard what it still sends for a moment. Closing a socket with unread
        # input makes the kernel reset the connection, and the reset can discard those last
        # bytes at the peer before it reads them.
        transport.write_eof()
        self._lingering = True
        transport.resume_reading()
        self._linger = asyncio.get_running_loop().call_later(
            self.ctx.linger_timeout, transport.close
        )

    async def start_tls(self) -> None:
        assert self.transport is not None
        assert self.ctx.tls is not None
        loop = asyncio.get_running_loop()
        new = await loop.start_tls(
            self.transport,
            self,
            self.ctx.tls,
            server_side=True,
            ssl_handshake_timeout=self.ctx.tls_handshake_timeout,
            ssl_shutdown_timeout=self.ctx.tls_shutdown_timeout,
        )
        if new is None:
            raise ConnectionError("connection closed during the TLS handshake")
        self.transport = new

    # -- asyncio.Protocol ---------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.transport.set_write_buffer_limits(
            high=self.ctx.limits.low_water_bytes * 4, low=self.ctx.limits.low_water_bytes
        )
        peer = transport.get_extra_info("peername")
        if self.origin is not None:
            peer = (self.origin.address, self.origin.port)
        stream = ServerStream(
            self.ctx.stream_config,
            now=asyncio.get_running_loop().time(),
            secure=self.direct_tls,
        )
        self.driver = StreamDriver(
            self.ctx.hub,
            stream,
            self,
            self.ctx.gate,
            self.ctx.limits,
            peer=f"{peer[0]}:{peer[1]}" if peer else "?",
            source=self.ctx.gate.sources.source(peer[0] if peer else None),
            relayed_by=self.origin.provider if self.origin is not None else None,
        )

    def data_received(self, data: bytes) -> None:
        if self._lingering:
            return  # the stream is over: what the peer still sends is read only to be dropped
        if self._busy:
            self._backlog.append(data)  # arrived before pause_reading took effect
            return
        driver = self.driver
        assert driver is not None
        pending = driver.feed(data)
        if pending is not None:
            self._wait(pending)

    def _wait(self, pending: Pending) -> None:
        self._busy = True
        if self.transport is not None:
            self.transport.pause_reading()
        assert self.driver is not None
        self.driver.hub.ctx.spawn(self._resume_after(pending), name="c2s-wait")

    async def _resume_after(self, pending: Pending) -> None:
        await pending
        driver = self.driver
        assert driver is not None
        while self._backlog and not driver.stream.closed:
            nxt = driver.feed(self._backlog.pop(0))
            if nxt is not None:
                await nxt
        self._backlog.clear()
        self._busy = False
        if self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()

    def eof_received(self) -> bool | None:
        return None  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        if self._linger is not None:
            self._linger.cancel()
        if self.driver is not None:
            self.driver.connection_lost()
        self.transport = None

    def pause_writing(self) -> None:
        if self.driver is not None:
            self.driver.pause_writing()

    def resume_writing(self) -> None:
        if self.driver is not None:
            self.driver.resume_writing()


class Listener(Protocol):
    def close(self) -> None: ...

    async def wait_closed(self) -> None: ...


async def start_c2s_listener(
    ctx: C2SContext,
    sock: socket.socket,
    *,
    direct_tls: bool,
    handshakes: HandshakeGate | None = None,
    proxies: ProxyRegistry | None = None,
) -> Listener:
    """Serve c2s on ``sock``, bound already (by the composition root, which reports a taken
    port before building anything). Direct TLS needs ``handshakes``, the budgets of connections
    in their TLS handshake (:mod:`interlink.net.accept`); ``proxies``, the provider proxies whose
    PROXY v2 headers it accepts (direct TLS only: a proxy relays XEP-0368 streams).

    Raises:
        ValueError: direct TLS without a TLS context or without ``handshakes``.
    """
    loop = asyncio.get_running_loop()
    if not direct_tls:
        return await loop.create_server(
            lambda: C2SProtocol(ctx, direct_tls=False), sock=sock, backlog=1024
        )
    if ctx.tls is None or handshakes is None:
        raise ValueError("direct TLS needs a TLS context and handshake budgets")
    listener = TlsListener(
        sock,
        lambda: C2SProtocol(ctx, direct_tls=True),
        ctx.tls,
        handshake_timeout=ctx.tls_handshake_timeout,
        shutdown_timeout=ctx.tls_shutdown_timeout,
        gate=handshakes,
        proxies=proxies,
        proxied_factory=(
            None
            if proxies is None
            else lambda client: C2SProtocol(ctx, direct_tls=True, origin=client)
        ),
    )
    listener.start()
    return listener
