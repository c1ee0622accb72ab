"""SASL OAUTHBEARER (RFC 7628) for slixmpp, which ships no such mechanism: third-party users log
in to the hub with a fresh token from their provider instead of a password."""

from __future__ import annotations

from typing import Any

from slixmpp.util.sasl.client import Mech, sasl_mech


@sasl_mech(95)
class OAuthBearer(Mech):
    name = "OAUTHBEARER"
    required_credentials = {"access_token"}  # noqa: RUF012 - slixmpp's class attribute

    def process(self, challenge: bytes = b"") -> bytes:
        if challenge:
            return b"\x01"  # RFC 7628 §3.2.3: acknowledge an error challenge
        token: Any = self.credentials["access_token"]
        raw = token if isinstance(token, bytes) else str(token).encode()
        return b"n,,\x01auth=Bearer " + raw + b"\x01\x01"
