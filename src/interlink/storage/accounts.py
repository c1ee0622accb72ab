"""Accounts and their SASL credentials (RFC 6120 §6, RFC 5802 SCRAM)."""

from __future__ import annotations

from typing import Protocol

from interlink.xmpp.sasl import StoredCredentials


class AccountRepository(Protocol):
    async def create(self, jid: str, credentials: StoredCredentials, now: float) -> None:
        """Raises :class:`~interlink.errors.AccountExistsError`."""

    async def exists(self, jid: str) -> bool: ...

    async def get_credentials(self, jid: str) -> StoredCredentials | None: ...

    async def set_credentials(self, jid: str, credentials: StoredCredentials) -> None:
        """Raises :class:`~interlink.errors.AccountNotFoundError`."""

    async def delete(self, jid: str) -> None:
        """Delete the account and everything stored for it.

        Raises :class:`~interlink.errors.AccountNotFoundError`."""

    async def list_jids(self) -> list[str]:
        """Every account, in JID order."""
        ...
