"""The media store with time passed in: every limit at its boundary, the PUT's checks, expiry and
clean-up, durability across a restart, and bounded memory while streaming."""

from __future__ import annotations

import asyncio
import tracemalloc
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from interlink.media import MediaLimits, MediaStore, Slot
from interlink.media.errors import (
    BadSlotRequest,
    BadToken,
    BodyTooLong,
    ContentTypeMismatch,
    ContentTypeRefused,
    FileTooLarge,
    MediaExpired,
    QuotaExceeded,
    SizeMismatch,
    SlotExpired,
    SlotUsed,
    TooManySlots,
    UnknownMedia,
    UploadTooSlow,
)
from interlink.media.policy import ContentTypePolicy
from interlink.storage.media import Usage
from interlink.storage.sqlite import open_sqlite
from tests.media.mediakit import Clock, MediaKit, body, media_kit

OWNER = "alice@hub.test"


async def put(kit: MediaKit, slot: Slot, data: bytes, content_type: str | None = None) -> None:
    await kit.store.upload(
        slot.record.slot_id, slot.record.filename, slot.token, body(data), content_type=content_type
    )


async def read_all(kit: MediaKit, slot: Slot) -> bytes:
    download = await kit.store.open_download(slot.record.file_id, slot.record.filename)
    return b"".join([c async for c in download.chunks()])


def parts(root: Path) -> list[Path]:
    return list((root / "tmp").iterdir())


# -- slot requests -----------------------------------------------------------------------------


async def test_size_limit_exactly_n_is_granted_n_plus_one_refused(tmp_path: Path) -> None:
    async with media_kit(tmp_path, MediaLimits(max_file_size=1000)) as kit:
        await kit.store.request_slot(OWNER, "a.bin", 1000, None)
        with pytest.raises(FileTooLarge) as exc:
            await kit.store.request_slot(OWNER, "b.bin", 1001, None)
        assert exc.value.max_size == 1000
        assert exc.value.status == 413
        assert "1000" in exc.value.detail


@pytest.mark.parametrize("size", [0, -1])
async def test_size_must_be_positive(tmp_path: Path, size: int) -> None:
    async with media_kit(tmp_path) as kit:
        with pytest.raises(BadSlotRequest):
            await kit.store.request_slot(OWNER, "a.bin", size, None)


async def test_quota_exactly_full_is_granted_one_byte_over_refused(tmp_path: Path) -> None:
    limits = MediaLimits(max_file_size=1000, quota_bytes=1000)
    async with media_kit(tmp_path, limits) as kit:
        first = await kit.store.request_slot(OWNER, "a.bin", 600, None)
        await put(kit, first, b"x" * 600)  # stored bytes count
        await kit.store.request_slot(OWNER, "b.bin", 400, None)  # reserved bytes count too
        assert (await kit.store.usage(OWNER)).bytes == 1000
        with pytest.raises(QuotaExceeded) as exc:
            await kit.store.request_slot(OWNER, "c.bin", 1, None)
        assert exc.value.status == 413
        assert "1000 of 1000" in exc.value.detail
        # Per owner: someone else still has the whole quota.
        await kit.store.request_slot("bob@hub.test", "d.bin", 1000, None)


async def test_open_slots_bounded_per_owner(tmp_path: Path) -> None:
    async with media_kit(tmp_path, MediaLimits(max_open_slots=3)) as kit:
        slots = [await kit.store.request_slot(OWNER, f"{i}.bin", 10, None) for i in range(3)]
        with pytest.raises(TooManySlots) as exc:
            await kit.store.request_slot(OWNER, "4.bin", 10, None)
        assert exc.value.status == 429
        await put(kit, slots[0], b"x" * 10)  # an uploaded slot is no longer open
        await kit.store.request_slot(OWNER, "4.bin", 10, None)
        with pytest.raises(TooManySlots):
            await kit.store.request_slot(OWNER, "5.bin", 10, None)


async def test_open_slots_freed_by_expiry_without_cleanup(tmp_path: Path) -> None:
    async with media_kit(tmp_path, MediaLimits(max_open_slots=1, put_expiry=300)) as kit:
        await kit.store.request_slot(OWNER, "a.bin", 10, None)
        kit.clock.now += 299.9
        with pytest.raises(TooManySlots):
            await kit.store.request_slot(OWNER, "b.bin", 10, None)
        kit.clock.now += 0.1
        await kit.store.request_slot(OWNER, "b.bin", 10, None)


@pytest.mark.parametrize(
    ("declared", "stored"),
    [
        (None, "application/octet-stream"),
        ("", "application/octet-stream"),
        ("application/octet-stream", "application/octet-stream"),
        ("Image/JPEG", "image/jpeg"),
        ("audio/ogg; codecs=opus", "audio/ogg"),
        ("text/plain", "text/plain"),
    ],
)
async def test_content_types_admitted(tmp_path: Path, declared: str | None, stored: str) -> None:
    async with media_kit(tmp_path) as kit:
        slot = await kit.store.request_slot(OWNER, "a", 1, declared)
        assert slot.record.content_type == stored


@pytest.mark.parametrize(
    "declared",
    [
        "text/html",
        "TEXT/HTML; charset=utf-8",
        "image/svg+xml",
        "application/xhtml+xml",
        "application/rss+xml",
        "text/xml",
        "application/javascript",
        "text/javascript",
        "multipart/x-mixed-replace",
        "nonsense",
        "a/b/c",
        "text/ plain",
    ],
)
async def test_active_or_malformed_types_refused(tmp_path: Path, declared: str) -> None:
    async with media_kit(tmp_path) as kit:
        with pytest.raises(ContentTypeRefused) as exc:
            await kit.store.request_slot(OWNER, "a", 1, declared)
        assert exc.value.status == 415


async def test_allowlist_policy(tmp_path: Path) -> None:
    policy = ContentTypePolicy(allow=frozenset({"application/octet-stream", "image/*"}))
    async with media_kit(tmp_path, types=policy) as kit:
        await kit.store.request_slot(OWNER, "a", 1, "image/png")
        await kit.store.request_slot(OWNER, "a", 1, None)
        with pytest.raises(ContentTypeRefused, match="accepted: application/octet-stream"):
            await kit.store.request_slot(OWNER, "a", 1, "audio/ogg")
        with pytest.raises(ContentTypeRefused):  # the denylist still applies
            await kit.store.request_slot(OWNER, "a", 1, "image/svg+xml")


@pytest.mark.parametrize(
    "filename", ["", ".", "..", "a/b", "a\\b", "a\nb", "a\x00b", "gpj\u202eexe", "é" * 128]
)
async def test_bad_filenames_refused(tmp_path: Path, filename: str) -> None:
    async with media_kit(tmp_path) as kit:
        with pytest.raises(BadSlotRequest):
            await kit.store.request_slot(OWNER, filename, 1, None)


async def test_filename_length_boundary_in_utf8_bytes(tmp_path: Path) -> None:
    async with media_kit(tmp_path) as kit:
        await kit.store.request_slot(OWNER, "é" * 127 + "a", 1, None)  # 255 bytes
        await kit.store.request_slot(OWNER, "photo 🙂.jpg", 1, None)
        with pytest.raises(BadSlotRequest):
            await kit.store.request_slot(OWNER, "é" * 127 + "ab", 1, None)  # 256 bytes


async def test_ids_and_token_are_unguessable_and_token_not_kept(tmp_path: Path) -> None:
    async with media_kit(tmp_path) as kit:
        a = await kit.store.request_slot(OWNER, "a", 1, None)
        b = await kit.store.request_slot(OWNER, "a", 1, None)
        values = {a.record.slot_id, a.record.file_id, a.token, b.record.slot_id, b.token}
        assert len(values) == 5
        assert all(len(v) >= 32 for v in values)
        stored = await kit.storage.media.by_slot(a.record.slot_id)
        assert stored is not None
        assert a.token.encode() not in stored.token_hash
        assert len(stored.token_hash) == 32


# -- the PUT -----------------------------------------------------------------------------------


async def test_put_exact_size_then_get(tmp_path: Path) -> None:
    async with media_kit(tmp_path) as kit:
        slot = await kit.store.request_slot(OWNER, "a.bin", 11, "image/png")
        record = await kit.store.upload(
            slot.record.slot_id,
            "a.bin",
            slot.token,
            body(b"hello", b" ", b"world"),
            content_type="image/png",
            content_length=11,
        )
        assert record.stored_at == kit.clock.now
        assert record.expires_at == kit.clock.now + kit.store.limits.retention
        assert await read_all(kit, slot) == b"hello world"
        assert parts(tmp_path) == []


async def test_put_more_bytes_than_declared_refused(tmp_path: Path) -> None:
    async with media_kit(tmp_path) as kit:
        slot = await kit.store.request_slot(OWNER, "a.bin", 10, None)
        with pytest.raises(BodyTooLong) as exc:
            await put(kit, slot, b"x" * 11)
        assert exc.value.status == 413
        assert parts(tmp_path) == []
        with pytest.raises(UnknownMedia):
            await read_all(kit, slot)
        await put(kit, slot, b"x" * 10)  # the slot can still be used within its time
        assert await read_all(kit, slot) == b"x" * 10


async def test_put_fewer_bytes_than_declared_refused(tmp_path: Path) -> None:
    async with media_kit(tmp_path) as kit:
        slot = await kit.store.request_slot(OWNER, "a.bin", 10, None)
        with pytest.raises(SizeMismatch) as exc:
            await put(kit, slot, b"x" * 9)
        assert exc.value.status == 400
        assert not isinstance(exc.value, BodyTooLong)
        assert parts(tmp_path) == []


@pytest.mark.parametrize(("length", "error"), [(9, SizeMismatch), (11, BodyTooLong)])
async def test_wrong_content_length_refused_before_reading(
    tmp_path: Path, length: int, error: type[Exception]
) -> None:
    read = False

    async def untouched() -> AsyncIterator[bytes]:
        nonlocal read
        read = True
        yield b"x" * 10

    async with media_kit(tmp_path) as kit:
        slot = await kit.store.request_slot(OWNER, "a.bin", 10, None)
        with pytest.raises(error):
            await kit.store.upload(
                slot.record.slot_id, "a.bin", slot.token, untouched(), content_length=length
            )
        assert not read


@pytest.mark.parametrize("token", [None, "", "wrong", "x" * 32])
async def test_wrong_or_missing_token_refused(tmp_path: Path, token: str | None) -> None:
    async with media_kit(tmp_path) as kit:
        slot = await kit.store.request_slot(OWNER, "a.bin", 1, None)
        with pytest.raises(BadToken) as exc:
            await kit.store.upload(slot.record.slot_id, "a.bin", token, body(b"x"))
        assert exc.value.status == 403


async def test_another_slots_token_refused(tmp_path: Path) -> None:
    async with media_kit(tmp_path) as kit:
        mine = await kit.store.request_slot(OWNER, "a.bin", 1, None)
        other = await kit.store.request_slot(OWNER, "a.bin", 1, None)
        with pytest.raises(BadToken):
            await kit.store.upload(mine.record.slot_id, "a.bin", other.token, body(b"x"))


async def test_unknown_slot_or_other_filename_is_not_found(tmp_path: Path) -> None:
    async with media_kit(tmp_path) as kit:
        slot = await kit.store.request_slot(OWNER, "a.bin", 1, None)
        with pytest.raises(UnknownMedia) as exc:
            await kit.store.upload("nope", "a.bin", slot.token, body(b"x"))
        assert exc.value.status == 404
        with pytest.raises(UnknownMedia):
            await kit.store.upload(slot.record.slot_id, "b.bin", slot.token, body(b"x"))
        with pytest.raises(UnknownMedia):  # the GET id does not take uploads
            await kit.store.upload(slot.record.file_id, "a.bin", slot.token, body(b"x"))


async def test_expired_slot_refused_at_its_boundary(tmp_path: Path) -> None:
    async with media_kit(tmp_path, MediaLimits(put_expiry=300)) as kit:
        early = await kit.store.request_slot(OWNER, "a.bin", 1, None)
        late = await kit.store.request_slot(OWNER, "a.bin", 1, None)
        kit.clock.now += 299.999
        await put(kit, early, b"x")
        kit.clock.now += 0.001
        with pytest.raises(SlotExpired) as exc:
            await put(kit, late, b"x")
        assert exc.value.status == 410


async def test_used_slot_refused(tmp_path: Path) -> None:
    async with media_kit(tmp_path) as kit:
        slot = await kit.store.request_slot(OWNER, "a.bin", 1, None)
        await put(kit, slot, b"x")
        with pytest.raises(SlotUsed) as exc:
            await put(kit, slot, b"y")
        assert exc.value.status == 409
        assert await read_all(kit, slot) == b"x"


async def test_concurrent_put_to_one_slot_refused(tmp_path: Path) -> None:
    gate = asyncio.Event()

    async def slow() -> AsyncIterator[bytes]:
        yield b"x"
        await gate.wait()
        yield b"y"

    async with media_kit(tmp_path) as kit:
        slot = await kit.store.request_slot(OWNER, "a.bin", 2, None)
        first = asyncio.create_task(
            kit.store.upload(slot.record.slot_id, "a.bin", slot.token, slow())
        )
        await asyncio.sleep(0.05)
        with pytest.raises(SlotUsed):
            await put(kit, slot, b"zz")
        gate.set()
        await first
        assert await read_all(kit, slot) == b"xy"


@pytest.mark.parametrize("sent", ["image/jpeg", "text/html", "garbage"])
async def test_wrong_content_type_refused(tmp_path: Path, sent: str) -> None:
    async with media_kit(tmp_path) as kit:
        slot = await kit.store.request_slot(OWNER, "a.bin", 1, None)
        with pytest.raises(ContentTypeMismatch) as exc:
            await put(kit, slot, b"x", content_type=sent)
        assert exc.value.status == 415


async def test_same_content_type_with_parameters_accepted(tmp_path: Path) -> None:
    async with media_kit(tmp_path) as kit:
        slot = await kit.store.request_slot(OWNER, "a.txt", 1, "text/plain")
        await put(kit, slot, b"x", content_type="Text/Plain; charset=utf-8")


async def test_upload_time_limit(tmp_path: Path) -> None:
    async with media_kit(tmp_path, MediaLimits(upload_time_limit=60)) as kit:
        slot = await kit.store.request_slot(OWNER, "a.bin", 3, None)

        async def dawdling() -> AsyncIterator[bytes]:
            yield b"x"
            kit.clock.now += 60
            yield b"x"
            kit.clock.now += 0.001
            yield b"x"

        with pytest.raises(UploadTooSlow) as exc:
            await kit.store.upload(slot.record.slot_id, "a.bin", slot.token, dawdling())
        assert exc.value.status == 408
        assert parts(tmp_path) == []


async def test_cancelled_upload_leaves_nothing_and_slot_reusable(tmp_path: Path) -> None:
    async def hanging() -> AsyncIterator[bytes]:
        yield b"x"
        await asyncio.Event().wait()
        yield b"x"

    async with media_kit(tmp_path) as kit:
        slot = await kit.store.request_slot(OWNER, "a.bin", 2, None)
        task = asyncio.create_task(
            kit.store.upload(slot.record.slot_id, "a.bin", slot.token, hanging())
        )
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert parts(tmp_path) == []
        await put(kit, slot, b"ok")


# -- retention and clean-up ----------------------------------------------------------------------


async def test_expired_file_cleaned_and_quota_released(tmp_path: Path) -> None:
    limits = MediaLimits(quota_bytes=100, max_file_size=100, retention=86400)
    async with media_kit(tmp_path, limits) as kit:
        slot = await kit.store.request_slot(OWNER, "a.bin", 100, None)
        await put(kit, slot, b"x" * 100)
        path = kit.store.files.file_path(slot.record.file_id)
        assert path.exists()
        kit.clock.now += 86400 - 0.001
        assert await read_all(kit, slot) == b"x" * 100
        assert await kit.store.collect_expired(kit.clock.now) == 0
        kit.clock.now += 0.001
        with pytest.raises(MediaExpired) as exc:
            await read_all(kit, slot)
        assert exc.value.status == 410
        assert (await kit.store.usage(OWNER)).bytes == 0  # released on expiry already
        assert await kit.store.collect_expired(kit.clock.now) == 1
        assert not path.exists()
        assert await kit.storage.media.by_slot(slot.record.slot_id) is None
        with pytest.raises(UnknownMedia):
            await read_all(kit, slot)
        await kit.store.request_slot(OWNER, "b.bin", 100, None)


async def test_expired_slot_cleaned_with_its_partial_file(tmp_path: Path) -> None:
    async with media_kit(tmp_path, MediaLimits(put_expiry=300)) as kit:
        slot = await kit.store.request_slot(OWNER, "a.bin", 10, None)
        await kit.store.request_slot(OWNER, "b.bin", 10, None)
        # A part file left by a crash during an upload.
        kit.store.files.part_path(slot.record.slot_id).write_bytes(b"xxx")
        kit.clock.now += 150
        kept = await kit.store.request_slot(OWNER, "b.bin", 10, None)
        kit.clock.now += 150
        assert await kit.store.collect_expired(kit.clock.now) == 2
        assert parts(tmp_path) == []
        assert await kit.storage.media.by_slot(kept.record.slot_id) is not None
        assert await kit.store.usage(OWNER) == Usage(bytes=10, open_slots=1)


async def test_cleanup_in_batches(tmp_path: Path) -> None:
    async with media_kit(tmp_path, MediaLimits(max_open_slots=50)) as kit:
        for i in range(25):
            await kit.store.request_slot(OWNER, f"{i}", 1, None)
        kit.clock.now += 301
        assert await kit.store.collect_expired(kit.clock.now, batch=10) == 25
        assert await kit.storage.media.expired(kit.clock.now, 100) == []


async def test_cleanup_spares_a_running_upload(tmp_path: Path) -> None:
    gate = asyncio.Event()

    async def slow() -> AsyncIterator[bytes]:
        yield b"x"
        await gate.wait()
        yield b"y"

    async with media_kit(tmp_path, MediaLimits(put_expiry=300)) as kit:
        slot = await kit.store.request_slot(OWNER, "a.bin", 2, None)
        task = asyncio.create_task(
            kit.store.upload(slot.record.slot_id, "a.bin", slot.token, slow())
        )
        await asyncio.sleep(0.05)
        kit.clock.now += 400  # started in time, still running when its slot expires
        assert await kit.store.collect_expired(kit.clock.now) == 0
        gate.set()
        await task
        assert await read_all(kit, slot) == b"xy"


async def test_a_shared_store_spares_a_slot_another_node_may_be_uploading_to(
    tmp_path: Path,
) -> None:
    """Two stores on one database and one directory (two nodes of a cluster): a file uploaded
    through one is downloaded through the other; a slot past its PUT expiry is collected only
    once an upload begun in time elsewhere would have ended (``upload_time_limit``)."""
    limits = MediaLimits(put_expiry=300, upload_time_limit=600)
    async with media_kit(tmp_path, limits) as kit:
        other = MediaStore(kit.storage.media, tmp_path, limits=limits, clock=kit.clock, shared=True)
        here = MediaStore(kit.storage.media, tmp_path, limits=limits, clock=kit.clock, shared=True)
        slot = await here.request_slot(OWNER, "a.bin", 3, None)
        await here.upload(slot.record.slot_id, "a.bin", slot.token, body(b"abc"))
        download = await other.open_download(slot.record.file_id, "a.bin")
        try:
            assert b"".join([c async for c in download.chunks()]) == b"abc"
        finally:
            download.close()
        waiting = await here.request_slot(OWNER, "b.bin", 3, None)
        kit.clock.now += 300 + 599  # expired here, maybe still uploading on the other node
        assert await other.collect_expired(kit.clock.now) == 0
        assert await kit.storage.media.by_slot(waiting.record.slot_id) is not None
        kit.clock.now += 1
        assert await other.collect_expired(kit.clock.now) == 1
        assert await kit.storage.media.by_slot(waiting.record.slot_id) is None
        # not shared (one process): collected at its PUT expiry, as before
        alone = await kit.store.request_slot(OWNER, "c.bin", 3, None)
        kit.clock.now += 300
        assert await kit.store.collect_expired(kit.clock.now) == 1
        assert await kit.storage.media.by_slot(alone.record.slot_id) is None


async def test_stored_file_survives_restart(tmp_path: Path) -> None:
    db = tmp_path / "hub.sqlite3"
    async with media_kit(tmp_path / "media", db=db) as kit:
        slot = await kit.store.request_slot(OWNER, "a.bin", 3, None)
        await put(kit, slot, b"abc")
    storage = await open_sqlite(db)
    try:
        clock = Clock()
        store = MediaStore(storage.media, tmp_path / "media", clock=clock)
        download = await store.open_download(slot.record.file_id, "a.bin")
        assert b"".join([c async for c in download.chunks()]) == b"abc"
    finally:
        await storage.close()


async def test_streaming_memory_is_bounded(tmp_path: Path) -> None:
    size = 64 * 1024 * 1024
    chunk = b"\xa5" * 65536

    async def generated() -> AsyncIterator[bytes]:
        for _ in range(size // len(chunk)):
            yield chunk

    async with media_kit(tmp_path, MediaLimits(max_file_size=size, quota_bytes=size)) as kit:
        slot = await kit.store.request_slot(OWNER, "big.bin", size, None)
        tracemalloc.start()
        try:
            await kit.store.upload(slot.record.slot_id, "big.bin", slot.token, generated())
            _, upload_peak = tracemalloc.get_traced_memory()
            tracemalloc.reset_peak()
            download = await kit.store.open_download(slot.record.file_id, "big.bin")
            total = 0
            async for piece in download.chunks():
                total += len(piece)
            _, download_peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert total == size
        assert upload_peak < 8 * 1024 * 1024, upload_peak
        assert download_peak < 4 * 1024 * 1024, download_peak
        assert kit.store.files.file_path(slot.record.file_id).stat().st_size == size


async def test_delete_owner_removes_files_and_quota(tmp_path: Path) -> None:
    async with media_kit(tmp_path) as kit:
        stored = await kit.store.request_slot(OWNER, "a.bin", 3, None)
        await put(kit, stored, b"abc")
        await kit.store.request_slot(OWNER, "b.bin", 3, None)
        other = await kit.store.request_slot("bob@hub.test", "c.bin", 3, None)
        await put(kit, other, b"xyz")
        assert await kit.store.delete_owner(OWNER) == 2
        assert await kit.store.usage(OWNER) == Usage(bytes=0, open_slots=0)
        assert not kit.store.files.file_path(stored.record.file_id).exists()
        with pytest.raises(UnknownMedia):
            await read_all(kit, stored)
        assert await read_all(kit, other) == b"xyz"
