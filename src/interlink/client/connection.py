"""The asyncio shell of the SDK's connection lifecycle over one slixmpp stream.

:class:`Connection` feeds slixmpp's events (session started or resumed, disconnected, a failed
attempt, a stream error, a refused login, traffic, XEP-0198 acks) into the sans-I/O
:class:`~interlink.client.lifecycle.Lifecycle`, runs its timer and performs what it decides
(ping, drop the socket, connect again, tell the application). It also owns the
:class:`~interlink.client.outbox.Outbox`: a message goes on the wire only while online, and is
reported :class:`~interlink.client.events.Sent` when the hub acknowledges it. What a new session
needs besides re-sending (presence, carbons, fresh device lists) is the client's, through the
``back_online`` hook.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import slixmpp

from interlink.client.events import ClientEvent, ConnectionEnded, Sent
from interlink.client.lifecycle import (
    Action,
    Backoff,
    DropConnection,
    Input,
    Keepalive,
    Lifecycle,
    Notify,
    SendPing,
    StartConnecting,
    State,
)
from interlink.client.outbox import DEFAULT_LIMIT, Outbox, Outgoing

# Stream errors after which the hub will not have this session back (RFC 6120 §4.9.3): the
# account was removed, disabled or refused, or another login replaced this resource. A suspended
# provider's sessions end with policy-violation; the next login is refused, which ends it then.
# Any other error (e.g. ``reset``: an operator ended the sessions only, or system-shutdown) is a
# lost connection: the client connects again after its back-off.
TERMINAL_STREAM_ERRORS = frozenset(("not-authorized", "conflict"))


class Connection:
    """One client's connection lifecycle (see the module docstring).

    ``notify`` hands an event to the application; ``spawn`` runs a coroutine in the client's
    background; ``reconnect`` starts one connection attempt; ``back_online(resumed)`` runs
    after every later session is up, before what waited is re-sent; ``acknowledged(entry)``
    runs when an entry leaves the outbox (the hub has it, or it was written without stream
    management); ``outbox_limit``: entries held at most (:class:`OutboxFull` beyond)."""

    def __init__(
        self,
        *,
        backoff: Backoff | None,
        keepalive: Keepalive | None,
        clock: Callable[[], float],
        notify: Callable[[ClientEvent], None],
        spawn: Callable[[Coroutine[Any, Any, None]], None],
        reconnect: Callable[[], Coroutine[Any, Any, None]],
        back_online: Callable[[bool], Awaitable[None]],
        outbox_limit: int = DEFAULT_LIMIT,
        acknowledged: Callable[[Outgoing], None] = lambda _: None,
    ) -> None:
        self.lifecycle = Lifecycle(backoff, keepalive)
        self.outbox = Outbox(outbox_limit)
        self._acknowledged = acknowledged
        self._clock = clock
        self._notify = notify
        self._spawn = spawn
        self._reconnect = reconnect
        self._back_online = back_online
        self._xmpp: slixmpp.ClientXMPP | None = None
        self._wake = asyncio.Event()  # the lifecycle's timer may have moved
        self._last_stream_error = ""
        self._drop_reason: str | None = None

    @property
    def online(self) -> bool:
        return self.lifecycle.state is State.ONLINE

    def watch(self, xmpp: slixmpp.ClientXMPP) -> None:
        """Start over (a new first login) on ``xmpp``, listening to its events."""
        self.lifecycle = Lifecycle(self.lifecycle.backoff, self.lifecycle.keepalive)
        self._xmpp = xmpp
        xmpp.add_event_handler("session_start", lambda _: self.feed(Input.CONNECTED))
        xmpp.add_event_handler(
            "session_resumed", lambda _: self.feed(Input.CONNECTED, resumed=True)
        )
        xmpp.add_event_handler("disconnected", self._on_disconnected)
        xmpp.add_event_handler("connection_failed", self._on_connection_failed)
        xmpp.add_event_handler("stream_error", self._on_stream_error)
        xmpp.add_event_handler("failed_all_auth", self._on_auth_refused)
        xmpp.add_event_handler("stanza_acked", self._on_acked)
        xmpp.add_filter("in", self._on_traffic)

    def close(self) -> None:
        """The application closed the client: no more attempts, the timer stops."""
        self.lifecycle.handle(Input.CLOSE, self._clock())
        self._wake.set()

    # -- sending -------------------------------------------------------------------------------
    def hold(self, entry: Outgoing) -> None:
        """Keep ``entry`` until the hub acknowledges it (re-sent after a new session). Raises
        :class:`OutboxFull` when the outbox is full."""
        self.outbox.add(entry)

    def resend_held(self) -> None:
        """Put every held entry on the connection (the first session of a process that found
        entries an earlier one left unacknowledged)."""
        for entry in self.outbox.to_send(resumed=False):
            self.write(entry)

    def write(self, entry: Outgoing) -> None:
        """Put ``entry`` on the connection if there is one; otherwise it waits in the outbox."""
        xmpp = self._xmpp
        if xmpp is None or not self.online or xmpp.transport is None:
            return
        for stanza in entry.stanzas:
            stanza.send()
        self.outbox.written(entry.message_id)
        sm: Any = xmpp.plugin["xep_0198"]
        if sm.enabled_out:
            # Ask for an ack right behind the message (XEP-0198 §4), through the same ordered
            # queue: slixmpp's own request is written before the stanza that prompted it.
            xmpp.send(str(sm.stanza.RequestAck(xmpp)), use_filters=False)
        else:  # no stream management: written is all that can be known
            if self.outbox.acknowledged(entry.message_id) is not None:
                self._acknowledged(entry)
            if entry.report:
                self._notify(Sent(entry.peer, entry.message_id, acknowledged=False))

    # -- slixmpp's events ----------------------------------------------------------------------
    def _on_traffic(self, stanza: Any) -> Any:
        self.lifecycle.heard(self._clock())
        return stanza

    def _on_disconnected(self, reason: Any) -> None:
        text = self._drop_reason or self._last_stream_error or str(reason or "connection closed")
        self._drop_reason = None
        self.feed(Input.LOST, reason=text)

    def _on_connection_failed(self, error: Any) -> None:
        if self.lifecycle.state is State.CONNECTING and self._xmpp is not None:
            # slixmpp would retry on its own schedule; the lifecycle keeps the schedule instead.
            self._xmpp.cancel_connection_attempt()
            self.feed(Input.LOST, reason=f"could not connect: {error}")

    def _on_stream_error(self, error: Any) -> None:
        condition = str(error["condition"])
        text = str(error["text"] or "")
        self._last_stream_error = f"{condition}: {text}" if text else condition
        if condition in TERMINAL_STREAM_ERRORS:
            ended = f"the hub ended the session ({self._last_stream_error})"
            self.feed(Input.REFUSED, reason=ended)

    def _on_auth_refused(self, _: Any) -> None:
        before = f" after {self._last_stream_error}" if self._last_stream_error else ""
        self.feed(Input.REFUSED, reason=f"the hub refused the login{before}")

    def _on_acked(self, stanza: Any) -> None:
        if not isinstance(stanza, slixmpp.Message) or not stanza["id"]:
            return
        entry = self.outbox.stanza_acknowledged(stanza["id"])
        if entry is None:
            return
        self._acknowledged(entry)
        if entry.report:
            self._notify(Sent(entry.peer, entry.message_id))

    # -- the lifecycle -------------------------------------------------------------------------
    def feed(self, event: Input, *, reason: str = "", resumed: bool = False) -> None:
        was, again = self.lifecycle.state, self.lifecycle.ever_online
        actions = self.lifecycle.handle(event, self._clock(), reason=reason, resumed=resumed)
        if event is Input.CONNECTED and was is State.CONNECTING:
            self._last_stream_error = ""
            if again:  # the first login's set-up is connect()'s
                self._spawn(self._resume_sending(resumed))
        self._perform(actions)

    async def _resume_sending(self, resumed: bool) -> None:
        await self._back_online(resumed)
        for entry in self.outbox.to_send(resumed=resumed):
            self.write(entry)

    def _perform(self, actions: list[Action]) -> None:
        xmpp = self._xmpp
        for action in actions:
            if isinstance(action, Notify):
                self._notify(action.event)
                if isinstance(action.event, ConnectionEnded) and xmpp is not None:
                    xmpp.cancel_connection_attempt()
            elif isinstance(action, SendPing) and xmpp is not None:
                self._spawn(self._ping(xmpp))
            elif isinstance(action, DropConnection) and xmpp is not None:
                self._drop_reason = action.reason
                xmpp.abort()
            elif isinstance(action, StartConnecting):
                self._spawn(self._reconnect())
        self._wake.set()

    async def supervise(self) -> None:
        """Run the lifecycle's timer until the client ends."""
        while self.lifecycle.state is not State.ENDED:
            due = self.lifecycle.get_timer()
            wait = None if due is None else max(0.0, due - self._clock())
            self._wake.clear()
            # asyncio.timeout, not wait_for: close() cancels this loop, and on Python 3.11 a
            # cancellation that lands as wait_for's timeout fires can be lost (cpython gh-86296)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._wake.wait()
            self._perform(self.lifecycle.handle_timer(self._clock()))

    async def _ping(self, xmpp: slixmpp.ClientXMPP) -> None:
        ping: Any = xmpp.plugin["xep_0199"]
        with contextlib.suppress(Exception):  # the lifecycle's timer decides what silence means
            await ping.ping(timeout=self.lifecycle.keepalive.timeout)
