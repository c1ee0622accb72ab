"""Raw connections for hostile-load tests: idle sockets from a chosen loopback address, a bare
HTTPS GET. 127.0.0.0/8 is all loopback on Linux, so 127.0.0.2 is "another source"."""

from __future__ import annotations

import asyncio
import contextlib
import ssl

from tests.integration.kit import DOMAIN, TIMEOUT, Certs

ATTACKER = "127.0.0.1"
BYSTANDER = "127.0.0.2"


async def open_idle(
    port: int, count: int, *, source: str = ATTACKER, tls: ssl.SSLContext | None = None
) -> list[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    """``count`` connections that send nothing (with ``tls``: only the handshake)."""
    conns = []
    for _ in range(count):
        conns.append(
            await asyncio.wait_for(
                asyncio.open_connection(
                    "127.0.0.1",
                    port,
                    local_addr=(source, 0),
                    ssl=tls,
                    server_hostname=DOMAIN if tls else None,
                ),
                TIMEOUT,
            )
        )
    return conns


async def closed_by_peer(reader: asyncio.StreamReader, timeout: float = TIMEOUT) -> bool:
    """True once the server has closed the connection (EOF or reset) within ``timeout``."""
    try:
        return await asyncio.wait_for(reader.read(1024), timeout) == b""
    except (ConnectionError, ssl.SSLError):
        return True
    except TimeoutError:
        return False


async def close_all(conns: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]]) -> None:
    for _, writer in conns:
        writer.transport.abort()
    await asyncio.sleep(0)


async def https_get(port: int, certs: Certs, path: str, *, source: str = BYSTANDER) -> bytes:
    """One GET over a fresh connection from ``source``; the response's status line."""
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection(
            "127.0.0.1",
            port,
            local_addr=(source, 0),
            ssl=certs.client_context(),
            server_hostname=DOMAIN,
        ),
        TIMEOUT,
    )
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nhost: {DOMAIN}\r\nconnection: close\r\n\r\n".encode())
        return await asyncio.wait_for(reader.readline(), TIMEOUT)
    finally:
        writer.transport.abort()
        with contextlib.suppress(Exception):
            await writer.wait_closed()
