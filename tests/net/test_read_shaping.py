"""Read shaping in the asyncio shell: over its rate, a stream is not read until its budget refills."""

from __future__ import annotations

import asyncio
from pathlib import Path

from interlink.app import HubServer
from interlink.net.c2s import C2SProtocol
from interlink.net.driver import ConnectionGate, DriverLimits, StreamDriver
from interlink.xmpp.shaper import ReadRate
from interlink.xmpp.stream import ServerStream
from tests.hubkit import running_hub
from tests.integration.kit import DOMAIN, RawClient, Xmpp
from tests.integration.kit import running_hub as running_server
from tests.net.test_driver import FakeLink
from tests.streamkit import CONFIG, OPEN

SLOW = DriverLimits(pre_auth_read_rate=ReadRate(bytes_per_second=10_000, burst=len(OPEN) + 100))


async def test_a_read_over_the_budget_returns_a_pause_and_reading_goes_on_after_it() -> None:
    async with running_hub() as kit:
        loop = asyncio.get_running_loop()
        link = FakeLink()
        driver = StreamDriver(
            kit.hub, ServerStream(CONFIG, now=loop.time()), link, ConnectionGate(5), SLOW, "t"
        )
        assert driver.feed(OPEN) is None  # inside the burst
        assert driver.feed(b" " * 100) is None  # exactly the rest of it
        pause = driver.feed(b" " * 500)  # 500 bytes over: 50 ms at 10,000 bytes a second
        assert pause is not None
        await pause
        link.written.clear()
        pending = driver.feed(b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
        assert b"<proceed" in b"".join(link.written)
        assert pending is not None
        await pending  # the fake link cannot do TLS: the connection is closed cleanly
        assert link.closed


async def test_a_stream_that_ends_is_not_paused() -> None:
    async with running_hub() as kit:
        loop = asyncio.get_running_loop()
        driver = StreamDriver(
            kit.hub, ServerStream(CONFIG, now=loop.time()), FakeLink(), ConnectionGate(5), SLOW, "t"
        )
        # Far over the budget, but the stream ends on it: nothing to wait for.
        assert driver.feed(OPEN + b"<!-- no comments -->" + b" " * 5000) is None
        assert driver.stream.closed


async def test_a_pause_ends_when_the_connection_does() -> None:
    async with running_hub() as kit:
        loop = asyncio.get_running_loop()
        driver = StreamDriver(
            kit.hub, ServerStream(CONFIG, now=loop.time()), FakeLink(), ConnectionGate(5), SLOW, "t"
        )
        # Whitespace costs no parse budget, but 1 MB of it is 100 s of read budget.
        pause = driver.feed(OPEN + b" " * 1_000_000)
        assert pause is not None
        waiting = asyncio.create_task(pause)
        await asyncio.sleep(0.01)
        assert not waiting.done()
        driver.connection_lost()
        await asyncio.wait_for(waiting, 5)


def reading(server: HubServer) -> list[bool]:
    """Whether the hub reads from each of its open TCP connections."""
    gate = server._gate
    assert gate is not None
    out = []
    for driver in gate.open:
        link = driver.link
        if isinstance(link, C2SProtocol) and link.transport is not None:
            out.append(link.transport.is_reading())
    return out


async def test_a_fast_anonymous_writer_is_paused_while_others_log_in(tmp_path: Path) -> None:
    limits = {"pre_auth_read_bytes_per_second": 1024, "pre_auth_read_burst_bytes": 1024}
    async with running_server(tmp_path, limits=limits) as (server, certs):
        raw = await RawClient.open(server.ports["c2s-starttls"])
        try:
            await raw.open_stream()
            # Whitespace between elements costs no parse budget but does cost read budget:
            # 3 KiB against 1 KiB of burst leaves the hub not reading for about two seconds.
            await raw.send(b" " * 3072)
            await asyncio.sleep(0.2)
            assert reading(server) == [False]
            alice = Xmpp(f"alice@{DOMAIN}/a", "pw", certs)
            await alice.login(server.ports["c2s-direct-tls"], direct_tls=True)
            # Once the budget refills, the paused stream is served like any other.
            await raw.send(b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
            await raw.read_until("proceed")
            # After authentication the generous rate applies: 200 KiB in a burst, no pause.
            payload = "x" * 1000
            for i in range(200):
                alice.send_chat(f"alice@{DOMAIN}/a", f"{i} {payload}")
            await alice.ping_server()
            assert all(reading(server))
            await alice.close()
        finally:
            await raw.close()
