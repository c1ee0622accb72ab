"""The interop control plane's durable state: token ids already seen, enlisted third-party
accounts and the history of their identity keys (DESIGN Flow 2).

Only the records and the repository are here; the checks are in
:mod:`interlink.interop.enlistment`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import NamedTuple, Protocol


@dataclass(frozen=True, slots=True)
class InteropAccount:
    jid: str
    provider_id: str
    subject: str
    user_id: str | None
    identity_key: bytes
    enlisted_at: float
    updated_at: float


class CommitOutcome(StrEnum):
    """What a token-bound write did: ``OK``, or nothing at all for the other outcomes."""

    OK = "ok"
    REPLAYED = "replayed"  # the token id was seen before
    NOT_ENLISTED = "not-enlisted"  # un-enlistment of an account that does not exist


class LoginState(NamedTuple):
    token_seen: bool
    enlisted: bool


class EnlistmentRepository(Protocol):
    async def jti_seen(self, issuer: str, jti: str) -> bool: ...

    async def account(self, jid: str) -> InteropAccount | None: ...

    async def login_state(self, issuer: str, jti: str, jid: str) -> LoginState:
        """Whether the token id was seen, and whether the account is enlisted, read at once."""
        ...

    async def commit_enlistment(
        self,
        *,
        issuer: str,
        jti: str,
        jti_expires_at: float,
        account: InteropAccount,
        new_key: bool,
        now: float,
    ) -> CommitOutcome:
        """In one transaction: record the token id, create or update the account (appending a
        new key to its history when ``new_key``). ``OK`` or ``REPLAYED``; on ``REPLAYED``
        nothing is changed."""
        ...

    async def remember_jti(self, issuer: str, jti: str, expires_at: float, now: float) -> bool:
        """Record a token id for a login; False if it was seen before."""
        ...

    async def commit_unenlistment(
        self, *, issuer: str, jti: str, jti_expires_at: float, jid: str, now: float
    ) -> CommitOutcome:
        """In one transaction: record the token id, delete the account with everything stored
        for it. ``OK``, ``REPLAYED`` or ``NOT_ENLISTED``; on the last two nothing is changed."""
        ...

    async def key_history(self, jid: str) -> list[bytes]:
        """Every identity key the account has had, oldest first."""
        ...
