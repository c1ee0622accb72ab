"""Hostile load over loopback: one source holds hundreds of idle connections on each transport
while a bystander from another address (127.0.0.2) still logs in, and idle HTTPS connections
are closed. Bounded: a few hundred sockets, each test a few seconds."""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from interlink.app import HubServer
from interlink.net.budget import Budget
from tests.integration.kit import DOMAIN, Certs, RawClient, running_hub
from tests.integration.loadkit import (
    ATTACKER,
    close_all,
    closed_by_peer,
    direct_tls_login,
    https_get,
    open_idle,
    read_all,
    starttls_login,
    websocket_login,
)

IDLE = 300  # more than either per-source budget, more than the (lowered) global cap
PER_IP = 64
HTTP_PER_SOURCE = 128
# One source alone could fill the global pre-authentication pool (250 < 300) but for its budget;
# the rate is off so the per-address budgets are what holds it.
NET = {
    "max_unauthenticated": 250,
    "max_unauthenticated_per_ip": PER_IP,
    "connections_per_source_per_minute": 0,
    "http_max_connections_per_source": HTTP_PER_SOURCE,
}

Login = Callable[[int, Certs], Awaitable[str]]
TRANSPORTS: list[tuple[str, str, Login]] = [
    ("starttls", "c2s-starttls", starttls_login),
    ("direct-tls", "c2s-direct-tls", direct_tls_login),
    ("websocket", "http", websocket_login),
]


async def timed_login(login: Login, port: int, certs: Certs) -> float:
    started = time.perf_counter()
    assert (await login(port, certs)).startswith(f"alice@{DOMAIN}/")
    return time.perf_counter() - started


def gate_of(server: HubServer) -> tuple[int, dict[Budget, int]]:
    assert server.metrics is not None
    gate = server.metrics.sources.gate
    return gate.unauthenticated, dict(gate.refused)


@pytest.mark.parametrize(("name", "listener", "login"), TRANSPORTS, ids=[t[0] for t in TRANSPORTS])
async def test_idle_connections_from_one_source_leave_room_for_others(
    tmp_path: Path, name: str, listener: str, login: Login
) -> None:
    async with running_hub(tmp_path, net=NET) as (server, certs):
        port = server.ports[listener]
        # STARTTLS: plain TCP that says nothing; TLS ports: the handshake, then nothing
        tls = None if listener == "c2s-starttls" else certs.client_context()
        idle = await open_idle(port, IDLE, tls=tls)
        try:
            await asyncio.sleep(0.3)  # let the hub accept them all
            if listener == "http":
                assert server.metrics is not None
                guard = server.metrics.sources.http_guard
                assert guard.open == HTTP_PER_SOURCE
                assert guard.refused == {Budget.PER_IP: IDLE - HTTP_PER_SOURCE}
                assert (await https_get(port, certs, "/healthz")).startswith(b"HTTP/1.1 200")
            else:
                assert gate_of(server) == (PER_IP, {Budget.PER_IP: IDLE - PER_IP})
            # the acceptance of the issue: a bystander logs in within 1 s during the attack
            assert await timed_login(login, port, certs) < 1.0
        finally:
            await close_all(idle)
        await asyncio.sleep(0.2)
        assert gate_of(server)[0] == 0  # every count was given back
        if listener == "http":
            assert server.metrics is not None
            assert server.metrics.sources.http_guard.open == 0


async def test_the_refusal_names_the_budget(tmp_path: Path) -> None:
    async with running_hub(tmp_path, net={**NET, "max_unauthenticated_per_ip": 2}) as (
        server,
        _certs,
    ):
        port = server.ports["c2s-starttls"]
        idle = await open_idle(port, 2)
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            refused = RawClient(reader, writer)
            err = await refused.read_until("error")
            assert err[0].tag.endswith("policy-violation")
            text = err.findtext("{urn:ietf:params:xml:ns:xmpp-streams}text") or ""
            assert "net.max_unauthenticated_per_ip" in text
            await refused.close()
        finally:
            await close_all(idle)


async def test_the_connection_rate_of_a_source_at_the_boundary(tmp_path: Path) -> None:
    async with running_hub(tmp_path, net={"connections_per_source_per_minute": 3}) as (
        server,
        certs,
    ):
        port = server.ports["c2s-direct-tls"]
        idle = await open_idle(port, 4, tls=certs.client_context())
        try:
            refusal = await read_all(idle[3][0])  # refused after the handshake, in TLS
            assert b"net.connections_per_source_per_minute" in refusal
            assert gate_of(server) == (3, {Budget.RATE: 1})
            assert (await direct_tls_login(port, certs)).startswith(f"alice@{DOMAIN}/")
        finally:
            await close_all(idle)


async def test_websocket_streams_count_against_the_source_too(tmp_path: Path) -> None:
    from tests.integration.loadkit import OPEN, ws_connect, ws_frames_until

    async with running_hub(tmp_path, net={**NET, "max_unauthenticated_per_ip": 2}) as (
        server,
        certs,
    ):
        port = server.ports["http"]
        async with (
            ws_connect(port, certs, source=ATTACKER) as one,
            ws_connect(port, certs, source=ATTACKER) as two,
            ws_connect(port, certs, source=ATTACKER) as three,
        ):
            err = await ws_frames_until(three, "error")  # refused before it said anything
            assert err[0].tag.endswith("policy-violation")
            for ws in (one, two):
                await ws.send(OPEN)
                await ws_frames_until(ws, "features")
            assert (await websocket_login(port, certs)).startswith(f"alice@{DOMAIN}/")


async def test_idle_https_connections_are_closed_while_healthz_answers(tmp_path: Path) -> None:
    async with running_hub(
        tmp_path, net={"http_request_timeout": 1.0, "http_max_connections_per_source": 256}
    ) as (server, certs):
        port = server.ports["http"]
        idle = await open_idle(port, 200, tls=certs.client_context())
        try:
            assert (await https_get(port, certs, "/healthz")).startswith(b"HTTP/1.1 200")
            closed = await asyncio.gather(*(closed_by_peer(r, timeout=15) for r, _ in idle))
            assert all(closed)
            assert server.metrics is not None
            guard = server.metrics.sources.http_guard
            assert (guard.open, guard.timed_out) == (0, 200)
            assert (await https_get(port, certs, "/healthz")).startswith(b"HTTP/1.1 200")
        finally:
            await close_all(idle)


async def test_connections_that_never_handshake_are_capped_per_source(tmp_path: Path) -> None:
    per_source = 16
    async with running_hub(tmp_path, net={"max_tls_handshakes_per_source": per_source}) as (
        server,
        certs,
    ):
        tls_port, http_port = server.ports["c2s-direct-tls"], server.ports["http"]
        idle = await open_idle(tls_port, IDLE // 2) + await open_idle(http_port, IDLE // 2)
        try:
            await asyncio.sleep(0.3)
            assert server.metrics is not None
            handshakes = server.metrics.sources.handshakes
            # one budget for both TLS ports; the rest were closed at accept
            assert handshakes.pending == per_source
            assert handshakes.refused == {Budget.PER_IP: IDLE - per_source}
            closed = await asyncio.gather(*(closed_by_peer(r, timeout=0.5) for r, _ in idle))
            assert sum(closed) == IDLE - per_source
            assert await timed_login(direct_tls_login, tls_port, certs) < 1.0
            assert await timed_login(websocket_login, http_port, certs) < 1.0
        finally:
            await close_all(idle)
        await asyncio.sleep(0.2)
        assert server.metrics.sources.handshakes.pending == 0


def _silent_tls_peer(port: int, certs: Certs) -> bool:
    """Handshake, then never answer: read the raw TCP stream until the hub closes it."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        tls = certs.client_context().wrap_socket(raw, server_hostname=DOMAIN)
        with socket.socket(fileno=os.dup(tls.fileno())) as plain:  # below TLS: no close_notify
            plain.settimeout(10)
            try:
                while plain.recv(65536):
                    pass
            except TimeoutError:
                return False
            except ConnectionError:
                pass
        tls.detach()
    return True


async def test_a_peer_that_never_answers_close_notify_is_let_go(tmp_path: Path) -> None:
    """The hub's refusal ends in a TLS close; a peer that never answers it held the descriptor
    for the event loop's 30 s. net.tls_shutdown_timeout (0.5 s here) bounds that."""
    net = {"max_unauthenticated_per_ip": 1, "tls_shutdown_timeout": 0.5}
    async with running_hub(tmp_path, net=net) as (server, certs):
        port = server.ports["c2s-direct-tls"]
        held = await open_idle(port, 1, tls=certs.client_context())
        try:
            assert await asyncio.to_thread(_silent_tls_peer, port, certs)  # well within 10 s
        finally:
            await close_all(held)
