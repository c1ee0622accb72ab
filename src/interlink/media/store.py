"""The media store: XEP-0363 upload slots, uploads and downloads, expiry. Shared by the hub and
the provider kit; reached from XMPP (:mod:`interlink.media.upload`) and HTTP
(:mod:`interlink.net.media_api`).

Theory of operation. :meth:`MediaStore.request_slot` checks the request against the limits and
the content-type policy and reserves the declared size against the owner's quota, atomically in
the repository; it returns the slot with its PUT token (only a hash is kept). :meth:`upload`
checks the token (constant time), the slot's state and expiry, and the declared Content-Length
and Content-Type, then streams the body to a part file, refusing as soon as it passes the
declared size and at its end if it fell short; a complete body is made durable
(:mod:`interlink.media.files`) before the repository records it, so a recorded file is always
whole. :meth:`open_download` serves stored, unexpired files. :meth:`collect_expired`, called
periodically by the application with the time, deletes expired slots and files (file first,
then the record) and so releases their quota; it leaves alone a slot whose upload is running.

Time: the store reads its clock whenever it decides about expiry or the upload time limit, so
tests move time by moving a fake clock. Errors are :class:`~interlink.media.errors.MediaError`
subclasses, each carrying its HTTP status and stanza error condition.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable
from pathlib import Path
from typing import BinaryIO

from interlink.media.errors import (
    BadSlotRequest,
    BadToken,
    BodyTooLong,
    ContentTypeMismatch,
    ContentTypeRefused,
    FileTooLarge,
    MediaExpired,
    MediaStorageFailure,
    QuotaExceeded,
    SizeMismatch,
    SlotExpired,
    SlotUsed,
    TooManySlots,
    UnknownMedia,
    UploadTooSlow,
)
from interlink.media.files import FileArea
from interlink.media.model import MediaLimits, Slot
from interlink.media.policy import ContentTypePolicy, check_filename, content_type_essence
from interlink.storage.media import MediaRecord, MediaRepository, Usage

log = logging.getLogger("interlink.media")

ID_BYTES = 24  # 192 bits per id and token: unguessable


def _token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


class Download:
    """An open stored file. Iterate :meth:`chunks` once (it closes the file), or :meth:`close`."""

    def __init__(self, record: MediaRecord, handle: BinaryIO, files: FileArea) -> None:
        self.record = record
        self._handle = handle
        self._files = files

    @property
    def size(self) -> int:
        return self.record.size

    async def chunks(self, start: int = 0, length: int | None = None) -> AsyncIterator[bytes]:
        if length is None:
            length = self.size - start
        try:
            async for chunk in self._files.read_chunks(self._handle, start, length):
                yield chunk
        finally:
            self.close()

    def close(self) -> None:
        self._handle.close()


class MediaStore:
    def __init__(
        self,
        repo: MediaRepository,
        root: Path,
        *,
        limits: MediaLimits | None = None,
        types: ContentTypePolicy | None = None,
        clock: Callable[[], float] = time.time,
        files: FileArea | None = None,
        shared: bool = False,
    ) -> None:
        """``shared``: other processes (the nodes of a cluster) use the same records and files,
        and may be receiving an upload to a slot this one sees expire."""
        self._repo = repo
        self._shared = shared
        self.limits = limits or MediaLimits()
        self.types = types or ContentTypePolicy()
        self._clock = clock
        self.files = files or FileArea(root)
        self._uploading: set[str] = set()  # slot ids with a PUT in progress

    # -- slots (XEP-0363 §4) ---------------------------------------------------------------------
    async def request_slot(
        self, owner: str, filename: str, size: int, content_type: str | None
    ) -> Slot:
        """Reserve a slot for ``owner``. Raises :class:`BadSlotRequest`, :class:`FileTooLarge`,
        :class:`ContentTypeRefused`, :class:`QuotaExceeded` or :class:`TooManySlots`."""
        limits = self.limits
        check_filename(filename, limits.max_filename_bytes)
        if size < 1:
            raise BadSlotRequest("the size must be a positive number of bytes")
        if size > limits.max_file_size:
            raise FileTooLarge(size, limits.max_file_size)
        essence = self.types.check(content_type)
        now = self._clock()
        token = secrets.token_urlsafe(ID_BYTES)
        record = MediaRecord(
            slot_id=secrets.token_urlsafe(ID_BYTES),
            file_id=secrets.token_urlsafe(ID_BYTES),
            owner=owner,
            filename=filename,
            size=size,
            content_type=essence,
            token_hash=_token_hash(token),
            created_at=now,
            put_expires_at=now + limits.put_expiry,
        )
        refused = await self._repo.reserve(
            record,
            quota_bytes=limits.quota_bytes,
            max_open_slots=limits.max_open_slots,
            now=now,
        )
        if refused is not None:
            if refused.bytes + size > limits.quota_bytes:
                raise QuotaExceeded(
                    f"Quota reached: {refused.bytes} of {limits.quota_bytes} bytes are in use "
                    f"and this file needs {size}; old files expire after "
                    f"{limits.retention / 86400:g} days"
                )
            raise TooManySlots(
                f"{refused.open_slots} upload slots are open (at most {limits.max_open_slots}); "
                f"use them or wait {limits.put_expiry:g} s for them to expire"
            )
        return Slot(record, token)

    async def usage(self, owner: str) -> Usage:
        return await self._repo.usage(owner, self._clock())

    # -- upload (the PUT) --------------------------------------------------------------------------
    async def upload(
        self,
        slot_id: str,
        filename: str,
        token: str | None,
        body: AsyncIterable[bytes],
        *,
        content_type: str | None = None,
        content_length: int | None = None,
    ) -> MediaRecord:
        """Store ``body`` as the slot's file; returns the stored record. Raises
        :class:`UnknownMedia`, :class:`BadToken`, :class:`SlotUsed`, :class:`SlotExpired`,
        :class:`ContentTypeMismatch`, :class:`SizeMismatch` (:class:`BodyTooLong`),
        :class:`UploadTooSlow` or :class:`MediaStorageFailure`. On any error nothing is kept
        and the slot may be uploaded to again until it expires."""
        record = await self._repo.by_slot(slot_id)
        if record is None or record.filename != filename:
            raise UnknownMedia("no such upload slot")
        if token is None or not hmac.compare_digest(_token_hash(token), record.token_hash):
            raise BadToken("the upload needs the Authorization header given with the slot")
        if record.stored or slot_id in self._uploading:
            raise SlotUsed("this slot has been uploaded to already")
        started = self._clock()
        if started >= record.put_expires_at:
            raise SlotExpired("the upload slot has expired; request a new one")
        if content_type is not None and content_type.strip():
            try:
                sent_type = content_type_essence(content_type)
            except ContentTypeRefused as exc:
                raise ContentTypeMismatch(exc.detail) from None
            if sent_type != record.content_type:
                raise ContentTypeMismatch(
                    f"Content-Type {sent_type} differs from the slot's {record.content_type}"
                )
        if content_length is not None and content_length != record.size:
            error = BodyTooLong if content_length > record.size else SizeMismatch
            raise error(
                f"Content-Length {content_length} differs from the slot's size {record.size}"
            )
        self._uploading.add(slot_id)
        try:
            await self._receive(record, body, started)
            now = self._clock()
            if not await self._repo.mark_stored(slot_id, now, now + self.limits.retention):
                await self.files.remove(slot_id, record.file_id)
                raise UnknownMedia("the upload slot is gone")
        finally:
            self._uploading.discard(slot_id)
        stored = await self._repo.by_slot(slot_id)
        assert stored is not None
        return stored

    async def _receive(
        self, record: MediaRecord, body: AsyncIterable[bytes], started: float
    ) -> None:
        deadline = started + self.limits.upload_time_limit
        try:
            part = await self.files.create_part(record.slot_id)
        except OSError as exc:
            log.error("media part file not created", exc_info=exc)
            raise MediaStorageFailure("the file could not be stored; try again later") from None
        try:
            received = 0
            async for chunk in body:
                received += len(chunk)
                if received > record.size:
                    raise BodyTooLong(f"the body is longer than the slot's size {record.size}")
                if self._clock() > deadline:
                    raise UploadTooSlow(
                        f"the upload took longer than {self.limits.upload_time_limit:g} s"
                    )
                await part.write(chunk)
            if received < record.size:
                raise SizeMismatch(
                    f"the body has {received} bytes; the slot's size is {record.size}"
                )
            await part.commit(self.files.file_path(record.file_id))
        except OSError as exc:
            part.discard()
            log.error("media upload not stored", exc_info=exc)
            raise MediaStorageFailure("the file could not be stored; try again later") from None
        except BaseException:
            part.discard()
            raise

    # -- download (the GET) ----------------------------------------------------------------------
    async def find_file(self, file_id: str, filename: str) -> MediaRecord:
        """The stored, unexpired file at ``file_id``; raises :class:`UnknownMedia` or
        :class:`MediaExpired`."""
        record = await self._repo.by_file(file_id)
        if record is None or not record.stored or record.filename != filename:
            raise UnknownMedia("no such file")
        if record.expired(self._clock()):
            raise MediaExpired("this file has expired and is no longer available")
        return record

    async def open_download(self, file_id: str, filename: str) -> Download:
        """Like :meth:`find_file`, with the file opened for reading."""
        record = await self.find_file(file_id, filename)
        try:
            handle = await self.files.open_read(file_id)
        except FileNotFoundError:
            raise UnknownMedia("no such file") from None
        return Download(record, handle, self.files)

    async def delete_owner(self, owner: str) -> int:
        """Delete every slot and file of ``owner`` (an account that is deleted); the number
        deleted. A running upload of theirs fails when it completes (its slot is gone)."""
        records = await self._repo.owned_by(owner)
        for record in records:
            await self.files.remove(record.slot_id, record.file_id)
        if records:
            await self._repo.delete([r.slot_id for r in records])
        return len(records)

    # -- expiry ----------------------------------------------------------------------------------
    def _gone(self, record: MediaRecord, now: float) -> bool:
        """Whether an expired record may be deleted: with a shared store, a slot not yet
        uploaded to is kept until an upload begun in time on another node would have ended."""
        if not self._shared or record.stored:
            return True
        return now >= record.put_expires_at + self.limits.upload_time_limit

    async def collect_expired(self, now: float, batch: int = 500) -> int:
        """Delete slots and files expired at ``now``, releasing their quota; the number deleted.
        (An open download keeps reading its file: POSIX unlinks only the name.)"""
        deleted = 0
        while True:
            found = await self._repo.expired(now, batch)
            doomed = [r for r in found if r.slot_id not in self._uploading and self._gone(r, now)]
            for record in doomed:
                await self.files.remove(record.slot_id, record.file_id)
            if doomed:
                await self._repo.delete([r.slot_id for r in doomed])
            deleted += len(doomed)
            if len(found) < batch or not doomed:
                return deleted
