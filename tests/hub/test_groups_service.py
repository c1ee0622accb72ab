"""The group service on a hub (hub/groups/service.py): discovery, rooms created, stored and
read back, consent across the interop boundary (invitations and new members decided by the
consent rules, refused exactly like a message to a nonexistent account), blocks, and the
[groups] limits at their boundaries."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from xml.etree.ElementTree import Element

from interlink.errors import StorageError
from interlink.hub.context import HubSettings
from interlink.hub.groups.room import RoomLimits
from interlink.hub.groups.settings import GroupSettings
from interlink.hub.policy.limits import Rate
from interlink.xmpp.ext import interop, muc
from interlink.xmpp.jid import JID
from interlink.xmpp.stanza import Iq, IqType, Message, MessageType, Presence, PresenceType, to_xml
from interlink.xmpp.xml import serialize
from tests.hub.test_policy import PROVIDER, TP, TP2, set_settings
from tests.hubkit import CREDS, DOMAIN, Client, HubKit, running_hub

GROUPS = f"groups.{DOMAIN}"
ROOM = f"team@{GROUPS}"
STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"


@asynccontextmanager
async def group_hub(groups: GroupSettings | None = None) -> AsyncIterator[HubKit]:
    async def user_id(jid: str) -> str | None:
        return "@" + jid.split("@")[0] + ":example.chat"

    settings = HubSettings(groups=groups or GroupSettings())
    async with running_hub(settings, user_ids=user_id) as kit:
        kit.approve(PROVIDER, "Example Chat")
        for jid in (TP, TP2):
            await kit.hub.ctx.storage.accounts.create(jid, CREDS, kit.clock())
        yield kit


def alias(kit: HubKit, local: str, room: str = "team") -> str:
    """The address ``room`` shows for the service's user ``local`` (its per-room alias)."""
    return kit.hub.router.federation.aliases.room_alias(local, room, DOMAIN) + "@" + DOMAIN


async def user(kit: HubKit, local: str, *, opted_in: bool = False) -> Client:
    if "@" not in local:
        await kit.account(local)
    client = await kit.connect(local, "r")
    if opted_in:
        await set_settings(client, enabled="true")
    client.take()
    return client


async def enter(client: Client, nick: str, room: str = ROOM) -> list[Presence | Message | Iq]:
    await client.send(
        f"<presence xmlns='jabber:client' to='{room}/{nick}'><x xmlns='{muc.NS}'/></presence>"
    )
    return list(client.stanzas())


async def create(owner: Client, nick: str = "owner", room: str = ROOM) -> None:
    got = await enter(owner, nick, room)
    self_presence = [s for s in got if isinstance(s, Presence) and s.from_ is not None]
    assert 201 in codes(self_presence[-1])
    await owner.send(
        f"<iq xmlns='jabber:client' type='set' id='cfg' to='{room}'>"
        f"<query xmlns='{muc.NS_OWNER}'><x xmlns='jabber:x:data' type='submit'/></query></iq>"
    )
    (answer,) = owner.stanzas()
    assert isinstance(answer, Iq)
    assert answer.type is IqType.RESULT


def codes(stanza: Presence | Message | Iq) -> set[int]:
    x = stanza.find(muc.USER_X)
    return set() if x is None else muc.statuses_of(x)


def error_of(stanza: Presence | Message | Iq) -> str:
    err = stanza.find("{jabber:client}error")
    assert err is not None, stanza
    return err[0].tag.replace("{" + STANZAS + "}", "")


async def say(client: Client, text: str, room: str = ROOM, id_: str = "m") -> None:
    await client.send(
        f"<message xmlns='jabber:client' type='groupchat' to='{room}' id='{id_}'>"
        f"<body>{text}</body></message>"
    )


async def invite(client: Client, invitee: str, room: str = ROOM) -> None:
    await client.send(
        f"<message xmlns='jabber:client' to='{room}' id='inv'>"
        f"<x xmlns='{muc.NS_USER}'><invite to='{invitee}'><reason>hi</reason></invite></x>"
        "</message>"
    )


async def admin_set(client: Client, items: str, room: str = ROOM) -> Iq:
    await client.send(
        f"<iq xmlns='jabber:client' type='set' id='adm' to='{room}'>"
        f"<query xmlns='{muc.NS_ADMIN}'>{items}</query></iq>"
    )
    (answer,) = [s for s in client.stanzas() if isinstance(s, Iq)]
    return answer


async def disco(client: Client, to: str, what: str = "info") -> Iq:
    await client.send(
        f"<iq xmlns='jabber:client' type='get' id='d' to='{to}'>"
        f"<query xmlns='http://jabber.org/protocol/disco#{what}'/></iq>"
    )
    (answer,) = client.stanzas()
    assert isinstance(answer, Iq)
    return answer


def bodies(client: Client) -> list[str]:
    return [
        s.body or ""
        for s in client.stanzas()
        if isinstance(s, Message) and s.type is MessageType.GROUPCHAT and s.body
    ]


async def test_the_group_service_is_discoverable_and_rooms_describe_themselves() -> None:
    async with group_hub() as kit:
        alice = await user(kit, "alice")
        items = await disco(alice, DOMAIN, "items")
        assert [i.get("jid") for i in items.payload[0]] == [GROUPS]
        info = await disco(alice, GROUPS)
        features = {f.get("var") for f in info.payload[0] if f.get("var")}
        assert muc.NS in features
        identity = info.payload[0][0]
        assert (identity.get("category"), identity.get("type")) == ("conference", "text")
        await create(alice)
        room_info = await disco(alice, ROOM)
        features = {f.get("var") for f in room_info.payload[0] if f.get("var")}
        assert {"muc_membersonly", "muc_nonanonymous", "muc_persistent", "urn:xmpp:ping"} <= (
            features
        )
        bob = await user(kit, "bob")
        hidden = await disco(bob, ROOM)  # a hidden room is no oracle for non-members
        missing = await disco(bob, f"nothing@{GROUPS}")
        assert error_of(hidden) == error_of(missing) == "item-not-found"


async def test_members_chat_and_a_removed_member_gets_nothing_further() -> None:
    async with group_hub() as kit:
        alice = await user(kit, "alice")
        bob = await user(kit, "bob")
        await create(alice)
        await invite(alice, f"bob@{DOMAIN}")
        (invitation,) = bob.stanzas()
        x = invitation.find(muc.USER_X)
        assert x is not None
        assert x.find(muc.INVITE) is not None
        got = await enter(bob, "bob")
        assert codes(got[-2]) == {110, 100, 170}  # 170: the room keeps an archive
        alice.take()
        await say(bob, "hello")
        assert bodies(alice) == ["hello"]
        assert bodies(bob) == ["hello"]
        answer = await admin_set(alice, f"<item affiliation='none' jid='bob@{DOMAIN}'/>")
        assert answer.type is IqType.RESULT
        removed = [s for s in bob.stanzas() if isinstance(s, Presence)]
        assert removed[-1].type is PresenceType.UNAVAILABLE
        assert codes(removed[-1]) == {321, 110}
        await say(alice, "after")
        assert bodies(bob) == []
        got = await enter(bob, "bob")
        assert error_of(got[0]) == "registration-required"


async def test_rooms_are_durable() -> None:
    async with group_hub() as kit:
        alice = await user(kit, "alice", opted_in=True)  # else her own settings refuse
        await create(alice)
        await admin_set(alice, f"<item affiliation='member' jid='{TP}'/>")
        kit.hub.router.groups._rooms.clear()  # a restart: rooms are read back
        bob = await user(kit, TP)
        got = await enter(bob, "tp")
        assert codes(got[-2]) == {110, 100, 170}


async def test_invitation_to_a_user_who_has_not_opted_in_is_refused_like_no_account() -> None:
    async with group_hub() as kit:
        await user(kit, "alice")  # not opted in
        tp = await user(kit, TP)
        await create(tp, "tp")
        await invite(tp, f"alice@{DOMAIN}")
        (to_alice,) = tp.stanzas()
        await invite(tp, f"nobody@{DOMAIN}")
        (to_nobody,) = tp.stanzas()
        assert to_xml(to_alice) == to_xml(to_nobody)  # the same bytes
        assert error_of(to_alice) == "service-unavailable"
        # ... and the same error element as a 1:1 message to a nonexistent account
        await tp.send(
            f"<message xmlns='jabber:client' to='nobody@{DOMAIN}' type='chat' id='inv'>"
            "<body>x</body></message>"
        )
        (direct,) = tp.stanzas()
        error = to_alice.find("{jabber:client}error")
        assert error is not None
        direct_error = direct.find("{jabber:client}error")
        assert direct_error is not None
        assert serialize(error, None) == serialize(direct_error, None)
        # being made a member is refused alike
        answer = await admin_set(tp, f"<item affiliation='member' jid='alice@{DOMAIN}'/>")
        nobody = await admin_set(tp, f"<item affiliation='member' jid='nobody@{DOMAIN}'/>")
        assert error_of(answer) == error_of(nobody) == "service-unavailable"
        assert to_xml(answer) == to_xml(nobody)


async def test_a_third_party_invitation_is_a_request_and_nothing_else_arrives_before() -> None:
    async with group_hub() as kit:
        alice = await user(kit, "alice", opted_in=True)
        tp = await user(kit, TP)
        await create(tp, "tp")
        await invite(tp, f"alice@{DOMAIN}")
        (announced,) = tp.stanzas()  # XEP-0045 §9.3: occupants learn the new member
        x = announced.find(muc.USER_X)
        assert x is not None
        new_member = x.find(muc.ITEM)
        assert new_member is not None
        assert (new_member.get("jid"), new_member.get("affiliation")) == (
            alias(kit, "alice"),  # her alias in this room, never her address
            "member",
        )
        (invitation,) = alice.stanzas()
        marker = invitation.find(interop.MARKER)
        assert marker is not None
        assert marker.get("request") == "true"
        assert marker.get("provider") == PROVIDER
        await say(tp, "before")
        await tp.send(
            f"<message xmlns='jabber:client' type='groupchat' to='{ROOM}'>"
            "<subject>topic</subject></message>"
        )
        assert alice.stanzas() == []  # nothing else from the room before she enters
        got = await enter(alice, "alice")
        tp_presence = next(s for s in got if s.from_ is not None and s.from_.resource == "tp")
        x = tp_presence.find(muc.USER_X)
        assert x is not None
        item = x.find(muc.ITEM)
        assert item is not None
        assert item.find(interop.MARKER) is not None  # the third party is marked
        assert item.get("jid", "").startswith(TP)  # an interop address, never a phone
        await say(tp, "after")
        (msg,) = [s for s in alice.stanzas() if isinstance(s, Message)]
        assert msg.body == "after"
        assert msg.find(interop.MARKER) is not None
        # the request budget is the 1:1 one: more invitations than request_messages are refused
        tp.take()


async def test_a_user_who_blocks_the_room_gets_nothing_from_it() -> None:
    async with group_hub() as kit:
        alice = await user(kit, "alice")
        bob = await user(kit, "bob")
        await create(alice)
        await bob.send(
            "<iq xmlns='jabber:client' type='set' id='b'>"
            f"<block xmlns='urn:xmpp:blocking'><item jid='{ROOM}'/></block></iq>"
        )
        bob.take()
        await invite(alice, f"bob@{DOMAIN}")
        assert bob.stanzas() == []
        (refused,) = alice.stanzas()  # as for an address that does not exist
        await invite(alice, f"nobody@{DOMAIN}")
        (nobody,) = alice.stanzas()
        assert to_xml(refused) == to_xml(nobody)
        # and nothing else of the room reaches him, though he could be made a member
        answer = await admin_set(alice, f"<item affiliation='member' jid='bob@{DOMAIN}'/>")
        assert answer.type is IqType.RESULT
        await enter(bob, "bob")
        bob.take()
        await say(alice, "to bob?")
        assert bob.stanzas() == []


async def test_encrypted_only_rooms_refuse_plain_bodies() -> None:
    async with group_hub() as kit:
        alice = await user(kit, "alice")
        await create(alice)
        await alice.send(
            f"<iq xmlns='jabber:client' type='set' id='cfg' to='{ROOM}'>"
            f"<query xmlns='{muc.NS_OWNER}'><x xmlns='jabber:x:data' type='submit'>"
            f"<field var='{muc.ENCRYPTED_ONLY_FIELD}'><value>1</value></field></x></query></iq>"
        )
        alice.take()
        await say(alice, "plain")
        (refused,) = alice.stanzas()
        assert error_of(refused) == "not-acceptable"
        err = refused.find("{jabber:client}error")
        assert err is not None
        assert "encrypted-only" in (err.findtext("{" + STANZAS + "}text") or "")


async def test_rooms_per_user_at_the_boundary() -> None:
    async with group_hub(GroupSettings(rooms_per_user=2)) as kit:
        alice = await user(kit, "alice")
        await create(alice, room=f"a@{GROUPS}")
        await create(alice, room=f"b@{GROUPS}")
        got = await enter(alice, "owner", f"c@{GROUPS}")
        assert error_of(got[0]) == "resource-constraint"


def sized(body: str) -> int:
    """The size the service counts: the message as the hub holds it (``from`` stamped)."""
    el = Element("{jabber:client}body")
    el.text = body
    msg = Message(
        JID.parse(ROOM), JID.parse(f"alice@{DOMAIN}/r"), "m", None, (el,), MessageType.GROUPCHAT
    )
    return len(to_xml(msg, None).encode())


async def test_message_size_at_the_boundary() -> None:
    limit = sized("x" * 300)
    async with group_hub(GroupSettings(max_message_bytes=limit)) as kit:
        alice = await user(kit, "alice")
        await create(alice)
        await say(alice, "x" * 300)
        assert bodies(alice) == ["x" * 300]
        await say(alice, "x" * 301)
        (refused,) = alice.stanzas()
        assert error_of(refused) == "policy-violation"


async def test_sender_rate_at_the_boundary() -> None:
    settings = GroupSettings(sender_rate=Rate(3, 60.0), room=RoomLimits())
    async with group_hub(settings) as kit:
        alice = await user(kit, "alice")
        await create(alice)
        for i in range(3):
            await say(alice, f"m{i}")
            assert bodies(alice) == [f"m{i}"]
        await say(alice, "m3")
        (refused,) = alice.stanzas()
        assert error_of(refused) == "policy-violation"
        kit.clock.now += 20.0  # one token back
        await say(alice, "m4")
        assert bodies(alice) == ["m4"]


async def test_a_session_that_ends_leaves_its_rooms() -> None:
    async with group_hub() as kit:
        alice = await user(kit, "alice")
        bob = await user(kit, "bob")
        await create(alice)
        await invite(alice, f"bob@{DOMAIN}")
        bob.take()
        await enter(bob, "bob")
        alice.take()
        await kit.disconnect(bob)
        await kit.hub.ctx.drain_tasks()
        (gone,) = alice.stanzas()
        assert isinstance(gone, Presence)
        assert gone.type is PresenceType.UNAVAILABLE
        room = kit.hub.router.groups._rooms
        assert list(next(iter(room.values())).occupants) == ["owner"]


async def test_self_ping() -> None:
    async with group_hub() as kit:
        alice = await user(kit, "alice")
        await create(alice)
        await alice.send(
            f"<iq xmlns='jabber:client' type='get' id='p' to='{ROOM}/owner'>"
            "<ping xmlns='urn:xmpp:ping'/></iq>"
        )
        (ok,) = alice.stanzas()
        assert ok.type is IqType.RESULT
        await alice.send(
            f"<iq xmlns='jabber:client' type='get' id='p' to='{ROOM}/other'>"
            "<ping xmlns='urn:xmpp:ping'/></iq>"
        )
        (bad,) = alice.stanzas()
        assert error_of(bad) == "not-acceptable"


async def test_third_party_invitations_count_against_the_request_budget() -> None:
    async with group_hub() as kit:
        alice = await user(kit, "alice", opted_in=True)
        tp = await user(kit, TP)
        for name in ("a", "b", "c", "d"):
            await create(tp, "tp", f"{name}@{GROUPS}")
        for name in ("a", "b", "c"):  # policy.request_messages = 3
            await invite(tp, f"alice@{DOMAIN}", f"{name}@{GROUPS}")
            assert len(alice.stanzas()) == 1
            tp.take()
        await invite(tp, f"alice@{DOMAIN}", f"d@{GROUPS}")
        (refused,) = tp.stanzas()
        assert error_of(refused) == "policy-violation"
        assert alice.stanzas() == []
        # a 1:1 message now meets the same spent budget
        await tp.send(
            f"<message xmlns='jabber:client' to='alice@{DOMAIN}' type='chat'><body>x</body>"
            "</message>"
        )
        (also,) = tp.stanzas()
        assert error_of(also) == "policy-violation"


async def test_room_rate_at_the_boundary() -> None:
    settings = GroupSettings(room_rate=Rate(4, 60.0))
    async with group_hub(settings) as kit:
        alice = await user(kit, "alice")
        bob = await user(kit, "bob")
        await create(alice)
        await invite(alice, f"bob@{DOMAIN}")
        await enter(bob, "bob")
        alice.take()
        for i, who in enumerate((alice, bob, alice, bob)):  # two senders, one room budget
            await say(who, f"m{i}")
            assert bodies(alice) == [f"m{i}"]
            assert bodies(bob) == [f"m{i}"]
        await say(bob, "m4")
        (refused,) = [s for s in bob.stanzas() if isinstance(s, Message)]
        assert error_of(refused) == "policy-violation"
        err = refused.find("{jabber:client}error")
        assert err is not None
        assert "this room" in (err.findtext("{" + STANZAS + "}text") or "")


async def test_maxusers_is_bounded_by_the_service() -> None:
    settings = GroupSettings(room=RoomLimits(max_occupants=10))
    async with group_hub(settings) as kit:
        alice = await user(kit, "alice")
        await create(alice)
        for value, ok in (("10", True), ("11", False)):
            await alice.send(
                f"<iq xmlns='jabber:client' type='set' id='cfg' to='{ROOM}'>"
                f"<query xmlns='{muc.NS_OWNER}'><x xmlns='jabber:x:data' type='submit'>"
                "<field var='muc#roomconfig_maxusers'>"
                f"<value>{value}</value></field></x></query></iq>"
            )
            (answer,) = [s for s in alice.stanzas() if isinstance(s, Iq)]
            if ok:
                assert answer.type is IqType.RESULT
            else:
                assert error_of(answer) == "not-acceptable"


async def test_a_direct_invitation_follows_the_one_to_one_rules() -> None:
    async with group_hub() as kit:
        alice = await user(kit, "alice", opted_in=True)
        carol = await user(kit, "carol")  # not opted in
        tp = await user(kit, TP)
        direct = f"<x xmlns='{muc.NS_CONFERENCE}' jid='{ROOM}'/>"
        await tp.send(f"<message xmlns='jabber:client' to='alice@{DOMAIN}'>{direct}</message>")
        (got,) = alice.stanzas()
        marker = got.find(interop.MARKER)
        assert marker is not None
        assert marker.get("request") == "true"  # a message request like any first message
        await tp.send(f"<message xmlns='jabber:client' to='carol@{DOMAIN}'>{direct}</message>")
        (refused,) = tp.stanzas()
        assert error_of(refused) == "service-unavailable"
        assert carol.stanzas() == []


async def test_going_unavailable_leaves_every_room() -> None:
    async with group_hub() as kit:
        alice = await user(kit, "alice")
        bob = await user(kit, "bob")
        await create(alice)
        await invite(alice, f"bob@{DOMAIN}")
        await enter(bob, "bob")
        alice.take()
        await bob.send("<presence xmlns='jabber:client' type='unavailable'/>")
        await kit.hub.ctx.drain_tasks()
        gone = [s for s in alice.stanzas() if isinstance(s, Presence)]
        assert [(str(s.from_), s.type) for s in gone] == [(f"{ROOM}/bob", PresenceType.UNAVAILABLE)]


async def test_messages_of_a_blocked_member_do_not_reach_the_blocker() -> None:
    async with group_hub() as kit:
        alice = await user(kit, "alice", opted_in=True)
        tp = await user(kit, TP)
        carol = await user(kit, "carol", opted_in=True)  # else consent hides tp
        await create(alice)
        await admin_set(alice, f"<item affiliation='member' jid='{TP}'/>")
        await invite(alice, f"carol@{DOMAIN}")
        await enter(tp, "tp")
        await enter(carol, "carol")
        await alice.send(
            "<iq xmlns='jabber:client' type='set' id='b'>"
            f"<block xmlns='urn:xmpp:blocking'><item jid='{TP}'/></block></iq>"
        )
        alice.take()
        carol.take()
        await say(tp, "spam")
        assert bodies(alice) == []
        assert bodies(carol) == ["spam"]
        await say(carol, "hello")
        assert bodies(alice) == ["hello"]


async def test_a_removed_account_leaves_the_member_lists() -> None:
    async with group_hub() as kit:
        alice = await user(kit, "alice")
        bob = await user(kit, "bob")
        await create(alice)
        await invite(alice, f"bob@{DOMAIN}")
        await kit.disconnect(bob)
        alice.take()
        await kit.hub.ctx.storage.accounts.delete(f"bob@{DOMAIN}")
        kit.hub.router.groups.forget_account(JID.parse(f"bob@{DOMAIN}"))
        await kit.hub.ctx.drain_tasks()
        (notice,) = alice.stanzas()  # occupants stop encrypting to it
        x = notice.find(muc.USER_X)
        assert x is not None
        item = x.find(muc.ITEM)
        assert item is not None
        assert (item.get("jid"), item.get("affiliation")) == (alias(kit, "bob"), "none")
        room = kit.hub.router.groups._rooms[JID.parse(ROOM)]
        assert JID.parse(f"bob@{DOMAIN}") not in room.state.members


class FailingRooms:
    """The real room repository, whose writes fail while ``failing`` is set."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.failing = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    async def set_members(self, room: str, changes: Any) -> None:
        if self.failing:
            raise StorageError("disk full")
        await self.real.set_members(room, changes)

    async def save(self, room: Any) -> None:
        if self.failing:
            raise StorageError("disk full")
        await self.real.save(room)


async def test_a_storage_failure_leaves_memory_equal_to_the_database() -> None:
    async with group_hub() as kit:
        alice = await user(kit, "alice")
        bob = await user(kit, "bob")
        await create(alice)
        service = kit.hub.router.groups
        failing = FailingRooms(service._repo)
        service._repo = failing
        failing.failing = True
        await invite(alice, f"bob@{DOMAIN}")
        got = alice.stanzas()
        assert error_of(got[-1]) == "internal-server-error"
        gone = [s for s in got if isinstance(s, Presence)]
        assert gone
        assert codes(gone[-1]) == {110, 332}  # she is told she is out of it
        assert bob.stanzas() == []  # nothing delivered of what was not stored
        assert JID.parse(ROOM) not in service._rooms  # memory is not ahead of the disk
        failing.failing = False
        got = await enter(bob, "bob")
        assert error_of(got[0]) == "registration-required"  # the database never had him
        await enter(alice, "owner")
        await say(alice, "still here")
        assert bodies(alice) == ["still here"]


async def test_a_removed_owner_hands_the_room_to_an_admin_then_a_member() -> None:
    async with group_hub() as kit:
        alice = await user(kit, "alice")
        bob = await user(kit, "bob")
        carol = await user(kit, "carol")
        await create(alice)
        await invite(alice, f"bob@{DOMAIN}")
        await invite(alice, f"carol@{DOMAIN}")
        await enter(bob, "bob")
        await admin_set(alice, f"<item affiliation='admin' jid='carol@{DOMAIN}'/>")
        await kit.disconnect(alice)
        bob.take()
        service = kit.hub.router.groups
        await kit.hub.ctx.storage.accounts.delete(f"alice@{DOMAIN}")
        service.forget_account(JID.parse(f"alice@{DOMAIN}"))
        await kit.hub.ctx.drain_tasks()
        room = service._rooms[JID.parse(ROOM)]
        assert room.affiliation(JID.parse(f"carol@{DOMAIN}")) is muc.Affiliation.OWNER
        service._rooms.clear()  # stored so: read back the same
        await kit.hub.ctx.storage.accounts.delete(f"carol@{DOMAIN}")
        await kit.disconnect(bob)
        await kit.disconnect(carol)
        service._rooms.clear()  # carol removed while the room was not in memory
        bob = await user(kit, f"bob@{DOMAIN}")
        await enter(bob, "bob")
        room = service._rooms[JID.parse(ROOM)]
        assert room.affiliation(JID.parse(f"bob@{DOMAIN}")) is muc.Affiliation.OWNER


async def test_a_room_left_with_no_member_ends_with_its_owner() -> None:
    async with group_hub() as kit:
        alice = await user(kit, "alice")
        await create(alice)
        await kit.disconnect(alice)
        service = kit.hub.router.groups
        await kit.hub.ctx.storage.accounts.delete(f"alice@{DOMAIN}")
        service.forget_account(JID.parse(f"alice@{DOMAIN}"))
        await kit.hub.ctx.drain_tasks()
        assert JID.parse(ROOM) not in service._rooms
        assert await kit.hub.ctx.storage.rooms.get(ROOM) is None


async def test_interop_markers_survive_a_full_label_cache() -> None:
    async with group_hub(GroupSettings(labels_cached=1)) as kit:
        alice = await user(kit, "alice", opted_in=True)
        tp = await user(kit, TP)
        tp2 = await user(kit, TP2)
        await create(alice)
        await admin_set(alice, f"<item affiliation='member' jid='{TP}'/>")
        await admin_set(alice, f"<item affiliation='member' jid='{TP2}'/>")
        await enter(tp, "tp")
        await enter(tp2, "tp2")
        assert len(kit.hub.router.groups._labels) == 1  # the boundary holds
        alice.take()
        await say(tp, "hello")
        (msg,) = [s for s in alice.stanzas() if isinstance(s, Message)]
        assert msg.find(interop.MARKER) is not None  # computed again, not lost


async def private(client: Client, nick: str, text: str = "psst", id_: str = "p") -> None:
    await client.send(
        f"<message xmlns='jabber:client' type='chat' to='{ROOM}/{nick}' id='{id_}'>"
        f"<body>{text}</body></message>"
    )


def items_of(stanzas: list[Presence | Message | Iq]) -> dict[str, Element]:
    """The muc#user item of each occupant's presence, by nick."""
    found: dict[str, Element] = {}
    for s in stanzas:
        x = s.find(muc.USER_X)
        item = None if x is None else x.find(muc.ITEM)
        if (
            isinstance(s, Presence)
            and s.from_ is not None
            and s.from_.resource
            and item is not None
        ):
            found[s.from_.resource] = item
    return found


async def mixed_room(
    kit: HubKit,
) -> tuple[Client, Client, Client]:
    """alice (owner, opted in), bob (a member who has not opted in), tp (a third party
    alice made a member), all three in the room; the stanzas so far taken."""
    alice = await user(kit, "alice", opted_in=True)
    bob = await user(kit, "bob")
    tp = await user(kit, TP)
    await create(alice)
    await invite(alice, f"bob@{DOMAIN}")
    await enter(bob, "bob")
    await admin_set(alice, f"<item affiliation='member' jid='{TP}'/>")
    for client in (alice, bob, tp):
        client.take()
    return alice, bob, tp


async def test_a_third_party_sees_aliases_only_and_not_who_has_not_consented() -> None:
    async with group_hub() as kit:
        alice, bob, tp = await mixed_room(kit)
        got = await enter(tp, "tp")
        items = items_of(got)
        assert set(items) == {"owner", "tp"}  # bob has not opted in: not shown at all
        assert items["owner"].get("jid") == alias(kit, "alice") + "/r"  # never her number
        assert items["tp"].get("jid", "").startswith(TP)
        assert not any(f"alice@{DOMAIN}" in to_xml(s) for s in got)
        assert not any(f"bob@{DOMAIN}" in to_xml(s) for s in got)
        assert "tp" not in items_of(bob.stanzas())  # nor is tp shown to bob
        assert "tp" in items_of(alice.stanzas())
        # the member list, read by tp: alice by nick, bob not at all
        await tp.send(
            f"<iq xmlns='jabber:client' type='get' id='l' to='{ROOM}'>"
            f"<query xmlns='{muc.NS_ADMIN}'><item affiliation='member'/></query></iq>"
        )
        await tp.send(
            f"<iq xmlns='jabber:client' type='get' id='o' to='{ROOM}'>"
            f"<query xmlns='{muc.NS_ADMIN}'><item affiliation='owner'/></query></iq>"
        )
        members, owners = tp.stanzas()
        assert f"bob@{DOMAIN}" not in to_xml(members)
        assert f"alice@{DOMAIN}" not in to_xml(owners)
        owner_query = owners.find(muc.ADMIN_QUERY)
        assert owner_query is not None
        assert [(i.get("nick"), i.get("jid")) for i in owner_query] == [
            ("owner", alias(kit, "alice"))
        ]


async def test_room_traffic_across_the_boundary_follows_consent() -> None:
    async with group_hub() as kit:
        alice, bob, tp = await mixed_room(kit)
        await enter(tp, "tp")
        for client in (alice, bob):
            client.take()
        await say(tp, "from tp")
        tp.take()
        assert bodies(alice) == ["from tp"]
        assert bodies(bob) == []  # not opted in: nothing of tp reaches him
        await say(bob, "from bob")
        assert bodies(tp) == []  # and nothing of him reaches tp
        assert bodies(alice) == ["from bob"]
        # bob allows tp's provider: both ways now, and the presence that was held back is not
        # resent (tp sees bob from his next presence on)
        await set_settings(bob, enabled="true")
        bob.take()
        await say(tp, "again")
        tp.take()
        assert bodies(bob) == ["again"]
        await say(bob, "hi tp")
        got = [s for s in tp.stanzas() if isinstance(s, Message)]
        assert [s.body for s in got] == ["hi tp"]
        assert got[0].from_ == JID.parse(f"{ROOM}/bob")


async def test_a_private_message_to_whom_consent_hides_is_refused_like_no_occupant() -> None:
    async with group_hub() as kit:
        _alice, bob, tp = await mixed_room(kit)
        await enter(tp, "tp")
        bob.take()
        await private(tp, "bob")
        (hidden,) = tp.stanzas()
        await private(tp, "nobody")
        (nobody,) = tp.stanzas()
        assert error_of(hidden) == "item-not-found"
        assert to_xml(hidden).replace("/bob", "/nobody") == to_xml(nobody)  # the same bytes
        assert bob.stanzas() == []
        await private(bob, "tp")
        (refused,) = bob.stanzas()
        await private(bob, "nobody")
        (none,) = bob.stanzas()
        assert to_xml(refused).replace("/tp", "/nobody") == to_xml(none)
        assert [s for s in tp.stanzas() if isinstance(s, Message)] == []
        # to a gatekeeper occupant who allows the provider: delivered, from the room nick
        await private(tp, "owner", "hello")
        (delivered,) = [s for s in _alice.stanzas() if isinstance(s, Message)]
        assert delivered.body == "hello"
        assert delivered.from_ == JID.parse(f"{ROOM}/tp")


async def test_a_third_party_enters_only_as_a_member_whatever_members_only_says() -> None:
    async with group_hub() as kit:
        alice = await user(kit, "alice", opted_in=True)
        carol = await user(kit, "carol")
        tp = await user(kit, TP)
        await create(alice)
        await alice.send(
            f"<iq xmlns='jabber:client' type='set' id='cfg' to='{ROOM}'>"
            f"<query xmlns='{muc.NS_OWNER}'><x xmlns='jabber:x:data' type='submit'>"
            "<field var='muc#roomconfig_membersonly'><value>0</value></field>"
            "</x></query></iq>"
        )
        alice.take()
        got = await enter(carol, "carol")  # the service's own users enter an open room
        assert codes(got[-2]) == {110, 100, 170}  # 170: the room keeps an archive
        got = await enter(tp, "tp")
        assert error_of(got[0]) == "registration-required"
        await create(alice, "owner", f"other@{GROUPS}")
        got = await enter(tp, "tp", f"other@{GROUPS}")  # as in a members-only room
        assert error_of(got[0]) == "registration-required"
        # an invitation makes the third party a member even of an open room ...
        await invite(alice, TP)
        tp.take()
        got = await enter(tp, "tp")
        assert codes(got[-2]) == {110, 100, 170}  # 170: the room keeps an archive
        # ... and losing membership puts it out
        await admin_set(alice, f"<item affiliation='none' jid='{TP}'/>")
        out = [s for s in tp.stanzas() if isinstance(s, Presence)]
        assert codes(out[-1]) == {321, 110}


async def test_an_invitation_to_a_third_party_names_the_inviter_by_alias() -> None:
    async with group_hub() as kit:
        alice = await user(kit, "alice", opted_in=True)
        tp = await user(kit, TP)
        await create(alice)
        await invite(alice, TP)
        (invitation,) = tp.stanzas()
        x = invitation.find(muc.USER_X)
        assert x is not None
        note = x.find(muc.INVITE)
        assert note is not None
        assert note.get("from") == alias(kit, "alice")  # as the room will show her
        assert f"alice@{DOMAIN}" not in to_xml(invitation)


OMEMO2_DEVICES = "urn:xmpp:omemo:2:devices"
LEGACY_DEVICES = "eu.siacs.conversations.axolotl.devicelist"


async def publish_devices(client: Client, node: str = OMEMO2_DEVICES) -> None:
    """A device list as OMEMO clients publish it (open access, XEP-0384 §5.3.1)."""
    await client.send(
        "<iq xmlns='jabber:client' type='set' id='pub'>"
        "<pubsub xmlns='http://jabber.org/protocol/pubsub'>"
        f"<publish node='{node}'><item id='current'>"
        "<devices xmlns='urn:xmpp:omemo:2'><device id='4242'/></devices></item></publish>"
        "<publish-options><x xmlns='jabber:x:data' type='submit'>"
        "<field var='FORM_TYPE' type='hidden'>"
        "<value>http://jabber.org/protocol/pubsub#publish-options</value></field>"
        "<field var='pubsub#access_model'><value>open</value></field></x></publish-options>"
        "</pubsub></iq>"
    )
    (answer,) = client.stanzas()
    assert isinstance(answer, Iq)
    assert answer.type is IqType.RESULT, to_xml(answer)


async def fetch(client: Client, to: str, node: str = OMEMO2_DEVICES, action: str = "") -> Iq:
    request = action or f"<items node='{node}'/>"
    kind = "set" if action else "get"
    await client.send(
        f"<iq xmlns='jabber:client' type='{kind}' id='f' to='{to}'>"
        f"<pubsub xmlns='http://jabber.org/protocol/pubsub'>{request}</pubsub></iq>"
    )
    (answer,) = [s for s in client.stanzas() if isinstance(s, Iq)]
    return answer


def error_xml(stanza: Iq) -> str:
    err = stanza.find("{jabber:client}error")
    assert err is not None, to_xml(stanza)
    return serialize(err)


async def test_co_members_fetch_device_lists_through_an_alias_and_no_one_else() -> None:
    """What OMEMO asks of a member's alias (its device lists, new and legacy) is answered from
    the alias for the room's co-members whom consent lets see that member; everyone else gets
    exactly the answer of an account that does not exist."""
    async with group_hub() as kit:
        alice, bob, tp = await mixed_room(kit)
        await publish_devices(alice)
        await publish_devices(alice, LEGACY_DEVICES)
        await publish_devices(bob)
        outsider = await user(kit, TP2)
        await enter(tp, "tp")
        shown = alias(kit, "alice")
        for node in (OMEMO2_DEVICES, LEGACY_DEVICES):
            for reader in (tp, bob):  # a third party and a fellow gatekeeper user
                answer = await fetch(reader, shown, node)
                assert answer.type is IqType.RESULT, to_xml(answer)
                assert str(answer.from_) == shown
                assert "4242" in to_xml(answer)
                assert f"alice@{DOMAIN}" not in to_xml(answer)
        # disco of the alias names the alias only
        await tp.send(
            f"<iq xmlns='jabber:client' type='get' id='d' to='{shown}'>"
            "<query xmlns='http://jabber.org/protocol/disco#items'/></iq>"
        )
        (items,) = tp.stanzas()
        assert isinstance(items, Iq)
        assert items.type is IqType.RESULT
        assert f"alice@{DOMAIN}" not in to_xml(items)
        assert shown in to_xml(items)
        # subscriptions would bring events from her own address: not offered
        subscribe = await fetch(
            tp, shown, action=f"<subscribe node='{OMEMO2_DEVICES}' jid='{TP}'/>"
        )
        assert error_of(subscribe) == "feature-not-implemented"
        # bob has not opted in: tp may not see him, so his alias is nobody to tp
        hidden = await fetch(tp, alias(kit, "bob"))
        # not a member of the room: the alias is nobody to them either
        stranger = await fetch(outsider, shown)
        nobody = await fetch(tp, f"nobody@{DOMAIN}")
        assert error_of(hidden) == error_of(stranger) == error_of(nobody) == "service-unavailable"
        assert error_xml(hidden) == error_xml(stranger) == error_xml(nobody)
        # an alias for another room, or a forged one, is nobody too
        other = await fetch(tp, alias(kit, "alice", "elsewhere"))
        forged = await fetch(tp, "g" + "a" * 40 + f"@{DOMAIN}")
        assert error_xml(other) == error_xml(forged) == error_xml(nobody)


async def test_an_invitee_fetches_no_keys_before_entering_but_its_own_are_fetched() -> None:
    """Nothing of the room reaches an invitee before it enters, its members' keys included;
    the members encrypt to the invitee from the start, so its keys are answered to them."""
    async with group_hub() as kit:
        alice = await user(kit, "alice", opted_in=True)
        bob = await user(kit, "bob", opted_in=True)
        await publish_devices(alice)
        await publish_devices(bob)
        await create(alice)
        await invite(alice, f"bob@{DOMAIN}")
        bob.take()
        early = await fetch(bob, alias(kit, "alice"))
        nobody = await fetch(bob, f"nobody@{DOMAIN}")
        assert error_xml(early) == error_xml(nobody)
        answer = await fetch(alice, alias(kit, "bob"))
        assert answer.type is IqType.RESULT, to_xml(answer)
        await enter(bob, "bob")
        assert (await fetch(bob, alias(kit, "alice"))).type is IqType.RESULT


async def test_members_are_named_by_their_alias_in_what_they_send_the_room() -> None:
    async with group_hub() as kit:
        alice, _bob, tp = await mixed_room(kit)
        await enter(tp, "tp")
        tp.take()
        answer = await admin_set(alice, f"<item affiliation='outcast' jid='{alias(kit, 'bob')}'/>")
        assert answer.type is IqType.RESULT
        room = kit.hub.router.groups._rooms[JID.parse(ROOM)]
        assert room.affiliation(JID.parse(f"bob@{DOMAIN}")) is muc.Affiliation.OUTCAST
        assert JID.parse(alias(kit, "bob")) not in room.state.members


async def test_a_rooms_name_has_a_limit_in_bytes() -> None:
    async with group_hub(GroupSettings(max_room_name_bytes=8)) as kit:
        alice = await user(kit, "alice")
        await create(alice, room=f"{'é' * 4}@{GROUPS}")  # 8 bytes
        got = await enter(alice, "owner", f"{'é' * 4}x@{GROUPS}")
        assert error_of(got[-1]) == "not-acceptable"


async def test_a_removal_reaches_even_those_who_blocked_or_do_not_see_the_member() -> None:
    """§9.3 removal notices reach every occupant, so that no client keeps encrypting to an
    address that left (a block or consent hides messages, not departures)."""
    async with group_hub() as kit:
        alice = await user(kit, "alice", opted_in=True)
        bob = await user(kit, "bob")  # not opted in: tp is hidden from him
        tp = await user(kit, TP)
        await create(alice)
        await invite(alice, f"bob@{DOMAIN}")
        await enter(bob, "bob")
        await admin_set(alice, f"<item affiliation='member' jid='{TP}'/>")
        await kit.disconnect(tp)
        await bob.send(
            "<iq xmlns='jabber:client' type='set' id='b'>"
            f"<block xmlns='urn:xmpp:blocking'><item jid='{TP}'/></block></iq>"
        )
        bob.take()
        await admin_set(alice, f"<item affiliation='none' jid='{TP}'/>")
        (notice,) = bob.stanzas()
        x = notice.find(muc.USER_X)
        assert x is not None
        item = x.find(muc.ITEM)
        assert item is not None
        assert (item.get("jid"), item.get("affiliation")) == (TP, "none")
