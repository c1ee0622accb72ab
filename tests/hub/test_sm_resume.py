"""XEP-0198 resumption in the hub: parked sessions by id, the window, expiry to offline storage."""

from __future__ import annotations

from interlink.hub.context import HubSettings
from interlink.hub.observers import HubObservers
from interlink.hub.session import Session
from interlink.hub.sm import Parked, ResumptionRegistry
from interlink.xmpp.jid import JID
from interlink.xmpp.stanza import Message
from interlink.xmpp.stream.sm import SmConfig, StreamManagement
from tests.hubkit import FakePort, running_hub, settle

ALICE = JID.parse("alice@hub.test/phone")


def msg(to: str, body: str) -> str:
    return f"<message xmlns='jabber:client' to='{to}' type='chat'><body>{body}</body></message>"


def parked(expires_at: float) -> Parked:
    return Parked(Session(ALICE, FakePort()), StreamManagement(SmConfig(), "id1"), expires_at)


def test_take_only_for_the_same_account_and_within_the_window() -> None:
    registry = ResumptionRegistry()
    registry.park("id1", parked(100.0))
    assert registry.take("id1", JID.parse("mallory@hub.test"), 10.0) is None
    assert registry.take("nope", ALICE.bare, 10.0) is None
    assert registry.take("id1", ALICE.bare, 100.0) is None  # the window has just passed
    assert len(registry) == 1
    assert registry.take("id1", ALICE.bare, 99.9) is not None
    assert len(registry) == 0


def test_expired_removes_exactly_the_due_ones() -> None:
    registry = ResumptionRegistry()
    registry.park("a", parked(10.0))
    registry.park("b", parked(20.0))
    assert [p.expires_at for p in registry.expired(9.9)] == []
    assert [p.expires_at for p in registry.expired(10.0)] == [10.0]
    assert len(registry) == 1


async def test_a_parked_session_collects_messages_then_expires_to_offline_storage() -> None:
    async with running_hub(HubSettings(sm_resume_window=60.0)) as kit:
        await kit.account("alice")
        await kit.account("bob")
        a = await kit.connect("alice", "a")
        b = await kit.connect("bob", "b")
        b.port.take()
        state = StreamManagement(SmConfig(), "rid")
        state.record_sent(msg("bob@hub.test", "unacked"))
        assert kit.hub.park(b.session, state)
        await a.send(msg("bob@hub.test", "while parked"))  # still available: routed to it
        assert [xml.count("while parked") for xml in state.queue] == [0, 1]
        assert b.port.take() == []  # nothing written to the dead connection
        kit.clock.now += 60.0
        kit.hub._expire_due()  # the timer's call
        await settle()
        await kit.hub.ctx.drain_tasks()
        assert len(kit.hub.resumable) == 0
        offline = kit.hub.ctx.storage.offline
        assert await offline.count("bob@hub.test") == 2
        # the count bob reports for the old stream settles the first (stanza 1) only
        await kit.hub.settle_received("bob", "hub.test", "rid", 1)
        b2 = await kit.connect("bob", "b2")
        await settle()
        bodies = [s.body for s in b2.stanzas() if isinstance(s, Message)]
        assert bodies == ["while parked"]


async def test_no_window_no_parking() -> None:
    async with running_hub(HubSettings(sm_resume_window=0.0)) as kit:
        await kit.account("bob")
        b = await kit.connect("bob", "b")
        assert not kit.hub.park(b.session, StreamManagement(SmConfig(), "rid"))
        assert not kit.hub.park(b.session, StreamManagement(SmConfig()))  # no id


async def test_past_the_queue_limit_a_parked_session_expires_at_once() -> None:
    async with running_hub() as kit:
        await kit.account("alice")
        await kit.account("bob")
        a = await kit.connect("alice", "a")
        b = await kit.connect("bob", "b")
        state = StreamManagement(SmConfig(max_unacked=2), "rid")
        assert kit.hub.park(b.session, state)
        await a.send(msg("bob@hub.test", "1"))
        await a.send(msg("bob@hub.test", "2"))
        assert len(kit.hub.resumable) == 1  # at the limit: still parked
        await a.send(msg("bob@hub.test", "3"))
        await kit.hub.ctx.drain_tasks()
        assert len(kit.hub.resumable) == 0
        assert await kit.hub.ctx.storage.offline.count("bob@hub.test") == 3


async def test_each_message_queued_for_parked_sessions_only_is_told_once() -> None:
    """``parked_queued`` (XEP-0357 pushes to a sleeping phone): once per message, however many
    parked sessions queue it, never while a session is connected, and also for the message
    that takes a parked queue past its limit (it goes to offline storage unpushed otherwise)."""
    told: list[str | None] = []
    observers = HubObservers(parked_queued=(lambda jid, m: told.append(m.body),))
    async with running_hub(HubSettings(sm_resume_window=60.0), observers=observers) as kit:
        await kit.account("alice")
        await kit.account("bob")
        a = await kit.connect("alice", "a")
        b1 = await kit.connect("bob", "b1")
        b2 = await kit.connect("bob", "b2")
        assert kit.hub.park(b1.session, StreamManagement(SmConfig(), "r1"))
        await a.send(msg("bob@hub.test", "b2 is connected"))
        assert told == []
        assert kit.hub.park(b2.session, StreamManagement(SmConfig(max_unacked=2), "r2"))
        await a.send(msg("bob@hub.test", "both parked"))
        await a.send(msg("bob@hub.test/b2", "to one of them"))
        assert told == ["both parked", "to one of them"]
        await a.send(msg("bob@hub.test", "past b2's limit"))
        await kit.hub.ctx.drain_tasks()
        assert told == ["both parked", "to one of them", "past b2's limit"]
