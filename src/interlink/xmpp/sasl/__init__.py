"""SASL for the server role (RFC 6120 §6, RFC 4422): SCRAM-SHA-256, SCRAM-SHA-1 and PLAIN.

Each mechanism is a small sans-I/O state machine. Looking up credentials is I/O, so a mechanism
first names the user (:class:`NeedCredentials`) and the caller answers with
:meth:`SaslExchange.supply`. Only salted SCRAM keys are stored, never passwords; PLAIN is checked
against the stored SCRAM-SHA-256 key and is only offered inside TLS.
"""

from __future__ import annotations

from interlink.xmpp.sasl.credentials import ScramCredentials, StoredCredentials, derive_credentials
from interlink.xmpp.sasl.mechanisms import (
    MECHANISMS,
    NeedCredentials,
    NeedTokenCheck,
    SaslChallenge,
    SaslExchange,
    SaslSuccess,
    start_exchange,
)

__all__ = [
    "MECHANISMS",
    "NeedCredentials",
    "NeedTokenCheck",
    "SaslChallenge",
    "SaslExchange",
    "SaslSuccess",
    "ScramCredentials",
    "StoredCredentials",
    "derive_credentials",
    "start_exchange",
]
