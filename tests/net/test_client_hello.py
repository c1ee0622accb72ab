"""Reading the server name from a real ClientHello (made by Python's own TLS), in any split."""

from __future__ import annotations

import ssl

import pytest

from interlink.net.client_hello import ClientHello, NotClientHello, parse


def client_hello(server_name: str | None) -> bytes:
    ctx = ssl.create_default_context()
    ctx.check_hostname = server_name is not None
    if server_name is None:
        ctx.verify_mode = ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(incoming, outgoing, server_hostname=server_name)
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    return outgoing.read()


def test_server_name_of_a_real_client_hello() -> None:
    assert parse(client_hello("Hub.Example")) == ClientHello("hub.example")


def test_no_server_name() -> None:
    assert parse(client_hello(None)) == ClientHello(None)


def test_every_split_needs_more_until_complete() -> None:
    data = client_hello("hub.example")
    for cut in range(len(data)):
        assert parse(data[:cut]) is None
    assert parse(data + b"more") == ClientHello("hub.example")


def test_not_a_client_hello() -> None:
    with pytest.raises(NotClientHello, match="record type 60"):
        parse(b"<?xml version='1.0'?>")
    with pytest.raises(NotClientHello, match="record type 13"):
        parse(b"\r\n\r\n\x00\r\nQUIT\n!")


def test_size_limit() -> None:
    data = client_hello("hub.example")
    with pytest.raises(NotClientHello, match="exceeds"):
        parse(data, max_bytes=100)
