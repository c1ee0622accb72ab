"""The hub's own durable state: secrets created once and kept."""

from __future__ import annotations

from typing import Protocol


class ServerStateRepository(Protocol):
    async def get_or_create_secret(self, name: str, size: int) -> bytes:
        """A random secret of ``size`` bytes created once and kept (e.g. the SASL decoy key)."""
        ...

    async def get_value(self, name: str) -> str | None:
        """A small named value (e.g. the services this data directory's hub serves)."""
        ...

    async def put_value(self, name: str, value: str) -> None: ...
