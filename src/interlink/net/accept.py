"""TLS listeners that accept connections themselves, so a connection counts against its source
from the moment it is accepted, not only once its TLS handshake is done.

Theory of operation. With ``loop.create_server(ssl=…)`` the event loop accepts and handshakes on
its own and the protocol learns the peer only after the handshake: a source could hold any number
of descriptors by connecting and never handshaking (each until the handshake timeout). A
:class:`TlsListener` accepts on its socket in a loop, asks its :class:`HandshakeGate` (a global
cap and a per-source budget of connections *in their handshake*) and closes a refused connection
at once; an admitted one is handed to ``loop.connect_accepted_socket`` with the TLS context and
the handshake timeout, and leaves the gate when its handshake ends either way. After the
handshake the protocol's own budgets apply (the c2s :class:`~interlink.net.driver.ConnectionGate`,
the HTTP port's :class:`~interlink.net.http_guard.HttpGuard`).

(Starting TLS from the protocol, ``loop.start_tls`` in ``connection_made``, cannot be made
reliable: uvloop starts reading after ``connection_made`` whatever the protocol paused, and the
client's first TLS flight is lost.)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from collections.abc import Callable

from interlink.errors import reason
from interlink.net.budget import Budget, CappedPool, Source, SourceBudgets

log = logging.getLogger("interlink.net")
ACCEPT_ERROR_PAUSE = 0.1  # seconds to wait after accept() failed (e.g. out of descriptors)


class HandshakeGate:
    """Connections in their TLS handshake: ``max_handshakes`` at once, and per source."""

    def __init__(self, max_handshakes: int, sources: SourceBudgets) -> None:
        if max_handshakes < 1:
            raise ValueError("max_handshakes must be at least 1")
        self._pool = CappedPool(max_handshakes, sources)
        self.max_handshakes = max_handshakes
        self.sources = sources
        self.refused = self._pool.refused

    @property
    def pending(self) -> int:
        """Connections in their handshake now."""
        return self._pool.held

    def admit(self, source: Source, now: float) -> Budget | None:
        return self._pool.admit(source, now)

    def release(self, source: Source) -> None:
        self._pool.release(source)


class TlsListener:
    """Serves TLS on a bound socket; ``close`` and ``wait_closed`` as :class:`asyncio.Server`."""

    def __init__(
        self,
        sock: socket.socket,
        protocol_factory: Callable[[], asyncio.BaseProtocol],
        tls: ssl.SSLContext,
        *,
        handshake_timeout: float,
        shutdown_timeout: float,
        gate: HandshakeGate,
        backlog: int = 1024,
    ) -> None:
        """``shutdown_timeout``: how long a closing connection waits for the peer's
        close_notify (a peer that never answers would otherwise hold it 30 s)."""
        self.sockets = [sock]
        self._sock = sock
        self._factory = protocol_factory
        self._tls = tls
        self._timeout = handshake_timeout
        self._shutdown_timeout = shutdown_timeout
        self._gate = gate
        self._backlog = backlog
        self._loop = asyncio.get_running_loop()
        self._accepting: asyncio.Task[None] | None = None
        self._handshakes: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        self._sock.setblocking(False)
        self._sock.listen(self._backlog)
        self._accepting = self._loop.create_task(self._accept_loop(), name="tls-accept")

    async def _accept_loop(self) -> None:
        while True:
            try:
                conn, addr = await self._loop.sock_accept(self._sock)
            except OSError as exc:
                log.warning("accept failed", extra={"error": reason(exc)})
                await asyncio.sleep(ACCEPT_ERROR_PAUSE)
                continue
            self._accepted(conn, addr)

    def _accepted(self, conn: socket.socket, addr: object) -> None:
        host = addr[0] if isinstance(addr, tuple) and addr else None
        source = self._gate.sources.source(host if isinstance(host, str) else None)
        if self._gate.admit(source, self._loop.time()) is not None:
            conn.close()  # no handshake is spent on it
            return
        task = self._loop.create_task(self._handshake(conn, source), name="tls-handshake")
        self._handshakes.add(task)
        task.add_done_callback(self._handshakes.discard)

    async def _handshake(self, conn: socket.socket, source: Source) -> None:
        try:
            await self._loop.connect_accepted_socket(
                self._factory,
                conn,
                ssl=self._tls,
                ssl_handshake_timeout=self._timeout,
                ssl_shutdown_timeout=self._shutdown_timeout,
            )
        except (OSError, TimeoutError, ConnectionError) as exc:
            log.debug("TLS handshake failed", extra={"error": reason(exc)})
            conn.close()
        finally:
            self._gate.release(source)

    def close(self) -> None:
        if self._accepting is not None:
            self._accepting.cancel()
        for task in list(self._handshakes):
            task.cancel()
        self._sock.close()

    async def wait_closed(self) -> None:
        tasks = [t for t in (self._accepting, *self._handshakes) if t is not None]
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*tasks, return_exceptions=True)
