"""Server-to-server XMPP (RFC 6120 ``jabber:server``; XEP-0178, XEP-0220, XEP-0185), sans-I/O.

:mod:`~interlink.xmpp.s2s.stream` holds the two stream machines, :mod:`~interlink.xmpp.s2s.dialback`
the dialback wire code, :mod:`~interlink.xmpp.s2s.certs` certificate identities.
"""

from __future__ import annotations

from interlink.xmpp.s2s import certs, dialback
from interlink.xmpp.s2s.events import (
    AuthMethod,
    DialbackVerifyAnswered,
    DialbackVerifyRequested,
    PeerAuthenticated,
    Ready,
    S2SEvent,
    StanzaReceived,
    StreamClosed,
    TlsStartRequested,
)
from interlink.xmpp.s2s.stream import (
    NO_CERTIFICATE,
    InboundStream,
    OutboundStream,
    PeerCertificate,
    PeerGate,
    S2SConfig,
    S2SState,
)

__all__ = [
    "NO_CERTIFICATE",
    "AuthMethod",
    "DialbackVerifyAnswered",
    "DialbackVerifyRequested",
    "InboundStream",
    "OutboundStream",
    "PeerAuthenticated",
    "PeerCertificate",
    "PeerGate",
    "Ready",
    "S2SConfig",
    "S2SEvent",
    "S2SState",
    "StanzaReceived",
    "StreamClosed",
    "TlsStartRequested",
    "certs",
    "dialback",
]
