"""Salted SCRAM credentials (RFC 5802 §3): what the account store keeps instead of passwords."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from scramp import ScramMechanism
from scramp.utils import ScramException, saslprep

SCRAM_SHA_1 = "SCRAM-SHA-1"
SCRAM_SHA_256 = "SCRAM-SHA-256"
_HASHES = {SCRAM_SHA_1: "sha1", SCRAM_SHA_256: "sha256"}


@dataclass(frozen=True, slots=True)
class ScramCredentials:
    salt: bytes
    stored_key: bytes
    server_key: bytes
    iterations: int


@dataclass(frozen=True, slots=True)
class StoredCredentials:
    """One account's credentials, one entry per SCRAM hash."""

    scram: dict[str, ScramCredentials]

    def for_mechanism(self, mechanism: str) -> ScramCredentials | None:
        return self.scram.get(mechanism)


SALT_BYTES = 32  # decoys use the same length, so a salt never tells real from unknown users


def derive_credentials(password: str, iterations: int = 4096) -> StoredCredentials:
    """Salt and hash ``password`` for both SCRAM hashes; the password itself is not kept."""
    scram = {}
    for mech in (SCRAM_SHA_1, SCRAM_SHA_256):
        salt, stored, server, i = ScramMechanism(mech).make_auth_info(
            password, iteration_count=iterations, salt=secrets.token_bytes(SALT_BYTES)
        )
        scram[mech] = ScramCredentials(salt, stored, server, i)
    return StoredCredentials(scram)


def check_password(creds: ScramCredentials, mechanism: str, password: str) -> bool:
    """Check a plaintext password against salted SCRAM keys, in constant time."""
    algo = _HASHES[mechanism]
    salted = hashlib.pbkdf2_hmac(algo, saslprep(password).encode(), creds.salt, creds.iterations)
    client_key = hmac.new(salted, b"Client Key", algo).digest()
    stored = hashlib.new(algo, client_key).digest()
    return hmac.compare_digest(stored, creds.stored_key)


def decoy_credentials(secret: bytes, username: str, iterations: int) -> ScramCredentials:
    """Credentials for an account that does not exist.

    The salt is stable per username, as long as a real one, and the keys are unusable, so a SCRAM
    exchange for an unknown user looks like one for a known user with a wrong password: no
    account-existence oracle. (Accounts created with another iteration count than the current
    setting are distinguishable by it; change ``sasl.scram_iterations`` together with a password
    reset if that matters.)
    """
    salt = hmac.new(secret, b"salt:" + username.encode(), "sha256").digest()[:SALT_BYTES]
    key = hmac.new(secret, b"key:" + username.encode(), "sha256").digest()
    return ScramCredentials(salt, key, key, iterations)


@dataclass(frozen=True, slots=True)
class PasswordRules:
    """What a new password must be, wherever one is set (``interlink user add``/``passwd``, the
    XEP-0050 change-password command): ``[passwords]`` in the configuration."""

    min_length: int = 1
    max_length: int = 1024


def password_problem(password: str, rules: PasswordRules) -> str | None:
    """Why ``password`` cannot be an account's password, or ``None`` when it can. Lengths count
    characters after SASLprep (RFC 4013), which SCRAM applies at every login: a password it
    refuses (control characters, unassigned code points) could never log in."""
    try:
        prepared = saslprep(password)
    except ScramException:
        return "the password holds characters SASLprep (RFC 4013) does not allow"
    if not prepared:
        return "the password must not be empty"
    if len(prepared) < rules.min_length:
        return f"the password needs at least {rules.min_length} characters"
    if len(prepared) > rules.max_length:
        return f"the password holds at most {rules.max_length} characters"
    return None
