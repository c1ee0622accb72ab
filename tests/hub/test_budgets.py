"""Per-account budgets of what users store through rosters and presence: the roster's bytes,
subscription requests (the roster cap, pending requests) and remembered directed presence."""

from __future__ import annotations

from interlink.hub.context import HubSettings
from interlink.storage.roster import RosterItem
from interlink.xmpp.jid import JID
from tests.hub.test_presence_roster import roster_set
from tests.hubkit import running_hub

STANZAS = "jabber:client"
ERR = "urn:ietf:params:xml:ns:xmpp-stanzas"


def test_item_size_is_utf8_bytes_of_contact_name_and_groups() -> None:
    assert RosterItem("b@hub.test", "é", groups=("ab", "c")).size == 10 + 2 + 3


async def test_roster_byte_budget_at_the_boundary() -> None:
    # b@hub.test (10) + name (5) = 15 bytes; c@hub.test (10) + group (5) = 15 bytes
    async with running_hub(HubSettings(max_roster_bytes=30)) as kit:
        await kit.account("alice")
        a = await kit.connect("alice", "a")
        a.take()
        assert await roster_set(a, "<item jid='b@hub.test' name='bbbbb'/>") == "ok"
        assert await roster_set(a, "<item jid='c@hub.test'><group>ccccc</group></item>") == "ok"
        # exactly at 30: one byte more is refused, and nothing changes
        assert await roster_set(a, "<item jid='b@hub.test' name='bbbbbb'/>") == "not-allowed"
        assert await roster_set(a, "<item jid='d@hub.test'/>") == "not-allowed"
        items = await kit.hub.ctx.storage.roster.items("alice@hub.test")
        assert sum(i.size for i in items) == 30
        # shrinking is always allowed, and makes room; so does removing
        assert await roster_set(a, "<item jid='b@hub.test'/>") == "ok"
        assert await roster_set(a, "<item jid='b@hub.test' name='bbbbb'/>") == "ok"
        assert await roster_set(a, "<item jid='c@hub.test' subscription='remove'/>") == "ok"
        assert await roster_set(a, "<item jid='d@hub.test' name='ddddd'/>") == "ok"
        assert await roster_set(a, "<item jid='e@hub.test'/>") == "not-allowed"


async def test_subscription_requests_obey_the_roster_cap() -> None:
    """``<presence type='subscribe'/>`` adds a roster item: at the cap it is refused, whether
    or not the contact exists (it used to add items without limit)."""
    async with running_hub(HubSettings(max_roster_items=2)) as kit:
        await kit.account("alice")
        for local in ("u0", "u1", "u2"):
            await kit.account(local)
        a = await kit.connect("alice", "a")
        a.take()
        for to in ("u0@hub.test", "nobody@hub.test", "u1@hub.test", "ghost@hub.test"):
            await a.send(f"<presence xmlns='jabber:client' to='{to}' type='subscribe'/>")
        assert await kit.hub.ctx.storage.roster.count("alice@hub.test") == 2
        errors = [el for el in a.take() if el.get("type") == "error"]
        assert [e.get("from") for e in errors] == ["u1@hub.test", "ghost@hub.test"]
        assert all(e.find(f"{{{STANZAS}}}error/{{{ERR}}}not-allowed") is not None for e in errors)
        # an item that exists is not a new one: asking again is fine
        await a.send("<presence xmlns='jabber:client' to='u0@hub.test' type='subscribe'/>")
        assert [el for el in a.take() if el.get("type") == "error"] == []


async def test_pending_requests_are_capped_per_recipient_and_kept_small() -> None:
    settings = HubSettings(max_pending_subscriptions=2, max_pending_subscription_bytes=512)
    async with running_hub(settings) as kit:
        await kit.account("bob")
        senders = []
        for local in ("s0", "s1", "s2"):
            await kit.account(local)
            senders.append(await kit.connect(local, "r"))
        big = "<status>" + "s" * 2000 + "</status>"
        for s in senders:
            await s.send(
                f"<presence xmlns='jabber:client' to='bob@hub.test' type='subscribe'>{big}</presence>"
            )
        pending = await kit.hub.ctx.storage.roster.pending("bob@hub.test")
        assert [p.requester for p in pending] == ["s0@hub.test", "s1@hub.test"]
        assert all(len(p.stanza.encode()) <= 512 for p in pending)
        for s in senders:  # nobody is told: that would tell an existing account apart
            assert [el for el in s.take() if el.get("type") == "error"] == []
        # a requester already pending may ask again (replacing its request)
        await senders[0].send(
            "<presence xmlns='jabber:client' to='bob@hub.test' type='subscribe'/>"
        )
        assert len(await kit.hub.ctx.storage.roster.pending("bob@hub.test")) == 2


async def test_directed_presence_is_remembered_for_at_most_the_cap() -> None:
    async with running_hub(HubSettings(max_directed_presences=2)) as kit:
        await kit.account("alice")
        a = await kit.connect("alice", "a")
        a.take()
        for to in ("x@hub.test", "y@hub.test", "x@hub.test", "z@hub.test"):
            await a.send(f"<presence xmlns='jabber:client' to='{to}'/>")
        errors = [el for el in a.take() if el.get("type") == "error"]
        assert [e.get("from") for e in errors] == ["z@hub.test"]
        assert errors[0].find(f"{{{STANZAS}}}error/{{{ERR}}}resource-constraint") is not None
        assert a.session.directed == {JID.parse("x@hub.test"), JID.parse("y@hub.test")}
        # unavailable to one of them frees its place
        await a.send("<presence xmlns='jabber:client' to='x@hub.test' type='unavailable'/>")
        await a.send("<presence xmlns='jabber:client' to='z@hub.test'/>")
        assert [el for el in a.take() if el.get("type") == "error"] == []
