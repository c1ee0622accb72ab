"""Rooms' message archives (XEP-0313 for XEP-0045 rooms, migration 0019): the same contract as
the accounts' archives, owned by a room — per room in arrival order, the sender (peer) read
back, filters and pages, the quota, retention, entries of rooms that do not exist skipped, and
the archive leaving with its room (never with a member's account)."""

from __future__ import annotations

from interlink.storage import Storage
from interlink.storage.archive import ArchiveEntry, ArchiveFilter
from interlink.storage.rooms import StoredRoom
from interlink.xmpp.ext.muc import RoomConfig
from tests.storage.kit import T0, account

SERVICE = "hub.test"
BIG = 1_000_000


async def room(storage: Storage, local: str, owner: str) -> str:
    jid = f"{local}@groups.{SERVICE}"
    record = StoredRoom(jid, SERVICE, RoomConfig(), "", "", T0)
    assert await storage.rooms.create(record, owner, max_owned=10)
    return jid


def entry(room_jid: str, n: int, sender: str = "bob@hub.test") -> ArchiveEntry:
    return ArchiveEntry(
        room_jid, f"id{n}", sender, "phone", T0 + n, f"<message id='m{n}' type='groupchat'/>"
    )


async def test_a_rooms_messages_are_kept_in_arrival_order_with_their_sender(
    storage: Storage,
) -> None:
    alice = await account(storage, "alice")
    team = await room(storage, "team", alice)
    other = await room(storage, "other", alice)
    archive = storage.room_archive
    await archive.append([entry(team, 1, alice), entry(other, 1)], BIG)
    await archive.append([entry(team, 0), entry(team, 0)], BIG)  # a repeated id is skipped
    page = await archive.page(team, ArchiveFilter(), after=None, before=None, limit=10)
    assert page is not None
    assert [(m.id, m.peer) for m in page.messages] == [("id1", alice), ("id0", "bob@hub.test")]
    assert (page.count, page.first_index, page.complete) == (2, 0, True)
    assert await archive.count(team) == 2
    assert await archive.count(other) == 1
    by_bob = await archive.page(
        team, ArchiveFilter(peer="bob@hub.test"), after=None, before=None, limit=10
    )
    assert by_bob is not None
    assert [m.id for m in by_bob.messages] == ["id0"]
    edges = await archive.edges(team)
    assert edges is not None
    assert (edges[0].id, edges[1].id) == ("id1", "id0")
    # the accounts' archives are another set: the room's address is no account
    assert await storage.archive.count(team) == 0


async def test_entries_of_rooms_that_do_not_exist_are_skipped(storage: Storage) -> None:
    alice = await account(storage, "alice")
    team = await room(storage, "team", alice)
    gone = f"gone@groups.{SERVICE}"
    await storage.room_archive.append([entry(team, 1), entry(gone, 1)], BIG)
    assert await storage.room_archive.count(team) == 1
    assert await storage.room_archive.count(gone) == 0


async def test_pages_quota_and_retention(storage: Storage) -> None:
    alice = await account(storage, "alice")
    team = await room(storage, "team", alice)
    archive = storage.room_archive
    await archive.append([entry(team, i) for i in range(6)], BIG)
    last = await archive.page(team, ArchiveFilter(), after=None, before="", limit=4)
    assert last is not None
    assert [m.id for m in last.messages] == ["id2", "id3", "id4", "id5"]
    assert last.first_index == 2
    await archive.append([entry(team, 6)], 5)  # past the quota: the oldest two go
    assert await archive.count(team) == 5
    assert await archive.prune(T0 + 4) == 2  # id2, id3
    remaining = await archive.page(team, ArchiveFilter(), after=None, before=None, limit=10)
    assert remaining is not None
    assert [m.id for m in remaining.messages] == ["id4", "id5", "id6"]


async def test_the_archive_leaves_with_its_room_not_with_a_members_account(
    storage: Storage,
) -> None:
    alice = await account(storage, "alice")
    bob = await account(storage, "bob")
    team = await room(storage, "team", alice)
    await storage.room_archive.append([entry(team, 1, bob), entry(team, 2, alice)], BIG)
    await storage.accounts.delete(bob)
    assert await storage.room_archive.count(team) == 2
    assert await storage.rooms.delete(team)
    assert await storage.room_archive.count(team) == 0
    assert await storage.room_archive.edges(team) is None
    again = await room(storage, "team", alice)  # the same name starts empty
    assert await storage.room_archive.count(again) == 0
