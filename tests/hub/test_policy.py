"""The consent and abuse rules of issue 5 without a network: token buckets with time passed in,
the XML of settings and reports, XEP-0191 block lists, and the engine's decisions on a Hub over
in-memory SQLite with fake connections (tests/hubkit.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import cast
from xml.etree.ElementTree import Element, SubElement

import pytest

from interlink.errors import StanzaError, StanzaErrorCondition
from interlink.hub.context import HubSettings
from interlink.hub.policy.blocks import BlockLists
from interlink.hub.policy.limits import BucketTable, PolicyLimits, Rate, TokenBucket, retry_after
from interlink.storage.policy import ConversationState, PolicyRepository
from interlink.storage.sqlite import open_sqlite
from interlink.xmpp.ext import blocking, interop, reporting
from interlink.xmpp.ext.interop import InboxMode, InteropSettings
from interlink.xmpp.jid import JID
from tests.hubkit import CREDS, DOMAIN, Client, HubKit, running_hub

PROVIDER = "examplechat"
PROVIDER_NAME = "Example Chat"
INTEROP_DOMAIN = f"{PROVIDER}.interop.{DOMAIN}"
TP = f"u1@{INTEROP_DOMAIN}"
TP2 = f"u2@{INTEROP_DOMAIN}"
STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
NS = interop.NS


# -- token buckets ---------------------------------------------------------------------------------
def test_bucket_allows_exactly_count_then_refuses_with_retry_seconds() -> None:
    bucket = TokenBucket(Rate(3, 60.0), now=100.0)
    assert [bucket.take(100.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take(100.0) == pytest.approx(20.0)  # one token per 20 s
    assert bucket.peek(100.0) == pytest.approx(20.0)  # peeking takes nothing
    assert bucket.take(110.0) == pytest.approx(10.0)


def test_bucket_refills_with_the_time_passed_in_and_never_above_capacity() -> None:
    bucket = TokenBucket(Rate(2, 10.0), now=0.0)
    assert bucket.take(0.0) == 0.0
    assert bucket.take(0.0) == 0.0
    assert bucket.take(4.999) > 0.0
    assert bucket.take(5.0) == 0.0  # exactly one token after 5 s
    assert bucket.take(5.0) > 0.0
    # A long pause refills to capacity, not beyond.
    assert [bucket.take(1_000.0) for _ in range(3)][:2] == [0.0, 0.0]
    assert bucket.take(1_000.0) > 0.0


def test_bucket_ignores_a_clock_going_backwards() -> None:
    bucket = TokenBucket(Rate(1, 10.0), now=100.0)
    assert bucket.take(100.0) == 0.0
    assert bucket.take(50.0) > 0.0  # no tokens from a clock that went back
    assert bucket.take(100.0) > 0.0
    assert bucket.take(110.0) == 0.0


def test_rate_validation_and_retry_after() -> None:
    with pytest.raises(ValueError, match="count"):
        Rate(-1, 1.0)
    with pytest.raises(ValueError, match="period"):
        Rate(1, 0.0)
    assert Rate(0, 1.0).unlimited
    assert retry_after(0.0) == 1
    assert retry_after(0.2) == 1
    assert retry_after(1.0) == 1
    assert retry_after(1.01) == 2


def test_bucket_table_unlimited_rate_never_refuses_and_keeps_no_buckets() -> None:
    table = BucketTable(Rate(0, 60.0), max_keys=1)
    assert all(table.take("k", 0.0) == 0.0 for _ in range(1_000))
    assert len(table) == 0


def test_bucket_table_is_per_key() -> None:
    table = BucketTable(Rate(1, 60.0))
    assert table.take("a", 0.0) == 0.0
    assert table.take("a", 0.0) > 0.0
    assert table.take("b", 0.0) == 0.0


def test_bucket_table_forgets_the_least_recently_used_beyond_max_keys() -> None:
    table = BucketTable(Rate(1, 60.0), max_keys=2)
    with pytest.raises(ValueError, match="max_keys"):
        BucketTable(Rate(1, 60.0), max_keys=0)
    assert table.take("a", 0.0) == 0.0
    assert table.take("b", 0.0) == 0.0
    assert table.take("a", 0.0) > 0.0  # "a" is now the most recently used
    assert table.take("c", 0.0) == 0.0  # evicts "b"
    assert len(table) == 2
    assert table.take("a", 0.0) > 0.0  # still remembered (and still empty)
    assert table.take("b", 0.0) == 0.0  # forgotten: comes back full (evicts "c")
    assert len(table) == 2


# -- settings XML ----------------------------------------------------------------------------------
def settings_el(children: tuple[str, ...] = (), **attrs: str) -> Element:
    el = Element(interop.SETTINGS, {k.replace("_", "-"): v for k, v in attrs.items()})
    for provider in children:
        SubElement(el, f"{{{NS}}}provider", {"id": provider})
    return el


def condition_of(exc: StanzaError) -> StanzaErrorCondition:
    return exc.condition


def test_apply_settings_changes_only_the_attributes_given() -> None:
    base = InteropSettings()
    assert interop.apply_settings(settings_el(), base, max_providers=4) == base
    on = interop.apply_settings(settings_el(enabled="true"), base, max_providers=4)
    assert on == InteropSettings(enabled=True)
    changed = interop.apply_settings(
        settings_el(
            ("b", "a"),
            providers="list",
            inbox="combined",
            discoverable="1",
            share_activity="0",
        ),
        on,
        max_providers=4,
    )
    assert changed == InteropSettings(
        enabled=True,
        providers=frozenset({"a", "b"}),
        inbox=InboxMode.COMBINED,
        discoverable=True,
        share_activity=False,
    )
    assert (
        interop.apply_settings(settings_el(providers="all"), changed, max_providers=4).providers
        is None
    )
    assert not interop.apply_settings(
        settings_el(enabled="false"), changed, max_providers=4
    ).enabled
    # The hub's answer reads back as what it says.
    assert (
        interop.apply_settings(interop.settings_element(changed), base, max_providers=4) == changed
    )


@pytest.mark.parametrize(
    ("children", "attrs"),
    [
        ((), {"enabled": "yes"}),
        ((), {"enabled": ""}),
        ((), {"discoverable": "TRUE"}),
        ((), {"share_activity": "2"}),
        ((), {"inbox": "other"}),
        ((), {"providers": "some"}),
        (("a",), {"providers": "all"}),
        (("a",), {}),
        (("",), {"providers": "list"}),
    ],
)
def test_apply_settings_refuses_bad_values_with_bad_request(
    children: tuple[str, ...], attrs: dict[str, str]
) -> None:
    with pytest.raises(StanzaError) as refused:
        interop.apply_settings(settings_el(children, **attrs), InteropSettings(), max_providers=4)
    assert condition_of(refused.value) is StanzaErrorCondition.BAD_REQUEST
    assert refused.value.text


def test_apply_settings_provider_list_limit_boundary() -> None:
    at_limit = tuple(f"p{i}" for i in range(4))
    got = interop.apply_settings(
        settings_el(at_limit, providers="list"), InteropSettings(), max_providers=4
    )
    assert got.providers == frozenset(at_limit)
    # Duplicates count once.
    twice = interop.apply_settings(
        settings_el((*at_limit, "p0"), providers="list"), InteropSettings(), max_providers=4
    )
    assert twice.providers == frozenset(at_limit)
    with pytest.raises(StanzaError) as refused:
        interop.apply_settings(
            settings_el((*at_limit, "p4"), providers="list"), InteropSettings(), max_providers=4
        )
    assert condition_of(refused.value) is StanzaErrorCondition.POLICY_VIOLATION
    # An empty list is allowed and allows nobody.
    empty = interop.apply_settings(
        settings_el(providers="list", enabled="true"), InteropSettings(), max_providers=4
    )
    assert empty.providers == frozenset()
    assert not empty.allows("p0")


# -- reports ---------------------------------------------------------------------------------------
def report_item(
    reason: str = "urn:xmpp:reporting:spam",
    text: str | None = None,
    bodies: tuple[str | None, ...] = (),
) -> Element:
    item = Element(blocking.ITEM, {"jid": TP})
    report = SubElement(item, reporting.REPORT, {"reason": reason})
    if text is not None:
        SubElement(report, f"{{{reporting.NS}}}text").text = text
    for i, body in enumerate(bodies):
        forwarded = SubElement(report, reporting.FORWARDED)
        SubElement(forwarded, reporting.DELAY, {"stamp": "2026-01-01T00:00:00Z"})
        message = SubElement(forwarded, reporting.CLIENT_MESSAGE, {"id": f"m{i}"})
        if body is not None:
            SubElement(message, reporting.CLIENT_BODY).text = body
    return item


def test_parse_report_absent_and_present() -> None:
    assert reporting.parse_report(Element(blocking.ITEM), max_messages=2, max_text=10) is None
    found = reporting.parse_report(
        report_item(text="bad", bodies=("x",)), max_messages=2, max_text=10
    )
    assert found is not None
    reason, text, messages = found
    assert (reason, text) == ("urn:xmpp:reporting:spam", "bad")
    assert [(m.id, m.at, m.body) for m in messages] == [("m0", "2026-01-01T00:00:00Z", "x")]
    abuse = reporting.parse_report(
        report_item("urn:xmpp:reporting:abuse"), max_messages=2, max_text=10
    )
    assert abuse is not None
    assert abuse[0] == "urn:xmpp:reporting:abuse"


@pytest.mark.parametrize("reason", ["", "spam", "urn:xmpp:reporting:other"])
def test_parse_report_checks_the_reason(reason: str) -> None:
    with pytest.raises(StanzaError) as refused:
        reporting.parse_report(report_item(reason), max_messages=2, max_text=10)
    assert condition_of(refused.value) is StanzaErrorCondition.BAD_REQUEST


def test_parse_report_max_messages_boundary() -> None:
    found = reporting.parse_report(report_item(bodies=("a", "b")), max_messages=2, max_text=10)
    assert found is not None
    assert len(found[2]) == 2
    with pytest.raises(StanzaError) as refused:
        reporting.parse_report(report_item(bodies=("a", "b", "c")), max_messages=2, max_text=10)
    assert condition_of(refused.value) is StanzaErrorCondition.POLICY_VIOLATION
    with pytest.raises(StanzaError):
        reporting.parse_report(report_item(bodies=("a",)), max_messages=0, max_text=10)


def test_parse_report_max_text_boundary() -> None:
    assert (
        reporting.parse_report(report_item(text="x" * 10), max_messages=2, max_text=10) is not None
    )
    with pytest.raises(StanzaError) as refused:
        reporting.parse_report(report_item(text="x" * 11), max_messages=2, max_text=10)
    assert condition_of(refused.value) is StanzaErrorCondition.POLICY_VIOLATION
    assert reporting.parse_report(report_item(bodies=("y" * 10,)), max_messages=2, max_text=10)
    with pytest.raises(StanzaError) as long_body:
        reporting.parse_report(report_item(bodies=("y" * 11,)), max_messages=2, max_text=10)
    assert condition_of(long_body.value) is StanzaErrorCondition.POLICY_VIOLATION


def test_parse_report_needs_a_body_in_each_forwarded_message() -> None:
    with pytest.raises(StanzaError) as refused:
        reporting.parse_report(report_item(bodies=(None,)), max_messages=2, max_text=10)
    assert condition_of(refused.value) is StanzaErrorCondition.BAD_REQUEST


# -- block lists -----------------------------------------------------------------------------------
def _no_aliases(_holder: JID, _item: JID) -> JID | None:
    return None


@asynccontextmanager
async def block_lists(max_items: int = 3) -> AsyncIterator[BlockLists]:
    storage = await open_sqlite(":memory:")
    try:
        await storage.accounts.create(f"alice@{DOMAIN}", CREDS, 0.0)
        yield BlockLists(storage.policy, max_items, _no_aliases, lambda: None)
    finally:
        await storage.close()


ALICE = JID.parse(f"alice@{DOMAIN}")
BOB = JID.parse(f"bob@{DOMAIN}")


async def test_block_bare_jid_blocks_every_resource() -> None:
    async with block_lists() as lists:
        assert not lists.active
        assert await lists.block(ALICE, [JID.parse(TP)], 1.0) == [TP]
        assert lists.active
        assert lists.blocks(ALICE, JID.parse(TP))
        assert lists.blocks(ALICE, JID.parse(f"{TP}/phone"))
        assert not lists.blocks(ALICE, JID.parse(TP2))
        assert not lists.blocks(JID.parse(f"bob@{DOMAIN}"), JID.parse(TP))


async def test_block_full_jid_blocks_only_that_resource() -> None:
    async with block_lists() as lists:
        await lists.block(ALICE, [JID.parse(f"{TP}/phone")], 1.0)
        assert lists.blocks(ALICE, JID.parse(f"{TP}/phone"))
        assert not lists.blocks(ALICE, JID.parse(f"{TP}/laptop"))
        assert not lists.blocks(ALICE, JID.parse(TP))


async def test_block_domain_item_blocks_a_whole_provider() -> None:
    async with block_lists() as lists:
        await lists.block(ALICE, [JID.parse(INTEROP_DOMAIN)], 1.0)
        assert lists.blocks(ALICE, JID.parse(TP))
        assert lists.blocks(ALICE, JID.parse(f"{TP2}/x"))
        assert not lists.blocks(ALICE, JID.parse(f"u1@other.interop.{DOMAIN}"))
        assert not lists.blocks(ALICE, JID.parse(f"bob@{DOMAIN}"))
        assert lists.items(ALICE) == [INTEROP_DOMAIN]


async def test_block_list_max_items_boundary_and_persistence() -> None:
    async with block_lists(max_items=3) as lists:
        jids = [JID.parse(f"u{i}@{INTEROP_DOMAIN}") for i in range(4)]
        assert len(await lists.block(ALICE, jids[:3], 1.0)) == 3
        assert await lists.block(ALICE, jids[:3], 2.0) == []  # nothing new: no limit hit
        with pytest.raises(StanzaError) as refused:
            await lists.block(ALICE, jids[3:], 3.0)
        assert refused.value.condition is StanzaErrorCondition.POLICY_VIOLATION
        assert not lists.blocks(ALICE, jids[3])
        # Written through: a fresh copy loads the same list.
        again = BlockLists(lists._repo, 3, _no_aliases, lambda: None)
        await again.load()
        assert again.items(ALICE) == sorted(str(j) for j in jids[:3])
        assert await lists.unblock(ALICE, [jids[0]]) == [str(jids[0])]
        assert not lists.blocks(ALICE, jids[0])
        assert await lists.unblock(ALICE, None) == sorted(str(j) for j in jids[1:3])
        assert not lists.active


ALIAS = JID.parse(f"gsomealias@{DOMAIN}")
BEHIND = JID.parse(f"4915100000001@{DOMAIN}")


async def test_a_blocked_alias_keeps_its_account_out_in_one_direction_and_reads_back_as_given() -> (
    None
):
    """An item that is an alias keeps out the account behind it (any of its resources, from
    anywhere), is read back as the alias, never the account, and does not make the account's
    own address 'blocked' for the owner (that answer would name the number behind it)."""

    def behind(holder: JID, item: JID) -> JID | None:
        return BEHIND if holder == ALICE and item == ALIAS else None

    storage = await open_sqlite(":memory:")
    try:
        await storage.accounts.create(str(ALICE), CREDS, 0.0)
        lists = BlockLists(storage.policy, 3, behind, lambda: None)
        assert not lists.keeps_out(ALICE, BEHIND)
        await lists.block(ALICE, [ALIAS], 1.0)
        assert lists.items(ALICE) == [str(ALIAS)]
        assert lists.keeps_out(ALICE, BEHIND)
        assert lists.keeps_out(ALICE, BEHIND.with_resource("phone"))
        assert lists.keeps_out(ALICE, ALIAS)
        assert not lists.blocks(ALICE, BEHIND)  # the owner's own sending is not "blocked"
        assert not lists.keeps_out(JID.parse(f"bob@{DOMAIN}"), BEHIND)
        again = BlockLists(
            storage.policy, 3, behind, lambda: None
        )  # loaded: the account is learned again
        await again.load()
        assert again.keeps_out(ALICE, BEHIND)
        assert await lists.unblock(ALICE, [ALIAS]) == [str(ALIAS)]
        assert not lists.keeps_out(ALICE, BEHIND)
        await lists.block(ALICE, [ALIAS], 2.0)
        lists.forget(ALICE)
        assert not lists.keeps_out(ALICE, BEHIND)
    finally:
        await storage.close()


class HeldReads:
    """A policy repository whose block-list reads wait until let go (another node's change
    being read while this node writes the same list)."""

    def __init__(self, inner: object) -> None:
        self._inner = inner
        self.go = asyncio.Event()
        self.reading = asyncio.Event()
        self.reads = 0

    def __getattr__(self, name: str) -> object:
        return getattr(self._inner, name)

    async def blocklist(self, owner: str) -> set[str]:
        self.reads += 1
        stale: set[str] = await self._inner.blocklist(owner)  # type: ignore[attr-defined]
        self.reading.set()
        await self.go.wait()
        return stale


async def test_a_reload_that_read_before_a_write_here_reads_again() -> None:
    storage = await open_sqlite(":memory:")
    try:
        await storage.accounts.create(str(ALICE), CREDS, 0.0)
        repo = HeldReads(storage.policy)
        lists = BlockLists(cast(PolicyRepository, repo), 10, lambda _h, _i: None, lambda: None)
        await lists.load()
        reload = asyncio.create_task(lists.reload(ALICE))
        await repo.reading.wait()  # it has read the list as it was: empty
        await lists.block(ALICE, [BOB], 1.0)  # then the user blocks bob here
        repo.go.set()
        await reload
        assert repo.reads == 2  # the first read was older than the write
        assert lists.blocks(ALICE, BOB)
    finally:
        await storage.close()


async def test_load_reads_every_list_again_and_forgets_cached_settings() -> None:
    """What a node does when a change from the feed could not be applied (a resync)."""
    async with running_hub() as kit:
        policy = kit.hub.router.policy
        storage = kit.hub.ctx.storage
        await storage.accounts.create(str(ALICE), CREDS, 0.0)
        before = await policy.settings(ALICE)  # cached now
        changed = InteropSettings(enabled=True, discoverable=True)
        await storage.policy.put_settings(str(ALICE), changed, 1.0)  # another node's writes
        await storage.policy.block(str(ALICE), [str(BOB)], 1.0)
        assert await policy.settings(ALICE) == before
        assert not policy.blocks.blocks(ALICE, BOB)
        await policy.load()
        assert await policy.settings(ALICE) == changed
        assert policy.blocks.blocks(ALICE, BOB)


# -- the engine on a hub ---------------------------------------------------------------------------
STANZA_NS = "{jabber:client}"


def error_of(el: Element) -> tuple[str, str | None]:
    """(condition, text) of an error stanza."""
    assert el.get("type") == "error", el.attrib
    err = el.find(f"{STANZA_NS}error")
    assert err is not None
    conditions = [
        c.tag for c in err if c.tag.startswith(f"{{{STANZAS}}}") and c.tag != f"{{{STANZAS}}}text"
    ]
    text = err.find(f"{{{STANZAS}}}text")
    return conditions[0].split("}")[1], None if text is None else text.text


def messages(client: Client) -> list[Element]:
    return [el for el in client.take() if el.tag == f"{STANZA_NS}message"]


def chat(to: str, body: str = "hi", mid: str = "m1", extra: str = "") -> str:
    return (
        f"<message xmlns='jabber:client' to='{to}' id='{mid}' type='chat'>"
        f"<body>{body}</body>{extra}</message>"
    )


RECEIPT = "<received xmlns='urn:xmpp:receipts' id='m1'/>"


async def set_settings(client: Client, **attrs: str) -> Element:
    text = " ".join(f"{k.replace('_', '-')}='{v}'" for k, v in attrs.items())
    await client.send(
        f"<iq xmlns='jabber:client' type='set' id='s'><settings xmlns='{NS}' {text}/></iq>"
    )
    (answer,) = [el for el in client.take() if el.tag == f"{STANZA_NS}iq"]
    return answer


async def iq(client: Client, kind: str, payload: str) -> Element:
    await client.send(f"<iq xmlns='jabber:client' type='{kind}' id='q'>{payload}</iq>")
    (answer,) = [el for el in client.take() if el.tag == f"{STANZA_NS}iq"]
    return answer


@asynccontextmanager
async def interop_hub(limits: PolicyLimits | None = None) -> AsyncIterator[HubKit]:
    settings = HubSettings(policy=limits or PolicyLimits())

    async def user_id(jid: str) -> str | None:
        return "@" + jid.split("@")[0] + ":example.chat"

    async with running_hub(settings, user_ids=user_id) as kit:
        kit.approve(PROVIDER, PROVIDER_NAME)
        for jid in (TP, TP2):
            await kit.hub.ctx.storage.accounts.create(jid, CREDS, kit.clock())
        yield kit


async def people(kit: HubKit, *, opted_in: bool = True) -> tuple[Client, Client]:
    await kit.account("alice")
    alice = await kit.connect("alice", "a")
    tp = await kit.connect(TP, "app")
    if opted_in:
        answer = await set_settings(alice, enabled="true")
        assert answer.get("type") == "result"
    alice.take()
    tp.take()
    return alice, tp


def marker_of(el: Element) -> Element | None:
    return el.find(interop.MARKER)


async def test_settings_default_off_and_round_trip_over_iq() -> None:
    async with interop_hub() as kit:
        alice, _tp = await people(kit, opted_in=False)
        got = await iq(alice, "get", f"<settings xmlns='{NS}'/>")
        settings = got.find(interop.SETTINGS)
        assert settings is not None
        assert settings.attrib == {
            "enabled": "false",
            "providers": "all",
            "inbox": "separate",
            "discoverable": "false",
            "share-activity": "true",
        }
        bad = await set_settings(alice, enabled="maybe")
        assert error_of(bad)[0] == "bad-request"
        providers = await iq(alice, "get", f"<providers xmlns='{NS}'/>")
        listed = providers.find(interop.PROVIDERS)
        assert listed is not None
        assert [p.attrib for p in listed] == [{"id": PROVIDER, "name": PROVIDER_NAME}]


async def test_third_party_settings_queries_are_refused() -> None:
    async with interop_hub() as kit:
        _alice, tp = await people(kit)
        answer = await iq(tp, "get", f"<settings xmlns='{NS}'/>")
        assert error_of(answer)[0] == "feature-not-implemented"


async def test_not_opted_in_is_the_same_refusal_as_no_account() -> None:
    async with interop_hub() as kit:
        alice, tp = await people(kit, opted_in=False)
        await tp.send(chat(f"alice@{DOMAIN}"))
        (to_alice,) = messages(tp)
        await tp.send(chat(f"nobody@{DOMAIN}"))
        (to_nobody,) = messages(tp)
        assert error_of(to_alice) == ("service-unavailable", None)
        assert error_of(to_nobody) == ("service-unavailable", None)
        assert messages(alice) == []
        # The gatekeeper user is told plainly that it is their own settings.
        await alice.send(chat(TP))
        (own,) = messages(alice)
        condition, text = error_of(own)
        assert condition == "policy-violation"
        assert text is not None
        assert "turned off" in text
        assert messages(tp) == []


async def test_first_messages_are_a_request_with_the_hubs_marker_up_to_the_limit() -> None:
    async with interop_hub() as kit:
        alice, tp = await people(kit)
        for i in range(3):
            await tp.send(chat(f"alice@{DOMAIN}", f"m{i}", f"id{i}"))
            (got,) = messages(alice)
            mark = marker_of(got)
            assert mark is not None
            assert mark.attrib == {
                "provider": PROVIDER,
                "provider-name": PROVIDER_NAME,
                "user": "@u1:example.chat",
                "inbox": "separate",
                "request": "true",
            }
        assert messages(tp) == []
        await tp.send(chat(f"alice@{DOMAIN}", "m3", "id3"))
        (refused,) = messages(tp)
        condition, text = error_of(refused)
        assert condition == "policy-violation"
        assert text is not None
        assert "3" in text
        assert messages(alice) == []
        # Activity (a receipt) from an unaccepted sender is dropped quietly.
        await tp.send(f"<message xmlns='jabber:client' to='alice@{DOMAIN}'>{RECEIPT}</message>")
        assert messages(alice) == []
        assert messages(tp) == []
        # Nothing goes back before accepting: a reply is refused with a reason...
        await alice.send(chat(TP, "too early"))
        (early,) = messages(alice)
        assert error_of(early)[0] == "policy-violation"
        # ... and a receipt is dropped quietly.
        await alice.send(f"<message xmlns='jabber:client' to='{TP}'>{RECEIPT}</message>")
        assert messages(alice) == []
        assert messages(tp) == []
        # The pending request is listed with its marker.
        listed = await iq(alice, "get", f"<requests xmlns='{NS}'/>")
        requests = listed.find(interop.REQUESTS)
        assert requests is not None
        (item,) = list(requests)
        assert item.get("jid") == TP
        assert item.get("messages") == "3"
        assert item.find(interop.MARKER) is not None
        # Accepted: replies, receipts and more messages flow, marked without the request flag.
        accepted = await iq(alice, "set", f"<accept xmlns='{NS}' jid='{TP}'/>")
        assert accepted.get("type") == "result"
        await alice.send(chat(TP, "welcome"))
        (welcome,) = messages(tp)
        assert welcome.findtext(f"{STANZA_NS}body") == "welcome"
        assert marker_of(welcome) is None  # markers are for gatekeeper users only
        await alice.send(f"<message xmlns='jabber:client' to='{TP}'>{RECEIPT}</message>")
        assert len(messages(tp)) == 1
        await tp.send(chat(f"alice@{DOMAIN}", "m4", "id4"))
        (m4,) = messages(alice)
        mark = marker_of(m4)
        assert mark is not None
        assert mark.get("request") is None
        empty = await iq(alice, "get", f"<requests xmlns='{NS}'/>")
        remaining = empty.find(interop.REQUESTS)
        assert remaining is not None
        assert list(remaining) == []


async def test_a_forged_marker_is_replaced_by_the_hubs() -> None:
    async with interop_hub() as kit:
        alice, tp = await people(kit)
        forged = (
            f"<interop xmlns='{NS}' provider='bank' provider-name='Your Bank' inbox='combined'/>"
        )
        await tp.send(chat(f"alice@{DOMAIN}", extra=forged))
        (got,) = messages(alice)
        marks = got.findall(interop.MARKER)
        assert len(marks) == 1
        assert marks[0].get("provider") == PROVIDER
        assert marks[0].get("provider-name") == PROVIDER_NAME


async def test_a_forged_marker_on_an_error_message_is_stripped() -> None:
    async with interop_hub() as kit:
        alice, tp = await people(kit)
        await iq(alice, "set", f"<accept xmlns='{NS}' jid='{TP}'/>")
        forged = (
            f"<interop xmlns='{NS}' provider='bank' provider-name='Your Bank' inbox='combined'/>"
        )
        await tp.send(
            f"<message xmlns='jabber:client' to='alice@{DOMAIN}/a' type='error' id='e1'>{forged}"
            "<error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>"
            "</error></message>"
        )
        got = messages(alice)
        forged_seen = [
            m for m in got for mark in m.findall(interop.MARKER) if mark.get("provider") == "bank"
        ]
        assert forged_seen == [], "an error message from a third party kept its forged marker"
        (delivered,) = got
        marks = delivered.findall(interop.MARKER)
        assert [m.get("provider") for m in marks] == [PROVIDER]  # the hub's label, and only it


async def test_gatekeeper_writes_first_then_the_conversation_is_accepted() -> None:
    async with interop_hub() as kit:
        alice, tp = await people(kit)
        await alice.send(chat(TP, "hello"))
        (got,) = messages(tp)
        assert got.findtext(f"{STANZA_NS}body") == "hello"
        await tp.send(chat(f"alice@{DOMAIN}", "hi back"))
        (back,) = messages(alice)
        mark = marker_of(back)
        assert mark is not None
        assert mark.get("request") is None


async def test_provider_not_in_the_allowed_list() -> None:
    async with interop_hub() as kit:
        alice, tp = await people(kit)
        await set_settings(alice, providers="list")  # an empty list: nobody
        await tp.send(chat(f"alice@{DOMAIN}"))
        assert error_of(messages(tp)[0]) == ("service-unavailable", None)
        assert messages(alice) == []
        await alice.send(chat(TP))
        condition, text = error_of(messages(alice)[0])
        assert condition == "policy-violation"
        assert text is not None
        assert PROVIDER in text


async def test_blocking_a_third_party_user_and_a_whole_provider() -> None:
    async with interop_hub() as kit:
        alice, tp = await people(kit)
        tp2 = await kit.connect(TP2, "app")
        tp2.take()
        for item in (TP, INTEROP_DOMAIN):
            answer = await iq(
                alice, "set", f"<block xmlns='urn:xmpp:blocking'><item jid='{item}'/></block>"
            )
            assert answer.get("type") == "result"
            await tp.send(chat(f"alice@{DOMAIN}"))
            assert error_of(messages(tp)[0]) == ("service-unavailable", None)
            await alice.send(chat(TP))
            assert error_of(messages(alice)[0])[0] == "not-acceptable"
            assert messages(tp) == []
            await iq(alice, "set", "<unblock xmlns='urn:xmpp:blocking'/>")
        await iq(
            alice, "set", f"<block xmlns='urn:xmpp:blocking'><item jid='{INTEROP_DOMAIN}'/></block>"
        )
        await tp2.send(chat(f"alice@{DOMAIN}"))
        assert error_of(messages(tp2)[0]) == ("service-unavailable", None)
        await iq(alice, "set", "<unblock xmlns='urn:xmpp:blocking'/>")
        await tp2.send(chat(f"alice@{DOMAIN}"))
        assert len(messages(alice)) == 1


async def test_unblocking_an_unlisted_jid_does_not_push_unblock_all() -> None:
    async with interop_hub() as kit:
        alice, _tp = await people(kit)
        other = await kit.connect("alice", "b")
        listed = await iq(other, "get", "<blocklist xmlns='urn:xmpp:blocking'/>")
        assert listed.get("type") == "result"
        await iq(alice, "set", f"<block xmlns='urn:xmpp:blocking'><item jid='{TP}'/></block>")
        pushes = [el for el in other.take() if el.tag == f"{STANZA_NS}iq"]
        assert len(pushes) == 1
        assert pushes[0].find(blocking.BLOCK) is not None
        await iq(alice, "set", f"<unblock xmlns='urn:xmpp:blocking'><item jid='{TP2}'/></unblock>")
        pushes = [el for el in other.take() if el.tag == f"{STANZA_NS}iq"]
        wrong = [p for p in pushes if (u := p.find(blocking.UNBLOCK)) is not None and not list(u)]
        # An empty <unblock/> push means "everything unblocked" (XEP-0191 §3.4).
        assert wrong == [], "unblocking an unlisted JID pushed 'unblock all' to other resources"


async def test_block_pushes_reach_the_resource_that_blocked_too() -> None:
    """XEP-0191 §3.3: every resource that asked for the list gets the push, the one that sent
    the command included (after its result)."""
    async with interop_hub() as kit:
        alice, _tp = await people(kit)
        await iq(alice, "get", "<blocklist xmlns='urn:xmpp:blocking'/>")
        await alice.send(
            f"<iq xmlns='jabber:client' type='set' id='b1'><block xmlns='urn:xmpp:blocking'>"
            f"<item jid='{TP}'/></block></iq>"
        )
        answer, push = [el for el in alice.take() if el.tag == f"{STANZA_NS}iq"]
        assert (answer.get("type"), answer.get("id")) == ("result", "b1")
        assert push.get("type") == "set"
        block = push.find(blocking.BLOCK)
        assert block is not None
        assert [item.get("jid") for item in block] == [TP]


async def test_third_party_to_third_party_is_refused() -> None:
    async with interop_hub() as kit:
        _alice, tp = await people(kit)
        tp2 = await kit.connect(TP2, "app")
        tp2.take()
        await tp.send(chat(TP2))
        assert error_of(messages(tp)[0]) == ("service-unavailable", None)
        assert messages(tp2) == []
        await tp.send(
            f"<iq xmlns='jabber:client' type='get' id='p' to='{TP2}'>"
            "<query xmlns='http://jabber.org/protocol/disco#info'/></iq>"
        )
        (answer,) = tp.take()
        assert error_of(answer) == ("service-unavailable", None)


async def test_turning_off_stops_delivery_both_ways_at_once() -> None:
    async with interop_hub() as kit:
        alice, tp = await people(kit)
        await alice.send(chat(TP, "hello"))
        assert len(messages(tp)) == 1
        await set_settings(alice, enabled="false")
        await tp.send(chat(f"alice@{DOMAIN}"))
        assert error_of(messages(tp)[0]) == ("service-unavailable", None)
        await alice.send(chat(TP))
        assert error_of(messages(alice)[0])[0] == "policy-violation"
        # Presence goes neither way either.
        await tp.send(f"<presence xmlns='jabber:client' to='alice@{DOMAIN}'/>")
        assert alice.take() == []


async def test_share_activity_off_keeps_receipts_from_third_parties() -> None:
    async with interop_hub() as kit:
        alice, tp = await people(kit)
        await alice.send(chat(TP, "hello"))
        tp.take()
        await set_settings(alice, share_activity="false")
        await alice.send(f"<message xmlns='jabber:client' to='{TP}'>{RECEIPT}</message>")
        assert messages(tp) == []
        assert messages(alice) == []
        await alice.send(chat(TP, "still talking"))
        assert len(messages(tp)) == 1


async def test_rate_limit_per_sender_boundary() -> None:
    limits = PolicyLimits(messages_per_sender=Rate(2, 60.0))
    async with interop_hub(limits) as kit:
        alice, tp = await people(kit)
        await iq(alice, "set", f"<accept xmlns='{NS}' jid='{TP}'/>")
        for i in range(2):
            await tp.send(chat(f"alice@{DOMAIN}", mid=f"r{i}"))
        assert len(messages(alice)) == 2
        await tp.send(chat(f"alice@{DOMAIN}", mid="r2"))
        condition, text = error_of(messages(tp)[0])
        assert condition == "policy-violation"
        assert text is not None
        assert "rate limit" in text
        assert messages(alice) == []
        assert kit.hub.router.policy.refused["rate-sender"] == 1
        kit.clock.now += 30.0  # one token back
        await tp.send(chat(f"alice@{DOMAIN}", mid="r3"))
        assert len(messages(alice)) == 1
        # The gatekeeper side has its own bucket with the same limit.
        for i in range(2):
            await alice.send(chat(TP, mid=f"a{i}"))
        assert len(messages(tp)) == 2
        await alice.send(chat(TP, mid="a2"))
        assert error_of(messages(alice)[0])[0] == "policy-violation"


async def test_activity_hint_does_not_bypass_the_rate_limit() -> None:
    limits = PolicyLimits(messages_per_sender=Rate(2, 60.0))
    async with interop_hub(limits) as kit:
        alice, tp = await people(kit)
        await iq(alice, "set", f"<accept xmlns='{NS}' jid='{TP}'/>")
        hint = f"<activity xmlns='{NS}'/>"
        for i in range(5):
            await tp.send(chat(f"alice@{DOMAIN}", f"spam {i}", f"s{i}", extra=hint))
        delivered = [m for m in messages(alice) if m.findtext(f"{STANZA_NS}body")]
        # The hint is the client's word: it must buy no exemption from the rate limit.
        assert len(delivered) == 2, f"{len(delivered)} of 5 hinted messages passed a limit of 2"


async def test_new_conversations_per_sender_boundary() -> None:
    limits = PolicyLimits(new_conversations_per_sender=Rate(1, 86_400.0))
    async with interop_hub(limits) as kit:
        alice, tp = await people(kit)
        await kit.account("carol")
        carol = await kit.connect("carol", "c")
        await set_settings(carol, enabled="true")
        await tp.send(chat(f"alice@{DOMAIN}"))
        assert len(messages(alice)) == 1
        await tp.send(chat(f"alice@{DOMAIN}", mid="m2"))  # the same conversation
        assert len(messages(alice)) == 1
        await tp.send(chat(f"carol@{DOMAIN}"))
        condition, text = error_of(messages(tp)[0])
        assert condition == "policy-violation"
        assert text is not None
        assert "new conversations" in text


async def test_new_conversation_limit_is_no_oracle_for_a_block() -> None:
    """The budget of new conversations is charged per address first contacted in a period,
    reachable or not: what a sender gets past the budget depends on its own history with the
    address, never on whether the account exists, opted in or blocked it (issue 5: no oracle)."""
    limits = PolicyLimits(new_conversations_per_sender=Rate(2, 86_400.0))
    async with interop_hub(limits) as kit:
        alice, tp = await people(kit)
        await tp.send(chat(f"alice@{DOMAIN}"))  # first contact 1: a real conversation
        assert len(messages(alice)) == 1
        await tp.send(chat(f"nobody@{DOMAIN}", mid="n"))  # first contact 2: no such account
        assert error_of(messages(tp)[0]) == ("service-unavailable", None)
        await iq(alice, "set", f"<block xmlns='urn:xmpp:blocking'><item jid='{TP}'/></block>")
        await tp.send(chat(f"alice@{DOMAIN}", mid="x"))
        blocked = error_of(messages(tp)[0])
        await tp.send(chat(f"nobody@{DOMAIN}", mid="y"))
        nobody = error_of(messages(tp)[0])
        assert blocked == nobody == ("service-unavailable", None)
        await tp.send(chat(f"carol@{DOMAIN}", mid="z"))  # a third address: over the budget
        condition, text = error_of(messages(tp)[0])
        assert condition == "policy-violation"
        assert text is not None
        assert "new conversations" in text


async def test_pep_of_a_gatekeeper_is_gated_like_messages() -> None:
    async with interop_hub() as kit:
        alice, tp = await people(kit, opted_in=False)
        await alice.send(
            "<iq xmlns='jabber:client' type='set' id='pub'><pubsub xmlns='http://jabber.org/protocol/pubsub'>"
            "<publish node='urn:xmpp:omemo:2:devices'><item id='current'>"
            "<devices xmlns='urn:xmpp:omemo:2'><device id='1'/></devices></item></publish>"
            "<publish-options><x xmlns='jabber:x:data' type='submit'>"
            "<field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/pubsub#publish-options</value></field>"
            "<field var='pubsub#access_model'><value>open</value></field></x></publish-options>"
            "</pubsub></iq>"
        )
        alice.take()
        request = (
            "<iq xmlns='jabber:client' type='get' id='k' to='{to}'>"
            "<pubsub xmlns='http://jabber.org/protocol/pubsub'>"
            "<items node='urn:xmpp:omemo:2:devices'/></pubsub></iq>"
        )
        await tp.send(request.format(to=f"alice@{DOMAIN}"))
        (off,) = tp.take()
        await tp.send(request.format(to=f"nobody@{DOMAIN}"))
        (nobody,) = tp.take()
        assert error_of(off) == error_of(nobody) == ("service-unavailable", None)
        await set_settings(alice, enabled="true")
        await tp.send(request.format(to=f"alice@{DOMAIN}"))
        (on,) = tp.take()
        assert on.get("type") == "result"


async def test_conversation_state_is_stored() -> None:
    async with interop_hub() as kit:
        alice, tp = await people(kit)
        await tp.send(chat(f"alice@{DOMAIN}"))
        repo = kit.hub.ctx.storage.policy
        conversation = await repo.conversation(f"alice@{DOMAIN}", TP)
        assert conversation is not None
        assert conversation.state is ConversationState.REQUEST
        assert conversation.messages == 1
        await iq(alice, "set", f"<accept xmlns='{NS}' jid='{TP}'/>")
        accepted = await repo.conversation(f"alice@{DOMAIN}", TP)
        assert accepted is not None
        assert accepted.state is ConversationState.ACCEPTED
        # Only a gatekeeper user accepts, and only third-party addresses.
        bad = await iq(alice, "set", f"<accept xmlns='{NS}' jid='bob@{DOMAIN}'/>")
        assert error_of(bad)[0] == "bad-request"
        alice.take()


async def test_provider_aggregate_rate_boundary() -> None:
    limits = PolicyLimits(provider_messages=Rate(2, 1.0))
    async with interop_hub(limits) as kit:
        alice, tp = await people(kit)
        tp2 = await kit.connect(TP2, "app")
        await tp.send(chat(f"alice@{DOMAIN}", mid="a"))
        await tp2.send(chat(f"alice@{DOMAIN}", mid="b"))
        assert len(messages(alice)) == 2
        await tp2.send(chat(f"alice@{DOMAIN}", mid="c"))
        condition, text = error_of(messages(tp2)[0])
        assert condition == "resource-constraint"
        assert text is not None
        assert PROVIDER in text
        kit.clock.now += 1.0
        await tp.send(chat(f"alice@{DOMAIN}", mid="d"))
        assert len(messages(alice)) == 1


async def test_an_unenlisted_third_party_is_unreachable_at_once() -> None:
    """The account lookup is cached; an account deleted (a provider unenlisting its user) must
    not stay reachable from the cache, nor make the hub fail storing for it offline."""
    async with interop_hub() as kit:
        alice, tp = await people(kit)
        await alice.send(chat(TP, "hello"))
        assert len(messages(tp)) == 1
        await kit.disconnect(tp)
        await kit.hub.ctx.storage.accounts.delete(TP)
        try:
            await alice.send(chat(TP, "still there?", mid="m2"))
        except Exception as exc:
            raise AssertionError(f"a message to a deleted account failed: {exc!r}") from exc
        (answer,) = messages(alice)
        assert error_of(answer) == ("service-unavailable", None)


async def test_a_deleted_gatekeeper_is_unreachable_at_once() -> None:
    """Like a deleted third party: a deleted gatekeeper account (cached as opted in) answers like
    one that never existed, and the hub does not fail writing a message request for it."""
    async with interop_hub() as kit:
        alice, tp = await people(kit)
        await kit.disconnect(alice)
        await kit.hub.ctx.storage.accounts.delete(f"alice@{DOMAIN}")
        try:
            await tp.send(chat(f"alice@{DOMAIN}", "anyone?"))
        except Exception as exc:
            raise AssertionError(f"a request to a deleted account failed: {exc!r}") from exc
        (answer,) = messages(tp)
        assert error_of(answer) == ("service-unavailable", None)


async def test_an_unaccepted_sender_cannot_probe_which_resources_are_online() -> None:
    """Until a request is accepted no presence goes back (issue 5, item 4); an iq to a full JID
    must not tell an online resource from an offline one either."""
    async with interop_hub() as kit:
        alice, tp = await people(kit)
        await tp.send(chat(f"alice@{DOMAIN}"))  # a request, not accepted
        alice.take()
        probe = (
            "<iq xmlns='jabber:client' type='get' id='p' to='alice@hub.test/{res}'>"
            "<query xmlns='http://jabber.org/protocol/disco#info'/></iq>"
        )
        await tp.send(probe.format(res="a"))  # alice's online resource
        online = [el.get("type") for el in tp.take()]
        await tp.send(probe.format(res="gone"))
        offline = [el.get("type") for el in tp.take()]
        assert online == offline, f"online resource: {online}, offline resource: {offline}"


async def test_pep_notifications_from_a_third_party_carry_the_marker() -> None:
    """What the hub sends on a third party's behalf (PEP events) is labelled like its messages."""
    async with interop_hub() as kit:
        alice, tp = await people(kit)
        node = "urn:xmpp:omemo:2:devices"
        publish = (
            "<iq xmlns='jabber:client' type='set' id='pub'>"
            "<pubsub xmlns='http://jabber.org/protocol/pubsub'>"
            f"<publish node='{node}'><item id='current'>"
            "<devices xmlns='urn:xmpp:omemo:2'><device id='{d}'/></devices></item></publish>"
            "<publish-options><x xmlns='jabber:x:data' type='submit'>"
            "<field var='FORM_TYPE' type='hidden'>"
            "<value>http://jabber.org/protocol/pubsub#publish-options</value></field>"
            "<field var='pubsub#access_model'><value>open</value></field></x></publish-options>"
            "</pubsub></iq>"
        )
        await tp.send(publish.replace("{d}", "1"))
        tp.take()
        await alice.send(
            f"<iq xmlns='jabber:client' type='set' id='sub' to='{TP}'>"
            "<pubsub xmlns='http://jabber.org/protocol/pubsub'>"
            f"<subscribe node='{node}' jid='alice@{DOMAIN}/a'/></pubsub></iq>"
        )
        (answer,) = [el for el in alice.take() if el.tag == f"{STANZA_NS}iq"]
        assert answer.get("type") == "result"
        await tp.send(publish.replace("{d}", "2"))
        (event,) = messages(alice)
        assert event.get("type") == "headline"
        assert event.find("{http://jabber.org/protocol/pubsub#event}event") is not None
        mark = marker_of(event)
        assert mark is not None
        assert mark.get("provider") == PROVIDER
        assert mark.get("provider-name") == PROVIDER_NAME
        # The hub's own users' notifications carry none.
        assert (
            await kit.hub.router.policy.marker_for(JID.parse(f"alice@{DOMAIN}"), tp.session.jid)
            is None
        )


def twin(to: str, body: str, origin: str, namespace: str) -> str:
    """A message in one OMEMO version with the sender's origin id (XEP-0359)."""
    return (
        f"<message xmlns='jabber:client' type='chat' to='{to}' id='{origin}'><body>{body}</body>"
        f"<encrypted xmlns='{namespace}'/><origin-id xmlns='urn:xmpp:sid:0' id='{origin}'/>"
        "</message>"
    )


async def test_a_message_and_its_legacy_twin_count_once_and_an_id_serves_no_third_time() -> None:
    """The SDK sends a text to a device that may read legacy OMEMO only as an OMEMO 2 stanza and
    a legacy twin with the same origin id: one message for the request budget and the rates.
    A third stanza with that id is decided (and counted) on its own."""
    async with interop_hub() as kit:
        alice, tp = await people(kit)
        to = f"alice@{DOMAIN}"
        for i in range(3):  # the request limit is 3 messages: each in two versions
            await tp.send(twin(to, f"m{i}", f"o{i}", "urn:xmpp:omemo:2"))
            await tp.send(twin(to, f"m{i}", f"o{i}", "eu.siacs.conversations.axolotl"))
            assert len(messages(alice)) == 2
        assert messages(tp) == []
        listed = await iq(alice, "get", f"<requests xmlns='{NS}'/>")
        requests = listed.find(interop.REQUESTS)
        assert requests is not None
        assert [item.get("messages") for item in requests] == ["3"]
        await tp.send(twin(to, "again", "o2", "eu.siacs.conversations.axolotl"))  # no twin now
        (refused,) = messages(tp)
        assert error_of(refused)[0] == "policy-violation"
        assert messages(alice) == []


async def test_a_list_changed_by_another_process_is_read_again_and_writes_are_announced() -> None:
    """Two processes on one database (two nodes of a cluster): each keeps the lists in memory;
    the one that writes announces it (``changed``), the other reloads the owner's list."""
    storage = await open_sqlite(":memory:")
    try:
        await storage.accounts.create(f"alice@{DOMAIN}", CREDS, 0.0)
        announced: list[str] = []
        here = BlockLists(storage.policy, 3, _no_aliases, lambda: announced.append("changed"))
        there = BlockLists(storage.policy, 3, _no_aliases, lambda: None)
        await here.load()
        await there.load()
        await here.block(ALICE, [JID.parse(TP)], 1.0)
        await here.block(ALICE, [JID.parse(TP)], 2.0)  # nothing new: nothing to announce
        assert announced == ["changed"]
        assert not there.blocks(ALICE, JID.parse(TP))
        await there.reload(ALICE)
        assert there.blocks(ALICE, JID.parse(TP))
        await here.unblock(ALICE, None)
        assert announced == ["changed", "changed"]
        await there.reload(ALICE)
        assert not there.blocks(ALICE, JID.parse(TP))
        assert not there.active
        assert [k for _, k, _ in await storage.changes.since(0, 10)] == ["blocklist"] * 2
    finally:
        await storage.close()
