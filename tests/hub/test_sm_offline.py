"""Offline delivery with XEP-0198: stored messages are deleted only once acknowledged; what a
stream-management client did not acknowledge when its session ended goes to offline storage."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field

from interlink.hub.context import HubSettings
from interlink.hub.session import MarkSent
from interlink.storage.offline import SentMark
from interlink.xmpp.stanza import Message, Presence
from tests.hubkit import Client, FakePort, HubKit, running_hub, settle


def msg(to: str, body: str) -> str:
    return f"<message xmlns='jabber:client' to='{to}' type='chat'><body>{body}</body></message>"


@dataclass
class AckingPort(FakePort):
    """A stream-management client: acknowledges only when the test says so."""

    stored_writes: int = 0
    waiters: list[asyncio.Future[bool]] = field(default_factory=list)

    async def send_stored(self, xmls: Sequence[str], mark: MarkSent) -> None:
        await mark("stream-1", self.stored_writes + 1)
        for xml in xmls:
            self.stored_writes += 1
            self.write_xml(xml)

    async def acked(self) -> bool:
        waiter: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self.waiters.append(waiter)
        return await waiter

    def answer(self, ok: bool = True) -> None:
        waiters, self.waiters = self.waiters, []
        for waiter in waiters:
            waiter.set_result(ok)


async def connect_acking(kit: HubKit, local: str, resource: str) -> tuple[Client, AckingPort]:
    port = AckingPort()
    session = kit.hub.bind(port, local, resource)
    session.acks = port
    client = Client(kit.hub, session, port)
    # Not client.send: it waits for background work, and the drain waits for the test's ack.
    pending = kit.hub.route(session, Presence(None, session.jid, None, None, ()))
    if pending is not None:
        await pending
    await settle()
    return client, port


async def until_asked(port: AckingPort) -> None:
    """Storage runs in a thread: wait (bounded) until the drain asks for an ack."""
    for _ in range(500):
        if port.waiters:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the drain never asked for an ack")


async def until_count(kit: HubKit, expected: int) -> None:
    for _ in range(500):
        if await kit.hub.ctx.storage.offline.count("bob@hub.test") == expected:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never {expected} stored")


def bodies(client: Client) -> list[str | None]:
    return [s.body for s in client.stanzas() if isinstance(s, Message)]


async def test_a_batch_is_deleted_only_once_the_client_acknowledged_it() -> None:
    async with running_hub(HubSettings(offline_drain_batch=2)) as kit:
        await kit.account("alice")
        await kit.account("bob")
        a = await kit.connect("alice", "a")
        for i in range(3):
            await a.send(msg("bob@hub.test", f"m{i}"))
        offline = kit.hub.ctx.storage.offline
        b, port = await connect_acking(kit, "bob", "b")
        await until_asked(port)
        assert bodies(b) == ["m0", "m1"]
        assert await offline.count("bob@hub.test") == 3  # written, not acknowledged: kept
        port.answer()
        await until_asked(port)
        assert bodies(b) == ["m2"]
        assert await offline.count("bob@hub.test") == 1
        port.answer()
        await until_count(kit, 0)
        assert port.stored_writes == 3


async def test_a_session_lost_before_the_ack_gets_the_batch_again_next_time() -> None:
    async with running_hub() as kit:
        await kit.account("alice")
        await kit.account("bob")
        a = await kit.connect("alice", "a")
        await a.send(msg("bob@hub.test", "once"))
        b, port = await connect_acking(kit, "bob", "b")
        await until_asked(port)
        assert bodies(b) == ["once"]
        pending = kit.hub.session_ended(b.session, lambda: [])  # stored items are not re-stored
        port.answer(False)  # the stream ended: no ack
        assert pending is not None
        await pending
        await settle()
        assert await kit.hub.ctx.storage.offline.count("bob@hub.test") == 1
        b2, port2 = await connect_acking(kit, "bob", "b2")
        await until_asked(port2)
        assert bodies(b2) == ["once"]
        port2.answer()
        await until_count(kit, 0)


async def test_unacknowledged_messages_go_offline_before_anything_newer() -> None:
    async with running_hub() as kit:
        await kit.account("alice")
        await kit.account("bob")
        a = await kit.connect("alice", "a")
        b, _ = await connect_acking(kit, "bob", "b")
        await a.send(msg("bob@hub.test", "live"))
        assert bodies(b) == ["live"]
        a.take()
        presence_xml = "<presence xmlns='jabber:client' to='bob@hub.test/b'/>"
        unacked: list[tuple[str, SentMark | None]] = [
            (msg("bob@hub.test", "live"), None),
            (presence_xml, None),  # only messages are stored
        ]
        pending = kit.hub.session_ended(b.session, lambda: unacked)
        newer = asyncio.create_task(a.send(msg("bob@hub.test", "newer")))
        assert pending is not None
        await pending
        await newer
        assert await kit.hub.ctx.storage.offline.count("bob@hub.test") == 2
        b2 = await kit.connect("bob", "b2")
        await settle()
        assert bodies(b2) == ["live", "newer"]
