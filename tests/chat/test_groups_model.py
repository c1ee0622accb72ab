"""The chat client's groups, fed SDK group events with time passed in: invitations as
requests, entering, members with their providers, messages labelled by sender and provider,
and the group commands the user types."""

from __future__ import annotations

from interlink.chat.model import ChatModel, Inbox, Invite, NewGroup, Simple, Usage, parse_input
from interlink.client.events import (
    GroupInvitation,
    GroupJoined,
    GroupMemberAdded,
    GroupMemberRemoved,
    GroupMessage,
    InteropMarker,
)

ROOM = "team@groups.hub.example"
TP = "x1@examplechat.interop.hub.example"
MARK = InteropMarker("examplechat", "Example Chat", "@bob:example.chat", "separate", True)


def test_a_third_party_invitation_is_a_request_until_entering() -> None:
    model = ChatModel("alice@hub.example/t")
    notices = model.apply(GroupInvitation(ROOM, TP, "join us", MARK), 1.0)
    assert "invites you" in notices[0].text
    group = model.conversations[ROOM]
    assert model.inbox_of(group) is Inbox.REQUESTS
    assert group.title == "# team"
    model.apply(GroupJoined(ROOM, "alice", (("alice@hub.example", "member"), (TP, "owner"))), 2.0)
    assert model.inbox_of(group) is Inbox.CHATS
    assert not group.request


def test_members_show_their_providers_and_messages_their_sender() -> None:
    model = ChatModel("alice@hub.example/t")
    model.apply(GroupJoined(ROOM, "alice", (("alice@hub.example", "owner"),)), 1.0)
    model.apply(GroupMemberAdded(ROOM, TP, "member", MARK), 2.0)
    assert model.members_text(ROOM) == (f"alice@hub.example (owner)\n{TP} (member) — Example Chat")
    model.apply(GroupMessage(ROOM, "bob", TP, "hi all", "m1", 7, interop=MARK), 3.0)
    group = model.conversations[ROOM]
    assert group.lines[-1].text == "bob (Example Chat): hi all"
    assert group.lines[-1].group_source is not None
    assert group.unread == 1
    model.apply(GroupMemberRemoved(ROOM, TP, "removed"), 4.0)
    assert TP not in group.members


def test_group_addresses_are_on_the_users_service() -> None:
    assert ChatModel("alice@hub.example/t").group_address("Team") == ROOM
    third = ChatModel(f"{TP}/app", third_party_user=True)
    assert third.group_address("team") == ROOM  # a third party's rooms are its service's
    assert third.group_address("x@groups.other.example") == "x@groups.other.example"


def test_group_commands() -> None:
    assert parse_input("/group team") == NewGroup("team")
    assert parse_input(f"/invite {TP}") == Invite(TP)
    assert parse_input("/members") == Simple("members")
    assert parse_input("/leave") == Simple("leave")
    assert parse_input("/decline") == Simple("decline")
    assert isinstance(parse_input("/invite bob"), Usage)
    assert isinstance(parse_input("/group"), Usage)
