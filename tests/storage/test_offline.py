"""Offline contract: a capped queue per account, drained in arrival order."""

from __future__ import annotations

from interlink.storage import Storage
from interlink.storage.offline import OfflineTotals, SentMark
from tests.storage.kit import T0, account


async def test_messages_come_back_in_arrival_order(storage: Storage) -> None:
    bob = await account(storage, "bob")
    for n in range(5):
        assert await storage.offline.store(bob, f"<message n='{n}'/>", T0 + n, 10)
    fetched = await storage.offline.fetch(bob, 3)
    assert [m.stanza for m in fetched] == [f"<message n='{n}'/>" for n in range(3)]
    assert [m.stored_at for m in fetched] == [T0, T0 + 1, T0 + 2]
    assert [m.id for m in fetched] == sorted(m.id for m in fetched)
    assert await storage.offline.count(bob) == 5


async def test_the_cap_refuses_and_stores_nothing(storage: Storage) -> None:
    bob = await account(storage, "bob")
    assert await storage.offline.store(bob, "<message n='1'/>", T0, 2)
    assert await storage.offline.store(bob, "<message n='2'/>", T0, 2)
    assert not await storage.offline.store(bob, "<message n='3'/>", T0, 2)
    assert [m.stanza for m in await storage.offline.fetch(bob, 10)] == [
        "<message n='1'/>",
        "<message n='2'/>",
    ]


async def test_draining_deletes_up_to_an_id_and_leaves_later_ones(storage: Storage) -> None:
    bob = await account(storage, "bob")
    for n in range(5):
        await storage.offline.store(bob, f"<message n='{n}'/>", T0, 10)
    drained: list[str] = []
    while batch := await storage.offline.fetch(bob, 2):
        drained.extend(m.stanza for m in batch)
        await storage.offline.delete(bob, batch[-1].id)
    assert drained == [f"<message n='{n}'/>" for n in range(5)]
    assert await storage.offline.count(bob) == 0
    # A message stored after the drain gets a later id: arrival order holds across drains.
    await storage.offline.store(bob, "<message n='late'/>", T0, 10)
    assert [m.stanza for m in await storage.offline.fetch(bob, 10)] == ["<message n='late'/>"]


async def test_queues_are_per_owner_and_totals_sum_them(storage: Storage) -> None:
    alice = await account(storage, "alice")
    bob = await account(storage, "bob")
    await account(storage, "carol")
    assert await storage.offline.totals() == OfflineTotals(0, 0, 0)
    for _ in range(3):
        await storage.offline.store(bob, "<message/>", T0, 10)
    await storage.offline.store(alice, "<message/>", T0, 10)
    totals = await storage.offline.totals()
    assert totals == OfflineTotals(messages=4, accounts=2, longest=3)
    # Deleting up to alice's (latest) id deletes alice's messages, not bob's earlier ones.
    await storage.offline.delete(alice, (await storage.offline.fetch(alice, 1))[0].id)
    assert await storage.offline.count(bob) == 3
    assert await storage.offline.totals() == OfflineTotals(messages=3, accounts=1, longest=3)
    assert await storage.offline.count("ghost@hub.test") == 0


async def test_byte_budget_boundary(storage: Storage) -> None:
    """A queue holds at most ``max_bytes`` (UTF-8) of stanzas; each owner has its own; a drained
    queue has room again."""
    bob = await account(storage, "bob")
    alice = await account(storage, "alice")
    ten = "<m>é1</m>"  # 10 bytes, 9 characters
    assert len(ten.encode()) == 10
    assert await storage.offline.store(bob, ten, T0, 10, max_bytes=20)
    assert await storage.offline.store(bob, ten, T0, 10, max_bytes=20)  # exactly 20
    assert not await storage.offline.store(bob, "<m/>", T0, 10, max_bytes=20)
    assert await storage.offline.bytes_queued(bob) == 20
    assert await storage.offline.count(bob) == 2
    assert await storage.offline.store(alice, ten, T0, 10, max_bytes=20)
    first, _ = await storage.offline.fetch(bob, 10)
    await storage.offline.delete(bob, first.id)
    assert await storage.offline.bytes_queued(bob) == 10
    assert await storage.offline.store(bob, ten, T0, 10, max_bytes=20)
    assert await storage.offline.store(bob, ten, T0, 10)  # no byte budget given


async def test_a_clients_count_settles_what_was_written_on_its_stream(storage: Storage) -> None:
    bob = await account(storage, "bob")
    for n in range(4):
        await storage.offline.store(bob, f"<message n='{n}'/>", T0, 10)
    await storage.offline.store(bob, "<message n='u'/>", T0, 10, SentMark("s1", 9))
    ids = [m.id for m in await storage.offline.fetch(bob, 10)]
    await storage.offline.mark_sent(bob, [(ids[0], SentMark("s1", 3)), (ids[1], SentMark("s1", 4))])
    await storage.offline.mark_sent(bob, [(ids[2], SentMark("s2", 1))])
    assert await storage.offline.delete_received(bob, "s1", 3) == 1  # h=3 covers stanza 3 only
    assert await storage.offline.delete_received(bob, "other", 100) == 0
    assert await storage.offline.delete_received(bob, "s1", 9) == 2  # 4 and the unacked 9
    assert [m.stanza for m in await storage.offline.fetch(bob, 10)] == [
        "<message n='2'/>",
        "<message n='3'/>",
    ]
