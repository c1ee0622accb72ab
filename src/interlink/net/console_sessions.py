"""The operator console's logins, in memory: a random session id (the cookie) names a
:class:`ConsoleSession` with its CSRF token and pending notices. Bounded and expiring, time
passed in (``clock``)."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class ConsoleSession:
    csrf: str
    expires: float
    notices: list[str] = field(default_factory=list)


class ConsoleSessions:
    """Console logins, in memory: at most ``max_sessions`` (a new login ends the oldest), each
    ending ``lifetime`` seconds after it began."""

    def __init__(self, max_sessions: int, lifetime: float, clock: Callable[[], float]) -> None:
        self._max_sessions = max_sessions
        self._lifetime = lifetime
        self._clock = clock
        self._sessions: dict[str, ConsoleSession] = {}

    def __len__(self) -> int:
        return len(self._sessions)

    def create(self) -> tuple[str, ConsoleSession]:
        while len(self._sessions) >= self._max_sessions:
            self._sessions.pop(next(iter(self._sessions)))
        sid = secrets.token_urlsafe(32)
        session = ConsoleSession(secrets.token_urlsafe(32), self._clock() + self._lifetime)
        self._sessions[sid] = session
        return sid, session

    def get(self, sid: str | None) -> ConsoleSession | None:
        if not sid:
            return None
        session = self._sessions.get(sid)
        if session is not None and session.expires <= self._clock():
            del self._sessions[sid]
            return None
        return session

    def end(self, sid: str | None) -> None:
        if sid:
            self._sessions.pop(sid, None)
