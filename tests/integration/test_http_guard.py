"""The HTTP port's budgets and timers, at their boundaries, over real loopback sockets."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.integration.kit import running_hub
from tests.integration.loadkit import (
    ATTACKER,
    BYSTANDER,
    close_all,
    closed_by_peer,
    https_get,
    open_idle,
    read_all,
)


async def test_per_source_budget_at_the_boundary(tmp_path: Path) -> None:
    async with running_hub(tmp_path, net={"http_max_connections_per_source": 3}) as (
        server,
        certs,
    ):
        port = server.ports["http"]
        held = await open_idle(port, 3, tls=certs.client_context())
        try:
            await asyncio.sleep(0.1)
            assert server.metrics is not None
            assert server.metrics.sources.http_guard.open == 3
            # the fourth from the same address is refused at once
            [(reader, writer)] = await open_idle(port, 1, tls=certs.client_context())
            assert (await read_all(reader)).startswith(b"HTTP/1.1 503")
            writer.close()
            # another address is served meanwhile
            assert (await https_get(port, certs, "/healthz")).startswith(b"HTTP/1.1 200")
            assert server.metrics.sources.http_guard.refused == {"per-ip": 1}
        finally:
            await close_all(held)
        await asyncio.sleep(0.1)
        assert (await https_get(port, certs, "/healthz", source=ATTACKER)).startswith(
            b"HTTP/1.1 200"
        )


async def test_global_cap_at_the_boundary(tmp_path: Path) -> None:
    async with running_hub(tmp_path, net={"http_max_connections": 2}) as (server, certs):
        port = server.ports["http"]
        held = await open_idle(port, 2, tls=certs.client_context())
        try:
            await asyncio.sleep(0.1)
            # from another address too: the global cap holds for every source
            [(reader, writer)] = await open_idle(
                port, 1, source=BYSTANDER, tls=certs.client_context()
            )
            refusal = await read_all(reader)
            assert refusal.startswith(b"HTTP/1.1 503")
            assert b"global" in refusal
            writer.close()
        finally:
            await close_all(held)
        await asyncio.sleep(0.1)
        assert (await https_get(port, certs, "/healthz")).startswith(b"HTTP/1.1 200")


async def test_allowlisted_sources_are_exempt_from_the_per_source_budget(tmp_path: Path) -> None:
    async with running_hub(
        tmp_path,
        net={"http_max_connections_per_source": 2, "source_allowlist": [f"{BYSTANDER}/32"]},
    ) as (server, certs):
        port = server.ports["http"]
        proxy = await open_idle(port, 5, source=BYSTANDER, tls=certs.client_context())
        try:
            await asyncio.sleep(0.1)
            assert server.metrics is not None
            assert server.metrics.sources.http_guard.open == 5
            assert (await https_get(port, certs, "/healthz")).startswith(b"HTTP/1.1 200")
        finally:
            await close_all(proxy)


async def test_connections_that_send_no_request_are_closed(tmp_path: Path) -> None:
    async with running_hub(tmp_path, net={"http_request_timeout": 0.5}) as (server, certs):
        port = server.ports["http"]
        [(reader, writer)] = await open_idle(port, 1, tls=certs.client_context())
        [(slow_reader, slow_writer)] = await open_idle(port, 1, tls=certs.client_context())
        try:
            # headers that start in time but never end are cut off too
            slow_writer.write(b"GET /healthz HTTP/1.1\r\nhost: x\r\n")
            assert await closed_by_peer(reader, timeout=10)
            assert await closed_by_peer(slow_reader, timeout=10)
            assert server.metrics is not None
            assert server.metrics.sources.http_guard.timed_out == 2
            assert server.metrics.sources.http_guard.open == 0
            # a request in time is answered
            assert (await https_get(port, certs, "/healthz")).startswith(b"HTTP/1.1 200")
        finally:
            writer.close()
            slow_writer.close()


async def test_tls_handshake_timeout_on_the_http_port(tmp_path: Path) -> None:
    async with running_hub(tmp_path, net={"tls_handshake_timeout": 0.5}) as (server, _certs):
        reader, writer = await asyncio.open_connection("127.0.0.1", server.ports["http"])
        try:
            assert await closed_by_peer(reader, timeout=10)  # never started the handshake
            await asyncio.sleep(0.1)
            assert server.metrics is not None
            assert server.metrics.sources.http_guard.open == 0
        finally:
            writer.close()


async def test_plain_http_refusal_is_a_503_naming_the_budget(tmp_path: Path) -> None:
    async with running_hub(
        tmp_path,
        net={"http_tls": False, "require_tls": False, "http_max_connections_per_source": 1},
    ) as (server, _certs):
        port = server.ports["http"]
        [held] = await open_idle(port, 1)
        try:
            await asyncio.sleep(0.1)
            [(reader, writer)] = await open_idle(port, 1)
            refusal = await read_all(reader)
            assert refusal.startswith(b"HTTP/1.1 503")
            assert b"per-ip" in refusal
            writer.close()
        finally:
            await close_all([held])
        assert server.metrics is not None
        scrape = (await server.metrics.render()).decode()
        assert 'interlink_connections_refused_total{budget="per-ip",listener="http"} 1.0' in scrape
