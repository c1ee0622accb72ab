"""Room archives through the group service (hub/groups/history.py): what a room archives (each
groupchat message it accepted and broadcast, once, as its occupants got it; never a refused or
private one), the room's stanza-id on the broadcast, who may read the history (members now,
not pending invitees, not removed members), paging, what a reader sees, quota, retention,
destruction, status 170 and disco."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from xml.etree.ElementTree import Element, tostring

from interlink.hub.archive import ArchiveLimits
from interlink.hub.context import HubSettings
from interlink.hub.groups.settings import GroupSettings
from interlink.hub.policy.limits import Rate
from interlink.storage.archive import ArchiveEntry, ArchiveFilter
from interlink.xmpp.ext import interop, mam, muc
from interlink.xmpp.stanza import Iq, IqType, Message, MessageType
from tests.hub.test_archive import STANZA_NS, Answer, form, page
from tests.hub.test_groups_service import (
    ROOM,
    admin_set,
    alias,
    bodies,
    codes,
    create,
    disco,
    enter,
    error_of,
    invite,
    say,
    user,
)
from tests.hub.test_policy import PROVIDER, TP
from tests.hubkit import CREDS, DOMAIN, Client, HubKit, running_hub

BOB = f"bob@{DOMAIN}"


@asynccontextmanager
async def history_hub(
    groups: GroupSettings | None = None, **archive: object
) -> AsyncIterator[HubKit]:
    async def user_id(jid: str) -> str | None:
        return "@" + jid.split("@")[0] + ":example.chat"

    settings = HubSettings(
        groups=groups or GroupSettings(),
        archive=ArchiveLimits(**archive),  # type: ignore[arg-type]
    )
    async with running_hub(settings, user_ids=user_id) as kit:
        kit.approve(PROVIDER, "Example Chat")
        await kit.hub.ctx.storage.accounts.create(TP, CREDS, kit.clock())
        yield kit


async def room_with_bob(kit: HubKit) -> tuple[Client, Client]:
    alice = await user(kit, "alice")
    bob = await user(kit, "bob")
    await create(alice, "alice")
    await invite(alice, BOB)
    await enter(bob, "bob")
    alice.take()
    bob.take()
    return alice, bob


async def ask_room(client: Client, body: str = "", *, kind: str = "set") -> Answer:
    client.take()  # what the room sent before
    await client.send(
        f"<iq xmlns='jabber:client' type='{kind}' id='rq' to='{ROOM}'>"
        f"<query xmlns='{mam.NS}' queryid='r1'>{body}</query></iq>"
    )
    results: list[Element] = []
    iqs: list[Element] = []
    for el in client.take():
        if el.tag == f"{STANZA_NS}message":
            result = el.find(f"{{{mam.NS}}}result")
            assert result is not None, el
            assert result.get("queryid") == "r1"
            assert el.get("from") == ROOM  # §4.2: from the archive's address
            results.append(result)
        else:
            iqs.append(el)
    (iq,) = iqs
    assert iq.get("from") == ROOM
    return Answer(results, iq)


def forwarded(result: Element) -> Element:
    msg = result.find(f"{{{mam.FORWARD}}}forwarded/{STANZA_NS}message")
    assert msg is not None
    return msg


def iq_error(answer: Answer) -> str:
    err = answer.iq.find(f"{STANZA_NS}error")
    assert err is not None, answer.iq
    return err[0].tag.split("}")[1]


async def archived(kit: HubKit) -> int:
    await kit.hub.router.archive.caught_up()
    return await kit.hub.ctx.storage.room_archive.count(ROOM)


async def test_members_messages_are_archived_once_with_the_rooms_stanza_id() -> None:
    async with history_hub() as kit:
        alice, bob = await room_with_bob(kit)
        await say(bob, "hello", id_="b1")
        copies = [s for s in alice.stanzas() + bob.stanzas() if isinstance(s, Message)]
        assert len(copies) == 2
        ids = set()
        for copy in copies:
            (sid,) = [el for el in copy.payload if el.tag == mam.STANZA_ID]
            assert sid.get("by") == ROOM
            ids.add(sid.get("id"))
        assert await archived(kit) == 1  # once per room, not once per occupant
        answer = await ask_room(alice)
        assert answer.ids == list(ids)
        assert answer.bodies == ["hello"]
        kept = forwarded(answer.results[0])
        assert kept.get("from") == f"{ROOM}/bob"  # §5.1.2: the occupant JID, no 'to'
        assert kept.get("to") is None
        assert kept.get("type") == "groupchat"
        assert kept.get("id") == "b1"
        item = kept.find(f"{muc.USER_X}/{muc.ITEM}")  # non-anonymous: the sender's address
        assert item is not None
        assert item.get("jid") == alias(kit, "bob")  # as the room shows him
        assert answer.complete


async def test_the_archived_copy_holds_no_real_address_and_the_marker_members_saw() -> None:
    async with history_hub() as kit:
        alice = await user(kit, "alice", opted_in=True)
        tp = await user(kit, TP)
        await create(alice, "alice")
        await admin_set(alice, f"<item affiliation='member' jid='{TP}'/>")
        await enter(tp, "tp")
        alice.take()
        await say(tp, "from afar")
        (seen,) = [s for s in alice.stanzas() if isinstance(s, Message)]
        marker = seen.find(interop.MARKER)
        assert marker is not None
        await kit.hub.router.archive.caught_up()
        page_ = await kit.hub.ctx.storage.room_archive.page(
            ROOM, ArchiveFilter(), after=None, before=None, limit=10
        )
        assert page_ is not None
        (stored,) = page_.messages
        assert TP not in stored.stanza
        assert f"alice@{DOMAIN}" not in stored.stanza
        assert f"{ROOM}/tp" in stored.stanza
        assert interop.NS in stored.stanza  # the marker as members saw it
        assert stored.peer == TP


async def test_refused_and_private_messages_are_not_archived() -> None:
    async with history_hub(GroupSettings(sender_rate=Rate(3, 60.0))) as kit:
        alice, bob = await room_with_bob(kit)
        carol = await user(kit, "carol")
        await say(carol, "not an occupant")
        assert error_of(carol.stanzas()[0]) == "not-acceptable"
        await bob.send(
            f"<message xmlns='jabber:client' type='chat' to='{ROOM}/alice' id='pm'>"
            "<body>private</body></message>"
        )  # counts against the sender's rate, delivered, not archived (§5.1.2)
        await say(bob, "one")
        await say(bob, "two")
        await say(bob, "three")  # past the sender's rate
        refused = [s for s in bob.stanzas() if s.type is MessageType.ERROR]
        assert [error_of(s) for s in refused] == ["policy-violation"]
        assert await archived(kit) == 2
        # an encrypted-only room refuses a plain body: not archived either
        await alice.send(
            f"<iq xmlns='jabber:client' type='set' id='cfg' to='{ROOM}'>"
            f"<query xmlns='{muc.NS_OWNER}'><x xmlns='jabber:x:data' type='submit'>"
            f"<field var='{muc.ENCRYPTED_ONLY_FIELD}'><value>1</value></field></x></query></iq>"
        )
        alice.take()
        kit.clock.now += 120.0
        await say(bob, "plain")
        assert error_of(bob.stanzas()[-1]) == "not-acceptable"
        assert await archived(kit) == 2
        answer = await ask_room(alice)
        assert answer.bodies == ["one", "two"]


async def test_chat_states_are_not_archived_and_subject_changes_are() -> None:
    async with history_hub() as kit:
        alice, bob = await room_with_bob(kit)
        await bob.send(
            f"<message xmlns='jabber:client' type='groupchat' to='{ROOM}'>"
            "<composing xmlns='http://jabber.org/protocol/chatstates'/></message>"
        )
        await alice.send(
            f"<message xmlns='jabber:client' type='groupchat' to='{ROOM}'>"
            "<subject>plans</subject></message>"
        )
        answer = await ask_room(bob)
        (only,) = answer.results
        assert forwarded(only).findtext(f"{STANZA_NS}subject") == "plans"


async def test_what_only_the_room_writes_is_removed_from_a_message() -> None:
    async with history_hub() as kit:
        alice, bob = await room_with_bob(kit)
        await bob.send(
            f"<message xmlns='jabber:client' type='groupchat' to='{ROOM}' id='f'>"
            f"<body>forged</body><stanza-id xmlns='{mam.SID}' by='{ROOM}' id='mine'/>"
            f"<stanza-id xmlns='{mam.SID}' by='elsewhere.example' id='kept'/>"
            f"<x xmlns='{muc.NS_USER}'><item jid='ceo@{DOMAIN}'/></x></message>"
        )
        (copy,) = [s for s in alice.stanzas() if isinstance(s, Message)]
        ids = [(el.get("by"), el.get("id")) for el in copy.payload if el.tag == mam.STANZA_ID]
        assert ("elsewhere.example", "kept") in ids
        assert (ROOM, "mine") not in ids
        assert copy.find(muc.USER_X) is None
        answer = await ask_room(alice)
        items = forwarded(answer.results[0]).findall(f"{muc.USER_X}/{muc.ITEM}")
        assert [i.get("jid") for i in items] == [alias(kit, "bob")]


async def test_history_pages_with_rsm_and_the_form() -> None:
    async with history_hub() as kit:
        alice, bob = await room_with_bob(kit)
        for i in range(5):
            await say(alice if i % 2 else bob, f"m{i}")
            kit.clock.now += 1.0
        first = await ask_room(bob, page(2))
        assert first.bodies == ["m0", "m1"]
        assert not first.complete
        count = first.rsm("count")
        assert count is not None
        assert count.text == "5"
        second = await ask_room(bob, page(2, after=first.ids[-1]))
        assert second.bodies == ["m2", "m3"]
        last = await ask_room(bob, page(2, before=""))
        assert last.bodies == ["m3", "m4"]
        assert not last.complete  # paging backwards, m0-m2 are before it
        only_bob = await ask_room(alice, form(with_=alias(kit, "bob")))  # as the room shows him
        assert only_bob.bodies == ["m0", "m2", "m4"]
        missing = await ask_room(bob, page(2, after="nope"))
        assert iq_error(missing) == "item-not-found"
        fields = await ask_room(bob, kind="get")
        assert fields.iq.get("type") == "result"
        await bob.send(
            f"<iq xmlns='jabber:client' type='get' id='md' to='{ROOM}'>"
            f"<metadata xmlns='{mam.NS}'/></iq>"
        )
        (meta,) = bob.stanzas()
        assert isinstance(meta, Iq)
        assert str(meta.from_) == ROOM
        start = meta.payload[0].find(f"{{{mam.NS}}}start")
        assert start is not None
        assert start.get("id") == first.ids[0]
        await bob.send(
            f"<iq xmlns='jabber:client' type='get' id='pf' to='{ROOM}'>"
            f"<prefs xmlns='{mam.NS}'/></iq>"
        )
        assert error_of(bob.stanzas()[0]) == "feature-not-implemented"


async def test_only_current_members_read_a_members_only_rooms_history() -> None:
    async with history_hub() as kit:
        alice, bob = await room_with_bob(kit)
        carol = await user(kit, "carol")
        dave = await user(kit, "dave")
        await say(alice, "secret")
        assert iq_error(await ask_room(carol)) == "forbidden"  # never a member
        await invite(alice, f"dave@{DOMAIN}")
        dave.take()
        assert iq_error(await ask_room(dave)) == "forbidden"  # invited, not entered yet
        await enter(dave, "dave")
        dave.take()
        assert (await ask_room(dave)).bodies == ["secret"]
        answer = await admin_set(alice, f"<item affiliation='none' jid='{BOB}'/>")
        assert answer.type is IqType.RESULT
        bob.take()
        await say(alice, "after bob")
        assert bodies(bob) == []
        assert iq_error(await ask_room(bob)) == "forbidden"  # removed: nothing more
        outcast = await admin_set(alice, f"<item affiliation='outcast' jid='{BOB}'/>")
        assert outcast.type is IqType.RESULT
        assert iq_error(await ask_room(bob)) == "forbidden"


async def test_a_semi_anonymous_room_hides_addresses_from_participants() -> None:
    async with history_hub() as kit:
        alice, bob = await room_with_bob(kit)
        await alice.send(
            f"<iq xmlns='jabber:client' type='set' id='cfg' to='{ROOM}'>"
            f"<query xmlns='{muc.NS_OWNER}'><x xmlns='jabber:x:data' type='submit'>"
            "<field var='muc#roomconfig_whois'><value>moderators</value></field></x>"
            "</query></iq>"
        )
        alice.take()
        bob.take()
        await say(alice, "hi")
        answer = await ask_room(bob)
        assert forwarded(answer.results[0]).find(muc.USER_X) is None
        assert iq_error(await ask_room(bob, form(with_=f"alice@{DOMAIN}"))) == "forbidden"
        owner_view = await ask_room(alice)  # a moderator sees them
        assert forwarded(owner_view.results[0]).find(muc.USER_X) is not None


async def test_a_reader_who_blocked_a_member_gets_none_of_their_history() -> None:
    async with history_hub() as kit:
        alice, bob = await room_with_bob(kit)
        await say(bob, "from bob")
        await say(alice, "from alice")
        await alice.send(
            "<iq xmlns='jabber:client' type='set' id='b'>"
            f"<block xmlns='urn:xmpp:blocking'><item jid='{BOB}'/></block></iq>"
        )
        alice.take()
        answer = await ask_room(alice)
        assert answer.bodies == ["from alice"]
        count = answer.rsm("count")
        assert count is not None
        assert count.text == "2"  # counted and paged over


async def test_room_quota_at_the_boundary_and_retention() -> None:
    async with history_hub(max_messages_per_room=2, retention=100.0) as kit:
        alice, bob = await room_with_bob(kit)
        await say(alice, "a")
        await say(alice, "b")
        assert await archived(kit) == 2
        await say(alice, "c")
        assert await archived(kit) == 2
        assert (await ask_room(bob)).bodies == ["b", "c"]
        kit.clock.now += 101.0
        await say(alice, "d")
        removed = await kit.hub.router.archive.prune(kit.clock())
        assert removed == 1  # "b" went with the quota when "d" came, "c" with retention
        assert (await ask_room(bob)).bodies == ["d"]


async def test_destroying_the_room_removes_its_archive() -> None:
    async with history_hub() as kit:
        alice, _ = await room_with_bob(kit)
        await say(alice, "soon gone")
        assert await archived(kit) == 1
        await alice.send(
            f"<iq xmlns='jabber:client' type='set' id='d' to='{ROOM}'>"
            f"<query xmlns='{muc.NS_OWNER}'><destroy/></query></iq>"
        )
        alice.take()
        assert await kit.hub.ctx.storage.room_archive.count(ROOM) == 0
        await create(alice, "alice")  # the same name again starts empty
        assert (await ask_room(alice)).results == []


async def test_status_170_and_disco_when_rooms_archive() -> None:
    async with history_hub() as kit:
        _, bob = await room_with_bob(kit)
        info = await disco(bob, ROOM)
        features = {f.get("var") for f in info.payload[0] if f.get("var")}
        assert {mam.NS, mam.EXTENDED, mam.SID} <= features
        got = await enter(await user(kit, f"bob@{DOMAIN}"), "bob")
        own = [s for s in got if 110 in codes(s)]
        assert 170 in codes(own[-1])  # XEP-0045 §7.2.12


async def test_with_archives_off_rooms_keep_nothing_and_say_so() -> None:
    async with history_hub(enabled=False) as kit:
        alice = await user(kit, "alice")
        bob = await user(kit, "bob")
        await create(alice, "alice")
        await invite(alice, BOB)
        got = await enter(bob, "bob")
        own = [s for s in got if 110 in codes(s)]
        assert 170 not in codes(own[-1])
        alice.take()
        await say(bob, "unkept")
        (copy,) = [s for s in alice.stanzas() if isinstance(s, Message)]
        assert all(el.tag != mam.STANZA_ID for el in copy.payload)
        assert await kit.hub.ctx.storage.room_archive.count(ROOM) == 0
        assert iq_error(await ask_room(bob)) == "feature-not-implemented"
        info = await disco(bob, ROOM)
        assert mam.NS not in {f.get("var") for f in info.payload[0]}


async def test_an_open_rooms_history_is_read_by_anyone_not_banned() -> None:
    async with history_hub() as kit:
        alice, _ = await room_with_bob(kit)
        await alice.send(
            f"<iq xmlns='jabber:client' type='set' id='cfg' to='{ROOM}'>"
            f"<query xmlns='{muc.NS_OWNER}'><x xmlns='jabber:x:data' type='submit'>"
            "<field var='muc#roomconfig_membersonly'><value>0</value></field></x></query></iq>"
        )
        alice.take()
        await say(alice, "open to all")
        carol = await user(kit, "carol")  # never a member, never entered
        assert (await ask_room(carol)).bodies == ["open to all"]
        banned = await admin_set(alice, f"<item affiliation='outcast' jid='carol@{DOMAIN}'/>")
        assert banned.type is IqType.RESULT
        assert iq_error(await ask_room(carol)) == "forbidden"


async def test_a_query_waits_for_the_room_messages_queued_before_it() -> None:
    """The write-behind queue is one FIFO for both kinds of archive: a waiter registered after
    a room entry and before an account entry is released only once the room entry is written
    (with one queue per kind the accounts' went first and released it early)."""
    async with history_hub() as kit:
        alice = await user(kit, "alice")
        await create(alice, "alice")
        archive = kit.hub.router.archive
        now = kit.clock()
        room_entry = ArchiveEntry(ROOM, "r1", f"alice@{DOMAIN}", "r", now, "<message/>")
        account_entry = ArchiveEntry(f"alice@{DOMAIN}", "a1", BOB, "", now, "<message/>")
        assert archive.write([room_entry], rooms=True) is None
        waiting = archive.caught_up()
        registered = waiting.send(None)  # runs up to its wait: registered after the room entry
        released = asyncio.Event()
        registered.add_done_callback(lambda _: released.set())
        assert archive.write([account_entry]) is None
        await asyncio.wait_for(released.wait(), 5.0)
        assert await kit.hub.ctx.storage.room_archive.count(ROOM) == 1
        waiting.close()


async def test_a_third_party_reads_the_history_as_the_room_shows_it_live() -> None:
    """Across the boundary the archive shows what the room would: gatekeeper members under their
    aliases, never their addresses, and nothing of a member whom consent hides from the reader
    (bob never opted in)."""
    async with history_hub() as kit:
        alice = await user(kit, "alice", opted_in=True)
        bob = await user(kit, "bob")
        tp = await user(kit, TP)
        await create(alice, "alice")
        await invite(alice, BOB)
        await enter(bob, "bob")
        await admin_set(alice, f"<item affiliation='member' jid='{TP}'/>")
        await enter(tp, "tp")
        await say(alice, "from alice")
        await say(bob, "from bob")
        await kit.hub.router.archive.caught_up()
        answer = await ask_room(tp)
        texts = [to_xml_text(forwarded(r)) for r in answer.results]
        assert len(texts) == 1  # bob's message is not there
        assert "from alice" in texts[0]
        assert not any(f"alice@{DOMAIN}" in t or BOB in t for t in texts)  # no address
        assert alias(kit, "alice") in texts[0]
        seen_by_alice = await ask_room(alice)
        assert len(seen_by_alice.results) == 2  # a gatekeeper member reads everything


def to_xml_text(el: Element) -> str:
    return tostring(el, encoding="unicode")
