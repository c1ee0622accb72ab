"""Rooms of the group service (XEP-0045): configuration, subject and affiliations stored and
read back, the rooms-per-owner limit at its boundary, and affiliations going with their room
and with their account."""

from __future__ import annotations

import pytest

from interlink.errors import RoomExistsError
from interlink.storage import Storage
from interlink.storage.rooms import StoredMember, StoredRoom
from interlink.xmpp.ext.muc import Affiliation, RoomConfig
from tests.storage.kit import T0, account

SERVICE = "hub.test"


def room(local: str, config: RoomConfig | None = None) -> StoredRoom:
    return StoredRoom(f"{local}@groups.{SERVICE}", SERVICE, config or RoomConfig(), "", "", T0)


async def test_a_room_round_trips_with_its_members(storage: Storage) -> None:
    alice = await account(storage, "alice")
    team = room("team", RoomConfig(name="Team", encrypted_only=True, max_occupants=7))
    assert await storage.rooms.create(team, alice, max_owned=5)
    with pytest.raises(RoomExistsError):
        await storage.rooms.create(team, alice, max_owned=5)
    got = await storage.rooms.get(team.jid)
    assert got is not None
    assert got == (team, [StoredMember(alice, Affiliation.OWNER, None)])
    bob = "u1@tp.interop.hub.test"
    await storage.rooms.set_members(
        team.jid,
        {
            bob: StoredMember(bob, Affiliation.MEMBER, alice),
            "x@hub.test": StoredMember("x@hub.test", Affiliation.OUTCAST, None),
        },
    )
    renamed = StoredRoom(team.jid, SERVICE, RoomConfig(name="Team 2"), "plans", "alice", T0)
    await storage.rooms.save(renamed)
    got = await storage.rooms.get(team.jid)
    assert got is not None
    stored, members = got
    assert stored == renamed
    assert members == [
        StoredMember(alice, Affiliation.OWNER, None),
        StoredMember(bob, Affiliation.MEMBER, alice),
        StoredMember("x@hub.test", Affiliation.OUTCAST, None),
    ]
    assert await storage.rooms.rooms_of(bob) == [team.jid]
    assert await storage.rooms.rooms_of("x@hub.test") == []  # outcasts are no members
    await storage.rooms.set_members(team.jid, {bob: None})
    assert await storage.rooms.rooms_of(bob) == []
    assert await storage.rooms.get("nothing@groups.hub.test") is None


async def test_rooms_per_owner_at_the_boundary(storage: Storage) -> None:
    alice = await account(storage, "alice")
    assert await storage.rooms.create(room("a"), alice, max_owned=2)
    assert await storage.rooms.create(room("b"), alice, max_owned=2)
    assert not await storage.rooms.create(room("c"), alice, max_owned=2)
    assert await storage.rooms.get(room("c").jid) is None  # nothing stored
    assert await storage.rooms.owned(alice) == 2
    assert await storage.rooms.delete(room("a").jid)
    assert not await storage.rooms.delete(room("a").jid)
    assert await storage.rooms.create(room("c"), alice, max_owned=2)


async def test_affiliations_go_with_their_room_and_their_account(storage: Storage) -> None:
    alice = await account(storage, "alice")
    bob = await account(storage, "bob")
    assert await storage.rooms.create(room("a", RoomConfig(public=True)), alice, max_owned=5)
    await storage.rooms.set_members(
        room("a").jid, {bob: StoredMember(bob, Affiliation.MEMBER, None)}
    )
    await storage.accounts.delete(bob)
    got = await storage.rooms.get(room("a").jid)
    assert got is not None
    assert [m.jid for m in got[1]] == [alice]
    assert await storage.rooms.public(SERVICE) == [(room("a").jid, "")]
    await storage.rooms.delete(room("a").jid)
    assert await storage.rooms.rooms_of(alice) == []
    # a change for a room that no longer exists stores nothing
    await storage.rooms.set_members(
        room("a").jid, {bob: StoredMember(bob, Affiliation.MEMBER, None)}
    )
    assert await storage.rooms.rooms_of(bob) == []
