"""A third party's side of enlistment, for tests: provider signing key, user identity key, tokens."""

from __future__ import annotations

import secrets
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from joserfc import jwt
from joserfc.jwk import OKPKey

from interlink.interop.enlistment import b64url, ed25519_thumbprint

HUB = "hub.test"


@dataclass
class ThirdParty:
    provider_id: str = "examplechat"
    provider_key: OKPKey = field(
        default_factory=lambda: OKPKey.generate_key("Ed25519", parameters={"kid": "pk1"})
    )
    identity: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)

    @property
    def jwks(self) -> dict[str, Any]:
        return {"keys": [self.provider_key.as_dict(private=False)]}

    def provider_body(self, callback: str = "https://api.example.chat") -> dict[str, Any]:
        """The admin API's body registering this provider."""
        return {
            "id": self.provider_id,
            "display_name": "Example Chat",
            "callback_url": callback,
            "jwks": self.jwks,
        }

    @property
    def identity_public(self) -> bytes:
        return self.identity.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    def token(self, subject: str = "user-42", *, now: float | None = None, **changes: Any) -> str:
        now = time.time() if now is None else now
        key = changes.pop("_key", self.provider_key)
        claims: dict[str, Any] = {
            "iss": self.provider_id,
            "sub": subject,
            "aud": HUB,
            "iat": int(now),
            "exp": int(now) + 300,
            "jti": secrets.token_hex(8),
            "interlink_uid": "@alice:example.chat",
            "cnf": {"jkt": ed25519_thumbprint(self.identity_public)},
        }
        claims.update(changes)
        claims = {k: v for k, v in claims.items() if v is not None}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return jwt.encode({"alg": "Ed25519", "kid": "pk1"}, claims, key, algorithms=["Ed25519"])

    def prove(self, challenge: str, domain: str = HUB) -> tuple[str, str]:
        """(identity key, signature over challenge + domain), base64url."""
        signature = self.identity.sign(challenge.encode() + domain.encode())
        return b64url(self.identity_public), b64url(signature)
