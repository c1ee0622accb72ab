"""Sessions waiting to be resumed (XEP-0198 §5): the resumption registry and the parked port.

A client that enabled stream management with ``resume='true'`` and loses its connection (no
``</stream>``, no stream error) does not end its session: the session stays bound and available
— presence unchanged, messages still routed to it — but its port is a :class:`ParkedPort`, which
adds what is routed to the stream-management queue instead of writing it. A new stream of the
same account that sends ``<resume previd h/>`` within the window takes the session and its queue
over (:meth:`ResumptionRegistry.take`); what the client had not acknowledged is sent again with
the same numbers. A session not resumed in time expires: it ends as any session does, and what
the client never acknowledged goes to offline storage (:meth:`OfflineDelivery.take_back`).

The registry is plain data with time passed in; the hub arms the timer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from interlink.errors import StreamError
from interlink.hub.session import Session
from interlink.xmpp.jid import JID
from interlink.xmpp.stream.sm import StreamManagement


class ParkedPort:
    """The port of a session waiting to be resumed: routed stanzas join the unacknowledged
    queue. Past the queue's limit, or when the hub ends the session (``terminate``), the
    session expires at once (``expire``)."""

    def __init__(
        self,
        state: StreamManagement,
        expire: Callable[[], None],
    ) -> None:
        self.state = state
        self._expire = expire

    def write_xml(self, xml: str) -> None:
        state = self.state
        state.keep(xml)
        if len(state.queue) > state.config.max_unacked:
            self._expire()

    async def wait_writable(self) -> None:
        return None

    def terminate(self, error: StreamError | None) -> None:
        self._expire()


@dataclass(slots=True)
class Parked:
    session: Session
    state: StreamManagement
    expires_at: float


class ResumptionRegistry:
    """Parked sessions by resumption id."""

    def __init__(self) -> None:
        self._parked: dict[str, Parked] = {}

    def __len__(self) -> int:
        return len(self._parked)

    def park(self, resume_id: str, parked: Parked) -> None:
        self._parked[resume_id] = parked

    def take(self, resume_id: str, account: JID, now: float) -> Parked | None:
        """The session parked under ``resume_id`` for ``account``, removed; ``None`` if there
        is none, it is another account's (left where it is) or its window has passed."""
        parked = self._parked.get(resume_id)
        if parked is None or parked.session.jid.bare != account or now >= parked.expires_at:
            return None
        del self._parked[resume_id]
        return parked

    def pop(self, resume_id: str) -> Parked | None:
        return self._parked.pop(resume_id, None)

    def expired(self, now: float) -> list[Parked]:
        """The sessions whose window has passed, removed."""
        due = [rid for rid, p in self._parked.items() if now >= p.expires_at]
        return [self._parked.pop(rid) for rid in due]


__all__ = ["Parked", "ParkedPort", "ResumptionRegistry"]
