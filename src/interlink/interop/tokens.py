"""Verification of provider-signed JWTs (RFC 7519) for enlistment and OAUTHBEARER login.

Pure: the key set, the expected issuer and the time come in; a :class:`ProviderToken` or a
:class:`TokenError` comes out. Checks, in order: the header's algorithm is on the allow-list
(never ``none`` nor an HMAC, so a provider's public key cannot be abused as an HMAC secret), the
``kid`` names one of the issuer's keys (:class:`UnknownKeyId` lets the caller refetch the JWKS
once), the signature, then the claims: ``iss``, ``aud``, ``exp`` (not past, at most
``max_lifetime`` ahead), ``iat``/``nbf`` (not in the future), ``sub`` and ``jti`` present. Every
time comparison allows ``clock_skew``. Replay of ``jti`` is checked by the caller against storage.

Importing an issuer's JWK set into joserfc key objects costs more than the rest of the claim
checks; a :class:`KeySetCache` keeps the imported set per issuer for as long as the issuer's JWK
set stays equal (compared by content on every use, so a changed set is imported anew at once).
"""

from __future__ import annotations

import base64
import copy
import json
from dataclasses import dataclass
from typing import Any

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from interlink.errors import InterlinkError

DEFAULT_ALGORITHMS = ("Ed25519", "ES256")
USER_ID_CLAIM = "interlink_uid"  # the user-visible id the provider attests (shown to contacts)


class TokenError(InterlinkError):
    """The token is refused; ``reason`` is a stable code, ``detail`` says why in words."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class UnknownKeyId(TokenError):
    def __init__(self, kid: str) -> None:
        super().__init__("unknown-kid", f"no key '{kid}' in the issuer's key set")
        self.kid = kid


@dataclass(frozen=True, slots=True)
class TokenPolicy:
    """``audience`` is the hub's (default) service; ``services`` every service it hosts: a token
    is for exactly one of them (its ``aud``), the service whose users it may reach."""

    audience: str
    services: frozenset[str] = frozenset()
    algorithms: tuple[str, ...] = DEFAULT_ALGORITHMS
    max_lifetime: float = 600.0  # exp at most 10 minutes ahead
    clock_skew: float = 60.0


@dataclass(frozen=True, slots=True)
class ProviderToken:
    issuer: str
    subject: str
    jti: str
    issued_at: float
    expires_at: float
    user_id: str | None
    key_thumbprint: str | None  # cnf.jkt (RFC 7800 / RFC 7638): binds the user's identity key
    audience: str = ""  # the gatekeeper service the token is for (one of the hub's)


def _header(token: str) -> dict[str, Any]:
    try:
        head = token.split(".", 1)[0]
        decoded: Any = json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))
    except (ValueError, UnicodeDecodeError):
        raise TokenError("malformed", "not a compact JWS") from None
    if not isinstance(decoded, dict):
        raise TokenError("malformed", "the JOSE header is not an object")
    return decoded


def _number(claims: dict[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TokenError("invalid-claim", f"'{name}' must be a number")
    return float(value)


def _required_number(claims: dict[str, Any], name: str) -> float:
    value = _number(claims, name)
    if value is None:
        raise TokenError("missing-claim", f"'{name}' is required")
    return value


def _import_key_set(jwks: dict[str, Any]) -> KeySet:
    try:
        return KeySet.import_key_set(jwks)  # type: ignore[arg-type]
    except (JoseError, ValueError, TypeError) as exc:
        raise TokenError("bad-jwks", f"the issuer's key set is unusable: {exc}") from None


class KeySetCache:
    """Imported key sets by issuer, each reused only while the issuer's JWK set is equal to the
    one it was imported from (a deep copy is kept to compare with, so not even a change made in
    place goes unnoticed). At most ``max_issuers`` sets are kept."""

    def __init__(self, max_issuers: int = 1024) -> None:
        self._max = max_issuers
        self._sets: dict[str, tuple[dict[str, Any], KeySet]] = {}
        self.imports = 0  # how many times a set was imported (for tests)

    def get(self, issuer: str, jwks: dict[str, Any]) -> KeySet:
        cached = self._sets.get(issuer)
        if cached is not None and cached[0] == jwks:
            return cached[1]
        keys = _import_key_set(jwks)
        self.imports += 1
        self._sets.pop(issuer, None)
        if len(self._sets) >= self._max:
            del self._sets[next(iter(self._sets))]
        self._sets[issuer] = (copy.deepcopy(jwks), keys)
        return keys


def verify_token(
    token: str,
    jwks: dict[str, Any],
    *,
    issuer: str,
    policy: TokenPolicy,
    now: float,
    key_sets: KeySetCache | None = None,
) -> ProviderToken:
    if len(token) > 8192:
        raise TokenError("malformed", "token longer than 8192 characters")
    header = _header(token)
    alg = header.get("alg")
    if alg not in policy.algorithms:
        raise TokenError("algorithm-not-allowed", f"alg '{alg}' is not one of {policy.algorithms}")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise TokenError("missing-kid", "the header must name its key ('kid')")
    keys = _import_key_set(jwks) if key_sets is None else key_sets.get(issuer, jwks)
    if not any(k.kid == kid for k in keys.keys):
        raise UnknownKeyId(kid)
    try:
        decoded = jwt.decode(token, keys, algorithms=[alg])
    except JoseError as exc:
        raise TokenError("bad-signature", f"signature or format invalid: {exc}") from None
    claims: dict[str, Any] = dict(decoded.claims)
    if claims.get("iss") != issuer:
        raise TokenError("wrong-issuer", f"iss must be '{issuer}'")
    aud = claims.get("aud")
    audiences = aud if isinstance(aud, list) else [aud]
    ours = (policy.services | {policy.audience}).intersection(
        a for a in audiences if isinstance(a, str)
    )
    if not ours:
        raise TokenError("wrong-audience", f"aud must include '{policy.audience}'")
    if len(ours) > 1:
        raise TokenError(
            "wrong-audience", f"aud must name one of this hub's services, not {sorted(ours)}"
        )
    (audience,) = ours
    skew = policy.clock_skew
    exp = _required_number(claims, "exp")
    iat = _required_number(claims, "iat")
    nbf = _number(claims, "nbf")
    if exp <= now - skew:
        raise TokenError("expired", "the token has expired")
    if exp > now + policy.max_lifetime + skew:
        raise TokenError("lifetime-too-long", f"exp may be at most {policy.max_lifetime:g} s ahead")
    if iat > now + skew or (nbf is not None and nbf > now + skew):
        raise TokenError("not-yet-valid", "the token is not valid yet")
    sub, jti = claims.get("sub"), claims.get("jti")
    if not isinstance(sub, str) or not sub or len(sub) > 255:
        raise TokenError("invalid-claim", "'sub' must be a string of 1 to 255 characters")
    if not isinstance(jti, str) or not jti or len(jti) > 128:
        raise TokenError("invalid-claim", "'jti' must be a string of 1 to 128 characters")
    user_id = claims.get(USER_ID_CLAIM)
    if user_id is not None and (not isinstance(user_id, str) or len(user_id) > 255):
        raise TokenError("invalid-claim", f"'{USER_ID_CLAIM}' must be a short string")
    cnf = claims.get("cnf")
    thumbprint = cnf.get("jkt") if isinstance(cnf, dict) else None
    if thumbprint is not None and not isinstance(thumbprint, str):
        raise TokenError("invalid-claim", "'cnf.jkt' must be a string")
    return ProviderToken(issuer, sub, jti, iat, exp, user_id, thumbprint, audience)
