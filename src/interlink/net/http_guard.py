"""Connection budgets and a first-request timeout for the HTTP port, around uvicorn's protocol.

Theory of operation. uvicorn arms no timer before a connection's first request (its keep-alive
timeout starts only after a response) and counts ``limit_concurrency`` only when a request
arrives, so an idle connection held a descriptor for ever. :class:`HttpGuard` wraps each of
uvicorn's protocol objects in a :class:`GuardedConnection` that, once the connection is
established (after the TLS handshake, which the event loop bounds with the handshake timeout
the composition root gives the listener):

1. counts it against the port's global cap and its source's budget (per IP, per IPv6 /64;
   :class:`~interlink.net.budget.SourceBudgets`) and closes it at once when either is spent;
2. hands it to uvicorn and closes it unless the headers of its first request (up to the blank
   line) arrive within ``request_timeout``; between requests uvicorn's keep-alive timeout
   applies;
3. keeps counting a connection upgraded to a WebSocket (uvicorn swaps the transport's protocol:
   the guard puts a thin :class:`_Upgraded` in front of the new one) until it closes.

Nothing of uvicorn is patched: it is given a protocol factory (``Config.http_protocol_class``
accepts any callable).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from interlink.net.budget import Budget, CappedPool, Source, SourceBudgets

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

    def __post_init__(self) -> None:
        if self.max_connections < 1 or self.request_timeout <= 0:
            raise ValueError("max_connections must be >= 1 and request_timeout > 0")


class HttpGuard:
    """Counts the HTTP port's connections; :meth:`protocol_factory` wraps uvicorn's."""

    def __init__(self, limits: HttpGuardLimits, sources: SourceBudgets) -> None:
        self.limits = limits
        self.sources = sources
        self._pool = CappedPool(limits.max_connections, sources)
        self.timed_out = 0
        self.refused = self._pool.refused

    @property
    def open(self) -> int:
        """Connections open on the port now."""
        return self._pool.held

    def admit(self, source: Source, now: float) -> Budget | None:
        return self._pool.admit(source, now)

    def release(self, source: Source) -> None:
        self._pool.release(source)

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

    # -- budgets and the first request's timer ----------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        raw = cast(asyncio.Transport, transport)
        guard = self.guard
        peer = raw.get_extra_info("peername")
        source = guard.sources.source(peer[0] if peer else None)
        refused = guard.admit(source, self._loop.time())
        if refused is not None:
            text = f"too many connections ({refused} budget)".encode()
            raw.write(REFUSED_503 % (len(text), text))
            raw.close()
            return
        self._source = source
        self._hand_over(raw)

    def _hand_over(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self._handed_over = True
        self.inner.connection_made(transport)
        self._timer = self._loop.call_later(self.guard.limits.request_timeout, self._too_slow)

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
        self._release()
        if self._handed_over:
            self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        if self._handed_over:
            self.inner.pause_writing()

    def resume_writing(self) -> None:
        if self._handed_over:
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
