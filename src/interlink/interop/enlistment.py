"""Enlistment of third-party users with cryptographic proof of ownership (DESIGN Flow 2).

1. The client asks for a challenge: 32 random bytes, single use, valid 5 minutes, kept in
   memory (see :mod:`interlink.interop.challenges`).
2. It gets a short-lived JWT from its provider (iss = provider, sub = account, aud = hub,
   ``cnf.jkt`` = RFC 7638 thumbprint of its Ed25519 identity key) and signs
   ``challenge || hub domain`` with that identity key.
3. The hub checks the provider (approved), the token (see :mod:`interlink.interop.tokens`), the
   token id (never seen), the challenge (issued, unused, unexpired), that the key matches the
   thumbprint, and the signature; then creates or updates the interop account
   ``<opaque>@<provider>.interop.<hub domain>``, where ``opaque`` is a keyed hash of provider and
   subject, so provider-internal ids never reach gatekeeper users.

A new identity key for an enlisted account is recorded and reported as a key change. Every
refusal is an :class:`EnlistmentError` with an HTTP status and a problem type; nothing is stored
for a refused request (the token id and challenge are consumed only once everything else holds).

Storage round trips are few on purpose (each one is a hop to the SQLite thread): the token id's
replay check for an enlistment is the insert in the enlistment's own transaction, not a separate
read before it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from interlink.errors import AuthenticationRefused, HttpProblem, InterlinkError
from interlink.interop.challenges import ChallengeStore
from interlink.interop.providers import ProviderRegistry
from interlink.interop.tokens import (
    KeySetCache,
    ProviderToken,
    TokenError,
    TokenPolicy,
    UnknownKeyId,
    verify_token,
)
from interlink.storage.enlistment import CommitOutcome, EnlistmentRepository, InteropAccount
from interlink.storage.providers import Provider, ProviderStatus
from interlink.xmpp.addressing import interop_domain
from interlink.xmpp.jid import JID, InvalidJID

log = logging.getLogger("interlink.enlistment")


class EnlistmentError(HttpProblem):
    """An enlistment was refused: ``status`` and ``kind`` say why (see the module docstring)."""

    title = "enlistment refused"

    def __init__(self, status: int, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.kind = kind

    def __str__(self) -> str:
        return f"{self.kind}: {self.detail}"


@dataclass(frozen=True, slots=True)
class EnlistmentResult:
    account: InteropAccount
    created: bool
    key_changed: bool


class KeySource(Protocol):
    """The provider's signing keys: inline, or fetched (and cached) from its JWKS URL."""

    async def keys(self, provider: Provider, *, refresh: bool) -> dict[str, Any]: ...


def b64url_decode(text: str, what: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, TypeError):
        raise EnlistmentError(400, "invalid-request", f"{what} is not base64url") from None


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def ed25519_thumbprint(public_key: bytes) -> str:
    """RFC 7638 thumbprint (SHA-256) of an Ed25519 public key as an OKP JWK."""
    canonical = json.dumps(
        {"crv": "Ed25519", "kty": "OKP", "x": b64url(public_key)},
        separators=(",", ":"),
        sort_keys=True,
    )
    return b64url(hashlib.sha256(canonical.encode()).digest())


class EnlistmentService:
    def __init__(
        self,
        repo: EnlistmentRepository,
        registry: ProviderRegistry,
        keys: KeySource,
        *,
        hub_domain: str,
        services: Sequence[str] = (),
        legacy_service: str | None = None,
        secret: bytes,
        clock: Callable[[], float],
        login_check: Callable[[Provider, str, str], Awaitable[None]],
        policy: TokenPolicy | None = None,
        challenges: ChallengeStore | None = None,
    ) -> None:
        """``login_check(provider, subject, service)`` asks the provider whether the account
        is active (introspection) before a login succeeds; it raises
        ``AuthenticationRefused``."""
        self._repo = repo
        self._registry = registry
        self._keys = keys
        self._domain = hub_domain
        # The service whose addresses were made before the service went into the hash (the
        # hub's only domain then): they keep their form, so enlisted users keep their address.
        self._legacy_service = legacy_service or hub_domain
        self._secret = secret
        self._clock = clock
        self.policy = policy or TokenPolicy(
            audience=hub_domain, services=frozenset(services or (hub_domain,))
        )
        # not ``challenges or ...``: an empty store is falsy (it has a length)
        self.challenges = challenges if challenges is not None else ChallengeStore()
        self.key_sets = KeySetCache()
        # Outcomes for metrics: created, updated, key-changed, unenlisted, login, and refusals by
        # problem kind ("refused:<kind>").
        self.stats: Counter[str] = Counter()
        self._login_check = login_check

    def interop_jid(self, provider_id: str, subject: str, service: str | None = None) -> str:
        """The address of ``subject`` (a provider's user) on ``service`` (default: the hub's
        default service): ``<opaque>@<provider>.interop.<service>``. The opaque part is a keyed
        hash of provider, subject and service, so one person is not recognisable across the
        services of one hub (the legacy service's addresses keep their older form)."""
        service = service or self._domain
        material = f"{provider_id}\0{subject}"
        if service != self._legacy_service:
            material += f"\0{service}"
        digest = hmac.new(self._secret, material.encode(), "sha256").digest()
        opaque = base64.b32encode(digest[:20]).decode().lower().rstrip("=")
        return f"{opaque}@{interop_domain(provider_id, service)}"

    def account_jid(self, provider: Provider, subject: str, service: str | None = None) -> str:
        """The account a token's subject enlists: a federated provider's user keeps its own
        address (the subject is its bare JID on one of the provider's server domains, issue
        15); everyone else gets :meth:`interop_jid`."""
        federated = _federated_jid(provider, subject)
        return (
            federated if federated is not None else self.interop_jid(provider.id, subject, service)
        )

    def challenge(self) -> tuple[str, float]:
        """A new challenge and when it expires."""
        return self.challenges.issue(self._clock())

    async def verify(self, token_text: str) -> tuple[Provider, ProviderToken]:
        """Check a provider token (provider approved, signature, claims), all but replay: the
        caller checks the token id against storage."""
        header_issuer = _unverified_issuer(token_text)
        try:
            provider = await self._registry.get(header_issuer)
        except InterlinkError:
            raise EnlistmentError(
                401, "unknown-issuer", "the token's issuer is not a provider"
            ) from None
        if provider.status is not ProviderStatus.APPROVED:
            raise EnlistmentError(
                403, "provider-not-approved", f"provider '{provider.id}' is {provider.status}"
            )
        now = self._clock()
        provider_services = provider.services or (self._domain,)

        async def verify(refresh: bool) -> ProviderToken:
            jwks = await self._keys.keys(provider, refresh=refresh)
            return verify_token(
                token_text,
                jwks,
                issuer=provider.id,
                policy=self.policy,
                now=now,
                key_sets=self.key_sets,
            )

        try:
            try:
                token = await verify(refresh=False)
            except UnknownKeyId:  # the provider may have rotated its keys: fetch them again
                token = await verify(refresh=True)
        except TokenError as exc:
            raise EnlistmentError(401, f"token-{exc.reason}", exc.detail) from None
        if token.audience not in provider_services:
            raise EnlistmentError(
                403,
                "provider-not-approved",
                f"provider '{provider.id}' is not onboarded to {token.audience}",
            )
        return provider, token

    async def enlist(
        self, token_text: str, identity_key_b64: str, challenge: str, signature_b64: str
    ) -> EnlistmentResult:
        """Verify everything and create or update the account (see the module docstring)."""
        try:
            result = await self._enlist(token_text, identity_key_b64, challenge, signature_b64)
        except EnlistmentError as exc:
            self.stats[f"refused:{exc.kind}"] += 1
            raise
        self.stats["created" if result.created else "updated"] += 1
        if result.key_changed:
            self.stats["key-changed"] += 1
        if result.created or result.key_changed:
            log.info(
                "enlisted" if result.created else "enlisted with a new identity key",
                extra={"provider": result.account.provider_id, "jid": result.account.jid},
            )
        return result

    async def _enlist(
        self, token_text: str, identity_key_b64: str, challenge: str, signature_b64: str
    ) -> EnlistmentResult:
        identity_key = b64url_decode(identity_key_b64, "identity_key")
        signature = b64url_decode(signature_b64, "signature")
        if len(identity_key) != 32:
            raise EnlistmentError(
                400, "invalid-request", "identity_key must be a 32-byte Ed25519 key"
            )
        # Storage-free checks first, so a refused request consumes nothing. The proof is over
        # the challenge and the domain of the service the token is for.
        provider, token = await self.verify(token_text)
        try:
            Ed25519PublicKey.from_public_bytes(identity_key).verify(
                signature, challenge.encode() + token.audience.encode()
            )
        except (InvalidSignature, ValueError):
            raise EnlistmentError(
                401,
                "bad-proof",
                "the signature is not the identity key's over challenge + hub domain",
            ) from None
        if token.key_thumbprint != ed25519_thumbprint(identity_key):
            raise EnlistmentError(
                401, "key-not-bound", "the identity key does not match the token's cnf.jkt"
            )
        now = self._clock()
        # Taken before the first await that follows, so two requests cannot both use it.
        challenge_expires = self.challenges.take(challenge, now)
        if challenge_expires is None:
            raise EnlistmentError(401, "bad-challenge", "unknown, used or expired challenge")
        try:
            return await self._commit(provider, token, identity_key, now)
        except Exception:
            # Refused or failed: nothing was stored. (Not on cancellation: the enlistment may
            # still be committed with its group, so the challenge stays used.)
            self.challenges.give_back(challenge, challenge_expires)
            raise

    async def _commit(
        self, provider: Provider, token: ProviderToken, identity_key: bytes, now: float
    ) -> EnlistmentResult:
        jid = self.account_jid(provider, token.subject, token.audience)
        existing = await self._repo.account(jid)
        key_changed = existing is not None and existing.identity_key != identity_key
        account = InteropAccount(
            jid=jid,
            provider_id=provider.id,
            subject=token.subject,
            user_id=token.user_id,
            identity_key=identity_key,
            enlisted_at=existing.enlisted_at if existing else now,
            updated_at=now,
        )
        outcome = await self._repo.commit_enlistment(
            issuer=provider.id,
            jti=token.jti,
            jti_expires_at=token.expires_at,
            account=account,
            new_key=existing is None or key_changed,
            now=now,
        )
        if outcome is CommitOutcome.REPLAYED:
            raise EnlistmentError(401, "token-replayed", "this token (jti) was used before")
        return EnlistmentResult(account, existing is None, key_changed)

    async def authenticate(self, token_text: str, service: str | None = None) -> str:
        """OAUTHBEARER: the enlisted account a fresh provider token logs in to (each token once).
        ``service``: the gatekeeper service the stream was opened to; a token for another one
        is refused before its token id is used up.

        Raises :class:`~interlink.errors.AuthenticationRefused`."""
        try:
            provider, token = await self.verify(token_text)
        except EnlistmentError as exc:
            raise AuthenticationRefused(exc.detail, temporary=exc.status >= 500) from None
        if service is not None and token.audience != service:
            raise AuthenticationRefused(
                f"this token is for {token.audience}; the stream was opened to {service}"
            )
        if _federated_jid(provider, token.subject) is not None:
            raise AuthenticationRefused(
                "a federated account logs in to its own server, not to this hub"
            )
        # Checked before the account and the provider's introspection are asked; recorded
        # (atomically, so a race still loses) only once everything else holds.
        jid = self.interop_jid(provider.id, token.subject, token.audience)
        seen, enlisted = await self._repo.login_state(provider.id, token.jti, jid)
        if seen:
            raise AuthenticationRefused("this token (jti) was used before")
        if not enlisted:
            raise AuthenticationRefused("this account is not enlisted")
        await self._login_check(provider, token.subject, token.audience)
        if not await self._repo.remember_jti(
            provider.id, token.jti, token.expires_at, self._clock()
        ):
            raise AuthenticationRefused("this token (jti) was used before")
        return jid

    async def unenlist(self, token_text: str) -> str:
        """Delete the token subject's account and everything stored for it."""
        provider, token = await self.verify(token_text)
        jid = self.account_jid(provider, token.subject, token.audience)
        outcome = await self._repo.commit_unenlistment(
            issuer=provider.id,
            jti=token.jti,
            jti_expires_at=token.expires_at,
            jid=jid,
            now=self._clock(),
        )
        if outcome is CommitOutcome.REPLAYED:
            raise EnlistmentError(401, "token-replayed", "this token (jti) was used before")
        if outcome is CommitOutcome.NOT_ENLISTED:
            raise EnlistmentError(404, "not-enlisted", "no enlisted account for this subject")
        self.stats["unenlisted"] += 1
        log.info("unenlisted", extra={"provider": provider.id, "jid": jid})
        return jid


def _federated_jid(provider: Provider, subject: str) -> str | None:
    """``subject`` as a bare JID on one of a federating provider's server domains, else None."""
    if not provider.mode.federates or "@" not in subject:
        return None
    try:
        jid = JID.parse(subject)
    except InvalidJID:
        return None
    if jid.local is None or jid.resource is not None or jid.domain not in provider.server_domains:
        return None
    return str(jid)


def _unverified_issuer(token: str) -> str:
    """The ``iss`` claim, read before verification only to pick the issuer's keys."""
    try:
        body = token.split(".")[1]
        claims: Any = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    except (IndexError, ValueError, UnicodeDecodeError):
        raise EnlistmentError(401, "token-malformed", "not a compact JWS") from None
    issuer = claims.get("iss") if isinstance(claims, dict) else None
    if not isinstance(issuer, str) or not issuer:
        raise EnlistmentError(401, "token-malformed", "the token has no issuer")
    return issuer
