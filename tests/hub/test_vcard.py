"""XEP-0054 vcard-temp: own set/get, reads between the hub's users, the empty answer, the size
limit, and the interop boundary (consent rules, the third-party view)."""

from __future__ import annotations

from xml.etree.ElementTree import Element

from interlink.hub.context import HubSettings
from interlink.xmpp.stanza import Iq, IqType
from interlink.xmpp.xml import serialize
from tests.hub.test_pep import condition, iq
from tests.hub.test_policy import TP, interop_hub, people
from tests.hubkit import DOMAIN, running_hub

NS = "vcard-temp"
FULL = "<FN>Alice A.</FN><NICKNAME>al</NICKNAME><TEL><NUMBER>+1555</NUMBER></TEL>"
FULL += "<PHOTO><TYPE>image/png</TYPE><BINVAL>iVBORw0=</BINVAL></PHOTO><EMAIL>a@x</EMAIL>"


def vcard(body: str = "") -> str:
    return f"<vCard xmlns='{NS}'>{body}</vCard>"


def card(answer: Iq) -> Element:
    assert answer.type is IqType.RESULT, answer
    (el,) = answer.payload
    assert el.tag == f"{{{NS}}}vCard"
    return el


def fields(answer: Iq) -> list[str]:
    return [c.tag.removeprefix(f"{{{NS}}}") for c in card(answer)]


async def test_own_vcard_round_trips_and_others_read_it() -> None:
    async with running_hub() as kit:
        await kit.account("alice")
        await kit.account("bob")
        alice = await kit.connect("alice", "a")
        bob = await kit.connect("bob", "b")
        assert fields(await iq(alice, vcard(), kind="get")) == []  # none set: empty
        assert (await iq(alice, vcard(FULL))).type is IqType.RESULT
        expected = ["FN", "NICKNAME", "TEL", "PHOTO", "EMAIL"]
        assert fields(await iq(alice, vcard(), kind="get")) == expected
        own = await iq(alice, vcard(), kind="get", to=f"alice@{DOMAIN}")
        assert fields(own) == expected
        # anyone on the hub may read it, no subscription needed (as on Prosody)
        answer = await iq(bob, vcard(), kind="get", to=f"alice@{DOMAIN}")
        assert fields(answer) == expected
        assert str(answer.from_) == f"alice@{DOMAIN}"
        assert (await iq(alice, vcard("<FN>A</FN>"))).type is IqType.RESULT
        assert fields(await iq(bob, vcard(), kind="get", to=f"alice@{DOMAIN}")) == ["FN"]


async def test_no_vcard_and_no_account_give_the_same_empty_vcard() -> None:
    async with running_hub() as kit:
        await kit.account("alice")
        await kit.account("bob")
        bob = await kit.connect("bob", "b")
        for to in (f"alice@{DOMAIN}", f"nobody@{DOMAIN}"):
            answer = await iq(bob, vcard(), kind="get", to=to)
            assert fields(answer) == [], to


async def test_setting_another_accounts_vcard_is_forbidden() -> None:
    async with running_hub() as kit:
        await kit.account("alice")
        await kit.account("bob")
        alice = await kit.connect("alice", "a")
        await iq(alice, vcard("<FN>Alice</FN>"))
        bob = await kit.connect("bob", "b")
        for to in (f"alice@{DOMAIN}", f"nobody@{DOMAIN}"):
            answer = await iq(bob, vcard("<FN>Mallory</FN>"), to=to)
            assert condition(answer)[0] == "forbidden", to
        assert fields(await iq(alice, vcard(), kind="get")) == ["FN"]
        assert card(await iq(alice, vcard(), kind="get"))[0].text == "Alice"


async def test_a_blocked_reader_gets_no_vcard() -> None:
    async with running_hub() as kit:
        await kit.account("alice")
        await kit.account("bob")
        alice = await kit.connect("alice", "a")
        await iq(alice, vcard("<FN>Alice</FN>"))
        await iq(alice, f"<block xmlns='urn:xmpp:blocking'><item jid='bob@{DOMAIN}'/></block>")
        bob = await kit.connect("bob", "b")
        answer = await iq(bob, vcard(), kind="get", to=f"alice@{DOMAIN}")
        assert answer.type is IqType.ERROR


async def test_the_size_limit_is_inclusive_and_keeps_the_old_vcard() -> None:
    body = "<FN>" + "x" * 100 + "</FN>"
    el = Element(f"{{{NS}}}vCard")
    fn = Element(f"{{{NS}}}FN")
    fn.text = "x" * 100
    el.append(fn)
    limit = len(serialize(el, None).encode())
    async with running_hub(HubSettings(vcard_max_bytes=limit)) as kit:
        await kit.account("alice")
        alice = await kit.connect("alice", "a")
        assert (await iq(alice, vcard(body))).type is IqType.RESULT
        too_big = "<FN>" + "x" * 101 + "</FN>"
        answer = await iq(alice, vcard(too_big))
        assert condition(answer)[0] == "not-acceptable"
        assert card(await iq(alice, vcard(), kind="get"))[0].text == "x" * 100


async def test_a_third_party_vcard_reaches_a_gatekeeper_user_cut_down() -> None:
    async with interop_hub() as kit:
        alice, tp = await people(kit)
        assert (await iq(tp, vcard(FULL))).type is IqType.RESULT
        # the owner sees all of it
        assert fields(await iq(tp, vcard(), kind="get")) == [
            "FN",
            "NICKNAME",
            "TEL",
            "PHOTO",
            "EMAIL",
        ]
        answer = await iq(alice, vcard(), kind="get", to=TP)
        assert fields(answer) == ["FN", "NICKNAME", "PHOTO"]
        assert card(answer)[0].text == "Alice A."


async def test_a_gatekeeper_users_vcard_reaches_a_third_party_cut_down() -> None:
    async with interop_hub() as kit:
        alice, tp = await people(kit)
        assert (await iq(alice, vcard(FULL))).type is IqType.RESULT
        answer = await iq(tp, vcard(), kind="get", to=f"alice@{DOMAIN}")
        assert fields(answer) == ["FN", "NICKNAME", "PHOTO"]
        refused = await iq(tp, vcard("<FN>Mallory</FN>"), to=f"alice@{DOMAIN}")
        assert refused.type is IqType.ERROR
        assert len(fields(await iq(alice, vcard(), kind="get"))) == 5


async def test_a_third_party_reading_a_gatekeeper_user_goes_through_the_rules() -> None:
    async with interop_hub() as kit:
        alice, tp = await people(kit, opted_in=False)
        await iq(alice, vcard("<FN>Alice</FN>"))
        refused = await iq(tp, vcard(), kind="get", to=f"alice@{DOMAIN}")
        nobody = await iq(tp, vcard(), kind="get", to=f"nobody@{DOMAIN}")
        assert condition(refused) == condition(nobody)
        assert condition(refused)[0] == "service-unavailable"


async def test_the_server_advertises_vcard_temp() -> None:
    async with running_hub() as kit:
        await kit.account("alice")
        alice = await kit.connect("alice", "a")
        answer = await iq(
            alice, "<query xmlns='http://jabber.org/protocol/disco#info'/>", kind="get", to=DOMAIN
        )
        assert NS in [f.get("var") for f in answer.payload[0]]
