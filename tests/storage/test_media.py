"""Media contract: slots reserved against a quota atomically, uploads marked once, live usage,
expiry and deletion."""

from __future__ import annotations

from dataclasses import replace

from interlink.storage import Storage
from interlink.storage.media import MediaRecord, Usage
from tests.storage.kit import T0, jid

OWNER = jid("alice")
QUOTA = 100
SLOTS = 3


def slot(n: int, size: int = 10, owner: str = OWNER) -> MediaRecord:
    return MediaRecord(
        slot_id=f"slot{n}",
        file_id=f"file{n}",
        owner=owner,
        filename=f"photo {n}.jpg",
        size=size,
        content_type="image/jpeg",
        token_hash=bytes([n]) * 32,
        created_at=T0,
        put_expires_at=T0 + 300,
    )


async def reserve(storage: Storage, record: MediaRecord, now: float = T0) -> Usage | None:
    return await storage.media.reserve(record, quota_bytes=QUOTA, max_open_slots=SLOTS, now=now)


async def test_a_reserved_slot_is_found_by_slot_and_by_file(storage: Storage) -> None:
    assert await reserve(storage, slot(1)) is None
    assert await storage.media.by_slot("slot1") == slot(1)
    assert await storage.media.by_file("file1") == slot(1)
    assert await storage.media.by_slot("file1") is None
    assert await storage.media.usage(OWNER, T0) == Usage(bytes=10, open_slots=1)


async def test_the_quota_and_the_open_slot_limit_refuse_with_the_usage(storage: Storage) -> None:
    assert await reserve(storage, slot(1, size=60)) is None
    assert await reserve(storage, slot(2, size=41)) == Usage(bytes=60, open_slots=1)
    assert await storage.media.by_slot("slot2") is None
    assert await reserve(storage, slot(3, size=20)) is None
    assert await reserve(storage, slot(4, size=20)) is None
    assert await reserve(storage, slot(5, size=1)) == Usage(bytes=100, open_slots=3)
    # Other owners have their own quota.
    assert await reserve(storage, slot(6, size=60, owner=jid("bob"))) is None


async def test_marking_stored_happens_once(storage: Storage) -> None:
    await reserve(storage, slot(1))
    assert await storage.media.mark_stored("slot1", T0 + 10, T0 + 1000)
    assert not await storage.media.mark_stored("slot1", T0 + 20, T0 + 2000)
    assert not await storage.media.mark_stored("nope", T0 + 20, T0 + 2000)
    stored = await storage.media.by_file("file1")
    assert stored == replace(slot(1), stored_at=T0 + 10, expires_at=T0 + 1000)
    # A stored file counts its bytes, no longer as an open slot.
    assert await storage.media.usage(OWNER, T0 + 10) == Usage(bytes=10, open_slots=0)


async def test_expired_slots_and_files_stop_counting_and_are_listed(storage: Storage) -> None:
    await reserve(storage, slot(1))  # never uploaded: expires at T0 + 300
    await reserve(storage, slot(2))
    await storage.media.mark_stored("slot2", T0 + 10, T0 + 500)
    await reserve(storage, slot(3), now=T0)
    await storage.media.mark_stored("slot3", T0 + 10, T0 + 5000)

    assert await storage.media.expired(T0 + 299, 10) == []
    assert await storage.media.usage(OWNER, T0 + 300) == Usage(bytes=20, open_slots=0)
    assert [r.slot_id for r in await storage.media.expired(T0 + 300, 10)] == ["slot1"]
    assert sorted(r.slot_id for r in await storage.media.expired(T0 + 500, 10)) == [
        "slot1",
        "slot2",
    ]
    assert len(await storage.media.expired(T0 + 500, 1)) == 1
    assert await storage.media.usage(OWNER, T0 + 500) == Usage(bytes=10, open_slots=0)


async def test_owned_by_and_delete(storage: Storage) -> None:
    for n in range(3):
        await reserve(storage, slot(n))
    await reserve(storage, slot(9, owner=jid("bob")))
    assert sorted(r.slot_id for r in await storage.media.owned_by(OWNER)) == [
        "slot0",
        "slot1",
        "slot2",
    ]
    await storage.media.delete(["slot0", "slot2", "nope"])
    assert [r.slot_id for r in await storage.media.owned_by(OWNER)] == ["slot1"]
    assert await storage.media.by_slot("slot9") is not None
    await storage.media.delete([])
