"""Connection budgets and timeouts for the HTTP port, wrapped around uvicorn's protocol.

Theory of operation. uvicorn arms no timer before a connection's first request (its keep-alive
timeout starts only after a response), counts ``limit_concurrency`` only when a request arrives,
and does the TLS handshake inside asyncio with its default timeout. So an idle socket held a
descriptor for ever. :class:`HttpGuard` wraps each of uvicorn's protocol objects in a
:class:`GuardedConnection` that, from the moment the TCP connection is accepted:

1. counts it against the port's global cap and its source's budget (per IP, per IPv6 /64;
   :class:`~interlink.net.budget.SourceBudgets`) and closes it at once when either is spent;
2. does the TLS handshake itself (``loop.start_tls``) within the configured handshake timeout,
   so a connection is counted from accept, not from a finished handshake;
3. hands the connection to uvicorn and closes it unless the headers of its first request (up to
   the blank line) arrive within ``request_timeout``; between requests uvicorn's keep-alive
   timeout applies;
4. keeps counting a connection upgraded to a WebSocket (uvicorn swaps the transport's protocol:
   the guard puts a thin :class:`_Upgraded` in front of the new one) until it closes.

Nothing of uvicorn is patched: it is given a protocol factory (``Config.http_protocol_class``
accepts any callable) and plain sockets.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from interlink.net.budget import Budget, Source, SourceBudgets

log = logging.getLogger("interlink.http")
HEADERS_END = b"\r\n\r\n"
REFUSED_503 = (
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain\r\nconnection: close\r\n"
    b"content-length: %d\r\n\r\n%s"
)


@dataclass(frozen=True, slots=True)
class HttpGuardLimits:
    max_connections: int = 1024  # open at once on the port, all sources together
    request_timeout: float = 10.0  # from the handshake to the end of the first request's headers
    tls_handshake_timeout: float = 30.0

    def __post_init__(self) -> None:
        if self.max_connections < 1 or self.request_timeout <= 0:
            raise ValueError("max_connections must be >= 1 and request_timeout > 0")


class HttpGuard:
    """Counts the HTTP port's connections; :meth:`protocol_factory` wraps uvicorn's."""

    def __init__(
        self, limits: HttpGuardLimits, sources: SourceBudgets, tls: ssl.SSLContext | None
    ) -> None:
        self.limits = limits
        self.sources = sources
        self.tls = tls
        self.open = 0
        self.timed_out = 0
        self.refused: Counter[Budget] = Counter()

    def admit(self, source: Source, now: float) -> Budget | None:
        if self.open >= self.limits.max_connections and not source.exempt:
            refused: Budget | None = Budget.GLOBAL
        else:
            refused = self.sources.admit(source, now)
        if refused is not None:
            self.refused[refused] += 1
            return refused
        self.open += 1
        return None

    def release(self, source: Source) -> None:
        self.open -= 1
        self.sources.release(source)

    def protocol_factory(self, inner: Callable[..., asyncio.Protocol]) -> Callable[..., Any]:
        """A drop-in for uvicorn's ``Config.http_protocol_class``."""

        def create(**kwargs: Any) -> asyncio.Protocol:
            return GuardedConnection(self, inner(**kwargs))

        return create


class GuardedConnection(asyncio.Protocol):
    """One HTTP connection: uvicorn's protocol behind the guard's budgets and timers."""

    def __init__(self, guard: HttpGuard, inner: asyncio.Protocol) -> None:
        self.guard = guard
        self.inner = inner
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self._source: Source | None = None  # set while counted
        self._timer: asyncio.TimerHandle | None = None
        self._tail = b""  # the last bytes seen, to find the end of headers across reads
        self._handed_over = False
        self._lost = False
        self._handshake_task: asyncio.Task[None] | None = None
        self._early: list[bytes] = []

    # -- accept, budgets, handshake ---------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        raw = cast(asyncio.Transport, transport)
        guard = self.guard
        peer = raw.get_extra_info("peername")
        source = guard.sources.source(peer[0] if peer else None)
        refused = guard.admit(source, self._loop.time())
        if refused is not None:
            if guard.tls is None:
                text = f"too many connections ({refused} budget)".encode()
                raw.write(REFUSED_503 % (len(text), text))
                raw.close()
            else:
                raw.abort()  # no handshake is spent on a refused connection
            return
        self._source = source
        if guard.tls is None:
            self._hand_over(raw)
            return
        raw.pause_reading()
        self._handshake_task = self._loop.create_task(self._handshake(raw, guard.tls))

    async def _handshake(self, raw: asyncio.Transport, tls: ssl.SSLContext) -> None:
        try:
            secure = await self._loop.start_tls(
                raw,
                self,
                tls,
                server_side=True,
                ssl_handshake_timeout=self.guard.limits.tls_handshake_timeout,
            )
        except (TimeoutError, OSError, ConnectionError) as exc:
            log.debug("TLS handshake failed", extra={"error": str(exc)})
            raw.abort()
            self._release()
            return
        if secure is None or self._lost:
            raw.abort()
            self._release()
            return
        self._hand_over(secure)

    def _hand_over(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self._handed_over = True
        self.inner.connection_made(transport)
        self._timer = self._loop.call_later(self.guard.limits.request_timeout, self._too_slow)
        early, self._early = self._early, []
        for data in early:
            self.data_received(data)

    def _too_slow(self) -> None:
        self._timer = None
        self.guard.timed_out += 1
        if self._transport is not None:
            self._transport.abort()  # frees the descriptor now, whatever the peer does

    def _release(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._source is not None:
            source, self._source = self._source, None
            self.guard.release(source)

    # -- uvicorn's side ---------------------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        if not self._handed_over:
            # decrypted before start_tls() returned to the handshake task: kept for uvicorn
            self._early.append(data)
            return
        if self._timer is not None:
            seen = self._tail + data
            if HEADERS_END in seen:
                self._timer.cancel()
                self._timer = None
            else:
                self._tail = seen[-3:]
        self.inner.data_received(data)
        transport = self._transport
        if transport is not None and transport.get_protocol() is not self:
            # uvicorn upgraded to a WebSocket and gave the transport its new protocol: keep
            # counting the connection until that one is lost.
            upgraded = transport.get_protocol()
            transport.set_protocol(_Upgraded(upgraded, self._release))
            self._transport = None

    def eof_received(self) -> bool | None:
        return self.inner.eof_received() if self._handed_over else None

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        self._release()
        if self._handed_over:
            self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()


class _Upgraded(asyncio.Protocol):
    """In front of uvicorn's WebSocket protocol: tells the guard when the connection ends."""

    def __init__(self, inner: asyncio.BaseProtocol, on_lost: Callable[[], None]) -> None:
        self.inner = cast(asyncio.Protocol, inner)
        self._on_lost = on_lost

    def data_received(self, data: bytes) -> None:
        self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        with contextlib.suppress(Exception):
            self._on_lost()
        self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()
