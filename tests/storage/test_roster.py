"""Roster contract: items, their subscription states and groups, and pending requests."""

from __future__ import annotations

from interlink.storage import Storage
from interlink.storage.roster import PendingSubscription, RosterItem, Subscription
from tests.storage.kit import T0, account, jid


async def test_items_round_trip_in_contact_order(storage: Storage) -> None:
    alice = await account(storage, "alice")
    carol = RosterItem(jid("carol"), "Carol", Subscription.BOTH, ask=False, groups=("b", "a"))
    bob = RosterItem(jid("bob"), None, Subscription.TO, ask=True)
    await storage.roster.put(alice, carol)
    await storage.roster.put(alice, bob)
    assert await storage.roster.items(alice) == [bob, carol]
    assert await storage.roster.count(alice) == 2
    got = await storage.roster.get(alice, jid("carol"))
    assert got == carol
    assert got is not None
    assert got.subscription is Subscription.BOTH
    assert await storage.roster.get(alice, jid("dave")) is None


async def test_put_replaces_and_remove_deletes(storage: Storage) -> None:
    alice = await account(storage, "alice")
    await storage.roster.put(alice, RosterItem(jid("bob"), "Bob"))
    await storage.roster.put(alice, RosterItem(jid("bob"), "Robert", Subscription.FROM))
    assert await storage.roster.items(alice) == [
        RosterItem(jid("bob"), "Robert", Subscription.FROM)
    ]
    await storage.roster.remove(alice, jid("bob"))
    await storage.roster.remove(alice, jid("nobody"))  # not there: nothing to do
    assert await storage.roster.count(alice) == 0


async def test_rosters_are_per_owner(storage: Storage) -> None:
    alice = await account(storage, "alice")
    bob = await account(storage, "bob")
    await storage.roster.put(alice, RosterItem(jid("carol")))
    assert await storage.roster.items(bob) == []
    assert await storage.roster.get(bob, jid("carol")) is None


async def test_pending_requests_are_kept_oldest_first_and_replaced(storage: Storage) -> None:
    alice = await account(storage, "alice")
    await storage.roster.add_pending(alice, jid("bob"), "<presence n='1'/>", T0 + 2)
    await storage.roster.add_pending(alice, jid("carol"), "<presence n='2'/>", T0 + 1)
    assert await storage.roster.pending(alice) == [
        PendingSubscription(jid("carol"), "<presence n='2'/>"),
        PendingSubscription(jid("bob"), "<presence n='1'/>"),
    ]
    await storage.roster.add_pending(alice, jid("carol"), "<presence n='3'/>", T0 + 3)
    assert await storage.roster.pending(alice) == [
        PendingSubscription(jid("bob"), "<presence n='1'/>"),
        PendingSubscription(jid("carol"), "<presence n='3'/>"),
    ]
    assert await storage.roster.remove_pending(alice, jid("bob"))
    assert not await storage.roster.remove_pending(alice, jid("bob"))
    assert [p.requester for p in await storage.roster.pending(alice)] == [jid("carol")]


async def test_pending_requests_cap_boundary(storage: Storage) -> None:
    alice = await account(storage, "alice")
    assert await storage.roster.add_pending(alice, jid("bob"), "<p n='1'/>", T0, cap=2)
    assert await storage.roster.add_pending(alice, jid("carol"), "<p n='2'/>", T0, cap=2)
    assert not await storage.roster.add_pending(alice, jid("dave"), "<p n='3'/>", T0, cap=2)
    assert await storage.roster.add_pending(alice, jid("bob"), "<p n='4'/>", T0 + 1, cap=2)
    pending = await storage.roster.pending(alice)
    assert [(p.requester, p.stanza) for p in pending] == [
        (jid("carol"), "<p n='2'/>"),
        (jid("bob"), "<p n='4'/>"),
    ]
    assert await storage.roster.add_pending(alice, jid("dave"), "<p n='5'/>", T0)  # no cap
