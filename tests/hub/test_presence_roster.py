"""Roster management and presence subscriptions (RFC 6121 §2–§4), on the hub with fakes."""

from __future__ import annotations

from xml.etree.ElementTree import Element

import pytest

from interlink.errors import StorageBusyError
from interlink.hub.context import HubSettings
from interlink.storage.roster import Subscription
from interlink.xmpp.jid import JID
from interlink.xmpp.stanza import Iq, IqType, Presence, PresenceType
from tests.hubkit import DOMAIN, Client, HubKit, running_hub

ROSTER = "{jabber:iq:roster}"


def roster_pushes(elements: list[Element]) -> list[tuple[str, str, str | None]]:
    out = []
    for el in elements:
        if el.tag == "{jabber:client}iq" and el.get("type") == "set":
            item = el[0][0]
            out.append((item.get("jid") or "", item.get("subscription") or "", item.get("ask")))
    return out


def presences(elements: list[Element]) -> list[tuple[str, str, str]]:
    return [
        (el.get("from") or "", el.get("type") or "available", el.get("to") or "")
        for el in elements
        if el.tag == "{jabber:client}presence"
    ]


async def get_roster(c: Client) -> list[tuple[str, str, str | None, str | None]]:
    await c.send(
        "<iq xmlns='jabber:client' type='get' id='r'><query xmlns='jabber:iq:roster'/></iq>"
    )
    (res,) = [s for s in c.stanzas() if isinstance(s, Iq) and s.id == "r"]
    assert res.type is IqType.RESULT
    return [
        (i.get("jid") or "", i.get("subscription") or "", i.get("ask"), i.get("name"))
        for i in res.payload[0]
    ]


async def roster_set(client: Client, body: str) -> str:
    """Send one roster set; ``ok`` or the error condition."""
    await client.send(
        f"<iq xmlns='jabber:client' type='set' id='x'><query xmlns='jabber:iq:roster'>{body}</query></iq>"
    )
    (res,) = [el for el in client.take() if el.get("id") == "x"]
    return "ok" if res.get("type") == "result" else res[0][0].tag.rsplit("}", 1)[1]


async def subscribe_both(kit: HubKit, a: Client, b: Client) -> None:
    await a.send("<presence xmlns='jabber:client' to='bob@hub.test' type='subscribe'/>")
    await b.send("<presence xmlns='jabber:client' to='alice@hub.test' type='subscribed'/>")
    await b.send("<presence xmlns='jabber:client' to='alice@hub.test' type='subscribe'/>")
    await a.send("<presence xmlns='jabber:client' to='bob@hub.test' type='subscribed'/>")


async def test_roster_set_get_push_and_remove() -> None:
    async with running_hub() as kit:
        await kit.account("alice")
        a1 = await kit.connect("alice", "a1")
        a2 = await kit.connect("alice", "a2")
        assert await get_roster(a1) == []
        assert await get_roster(a2) == []
        await a1.send(
            "<iq xmlns='jabber:client' type='set' id='s'><query xmlns='jabber:iq:roster'>"
            "<item jid='Bob@Hub.Test' name='Bob'><group>Friends</group></item></query></iq>"
        )
        got1, got2 = a1.take(), a2.take()
        assert roster_pushes(got1) == [("bob@hub.test", "none", None)]
        assert roster_pushes(got2) == [("bob@hub.test", "none", None)]
        assert [el.get("type") for el in got1 if el.get("id") == "s"] == ["result"]
        assert await get_roster(a1) == [("bob@hub.test", "none", None, "Bob")]
        await a1.send(
            "<iq xmlns='jabber:client' type='set' id='d'><query xmlns='jabber:iq:roster'>"
            "<item jid='bob@hub.test' subscription='remove'/></query></iq>"
        )
        assert roster_pushes(a2.take()) == [("bob@hub.test", "remove", None)]
        assert await get_roster(a1) == []


async def test_roster_errors() -> None:
    async with running_hub(HubSettings(max_roster_items=2)) as kit:
        await kit.account("alice")
        a = await kit.connect("alice", "a")
        a.take()

        assert await roster_set(a, "") == "bad-request"
        assert (
            await roster_set(a, "<item jid='x@hub.test'/><item jid='y@hub.test'/>") == "bad-request"
        )
        assert await roster_set(a, "<item jid='@@'/>") == "bad-request"
        assert (
            await roster_set(a, "<item jid='x@hub.test'><group>a</group><group>a</group></item>")
            == "bad-request"
        )
        assert (
            await roster_set(a, "<item jid='x@hub.test'><group></group></item>") == "not-acceptable"
        )
        assert (
            await roster_set(a, "<item jid='nobody@hub.test' subscription='remove'/>")
            == "item-not-found"
        )
        # roster size limit, at the boundary
        assert await roster_set(a, "<item jid='one@hub.test'/>") == "ok"
        assert await roster_set(a, "<item jid='two@hub.test'/>") == "ok"
        assert await roster_set(a, "<item jid='two@hub.test' name='updating is fine'/>") == "ok"
        assert await roster_set(a, "<item jid='three@hub.test'/>") == "not-allowed"


async def test_a_busy_database_fails_the_request_not_the_stream(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No database connection free in time: the stanza gets resource-constraint (wait: try
    again), and the stream goes on."""
    async with running_hub() as kit:
        await kit.account("alice")
        a = await kit.connect("alice", "a")
        a.take()

        async def busy(*args: object, **kwargs: object) -> None:
            raise StorageBusyError("no database connection free in time")

        repo = kit.hub.ctx.storage.roster
        with monkeypatch.context() as patch:
            patch.setattr(repo, "put", busy)
            await a.send(
                "<iq xmlns='jabber:client' type='set' id='x'><query xmlns='jabber:iq:roster'>"
                "<item jid='x@hub.test'/></query></iq>"
            )
            (res,) = [el for el in a.take() if el.get("id") == "x"]
            assert res.get("type") == "error"
            assert res[0].get("type") == "wait"
            assert res[0][0].tag == "{urn:ietf:params:xml:ns:xmpp-stanzas}resource-constraint"
        assert not a.port.closed  # the driver ends a stream only for what escapes routing
        assert await roster_set(a, "<item jid='x@hub.test'/>") == "ok"  # and again, later


async def test_subscription_request_approval_and_presence_flow() -> None:
    async with running_hub() as kit:
        await kit.account("alice")
        await kit.account("bob")
        a = await kit.connect("alice", "a")
        b = await kit.connect("bob", "b")
        await get_roster(a)
        await get_roster(b)
        a.take()
        b.take()
        await a.send("<presence xmlns='jabber:client' to='bob@hub.test' type='subscribe'/>")
        assert roster_pushes(a.take()) == [("bob@hub.test", "none", "subscribe")]
        got = b.take()
        assert presences(got) == [("alice@hub.test", "subscribe", "bob@hub.test/b")]
        await b.send("<presence xmlns='jabber:client' to='alice@hub.test' type='subscribed'/>")
        got_b = b.take()
        assert roster_pushes(got_b) == [("alice@hub.test", "from", None)]
        got_a = a.take()
        assert roster_pushes(got_a) == [("bob@hub.test", "to", None)]
        assert ("bob@hub.test", "subscribed", "alice@hub.test/a") in presences(got_a)
        # Alice now sees Bob's presence...
        assert ("bob@hub.test/b", "available", "alice@hub.test/a") in presences(got_a)
        await b.send("<presence xmlns='jabber:client'><show>away</show></presence>")
        assert presences(a.take()) == [("bob@hub.test/b", "available", "alice@hub.test/a")]
        assert presences(b.take()) == [("bob@hub.test/b", "available", "bob@hub.test/b")]
        # ...but Bob does not see Alice's.
        await a.send("<presence xmlns='jabber:client'><show>dnd</show></presence>")
        assert presences(b.take()) == []
        assert presences(a.take()) == [("alice@hub.test/a", "available", "alice@hub.test/a")]
        await b.send("<presence xmlns='jabber:client' type='unavailable'/>")
        assert presences(a.take()) == [("bob@hub.test/b", "unavailable", "alice@hub.test/a")]
        storage = kit.hub.ctx.storage.roster
        item = await storage.get("alice@hub.test", "bob@hub.test")
        assert item is not None
        assert item.subscription is Subscription.TO


async def test_mutual_subscription_probe_on_login_and_disconnect() -> None:
    async with running_hub() as kit:
        await kit.account("alice")
        await kit.account("bob")
        a = await kit.connect("alice", "a")
        b = await kit.connect("bob", "b")
        await subscribe_both(kit, a, b)
        assert ("alice@hub.test", "both", None, None) in await get_roster(b)
        a.take()
        # A second resource of Alice logs in: it gets Bob's presence (probe), Bob gets hers.
        a2 = await kit.connect("alice", "a2")
        got = presences(a2.take())
        assert ("bob@hub.test/b", "available", "alice@hub.test/a2") in got
        assert ("alice@hub.test/a", "available", "alice@hub.test/a2") in got
        assert ("alice@hub.test/a2", "available", "bob@hub.test/b") in presences(b.take())
        assert ("alice@hub.test/a2", "available", "alice@hub.test/a") in presences(a.take())
        # Dropping the connection broadcasts unavailable.
        await kit.disconnect(a2)
        assert presences(b.take()) == [("alice@hub.test/a2", "unavailable", "bob@hub.test/b")]


async def test_pending_request_is_redelivered_at_login_until_answered() -> None:
    async with running_hub() as kit:
        await kit.account("alice")
        await kit.account("bob")
        a = await kit.connect("alice", "a")
        await a.send("<presence xmlns='jabber:client' to='bob@hub.test' type='subscribe'/>")
        b = await kit.connect("bob", "b")
        assert ("alice@hub.test", "subscribe", "") in presences(b.take())
        await kit.disconnect(b)
        b = await kit.connect("bob", "b")
        assert ("alice@hub.test", "subscribe", "") in presences(b.take())
        await b.send("<presence xmlns='jabber:client' to='alice@hub.test' type='unsubscribed'/>")
        a_got = a.take()
        assert ("bob@hub.test", "unsubscribed", "alice@hub.test/a") in presences(a_got)
        await kit.disconnect(b)
        b = await kit.connect("bob", "b")
        assert all(t != "subscribe" for _, t, _ in presences(b.take()))
        item = await kit.hub.ctx.storage.roster.get("alice@hub.test", "bob@hub.test")
        assert item is not None
        assert (item.subscription, item.ask) == (Subscription.NONE, False)


async def test_unsubscribe_and_unsubscribed() -> None:
    async with running_hub() as kit:
        await kit.account("alice")
        await kit.account("bob")
        a = await kit.connect("alice", "a")
        b = await kit.connect("bob", "b")
        await subscribe_both(kit, a, b)
        await get_roster(a)
        await get_roster(b)
        a.take()
        b.take()
        await a.send("<presence xmlns='jabber:client' to='bob@hub.test' type='unsubscribe'/>")
        assert roster_pushes(a.take()) == [("bob@hub.test", "from", None)]
        got = b.take()
        assert roster_pushes(got) == [("alice@hub.test", "to", None)]
        assert ("bob@hub.test/b", "unavailable", "alice@hub.test/a") not in presences(got)
        # Alice also cancels Bob's subscription to her.
        await a.send("<presence xmlns='jabber:client' to='bob@hub.test' type='unsubscribed'/>")
        assert roster_pushes(a.take()) == [("bob@hub.test", "none", None)]
        got = b.take()
        assert roster_pushes(got) == [("alice@hub.test", "none", None)]
        assert ("alice@hub.test/a", "unavailable", "bob@hub.test/b") in presences(got)


async def test_roster_remove_cancels_both_directions() -> None:
    async with running_hub() as kit:
        await kit.account("alice")
        await kit.account("bob")
        a = await kit.connect("alice", "a")
        b = await kit.connect("bob", "b")
        await subscribe_both(kit, a, b)
        await get_roster(b)
        b.take()
        await a.send(
            "<iq xmlns='jabber:client' type='set' id='d'><query xmlns='jabber:iq:roster'>"
            "<item jid='bob@hub.test' subscription='remove'/></query></iq>"
        )
        assert roster_pushes(b.take()) == [
            ("alice@hub.test", "to", None),
            ("alice@hub.test", "none", None),
        ]
        assert await get_roster(b) == [("alice@hub.test", "none", None, None)]


async def test_subscribe_to_nonexistent_account_reveals_nothing() -> None:
    async with running_hub() as kit:
        await kit.account("alice")
        a = await kit.connect("alice", "a")
        a.take()
        await a.send("<presence xmlns='jabber:client' to='ghost@hub.test' type='subscribe'/>")
        assert [p for p in presences(a.take()) if p[1] != "available"] == []


async def test_directed_presence_and_its_unavailable_on_disconnect() -> None:
    async with running_hub() as kit:
        await kit.account("alice")
        await kit.account("carol")
        a = await kit.connect("alice", "a")
        c = await kit.connect("carol", "c")
        c.take()
        await a.send(
            "<presence xmlns='jabber:client' to='carol@hub.test/c'><status>hi</status></presence>"
        )
        (p,) = c.stanzas()
        assert isinstance(p, Presence)
        assert p.from_ == JID.parse("alice@hub.test/a")
        assert p.type is PresenceType.AVAILABLE
        await kit.disconnect(a)
        assert presences(c.take()) == [("alice@hub.test/a", "unavailable", "carol@hub.test/c")]


async def test_probe_answered_only_for_subscribers() -> None:
    async with running_hub() as kit:
        await kit.account("alice")
        await kit.account("bob")
        a = await kit.connect("alice", "a")
        await kit.connect("bob", "b")
        a.take()
        await a.send("<presence xmlns='jabber:client' to='bob@hub.test' type='probe'/>")
        assert presences(a.take()) == []


async def test_roster_name_and_group_limits_at_the_boundary() -> None:
    settings = HubSettings(max_roster_name_length=10, max_roster_groups=2)
    async with running_hub(settings) as kit:
        await kit.account("alice")
        a = await kit.connect("alice", "a")
        a.take()

        assert await roster_set(a, "<item jid='b@hub.test' name='0123456789'/>") == "ok"
        assert (
            await roster_set(a, "<item jid='b@hub.test' name='0123456789X'/>") == "not-acceptable"
        )
        assert (
            await roster_set(a, "<item jid='b@hub.test'><group>1</group><group>2</group></item>")
            == "ok"
        )
        assert (
            await roster_set(
                a, "<item jid='b@hub.test'><group>1</group><group>2</group><group>3</group></item>"
            )
            == "not-acceptable"
        )


async def test_blocking_a_contact_makes_the_user_appear_offline_to_it_only() -> None:
    """XEP-0191 §3.3: a blocked contact that saw the user's presence gets unavailable presence;
    someone blocked who never saw it learns nothing (not even that the user is online)."""
    async with running_hub() as kit:
        for name in ("alice", "bob", "carol"):
            await kit.account(name)
        alice = await kit.connect("alice", "a")
        bob = await kit.connect("bob", "b")
        carol = await kit.connect("carol", "c")
        await subscribe_both(kit, alice, bob)
        for c in (alice, bob, carol):
            c.take()
        await alice.send(
            "<iq xmlns='jabber:client' type='set' id='blk'><block xmlns='urn:xmpp:blocking'>"
            f"<item jid='bob@{DOMAIN}'/><item jid='carol@{DOMAIN}'/></block></iq>"
        )
        assert presences(bob.take()) == [(f"alice@{DOMAIN}/a", "unavailable", f"bob@{DOMAIN}/b")]
        assert carol.take() == []
        # Blocked: bob's later presence does not reach alice, nor hers him.
        alice.take()
        await bob.send("<presence xmlns='jabber:client'><show>away</show></presence>")
        assert presences(alice.take()) == []
