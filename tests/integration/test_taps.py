"""The ledger's taps (tests/integration/taps.py): a relay that records what crossed the socket,
and the TLS 1.3 decryption that shows what a holder of the session secrets reads from it."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import pytest
import trustme

from tests.integration.taps import NotDecrypted, Tap, http_requests, only_tls, tls_plaintext


async def echo_upper(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    line = await reader.readline()
    writer.write(b"<greeting/>" + line.upper())
    await writer.drain()
    writer.close()


@pytest.mark.parametrize("starttls", [False, True], ids=["direct TLS", "STARTTLS"])
async def test_a_tap_records_tls_and_the_key_holder_reads_it(
    tmp_path: Path, starttls: bool
) -> None:
    ca = trustme.CA()
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("peer.example").configure_cert(server_tls)
    server_tls.keylog_filename = str(tmp_path / "keys.log")  # the server's operator's secrets
    client_tls = ssl.create_default_context()
    ca.configure_trust(client_tls)

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if starttls:
            assert await reader.readline() == b"<starttls/>\n"
            writer.write(b"<proceed/>")
            await writer.drain()
            await writer.start_tls(server_tls)
        await echo_upper(reader, writer)

    server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=None if starttls else server_tls)
    tap = Tap("127.0.0.1", server.sockets[0].getsockname()[1])
    port = await tap.start()
    try:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1",
            port,
            ssl=None if starttls else client_tls,
            server_hostname=None if starttls else "peer.example",
        )
        if starttls:
            writer.write(b"<starttls/>\n")
            assert await reader.readexactly(10) == b"<proceed/>"
            await writer.start_tls(client_tls, server_hostname="peer.example")
        writer.write(b"secret words\n")
        assert await reader.read() == b"<greeting/>SECRET WORDS\n"
        writer.close()
        await asyncio.sleep(0.1)
    finally:
        await tap.close()
        server.close()
    [flow] = tap.flows
    assert b"secret" not in tap.wire()  # the network sees records
    assert only_tls(bytes(flow.down)) != starttls  # (after the STARTTLS preamble)
    assert not only_tls(bytes(flow.down) + b"<")
    up, down = tls_plaintext(flow, (tmp_path / "keys.log").read_text())
    assert up.endswith(b"secret words\n")
    assert down.endswith(b"<greeting/>SECRET WORDS\n")
    assert up.startswith(b"<starttls/>") == starttls
    with pytest.raises(NotDecrypted):
        tls_plaintext(flow, "")  # without the secrets


def test_http_requests_are_split_by_their_length() -> None:
    stream = (
        b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nPOST /b?q=1 HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}"
    )
    assert [p for p, _ in http_requests(stream + stream)] == ["/a", "/b", "/a", "/b"]
    assert http_requests(stream)[1][1].endswith(b"{}")
    cut = http_requests(stream + b"POST /c HTTP/1.1\r\nContent-Le")
    assert [p for p, _ in cut] == ["/a", "/b", "/c"]
    with pytest.raises(ValueError, match=r"not an HTTP/1\.1 request"):
        http_requests(b"SSH-2.0\r\n\r\n")
