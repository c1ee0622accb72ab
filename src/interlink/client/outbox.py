"""Messages this device sent that the hub has not acknowledged yet.

A message is *unwritten* while the client is offline, *written* once it went onto a connection,
and leaves the outbox when the hub acknowledges it (XEP-0198 ``<a/>``, §4). After a resumed
stream (§5) the stream-management layer itself re-sends what it wrote and was not acknowledged,
so only the unwritten ones are sent; after a new session everything still here is sent again —
the old session's unacknowledged stanzas are gone with it. Without stream management a written
message is done: nothing more can be known. Sans-I/O: the shell sends and reports back.

The outbox is bounded (``limit`` messages): a message that does not fit is refused before it is
encrypted (:class:`OutboxFull`), never dropped later. The SDK also keeps each entry in its
store until the hub acknowledges it, so that what ``send_text`` accepted survives a restart of
the process and is sent once more, with the same id (``InterlinkClient``).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from interlink.client.errors import ClientError

DEFAULT_LIMIT = 1000  # unacknowledged messages held at most


class OutboxFull(ClientError):
    """Too many sent messages wait for the hub's acknowledgement (the client is offline, or the
    hub does not answer): the message was not sent; try again once some are acknowledged."""


@dataclass(slots=True)
class Outgoing:
    peer: str
    message_id: str
    stanzas: list[Any]  # what the transport sends, in order (a legacy twin after the message)
    report: bool  # whether the application hears of it (a Sent event)
    written: bool = False
    acked: int = 0  # stanzas of its last writing the hub acknowledged (a twin has two)


class Outbox:
    """Unacknowledged outgoing messages, in the order they were sent, by message id."""

    def __init__(self, limit: int = DEFAULT_LIMIT) -> None:
        if limit < 1:
            raise ValueError("outbox_limit must be at least 1")
        self.limit = limit
        self._entries: OrderedDict[str, Outgoing] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def check_room(self) -> None:
        """Raise :class:`OutboxFull` when no further message fits."""
        if len(self._entries) >= self.limit:
            raise OutboxFull(
                f"{len(self._entries)} sent messages wait for the hub's acknowledgement "
                f"(outbox_limit {self.limit}); not sent"
            )

    def add(self, entry: Outgoing) -> None:
        """Keep ``entry``. Raises :class:`OutboxFull` when full (unless it is here already)."""
        if entry.message_id not in self._entries:
            self.check_room()
        self._entries[entry.message_id] = entry

    def restore(self, entry: Outgoing) -> None:
        """Keep ``entry``, which an earlier run accepted, whatever the limit is now."""
        self._entries[entry.message_id] = entry

    def written(self, message_id: str) -> None:
        entry = self._entries.get(message_id)
        if entry is not None:
            entry.written = True
            entry.acked = 0  # what counts is the acks of this writing

    def acknowledged(self, message_id: str) -> Outgoing | None:
        """The entry the hub just acknowledged, removed; None for stanzas not tracked here."""
        return self._entries.pop(message_id, None)

    def stanza_acknowledged(self, message_id: str) -> Outgoing | None:
        """The hub acknowledged one stanza of ``message_id``: the entry, removed, once it has
        acknowledged every stanza of its last writing (both twins); None until then, and for
        stanzas not tracked here."""
        entry = self._entries.get(message_id)
        if entry is None:
            return None
        entry.acked += 1
        if entry.acked < len(entry.stanzas):
            return None
        return self._entries.pop(message_id)

    def to_send(self, *, resumed: bool) -> list[Outgoing]:
        """What to send now that a session is up again (see the module docstring)."""
        return [e for e in self._entries.values() if not (resumed and e.written)]

    def ids(self) -> frozenset[str]:
        return frozenset(self._entries)

    def unwritten(self) -> list[Outgoing]:
        return [e for e in self._entries.values() if not e.written]
