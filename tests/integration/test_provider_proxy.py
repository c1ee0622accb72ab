"""The provider proxy between real clients and a real hub over loopback: blind and terminating
modes, the hub counting the carried client address, and refusals of unregistered peers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trustme
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from interlink.app import HubServer
from interlink.net.proxied import fingerprint, public_key_bytes, sign
from interlink.net.proxy_v2 import ProxyHeader, encode
from interlink.provider.proxy import (
    Mode,
    ProviderProxy,
    ProxyConfig,
    ProxyLimits,
    Route,
    pacing_delay,
)
from interlink.xmpp.sasl import derive_credentials
from tests.integration.kit import DOMAIN, TIMEOUT, Certs, RawClient, Xmpp, running_hub
from tests.integration.taps import NotDecrypted, Tap, tls_plaintext

PROXY_ADDRESS = "127.0.0.3"  # where the proxy connects to the hub from
CLIENT_ADDRESS = "127.0.0.2"  # where the proxied raw client connects from
KEY = Ed25519PrivateKey.generate()


class OperatorView:
    """What the proxy's operator reads: the bytes a tap saw between the clients and the proxy,
    decrypted with the TLS secrets the proxy holds (its certificate's sessions, logged to
    ``keylog``; none in blind mode)."""

    def __init__(self, tap: Tap, keylog: Path) -> None:
        self.tap = tap
        self.keylog = keylog

    def all(self) -> bytes:
        secrets = self.keylog.read_text() if self.keylog.exists() else ""
        out = bytearray()
        for flow in self.tap.flows:
            try:
                up, down = tls_plaintext(flow, secrets)
            except NotDecrypted:
                up, down = bytes(flow.up), bytes(flow.down)
            out += up + down
        return bytes(out)


CAROL = f"carol@examplechat.interop.{DOMAIN}"  # a user of the provider whose proxy relays


def tls_port(server: HubServer) -> int:
    return int(server.ports["c2s-direct-tls"])


async def provider_user(server: HubServer, jid: str = CAROL) -> str:
    """A password account of a provider's user (what the proxy may carry)."""
    assert server.storage is not None
    await server.storage.accounts.create(jid, derive_credentials("pw", 4096), time.time())
    return jid


def registered(key: Ed25519PrivateKey = KEY) -> dict[str, object]:
    return {
        "registered": [
            {
                "provider": "examplechat",
                "addresses": [f"{PROXY_ADDRESS}/32"],
                "fingerprint": fingerprint(public_key_bytes(key)),
            }
        ]
    }


@asynccontextmanager
async def proxy_for(
    server: HubServer,
    tmp: Path,
    certs: Certs,
    mode: Mode = Mode.BLIND,
) -> AsyncIterator[tuple[int, OperatorView]]:
    """The proxy, behind a tap that keeps the clients' addresses; the port to connect to."""
    client_tls = hub_tls = None
    keylog = tmp / "proxy-keys.log"
    if mode is Mode.TERMINATING:
        own = trustme.CA()  # the proxy's own certificate, from another CA than the hub's
        own.cert_pem.write_to_path(str(tmp / "proxy-ca.pem"))
        client_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        own.issue_cert(DOMAIN, f"*.interop.{DOMAIN}").configure_cert(client_tls)
        client_tls.keylog_filename = str(keylog)
        hub_tls = ssl.create_default_context(cafile=str(certs.ca))
    proxy = ProviderProxy(
        ProxyConfig(
            [Route(DOMAIN, "127.0.0.1", tls_port(server))],
            KEY,
            mode,
            client_tls=client_tls,
            hub_tls=hub_tls,
            upstream_source=PROXY_ADDRESS,
        ),
    )
    _, port = await proxy.start("127.0.0.1", 0)
    tap = Tap("127.0.0.1", port, same_source=True)
    try:
        yield await tap.start(), OperatorView(tap, keylog)
    finally:
        await tap.close()
        await proxy.close()


async def test_blind_proxy_relays_a_login_and_sees_no_jid(tmp_path: Path) -> None:
    async with (
        running_hub(tmp_path, proxies=registered()) as (server, certs),
        proxy_for(server, tmp_path, certs) as (port, seen),
    ):
        carol = Xmpp(await provider_user(server), "pw", certs)
        try:
            await carol.login(port, direct_tls=True)  # through the proxy
            carol.send_chat(CAROL, "through a proxy that cannot read")  # to her own account
            msg = await carol.next_message()
            assert msg["body"] == "through a proxy that cannot read"
        finally:
            await carol.close()
        relayed = seen.all()
        assert len(relayed) > 1000
        for secret in (b"carol", b"bob@", b"through a proxy", b"<stream", b"jabber:client"):
            assert secret not in relayed


async def test_the_hub_counts_the_carried_client_address(tmp_path: Path) -> None:
    async with (
        running_hub(tmp_path, proxies=registered()) as (server, certs),
        proxy_for(server, tmp_path, certs) as (port, _),
    ):
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(
                "127.0.0.1",
                port,
                ssl=certs.client_context(),
                server_hostname=DOMAIN,
                local_addr=(CLIENT_ADDRESS, 0),
            ),
            TIMEOUT,
        )
        raw = RawClient(reader, writer)
        try:
            await raw.open_stream()
            assert server._gate is not None
            sources = server._gate.sources  # the c2s per-source budgets
            assert sources.held_by(CLIENT_ADDRESS) == 1
            assert sources.held_by(PROXY_ADDRESS) == 0
        finally:
            await raw.close()


async def test_terminating_proxy_relays_and_sees_the_stream(tmp_path: Path) -> None:
    async with (
        running_hub(tmp_path, proxies=registered()) as (server, certs),
        proxy_for(server, tmp_path, certs, Mode.TERMINATING) as (port, seen),
    ):
        carol = Xmpp(await provider_user(server), "pw", certs)
        carol.client.ca_certs = tmp_path / "proxy-ca.pem"  # the client trusts the proxy
        try:
            await carol.login(port, direct_tls=True)
            carol.send_chat(CAROL, "the proxy reads this stream")
            assert (await carol.next_message())["body"] == "the proxy reads this stream"
        finally:
            await carol.close()
        clear = seen.all()
        assert b"the proxy reads this stream" in clear  # the leak terminating mode documents
        assert f"{CAROL}/".encode() in clear


async def test_a_proxy_cannot_carry_a_gatekeeper_users_login(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """alice's right password, through examplechat's proxy: refused like a wrong one (the
    proxy cannot test passwords), and logged."""
    caplog.set_level(logging.WARNING, "interlink")
    async with (
        running_hub(tmp_path, proxies=registered()) as (server, certs),
        proxy_for(server, tmp_path, certs) as (port, _),
    ):
        alice = Xmpp(f"alice@{DOMAIN}", "pw", certs)
        try:
            with pytest.raises(AssertionError, match="login failed"):
                await alice.login(port, direct_tls=True)
        finally:
            await alice.close()
        alice = Xmpp(f"alice@{DOMAIN}", "pw", certs)
        try:
            await alice.login(tls_port(server), direct_tls=True)  # directly, she logs in
        finally:
            await alice.close()
    refused = [r for r in caplog.records if r.getMessage().startswith("proxied login refused")]
    assert refused
    assert getattr(refused[0], "provider", None) == "examplechat"


async def _closed_without_tls(port: int, source: str, data: bytes) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
    writer.write(data)
    await writer.drain()
    # closed with our bytes unread, the kernel resets: that is a close too
    with contextlib.suppress(ConnectionResetError):
        assert await asyncio.wait_for(reader.read(), TIMEOUT) == b""
    writer.close()


async def test_headers_from_unregistered_or_wrong_peers_close_the_connection(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "interlink.net")
    header = ProxyHeader(("192.0.2.1", 40000), ("127.0.0.1", 5223))
    async with running_hub(tmp_path, proxies=registered()) as (server, _certs):
        port = tls_port(server)
        # an unregistered peer, however well signed
        await _closed_without_tls(port, "127.0.0.4", encode(sign(header, KEY, _now())))
        # the registered address with another key
        other = Ed25519PrivateKey.generate()
        await _closed_without_tls(port, PROXY_ADDRESS, encode(sign(header, other, _now())))
        # the registered proxy, a malformed header (a TLV running past the end)
        good = encode(sign(header, KEY, _now()))
        await _closed_without_tls(port, PROXY_ADDRESS, good[:14] + b"\x00\x30" + good[16:64])
        # the registered proxy sending no header at all
        await _closed_without_tls(port, PROXY_ADDRESS, b"\x16\x03\x01\x00\x05hello")
        # over the size limit
        await _closed_without_tls(port, PROXY_ADDRESS, good[:14] + b"\xff\xff")
    reasons = [r.__dict__.get("reason", "") for r in caplog.records if r.msg == "connection closed"]
    assert any("which is not a registered proxy" in r for r in reasons)
    assert any("unregistered key" in r for r in reasons)
    assert any("malformed PROXY header" in r for r in reasons)
    assert any("sent no PROXY header" in r for r in reasons)
    assert any("exceeds the limit of 512" in r for r in reasons)


def _now() -> float:
    return time.time()


async def test_proxy_refusals_close_the_client_connection(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """No route for the server name, no ClientHello in time, over the connection cap."""
    caplog.set_level(logging.INFO, "interlink.provider.proxy")
    proxy = ProviderProxy(
        ProxyConfig(
            [Route("hub.test", "127.0.0.1", 9)],
            KEY,
            limits=ProxyLimits(hello_timeout=0.3, max_connections=1),
        )
    )
    _, port = await proxy.start("127.0.0.1", 0)
    try:
        # a ClientHello for another server
        ctx = ssl.create_default_context()
        with contextlib.suppress(ssl.SSLError, ConnectionError):
            _, writer = await asyncio.wait_for(
                asyncio.open_connection("127.0.0.1", port, ssl=ctx, server_hostname="other.test"),
                TIMEOUT,
            )
            writer.close()
        # a silent client holds the only place until its hello timeout; a second is refused
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        while proxy.connections < 1:
            await asyncio.sleep(0.01)
        second_reader, second = await asyncio.open_connection("127.0.0.1", port)
        assert await asyncio.wait_for(second_reader.read(), TIMEOUT) == b""
        second.close()
        assert await asyncio.wait_for(reader.read(), TIMEOUT) == b""  # the timeout closed it
        writer.close()
    finally:
        await proxy.close()
    logged = [(r.getMessage(), getattr(r, "reason", "")) for r in caplog.records]
    assert ("connection ended", "no route for 'other.test'") in logged
    assert ("connection refused: too many connections", "") in logged
    assert ("connection ended", "nothing to route by within 0.3 s") in logged


@pytest.mark.parametrize(
    ("sent", "elapsed", "delay"),
    [(1000, 1.0, 0.0), (1000, 0.5, 0.5), (1001, 1.0, 0.001), (0, 0.0, 0.0)],
)
def test_pacing_holds_a_client_to_its_byte_rate(sent: int, elapsed: float, delay: float) -> None:
    assert pacing_delay(sent, 1000, elapsed) == pytest.approx(delay)
