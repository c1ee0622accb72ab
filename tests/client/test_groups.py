"""The SDK's room tracker (client/groups.py): the recipient set follows the member list,
occupants' presence, affiliation notices and removals, at once."""

from __future__ import annotations

from interlink.client.events import GroupLeft, GroupMemberAdded, GroupMemberRemoved
from interlink.client.groups import GroupRoom, ItemFacts, item_facts
from interlink.xmpp.ext import muc
from interlink.xmpp.ext.muc import Affiliation, ItemView, Role
from interlink.xmpp.jid import JID

ROOM = "team@groups.hub.test"
ME = "me@hub.test"


def facts(jid: str | None, affiliation: str, *codes: int) -> ItemFacts:
    return ItemFacts(jid, affiliation, "participant", frozenset(codes))


def test_the_recipient_set_is_the_member_list_without_this_account() -> None:
    room = GroupRoom(ROOM, "me", ME)
    room.set_member(ME, "owner")
    events = room.set_member("a@hub.test", "member")
    assert events == [GroupMemberAdded(ROOM, "a@hub.test", "member")]
    assert room.recipients() == {"a@hub.test"}
    assert room.set_member("a@hub.test", "admin") == []  # a promotion adds nobody
    assert room.set_member("a@hub.test", "none") == [
        GroupMemberRemoved(ROOM, "a@hub.test", "removed")
    ]
    assert room.recipients() == frozenset()
    assert room.set_member("b@hub.test", "outcast") == []  # never a member: nothing to say


def test_presence_adds_and_removals_by_the_room_remove_at_once() -> None:
    room = GroupRoom(ROOM, "me", ME)
    assert room.on_presence("bob", False, facts("bob@hub.test", "member")) == [
        GroupMemberAdded(ROOM, "bob@hub.test", "member")
    ]
    assert room.occupants == {"bob": "bob@hub.test"}
    # leaving the room is not leaving the member list ...
    assert room.on_presence("bob", True, facts("bob@hub.test", "member")) == []
    assert room.recipients() == {"bob@hub.test"}
    # ... a removal (321) or a ban (301) is
    room.on_presence("bob", False, facts("bob@hub.test", "member"))
    assert room.on_presence("bob", True, facts("bob@hub.test", "none", 321)) == [
        GroupMemberRemoved(ROOM, "bob@hub.test", "removed")
    ]
    assert room.recipients() == frozenset()


def test_own_presence_joins_and_own_removal_leaves() -> None:
    room = GroupRoom(ROOM, "me", ME)
    room.on_presence("me", False, facts(ME, "owner", 110, 201))
    assert room.created
    assert room.on_presence("me", True, facts(ME, "none", 110, 307)) == [GroupLeft(ROOM, "kicked")]
    assert not room.joined


def test_item_facts_read_the_room_s_item() -> None:
    item = muc.item_element(
        ItemView(Affiliation.MEMBER, Role.PARTICIPANT, JID.parse("u1@tp.interop.hub.test/app"))
    )
    x = muc.user_x(item, (110,))
    got = item_facts(x)
    assert got == ItemFacts(
        "u1@tp.interop.hub.test", "member", "participant", frozenset({110}), None
    )
