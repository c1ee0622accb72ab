"""Durable offline delivery: storage before acceptance, order, cap, drain, delay stamps."""

from __future__ import annotations

import asyncio

import pytest

from interlink.errors import StorageBusyError, StreamError
from interlink.hub.context import HubSettings
from interlink.hub.hub import Hub
from interlink.hub.offline import worth_storing
from interlink.hub.session import Session
from interlink.xmpp.stanza import Message, MessageType
from tests.hubkit import DOMAIN, FakePort, running_hub, settle

STANZA_ERR = "{urn:ietf:params:xml:ns:xmpp-stanzas}"


def msg(to: str, body: str, mtype: str = "chat") -> str:
    return f"<message xmlns='jabber:client' to='{to}' type='{mtype}'><body>{body}</body></message>"


async def test_offline_messages_are_stored_then_delivered_in_order_with_delay() -> None:
    async with running_hub() as kit:
        await kit.account("alice")
        await kit.account("bob")
        a = await kit.connect("alice", "a")
        a.take()
        for i in range(250):  # more than one drain batch
            await a.send(msg("bob@hub.test", f"m{i}"))
        assert a.take() == []
        offline = kit.hub.ctx.storage.offline
        assert await offline.count("bob@hub.test") == 250
        b = await kit.connect("bob", "b")
        await settle()
        got = [s for s in b.stanzas() if isinstance(s, Message)]
        assert [m.body for m in got] == [f"m{i}" for i in range(250)]
        delay = got[0].find("{urn:xmpp:delay}delay")
        assert delay is not None
        assert delay.get("from") == DOMAIN
        assert (delay.get("stamp") or "").endswith("Z")
        assert await offline.count("bob@hub.test") == 0


async def test_a_drain_the_database_was_too_busy_for_comes_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No database connection in time for the drain at login: the messages stay stored and
    the drain is tried again after ``offline_drain_retry`` while the account is online."""
    async with running_hub(HubSettings(offline_drain_retry=0.05)) as kit:
        await kit.account("alice")
        await kit.account("bob")
        a = await kit.connect("alice", "a")
        await a.send(msg("bob@hub.test", "hello"))
        offline = kit.hub.ctx.storage.offline
        fetch = offline.fetch
        busy = [True]

        async def fetch_once_busy(owner: str, limit: int) -> object:
            if busy.pop() if busy else False:
                raise StorageBusyError("no database connection free in time")
            return await fetch(owner, limit)

        monkeypatch.setattr(offline, "fetch", fetch_once_busy)
        b = await kit.connect("bob", "b")
        assert busy == []  # the drain at login found the database busy
        for _ in range(100):
            await asyncio.sleep(0.01)
            got = [s.body for s in b.stanzas() if isinstance(s, Message)]
            if got:
                break
        assert got == ["hello"]
        assert await offline.count("bob@hub.test") == 0


async def test_negative_priority_does_not_drain_but_raising_it_does() -> None:
    async with running_hub() as kit:
        await kit.account("alice")
        await kit.account("bob")
        a = await kit.connect("alice", "a")
        await a.send(msg("bob@hub.test", "hello"))
        b = await kit.connect("bob", "b", priority=-1)
        assert [s for s in b.stanzas() if isinstance(s, Message)] == []
        await b.send("<presence xmlns='jabber:client'><priority>1</priority></presence>")
        assert [s.body for s in b.stanzas() if isinstance(s, Message)] == ["hello"]


async def test_messages_during_a_drain_keep_their_order() -> None:
    async with running_hub(HubSettings(offline_drain_batch=3)) as kit:
        await kit.account("alice")
        await kit.account("bob")
        a = await kit.connect("alice", "a")
        for i in range(10):
            await a.send(msg("bob@hub.test", f"old{i}"))
        b = await kit.connect("bob", "b")
        # Live messages race the drain; they must come after every stored one.
        for i in range(5):
            await a.send(msg("bob@hub.test", f"new{i}"))
        await settle()
        await asyncio.sleep(0.05)
        bodies = [s.body for s in b.stanzas() if isinstance(s, Message)]
        assert bodies == [f"old{i}" for i in range(10)] + [f"new{i}" for i in range(5)]


async def test_queue_cap_at_the_boundary_gives_resource_constraint() -> None:
    async with running_hub(HubSettings(offline_max_per_account=5)) as kit:
        await kit.account("alice")
        await kit.account("bob")
        a = await kit.connect("alice", "a")
        a.take()
        for i in range(5):
            await a.send(msg("bob@hub.test", f"m{i}"))
        assert a.take() == []
        await a.send(msg("bob@hub.test", "one too many"))
        (err,) = a.stanzas()
        assert isinstance(err, Message)
        assert err.type is MessageType.ERROR
        error = err.find("{jabber:client}error")
        assert error is not None
        assert error.get("type") == "wait"
        assert error[0].tag == STANZA_ERR + "resource-constraint"
        assert "5" in (error[1].text or "")
        assert await kit.hub.ctx.storage.offline.count("bob@hub.test") == 5


async def test_queue_byte_budget_at_the_boundary_gives_resource_constraint() -> None:
    async with running_hub() as kit:
        await kit.account("alice")
        await kit.account("bob")
        a = await kit.connect("alice", "a")
        a.take()
        await a.send(msg("bob@hub.test", "m0"))
        one = await kit.hub.ctx.storage.offline.bytes_queued("bob@hub.test")
    # the same messages again, with a budget of exactly three of them
    async with running_hub(HubSettings(offline_max_bytes_per_account=3 * one)) as kit:
        await kit.account("alice")
        await kit.account("bob")
        a = await kit.connect("alice", "a")
        a.take()
        for i in range(3):
            await a.send(msg("bob@hub.test", f"m{i}"))
        assert a.take() == []
        await a.send(msg("bob@hub.test", "m3"))
        (err,) = a.stanzas()
        assert isinstance(err, Message)
        error = err.find("{jabber:client}error")
        assert error is not None
        assert error[0].tag == STANZA_ERR + "resource-constraint"
        assert f"{3 * one} bytes" in (error[1].text or "")
        assert await kit.hub.ctx.storage.offline.bytes_queued("bob@hub.test") == 3 * one


async def test_nonexistent_recipient_gets_service_unavailable_and_nothing_is_stored() -> None:
    async with running_hub() as kit:
        await kit.account("alice")
        a = await kit.connect("alice", "a")
        a.take()
        await a.send(msg("ghost@hub.test", "x"))
        (err,) = a.stanzas()
        assert isinstance(err, Message)
        assert err.type is MessageType.ERROR
        assert await kit.hub.ctx.storage.offline.count("ghost@hub.test") == 0


@pytest.mark.parametrize(
    ("payload", "mtype", "stored"),
    [
        ("<body>x</body>", "chat", True),
        ("<body>x</body>", "normal", True),
        ("<encrypted xmlns='urn:xmpp:omemo:2'/>", "chat", True),
        ("<active xmlns='http://jabber.org/protocol/chatstates'/>", "chat", False),
        ("<body>x</body><no-store xmlns='urn:xmpp:hints'/>", "chat", False),
        ("<body>x</body>", "headline", False),
        ("<body>x</body>", "groupchat", False),
        ("", "chat", False),
    ],
)
def test_worth_storing(payload: str, mtype: str, stored: bool) -> None:
    from interlink.xmpp.parser import ElementReceived, Framing, StreamParser
    from interlink.xmpp.stanza import parse_stanza

    (ev,) = StreamParser(framing=Framing.WEBSOCKET).feed_frame(
        f"<message xmlns='jabber:client' type='{mtype}'>{payload}</message>".encode()
    )
    assert isinstance(ev, ElementReceived)
    m = parse_stanza(ev.element)
    assert isinstance(m, Message)
    assert worth_storing(m) is stored


async def test_a_connection_lost_mid_drain_keeps_its_messages() -> None:
    async with running_hub() as kit:
        await kit.account("alice")
        await kit.account("bob")
        a = await kit.connect("alice", "a")
        for i in range(3):
            await a.send(msg("bob@hub.test", f"m{i}"))
        b = await kit.connect("bob", "b", available=False)
        b.session.available = True
        kit.hub.router.offline.start_drain(b.session.jid.bare)
        # The connection dies before the drain task ran: the session leaves the registry at once.
        pending = kit.hub.session_ended(b.session)
        if pending is not None:
            await pending
        await kit.hub.ctx.drain_tasks()
        assert [el for el in b.port.received if el.tag.endswith("message")] == []
        assert await kit.hub.ctx.storage.offline.count("bob@hub.test") == 3


class StallingPort(FakePort):
    """A reader that never drains its buffer."""

    hub: Hub | None = None
    session: Session | None = None

    async def wait_writable(self) -> None:
        await asyncio.Event().wait()

    def terminate(self, error: StreamError | None) -> None:
        super().terminate(error)
        assert self.hub is not None
        assert self.session is not None
        pending = self.hub.session_ended(self.session)
        if pending is not None:
            self.hub.ctx.spawn(pending, name="stalled session ended")


async def test_a_stalled_reader_is_dropped_and_the_drain_goes_on() -> None:
    settings = HubSettings(offline_drain_batch=2, write_stall_timeout=0.1)
    async with running_hub(settings) as kit:
        await kit.account("alice")
        await kit.account("bob")
        a = await kit.connect("alice", "a")
        for i in range(5):
            await a.send(msg("bob@hub.test", f"m{i}"))
        healthy = await kit.connect("bob", "phone", available=False)
        stalled_port = StallingPort()
        stalled_port.hub = kit.hub
        stalled = kit.hub.bind(stalled_port, "bob", "stuck")
        stalled_port.session = stalled
        stalled.available = True
        await healthy.send("<presence xmlns='jabber:client'/>")
        await asyncio.wait_for(kit.hub.ctx.drain_tasks(), 5)
        bodies = [s.body for s in healthy.stanzas() if isinstance(s, Message)]
        assert bodies == [f"m{i}" for i in range(5)]
        assert stalled_port.terminated is not None
        assert stalled_port.terminated.condition == "policy-violation"
        assert await kit.hub.ctx.storage.offline.count("bob@hub.test") == 0
