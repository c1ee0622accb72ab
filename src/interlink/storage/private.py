"""Private XML storage (XEP-0049): one serialized fragment per (account, namespace)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple, Protocol


class PrivateFragment(NamedTuple):
    namespace: str
    xml: str  # the serialized element

    @property
    def size(self) -> int:
        """What the fragment counts against its owner's budget: its UTF-8 bytes."""
        return len(self.xml.encode())


class PrivateRepository(Protocol):
    async def get(self, owner: str, namespace: str) -> str | None:
        """The fragment ``owner`` stored under ``namespace`` (serialized XML), if any."""
        ...

    async def put(
        self, owner: str, fragments: Sequence[PrivateFragment], *, quota: int, max_fragments: int
    ) -> bool:
        """Store ``fragments`` at once, each replacing the one under its namespace. Nothing is
        stored and ``False`` returned if ``owner``'s fragments would then hold more than
        ``quota`` UTF-8 bytes (:meth:`bytes_used`, counted after the replacements) or number
        more than ``max_fragments``."""
        ...

    async def bytes_used(self, owner: str) -> int:
        """The UTF-8 bytes of every fragment ``owner`` has stored."""
        ...


__all__ = ["PrivateFragment", "PrivateRepository"]
