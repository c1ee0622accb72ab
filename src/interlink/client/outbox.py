"""Messages this device sent that the hub has not acknowledged yet.

A message is *unwritten* while the client is offline, *written* once it went onto a connection,
and leaves the outbox when the hub acknowledges it (XEP-0198 ``<a/>``, §4). After a resumed
stream (§5) the stream-management layer itself re-sends what it wrote and was not acknowledged,
so only the unwritten ones are sent; after a new session everything still here is sent again —
the old session's unacknowledged stanzas are gone with it. Without stream management a written
message is done: nothing more can be known. Sans-I/O: the shell sends and reports back.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any


@dataclass(slots=True)
class Outgoing:
    peer: str
    message_id: str
    stanza: Any  # what the transport sends; opaque here
    report: bool  # whether the application hears of it (a Sent event)
    written: bool = False


class Outbox:
    """Unacknowledged outgoing messages, in the order they were sent, by message id."""

    def __init__(self) -> None:
        self._entries: OrderedDict[str, Outgoing] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def add(self, entry: Outgoing) -> None:
        self._entries[entry.message_id] = entry

    def written(self, message_id: str) -> None:
        entry = self._entries.get(message_id)
        if entry is not None:
            entry.written = True

    def acknowledged(self, message_id: str) -> Outgoing | None:
        """The entry the hub just acknowledged, removed; None for stanzas not tracked here."""
        return self._entries.pop(message_id, None)

    def to_send(self, *, resumed: bool) -> list[Outgoing]:
        """What to send now that a session is up again (see the module docstring)."""
        return [e for e in self._entries.values() if not (resumed and e.written)]

    def unwritten(self) -> list[Outgoing]:
        return [e for e in self._entries.values() if not e.written]
