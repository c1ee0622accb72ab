"""XEP-0313 archives through the hub: what routing archives (both sides, never a refused
stanza), XEP-0359 stanza-ids, queries and their errors, preferences, retention, disco."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from xml.etree.ElementTree import Element

import pytest

from interlink.hub import archive as archive_module
from interlink.hub.archive import ArchiveLimits
from interlink.hub.context import HubSettings
from interlink.storage.archive import ArchiveEntry, ArchiveFilter
from interlink.xmpp.ext import interop, mam
from tests.hub.test_policy import TP, chat, error_of, interop_hub, people
from tests.hubkit import DOMAIN, Client, HubKit, running_hub

MAM = mam.NS
RSM = "http://jabber.org/protocol/rsm"
STANZA_NS = "{jabber:client}"
ALICE = f"alice@{DOMAIN}"
BOB = f"bob@{DOMAIN}"


def settings(**archive: object) -> HubSettings:
    return HubSettings(archive=ArchiveLimits(**archive))  # type: ignore[arg-type]


@dataclass
class Answer:
    results: list[Element]  # the <result/> elements, in order
    iq: Element

    @property
    def ids(self) -> list[str]:
        return [r.get("id", "") for r in self.results]

    @property
    def bodies(self) -> list[str | None]:
        return [
            r.findtext(f"{{{mam.FORWARD}}}forwarded/{STANZA_NS}message/{STANZA_NS}body")
            for r in self.results
        ]

    @property
    def fin(self) -> Element:
        fin = self.iq.find(mam.FIN)
        assert fin is not None, self.iq
        return fin

    @property
    def complete(self) -> bool:
        return self.fin.get("complete") == "true"

    def rsm(self, name: str) -> Element | None:
        return self.fin.find(f"{{{RSM}}}set/{{{RSM}}}{name}")


def form(**fields: str | list[str]) -> str:
    out = "<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'>"
    out += f"<value>{MAM}</value></field>"
    for var, value in fields.items():
        values = value if isinstance(value, list) else [value]
        out += f"<field var='{var.rstrip('_').replace('_', '-')}'>"
        out += "".join(f"<value>{v}</value>" for v in values) + "</field>"
    return out + "</x>"


async def ask(client: Client, body: str = "", *, to: str = "", kind: str = "set") -> Answer:
    target = f" to='{to}'" if to else ""
    await client.send(
        f"<iq xmlns='jabber:client' type='{kind}' id='mq'{target}>"
        f"<query xmlns='{MAM}' queryid='q1'>{body}</query></iq>"
    )
    got = client.take()
    results = []
    iqs = []
    for el in got:
        if el.tag == f"{STANZA_NS}message":
            result = el.find(f"{{{MAM}}}result")
            assert result is not None, el
            assert result.get("queryid") == "q1"
            assert el.get("from") == str(client.session.jid.bare)
            assert el.get("to") == str(client.session.jid)
            results.append(result)
        elif el.tag == f"{STANZA_NS}iq":
            iqs.append(el)
    (iq,) = iqs
    assert iq.get("id") == "mq"
    return Answer(results, iq)


def page(max_: int | None = None, *, after: str = "", before: str | None = None) -> str:
    inner = "" if max_ is None else f"<max>{max_}</max>"
    if after:
        inner += f"<after>{after}</after>"
    if before is not None:
        inner += f"<before>{before}</before>" if before else "<before/>"
    return f"<set xmlns='{RSM}'>{inner}</set>"


def stanza_ids(el: Element) -> list[dict[str, str]]:
    return [dict(s.attrib) for s in el.findall(mam.STANZA_ID)]


def messages(client: Client) -> list[Element]:
    return [el for el in client.take() if el.tag == f"{STANZA_NS}message"]


async def archived(kit: HubKit, owner: str) -> list[str]:
    found = await kit.hub.ctx.storage.archive.page(
        owner, ArchiveFilter(), after=None, before=None, limit=1000
    )
    assert found is not None
    return [m.stanza for m in found.messages]


async def pair(kit: HubKit) -> tuple[Client, Client]:
    await kit.account("alice")
    await kit.account("bob")
    alice = await kit.connect("alice", "a")
    bob = await kit.connect("bob", "b")
    alice.take()
    bob.take()
    return alice, bob


# -- what is archived ----------------------------------------------------------------------------
async def test_a_message_between_two_accounts_is_archived_on_both_sides() -> None:
    async with running_hub() as kit:
        alice, bob = await pair(kit)
        await alice.send(chat(BOB, "hello"))
        (got,) = messages(bob)
        (sid,) = stanza_ids(got)
        assert sid["by"] == BOB
        assert messages(alice) == []
        (mine,) = await archived(kit, ALICE)
        (theirs,) = await archived(kit, BOB)
        assert "hello" in mine
        assert "hello" in theirs
        assert "stanza-id" not in mine  # the message as routed, not the delivery stamp
        # both archives know it by the id the recipient saw
        answer = await ask(bob)
        assert answer.ids == [sid["id"]]
        assert answer.bodies == ["hello"]
        assert (await ask(alice)).ids == [sid["id"]]


async def test_the_senders_other_devices_get_carbons_without_the_recipients_id() -> None:
    async with running_hub() as kit:
        alice, bob = await pair(kit)
        phone = await kit.connect("alice", "phone")
        await phone.send(
            "<iq xmlns='jabber:client' type='set' id='c'><enable xmlns='urn:xmpp:carbons:2'/></iq>"
        )
        phone.take()
        await alice.send(chat(BOB, "hello"))
        (carbon,) = messages(phone)
        assert "stanza-id" not in str(carbon.itertext())
        assert carbon.find(".//" + mam.STANZA_ID) is None
        assert len(messages(bob)) == 1


async def test_an_offline_recipient_gets_the_stanza_id_from_storage() -> None:
    async with running_hub() as kit:
        await kit.account("alice")
        await kit.account("bob")
        alice = await kit.connect("alice", "a")
        await alice.send(chat(BOB, "later"))
        bob = await kit.connect("bob", "b")
        delivered = [m for m in messages(bob) if m.findtext(f"{STANZA_NS}body") == "later"]
        (sid,) = stanza_ids(delivered[0])
        assert (await ask(bob)).ids == [sid["id"]]
        assert len(await archived(kit, ALICE)) == 1


async def test_messages_not_worth_archiving_are_not_archived() -> None:
    async with running_hub() as kit:
        alice, bob = await pair(kit)
        for body in (
            "<message xmlns='jabber:client' to='bob@hub.test' type='chat'>"
            "<composing xmlns='http://jabber.org/protocol/chatstates'/></message>",
            "<message xmlns='jabber:client' to='bob@hub.test' type='chat'>"
            "<received xmlns='urn:xmpp:receipts' id='x'/></message>",
            chat(BOB, "secret", extra="<no-store xmlns='urn:xmpp:hints'/>"),
            chat(BOB, "secret", extra="<no-permanent-store xmlns='urn:xmpp:hints'/>"),
            "<message xmlns='jabber:client' to='bob@hub.test' type='headline'><body>h</body>"
            "</message>",
        ):
            await alice.send(body)
        got = messages(bob)
        assert len(got) == 5
        assert all(stanza_ids(m) == [] for m in got)
        assert await archived(kit, ALICE) == []
        assert await archived(kit, BOB) == []
        await alice.send(
            "<message xmlns='jabber:client' to='bob@hub.test' type='chat'>"
            "<received xmlns='urn:xmpp:receipts' id='x'/><store xmlns='urn:xmpp:hints'/></message>"
        )
        (hinted,) = messages(bob)
        assert len(stanza_ids(hinted)) == 1
        assert len(await archived(kit, BOB)) == 1


async def test_refused_messages_are_not_archived() -> None:
    async with running_hub(HubSettings(offline_max_per_account=1)) as kit:
        await kit.account("alice")
        await kit.account("bob")
        alice = await kit.connect("alice", "a")
        alice.take()
        await alice.send(chat(f"nobody@{DOMAIN}", "to no one"))
        (refused,) = messages(alice)
        assert error_of(refused)[0] == "service-unavailable"
        await alice.send(chat(BOB, "one", "m1"))
        await alice.send(chat(BOB, "two", "m2"))  # bob's offline queue is full
        (full,) = messages(alice)
        assert error_of(full)[0] == "resource-constraint"
        mine = await archived(kit, ALICE)
        assert len(mine) == 1
        assert "one" in mine[0]
        assert len(await archived(kit, BOB)) == 1


async def test_a_message_to_oneself_is_archived_once() -> None:
    async with running_hub() as kit:
        await kit.account("alice")
        a = await kit.connect("alice", "a")
        b = await kit.connect("alice", "b")
        a.take()
        b.take()
        await a.send(chat(f"{ALICE}/b", "note"))
        (got,) = messages(b)
        assert len(stanza_ids(got)) == 1
        assert len(await archived(kit, ALICE)) == 1


async def test_forged_stanza_ids_are_stripped_and_origin_ids_kept() -> None:
    async with running_hub() as kit:
        alice, bob = await pair(kit)
        extra = (
            f"<stanza-id xmlns='{mam.SID}' by='{BOB}' id='forged'/>"
            f"<stanza-id xmlns='{mam.SID}' by='x.{TP.partition('@')[2]}' id='forged2'/>"
            f"<stanza-id xmlns='{mam.SID}' by='room@conference.elsewhere.example' id='kept'/>"
            f"<origin-id xmlns='{mam.SID}' id='origin'/>"
        )
        await alice.send(chat(BOB, "x", extra=extra))
        (got,) = messages(bob)
        ids = [s["id"] for s in stanza_ids(got)]
        assert "forged" not in ids
        assert "kept" in ids
        assert len(ids) == 2  # kept + the hub's own
        origin = got.find(mam.ORIGIN_ID)
        assert origin is not None
        assert origin.get("id") == "origin"
        # also when nothing is archived
        await alice.send(
            "<message xmlns='jabber:client' to='bob@hub.test' type='chat'>"
            f"<stanza-id xmlns='{mam.SID}' by='{BOB}' id='forged'/>"
            "<active xmlns='http://jabber.org/protocol/chatstates'/></message>"
        )
        (state,) = messages(bob)
        assert stanza_ids(state) == []


# -- across the interop boundary -----------------------------------------------------------------
async def test_third_party_traffic_is_archived_for_the_gatekeeper_user_only() -> None:
    async with interop_hub() as kit:
        alice, tp = await people(kit)
        await tp.send(chat(ALICE, "from afar"))
        (got,) = messages(alice)
        (sid,) = stanza_ids(got)
        assert sid["by"] == ALICE
        await alice.send(chat(TP, "too early"))  # a reply before accepting is refused
        assert error_of(messages(alice)[0])[0] == "policy-violation"
        await alice.send(
            f"<iq xmlns='jabber:client' type='set' id='acc'><accept xmlns='{interop.NS}' "
            f"jid='{TP}'/></iq>"
        )
        alice.take()
        await alice.send(chat(TP, "back"))
        (back,) = messages(tp)
        assert stanza_ids(back) == []  # the third party's history is its provider's
        assert (await ask(alice)).bodies == ["from afar", "back"]
        assert await archived(kit, TP) == []
        refused = await ask(tp)
        assert error_of(refused.iq)[0] == "feature-not-implemented"


async def test_stanzas_the_consent_rules_refuse_are_not_archived() -> None:
    async with interop_hub() as kit:
        alice, tp = await people(kit, opted_in=False)
        await tp.send(chat(ALICE, "unwanted"))
        assert error_of(messages(tp)[0])[0] == "service-unavailable"
        await alice.send(chat(TP, "no"))
        assert error_of(messages(alice)[0])[0] == "policy-violation"
        assert await archived(kit, ALICE) == []
        assert await archived(kit, TP) == []


# -- queries -------------------------------------------------------------------------------------
async def fill(kit: HubKit, owner: str, n: int, peer: str = BOB) -> list[str]:
    entries = [
        ArchiveEntry(
            owner,
            f"id{i:03d}",
            peer,
            "",
            kit.clock() + i,
            f"<message xmlns='jabber:client' to='{peer}' type='chat'><body>{i}</body></message>",
        )
        for i in range(n)
    ]
    await kit.hub.ctx.storage.archive.append(entries, 1_000_000)
    return [e.id for e in entries]


async def test_rsm_pages_forwards_and_backwards() -> None:
    async with running_hub(settings(page_max=10, page_default=4)) as kit:
        await kit.account("alice")
        alice = await kit.connect("alice", "a")
        alice.take()
        ids = await fill(kit, ALICE, 23)
        first = await ask(alice)
        assert first.ids == ids[:4]  # page_default
        assert not first.complete
        seen: list[str] = []
        after = ""
        while True:
            answer = await ask(alice, page(10, after=after))
            seen += answer.ids
            count = answer.rsm("count")
            assert count is not None
            assert count.text == "23"
            if answer.complete:
                break
            last = answer.rsm("last")
            assert last is not None
            after = last.text or ""
        assert seen == ids
        last_page = await ask(alice, page(10, before=""))
        assert last_page.ids == ids[13:]
        first_el = last_page.rsm("first")
        assert first_el is not None
        assert (first_el.text, first_el.get("index")) == (ids[13], "13")
        earlier = await ask(alice, page(10, before=ids[13]))
        assert earlier.ids == ids[3:13]
        assert not earlier.complete
        start = await ask(alice, page(10, before=ids[3]))
        assert start.ids == ids[:3]
        assert start.complete
        counted = await ask(alice, page(0))
        assert counted.ids == []
        assert counted.rsm("first") is None
        flipped = await ask(alice, f"<flip-page/>{page(3)}")
        assert flipped.ids == [ids[2], ids[1], ids[0]]


async def test_a_max_over_the_page_limit_is_clamped_at_the_boundary() -> None:
    async with running_hub(settings(page_max=5, page_default=5)) as kit:
        await kit.account("alice")
        alice = await kit.connect("alice", "a")
        alice.take()
        await fill(kit, ALICE, 8)
        assert len((await ask(alice, page(5))).ids) == 5
        assert len((await ask(alice, page(6))).ids) == 5
        assert len((await ask(alice, page(1000000))).ids) == 5


async def test_filters_with_start_end_and_extended_ids() -> None:
    async with running_hub() as kit:
        alice, _bob = await pair(kit)
        await kit.account("carol")
        carol = await kit.connect("carol", "phone")
        carol.take()
        t0 = kit.clock()
        await alice.send(chat(BOB, "b1"))
        kit.clock.now = t0 + 10
        await carol.send(chat(ALICE, "c1"))
        kit.clock.now = t0 + 20
        await alice.send(chat(f"carol@{DOMAIN}/phone", "c2"))
        await alice.send(chat(BOB, "b2"))
        alice.take()
        assert (await ask(alice, form(with_=f"carol@{DOMAIN}"))).bodies == ["c1", "c2"]
        assert (await ask(alice, form(with_=f"carol@{DOMAIN}/phone"))).bodies == ["c1", "c2"]
        assert (await ask(alice, form(with_=f"carol@{DOMAIN}/laptop"))).bodies == []
        assert (await ask(alice, form(with_=BOB))).bodies == ["b1", "b2"]
        assert (await ask(alice, form(start=mam.stamp(t0 + 5), end=mam.stamp(t0 + 15)))).bodies == [
            "c1"
        ]
        everything = await ask(alice)
        ids = everything.ids
        assert (await ask(alice, form(after_id=ids[0], before_id=ids[3]))).bodies == ["c1", "c2"]
        assert (await ask(alice, form(ids=[ids[3], ids[1]]))).bodies == ["c1", "b2"]


async def test_query_errors() -> None:
    async with running_hub() as kit:
        alice, bob = await pair(kit)
        await fill(kit, ALICE, 3)
        for body, expected in (
            (page(5, after="nope"), "item-not-found"),
            (page(5, before="nope"), "item-not-found"),
            (form(after_id="nope"), "item-not-found"),
            (page(5, after="id000") + form(before_id="nope"), "item-not-found"),
            (form(colour="red"), "bad-request"),
            (form(start="not a time"), "bad-request"),
            (page(-1), "bad-request"),
        ):
            answer = await ask(alice, body)
            assert answer.results == []
            assert error_of(answer.iq)[0] == expected, body
        # another account's archive, existing or not: the same refusal
        for other in (BOB, f"nobody@{DOMAIN}"):
            answer = await ask(bob if other != BOB else alice, to=other)
            assert error_of(answer.iq)[0] == "forbidden"
        own = await ask(alice, to=ALICE)
        assert len(own.ids) == 3


async def test_the_form_is_answered_to_a_get() -> None:
    async with running_hub() as kit:
        await kit.account("alice")
        alice = await kit.connect("alice", "a")
        alice.take()
        answer = await ask(alice, kind="get")
        fields = answer.iq.findall(f"{{{MAM}}}query/{{jabber:x:data}}x/{{jabber:x:data}}field")
        assert [f.get("var") for f in fields] == ["FORM_TYPE", *mam.FIELDS]


async def test_metadata() -> None:
    async with running_hub() as kit:
        await kit.account("alice")
        alice = await kit.connect("alice", "a")
        alice.take()

        async def metadata() -> Element:
            await alice.send(
                f"<iq xmlns='jabber:client' type='get' id='md'><metadata xmlns='{MAM}'/></iq>"
            )
            (iq,) = alice.take()
            found = iq.find(mam.METADATA)
            assert found is not None, iq
            return found

        assert list(await metadata()) == []
        ids = await fill(kit, ALICE, 3)
        got = await metadata()
        assert [(c.tag.split("}")[1], c.get("id")) for c in got] == [
            ("start", ids[0]),
            ("end", ids[2]),
        ]


# -- preferences ---------------------------------------------------------------------------------
async def set_prefs(client: Client, xml: str) -> Element:
    await client.send(f"<iq xmlns='jabber:client' type='set' id='p'>{xml}</iq>")
    (answer,) = client.take()
    return answer


async def test_prefs_decide_what_is_archived() -> None:
    async with running_hub() as kit:
        alice, bob = await pair(kit)
        await alice.send(f"<iq xmlns='jabber:client' type='get' id='p'><prefs xmlns='{MAM}'/></iq>")
        (default,) = alice.take()
        prefs_el = default.find(mam.PREFS)
        assert prefs_el is not None
        assert prefs_el.get("default") == "always"
        answer = await set_prefs(
            bob,
            f"<prefs xmlns='{MAM}' default='never'><always><jid>carol@{DOMAIN}</jid></always>"
            "</prefs>",
        )
        assert answer.get("type") == "result"
        await alice.send(chat(BOB, "not kept by bob"))
        (got,) = messages(bob)
        assert stanza_ids(got) == []  # bob does not archive it: no id to give
        assert len(await archived(kit, ALICE)) == 1
        assert await archived(kit, BOB) == []
        # roster mode: only contacts in the roster
        await set_prefs(bob, f"<prefs xmlns='{MAM}' default='roster'/>")
        await alice.send(chat(BOB, "stranger"))
        assert stanza_ids(messages(bob)[0]) == []
        await bob.send(
            "<iq xmlns='jabber:client' type='set' id='r'><query xmlns='jabber:iq:roster'>"
            f"<item jid='{ALICE}'/></query></iq>"
        )
        bob.take()
        await alice.send(chat(BOB, "friend"))
        assert len(stanza_ids(messages(bob)[0])) == 1
        assert len(await archived(kit, BOB)) == 1
        # prefs survive: read back from storage
        stored = await kit.hub.ctx.storage.archive.get_prefs(BOB)
        assert stored == mam.Prefs(mam.Default.ROSTER)


async def test_a_query_names_at_most_page_max_ids() -> None:
    async with running_hub(settings(page_max=3, page_default=3)) as kit:
        alice, _bob = await pair(kit)
        await fill(kit, ALICE, 4)
        ids = (await ask(alice, page(10))).ids
        assert len(ids) == 3  # one page at most
        ids += (await ask(alice, page(10, after=ids[-1]))).ids
        assert len(ids) == 4
        assert len((await ask(alice, form(ids=ids[:3]))).results) == 3  # at the limit: answered
        many = await ask(alice, form(ids=ids))  # all four exist: refused for their number
        assert error_of(many.iq)[0] == "not-acceptable"


async def test_bad_prefs_are_refused() -> None:
    async with running_hub(settings(max_pref_jids=1)) as kit:
        await kit.account("alice")
        alice = await kit.connect("alice", "a")
        alice.take()
        bad = await set_prefs(alice, f"<prefs xmlns='{MAM}' default='sometimes'/>")
        assert error_of(bad)[0] == "bad-request"
        many = await set_prefs(
            alice,
            f"<prefs xmlns='{MAM}' default='always'><never><jid>a@x</jid><jid>b@x</jid>"
            "</never></prefs>",
        )
        assert error_of(many)[0] == "not-acceptable"
        one = await set_prefs(
            alice, f"<prefs xmlns='{MAM}' default='always'><never><jid>a@x</jid></never></prefs>"
        )
        assert one.get("type") == "result"


# -- retention, quota, disco, off ----------------------------------------------------------------
async def test_retention_prunes_with_the_time_passed_in() -> None:
    async with running_hub(settings(retention=100.0)) as kit:
        alice, _bob = await pair(kit)
        t0 = kit.clock()
        await alice.send(chat(BOB, "old"))
        kit.clock.now = t0 + 50
        await alice.send(chat(BOB, "new"))
        service = kit.hub.router.archive
        assert await service.prune(t0 + 100) == 0  # exactly at the retention: kept
        assert await service.prune(t0 + 100.5) == 2  # "old", in both archives
        assert (await ask(alice)).bodies == ["new"]


async def test_the_quota_drops_the_oldest() -> None:
    async with running_hub(settings(max_messages_per_account=2)) as kit:
        alice, bob = await pair(kit)
        for i in range(3):
            await alice.send(chat(BOB, f"m{i}", f"id{i}"))
        bob.take()
        assert (await ask(alice)).bodies == ["m1", "m2"]
        assert (await ask(bob)).bodies == ["m1", "m2"]


async def test_disco_lists_the_archive_on_the_accounts_bare_jid() -> None:
    async with running_hub() as kit:
        await kit.account("alice")
        alice = await kit.connect("alice", "a")
        alice.take()
        await alice.send(
            f"<iq xmlns='jabber:client' type='get' id='d' to='{ALICE}'>"
            "<query xmlns='http://jabber.org/protocol/disco#info'/></iq>"
        )
        (info,) = alice.take()
        features = {
            f.get("var") for f in info.iter("{http://jabber.org/protocol/disco#info}feature")
        }
        assert {mam.NS, mam.EXTENDED, mam.SID} <= features


async def test_with_archiving_off_nothing_is_archived_or_stamped() -> None:
    async with running_hub(settings(enabled=False)) as kit:
        alice, bob = await pair(kit)
        await alice.send(chat(BOB, "x"))
        assert stanza_ids(messages(bob)[0]) == []
        assert await archived(kit, ALICE) == []
        assert error_of((await ask(alice)).iq)[0] == "feature-not-implemented"
        await alice.send(
            f"<iq xmlns='jabber:client' type='get' id='d' to='{ALICE}'>"
            "<query xmlns='http://jabber.org/protocol/disco#info'/></iq>"
        )
        (info,) = alice.take()
        features = {
            f.get("var") for f in info.iter("{http://jabber.org/protocol/disco#info}feature")
        }
        assert mam.NS not in features


# -- how copies are written ----------------------------------------------------------------------
def routed(client: Client, xml: str) -> object:
    """Route ``xml`` from ``client`` as the driver does, returning what it would await."""
    from dataclasses import replace

    from interlink.xmpp.stanza import parse_stanza
    from interlink.xmpp.xml import parse_fragment

    stanza = replace(parse_stanza(parse_fragment(xml)), from_=client.session.jid)
    return client.hub.route(client.session, stanza)


async def warm(kit: HubKit) -> tuple[Client, Client]:
    """Two accounts whose preferences are cached (so routing decides without storage)."""
    alice, bob = await pair(kit)
    await alice.send(chat(BOB, "warm"))
    bob.take()
    return alice, bob


async def test_the_first_message_reads_the_preferences_then_they_are_cached() -> None:
    async with running_hub() as kit:
        alice, _bob = await pair(kit)
        first = routed(alice, chat(BOB, "first"))
        assert asyncio.iscoroutine(first)  # preferences looked up
        await first
        assert routed(alice, chat(BOB, "second")) is None
        kit.clock.now += 61  # past prefs_cache_ttl: looked up again
        again = routed(alice, chat(BOB, "third"))
        assert asyncio.iscoroutine(again)
        await again


async def test_write_behind_lets_the_sender_go_on_and_queries_wait_for_the_writer() -> None:
    async with running_hub(settings(write_queue_max=100)) as kit:
        alice, bob = await warm(kit)
        assert routed(alice, chat(BOB, "queued")) is None  # delivered; the copy is queued
        assert len(messages(bob)) == 1
        assert len(await archived(kit, ALICE)) == 1  # the writer has not run yet
        assert (await ask(alice)).bodies == ["warm", "queued"]  # the query waited for it


async def test_a_full_write_queue_holds_the_sender_back_at_the_boundary() -> None:
    async with running_hub(settings(write_queue_max=4)) as kit:
        alice, bob = await warm(kit)
        assert routed(alice, chat(BOB, "one")) is None  # 2 entries queued of 4
        held = routed(alice, chat(BOB, "two"))  # 4 of 4: full
        assert asyncio.iscoroutine(held)
        await held
        assert len(await archived(kit, ALICE)) == 3  # the writer caught up, nothing dropped
        assert len(await archived(kit, BOB)) == 3
        assert len(messages(bob)) == 2


async def test_a_held_sender_waits_until_the_queue_is_down_to_half_then_sends_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Regression: a sender held by a full queue was let go once the writer had written what
    # came before it, with the queue still full of what others queued meanwhile, so its next
    # stanza waited again, and the next. Under a flood (bench/loadgen.py flood --sm) a
    # stream's input, its XEP-0198 <a/> too, went unread for seconds while messages to it
    # went on, until max_unacked disconnected it: its in-flight messages were lost.
    async with running_hub(settings(write_queue_max=8)) as kit:
        alice, bob = await warm(kit)
        await bob.send(chat(ALICE, "warm back"))  # bob's way decided without storage too
        alice.take()
        await kit.hub.router.archive.caught_up()  # the warm-up copies written
        monkeypatch.setattr(archive_module, "WRITE_BATCH", 4)
        permits = asyncio.Semaphore(0)  # one per batch the writer may commit
        batches: list[int] = []  # the size of each batch the writer took
        repository = kit.hub.ctx.storage.archive
        append = repository.append

        async def gated(entries: Sequence[ArchiveEntry], max_messages: int) -> None:
            batches.append(len(entries))
            await permits.acquire()
            await append(entries, max_messages)

        async def writer_took(n: int) -> None:
            for _ in range(200):
                if len(batches) >= n:
                    return
                await asyncio.sleep(0.01)
            raise AssertionError(f"the writer never took batch {n}: {batches}")

        def others_queue(n: int) -> None:  # bob goes on meanwhile (each one held, not awaited)
            for i in range(n):
                work = routed(bob, chat(ALICE, f"b{i}"))
                if asyncio.iscoroutine(work):
                    work.close()

        monkeypatch.setattr(repository, "append", gated)
        try:
            burst = [routed(alice, chat(BOB, f"a{i}")) for i in range(4)]  # 2 entries each
            assert burst[:3] == [None, None, None]
            assert asyncio.iscoroutine(burst[3])  # 8 of 8: full
            held = asyncio.ensure_future(burst[3])
            await writer_took(1)  # alice's first 4 entries
            others_queue(4)
            permits.release()
            await writer_took(2)  # alice's last 4
            others_queue(4)
            permits.release()
            await writer_took(3)  # what came before alice's wait is written; 12 entries queued
            await asyncio.sleep(0.05)
            assert not held.done()  # the queue is still full: she would only wait again
            for _ in range(10):
                permits.release()
            await asyncio.wait_for(held, 2.0)
            assert routed(alice, chat(BOB, "next")) is None  # room now: the burst goes on
            permits.release()
            await asyncio.wait_for(kit.hub.router.archive.caught_up(), 2.0)
            assert len(await archived(kit, ALICE)) == 2 + 4 + 8 + 1  # nothing dropped
            assert len(messages(bob)) == 5
        finally:
            for _ in range(100):  # never leave the writer waiting (the hub closes after it)
                permits.release()


async def test_durable_before_ack_makes_the_sender_wait_for_the_commit() -> None:
    async with running_hub(settings(durable_before_ack=True)) as kit:
        alice, bob = await warm(kit)
        work = routed(alice, chat(BOB, "kept"))
        assert asyncio.iscoroutine(work)
        assert len(messages(bob)) == 1  # delivered at once
        assert len(await archived(kit, ALICE)) == 1
        await work
        assert len(await archived(kit, ALICE)) == 2
        assert len(await archived(kit, BOB)) == 2
        # a chat state has nothing to wait for
        assert (
            routed(
                alice,
                "<message xmlns='jabber:client' to='bob@hub.test' type='chat'>"
                "<active xmlns='http://jabber.org/protocol/chatstates'/></message>",
            )
            is None
        )


async def test_a_failed_archive_write_does_not_refuse_the_delivered_message() -> None:
    async with running_hub(settings(durable_before_ack=True)) as kit:
        alice, bob = await pair(kit)
        storage = kit.hub.ctx.storage

        async def broken(entries: object, max_messages: int) -> None:
            raise RuntimeError("disk on fire")

        storage.archive.append = broken  # type: ignore[method-assign]
        await alice.send(chat(BOB, "still delivered"))
        assert len(messages(bob)) == 1
        assert messages(alice) == []  # no error to the sender
        assert kit.hub.router.archive.write_failures == 1
