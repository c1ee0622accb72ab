"""The SDK's connection lifecycle, as a sans-I/O state machine.

Theory of operation
-------------------
A client is ``CONNECTING`` (first login or a reconnection attempt under way), ``ONLINE`` (a
session is bound or resumed), ``WAITING`` (the connection was lost; the next attempt is due at a
time chosen by the back-off), or ``ENDED`` (terminal: the hub refused this account — provider
suspended, account removed, login refused — the attempts ran out, or the application closed the
client). Inputs are fed with the time they happened (``now``); the shell asks :meth:`get_timer`
when to call :meth:`handle_timer` and performs the :data:`Action` objects the core returns.

Dead connections. A TCP connection to a vanished hub can look open for many minutes. While
``ONLINE``, when nothing was heard for ``Keepalive.interval`` seconds the core asks for a
XEP-0199 ping (:class:`SendPing`); any traffic answers it. When nothing was heard for a further
``Keepalive.timeout`` seconds it declares the connection dead (:class:`DropConnection`); the
shell aborts the socket, which comes back here as ``LOST``.

Back-off. Attempt *n* waits ``min(maximum, initial * factor**(n-1))`` seconds, minus up to
``jitter`` of it at random, so that the clients of a restarted hub do not all come back in the
same instant. After ``max_attempts`` failed attempts in a row the client ends.

Transitions are data (:data:`TRANSITIONS`): a (state, input) pair not in the table is ignored,
e.g. a second ``LOST`` for the same outage.

    CONNECTING --CONNECTED--> ONLINE --LOST--> WAITING --(timer)--> CONNECTING
    CONNECTING --LOST-------> WAITING            (or ENDED after max_attempts)
    any        --REFUSED/CLOSE--> ENDED
"""

from __future__ import annotations

import enum
import random as _random
from collections.abc import Callable
from dataclasses import dataclass

from interlink.client.events import ConnectionEnded, Disconnected, Reconnected


@dataclass(frozen=True, slots=True)
class Backoff:
    """Delays between reconnection attempts (seconds)."""

    initial: float = 1.0
    maximum: float = 60.0
    factor: float = 2.0
    jitter: float = 0.5  # fraction of a delay that may be taken off at random
    max_attempts: int = 100  # failed attempts in a row before the client ends

    def __post_init__(self) -> None:
        if not 0 < self.initial <= self.maximum:
            raise ValueError("backoff needs 0 < initial <= maximum")
        if self.factor < 1:
            raise ValueError("backoff factor must be at least 1")
        if not 0 <= self.jitter < 1:
            raise ValueError("backoff jitter must be in [0, 1)")
        if self.max_attempts < 1:
            raise ValueError("backoff max_attempts must be at least 1")

    def delay(self, attempt: int, draw: float) -> float:
        """The wait before attempt ``attempt`` (1-based); ``draw`` is uniform in [0, 1)."""
        base = min(self.maximum, self.initial * self.factor ** (attempt - 1))
        return base * (1 - self.jitter * draw)


@dataclass(frozen=True, slots=True)
class Keepalive:
    """XEP-0199 pings on a quiet connection (seconds)."""

    interval: float = 60.0  # quiet time before a ping
    timeout: float = 20.0  # further quiet time before the connection counts as dead

    def __post_init__(self) -> None:
        if self.interval <= 0 or self.timeout <= 0:
            raise ValueError("keepalive interval and timeout must be positive")


class State(enum.Enum):
    CONNECTING = "connecting"
    ONLINE = "online"
    WAITING = "waiting"
    ENDED = "ended"


class Input(enum.Enum):
    CONNECTED = "connected"  # a session was bound (resumed=False) or resumed (resumed=True)
    LOST = "lost"  # the connection closed or an attempt failed
    REFUSED = "refused"  # the hub will not have this account back: terminal
    CLOSE = "close"  # the application closed the client


@dataclass(frozen=True, slots=True)
class SendPing:
    pass


@dataclass(frozen=True, slots=True)
class DropConnection:
    reason: str


@dataclass(frozen=True, slots=True)
class StartConnecting:
    attempt: int  # 1 for the first attempt after a loss


@dataclass(frozen=True, slots=True)
class Notify:
    event: Disconnected | Reconnected | ConnectionEnded


Action = SendPing | DropConnection | StartConnecting | Notify


class Lifecycle:
    """One client's connection lifecycle (see the module docstring). Starts ``CONNECTING``."""

    def __init__(
        self,
        backoff: Backoff | None = None,
        keepalive: Keepalive | None = None,
        *,
        draw: Callable[[], float] = _random.random,
    ) -> None:
        self.backoff = backoff or Backoff()
        self.keepalive = keepalive or Keepalive()
        self._draw = draw
        self.state = State.CONNECTING
        self.attempt = 0  # failed attempts since the last session
        self._ever_online = False
        self._retry_at: float | None = None
        self._heard_at = 0.0
        self._pinged = False
        self.ended_reason: str | None = None

    @property
    def ever_online(self) -> bool:
        """Whether a session was up at least once (later ones are reconnections)."""
        return self._ever_online

    # -- inputs ----------------------------------------------------------------------------------
    def handle(
        self, event: Input, now: float, *, reason: str = "", resumed: bool = False
    ) -> list[Action]:
        """Feed one input; returns what the shell must do. Pairs not in :data:`TRANSITIONS`
        change nothing."""
        handler = TRANSITIONS.get((self.state, event))
        if handler is None:
            return []
        return handler(self, now, reason, resumed)

    def heard(self, now: float) -> None:
        """Something arrived on the connection: it is alive."""
        self._heard_at = now
        self._pinged = False

    def get_timer(self) -> float | None:
        """When :meth:`handle_timer` is due next, or None."""
        if self.state is State.WAITING:
            return self._retry_at
        if self.state is State.ONLINE:
            if self._pinged:
                return self._heard_at + self.keepalive.interval + self.keepalive.timeout
            return self._heard_at + self.keepalive.interval
        return None

    def handle_timer(self, now: float) -> list[Action]:
        due = self.get_timer()
        if due is None or now < due:
            return []
        if self.state is State.WAITING:
            self.state = State.CONNECTING
            self._retry_at = None
            return [StartConnecting(self.attempt)]
        if not self._pinged:
            self._pinged = True
            return [SendPing()]
        quiet = self.keepalive.interval + self.keepalive.timeout
        return [DropConnection(f"no answer from the hub for {quiet:g} s")]

    # -- transitions -----------------------------------------------------------------------------
    def _online(self, now: float, reason: str, resumed: bool) -> list[Action]:
        self.state = State.ONLINE
        self.heard(now)
        again = self._ever_online
        self._ever_online = True
        self.attempt = 0
        return [Notify(Reconnected(resumed))] if again else []

    def _lost(self, now: float, reason: str, resumed: bool) -> list[Action]:
        was_online = self.state is State.ONLINE
        if not self._ever_online:  # the first login is the application's to retry
            return self._end(now, reason or "could not connect", False)
        self.attempt += 1
        if self.attempt > self.backoff.max_attempts:
            text = f"gave up after {self.backoff.max_attempts} attempts: {reason}"
            return self._end(now, text, False)
        wait = self.backoff.delay(self.attempt, self._draw())
        self._retry_at = now + wait
        self.state = State.WAITING
        return [Notify(Disconnected(reason, wait))] if was_online else []

    def _end(self, now: float, reason: str, resumed: bool) -> list[Action]:
        self.state = State.ENDED
        self.ended_reason = reason
        self._retry_at = None
        # A first login that fails is reported by the call that attempted it, not as an event.
        return [Notify(ConnectionEnded(reason))] if self._ever_online else []

    def _close(self, now: float, reason: str, resumed: bool) -> list[Action]:
        self.state = State.ENDED
        self.ended_reason = reason or "closed"
        self._retry_at = None
        return []


_Handler = Callable[[Lifecycle, float, str, bool], list[Action]]

TRANSITIONS: dict[tuple[State, Input], _Handler] = {
    (State.CONNECTING, Input.CONNECTED): Lifecycle._online,
    (State.CONNECTING, Input.LOST): Lifecycle._lost,
    (State.ONLINE, Input.CONNECTED): Lifecycle._online,  # resumed without noticing the loss
    (State.ONLINE, Input.LOST): Lifecycle._lost,
    (State.CONNECTING, Input.REFUSED): Lifecycle._end,
    (State.ONLINE, Input.REFUSED): Lifecycle._end,
    (State.WAITING, Input.REFUSED): Lifecycle._end,
    (State.CONNECTING, Input.CLOSE): Lifecycle._close,
    (State.ONLINE, Input.CLOSE): Lifecycle._close,
    (State.WAITING, Input.CLOSE): Lifecycle._close,
}
"""(state, input) → transition. ``WAITING``+``LOST`` is absent: an outage is counted once."""
