"""The SDK's own error (beside ``ConsentError`` and ``MediaError``, which say which rule or
check refused)."""

from __future__ import annotations


class ClientError(Exception):
    """The client could not do what was asked (connection, login, encryption)."""
