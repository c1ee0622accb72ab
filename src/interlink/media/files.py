"""The media store's files on disk, with bounded memory.

Layout under the store's directory::

    tmp/<slot_id>.part    an upload in progress (or left by a crash; removed with its slot)
    files/<file_id>       a complete upload

An upload is appended to its part file through a buffer of at most ``flush_size`` bytes, written
by a worker thread so the event loop never waits on the disk. Committing flushes, ``fsync``\\s the
file, renames it into ``files/`` (atomic on POSIX) and ``fsync``\\s the directory, so a file is
either absent or complete and durable. Reads go through a worker thread in ``read_size`` chunks.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import BinaryIO

FLUSH_SIZE = 1024 * 1024
READ_SIZE = 256 * 1024


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes | bytearray) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


class PartFile:
    """One upload being written. Call :meth:`commit` or :meth:`discard` exactly once."""

    def __init__(self, path: Path, fd: int, flush_size: int) -> None:
        self._path = path
        self._fd: int | None = fd
        self._flush_size = flush_size
        self._buffer = bytearray()

    async def write(self, data: bytes) -> None:
        self._buffer += data
        if len(self._buffer) >= self._flush_size:
            await self._flush()

    async def _flush(self) -> None:
        assert self._fd is not None
        # Hand the full buffer to the thread and keep filling a new one: the old one is not
        # touched again, so at most two buffers exist at once.
        full, self._buffer = self._buffer, bytearray()
        await asyncio.to_thread(_write_all, self._fd, full)

    async def commit(self, final: Path) -> None:
        """Make the written bytes durable at ``final``."""
        await self._flush()
        fd, self._fd = self._fd, None
        assert fd is not None

        def finish() -> None:
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(self._path, final)
            _fsync_dir(final.parent)

        try:
            await asyncio.to_thread(finish)
        except BaseException:
            with contextlib.suppress(OSError):
                self._path.unlink()
            raise

    def discard(self) -> None:
        """Drop the partial upload (quick syscalls; safe to call while being cancelled)."""
        self._buffer = bytearray()
        if self._fd is not None:
            fd, self._fd = self._fd, None
            with contextlib.suppress(OSError):
                os.close(fd)
        with contextlib.suppress(OSError):
            self._path.unlink()


class FileArea:
    def __init__(
        self, root: Path, *, flush_size: int = FLUSH_SIZE, read_size: int = READ_SIZE
    ) -> None:
        self.root = root
        self._tmp = root / "tmp"
        self._files = root / "files"
        self._flush_size = flush_size
        self.read_size = read_size
        for folder in (root, self._tmp, self._files):
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)

    def part_path(self, slot_id: str) -> Path:
        return self._tmp / f"{slot_id}.part"

    def file_path(self, file_id: str) -> Path:
        return self._files / file_id

    async def create_part(self, slot_id: str) -> PartFile:
        path = self.part_path(slot_id)
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0)
        fd = await asyncio.to_thread(os.open, path, flags, 0o600)
        return PartFile(path, fd, self._flush_size)

    async def open_read(self, file_id: str) -> BinaryIO:
        """Raises ``FileNotFoundError``."""
        return await asyncio.to_thread(self.file_path(file_id).open, "rb")

    async def read_chunks(self, handle: BinaryIO, start: int, length: int) -> AsyncIterator[bytes]:
        """``length`` bytes of ``handle`` from ``start``, in chunks of at most ``read_size``."""
        await asyncio.to_thread(handle.seek, start)
        left = length
        while left > 0:
            chunk = await asyncio.to_thread(handle.read, min(left, self.read_size))
            if not chunk:
                raise OSError("the file is shorter than recorded")
            left -= len(chunk)
            yield chunk

    async def remove(self, slot_id: str, file_id: str) -> None:
        def unlink_both() -> None:
            for path in (self.part_path(slot_id), self.file_path(file_id)):
                path.unlink(missing_ok=True)

        await asyncio.to_thread(unlink_both)
