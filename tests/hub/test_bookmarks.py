"""Bookmarks: the XEP-0402 node is the truth, XEP-0048 in private storage and in the
``storage:bookmarks`` PEP node are views written through to it; publish-options per XEP-0060
§7.1.5; notifications to the owner's resources."""

from __future__ import annotations

from xml.etree.ElementTree import Element

from interlink.hub.context import HubSettings
from interlink.xmpp.stanza import Iq, IqType
from tests.hub.test_pep import (
    EVENT,
    PUBSUB,
    condition,
    events,
    iq,
    items,
    items_request,
    options,
    publish,
    with_caps,
)
from tests.hubkit import DOMAIN, Client, running_hub

NATIVE = "urn:xmpp:bookmarks:1"
LEGACY = "storage:bookmarks"
PRIVATE = "jabber:iq:private"
NATIVE_OPTIONS = options(
    persist_items="true",
    max_items="max",
    send_last_published_item="never",
    access_model="whitelist",
)


def conference(name: str, nick: str = "", extra: str = "") -> str:
    nick_el = f"<nick>{nick}</nick>" if nick else ""
    return (
        f"<conference xmlns='{NATIVE}' name='{name}' autojoin='true'>{nick_el}{extra}</conference>"
    )


async def private_get(client: Client) -> Element:
    answer = await iq(
        client, f"<query xmlns='{PRIVATE}'><storage xmlns='{LEGACY}'/></query>", kind="get"
    )
    assert answer.type is IqType.RESULT, answer
    (storage,) = list(answer.payload[0])
    return storage


async def private_set(client: Client, body: str) -> Iq:
    return await iq(
        client, f"<query xmlns='{PRIVATE}'><storage xmlns='{LEGACY}'>{body}</storage></query>"
    )


def rooms(storage: Element) -> list[tuple[str | None, str | None, str | None, str | None]]:
    return [
        (c.get("jid"), c.get("name"), c.get("autojoin"), c.findtext(f"{{{LEGACY}}}nick"))
        for c in storage.findall(f"{{{LEGACY}}}conference")
    ]


async def test_native_bookmarks_read_through_private_storage_and_back() -> None:
    async with running_hub() as kit:
        await kit.account("alice")
        a = await kit.connect("alice", "a")
        assert list(await private_get(a)) == []  # nothing stored: the empty element
        extra = "<extensions><state xmlns='urn:example:x'>1</state></extensions>"
        answer = await publish(
            a, NATIVE, f"room@muc.{DOMAIN}", conference("Room", "al", extra), NATIVE_OPTIONS
        )
        assert answer.type is IqType.RESULT, answer
        storage = await private_get(a)
        assert rooms(storage) == [(f"room@muc.{DOMAIN}", "Room", "true", "al")]
        kept = storage.find(f"{{{LEGACY}}}conference/{{urn:example:x}}state")
        assert kept is not None
        assert kept.text == "1"  # extensions survive the conversion
        # A legacy client rewrites the list: one room added, the first one dropped, a URL kept.
        body = (
            f"<conference jid='other@muc.{DOMAIN}' name='Other' autojoin='false'>"
            "<nick>al2</nick><password>pw</password></conference>"
            "<url name='Site' url='https://example.org/'/>"
        )
        assert (await private_set(a, body)).type is IqType.RESULT
        native = await iq(
            a, f"<pubsub xmlns='{PUBSUB}'><items node='{NATIVE}'/></pubsub>", kind="get"
        )
        found = native.payload[0][0]
        assert [i.get("id") for i in found] == [f"other@muc.{DOMAIN}"]
        payload = found[0][0]
        assert payload.tag == f"{{{NATIVE}}}conference"
        assert payload.get("autojoin") == "false"
        assert payload.findtext(f"{{{NATIVE}}}password") == "pw"
        storage = await private_get(a)
        assert rooms(storage) == [(f"other@muc.{DOMAIN}", "Other", "false", "al2")]
        assert [u.get("url") for u in storage.findall(f"{{{LEGACY}}}url")] == [
            "https://example.org/"
        ]


async def test_the_legacy_pep_node_is_a_view_too() -> None:
    async with running_hub() as kit:
        await kit.account("alice")
        a = await kit.connect("alice", "a")
        legacy_items = f"<pubsub xmlns='{PUBSUB}'><items node='{LEGACY}'/></pubsub>"
        assert condition(await iq(a, legacy_items, kind="get"))[0] == "item-not-found"
        storage = (
            f"<storage xmlns='{LEGACY}'><conference jid='r@muc.{DOMAIN}' autojoin='1'/></storage>"
        )
        profile = options(persist_items="true", access_model="whitelist")
        assert (await publish(a, LEGACY, "current", storage, profile)).type is IqType.RESULT
        assert await items(a, f"alice@{DOMAIN}", NATIVE) == [(f"r@muc.{DOMAIN}", "")]
        answer = await iq(a, legacy_items, kind="get")
        (item,) = answer.payload[0][0]
        assert item.get("id") == "current"
        assert rooms(item[0]) == [(f"r@muc.{DOMAIN}", None, "true", None)]
        # a profile the view cannot have
        wrong = options(access_model="open")
        assert condition(await publish(a, LEGACY, "current", storage, wrong)) == (
            "conflict",
            "precondition-not-met",
        )
        assert condition(await publish(a, LEGACY, "current", "<storage xmlns='urn:x'/>"))[0] == (
            "bad-request"
        )


async def test_others_never_read_bookmarks() -> None:
    async with running_hub() as kit:
        await kit.account("alice")
        await kit.account("bob")
        a = await kit.connect("alice", "a")
        b = await kit.connect("bob", "b")
        await publish(a, NATIVE, f"room@muc.{DOMAIN}", conference("Room"), NATIVE_OPTIONS)
        for node in (NATIVE, LEGACY):
            answer = await iq(
                b,
                f"<pubsub xmlns='{PUBSUB}'><items node='{node}'/></pubsub>",
                to=f"alice@{DOMAIN}",
                kind="get",
            )
            assert answer.type is IqType.ERROR
            assert condition(answer)[0] in ("not-allowed", "forbidden")
        forbidden = await iq(
            b,
            f"<query xmlns='{PRIVATE}'><storage xmlns='{LEGACY}'/></query>",
            to=f"alice@{DOMAIN}",
            kind="get",
        )
        assert condition(forbidden)[0] == "forbidden"


async def test_changes_notify_the_owners_resources_in_both_forms() -> None:
    async with running_hub() as kit:
        await kit.account("alice")
        a = await kit.connect("alice", "a")
        native_reader = await kit.connect("alice", "n")
        legacy_reader = await kit.connect("alice", "l")
        await with_caps(kit, native_reader, [NATIVE + "+notify"])
        await with_caps(kit, legacy_reader, [LEGACY + "+notify"])
        for c in (a, native_reader, legacy_reader):
            c.take()
        await private_set(a, f"<conference jid='r@muc.{DOMAIN}' autojoin='true'/>")
        assert events(native_reader) == [(f"alice@{DOMAIN}", NATIVE, [f"r@muc.{DOMAIN}"])]
        assert events(legacy_reader) == [(f"alice@{DOMAIN}", LEGACY, ["current"])]
        await iq(
            a,
            f"<pubsub xmlns='{PUBSUB}'><retract node='{NATIVE}' notify='true'>"
            f"<item id='r@muc.{DOMAIN}'/></retract></pubsub>",
        )
        assert events(native_reader) == [(f"alice@{DOMAIN}", NATIVE, [f"r@muc.{DOMAIN}"])]
        (legacy_event,) = [
            el for el in legacy_reader.take() if el.find(f".//{EVENT}event") is not None
        ]
        storage = legacy_event.find(f".//{EVENT}item/{{{LEGACY}}}storage")
        assert storage is not None
        assert rooms(storage) == []  # the list is empty now


async def test_send_last_published_item_never_on_private_nodes() -> None:
    """XEP-0402 nodes (whitelist) are not pushed at login; other options are preconditions."""
    async with running_hub() as kit:
        await kit.account("alice")
        a = await kit.connect("alice", "a")
        await publish(a, NATIVE, f"room@muc.{DOMAIN}", conference("Room"), NATIVE_OPTIONS)
        again = await kit.connect("alice", "b", available=False)
        await with_caps(kit, again, [NATIVE + "+notify"])
        await kit.hub.ctx.drain_tasks()
        assert events(again) == []
        # the same options again: met; an unsupported or contradicting option: not met
        assert (
            await publish(a, NATIVE, "x@muc.hub.test", conference("X"), NATIVE_OPTIONS)
        ).type is (IqType.RESULT)
        for opts in (
            options(send_last_published_item="on_sub_and_presence"),
            options(access_model="open"),
            options(notify_sub="true"),
        ):
            assert condition(await publish(a, NATIVE, "y@muc.hub.test", conference("Y"), opts)) == (
                "conflict",
                "precondition-not-met",
            )
        # a new node cannot be created with options the hub cannot give it either
        bad = options(access_model="open", send_last_published_item="never")
        assert condition(await publish(a, "urn:example:n", "1", "<x xmlns='urn:e'/>", bad)) == (
            "conflict",
            "precondition-not-met",
        )
        fixed = options(notify_retract="true", notify_delete="1", deliver_payloads="true")
        assert (await publish(a, "urn:example:n", "1", "<x xmlns='urn:e'/>", fixed)).type is (
            IqType.RESULT
        )


async def test_legacy_writes_are_bounded_by_the_node_limit() -> None:
    settings = HubSettings(pep_max_items=2)
    async with running_hub(settings=settings) as kit:
        await kit.account("alice")
        a = await kit.connect("alice", "a")
        two = "".join(f"<conference jid='r{i}@muc.{DOMAIN}'/>" for i in range(2))
        assert (await private_set(a, two)).type is IqType.RESULT
        three = two + f"<conference jid='r2@muc.{DOMAIN}'/>"
        assert condition(await private_set(a, three))[0] == "resource-constraint"
        assert len(rooms(await private_get(a))) == 2  # nothing of the refused write stored
        for body in (
            f"<conference jid='r@muc.{DOMAIN}/nick'/>",  # a full JID is no room
            f"<conference jid='r@muc.{DOMAIN}'/><conference jid='r@muc.{DOMAIN}'/>",
            "<conference/>",
        ):
            assert condition(await private_set(a, body))[0] == "bad-request"


async def test_the_native_node_is_private_even_when_published_without_options() -> None:
    async with running_hub() as kit:
        await kit.account("alice")
        await kit.account("bob")
        a = await kit.connect("alice", "a")
        b = await kit.connect("bob", "b")
        await b.send(f"<presence xmlns='jabber:client' to='alice@{DOMAIN}' type='subscribe'/>")
        await a.send(f"<presence xmlns='jabber:client' to='bob@{DOMAIN}' type='subscribed'/>")
        assert (await publish(a, NATIVE, f"r@muc.{DOMAIN}", conference("R"))).type is (
            IqType.RESULT
        )
        answer = await iq(
            b,
            f"<pubsub xmlns='{PUBSUB}'><items node='{NATIVE}'/></pubsub>",
            to=f"alice@{DOMAIN}",
            kind="get",
        )
        assert condition(answer) == ("not-allowed", "closed-node")
        # and the XEP-0402 options are met by it
        again = await publish(a, NATIVE, f"s@muc.{DOMAIN}", conference("S"), NATIVE_OPTIONS)
        assert again.type is IqType.RESULT


async def test_bookmarks_stored_raw_before_are_adopted_once_and_nothing_is_lost() -> None:
    """An account that stored XEP-0048 bookmarks in private storage before the hub kept them as
    a view: the first read, in either form, moves the conferences to the native node."""
    from interlink.storage.private import PrivateFragment

    async with running_hub() as kit:
        await kit.account("alice")
        owner = f"alice@{DOMAIN}"
        raw = (
            f"<storage xmlns='{LEGACY}'><conference jid='old@muc.{DOMAIN}' name='Old' "
            "autojoin='true'><nick>al</nick></conference><url url='https://example.org/'/>"
            "</storage>"
        )
        repo = kit.hub.ctx.storage.private
        assert await repo.put(owner, [PrivateFragment(LEGACY, raw)], quota=10**6, max_fragments=9)
        a = await kit.connect("alice", "a")
        assert await items(a, owner, NATIVE) == [(f"old@muc.{DOMAIN}", "")]
        storage = await private_get(a)
        assert rooms(storage) == [(f"old@muc.{DOMAIN}", "Old", "true", "al")]  # once, not twice
        assert len(storage.findall(f"{{{LEGACY}}}url")) == 1
        kept = await repo.get(owner, LEGACY)
        assert kept is not None
        assert "conference" not in kept  # moved, the URL stays
        # a raw storage the node cannot take (a full JID) stays as it was, and is still shown
        bad = f"<storage xmlns='{LEGACY}'><conference jid='x@muc.{DOMAIN}/nick'/></storage>"
        await kit.account("bob")
        bob_jid = f"bob@{DOMAIN}"
        assert await repo.put(bob_jid, [PrivateFragment(LEGACY, bad)], quota=10**6, max_fragments=9)
        b = await kit.connect("bob", "b")
        shown = await private_get(b)
        assert [c.get("jid") for c in shown] == [f"x@muc.{DOMAIN}/nick"]


async def test_a_strangers_request_never_migrates_someones_legacy_bookmarks() -> None:
    """Adoption is the owner's business: a third party's items request on the native node is
    refused without moving anything (nor telling by its timing whether there was anything)."""
    from interlink.storage.private import PrivateFragment

    async with running_hub() as kit:
        await kit.account("alice")
        await kit.account("bob")
        owner = f"alice@{DOMAIN}"
        raw = f"<storage xmlns='{LEGACY}'><conference jid='old@muc.{DOMAIN}'/></storage>"
        repo = kit.hub.ctx.storage.private
        assert await repo.put(owner, [PrivateFragment(LEGACY, raw)], quota=10**6, max_fragments=9)
        b = await kit.connect("bob", "b")
        refused = await items_request(b, owner, NATIVE)
        assert refused.type is IqType.ERROR
        assert await repo.get(owner, LEGACY) == raw  # untouched: still the raw legacy form
        a = await kit.connect("alice", "a")
        assert await items(a, owner, NATIVE) == [(f"old@muc.{DOMAIN}", "")]  # the owner adopts


async def test_a_legacy_write_refused_for_the_private_budget_changes_nothing() -> None:
    settings = HubSettings(private_quota_bytes=400)
    async with running_hub(settings=settings) as kit:
        await kit.account("alice")
        owner = f"alice@{DOMAIN}"
        a = await kit.connect("alice", "a")
        first = f"<conference jid='r0@muc.{DOMAIN}'/>"
        assert (await private_set(a, first)).type is IqType.RESULT
        big = f"<conference jid='r1@muc.{DOMAIN}'/><url url='https://example.org/{'x' * 500}'/>"
        assert condition(await private_set(a, big))[0] == "resource-constraint"
        assert await items(a, owner, NATIVE) == [(f"r0@muc.{DOMAIN}", "")]  # neither added
        assert [c.get("jid") for c in await private_get(a)] == [f"r0@muc.{DOMAIN}"]  # nor removed
