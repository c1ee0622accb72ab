"""Raw connections for hostile-load tests: idle sockets from a chosen loopback address, a bare
HTTPS GET. 127.0.0.0/8 is all loopback on Linux, so 127.0.0.2 is "another source"."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ssl
from typing import Any
from xml.etree.ElementTree import Element

from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Subprotocol

from interlink.xmpp.parser import ElementReceived, Framing, StreamParser
from tests.integration.kit import DOMAIN, TIMEOUT, Certs, RawClient

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
    """True once the server has closed the connection (EOF or reset) within ``timeout``,
    whatever it said before."""
    try:
        async with asyncio.timeout(timeout):
            while await reader.read(65536):
                pass
    except (ConnectionError, ssl.SSLError):
        return True
    except TimeoutError:
        return False
    return True


async def read_all(reader: asyncio.StreamReader, timeout: float = TIMEOUT) -> bytes:
    """Everything the server sends until it closes."""
    data = b""
    with contextlib.suppress(ConnectionError, ssl.SSLError):
        async with asyncio.timeout(timeout):
            while chunk := await reader.read(65536):
                data += chunk
    return data


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


async def starttls_login(port: int, certs: Certs, *, source: str = BYSTANDER) -> str:
    """Log alice in on the STARTTLS port from ``source``: the bound JID."""
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0)), TIMEOUT
    )
    raw = RawClient(reader, writer)
    try:
        await raw.open_stream()
        await raw.send(b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
        await raw.read_until("proceed")
        await writer.start_tls(certs.client_context(), server_hostname=DOMAIN)
        raw.restart()
        return await raw.plain_login("alice", "pw", f"s{source}")
    finally:
        await raw.close()


async def direct_tls_login(port: int, certs: Certs, *, source: str = BYSTANDER) -> str:
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
    raw = RawClient(reader, writer)
    try:
        return await raw.plain_login("alice", "pw", f"d{source}")
    finally:
        await raw.close()


FRAMING = "urn:ietf:params:xml:ns:xmpp-framing"
OPEN = f"<open xmlns='{FRAMING}' to='{DOMAIN}' version='1.0'/>"


async def ws_frames_until(ws: ClientConnection, local: str) -> Element:
    for _ in range(20):
        data = await asyncio.wait_for(ws.recv(), TIMEOUT)
        raw = data.encode() if isinstance(data, str) else data
        for ev in StreamParser(framing=Framing.WEBSOCKET).feed_frame(raw):
            if isinstance(ev, ElementReceived) and ev.element.tag.rsplit("}", 1)[-1] == local:
                return ev.element
    raise AssertionError(f"no <{local}/>")


def ws_connect(port: int, certs: Certs, *, source: str) -> Any:
    return connect(
        f"wss://127.0.0.1:{port}/xmpp-websocket",
        subprotocols=[Subprotocol("xmpp")],
        ssl=certs.client_context(),
        server_hostname=DOMAIN,
        local_addr=(source, 0),
        open_timeout=TIMEOUT,
        proxy=None,
    )


async def websocket_login(port: int, certs: Certs, *, source: str = BYSTANDER) -> str:
    async with ws_connect(port, certs, source=source) as ws:
        await ws.send(OPEN)
        await ws_frames_until(ws, "features")
        token = base64.b64encode(b"\0alice\0pw").decode()
        await ws.send(
            f"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{token}</auth>"
        )
        await ws_frames_until(ws, "success")
        await ws.send(OPEN)
        await ws_frames_until(ws, "features")
        await ws.send(
            "<iq xmlns='jabber:client' type='set' id='b'><bind "
            f"xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>w{source}</resource></bind></iq>"
        )
        bound = await ws_frames_until(ws, "iq")
        return bound[0][0].text or ""
