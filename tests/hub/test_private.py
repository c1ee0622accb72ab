"""XEP-0049 private XML storage: per-namespace get/set, reserved namespaces, other accounts,
and the per-fragment, per-account byte and count limits at their boundaries."""

from __future__ import annotations

from xml.etree.ElementTree import Element

from interlink.hub.context import HubSettings
from interlink.xmpp.stanza import Iq, IqType
from interlink.xmpp.xml import serialize
from tests.hub.test_pep import condition, iq
from tests.hub.test_policy import TP, interop_hub, people
from tests.hubkit import DOMAIN, running_hub

NS = "jabber:iq:private"


def query(body: str) -> str:
    return f"<query xmlns='{NS}'>{body}</query>"


def stored(answer: Iq) -> Element:
    assert answer.type is IqType.RESULT, answer
    (q,) = answer.payload
    assert q.tag == f"{{{NS}}}query"
    (el,) = list(q)
    return el


def prefs(body: str = "", ns: str = "exodus:prefs") -> str:
    return f"<prefs xmlns='{ns}'>{body}</prefs>"


def fragment_bytes(body: str) -> int:
    """The stored size of ``prefs(body)`` as the hub serializes it."""
    el = Element("{exodus:prefs}prefs")
    el.text = body or None
    return len(serialize(el, None).encode())


async def test_a_fragment_round_trips_and_is_replaced() -> None:
    async with running_hub() as kit:
        await kit.account("alice")
        alice = await kit.connect("alice", "a")
        empty = stored(await iq(alice, query(prefs()), kind="get"))
        assert (empty.tag, empty.text, list(empty)) == ("{exodus:prefs}prefs", None, [])
        body = "<defaultnick>Hamlet</defaultnick>"
        assert (await iq(alice, query(prefs(body)))).type is IqType.RESULT
        got = stored(await iq(alice, query(prefs()), kind="get", to=f"alice@{DOMAIN}"))
        assert [(c.tag, c.text) for c in got] == [("{exodus:prefs}defaultnick", "Hamlet")]
        assert (await iq(alice, query(prefs("<x/>") + prefs(ns="urn:example:other")))).type is (
            IqType.RESULT
        )
        got = stored(await iq(alice, query(prefs()), kind="get"))
        assert [c.tag for c in got] == ["{exodus:prefs}x"]  # replaced, not merged
        other = stored(await iq(alice, query(prefs(ns="urn:example:other")), kind="get"))
        assert other.tag == "{urn:example:other}prefs"
        # another resource, and after reconnecting: durable per account
        await kit.disconnect(alice)
        again = await kit.connect("alice", "b")
        got = stored(await iq(again, query(prefs()), kind="get"))
        assert [c.tag for c in got] == ["{exodus:prefs}x"]


async def test_reserved_namespaces_and_malformed_queries_are_not_acceptable() -> None:
    async with running_hub() as kit:
        await kit.account("alice")
        alice = await kit.connect("alice", "a")
        for body in (
            "<foo/>",  # inherits jabber:iq:private
            "<foo xmlns='jabber:client'/>",
            "<foo xmlns='jabber:server'/>",
            "",
            prefs() + prefs(),  # one element per namespace
        ):
            assert condition(await iq(alice, query(body)))[0] == "not-acceptable", body
        for body in ("", prefs() + prefs(ns="a:b"), "<foo xmlns='jabber:client'/>"):
            answer = await iq(alice, query(body), kind="get")
            assert condition(answer)[0] == "not-acceptable", body


async def test_another_accounts_storage_is_forbidden() -> None:
    async with running_hub() as kit:
        await kit.account("alice")
        await kit.account("bob")
        alice = await kit.connect("alice", "a")
        await iq(alice, query(prefs("<secret/>")))
        bob = await kit.connect("bob", "b")
        for to in (f"alice@{DOMAIN}", f"nobody@{DOMAIN}"):
            for kind, body in (("get", prefs()), ("set", prefs("<mine/>"))):
                answer = await iq(bob, query(body), kind=kind, to=to)
                assert condition(answer)[0] == "forbidden", (to, kind)
        got = stored(await iq(alice, query(prefs()), kind="get"))
        assert [c.tag for c in got] == ["{exodus:prefs}secret"]


async def test_a_third_party_keeps_its_own_and_cannot_reach_a_gatekeeper_users() -> None:
    async with interop_hub() as kit:
        alice, tp = await people(kit)
        await iq(alice, query(prefs("<secret/>")))
        assert (await iq(tp, query(prefs("<own/>")))).type is IqType.RESULT
        assert [c.tag for c in stored(await iq(tp, query(prefs()), kind="get"))] == [
            "{exodus:prefs}own"
        ]
        answer = await iq(tp, query(prefs()), kind="get", to=f"alice@{DOMAIN}")
        assert answer.type is IqType.ERROR
        assert condition(answer)[0] in ("forbidden", "service-unavailable")
        answer = await iq(alice, query(prefs()), kind="get", to=TP)
        assert answer.type is IqType.ERROR


async def test_the_fragment_size_limit_is_inclusive() -> None:
    body = "x" * 100
    limit = fragment_bytes(body)
    async with running_hub(HubSettings(private_max_fragment_bytes=limit)) as kit:
        await kit.account("alice")
        alice = await kit.connect("alice", "a")
        assert (await iq(alice, query(prefs(body)))).type is IqType.RESULT
        assert condition(await iq(alice, query(prefs(body + "x"))))[0] == "not-acceptable"


async def test_the_account_budget_is_inclusive_and_refuses_the_whole_set() -> None:
    body = "x" * 100
    one = fragment_bytes(body)
    async with running_hub(HubSettings(private_quota_bytes=2 * one)) as kit:
        await kit.account("alice")
        alice = await kit.connect("alice", "a")
        two = prefs(body) + prefs(body, ns="exodus:other")  # the same size
        assert (await iq(alice, query(two))).type is IqType.RESULT
        answer = await iq(alice, query(prefs(body + "x")))
        assert condition(answer)[0] == "resource-constraint"
        err = answer.find("{jabber:client}error")
        assert err is not None
        assert "bytes" in (err.findtext("{urn:ietf:params:xml:ns:xmpp-stanzas}text") or "")
        # replacing with a smaller one frees room
        assert (await iq(alice, query(prefs(body[1:])))).type is IqType.RESULT
        got = stored(await iq(alice, query(prefs()), kind="get"))
        assert got.text == body[1:]


async def test_the_fragment_count_is_limited_per_account() -> None:
    async with running_hub(HubSettings(private_max_fragments=2)) as kit:
        await kit.account("alice")
        alice = await kit.connect("alice", "a")
        assert (await iq(alice, query(prefs(ns="a:1") + prefs(ns="a:2")))).type is IqType.RESULT
        assert (await iq(alice, query(prefs("y", ns="a:2")))).type is IqType.RESULT
        answer = await iq(alice, query(prefs(ns="a:3") + prefs("z", ns="a:1")))
        assert condition(answer)[0] == "resource-constraint"
        assert stored(await iq(alice, query(prefs(ns="a:1")), kind="get")).text is None
        assert stored(await iq(alice, query(prefs(ns="a:3")), kind="get")).text is None


async def test_the_server_advertises_private_storage() -> None:
    async with running_hub() as kit:
        await kit.account("alice")
        alice = await kit.connect("alice", "a")
        answer = await iq(
            alice,
            "<query xmlns='http://jabber.org/protocol/disco#info'/>",
            kind="get",
            to=DOMAIN,
        )
        features = [f.get("var") for f in answer.payload[0]]
        assert NS in features
