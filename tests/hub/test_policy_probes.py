"""Regression tests from a security review of the consent rules: probes that must tell a third
party nothing (activity messages, key reads, resource pings), ways around the limits (error
messages, accepting ahead, reports), and labels on presence the hub sends on a third party's
behalf."""

from __future__ import annotations

from interlink.hub.policy.limits import PolicyLimits, Rate
from tests.hub.test_policy import (
    NS,
    RECEIPT,
    STANZA_NS,
    TP,
    TP2,
    chat,
    error_of,
    interop_hub,
    iq,
    messages,
    people,
)
from tests.hubkit import DOMAIN

PEP_GET = (
    "<iq xmlns='jabber:client' type='get' id='k' to='{to}'>"
    "<pubsub xmlns='http://jabber.org/protocol/pubsub'>"
    "<items node='urn:xmpp:omemo:2:devices'/></pubsub></iq>"
)


async def test_activity_messages_are_never_answered_so_they_probe_nothing() -> None:
    """A receipt-only message tells opted-in (silence) from not (error) without spending the
    new-conversation budget and without the target seeing any request."""
    limits = PolicyLimits(new_conversations_per_sender=Rate(1, 86_400.0))
    async with interop_hub(limits) as kit:
        alice, tp = await people(kit)  # alice opted in
        await kit.account("bob")  # bob not opted in
        probe = "<message xmlns='jabber:client' to='{to}'>" + RECEIPT + "</message>"
        answers = {}
        for _ in range(5):  # far beyond the budget of 1 new conversation
            for who in ("alice", "bob", "nobody"):
                await tp.send(probe.format(to=f"{who}@{DOMAIN}"))
                answers[who] = [el.get("type") for el in tp.take()]
        assert messages(alice) == []
        assert answers["alice"] == answers["bob"] == answers["nobody"], answers


async def test_key_reads_are_metered_like_first_messages() -> None:
    limits = PolicyLimits(
        new_conversations_per_sender=Rate(1, 86_400.0), messages_per_sender=Rate(2, 60.0)
    )
    async with interop_hub(limits) as kit:
        _alice, tp = await people(kit)
        await kit.account("bob")
        answers = {}
        for _ in range(10):
            for who in ("alice", "bob"):
                await tp.send(PEP_GET.format(to=f"{who}@{DOMAIN}"))
                answers[who] = [
                    (el.get("type"), error_of(el) if el.get("type") == "error" else None)
                    for el in tp.take()
                ]
        assert answers["alice"] == answers["bob"], answers


async def test_a_stranger_cannot_reach_or_probe_a_resource() -> None:
    async with interop_hub() as kit:
        alice, tp = await people(kit)
        probe = (
            "<iq xmlns='jabber:client' type='get' id='p' to='alice@hub.test/{res}'>"
            "<ping xmlns='urn:xmpp:ping'/></iq>"
        )
        await tp.send(probe.format(res="a"))
        online = [(el.tag, el.get("type")) for el in tp.take()]
        delivered_to_alice = alice.take()
        await tp.send(probe.format(res="gone"))
        offline = [(el.tag, el.get("type")) for el in tp.take()]
        assert delivered_to_alice == [], "an iq from a stranger reached alice's device"
        assert online == offline, (online, offline)


async def test_error_messages_need_an_accepted_conversation_and_carry_only_the_error() -> None:
    limits = PolicyLimits(messages_per_sender=Rate(2, 60.0))
    async with interop_hub(limits) as kit:
        alice, tp = await people(kit)
        for i in range(10):
            await tp.send(
                f"<message xmlns='jabber:client' to='alice@{DOMAIN}/a' type='error' id='e{i}'>"
                f"<body>spam {i}</body>"
                "<error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>"
                "</error></message>"
            )
        got = [m for m in messages(alice) if m.findtext(f"{STANZA_NS}body")]
        assert len(got) <= 2, (
            f"{len(got)} error-typed messages with bodies reached a user who never accepted"
        )


async def test_accepting_ahead_counts_as_a_new_conversation() -> None:
    limits = PolicyLimits(new_conversations_per_sender=Rate(1, 86_400.0))
    async with interop_hub(limits) as kit:
        alice, tp = await people(kit)
        await alice.send(chat(TP, "one"))
        assert len(messages(tp)) == 1
        tp2 = await kit.connect(TP2, "app")
        await alice.send(chat(TP2, "two"))
        assert error_of(messages(alice)[0])[0] == "policy-violation"  # limit works
        await iq(alice, "set", f"<accept xmlns='{NS}' jid='{TP2}'/>")
        await alice.send(chat(TP2, "three", mid="m3"))
        assert messages(tp2) == [], (
            "accept let the gatekeeper open a new conversation past the limit"
        )


async def test_reports_per_reporter_are_limited_at_the_boundary() -> None:
    async with interop_hub() as kit:
        alice, _tp = await people(kit)
        rep = (
            f"<iq xmlns='jabber:client' type='set' id='b'><block xmlns='urn:xmpp:blocking'>"
            f"<item jid='{TP}'><report xmlns='urn:xmpp:reporting:1' reason='urn:xmpp:reporting:spam'>"
            "<text>x</text></report></item></block></iq>"
        )
        limit = kit.hub.router.policy.limits.reports_per_sender.count
        answers = []
        for _ in range(limit + 1):
            await alice.send(rep)
            answers.append([el.get("type") for el in alice.take() if el.tag == f"{STANZA_NS}iq"])
        assert answers[:limit] == [["result"]] * limit
        assert answers[limit] == ["error"]
        reports = await kit.hub.ctx.storage.policy.reports(1000)
        assert len(reports) == limit


async def test_a_third_party_files_no_report_here_about_another_third_party() -> None:
    """Third parties report the hub's users here (by address or alias); anyone else they
    report to their own provider, which is not the hub's to forward to."""
    async with interop_hub() as kit:
        _alice, tp = await people(kit)
        victim = f"v@otherprov.interop.{DOMAIN}"
        await tp.send(
            f"<iq xmlns='jabber:client' type='set' id='b'><block xmlns='urn:xmpp:blocking'>"
            f"<item jid='{victim}'><report xmlns='urn:xmpp:reporting:1' reason='urn:xmpp:reporting:abuse'>"
            "<text>fake</text></report></item></block></iq>"
        )
        reports = await kit.hub.ctx.storage.policy.reports(10)
        assert reports == [], (
            f"a third party filed {reports[0].provider_id!r} report as {reports[0].reporter}"
        )


async def test_presence_sent_on_a_third_partys_behalf_is_labelled() -> None:
    from interlink.xmpp.ext import interop

    async with interop_hub() as kit:
        alice, tp = await people(kit)
        await alice.send(chat(TP, "hello"))  # accepted conversation
        await tp.send("<presence xmlns='jabber:client'/>")
        await alice.send("<presence xmlns='jabber:client'/>")
        alice.take()
        tp.take()
        await alice.send(f"<presence xmlns='jabber:client' to='{TP}' type='subscribe'/>")
        tp.take()
        alice.take()
        await tp.send(f"<presence xmlns='jabber:client' to='alice@{DOMAIN}' type='subscribed'/>")
        got = [el for el in alice.take() if el.tag == f"{STANZA_NS}presence"]
        unlabelled = [el.attrib for el in got if el.find(interop.MARKER) is None]
        assert got
        assert unlabelled == [], unlabelled


async def test_first_contacts_remembered_per_sender_is_bounded() -> None:
    """A sender's memory of addresses already charged holds ``contacts_remembered`` entries;
    an address pushed out costs a first contact again (memory stays bounded whatever it tries)."""
    limits = PolicyLimits(new_conversations_per_sender=Rate(4, 86_400.0), contacts_remembered=2)
    async with interop_hub(limits) as kit:
        _alice, tp = await people(kit)
        answers = []
        for i, who in enumerate(("a", "b", "c", "a", "b")):
            await tp.send(chat(f"{who}@{DOMAIN}", mid=f"m{i}"))
            answers.append(error_of(messages(tp)[0])[0])
        # a, b, c: three first contacts; a again: pushed out by c, a fourth; b again: pushed out
        # too, and the budget of four is spent.
        assert answers == ["service-unavailable"] * 4 + ["policy-violation"]
