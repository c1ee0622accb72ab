"""The reference provider proxy (``interlink provider proxy``): the provider's users' clients
connect to it, and it relays each connection to the hub's direct-TLS port (XEP-0368).

Theory of operation. Every client connection gets exactly one upstream connection to the hub,
opened for it and closed with it: no pooling of users on one stream, no queue, nothing written to
disk. Upstream, the proxy first writes a PROXY v2 header (:mod:`interlink.net.proxy_v2`) naming
the client's address, signed with the proxy's Ed25519 key (:func:`interlink.net.proxied.sign`),
so the hub can count the client in its per-source budgets; the hub accepts it only because this
proxy's addresses and key fingerprint were registered at onboarding (``[proxies]``). Each header
carries a fresh random nonce, which the hub remembers: a header cannot be used twice. The hub
lets a relayed stream log in only to accounts of this proxy's provider.

Two modes:

* **blind** (default): the proxy never terminates TLS. It reads the client's first TLS flight
  only far enough to find the ClientHello's server name (:mod:`interlink.net.client_hello`),
  picks the route for that name, and from then on copies bytes both ways. The client's TLS session
  is end to end with the hub, whose key the proxy never holds. What the proxy can see: the
  client's IP address and port, the server name (the hub's domain, the same for every user),
  connection times, and the sizes and timing of TLS records. Not a JID, not a stanza.
* **terminating**: the proxy terminates the client's TLS with its own certificate, and opens TLS
  to the hub itself (verifying the hub's certificate). It reads the XML stream only to find the
  stream header's ``to`` (the route) and counts bytes against the provider's rate policy; it
  stores nothing and passes every byte on unchanged. What it *can* see is everything in the
  stream in clear: the SASL exchange (the user's token, hence the account), the user's JID and
  resource, contacts' JIDs, presence, roster, receipts, chat states, and the sizes and timing of
  each stanza. It cannot read OMEMO-encrypted content. This is the leakier choice, as in Meta's
  published design; prefer blind.

The proxy has no hook that shows what it relays: what it can see is established from
outside, by the metadata ledger's TCP taps on each of its sockets
(tests/integration/test_metadata_ledger.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import os
import secrets
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from interlink.net.client_hello import NotClientHello, parse
from interlink.net.proxied import (
    NONCE_BYTES,
    dump_private_key,
    fingerprint,
    load_private_key,
    public_key_bytes,
    sign,
)
from interlink.net.proxy_v2 import ProxyHeader, encode
from interlink.xmpp.parser import ParseFailed, StreamHeader, StreamParser, XmlLimits

log = logging.getLogger("interlink.provider.proxy")
CHUNK = 64 * 1024


class Mode(enum.StrEnum):
    BLIND = "blind"
    TERMINATING = "terminating"


class Leg(enum.StrEnum):
    """Where bytes the proxy handles came from and go to."""

    CLIENT_TO_HUB = "client->hub"
    HUB_TO_CLIENT = "hub->client"


@dataclass(frozen=True, slots=True)
class Route:
    """Connections for ``domain`` and its subdomains (the SNI, or in terminating mode the
    stream's ``to``) go to the hub's direct-TLS port at ``host:port``."""

    domain: str
    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> Route:
        """``domain=host:port``.

        Raises:
            ValueError: not of that form.
        """
        domain, sep, target = text.partition("=")
        host, colon, port = target.rpartition(":")
        if not sep or not colon or not domain or not host:
            raise ValueError(f"a route is domain=host:port, not {text!r}")
        return cls(domain.strip().lower(), host.strip("[]"), int(port))


@dataclass(frozen=True, slots=True)
class ProxyLimits:
    hello_timeout: float = 10.0  # from accept to a complete ClientHello / stream header
    connect_timeout: float = 10.0  # to open the upstream connection (and its TLS)
    max_connections: int = 10_000
    max_hello_bytes: int = 16 * 1024
    # Terminating mode's policy: bytes a second from one client (0 = unlimited).
    client_bytes_per_second: int = 0


@dataclass
class ProxyConfig:
    routes: Sequence[Route]
    key: Ed25519PrivateKey
    mode: Mode = Mode.BLIND
    client_tls: ssl.SSLContext | None = None  # terminating: the proxy's own certificate
    hub_tls: ssl.SSLContext | None = None  # terminating: how to verify the hub
    upstream_source: str | None = None  # the local address to connect to the hub from
    limits: ProxyLimits = field(default_factory=ProxyLimits)

    def __post_init__(self) -> None:
        if not self.routes:
            raise ValueError("the proxy needs at least one route")
        if self.mode is Mode.TERMINATING and (self.client_tls is None or self.hub_tls is None):
            raise ValueError("terminating mode needs the proxy's certificate and the hub's trust")


def pacing_delay(sent: int, rate: int, elapsed: float) -> float:
    """How long to pause reading after ``sent`` bytes in ``elapsed`` seconds so that a client
    stays at ``rate`` bytes a second on average (0 when it is within it)."""
    return max(0.0, sent / rate - elapsed)


class ProviderProxy:
    """Serves clients on a listening socket; ``connections`` is how many are open now."""

    def __init__(self, config: ProxyConfig) -> None:
        self.config = config
        self.connections = 0
        self._routes = {r.domain: r for r in config.routes}
        self._serial = 0
        self._server: asyncio.Server | None = None
        self._open: set[asyncio.StreamWriter] = set()

    def route_for(self, name: str) -> Route | None:
        """The route for a server name: its own, or its closest parent domain's (users behind
        the proxy have interop addresses under ``<provider>.interop.<hub domain>``)."""
        labels = name.lower().rstrip(".").split(".")
        for i in range(len(labels)):
            route = self._routes.get(".".join(labels[i:]))
            if route is not None:
                return route
        return None

    async def start(self, host: str, port: int) -> tuple[str, int]:
        """Listen; the bound address (``port`` 0 picks one)."""
        tls = self.config.client_tls if self.config.mode is Mode.TERMINATING else None
        self._server = await asyncio.start_server(
            self._serve,
            host,
            port,
            ssl=tls,
            ssl_handshake_timeout=None if tls is None else self.config.limits.hello_timeout,
        )
        bound = self._server.sockets[0].getsockname()
        return bound[0], bound[1]

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            for writer in list(self._open):
                writer.close()
            await self._server.wait_closed()

    async def serve_forever(self) -> None:
        assert self._server is not None
        await self._server.serve_forever()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.connections >= self.config.limits.max_connections:
            log.warning("connection refused: too many connections")
            writer.close()
            return
        self.connections += 1
        self._open.add(writer)
        self._serial += 1
        serial = self._serial
        try:
            await self._relay(reader, writer)
        except (OSError, ConnectionError, TimeoutError, NotClientHello, ValueError) as exc:
            log.info("connection ended", extra={"connection": serial, "reason": str(exc)})
        finally:
            self.connections -= 1
            self._open.discard(writer)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        limits = self.config.limits
        try:
            first, domain = await asyncio.wait_for(self._first_flight(reader), limits.hello_timeout)
        except TimeoutError:
            raise TimeoutError(f"nothing to route by within {limits.hello_timeout} s") from None
        route = self.route_for(domain or "")
        if route is None:
            raise ValueError(f"no route for {domain!r}")
        client = writer.get_extra_info("peername")
        local = writer.get_extra_info("sockname")
        header = sign(
            ProxyHeader((client[0], client[1]), (local[0], local[1])),
            self.config.key,
            time.time(),
            nonce=secrets.token_bytes(NONCE_BYTES),  # once per header: the hub refuses replays
        )
        up_reader, up_writer = await asyncio.wait_for(
            asyncio.open_connection(
                route.host,
                route.port,
                local_addr=(
                    None
                    if self.config.upstream_source is None
                    else (self.config.upstream_source, 0)
                ),
            ),
            limits.connect_timeout,
        )
        try:
            up_writer.write(encode(header))
            await up_writer.drain()
            if self.config.mode is Mode.TERMINATING:
                assert self.config.hub_tls is not None
                await asyncio.wait_for(
                    up_writer.start_tls(self.config.hub_tls, server_hostname=domain),
                    limits.connect_timeout,
                )
            up_writer.write(first)
            await asyncio.gather(
                self._pipe(Leg.CLIENT_TO_HUB, reader, up_writer),
                self._pipe(Leg.HUB_TO_CLIENT, up_reader, writer),
            )
        finally:
            up_writer.close()
            with contextlib.suppress(Exception):
                await up_writer.wait_closed()

    async def _first_flight(self, reader: asyncio.StreamReader) -> tuple[bytes, str | None]:
        """The bytes read until the route is known, and the route's domain."""
        limits = self.config.limits
        data = b""
        parser = (
            StreamParser(XmlLimits(max_stanza_bytes=limits.max_hello_bytes))
            if self.config.mode is Mode.TERMINATING
            else None
        )
        while True:
            chunk = await reader.read(CHUNK)
            if not chunk:
                raise ConnectionError("client closed before naming a server")
            data += chunk
            if parser is None:
                hello = parse(data, limits.max_hello_bytes)
                if hello is not None:
                    return data, hello.server_name
                continue
            for event in parser.feed(chunk):
                if isinstance(event, StreamHeader):
                    parser.release()
                    return data, event.attrs.get("to", "").lower() or None
                if isinstance(event, ParseFailed):
                    raise ValueError(f"not an XMPP stream: {event.error}")
            if len(data) > limits.max_hello_bytes:
                raise ValueError("no stream header within the limit")

    async def _pipe(
        self,
        leg: Leg,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        rate = self.config.limits.client_bytes_per_second
        metered = self.config.mode is Mode.TERMINATING and leg is Leg.CLIENT_TO_HUB and rate > 0
        started, sent = time.monotonic(), 0
        try:
            while data := await reader.read(CHUNK):
                writer.write(data)
                await writer.drain()
                if metered:  # the provider's policy: hold the client to its byte rate
                    sent += len(data)
                    ahead = pacing_delay(sent, rate, time.monotonic() - started)
                    if ahead > 0:
                        await asyncio.sleep(ahead)
        finally:
            if writer.can_write_eof():
                with contextlib.suppress(OSError):
                    writer.write_eof()
            else:
                writer.close()


def load_or_create_key(path: Path) -> Ed25519PrivateKey:
    """The proxy's signing key from ``path``, created (mode 0600) when the file is absent.

    Raises:
        ValueError: the file holds something else than a key.
    """
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(dump_private_key(Ed25519PrivateKey.generate()) + "\n")
    return load_private_key(path.read_text())


def key_fingerprint(key: Ed25519PrivateKey) -> str:
    """What the hub's operator registers (``[[proxies.registered]] fingerprint``)."""
    return fingerprint(public_key_bytes(key))


async def run_proxy(config: ProxyConfig, host: str, port: int) -> None:
    """Serve until cancelled."""
    proxy = ProviderProxy(config)
    bound = await proxy.start(host, port)
    log.info(
        "provider proxy listening",
        extra={"address": f"{bound[0]}:{bound[1]}", "mode": str(config.mode)},
    )
    try:
        await proxy.serve_forever()
    finally:
        await proxy.close()
