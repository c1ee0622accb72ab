"""Sessions (one per bound resource) and the registry that finds them.

A :class:`Session` keeps what the hub needs to know about one connected resource: its presence,
priority, whether it asked for the roster, and where it sent directed presence. Writing to the
connection goes through the :class:`SessionPort` the transport shell provides.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable, Iterable, Sequence
from enum import StrEnum
from typing import Protocol
from xml.etree.ElementTree import Element

from interlink.errors import StreamError
from interlink.hub.nodes import DirectorySync
from interlink.xmpp.jid import JID
from interlink.xmpp.stanza import Stanza, to_xml


class SessionPort(Protocol):
    """What the hub needs from a transport: write, flow control, close."""

    def write_xml(self, xml: str) -> None:
        """Queue serialized XML (top-level stanzas carry their own ``xmlns``)."""

    async def wait_writable(self) -> None:
        """Return when the peer is keeping up (the outbound buffer is below its mark)."""

    def terminate(self, error: StreamError | None) -> None:
        """Close the stream, with a stream error if given."""


MarkSent = Callable[[str, int], Awaitable[None]]  # (stream id, first stanza number) -> durable


class AckPort(Protocol):
    """A transport whose client acknowledges what it received (XEP-0198 stream management)."""

    async def send_stored(self, xmls: Sequence[str], mark: MarkSent) -> None:
        """Write stanzas that stay in offline storage until acknowledged (so they are not stored
        again if the session ends first). When the client can report later what it received on
        this stream (it asked for resumption), ``mark`` is awaited first with the stream's id and
        the number the first of them gets; nothing else is written to the stream in between."""

    async def acked(self) -> bool:
        """``True`` once the client acknowledged everything written so far; ``False`` if the
        stream ended first."""
        ...


class Session:
    __slots__ = (
        "acks",
        "available",
        "avatar_hash",
        "blocklist_requested",
        "caps_ver",
        "carbons",
        "directed",
        "features",
        "jid",
        "port",
        "presence_payload",
        "priority",
        "roster_requested",
    )

    def __init__(self, jid: JID, port: SessionPort) -> None:
        self.jid = jid
        self.port = port
        self.available = False
        self.priority = 0
        self.presence_payload: tuple[Element, ...] = ()
        self.roster_requested = False
        self.blocklist_requested = False  # XEP-0191 pushes go only to resources that asked
        self.directed: set[JID] = set()
        self.carbons = False  # XEP-0280 enabled on this resource
        self.caps_ver = ""  # XEP-0115 verification string of the client's announced features
        self.features: frozenset[str] = frozenset()
        self.acks: AckPort | None = None  # set once the client enabled stream management
        self.avatar_hash: str | None = None  # XEP-0153, the account's; None: not loaded yet

    def wants_notify(self, node: str) -> bool:
        """The client asked for PEP notifications of ``node`` (XEP-0163 §4.3)."""
        return node + "+notify" in self.features

    def deliver(self, stanza: Stanza) -> None:
        self.port.write_xml(to_xml(stanza, None))

    def deliver_xml(self, xml: str) -> None:
        self.port.write_xml(xml)

    def __repr__(self) -> str:
        return f"<Session {self.jid} available={self.available} priority={self.priority}>"


class BindConflictPolicy(StrEnum):
    """What binding an in-use resource does (RFC 6120 §7.7.2.2)."""

    OVERRIDE = "override"  # give the new session a server-generated resource
    REFUSE = "refuse"  # answer <conflict/>
    REPLACE = "replace"  # end the old session with a <conflict/> stream error


class SessionRegistry:
    """All bound sessions of this hub, by bare JID and resource; in a cluster, each change is
    also written to the shared session directory (``sync``)."""

    def __init__(self, sync: DirectorySync | None = None) -> None:
        self._by_bare: dict[JID, dict[str, Session]] = {}
        self._count = 0
        self._sync = sync

    def __len__(self) -> int:
        return self._count

    def add(self, session: Session) -> None:
        resources = self._by_bare.setdefault(session.jid.bare, {})
        assert session.jid.resource is not None
        if session.jid.resource not in resources:
            self._count += 1
        resources[session.jid.resource] = session
        if self._sync is not None:
            self._sync.changed(session)

    def presence_changed(self, session: Session) -> None:
        """``session`` became available or unavailable, or changed its priority."""
        if self._sync is not None and self.get(session.jid) is session:
            self._sync.changed(session)

    def remove(self, session: Session) -> bool:
        resources = self._by_bare.get(session.jid.bare)
        if not resources or resources.get(session.jid.resource or "") is not session:
            return False
        del resources[session.jid.resource or ""]
        self._count -= 1
        if not resources:
            del self._by_bare[session.jid.bare]
        if self._sync is not None:
            self._sync.gone(session)
        return True

    def count(self, bare: JID) -> int:
        """How many resources ``bare`` has bound."""
        resources = self._by_bare.get(bare)
        return 0 if resources is None else len(resources)

    def get(self, full: JID) -> Session | None:
        resources = self._by_bare.get(full.bare)
        if resources is None or full.resource is None:
            return None
        return resources.get(full.resource)

    def sessions(self, bare: JID) -> Iterable[Session]:
        resources = self._by_bare.get(bare)
        return () if resources is None else tuple(resources.values())

    def available(self, bare: JID) -> list[Session]:
        resources = self._by_bare.get(bare)
        if not resources:
            return []
        return [s for s in resources.values() if s.available]

    def message_targets(self, bare: JID) -> list[Session]:
        """Resources a message to the bare JID goes to: the available ones with the highest
        non-negative priority (RFC 6121 §8.5.2.1.1)."""
        resources = self._by_bare.get(bare)
        if not resources:
            return []
        best = -1
        targets: list[Session] = []
        for s in resources.values():
            if s.available and s.priority >= 0:
                if s.priority > best:
                    best = s.priority
                    targets = [s]
                elif s.priority == best:
                    targets.append(s)
        return targets

    def non_negative(self, bare: JID) -> list[Session]:
        return [s for s in self.available(bare) if s.priority >= 0]

    def all_sessions(self) -> list[Session]:
        return [s for resources in self._by_bare.values() for s in resources.values()]

    def terminate(self, matches: Callable[[JID], bool], error: StreamError) -> int:
        """End every session whose full JID ``matches`` with ``error``; returns how many. (Each
        leaves the registry when its transport reports the stream closed.)"""
        ended = [s for s in self.all_sessions() if matches(s.jid)]
        for session in ended:
            session.port.terminate(error)
        return len(ended)

    def free_resource(self, bare: JID, base: str | None = None) -> str:
        resources = self._by_bare.get(bare, {})
        while True:
            candidate = secrets.token_hex(4) if base is None else f"{base}.{secrets.token_hex(3)}"
            if candidate not in resources:
                return candidate
