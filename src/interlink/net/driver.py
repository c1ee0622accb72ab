"""The glue between one :class:`~interlink.xmpp.stream.ServerStream` and the hub.

A :class:`StreamDriver` is transport-neutral: the TCP shell and the WebSocket shell both feed it
input and give it a :class:`Link` to write to. It turns stream events into hub calls and hub
deliveries into stream output, arms the stream's timer, and implements the hub's
:class:`~interlink.hub.session.SessionPort`.

Ordering and acknowledgement: :meth:`StreamDriver.feed` returns ``None`` when everything was
handled synchronously, or a coroutine when some step needs I/O (credentials, storage). The shell
stops reading from the peer until that coroutine finishes, so one peer's stanzas are handled
strictly in order and a message stored offline is on disk before the next one is read.

Read shaping: every read is charged to the stream's :class:`~interlink.xmpp.shaper.ReadShaper`
(a tight rate before authentication, a generous one after); when it is over budget, the
coroutine :meth:`StreamDriver.feed` returns ends with a sleep, during which the shell does not read
from that peer, so one stream cannot monopolise parsing in the shared event loop.

Output is corked: writes made while handling one batch of input, or while routing stanzas from
other sessions in the same loop iteration, leave in one transport write.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from time import perf_counter
from typing import Any, Protocol

from interlink.errors import (
    AuthenticationRefused,
    StanzaError,
    StreamError,
    StreamErrorCondition,
    reason,
)
from interlink.hub.auth_throttle import AuthAttempt, AuthThrottled
from interlink.hub.hub import Hub
from interlink.hub.session import MarkSent, Session
from interlink.net.budget import Budget, CappedPool, Source, SourceBudgets
from interlink.storage.offline import SentMark
from interlink.xmpp.shaper import ReadRate, ReadShaper
from interlink.xmpp.stream import (
    AckReceived,
    AckRequested,
    Authenticated,
    AuthenticationFailed,
    BindRequested,
    CredentialsRequested,
    ResumeRefused,
    ResumeRequested,
    ServerStream,
    SmEnabled,
    StanzaReceived,
    StreamClosed,
    StreamEvent,
    TlsStartRequested,
    TokenCheckRequested,
)

log = logging.getLogger("interlink.c2s")
Pending = Coroutine[Any, Any, None]


class Link(Protocol):
    """The transport as the driver sees it."""

    def write(self, data: bytes) -> None: ...

    def send_frames(self, frames: list[str]) -> None: ...

    def buffered(self) -> int: ...

    def close(self) -> None: ...

    async def start_tls(self) -> None: ...


class ConnectionGate:
    """Knows every open stream; caps those that have not yet bound a resource (slow-loris
    protection): all of them together (``max_unauthenticated``), and per source address
    (:class:`~interlink.net.budget.SourceBudgets`: per IP, per IPv6 /64, connection rate), so
    that no one source can take the whole pre-authentication pool. Refusals are counted by
    budget for ``/metrics``."""

    def __init__(self, max_unauthenticated: int, sources: SourceBudgets | None = None) -> None:
        self.max_unauthenticated = max_unauthenticated
        self.open: set[StreamDriver] = set()
        # Not "None means allow": without explicit budgets the defaults apply.
        self.sources = sources if sources is not None else SourceBudgets()
        self._pool = CappedPool(max_unauthenticated, self.sources)
        self.refused = self._pool.refused

    @property
    def unauthenticated(self) -> int:
        """Streams that have not bound a resource yet."""
        return self._pool.held

    def hibernate_idle(self, now: float, idle_for: float) -> int:
        """Free the parsers of streams that received nothing for ``idle_for`` seconds."""
        count = 0
        for driver in self.open:
            if now - driver.last_input >= idle_for and driver.stream.hibernate():
                count += 1
        return count

    def shutdown(self, error: StreamError) -> None:
        """End every open stream, bound or not."""
        for driver in list(self.open):
            driver.terminate(error)

    def try_enter(self, source: Source | None = None, now: float = 0.0) -> Budget | None:
        """Count one more unauthenticated stream: ``None``, or the budget that refuses it."""
        return self._pool.admit(source if source is not None else UNKNOWN_SOURCE, now)

    def leave(self, source: Source | None = None) -> None:
        self._pool.release(source if source is not None else UNKNOWN_SOURCE)


UNKNOWN_SOURCE = Source("?", None, exempt=False)

REFUSALS = {
    Budget.GLOBAL: (
        StreamErrorCondition.RESOURCE_CONSTRAINT,
        "too many connections are authenticating; try again later (net.max_unauthenticated)",
    ),
    Budget.PER_IP: (
        StreamErrorCondition.POLICY_VIOLATION,
        "too many unauthenticated connections from your address (net.max_unauthenticated_per_ip)",
    ),
    Budget.PER_IPV6_64: (
        StreamErrorCondition.POLICY_VIOLATION,
        "too many unauthenticated connections from your IPv6 /64 "
        "(net.max_unauthenticated_per_ipv6_64)",
    ),
    Budget.RATE: (
        StreamErrorCondition.POLICY_VIOLATION,
        "too many new connections from your address; slow down "
        "(net.connections_per_source_per_minute)",
    ),
}


#: Before authentication a login (header, STARTTLS, SASL, restart) is a few KiB at most.
PRE_AUTH_READ_RATE = ReadRate(bytes_per_second=4 * 1024, burst=16 * 1024)
#: After: about eight times what one connection of the flood benchmark sends (~60 KB/s).
READ_RATE = ReadRate(bytes_per_second=512 * 1024, burst=1024 * 1024)


@dataclass(frozen=True, slots=True)
class DriverLimits:
    max_outbound_bytes: int = 4 * 1024 * 1024  # beyond this a reader is too slow: disconnect
    low_water_bytes: int = 256 * 1024
    pre_auth_read_rate: ReadRate = PRE_AUTH_READ_RATE
    read_rate: ReadRate = READ_RATE


class StreamDriver:
    def __init__(
        self,
        hub: Hub,
        stream: ServerStream,
        link: Link,
        gate: ConnectionGate,
        limits: DriverLimits,
        peer: str,
        *,
        source: Source | None = None,
        relayed_by: str | None = None,
    ) -> None:
        """``source``: the peer's address as the gate's per-source budgets see it
        (:meth:`SourceBudgets.source`); ``None`` when the transport does not know it.
        ``relayed_by``: the provider whose registered proxy relays this stream (the peer
        address is then the one its PROXY header claims): only that provider's accounts may log
        in on it, and its address earns no trusted login pair."""
        self.hub = hub
        self.stream = stream
        self.link = link
        self.gate = gate
        self.limits = limits
        self.peer = peer
        self.session: Session | None = None
        self._attempt: AuthAttempt | None = None  # the SASL attempt the throttle let through
        self._loop = asyncio.get_running_loop()
        self.source = source
        self.relayed_by = relayed_by
        refused = gate.try_enter(source, self._loop.time())
        self._in_gate = refused is None
        gate.open.add(self)
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self._flush_scheduled = False
        self._writable = asyncio.Event()
        self._writable.set()
        self._ended = False
        self._read_pause: asyncio.Future[None] | None = None
        self._tcp = not stream.framing.message_per_element
        self.last_input = self._loop.time()
        self._shaper = ReadShaper(limits.pre_auth_read_rate, self.last_input)
        self._shaped_as_authenticated = False
        # XEP-0198: (stanzas sent, future) resolved once the client's acks cover them
        self._ack_waiters: list[tuple[int, asyncio.Future[bool]]] = []
        self._held: list[tuple[str, bool]] | None = None  # output held while a mark commits
        self._park_on_close = False  # closed because the session is resumed elsewhere
        if refused is not None:
            self._handle_sync(stream.close(StreamError(*REFUSALS[refused])))
        else:
            self._arm_timer()

    # -- input --------------------------------------------------------------------------------
    def feed(self, data: bytes) -> Pending | None:
        """Handle ``data`` read from the peer. When something must be awaited (I/O, or a pause
        because the stream reads faster than its rate), returns the coroutine to await before
        reading more from this peer."""
        now = self._loop.time()
        self.last_input = now
        stream = self.stream
        pending = self._run(stream.receive_data(data) if self._tcp else stream.receive_frame(data))
        if pending is not None:
            pending = self._holding_input(pending)
        if stream.username is not None and not self._shaped_as_authenticated:
            self._shaped_as_authenticated = True
            self._shaper.change_rate(self.limits.read_rate, now)
        pause = self._shaper.consume(len(data), now)
        if pause <= 0.0 or stream.closed:
            return pending
        return self._pause_reading(pending, pause)

    async def _holding_input(self, pending: Pending) -> None:
        """Await ``pending`` (storage for one of the client's stanzas), with the stream told
        that its input is held meanwhile: the transport reads nothing from the client until
        this is done, acknowledgements included (XEP-0198's limit allows for it)."""
        self.stream.hold_input(True)
        try:
            await pending
        finally:
            self.stream.hold_input(False)

    async def _pause_reading(self, pending: Pending | None, pause: float) -> None:
        """Await ``pending``, then wait ``pause`` seconds, or less if the connection ends."""
        if pending is not None:
            await pending
        if self._ended:
            return
        waiter: asyncio.Future[None] = self._loop.create_future()
        timer = self._loop.call_at(self._loop.time() + pause, _wake, waiter)
        self._read_pause = waiter
        try:
            await waiter
        finally:
            timer.cancel()
            self._read_pause = None

    def _handle_sync(self, events: list[StreamEvent]) -> None:
        pending = self._run(events)
        if pending is not None:
            self.hub.ctx.spawn(pending, name=f"stream {self.peer}")

    def _run(self, events: list[StreamEvent]) -> Pending | None:
        for i, ev in enumerate(events):
            pending = self._on_event(ev)
            if pending is not None:
                return self._continue(pending, events[i + 1 :])
        self.flush()
        return None

    async def _continue(self, pending: Pending, rest: list[StreamEvent]) -> None:
        while True:
            try:
                await pending
            except Exception:
                log.exception("internal error while handling a stream", extra={"peer": self.peer})
                self._run_close(
                    StreamError(
                        StreamErrorCondition.INTERNAL_SERVER_ERROR,
                        "internal server error",
                        local=True,
                    )
                )
                return
            self.flush()
            for i, ev in enumerate(rest):
                nxt = self._on_event(ev)
                if nxt is not None:
                    pending, rest = nxt, rest[i + 1 :]
                    break
            else:
                self.flush()
                return

    async def _timed(self, pending: Pending, started: float, counted: bool) -> None:
        """Routing that had to wait (storage): its latency ends when it is done; only then does
        stream management count the stanza handled."""
        try:
            await pending
        finally:
            self.hub.ctx.stats.routed(perf_counter() - started)
        if counted and self.stream.sm is not None:
            self.stream.sm.stanza_handled()

    def _run_close(self, error: StreamError) -> None:
        self._handle_sync(self.stream.close(error))

    def _on_event(self, ev: StreamEvent) -> Pending | None:
        if isinstance(ev, StanzaReceived):
            session = self.session
            if session is None:
                # The connection was lost while an earlier stanza of the same read was awaited
                # (storage): the session has left the registry and its unavailable presence is
                # out, so nothing more is routed for it. The stanza was never acknowledged: a
                # client with stream management sends it again when it resumes.
                log.debug("stanza after the session ended dropped", extra={"peer": self.peer})
                return None
            stanza = ev.stanza
            stats = self.hub.ctx.stats
            stats.stanzas_in[stanza.KIND] += 1
            started = perf_counter()
            pending = self.hub.route(session, stanza)
            if pending is None:
                stats.routed(perf_counter() - started)
                if ev.counted:
                    sm = self.stream.sm
                    if sm is not None:
                        sm.stanza_handled()  # the core's count, never the shell's
                return None
            return self._timed(pending, started, ev.counted)
        if isinstance(ev, SmEnabled):
            if self.session is not None:
                self.session.acks = self
                self._register_resumable()
            return None
        if isinstance(ev, AckRequested):
            self.stream.send_ack()  # every stanza before the <r/> is routed (durably) by now
            return None
        if isinstance(ev, ResumeRequested):
            return self._run_nested(self._resume(ev.previd))
        if isinstance(ev, ResumeRefused):
            username = self.stream.username
            assert username is not None
            return self.hub.settle_received(username, self.stream.host, ev.previd, ev.h)
        if isinstance(ev, AckReceived):
            self._acks_arrived(ev.acked)
            return None
        if isinstance(ev, CredentialsRequested):
            return self._lookup_credentials(ev.username)
        if isinstance(ev, TokenCheckRequested):
            return self._check_token(ev.token)
        if isinstance(ev, BindRequested):
            return self._run_nested(self._bind(ev.resource))
        if isinstance(ev, Authenticated):
            log.info("authenticated", extra={"peer": self.peer, "user": ev.username})
            if self._attempt is not None:
                self.hub.login_succeeded(self._attempt)
                self._attempt = None
            if not self._may_carry(ev.username):
                log.warning(
                    "proxied login refused: not an account of the proxy's provider",
                    extra={"peer": self.peer, "user": ev.username, "provider": self.relayed_by},
                )
                self._run_close(
                    StreamError(
                        StreamErrorCondition.NOT_AUTHORIZED,
                        f"a proxy of {self.relayed_by} relays only {self.relayed_by}'s accounts",
                    )
                )
            return None
        if isinstance(ev, AuthenticationFailed):
            if self._attempt is not None:
                self.hub.login_failed(self._attempt, str(ev.condition))
                self._attempt = None
            return None
        if isinstance(ev, TlsStartRequested):
            self.flush()
            return self._start_tls()
        if isinstance(ev, StreamClosed):
            return self._closed(ev)
        return None

    def _run_nested(self, events: list[StreamEvent]) -> Pending | None:
        return self._run(events) if events else None

    def _peer_address(self) -> str:
        """The peer's IP address, from ``peer`` (``ip:port`` or ``ws:ip:port``)."""
        address = self.peer.removeprefix("ws:")
        return address.rpartition(":")[0] or address

    def _may_carry(self, username: str) -> bool:
        """Whether ``username`` (a SASL name or a token's account) may log in on this stream:
        any account on a direct one; on a relayed one, only the relaying provider's."""
        if self.relayed_by is None:
            return True
        jid = self.hub.account_jid(username, self.stream.host)
        return jid is not None and self.hub.ctx.addressing.provider_of(jid) == self.relayed_by

    def _begin_attempt(self, username: str | None) -> AuthThrottled | None:
        """Ask the throttle; a refusal is the same whether or not the account exists."""
        verdict = self.hub.begin_login(
            self._peer_address(),
            username,
            self.stream.host,
            claimed=self.relayed_by is not None,
        )
        if isinstance(verdict, AuthThrottled):
            return verdict
        self._attempt = verdict
        return None

    async def _lookup_credentials(self, username: str) -> None:
        throttled = self._begin_attempt(username)
        if throttled is not None:
            events = self.stream.refuse_authentication(throttled.text)
        elif not self._may_carry(username):
            # A password login for another provider's (or a gatekeeper user's) account through
            # a proxy: failed without looking at credentials, so the proxy cannot test passwords
            # (logged here; the exchange ends like a wrong password's).
            log.warning(
                "proxied login refused: not an account of the proxy's provider",
                extra={"peer": self.peer, "user": username, "provider": self.relayed_by},
            )
            events = self.stream.supply_credentials(None)
        else:
            creds = await self.hub.credentials(username, self.stream.host)
            events = self.stream.supply_credentials(creds)
        more = self._run(events)
        if more is not None:
            await more

    async def _check_token(self, token: str) -> None:
        throttled = self._begin_attempt(None)
        if throttled is not None:
            events = self.stream.refuse_authentication(throttled.text)
        else:
            try:
                jid = await self.hub.verify_bearer(token, self.stream.host)
            except AuthenticationRefused as refused:
                events = self.stream.supply_token_result(
                    None, text=refused.text, temporary=refused.temporary
                )
            else:
                events = self.stream.supply_token_result(jid)
        more = self._run(events)
        if more is not None:
            await more

    async def _start_tls(self) -> None:
        try:
            await self.link.start_tls()
        except (TimeoutError, OSError, ConnectionError) as exc:
            log.info("TLS handshake failed", extra={"peer": self.peer, "error": reason(exc)})
            self.link.close()
            self._end()
            return
        self.stream.tls_established()

    def _bind(self, resource: str | None) -> list[StreamEvent]:
        username = self.stream.username
        assert username is not None
        try:
            session = self.hub.bind(self, username, resource, self.stream.host)
        except StanzaError as err:
            return self.stream.refuse_bind(err)
        self.session = session
        self._cancel_timer()
        if self._in_gate:
            self._in_gate = False
            self.gate.leave(self.source)
        return self.stream.accept_bind(session.jid)

    def _resume(self, previd: str) -> list[StreamEvent]:
        username = self.stream.username
        assert username is not None
        parked = self.hub.resume(username, self.stream.host, previd)
        if parked is None:
            return self.stream.refuse_resume()
        session = parked.session
        session.port = self
        session.acks = self
        self.session = session
        self._cancel_timer()
        if self._in_gate:
            self._in_gate = False
            self.gate.leave()
        log.info("session resumed", extra={"peer": self.peer, "jid": str(session.jid)})
        events = self.stream.accept_resume(session.jid, parked.state)
        self._register_resumable()
        if parked.state.resume_id is not None and not self.stream.closed:
            # stored messages resent here are settled on ack; the rest of the queue follows
            self.hub.router.offline.start_drain(
                session.jid.bare, resumed=(session, parked.state.resume_id)
            )
        return events

    def _register_resumable(self) -> None:
        sm = self.stream.sm
        if sm is not None and sm.resume_id is not None and self.session is not None:
            self.hub.resumable_stream(sm.resume_id, self.session.jid.bare, self._park_now)

    def _park_now(self) -> None:
        """The client resumes this session on another stream: close this one, park it."""
        self._park_on_close = True
        self._handle_sync(
            self.stream.close(
                StreamError(StreamErrorCondition.CONFLICT, "the session was resumed elsewhere")
            )
        )

    def _closed(self, ev: StreamClosed) -> Pending | None:
        if ev.error is not None:
            (log.warning if ev.error.local else log.info)(
                "stream error",
                extra={
                    "peer": self.peer,
                    "condition": str(ev.error.condition),
                    "text": ev.error.text,
                },
            )
        self.flush()
        self.link.close()
        return self._end_session(park=self._park_on_close)

    # -- connection lifecycle -----------------------------------------------------------------
    def connection_lost(self) -> None:
        lost = not self.stream.closed  # no </stream>, no stream error: the client may resume
        if lost:
            self.stream.close()  # nobody to send it to; just mark the stream over
        pending = self._end_session(park=lost)
        if pending is not None:
            self.hub.ctx.spawn(pending, name=f"end {self.peer}")

    def _end_session(self, *, park: bool = False) -> Pending | None:
        """Leave the registry at once, so nothing more is routed to a dead connection; the
        unavailable broadcast that may follow is returned to be awaited. With stream
        management, what the client did not acknowledge goes to offline storage first."""
        self._end()
        session, self.session = self.session, None
        if session is None:
            return None
        sm = self.stream.sm
        if sm is None:
            return self.hub.session_ended(session)
        if park and self.hub.park(session, sm):
            return None

        stream_id = sm.resume_id

        def take_unacked() -> list[tuple[str, SentMark | None]]:
            return [
                (item.xml, None if stream_id is None else SentMark(stream_id, item.seq))
                for item in sm.unacked()
                if not item.stored
            ]

        return self._awaited(self.hub.session_ended(session, take_unacked))

    @staticmethod
    async def _awaited(pending: Pending | None) -> None:
        if pending is not None:
            await pending

    def _end(self) -> None:
        if self._ended:
            return
        self._ended = True
        self.gate.open.discard(self)
        self._cancel_timer()
        self._writable.set()
        if self._read_pause is not None:
            _wake(self._read_pause)  # nothing more to read: let the shell's task finish now
        if self._in_gate:
            self._in_gate = False
            self.gate.leave(self.source)
        sm = self.stream.sm
        if sm is not None and sm.resume_id is not None:
            self.hub.stream_gone(sm.resume_id)
        waiters, self._ack_waiters = self._ack_waiters, []
        for _, waiter in waiters:
            if not waiter.done():
                waiter.set_result(False)

    # -- timers -------------------------------------------------------------------------------
    def _arm_timer(self) -> None:
        deadline = self.stream.get_timer()
        if deadline is not None:
            self._timer = self._loop.call_at(deadline, self._on_timer)
            self._timer_at = deadline

    def _rearm_timer(self) -> None:
        """After output: the stream may want a timer it did not want before (XEP-0198 ``<r/>``
        by time); one timer at a time, moved only when the deadline changed."""
        deadline = self.stream.get_timer()
        if deadline is None or self._ended:
            return
        if self._timer is not None:
            if self._timer_at == deadline:
                return
            self._timer.cancel()
        self._timer = self._loop.call_at(deadline, self._on_timer)
        self._timer_at = deadline

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _on_timer(self) -> None:
        self._timer = None
        self._handle_sync(self.stream.handle_timer(self._loop.time()))

    # -- output (SessionPort) -----------------------------------------------------------------
    def write_xml(self, xml: str) -> None:
        self._write(xml, stored=False)

    def _write(self, xml: str, *, stored: bool) -> None:
        if self._held is not None:
            self._held.append((xml, stored))
            return
        self.hub.ctx.stats.sent(xml)
        stream = self.stream
        now = self._loop.time() if stream.sm is not None else None
        closing = stream.send_xml(xml, stored=stored, now=now)
        if closing:  # too many unacknowledged stanzas; not from inside the caller's routing
            self._loop.call_soon(self._handle_sync, closing)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self.flush)

    # -- stream management (AckPort) ----------------------------------------------------------
    async def send_stored(self, xmls: Sequence[str], mark: MarkSent) -> None:
        sm = self.stream.sm
        if sm is not None and sm.resume_id is not None and not self._ended:
            # Hold back everything else until the mark is durable: the numbers must not move.
            self._held = []
            try:
                await mark(sm.resume_id, sm.sent + 1)
            finally:
                held, self._held = self._held, None
        else:
            held = []
        for xml in xmls:
            self._write(xml, stored=True)
        for xml, stored in held:
            self._write(xml, stored=stored)

    async def acked(self) -> bool:
        sm = self.stream.sm
        if sm is None or self._ended:
            return False
        if sm.acked >= sm.sent:
            return True
        waiter: asyncio.Future[bool] = self._loop.create_future()
        self._ack_waiters.append((sm.sent, waiter))
        self.stream.request_ack()
        self.flush()
        return await waiter

    def _acks_arrived(self, acked: int) -> None:
        sm = self.stream.sm
        if sm is not None and sm.stored_acked and sm.resume_id is not None:
            # Stored messages the client now has (e.g. sent again after a resumption, where no
            # drain waits for them): settled by their marks.
            sm.stored_acked = False
            username = self.stream.username
            assert username is not None
            self.hub.ctx.spawn(
                self.hub.settle_received(username, self.stream.host, sm.resume_id, acked),
                name=f"settle {self.peer}",
            )
        keep: list[tuple[int, asyncio.Future[bool]]] = []
        for target, waiter in self._ack_waiters:
            if target > acked:
                keep.append((target, waiter))
            elif not waiter.done():
                waiter.set_result(True)
        self._ack_waiters = keep

    def flush(self) -> None:
        self._flush_scheduled = False
        if self.stream.sm is not None:
            self._rearm_timer()
        if not self.stream.has_output:
            return
        if self._tcp:
            self.link.write(self.stream.data_to_send())
        else:
            self.link.send_frames(self.stream.frames_to_send())
        if self.link.buffered() > self.limits.max_outbound_bytes and not self.stream.closed:
            self._run_close(
                StreamError(
                    StreamErrorCondition.POLICY_VIOLATION,
                    "the client does not read fast enough; outbound buffer limit reached",
                )
            )

    def pause_writing(self) -> None:
        self._writable.clear()

    def resume_writing(self) -> None:
        self._writable.set()

    async def wait_writable(self) -> None:
        await self._writable.wait()

    def terminate(self, error: StreamError | None) -> None:
        self._handle_sync(self.stream.close(error))


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)
