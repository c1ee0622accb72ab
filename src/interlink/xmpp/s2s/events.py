"""What an s2s stream (:mod:`interlink.xmpp.s2s.stream`) tells its transport shell.

Each event that asks for something names the call that answers it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from interlink.errors import StreamError
from interlink.xmpp.stanza import Stanza


class AuthMethod(Enum):
    SASL_EXTERNAL = "sasl-external"  # XEP-0178
    DIALBACK = "dialback"  # XEP-0220


@dataclass(frozen=True, slots=True)
class TlsStartRequested:
    """Flush the output, upgrade the transport to TLS, then call ``tls_established()``."""


@dataclass(frozen=True, slots=True)
class PeerAuthenticated:
    """The peer is now known to be ``domain`` (inbound: it may send from it; outbound: we may
    send from ``local`` to it)."""

    domain: str
    method: AuthMethod


@dataclass(frozen=True, slots=True)
class DialbackVerifyRequested:
    """Inbound: a peer claims ``originating`` with a dialback key. Ask ``originating``'s
    authoritative server with ``<db:verify/>`` (an outbound verify stream), then answer with
    ``dialback_verified(originating, receiving, valid)``."""

    originating: str
    receiving: str
    stream_id: str
    key: str


@dataclass(frozen=True, slots=True)
class DialbackVerifyAnswered:
    """Outbound verify stream: the authoritative server's answer to a ``<db:verify/>``."""

    originating: str
    receiving: str
    stream_id: str
    valid: bool


@dataclass(frozen=True, slots=True)
class Ready:
    """Outbound: stanzas may flow (queued ones were written)."""

    domain: str


@dataclass(frozen=True, slots=True)
class StanzaReceived:
    """Inbound: a stanza whose ``from`` is in an authenticated domain and whose ``to`` is ours."""

    stanza: Stanza
    size: int


@dataclass(frozen=True, slots=True)
class StreamClosed:
    """The stream is over; close the transport once the output is flushed. ``error`` is the
    stream error we sent (``remote=False``) or the one the peer sent (``remote=True``)."""

    error: StreamError | None = None
    remote: bool = False


S2SEvent = (
    TlsStartRequested
    | PeerAuthenticated
    | DialbackVerifyRequested
    | DialbackVerifyAnswered
    | Ready
    | StanzaReceived
    | StreamClosed
)

__all__ = [
    "AuthMethod",
    "DialbackVerifyAnswered",
    "DialbackVerifyRequested",
    "PeerAuthenticated",
    "Ready",
    "S2SEvent",
    "StanzaReceived",
    "StreamClosed",
    "TlsStartRequested",
]
