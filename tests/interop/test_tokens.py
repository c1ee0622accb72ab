"""Provider JWT verification: the valid case and every refusal the issue lists."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import warnings
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, OKPKey

from interlink.interop.tokens import (
    KeySetCache,
    TokenError,
    TokenPolicy,
    UnknownKeyId,
    verify_token,
)

NOW = 1_800_000_000.0
POLICY = TokenPolicy(audience="hub.test")
KEY = OKPKey.generate_key("Ed25519", parameters={"kid": "k1"})
JWKS = {"keys": [KEY.as_dict(private=False)]}


def claims(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "iss": "examplechat",
        "sub": "user-42",
        "aud": "hub.test",
        "iat": int(NOW),
        "exp": int(NOW) + 300,
        "jti": "j-1",
        "interlink_uid": "@alice:example.chat",
        "cnf": {"jkt": "thumb"},
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


def sign(payload: dict[str, Any], *, alg: str = "Ed25519", key: Any = KEY, kid: str = "k1") -> str:
    return jwt.encode({"alg": alg, "kid": kid}, payload, key, algorithms=[alg])


def test_valid_token() -> None:
    token = verify_token(sign(claims()), JWKS, issuer="examplechat", policy=POLICY, now=NOW)
    assert (token.issuer, token.subject, token.jti) == ("examplechat", "user-42", "j-1")
    assert token.user_id == "@alice:example.chat"
    assert token.key_thumbprint == "thumb"


def test_audience_may_be_a_list() -> None:
    token = sign(claims(aud=["other", "hub.test"]))
    assert (
        verify_token(token, JWKS, issuer="examplechat", policy=POLICY, now=NOW).subject == "user-42"
    )


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned(payload: dict[str, Any]) -> str:
    header = _b64(json.dumps({"alg": "none", "kid": "k1"}).encode())
    return f"{header}.{_b64(json.dumps(payload).encode())}."


def hs256_with_public_key(payload: dict[str, Any]) -> str:
    header = _b64(json.dumps({"alg": "HS256", "kid": "k1"}).encode())
    body = _b64(json.dumps(payload).encode())
    secret = json.dumps(KEY.as_dict(private=False)).encode()
    mac = hmac.new(secret, f"{header}.{body}".encode(), hashlib.sha256).digest()
    return f"{header}.{body}.{_b64(mac)}"


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda: sign(claims(exp=int(NOW) - 120)), "expired"),
        (lambda: sign(claims(iat=int(NOW) + 300, exp=int(NOW) + 600)), "not-yet-valid"),
        (lambda: sign(claims(nbf=int(NOW) + 600)), "not-yet-valid"),
        (lambda: sign(claims(exp=int(NOW) + 3600)), "lifetime-too-long"),
        (lambda: sign(claims(aud="elsewhere")), "wrong-audience"),
        (lambda: sign(claims(iss="otherprovider")), "wrong-issuer"),
        (lambda: sign(claims(jti=None)), "invalid-claim"),
        (lambda: sign(claims(sub=None)), "invalid-claim"),
        (lambda: sign(claims(exp=None)), "missing-claim"),
        (lambda: sign(claims(exp="soon")), "invalid-claim"),
        (lambda: unsigned(claims()), "algorithm-not-allowed"),
        (lambda: hs256_with_public_key(claims()), "algorithm-not-allowed"),
        (lambda: sign(claims(), key=OKPKey.generate_key("Ed25519")), "bad-signature"),
        (lambda: "not.a.token", "malformed"),
        (lambda: sign(claims(), kid=""), "missing-kid"),
    ],
)
def test_refusals(make: Any, reason: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        token = make()
    with pytest.raises(TokenError) as info:
        verify_token(token, JWKS, issuer="examplechat", policy=POLICY, now=NOW)
    assert info.value.reason == reason
    assert info.value.detail


def test_unknown_kid_lets_the_caller_refetch_keys() -> None:
    other = ECKey.generate_key("P-256", parameters={"kid": "k2"})
    token = sign(claims(), alg="ES256", key=other, kid="k2")
    with pytest.raises(UnknownKeyId) as info:
        verify_token(token, JWKS, issuer="examplechat", policy=POLICY, now=NOW)
    assert info.value.kid == "k2"
    refreshed = {"keys": [*JWKS["keys"], other.as_dict(private=False)]}
    assert verify_token(token, refreshed, issuer="examplechat", policy=POLICY, now=NOW).jti == "j-1"


def test_clock_skew_tolerance_at_the_boundary() -> None:
    token = sign(claims(exp=int(NOW) - 59))
    assert verify_token(token, JWKS, issuer="examplechat", policy=POLICY, now=NOW).jti == "j-1"
    with pytest.raises(TokenError, match="expired"):
        verify_token(
            sign(claims(exp=int(NOW) - 60)), JWKS, issuer="examplechat", policy=POLICY, now=NOW
        )


def test_key_set_cache_imports_an_issuers_set_once() -> None:
    cache = KeySetCache()
    for jti in ("j-1", "j-2", "j-3"):
        token = sign(claims(jti=jti))
        verified = verify_token(
            token, JWKS, issuer="examplechat", policy=POLICY, now=NOW, key_sets=cache
        )
        assert verified.jti == jti
    # An equal set (another object, as a provider record read anew gives) is no change.
    copied = json.loads(json.dumps(JWKS))
    verify_token(
        sign(claims()), copied, issuer="examplechat", policy=POLICY, now=NOW, key_sets=cache
    )
    assert cache.imports == 1


def test_key_set_cache_follows_a_changed_jwks() -> None:
    cache = KeySetCache()
    verify_token(sign(claims()), JWKS, issuer="examplechat", policy=POLICY, now=NOW, key_sets=cache)
    # The provider rotates: the new key is used at once...
    new = OKPKey.generate_key("Ed25519", parameters={"kid": "k2"})
    rotated = {"keys": [new.as_dict(private=False)]}
    token = sign(claims(), key=new, kid="k2")
    assert (
        verify_token(
            token, rotated, issuer="examplechat", policy=POLICY, now=NOW, key_sets=cache
        ).jti
        == "j-1"
    )
    # ... and the retired one is refused at once.
    with pytest.raises(UnknownKeyId):
        verify_token(
            sign(claims()), rotated, issuer="examplechat", policy=POLICY, now=NOW, key_sets=cache
        )
    # A set changed in place is noticed too: same kid, another key.
    impostor = OKPKey.generate_key("Ed25519", parameters={"kid": "k2"})
    rotated["keys"] = [impostor.as_dict(private=False)]
    with pytest.raises(TokenError, match="bad-signature"):
        verify_token(token, rotated, issuer="examplechat", policy=POLICY, now=NOW, key_sets=cache)
    assert cache.imports == 3


def test_key_set_cache_is_per_issuer_and_bounded() -> None:
    cache = KeySetCache(max_issuers=2)
    other = OKPKey.generate_key("Ed25519", parameters={"kid": "k1"})
    other_jwks = {"keys": [other.as_dict(private=False)]}
    cache.get("examplechat", JWKS)
    with pytest.raises(TokenError, match="bad-signature"):
        # Same kid at another issuer: that issuer's own key, never the cached one.
        verify_token(
            sign(claims(iss="otherchat")),
            other_jwks,
            issuer="otherchat",
            policy=POLICY,
            now=NOW,
            key_sets=cache,
        )
    cache.get("third", JWKS)
    cache.get("examplechat", JWKS)  # evicted by "third" (oldest first): imported again
    assert cache.imports == 4
