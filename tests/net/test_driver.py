"""The stream driver with a fake link: corked output, the outbound buffer limit, the gate."""

from __future__ import annotations

import asyncio
from xml.etree.ElementTree import Element

import pytest

from interlink.errors import StreamError, StreamErrorCondition
from interlink.hub.policy.limits import Rate
from interlink.net.budget import Budget, SourceBudgets, SourceLimits
from interlink.net.driver import ConnectionGate, DriverLimits, StreamDriver
from interlink.xmpp.stanza import parse_stanza
from interlink.xmpp.stream import ServerStream
from interlink.xmpp.stream.events import StanzaReceived
from tests.hubkit import DOMAIN, running_hub
from tests.streamkit import CONFIG, OPEN


class FakeLink:
    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.pending_bytes = 0
        self.closed = False

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def send_frames(self, frames: list[str]) -> None:
        self.written.extend(f.encode() for f in frames)

    def buffered(self) -> int:
        return self.pending_bytes

    def close(self) -> None:
        self.closed = True

    async def start_tls(self) -> None:
        raise ConnectionError("no TLS here")


def output(link: FakeLink) -> bytes:
    return b"".join(link.written)


async def test_outbound_buffer_limit_boundary() -> None:
    async with running_hub() as kit:
        limits = DriverLimits(max_outbound_bytes=1000)
        for buffered, closed in ((1000, False), (1001, True)):
            link = FakeLink()
            stream = ServerStream(CONFIG, now=asyncio.get_running_loop().time())
            driver = StreamDriver(kit.hub, stream, link, ConnectionGate(10), limits, "test")
            link.pending_bytes = buffered
            driver.feed(OPEN)
            await asyncio.sleep(0.01)
            assert stream.closed is closed, buffered
            assert link.closed is closed
            if closed:
                assert b"policy-violation" in output(link)
                assert b"does not read fast enough" in output(link)


async def test_gate_counts_until_bound_and_refuses_beyond_the_cap() -> None:
    async with running_hub() as kit:
        gate = ConnectionGate(2)
        links = [FakeLink() for _ in range(3)]
        drivers = [
            StreamDriver(
                kit.hub,
                ServerStream(CONFIG, now=asyncio.get_running_loop().time()),
                link,
                gate,
                DriverLimits(),
                "t",
            )
            for link in links
        ]
        await asyncio.sleep(0.01)
        assert gate.unauthenticated == 2
        assert drivers[2].stream.closed
        assert b"resource-constraint" in output(links[2])
        drivers[0].connection_lost()
        await asyncio.sleep(0.01)
        assert gate.unauthenticated == 1
        assert drivers[0] not in gate.open


async def test_gate_shutdown_ends_unbound_streams() -> None:
    async with running_hub() as kit:
        gate = ConnectionGate(5)
        link = FakeLink()
        driver = StreamDriver(
            kit.hub,
            ServerStream(CONFIG, now=asyncio.get_running_loop().time()),
            link,
            gate,
            DriverLimits(),
            "t",
        )
        driver.feed(OPEN)
        gate.shutdown(StreamError(StreamErrorCondition.SYSTEM_SHUTDOWN, "bye"))
        await asyncio.sleep(0.01)
        assert b"system-shutdown" in output(link)
        assert link.closed
        assert DOMAIN.encode() in output(link)


async def test_idle_streams_hibernate_and_wake() -> None:
    async with running_hub() as kit:
        gate = ConnectionGate(5)
        link = FakeLink()
        loop = asyncio.get_running_loop()
        driver = StreamDriver(
            kit.hub, ServerStream(CONFIG, now=loop.time()), link, gate, DriverLimits(), "t"
        )
        driver.feed(OPEN)
        assert gate.hibernate_idle(loop.time(), idle_for=60.0) == 0  # not idle long enough
        assert gate.hibernate_idle(loop.time() + 61.0, idle_for=60.0) == 1
        link.written.clear()
        pending = driver.feed(b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
        assert b"<proceed" in output(link)  # the woken parser understood the request
        assert pending is not None
        await pending  # the fake link cannot do TLS: the connection is closed cleanly
        assert link.closed


async def test_gate_per_source_budget_names_the_budget_and_counts_it() -> None:
    async with running_hub() as kit:
        sources = SourceBudgets(SourceLimits(per_ip=2, rate=Rate(0, 1.0)))
        gate = ConnectionGate(10, sources)
        loop = asyncio.get_running_loop()

        def connect(address: str) -> tuple[StreamDriver, FakeLink]:
            link = FakeLink()
            stream = ServerStream(CONFIG, now=loop.time())
            driver = StreamDriver(
                kit.hub, stream, link, gate, DriverLimits(), "t", source=sources.source(address)
            )
            return driver, link

        held = [connect("192.0.2.1") for _ in range(2)]
        refused, link = connect("192.0.2.1")
        await asyncio.sleep(0.01)
        assert refused.stream.closed
        assert b"policy-violation" in output(link)
        assert b"net.max_unauthenticated_per_ip" in output(link)
        bystander, _ = connect("192.0.2.2")
        assert not bystander.stream.closed
        assert gate.unauthenticated == 3
        assert gate.refused == {Budget.PER_IP: 1}
        held[0][0].connection_lost()
        again, _ = connect("192.0.2.1")
        assert not again.stream.closed
        assert sources.held_by("192.0.2.1") == 2


async def test_stanzas_read_after_the_connection_was_lost_are_not_routed() -> None:
    """A read can hold several stanzas; when the connection is lost while an earlier one is
    awaited (storage), the rest find no session: they are dropped (never acknowledged, so a
    client with stream management sends them again), not an internal error."""
    async with running_hub() as kit:
        link = FakeLink()
        loop = asyncio.get_running_loop()
        driver = StreamDriver(
            kit.hub,
            ServerStream(CONFIG, now=loop.time()),
            link,
            ConnectionGate(5),
            DriverLimits(),
            "t",
        )
        driver.feed(OPEN)
        driver.connection_lost()
        message = parse_stanza(Element("{jabber:client}message", to=f"a@{DOMAIN}"))
        assert driver._on_event(StanzaReceived(message, size=60, counted=True)) is None
        assert kit.hub.ctx.stats.stanzas_in["message"] == 0


async def test_input_is_marked_held_while_a_stanza_awaits_storage_and_released_after() -> None:
    """While the driver awaits storage for one of a client's stanzas, the transport reads
    nothing from it, acknowledgements included: the stream is told (XEP-0198's limit on
    unacknowledged stanzas allows for it), and told again when reading resumes, also when the
    wait failed."""
    async with running_hub() as kit:
        loop = asyncio.get_running_loop()
        stream = ServerStream(CONFIG, now=loop.time())
        driver = StreamDriver(kit.hub, stream, FakeLink(), ConnectionGate(5), DriverLimits(), "t")
        seen: list[bool] = []

        async def storage(fail: bool) -> None:
            seen.append(stream.input_held)
            await asyncio.sleep(0)
            if fail:
                raise OSError("disk gone")

        await driver._holding_input(storage(False))
        assert seen == [True]
        assert stream.input_held is False
        with pytest.raises(OSError, match="disk gone"):
            await driver._holding_input(storage(True))
        assert seen == [True, True]
        assert stream.input_held is False
