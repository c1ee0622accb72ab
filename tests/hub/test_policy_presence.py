"""Presence and subscriptions under the consent rules (hardening issue: "presence bypasses the
consent rules"): a third party's directed presence and subscription requests are message
requests, with the request budget, the per-sender rate, the new-conversation budget and the
marker, through the same decision as its messages; and nothing goes back to a request."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from xml.etree.ElementTree import Element, tostring

from interlink.hub.policy.limits import PolicyLimits, Rate
from interlink.xmpp.ext import interop as wire
from interlink.xmpp.jid import JID
from tests.hub.test_policy import (
    NS,
    STANZA_NS,
    TP,
    chat,
    error_of,
    interop_hub,
    iq,
    marker_of,
    messages,
    people,
    set_settings,
)
from tests.hubkit import DOMAIN, Client, HubKit

ALICE = f"alice@{DOMAIN}"
PRESENCE = f"{STANZA_NS}presence"
# Directed presence carrying everything a spammer would like shown: status text, a body and an
# OMEMO payload.
LOADED = (
    "<presence xmlns='jabber:client' to='{to}'>"
    "<status>buy now at example.com</status>"
    "<body>a body in a presence</body>"
    "<encrypted xmlns='urn:xmpp:omemo:2'><header sid='1'/><payload>AAAA</payload></encrypted>"
    "</presence>"
)
SUBSCRIBE = "<presence xmlns='jabber:client' to='{to}' type='subscribe'/>"


def presences(client: Client, sender: str = TP) -> list[Element]:
    return [
        el
        for el in client.take()
        if el.tag == PRESENCE and (el.get("from") or "").split("/")[0] == sender
    ]


async def test_presence_and_subscriptions_stop_where_the_request_stops() -> None:
    async with interop_hub() as kit:
        alice, tp = await people(kit)
        for i in range(3):
            await tp.send(chat(ALICE, f"m{i}", f"id{i}"))
        assert len(messages(alice)) == 3
        await tp.send(chat(ALICE, "m3", "id3"))
        assert error_of(messages(tp)[0])[0] == "policy-violation"  # the 4th is refused
        for _ in range(300):
            await tp.send(LOADED.format(to=ALICE))
        for _ in range(50):
            await tp.send(SUBSCRIBE.format(to=ALICE))
        got = alice.take()
        assert got == [], f"{len(got)} stanzas reached a user who never accepted"
        assert tp.take() == []  # dropped silently: presence is never answered
        pending = await kit.hub.ctx.storage.roster.pending(ALICE)
        assert pending == [], "a subscription request past the request limit was stored"
        # Logging in again shows nothing either.
        later = await kit.connect("alice", "b")
        assert presences(later) == []
        refused = kit.hub.router.policy.refused
        # Past the request limit, then (past 120 stanzas a minute) past the sender's rate.
        assert refused["request-limit"] + refused["rate-sender"] == 1 + 300 + 50
        assert refused["rate-sender"] == 4 + 300 + 50 - 120


async def test_directed_presence_is_a_request_message_with_the_request_marker() -> None:
    async with interop_hub() as kit:
        alice, tp = await people(kit)
        await tp.send(LOADED.format(to=ALICE))
        await tp.send(SUBSCRIBE.format(to=ALICE))
        got = presences(alice)
        assert [el.get("type") for el in got] == [None, "subscribe"]
        for el in got:
            mark = marker_of(el)
            assert mark is not None
            assert mark.get("request") == "true"
        await tp.send(chat(ALICE, "third"))
        assert len(messages(alice)) == 1  # the third of three request messages
        await tp.send(chat(ALICE, "fourth", "m4"))
        condition, text = error_of(messages(tp)[0])
        assert condition == "policy-violation"
        assert text is not None
        assert "3 messages" in text
        listed = await iq(alice, "get", f"<requests xmlns='{NS}'/>")
        requests = listed.find(wire.REQUESTS)
        assert requests is not None
        assert [item.get("messages") for item in requests] == ["3"]


async def test_one_sender_reaches_no_more_strangers_with_presence_than_its_budget() -> None:
    budget = 5
    limits = PolicyLimits(new_conversations_per_sender=Rate(budget, 86_400.0))
    async with interop_hub(limits) as kit:
        _alice, tp = await people(kit)
        strangers = [await opted_in(kit, f"s{i}") for i in range(12)]
        for i, (jid, _client) in enumerate(strangers):
            template = LOADED if i % 2 else SUBSCRIBE
            await tp.send(template.format(to=jid))
        reached = [jid for jid, client in strangers if presences(client)]
        assert len(reached) == budget, f"presence reached {len(reached)} strangers"
        # The budget is the one messages use: spent on presence, it stops messages too.
        await tp.send(chat(f"s{budget + 1}@{DOMAIN}", "hello"))
        condition, text = error_of(messages(tp)[0])
        assert condition == "policy-violation"
        assert text is not None
        assert "new conversations" in text


async def opted_in(kit: HubKit, local: str) -> tuple[str, Client]:
    jid = await kit.account(local)
    client = await kit.connect(local, "a")
    await set_settings(client, enabled="true")
    client.take()
    return jid, client


async def test_presence_counts_against_the_senders_rate() -> None:
    limits = PolicyLimits(messages_per_sender=Rate(3, 60.0))
    async with interop_hub(limits) as kit:
        alice, tp = await people(kit)
        await iq(alice, "set", f"<accept xmlns='{NS}' jid='{TP}'/>")
        for _ in range(10):
            await tp.send(LOADED.format(to=ALICE))
        assert len(presences(alice)) == 3
        await tp.send(chat(ALICE, "and now a message"))
        assert error_of(messages(tp)[0])[0] == "policy-violation"


async def test_presence_to_an_unreachable_user_is_dropped_and_costs_a_first_contact() -> None:
    limits = PolicyLimits(new_conversations_per_sender=Rate(2, 86_400.0))
    async with interop_hub(limits) as kit:
        _alice, tp = await people(kit)
        await kit.account("carol")  # exists, never opted in
        carol = await kit.connect("carol", "c")
        carol.take()
        await tp.send(LOADED.format(to=f"carol@{DOMAIN}"))
        await tp.send(SUBSCRIBE.format(to=f"nobody@{DOMAIN}"))
        assert presences(carol) == []
        assert tp.take() == []
        await tp.send(chat(ALICE, "hello"))  # a third address: over the budget of two
        assert error_of(messages(tp)[0])[0] == "policy-violation"


async def test_nothing_goes_back_to_a_request_but_all_flows_once_accepted() -> None:
    async with interop_hub() as kit:
        alice, tp = await people(kit)
        await tp.send(SUBSCRIBE.format(to=ALICE))
        assert len(presences(alice)) == 1
        # Before accepting: alice's directed presence, her approval and her own subscription
        # request do not reach the third party.
        await alice.send(f"<presence xmlns='jabber:client' to='{TP}'/>")
        await alice.send(f"<presence xmlns='jabber:client' to='{TP}' type='subscribed'/>")
        await alice.send(f"<presence xmlns='jabber:client' to='{TP}' type='subscribe'/>")
        assert presences(tp, ALICE) == []
        # A probe from the third party learns nothing either.
        await tp.send(f"<presence xmlns='jabber:client' to='{ALICE}' type='probe'/>")
        assert presences(tp, ALICE) == []
        accepted = await iq(alice, "set", f"<accept xmlns='{NS}' jid='{TP}'/>")
        assert accepted.get("type") == "result"
        await alice.send(f"<presence xmlns='jabber:client' to='{TP}' type='subscribed'/>")
        got = presences(tp, ALICE)
        assert [el.get("type") for el in got] == ["subscribed", None]  # and alice's presence
        assert all(marker_of(el) is None for el in got)  # markers are for gatekeeper users
        # The third party's presence now reaches alice, marked without the request flag.
        await tp.send(
            f"<presence xmlns='jabber:client' to='{ALICE}'><status>here</status></presence>"
        )
        (directed,) = presences(alice)
        assert directed.findtext(f"{STANZA_NS}status") == "here"
        mark = marker_of(directed)
        assert mark is not None
        assert mark.get("request") is None


async def test_a_requests_goodbye_is_bare() -> None:
    async with interop_hub() as kit:
        alice, tp = await people(kit)
        await tp.send(LOADED.format(to=ALICE))
        assert len(presences(alice)) == 1
        await tp.send(
            "<presence xmlns='jabber:client' type='unavailable'><status>more ads</status>"
            "</presence>"
        )
        (gone,) = presences(alice)
        assert gone.get("type") == "unavailable"
        assert [child.tag for child in gone] == [wire.MARKER]
        mark = marker_of(gone)
        assert mark is not None
        assert mark.get("request") == "true"


async def test_a_gatekeeper_subscription_request_starts_the_conversation() -> None:
    async with interop_hub() as kit:
        alice, tp = await people(kit)
        await alice.send(f"<presence xmlns='jabber:client' to='{TP}' type='subscribe'/>")
        assert [el.get("type") for el in presences(tp, ALICE)] == ["subscribe"]
        await tp.send(chat(ALICE, "hi"))
        (reply,) = messages(alice)
        mark = marker_of(reply)
        assert mark is not None
        assert mark.get("request") is None  # accepted: alice asked first
        await set_settings(alice, enabled="false")
        await alice.send(f"<presence xmlns='jabber:client' to='{TP}'/>")
        assert presences(tp, ALICE) == []
        assert alice.take() == []  # presence is dropped, not answered


class RecordingRepository:
    """The policy repository, recording each call with the addressed account blanked out."""

    def __init__(self, inner: Any, addressed: str) -> None:
        self._inner = inner
        self.addressed = addressed
        self.calls: list[tuple[str, tuple[object, ...]]] = []

    def __getattr__(self, name: str) -> Callable[..., Awaitable[Any]]:
        method = getattr(self._inner, name)

        async def recorded(*args: object) -> Any:
            self.calls.append((name, tuple("<to>" if a == self.addressed else a for a in args)))
            return await method(*args)

        return recorded


async def test_every_unreachable_reason_does_the_same_work_for_every_stanza_kind() -> None:
    """The oracle property for presence too: the same repository calls in the same order, and
    the same (no) answer, whatever the reason an address cannot be reached."""
    async with interop_hub() as kit:
        _alice, tp = await people(kit)
        await opted_in(kit, "dave")
        dave = await kit.connect("dave", "d")
        await iq(dave, "set", f"<block xmlns='urn:xmpp:blocking'><item jid='{TP}'/></block>")
        await kit.account("carol")  # never opted in
        policy = kit.hub.router.policy
        probes = [
            LOADED,
            SUBSCRIBE,
            "<presence xmlns='jabber:client' to='{to}' type='probe'/>",
            "<presence xmlns='jabber:client' to='{to}' type='subscribed'/>",
            chat("{to}", "hello"),
            "<iq xmlns='jabber:client' type='get' id='q' to='{to}'>"
            "<query xmlns='http://jabber.org/protocol/disco#info'/></iq>",
        ]
        traces = {}
        for name in ("nobody", "carol", "dave"):
            to = f"{name}@{DOMAIN}"
            policy.forget(JID.parse(to))
            spy = RecordingRepository(policy._repo, to)
            policy._repo = spy  # type: ignore[assignment]
            answers = []
            try:
                for probe in probes:
                    await tp.send(probe.format(to=to))
                    answers.append([tostring(el).replace(to.encode(), b"<to>") for el in tp.take()])
            finally:
                policy._repo = spy._inner
            traces[name] = (spy.calls, answers)
        assert traces["nobody"] == traces["carol"] == traces["dave"], traces
        calls, answers = traces["nobody"]
        assert [name for name, _ in calls][:2] == ["reach", "conversation"]
        assert answers[:4] == [[], [], [], []]  # presence is never answered


DEVICES = "urn:xmpp:omemo:2:devices"


def publish_devices(device: int) -> str:
    return (
        "<iq xmlns='jabber:client' type='set' id='pub'>"
        "<pubsub xmlns='http://jabber.org/protocol/pubsub'>"
        f"<publish node='{DEVICES}'><item id='current'>"
        f"<devices xmlns='urn:xmpp:omemo:2'><device id='{device}'/></devices></item></publish>"
        "<publish-options><x xmlns='jabber:x:data' type='submit'>"
        "<field var='FORM_TYPE' type='hidden'>"
        "<value>http://jabber.org/protocol/pubsub#publish-options</value></field>"
        "<field var='pubsub#access_model'><value>open</value></field></x></publish-options>"
        "</pubsub></iq>"
    )


async def test_pep_notifications_to_a_pubsub_subscriber_follow_the_request_state() -> None:
    """A third party that subscribed to a gatekeeper user's device list (reads follow the iq
    rules) gets no notifications while its request is not accepted: nothing goes back."""
    async with interop_hub() as kit:
        alice, tp = await people(kit)
        await alice.send(publish_devices(1))
        alice.take()
        await tp.send(
            f"<iq xmlns='jabber:client' type='set' id='sub' to='{ALICE}'>"
            "<pubsub xmlns='http://jabber.org/protocol/pubsub'>"
            f"<subscribe node='{DEVICES}' jid='{tp.jid}'/></pubsub></iq>"
        )
        (answer,) = tp.take()
        assert answer.get("type") == "result"
        await alice.send(publish_devices(2))  # no conversation yet: the subscriber hears of it
        assert len(messages(tp)) == 1
        await tp.send(chat(ALICE, "hello"))  # now a request
        alice.take()
        await alice.send(publish_devices(3))
        alice.take()
        assert messages(tp) == [], "a notification went back to an unaccepted request"
        await iq(alice, "set", f"<accept xmlns='{NS}' jid='{TP}'/>")
        await alice.send(publish_devices(4))
        assert len(messages(tp)) == 1
