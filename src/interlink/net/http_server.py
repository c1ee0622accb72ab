"""The HTTP server inside the hub's event loop: uvicorn, serving sockets the composition root
bound, without uvicorn's own signal handlers, and with the HTTPS port behind the TLS handshake
gate and timeouts (:mod:`interlink.net.accept`).

``startup`` does for the given sockets what uvicorn's own start-up does for them (the lifespan is
off); it relies on uvicorn's ``server_state``, ``lifespan.state`` and the protocol class's
constructor, so a uvicorn upgrade is checked against it.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator

import uvicorn

from interlink.net.accept import HandshakeGate, TlsListener
from interlink.net.c2s import Listener


class EmbeddedUvicorn(uvicorn.Server):
    """uvicorn inside our loop: we own the signal handlers, not uvicorn; and its listeners get
    a TLS handshake timeout (uvicorn leaves the event loop's 60 s)."""

    def __init__(
        self,
        config: uvicorn.Config,
        *,
        tls_handshake_timeout: float,
        tls_shutdown_timeout: float,
        handshakes: HandshakeGate,
    ) -> None:
        super().__init__(config)
        self._tls_handshake_timeout = tls_handshake_timeout
        self._tls_shutdown_timeout = tls_shutdown_timeout
        self._handshakes = handshakes

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        """uvicorn's own start-up for sockets it is given, plus the handshake timeout (the
        lifespan is off; nothing else of uvicorn's start-up applies to given sockets)."""
        config = self.config
        await self.lifespan.startup()

        def create_protocol(_loop: asyncio.AbstractEventLoop | None = None) -> asyncio.Protocol:
            return config.http_protocol_class(  # type: ignore[call-arg]
                config=config,
                server_state=self.server_state,
                app_state=self.lifespan.state,
                _loop=_loop,
            )

        loop = asyncio.get_running_loop()
        servers: list[Listener] = []
        for sock in sockets or ():
            if config.ssl is None:
                servers.append(
                    await loop.create_server(create_protocol, sock=sock, backlog=config.backlog)
                )
                continue
            listener = TlsListener(
                sock,
                create_protocol,
                config.ssl,
                handshake_timeout=self._tls_handshake_timeout,
                shutdown_timeout=self._tls_shutdown_timeout,
                gate=self._handshakes,
                backlog=config.backlog,
            )
            listener.start()
            servers.append(listener)
        self.servers = servers  # type: ignore[assignment]  # uvicorn only calls close()
        self.started = True
