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

A listener given a :class:`~interlink.net.proxied.ProxyRegistry` (the c2s direct-TLS port) first
looks at the connection's first bytes without consuming them (``MSG_PEEK``): a TLS ClientHello goes
on as above; a PROXY v2 header is read, exactly its length and not one byte of the TLS behind it,
and checked (:meth:`ProxyRegistry.admit`). An accepted header moves the connection's handshake
budget from the proxy to the carried client address, and the protocol is built by
``proxied_factory`` with that client; a refused one (an unregistered peer, a malformed header, a
registered proxy sending none) closes the connection and logs why. Registered proxy addresses are
exempt from the per-source budgets themselves: their clients are counted instead.

(Starting TLS from the protocol, ``loop.start_tls`` in ``connection_made``, cannot be made
reliable: uvloop starts reading after ``connection_made`` whatever the protocol paused, and the
client's first TLS flight is lost.)
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import socket
import ssl
import time
from collections.abc import Callable

from interlink.errors import reason
from interlink.net.budget import Budget, CappedPool, Source, SourceBudgets
from interlink.net.proxied import ProxiedClient, ProxyRefused, ProxyRegistry
from interlink.net.proxy_v2 import FIXED_BYTES, ProxyHeaderError, header_length, starts_like_header

log = logging.getLogger("interlink.net")
ACCEPT_ERROR_PAUSE = 0.1  # seconds to wait after accept() failed (e.g. out of descriptors)
PEEK_PAUSE = 0.01  # seconds between looks at a PROXY header that arrived only in part


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
        proxies: ProxyRegistry | None = None,
        proxied_factory: Callable[[ProxiedClient], asyncio.BaseProtocol] | None = None,
    ) -> None:
        """``shutdown_timeout``: how long a closing connection waits for the peer's
        close_notify (a peer that never answers would otherwise hold it 30 s). ``proxies`` and
        ``proxied_factory`` together: accept PROXY v2 headers from registered proxies."""
        if (proxies is None) != (proxied_factory is None):
            raise ValueError("proxies and proxied_factory go together")
        self.sockets = [sock]
        self._sock = sock
        self._factory = protocol_factory
        self._tls = tls
        self._timeout = handshake_timeout
        self._shutdown_timeout = shutdown_timeout
        self._gate = gate
        self._backlog = backlog
        self._proxies = proxies
        self._proxied_factory = proxied_factory
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
        peer = host if isinstance(host, str) else None
        source = self._gate.sources.source(peer)
        if self._proxies is not None and self._proxies.registered_at(peer):
            source = dataclasses.replace(source, exempt=True)  # its clients are counted
        if self._gate.admit(source, self._loop.time()) is not None:
            conn.close()  # no handshake is spent on it
            return
        task = self._loop.create_task(self._handshake(conn, source, peer), name="tls-handshake")
        self._handshakes.add(task)
        task.add_done_callback(self._handshakes.discard)

    async def _handshake(self, conn: socket.socket, source: Source, peer: str | None) -> None:
        held: Source | None = source
        factory = self._factory
        try:
            if self._proxies is not None:
                try:
                    client = await asyncio.wait_for(self._proxy_header(conn, peer), self._timeout)
                except ProxyHeaderError as exc:
                    log.warning("connection closed", extra={"reason": str(exc)})
                    conn.close()
                    return
                if client is not None:
                    self._gate.release(source)
                    held = None
                    client_source = self._gate.sources.source(client.address)
                    if self._gate.admit(client_source, self._loop.time()) is not None:
                        conn.close()
                        return
                    held = client_source
                    factory = self._proxied(client)
            await self._loop.connect_accepted_socket(
                factory,
                conn,
                ssl=self._tls,
                ssl_handshake_timeout=self._timeout,
                ssl_shutdown_timeout=self._shutdown_timeout,
            )
        except (OSError, TimeoutError, ConnectionError) as exc:
            log.debug("TLS handshake failed", extra={"error": reason(exc)})
            conn.close()
        finally:
            if held is not None:
                self._gate.release(held)

    def _proxied(self, client: ProxiedClient) -> Callable[[], asyncio.BaseProtocol]:
        build = self._proxied_factory
        assert build is not None
        return lambda: build(client)

    async def _proxy_header(self, conn: socket.socket, peer: str | None) -> ProxiedClient | None:
        """The client a registered proxy speaks for, or ``None`` when the connection starts
        with anything but a PROXY header (then nothing was consumed).

        Raises:
            ProxyHeaderError: see :meth:`ProxyRegistry.admit`; also a registered proxy that
                sends no header, and a header from a peer that is not registered.
            ConnectionError: the peer closed before sending enough.
        """
        proxies = self._proxies
        assert proxies is not None
        registered = bool(proxies.registered_at(peer))
        while True:
            head = await self._peek(conn, FIXED_BYTES)
            looks = starts_like_header(head)
            if looks is False:
                if registered:
                    raise ProxyRefused(f"registered proxy {peer} sent no PROXY header")
                return None
            if looks and not registered:
                raise ProxyRefused(f"PROXY header from {peer}, which is not a registered proxy")
            if len(head) >= FIXED_BYTES:
                break
            await asyncio.sleep(PEEK_PAUSE)  # a header split across segments: rare
        data = await self._read_exactly(conn, header_length(head, proxies.limits))
        return proxies.admit(peer, data, time.time())

    async def _readable(self, conn: socket.socket) -> None:
        ready: asyncio.Future[None] = self._loop.create_future()

        def wake() -> None:
            if not ready.done():
                ready.set_result(None)

        fd = conn.fileno()
        self._loop.add_reader(fd, wake)
        try:
            await ready
        finally:
            self._loop.remove_reader(fd)

    async def _peek(self, conn: socket.socket, size: int) -> bytes:
        while True:
            await self._readable(conn)
            try:
                data = conn.recv(size, socket.MSG_PEEK)
            except BlockingIOError:
                continue
            if not data:
                raise ConnectionError("closed before its first bytes")
            return data

    async def _read_exactly(self, conn: socket.socket, size: int) -> bytes:
        data = b""
        while len(data) < size:
            await self._readable(conn)
            try:
                chunk = conn.recv(size - len(data))
            except BlockingIOError:
                continue
            if not chunk:
                raise ConnectionError("closed inside its PROXY header")
            data += chunk
        return data

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
