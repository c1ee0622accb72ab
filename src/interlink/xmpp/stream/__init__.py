"""The XML stream state machine (RFC 6120 §4–§8, RFC 7395 framing) and what it talks to.

- :mod:`.machine` — :class:`ServerStream`, its states and the transition table (start here);
- :mod:`.roles` — what a client-to-server stream offers and accepts, and the seam for s2s;
- :mod:`.config` — :class:`StreamConfig` and :class:`HostedDomains`;
- :mod:`.events` — what the stream tells its transport shell.

Framing (TCP or WebSocket) is :mod:`interlink.xmpp.framing`, shared with the parser.
"""

from __future__ import annotations

from interlink.xmpp.framing import Framing
from interlink.xmpp.stream.config import HostedDomains, SingleDomain, StreamConfig
from interlink.xmpp.stream.events import (
    AckReceived,
    AckRequested,
    Authenticated,
    AuthenticationFailed,
    BindRequested,
    CredentialsRequested,
    ResumeRefused,
    ResumeRequested,
    SmEnabled,
    StanzaReceived,
    StreamClosed,
    StreamEvent,
    TlsStartRequested,
    TokenCheckRequested,
)
from interlink.xmpp.stream.machine import TRANSITIONS, Input, ServerStream, StreamState, mermaid
from interlink.xmpp.stream.roles import ClientRole, StreamRole

__all__ = [
    "TRANSITIONS",
    "AckReceived",
    "AckRequested",
    "Authenticated",
    "AuthenticationFailed",
    "BindRequested",
    "ClientRole",
    "CredentialsRequested",
    "Framing",
    "HostedDomains",
    "Input",
    "ResumeRefused",
    "ResumeRequested",
    "ServerStream",
    "SingleDomain",
    "SmEnabled",
    "StanzaReceived",
    "StreamClosed",
    "StreamConfig",
    "StreamEvent",
    "StreamRole",
    "StreamState",
    "TlsStartRequested",
    "TokenCheckRequested",
    "mermaid",
]
