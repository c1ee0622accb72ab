"""What a :class:`~interlink.xmpp.stream.ServerStream` tells its transport shell.

Each event that asks for something names the call that answers it; input that arrives before the
answer waits inside the stream (see the machine's theory of operation).
"""

from __future__ import annotations

from dataclasses import dataclass

from interlink.errors import SaslCondition, StreamError
from interlink.xmpp.stanza import Stanza


@dataclass(frozen=True, slots=True)
class TlsStartRequested:
    """``<proceed/>`` is queued: flush it, upgrade the transport, call ``tls_established()``."""


@dataclass(frozen=True, slots=True)
class CredentialsRequested:
    """Look up ``username``'s stored credentials; answer with ``supply_credentials()``."""

    mechanism: str
    username: str


@dataclass(frozen=True, slots=True)
class TokenCheckRequested:
    """OAUTHBEARER: verify ``token``; answer with ``supply_token_result()``."""

    token: str
    authzid: str


@dataclass(frozen=True, slots=True)
class Authenticated:
    """SASL succeeded (informational); the peer restarts the stream next."""

    username: str


@dataclass(frozen=True, slots=True)
class AuthenticationFailed:
    """A SASL attempt ended in ``<failure/>`` (informational: for throttling and the logs)."""

    condition: SaslCondition
    text: str


@dataclass(frozen=True, slots=True)
class BindRequested:
    """Bind a resource (RFC 6120 §7); answer with ``accept_bind()`` or ``refuse_bind()``."""

    resource: str | None


@dataclass(frozen=True, slots=True)
class StanzaReceived:
    """A stanza to route; its ``from`` is already stamped by the role. ``counted``: stream
    management counts it; call ``sm.stanza_handled()`` once it is routed (durably)."""

    stanza: Stanza
    size: int
    counted: bool = False


@dataclass(frozen=True, slots=True)
class StreamClosed:
    """The stream is over. ``error`` is the stream error sent, if any; ``by_peer`` says whether
    the peer closed it cleanly. Close the transport once the output is flushed."""

    error: StreamError | None
    by_peer: bool


@dataclass(frozen=True, slots=True)
class SmEnabled:
    """XEP-0198 is on: stanzas sent from now on are kept until the client acknowledges them."""


@dataclass(frozen=True, slots=True)
class ResumeRequested:
    """XEP-0198 ``<resume previd h/>`` from an authenticated client: find the session kept
    under ``previd`` for this account; answer ``accept_resume()`` or ``refuse_resume()``."""

    previd: str
    h: int


@dataclass(frozen=True, slots=True)
class ResumeRefused:
    """XEP-0198 ``<resume previd h/>`` was answered ``<failed/>`` (nothing is resumed), but the
    client has the first ``h`` stanzas of stream ``previd``: settle what was stored for them."""

    previd: str
    h: int


@dataclass(frozen=True, slots=True)
class AckRequested:
    """XEP-0198 ``<r/>``: once every stanza received before it is handled, call ``send_ack()``."""


@dataclass(frozen=True, slots=True)
class AckReceived:
    """XEP-0198 ``<a h/>``: the client has the first ``acked`` stanzas sent since ``<enable/>``."""

    acked: int


StreamEvent = (
    TlsStartRequested
    | CredentialsRequested
    | TokenCheckRequested
    | Authenticated
    | AuthenticationFailed
    | BindRequested
    | StanzaReceived
    | StreamClosed
    | AckRequested
    | AckReceived
    | SmEnabled
    | ResumeRefused
    | ResumeRequested
)

__all__ = [
    "AckReceived",
    "AckRequested",
    "Authenticated",
    "AuthenticationFailed",
    "BindRequested",
    "CredentialsRequested",
    "ResumeRefused",
    "ResumeRequested",
    "SmEnabled",
    "StanzaReceived",
    "StreamClosed",
    "StreamEvent",
    "TlsStartRequested",
    "TokenCheckRequested",
]
