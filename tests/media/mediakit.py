"""A media store on in-memory SQLite under a temporary directory, with a clock the test moves."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from interlink.media import MediaLimits, MediaStore
from interlink.media.policy import ContentTypePolicy
from interlink.storage.sqlite import open_sqlite
from interlink.storage.sqlite.engine import SqliteStorage

T0 = 1_800_000_000.0


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass
class MediaKit:
    store: MediaStore
    storage: SqliteStorage
    clock: Clock
    root: Path


@asynccontextmanager
async def media_kit(
    root: Path,
    limits: MediaLimits | None = None,
    types: ContentTypePolicy | None = None,
    db: Path | str = ":memory:",
) -> AsyncIterator[MediaKit]:
    storage = await open_sqlite(db)
    clock = Clock()
    store = MediaStore(storage.media, root, limits=limits, types=types, clock=clock)
    try:
        yield MediaKit(store, storage, clock, root)
    finally:
        await storage.close()


async def body(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def stream(chunks: Iterable[bytes]) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk
