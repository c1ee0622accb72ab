"""Policy contract: interop settings and reach, phone numbers, conversations, block lists and
reports."""

from __future__ import annotations

from dataclasses import replace

import pytest

from interlink.errors import AccountNotFoundError, PhoneInUseError
from interlink.storage import Storage
from interlink.storage.policy import (
    AttachedMessage,
    Conversation,
    ConversationState,
    PhoneOwner,
    Reach,
    Report,
)
from interlink.xmpp.ext.interop import InboxMode, InteropSettings
from tests.storage.kit import DOMAIN, T0, account, credentials, jid

TP = "x7@examplechat.interop.hub.test"
PHONE = "+4915112345678"
SPAM = "urn:xmpp:reporting:spam"


async def test_reach_tells_a_missing_account_from_one_without_settings(storage: Storage) -> None:
    assert await storage.policy.reach(jid("ghost")) == Reach(False)
    alice = await account(storage, "alice")
    reach = await storage.policy.reach(alice)
    assert reach == Reach(True, InteropSettings())


async def test_settings_round_trip(storage: Storage) -> None:
    alice = await account(storage, "alice")
    chosen = InteropSettings(
        enabled=True,
        providers=frozenset({"otherchat", "examplechat"}),
        inbox=InboxMode.COMBINED,
        discoverable=True,
        share_activity=False,
    )
    await storage.policy.put_settings(alice, chosen, T0)
    reach = await storage.policy.reach(alice)
    assert reach == Reach(True, chosen)
    assert reach.settings.inbox is InboxMode.COMBINED
    every = InteropSettings(enabled=True)  # providers None: every approved provider
    await storage.policy.put_settings(alice, every, T0 + 1)
    assert (await storage.policy.reach(alice)).settings == every
    with pytest.raises(AccountNotFoundError):
        await storage.policy.put_settings(jid("ghost"), chosen, T0)


async def test_phone_numbers_belong_to_one_account(storage: Storage) -> None:
    alice = await account(storage, "alice")
    bob = await account(storage, "bob")
    assert await storage.policy.reach_by_phone(PHONE, DOMAIN) == (None, Reach(False))
    await storage.policy.set_phone(alice, PHONE)
    assert await storage.policy.phone_of(alice) == PHONE
    owner = await storage.policy.reach_by_phone(PHONE, DOMAIN)
    assert owner == PhoneOwner(alice, Reach(True, InteropSettings()))
    assert owner.jid == alice
    with pytest.raises(PhoneInUseError):
        await storage.policy.set_phone(bob, PHONE)
    assert await storage.policy.phone_of(bob) is None
    with pytest.raises(AccountNotFoundError):
        await storage.policy.set_phone(jid("ghost"), "+4915100000000")
    await storage.policy.set_phone(alice, "+4915199999999")  # a new number replaces the old
    assert await storage.policy.reach_by_phone(PHONE, DOMAIN) == (None, Reach(False))
    await storage.policy.set_phone(alice, None)
    assert await storage.policy.phone_of(alice) is None
    await storage.policy.set_phone(bob, PHONE)  # free again
    assert (await storage.policy.reach_by_phone(PHONE, DOMAIN))[0] == bob
    # A number is one account's per service: another service's user may have it too.
    other = "alice@other.test"
    await storage.accounts.create(other, credentials(), T0)
    await storage.policy.set_phone(other, PHONE)
    assert (await storage.policy.reach_by_phone(PHONE, "other.test"))[0] == other
    assert (await storage.policy.reach_by_phone(PHONE, DOMAIN))[0] == bob


async def test_conversations_by_peer_and_by_state(storage: Storage) -> None:
    alice = await account(storage, "alice")
    assert await storage.policy.conversation(alice, TP) is None
    await storage.policy.put_conversation(alice, TP, ConversationState.REQUEST, 1, T0)
    other = "y8@otherchat.interop.hub.test"
    await storage.policy.put_conversation(alice, other, ConversationState.REQUEST, 1, T0 + 1)
    await storage.policy.put_conversation(alice, TP, ConversationState.REQUEST, 2, T0 + 2)
    got = await storage.policy.conversation(alice, TP)
    assert got == Conversation(TP, ConversationState.REQUEST, 2, T0)  # created_at is kept
    requests = await storage.policy.conversations(alice, ConversationState.REQUEST)
    assert [c.peer for c in requests] == [TP, other]

    await storage.policy.put_conversation(alice, TP, ConversationState.ACCEPTED, 2, T0 + 3)
    accepted = await storage.policy.conversations(alice, ConversationState.ACCEPTED)
    assert accepted == [Conversation(TP, ConversationState.ACCEPTED, 2, T0)]
    assert accepted[0].state is ConversationState.ACCEPTED
    assert [
        c.peer for c in await storage.policy.conversations(alice, ConversationState.REQUEST)
    ] == [other]
    with pytest.raises(AccountNotFoundError):
        await storage.policy.put_conversation(jid("ghost"), TP, ConversationState.REQUEST, 1, T0)


async def test_block_lists(storage: Storage) -> None:
    alice = await account(storage, "alice")
    bob = await account(storage, "bob")
    assert await storage.policy.blocklists() == {}
    await storage.policy.block(alice, [TP, "spam.example"], T0)
    await storage.policy.block(alice, [TP], T0)  # already blocked
    await storage.policy.block(bob, [jid("carol/phone")], T0)
    assert await storage.policy.blocklists() == {
        alice: {TP, "spam.example"},
        bob: {jid("carol/phone")},
    }
    await storage.policy.unblock(alice, [TP, "never-blocked.example"])
    assert (await storage.policy.blocklists())[alice] == {"spam.example"}
    await storage.policy.unblock(bob, None)
    assert await storage.policy.blocklists() == {alice: {"spam.example"}}


def report(reporter: str, reported: str = TP, provider_id: str | None = "examplechat") -> Report:
    return Report(
        id=0,  # given by the repository
        reporter=reporter,
        reported=reported,
        provider_id=provider_id,
        reason=SPAM,
        text="unsolicited ads — «again»",
        messages=(AttachedMessage("m1", "2026-12-07T10:00:00Z", "buy now ✓"),),
        created_at=T0,
    )


async def test_reports_round_trip_newest_first(storage: Storage) -> None:
    alice = jid("alice")  # reports need no account: the reporter may be gone by the time it is read
    first = await storage.policy.add_report(report(alice))
    second = await storage.policy.add_report(report(alice, jid("bob"), None))
    assert second > first
    got = await storage.policy.report(first)
    assert got is not None
    assert got == Report(
        first,
        alice,
        TP,
        "examplechat",
        SPAM,
        "unsolicited ads — «again»",
        (AttachedMessage("m1", "2026-12-07T10:00:00Z", "buy now ✓"),),
        T0,
    )
    assert [r.id for r in await storage.policy.reports(10)] == [second, first]
    assert [r.id for r in await storage.policy.reports(1)] == [second]
    assert await storage.policy.report(second + 100) is None


async def test_a_report_keeps_the_room_whose_alias_it_named(storage: Storage) -> None:
    """Migration 0021: the account behind a room alias is ``reported``, the room beside it."""
    alice = jid("alice")
    room = "team@groups." + jid("x").partition("@")[2]
    named = await storage.policy.add_report(replace(report(TP, jid("bob"), None), room=room))
    plain = await storage.policy.add_report(report(alice))
    got = await storage.policy.report(named)
    assert got is not None
    assert (got.reported, got.room) == (jid("bob"), room)
    other = await storage.policy.report(plain)
    assert other is not None
    assert other.room is None


async def test_unforwarded_reports_until_forwarding_is_done(storage: Storage) -> None:
    alice = jid("alice")
    to_provider = await storage.policy.add_report(report(alice))
    await storage.policy.add_report(report(alice, jid("bob"), None))  # nothing to forward
    later = await storage.policy.add_report(report(alice))
    pending = await storage.policy.reports(10, unforwarded=True)
    assert [r.id for r in pending] == [to_provider, later]  # oldest first

    await storage.policy.report_forwarded(to_provider, None, "503 from provider", done=False)
    failed = await storage.policy.report(to_provider)
    assert failed is not None
    assert (failed.forwarded_at, failed.forward_error, failed.forward_done) == (
        None,
        "503 from provider",
        False,
    )
    assert [r.id for r in await storage.policy.reports(10, unforwarded=True)] == [
        to_provider,
        later,
    ]
    await storage.policy.report_forwarded(to_provider, T0 + 5, None, done=True)
    done = await storage.policy.report(to_provider)
    assert done is not None
    assert (done.forwarded_at, done.forward_error, done.forward_done) == (T0 + 5, None, True)
    assert [r.id for r in await storage.policy.reports(10, unforwarded=True)] == [later]


async def test_settings_and_block_lists_are_in_the_change_feed(storage: Storage) -> None:
    """Other processes (nodes) keep a user's settings and block list in memory: each write says
    so in the change feed, in its own transaction (a failed write leaves no entry)."""
    alice = await account(storage, "alice")
    start = await storage.changes.latest()
    await storage.policy.put_settings(alice, InteropSettings(enabled=True), T0)
    with pytest.raises(AccountNotFoundError):
        await storage.policy.put_settings(jid("ghost"), InteropSettings(enabled=True), T0)
    await storage.policy.block(alice, ["spam@tp.example"], T0)
    assert await storage.policy.blocklist(alice) == {"spam@tp.example"}
    await storage.policy.unblock(alice, None)
    assert await storage.policy.blocklist(alice) == set()
    feed = [(kind, subject) for _, kind, subject in await storage.changes.since(start, 10)]
    assert feed == [("settings", alice), ("blocklist", alice), ("blocklist", alice)]
