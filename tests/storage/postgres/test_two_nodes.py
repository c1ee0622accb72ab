"""The repositories ported after the engine (archives, push registrations, rooms, moderation) on
two nodes at once: each limit checked before a write holds against concurrent writers on
another pool (another hub process), as SQLite's single writer gives it, and the archive's
writers, retention and a slow writer of the same archive on another node wait for each other
instead of interleaving or deadlocking."""

from __future__ import annotations

import asyncio

import psycopg

from interlink.storage.archive import ArchiveEntry, ArchiveFilter
from interlink.storage.postgres.engine import PostgresStorage
from interlink.storage.push_registrations import PushRegistration
from interlink.storage.rooms import StoredRoom
from interlink.xmpp.ext.muc import RoomConfig
from tests.storage.kit import T0, account


def entry(owner: str, n: int) -> ArchiveEntry:
    return ArchiveEntry(owner, f"id{n}", "bob@hub.test", "", T0 + n, f"<message id='m{n}'/>")


async def test_concurrent_archive_writes_on_two_nodes_keep_the_quota(
    pg: PostgresStorage, pg_other_node: PostgresStorage
) -> None:
    alice = await account(pg, "alice")
    bob = await account(pg, "bob")
    await asyncio.gather(
        *(
            (pg if i % 2 else pg_other_node).archive.append(
                [entry(alice, 2 * i), entry(bob, 2 * i), entry(alice, 2 * i + 1)], 10
            )
            for i in range(30)
        ),
        pg.archive.prune(T0 + 5),  # retention meanwhile: no deadlock with the groups' trims
        pg_other_node.archive.prune(T0 + 7),
    )
    for owner in (alice, bob):
        page = await pg.archive.page(owner, ArchiveFilter(), after=None, before=None, limit=100)
        assert page is not None
        assert len(page.messages) <= 10
        assert page.count == len(page.messages) == await pg.archive.count(owner)
    full = await pg.archive.page(alice, ArchiveFilter(), after=None, before=None, limit=100)
    assert full is not None
    assert len(full.messages) == 10  # 60 written, the newest 10 kept


async def test_an_archive_write_waits_for_another_nodes_writer_of_that_archive(
    pg: PostgresStorage, pg_dsn: str
) -> None:
    """A writer of alice's archive elsewhere holds its lock until it commits; an append here
    takes its rows' order only after that commit (so paging order is commit order)."""
    alice = await account(pg, "alice")
    async with await psycopg.AsyncConnection.connect(pg_dsn) as other:
        async with other.transaction():
            await other.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", ("archive:" + alice,)
            )
            append = asyncio.create_task(pg.archive.append([entry(alice, 1)], 10))
            await asyncio.sleep(0.3)
            assert not append.done()
        await asyncio.wait_for(append, 10)
    assert await pg.archive.count(alice) == 1


async def test_a_group_of_several_archives_waits_for_each_ones_lock(
    pg: PostgresStorage, pg_dsn: str
) -> None:
    """The locks of a group's archives are taken together, in one round trip: a writer
    elsewhere holding the last of them (in sorted order) holds the whole group back."""
    alice = await account(pg, "alice")
    bob = await account(pg, "bob")
    async with await psycopg.AsyncConnection.connect(pg_dsn) as other:
        async with other.transaction():
            await other.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", ("archive:" + bob,)
            )
            append = asyncio.create_task(pg.archive.append([entry(alice, 1), entry(bob, 2)], 10))
            await asyncio.sleep(0.3)
            assert not append.done()
            assert await pg.archive.count(alice) == 0  # nothing of the group before it
        await asyncio.wait_for(append, 10)
    assert await pg.archive.count(alice) == await pg.archive.count(bob) == 1


async def room(pg: PostgresStorage, local: str) -> str:
    owner = await account(pg, "owner")
    jid = f"{local}@groups.hub.test"
    assert await pg.rooms.create(
        StoredRoom(jid, "hub.test", RoomConfig(), "", "", T0), owner, max_owned=10
    )
    return jid


async def test_concurrent_room_archive_writes_on_two_nodes_keep_the_quota(
    pg: PostgresStorage, pg_other_node: PostgresStorage
) -> None:
    """The rooms' archives (0019) under their own locks: the per-room quota holds and retention
    of rooms' archives runs beside the writers without a deadlock."""
    lobby = await room(pg, "lobby")
    await asyncio.gather(
        *(
            (pg if i % 2 else pg_other_node).room_archive.append(
                [entry(lobby, 2 * i), entry(lobby, 2 * i + 1)], 10
            )
            for i in range(30)
        ),
        pg.room_archive.prune(T0 + 5),
        pg_other_node.room_archive.prune(T0 + 7),
    )
    full = await pg.room_archive.page(lobby, ArchiveFilter(), after=None, before=None, limit=100)
    assert full is not None
    assert len(full.messages) == full.count == await pg.room_archive.count(lobby) == 10
    assert [m.peer for m in full.messages] == ["bob@hub.test"] * 10


async def test_a_room_archive_write_waits_for_another_nodes_writer_of_that_room(
    pg: PostgresStorage, pg_dsn: str
) -> None:
    lobby = await room(pg, "lobby")
    async with await psycopg.AsyncConnection.connect(pg_dsn) as other:
        async with other.transaction():
            await other.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", ("room-archive:" + lobby,)
            )
            append = asyncio.create_task(pg.room_archive.append([entry(lobby, 1)], 10))
            await asyncio.sleep(0.3)
            assert not append.done()
        await asyncio.wait_for(append, 10)
    assert await pg.room_archive.count(lobby) == 1


async def test_concurrent_push_registrations_on_two_nodes_respect_the_limit(
    pg: PostgresStorage, pg_other_node: PostgresStorage
) -> None:
    alice = await account(pg, "alice")
    results = await asyncio.gather(
        *(
            (pg if i % 2 else pg_other_node).push_registrations.register(
                PushRegistration(alice, "push.app.test", f"n{i}", "", T0), max_per_account=3
            )
            for i in range(16)
        )
    )
    assert sum(results) == 3
    assert len(await pg.push_registrations.for_account(alice)) == 3


async def test_concurrent_room_creations_on_two_nodes_respect_the_owned_limit(
    pg: PostgresStorage, pg_other_node: PostgresStorage
) -> None:
    alice = await account(pg, "alice")
    results = await asyncio.gather(
        *(
            (pg if i % 2 else pg_other_node).rooms.create(
                StoredRoom(f"r{i}@groups.hub.test", "hub.test", RoomConfig(), "", "", T0),
                alice,
                max_owned=2,
            )
            for i in range(12)
        )
    )
    assert sum(results) == 2
    assert await pg.rooms.owned(alice) == 2


async def test_disabling_on_two_nodes_at_once_changes_and_announces_once(
    pg: PostgresStorage, pg_other_node: PostgresStorage
) -> None:
    alice = await account(pg, "alice")
    before = await pg.changes.latest()
    results = await asyncio.gather(
        pg.moderation.set_disabled(alice, True, T0),
        pg_other_node.moderation.set_disabled(alice, True, T0 + 1),
    )
    assert sorted(results) == [False, True]
    changes = await pg.changes.since(before, 10)
    assert [(kind, subject) for _, kind, subject in changes] == [("account-disabled", alice)]
    assert await pg.moderation.disabled_accounts() == [alice]
