"""Hostile input over real sockets: each gets the right error while the hub keeps serving others."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from scramp import ScramClient

from interlink.app import HubServer
from tests.integration.kit import DOMAIN, Certs, RawClient, Xmpp, running_hub

HEADER_BODY = (
    "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' "
    f"to='{DOMAIN}' version='1.0'>"
).encode()
HEADER = b"<?xml version='1.0'?>" + HEADER_BODY
SASL = "urn:ietf:params:xml:ns:xmpp-sasl"

BILLION_LAUGHS = (
    b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    + b"".join(
        f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10 if i > 1 else "&lol;" * 10}">'.encode()
        for i in range(1, 10)
    )
    + b"]>"
    + HEADER_BODY
    + b"<message><body>&lol9;</body></message>"
)

PRE_AUTH_CASES = [
    ("billion laughs", BILLION_LAUGHS, "restricted-xml"),
    (
        "external entity",
        b'<?xml version="1.0"?><!DOCTYPE s [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
        + HEADER_BODY
        + b"<message>&xxe;</message>",
        "restricted-xml",
    ),
    (
        "internal DTD subset",
        b"<!DOCTYPE stream [<!ELEMENT stream ANY>]>" + HEADER_BODY,
        "restricted-xml",
    ),
    ("comment", HEADER + b"<!-- hello -->", "restricted-xml"),
    ("processing instruction", HEADER + b"<?evil data?>", "restricted-xml"),
    ("invalid UTF-8", HEADER + b"<message><body>\xc3\x28</body></message>", "not-well-formed"),
    ("NUL", HEADER + b"<message><body>\x00</body></message>", "not-well-formed"),
    (
        "300 KiB stanza",
        HEADER + b"<message><body>" + b"A" * (300 * 1024) + b"</body></message>",
        "policy-violation",
    ),
    ("10,000-deep nesting", HEADER + b"<message>" + b"<a>" * 10_000, "policy-violation"),
    (
        "stanza before authentication",
        HEADER + b"<message to='bob@hub.test'><body>x</body></message>",
        "not-authorized",
    ),
    ("wrong host", HEADER.replace(b"hub.test", b"evil.example"), "host-unknown"),
]


@asynccontextmanager
async def hub_with_bystanders(
    tmp: Path, **sections: dict[str, object]
) -> AsyncIterator[tuple[HubServer, Certs, Xmpp, Xmpp]]:
    async with running_hub(tmp, **sections) as (server, certs):  # type: ignore[arg-type]
        alice = Xmpp(f"alice@{DOMAIN}/a", "pw", certs)
        bob = Xmpp(f"bob@{DOMAIN}/b", "pw", certs)
        await alice.login(server.ports["c2s-starttls"])
        await bob.login(server.ports["c2s-direct-tls"], direct_tls=True)
        try:
            yield server, certs, alice, bob
        finally:
            await alice.close()
            await bob.close()


async def still_served(alice: Xmpp, bob: Xmpp, text: str) -> None:
    alice.send_chat(f"bob@{DOMAIN}", text)
    assert (await bob.next_message())["body"] == text


async def test_pre_authentication_attacks(tmp_path: Path) -> None:
    async with hub_with_bystanders(tmp_path) as (server, _certs, alice, bob):
        for name, payload, condition in PRE_AUTH_CASES:
            raw = await RawClient.open(server.ports["c2s-starttls"])
            try:
                await raw.send(payload)
                assert await raw.stream_error() == condition, name
            finally:
                await raw.close()
            await still_served(alice, bob, f"after {name}")


def plain_auth(user: str, password: str) -> bytes:
    token = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
    return f"<auth xmlns='{SASL}' mechanism='PLAIN'>{token}</auth>".encode()


async def scram_attempt(raw: RawClient, user: str, password: str) -> str:
    client = ScramClient(["SCRAM-SHA-256"], user, password)
    first = base64.b64encode(client.get_client_first().encode()).decode()
    await raw.send(f"<auth xmlns='{SASL}' mechanism='SCRAM-SHA-256'>{first}</auth>".encode())
    challenge = await raw.read_until("challenge")
    client.set_server_first(base64.b64decode(challenge.text or "").decode())
    final = base64.b64encode(client.get_client_final().encode()).decode()
    await raw.send(f"<response xmlns='{SASL}'>{final}</response>".encode())
    result = await raw.read_until("failure")
    return result[0].tag.rsplit("}", 1)[-1]


async def test_sasl_attacks(tmp_path: Path) -> None:
    async with hub_with_bystanders(tmp_path) as (server, certs, alice, bob):
        raw = await RawClient.open(server.ports["c2s-direct-tls"], certs.client_context())
        try:
            await raw.open_stream()
            await raw.send(f"<auth xmlns='{SASL}' mechanism='CRAM-MD5'/>".encode())
            assert (await raw.read_until("failure"))[0].tag.endswith("invalid-mechanism")
            assert await scram_attempt(raw, "alice", "wrong") == "not-authorized"
            # An unknown user gets the same answer as a wrong password; this third failure
            # also ends the stream (limits.max_auth_failures = 3).
            assert await scram_attempt(raw, "nosuchuser", "wrong") == "not-authorized"
            assert await raw.stream_error() == "policy-violation"
        finally:
            await raw.close()
        await still_served(alice, bob, "after SASL attacks")


async def test_plaintext_auth_is_refused_before_starttls(tmp_path: Path) -> None:
    async with hub_with_bystanders(tmp_path) as (server, _certs, alice, bob):
        raw = await RawClient.open(server.ports["c2s-starttls"])
        try:
            features = await raw.open_stream()
            assert [c.tag for c in features] == ["{urn:ietf:params:xml:ns:xmpp-tls}starttls"]
            await raw.send(plain_auth("alice", "pw"))
            assert await raw.stream_error() == "policy-violation"
        finally:
            await raw.close()
        await still_served(alice, bob, "after plaintext attempt")


async def test_spoofed_from_is_never_routed(tmp_path: Path) -> None:
    async with hub_with_bystanders(tmp_path) as (server, certs, alice, bob):
        raw = await RawClient.open(server.ports["c2s-direct-tls"], certs.client_context())
        try:
            assert await raw.plain_login("alice", "pw", "raw") == f"alice@{DOMAIN}/raw"
            await raw.send(
                f"<message from='bob@{DOMAIN}/b' to='bob@{DOMAIN}' type='chat'><body>spoof</body></message>".encode()
            )
            assert await raw.stream_error() == "invalid-from"
        finally:
            await raw.close()
        await still_served(alice, bob, "after spoof")
        assert bob.messages.empty()  # the spoofed message never arrived


async def test_bind_conflict_refused_with_stanza_error(tmp_path: Path) -> None:
    async with hub_with_bystanders(tmp_path, xmpp={"bind_conflict": "refuse"}) as (
        server,
        certs,
        alice,
        bob,
    ):
        raw = await RawClient.open(server.ports["c2s-direct-tls"], certs.client_context())
        try:
            assert await raw.plain_login("alice", "pw", "a") == "error:conflict"
            # the stream stays open: another resource can be bound
            await raw.send(
                b"<iq type='set' id='b2'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>other</resource></bind></iq>"
            )
            result = await raw.read_until("iq")
            assert result.get("type") == "result"
        finally:
            await raw.close()
        await still_served(alice, bob, "after bind conflict")


async def test_bind_conflict_default_gives_a_server_generated_resource(tmp_path: Path) -> None:
    async with hub_with_bystanders(tmp_path) as (server, certs, _alice, _bob):
        raw = await RawClient.open(server.ports["c2s-direct-tls"], certs.client_context())
        try:
            jid = await raw.plain_login("alice", "pw", "a")
            assert jid.startswith(f"alice@{DOMAIN}/a.")
        finally:
            await raw.close()


async def test_idle_unauthenticated_connection_times_out(tmp_path: Path) -> None:
    async with hub_with_bystanders(tmp_path, net={"auth_timeout": 0.5}) as (
        server,
        _certs,
        alice,
        bob,
    ):
        raw = await RawClient.open(server.ports["c2s-starttls"])
        try:
            await raw.open_stream()
            assert await raw.stream_error(timeout=5) == "connection-timeout"
        finally:
            await raw.close()
        silent = await RawClient.open(server.ports["c2s-starttls"])  # never even sends a header
        try:
            assert await silent.stream_error(timeout=5) == "connection-timeout"
        finally:
            await silent.close()
        await still_served(alice, bob, "after idle connections")


async def test_unauthenticated_connections_are_capped(tmp_path: Path) -> None:
    async with running_hub(tmp_path, net={"max_unauthenticated": 3}) as (server, certs):
        port = server.ports["c2s-starttls"]
        idle = [await RawClient.open(port) for _ in range(3)]
        try:
            for raw in idle:
                await raw.open_stream()
            extra = await RawClient.open(port)
            try:
                assert await extra.stream_error() == "resource-constraint"
            finally:
                await extra.close()
            await idle[0].close()
            await asyncio.sleep(0.2)
            again = await RawClient.open(server.ports["c2s-direct-tls"], certs.client_context())
            try:
                assert await again.plain_login("alice", "pw") == f"alice@{DOMAIN}/raw"
            finally:
                await again.close()
        finally:
            for raw in idle[1:]:
                await raw.close()


@pytest.mark.parametrize("limit", [2048])
async def test_configured_stanza_limit_at_the_boundary(tmp_path: Path, limit: int) -> None:
    async with running_hub(tmp_path, limits={"max_stanza_bytes": limit}) as (server, certs):
        raw = await RawClient.open(server.ports["c2s-direct-tls"], certs.client_context())
        try:
            await raw.plain_login("alice", "pw")
            start = f"<message to='bob@{DOMAIN}' type='chat' id='x'><body>".encode()
            end = b"</body>"
            fits = start + b"a" * (limit - len(start) - len(end)) + end + b"</message>"
            await raw.send(fits + b"<iq type='get' id='p'><ping xmlns='urn:xmpp:ping'/></iq>")
            assert (await raw.read_until("iq")).get("type") == "result"
            too_big = start + b"a" * (limit - len(start) - len(end) + 1) + end + b"</message>"
            await raw.send(too_big)
            assert await raw.stream_error() == "policy-violation"
        finally:
            await raw.close()


async def test_tls_handshake_timeout(tmp_path: Path) -> None:
    async with running_hub(tmp_path, net={"tls_handshake_timeout": 0.5}) as (server, _certs):
        reader, writer = await asyncio.open_connection("127.0.0.1", server.ports["c2s-direct-tls"])
        try:
            # Never start the TLS handshake: the hub hangs up after the timeout.
            assert await asyncio.wait_for(reader.read(), timeout=5) == b""
        finally:
            writer.close()
