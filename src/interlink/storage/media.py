"""The media store's metadata (XEP-0363 upload slots and their files).

A *slot* is reserved by a slot request (XEP-0363 §4) and holds its declared size against the
owner's quota from that moment; once uploaded, its file is kept until ``expires_at`` (see
:mod:`interlink.media.model` for the whole life cycle). Only the records and the repository are
here; the store that enforces limits is :mod:`interlink.media.store`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class MediaRecord:
    """One slot, and once uploaded, its file."""

    slot_id: str
    file_id: str
    owner: str
    filename: str
    size: int
    content_type: str
    token_hash: bytes  # SHA-256 of the PUT token
    created_at: float
    put_expires_at: float
    stored_at: float | None = None  # set when the upload completed
    expires_at: float | None = None  # end of retention, set with stored_at

    @property
    def stored(self) -> bool:
        return self.stored_at is not None

    def expired(self, now: float) -> bool:
        if self.expires_at is not None:
            return now >= self.expires_at
        return now >= self.put_expires_at


@dataclass(frozen=True, slots=True)
class Usage:
    """What an owner holds now: bytes of live slots and files, and the number of open slots."""

    bytes: int
    open_slots: int


class MediaRepository(Protocol):
    """Durable media metadata. Every write is durable when the call returns."""

    async def reserve(
        self, record: MediaRecord, *, quota_bytes: int, max_open_slots: int, now: float
    ) -> Usage | None:
        """Insert ``record`` if its owner's live bytes plus ``record.size`` stay within
        ``quota_bytes`` and its open slots stay within ``max_open_slots``, atomically with the
        check. ``None`` when inserted; else the usage that refused it."""
        ...

    async def usage(self, owner: str, now: float) -> Usage: ...

    async def by_slot(self, slot_id: str) -> MediaRecord | None: ...

    async def by_file(self, file_id: str) -> MediaRecord | None: ...

    async def mark_stored(self, slot_id: str, stored_at: float, expires_at: float) -> bool:
        """Record the upload of a slot not yet stored; ``False`` if there is no such slot."""
        ...

    async def expired(self, now: float, limit: int) -> list[MediaRecord]:
        """Up to ``limit`` records whose slot (not uploaded) or file has expired at ``now``."""
        ...

    async def owned_by(self, owner: str) -> list[MediaRecord]:
        """Every record of ``owner``, live or expired."""
        ...

    async def delete(self, slot_ids: list[str]) -> None: ...
