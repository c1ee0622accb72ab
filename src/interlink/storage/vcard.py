"""vcard-temp (XEP-0054): one serialized ``<vCard/>`` per account."""

from __future__ import annotations

from typing import Protocol


class VcardRepository(Protocol):
    async def get(self, owner: str) -> str | None:
        """``owner``'s vCard (serialized XML), if it set one."""
        ...

    async def put(self, owner: str, vcard: str) -> None:
        """Store ``vcard`` as ``owner``'s, replacing the one there."""


__all__ = ["VcardRepository"]
