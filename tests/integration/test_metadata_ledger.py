"""The metadata ledger (issue 16): one full conversation per connection model, every byte that
crosses a boundary captured by a tap the test owns, and per observer the exact set of fields it
learns.

In the provider-kit models a gatekeeper user (a phone number) and a third-party user of the
provider kit go through: discovery by phone number, a message request, acceptance, text both
ways, delivery receipts and a displayed marker, typing notifications, a voice note stored on the
provider's media host and fetched by the gatekeeper user through the hub's media proxy, a push
while the third-party user is offline, and an abuse report. In the federation model a user of a
stock Prosody (a provider's own server, tests/integration/prosodykit.py) and a gatekeeper user of
the SDK go through what federation supports of the same (see :func:`federated`).

Every boundary is a :class:`~tests.integration.taps.Tap`, a loopback relay the code under test
is pointed at instead of its peer, recording the bytes that actually crossed the socket:

* ``client↔hub wire`` / ``client↔proxy wire`` / ``proxy↔hub wire`` — a network observer on the
  third-party user's path (plug-and-play: to the hub; proxy models: on each side of the proxy);
* ``provider proxy`` — the proxy's operator: the bytes of both of the proxy's sockets, decrypted
  with every TLS secret the proxy holds (its own certificate's sessions and its sessions to the
  hub in terminating mode, logged through ``SSLContext.keylog_filename``; none in blind mode);
* ``provider HTTP`` / ``push receiver`` — the hub's requests to the provider's callback URL and
  JWKS (the provider receives them in clear: it terminates their TLS), split by path;
* ``provider media host`` — the media proxy's fetches from the provider's media host;
* ``s2s wire`` — a network observer between the hub and the provider's server;
* ``provider's server`` — the provider's XMPP server: the s2s streams as it reads them, i.e.
  the tapped bytes decrypted with the TLS session secrets (the hub's side logs them through
  ``SSLKEYLOGFILE``, which :func:`ssl.create_default_context` honours; the two ends of a TLS
  session share them). Not a hook in the hub: the bytes are the tap's;
* ``hub logs`` — every record the hub logs at the default level (INFO), through the same
  redaction filter ``interlink serve`` installs.

Fields are found by searching each observer's bytes for the conversation's known values (the
phone number, both JIDs, the texts…). :data:`EXPECTED` is the exact set per observer and model;
an extra field anywhere fails the test, and :func:`test_the_ledger_catches_a_phone_number_in_a_push`
and :func:`test_the_ledger_catches_a_phone_number_in_an_s2s_stanza` show it does. The table in
docs/metadata.md is rendered from the results: the test fails (and rewrites the page) when the
committed page differs.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import logging
import os
import re
import socket
import ssl
import sys
import time
import wave
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import slixmpp
import trustme
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from interlink.app import HubServer
from interlink.client import FileMessage, InterlinkClient, KitUploader, TextMessage
from interlink.client.enlist import discover
from interlink.client.errors import ClientError
from interlink.client.media import parse_aesgcm
from interlink.config import Settings
from interlink.logs import JsonFormatter
from interlink.media import MediaLimits
from interlink.net.proxied import fingerprint, public_key_bytes
from interlink.provider.proxy import Mode, ProviderProxy, ProxyConfig, Route
from interlink.settings_map import log_redactor
from interlink.storage.providers import Provider, ProviderMode, ProviderStatus
from interlink.xmpp.sasl import derive_credentials
from tests.integration import test_omemo_interop
from tests.integration.kit import (
    DOMAIN,
    TIMEOUT,
    Certs,
    KitSetup,
    Xmpp,
    hub_with_kit,
    settings_for,
)
from tests.integration.prosodykit import federation_certs, loopback_dns, running_prosody
from tests.integration.taps import (
    Flow,
    NotDecrypted,
    Tap,
    http_requests,
    only_tls,
    tls_flow,
    tls_plaintext,
)
from tests.integration.test_omemo_interop import MemoryStorage, PeerOmemo
from tests.integration.test_s2s_omemo import open_nodes
from tests.integration.test_s2s_prosody import enlist

PHONE = "4915112345678"
ALICE = f"{PHONE}@{DOMAIN}"
PROXY_SOURCE = "127.0.0.3"
LEDGER_PAGE = Path(__file__).parents[2] / "docs" / "metadata.md"

REQUEST_TEXT = "ledger: hello from the third party"
REPLY_TEXT = "ledger: reply from the gatekeeper user"
OFFLINE_TEXT = "ledger: written while you were away"
PEER_TEXT = "ledger: an encrypted answer from the third party"
REPORT_TEXT = "ledger: report reason"
VOICE_NAME = "ledger-voice.wav"


# -- what can be learned, and how it is recognised ---------------------------------------------
@dataclass(frozen=True)
class Conversation:
    """The values of one run that the ledger looks for."""

    gatekeeper_jid: str
    third_party_jid: str
    third_party_account: str | None = None  # the provider's id for its user (kit models)
    alias: str | None = None  # the gatekeeper user's address toward a federated provider

    def probes(self) -> dict[str, list[re.Pattern[bytes]]]:
        def lit(*values: str) -> list[re.Pattern[bytes]]:
            return [re.compile(re.escape(v.encode())) for v in values]

        senders = [self.gatekeeper_jid] + ([self.alias] if self.alias else [])
        probes = {
            "gatekeeper phone number": lit(PHONE),
            "gatekeeper JID": lit(self.gatekeeper_jid),
            "gatekeeper presence": [
                re.compile(rb"<presence[^>]*from=[\"']" + re.escape(s.encode())) for s in senders
            ],
            "third-party JID": lit(self.third_party_jid.split("@", 1)[0]),
            "gatekeeper user's message text": lit(REPLY_TEXT, OFFLINE_TEXT),
            "third-party user's message text": lit(REQUEST_TEXT, PEER_TEXT),
            "typing notifications": lit("http://jabber.org/protocol/chatstates"),
            "receipts and markers": lit("urn:xmpp:receipts", "urn:xmpp:chat-markers"),
            "media file name": lit(VOICE_NAME),
            "report reason": lit(REPORT_TEXT),
            "raw IP address": [re.compile(rb"(?<![\d.])127\.0\.0\.\d{1,3}(?![\d/])")],
        }
        if self.third_party_account is not None:
            probes["third-party account (provider's id)"] = lit(self.third_party_account)
        if self.alias is not None:
            probes["gatekeeper alias (per provider)"] = lit(self.alias)
        return probes


#: What an observer learns by its position alone, whatever the bytes say.
POSITION = {
    "client↔hub wire": ["client IP address", "connection times", "sizes and timing of traffic"],
    "client↔proxy wire": ["client IP address", "connection times", "sizes and timing of traffic"],
    "provider proxy": ["client IP address", "connection times", "sizes and timing of traffic"],
    "proxy↔hub wire": ["proxy IP address", "connection times", "sizes and timing of traffic"],
    "provider HTTP": ["time of each login check and report"],
    "push receiver": ["time a message was stored for its user"],
    "provider media host": ["time of each fetch, by the hub (not the user)"],
    "s2s wire": ["the two servers' addresses, connection times, sizes and timing of traffic"],
    "provider's server": ["time and size of each stanza between the hub and its users"],
    "provider's server: from the hub": [],
    "hub logs": [],
}


@dataclass
class Observations:
    """Captured bytes per observer (only the observers the model has)."""

    observers: tuple[str, ...]
    seen: dict[str, bytearray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.seen = {name: bytearray() for name in self.observers}

    def add(self, observer: str, data: bytes) -> None:
        self.seen[observer] += data + b"\n"


Run = tuple[Observations, Conversation]


def learned(observations: Observations, conversation: Conversation) -> dict[str, list[str]]:
    """Per observer, the fields found in its bytes (sorted)."""
    probes = conversation.probes()
    return {
        observer: sorted(
            name for name, patterns in probes.items() if any(p.search(data) for p in patterns)
        )
        for observer, data in observations.seen.items()
    }


# -- what the taps saw, per observer --------------------------------------------------------------
PUSH_PATH = "/interlink/v1/push"
_JWS = re.compile(rb"[A-Za-z0-9_-]{8,}\.([A-Za-z0-9_-]{8,})\.[A-Za-z0-9_-]{8,}")


def jws_payloads(data: bytes) -> list[bytes]:
    """The decoded payloads of the compact JWS/JWT in ``data`` (push and report bodies, bearer
    tokens): base64url hides nothing from the party that receives them."""
    out = []
    for match in _JWS.finditer(data):
        part = match[1]
        try:
            out.append(base64.urlsafe_b64decode(part + b"=" * (-len(part) % 4)))
        except ValueError:
            continue
    return out


_HOST = re.compile(rb"(?im)^host: [^\r\n]*\r\n")


def requests_of(tap: Tap) -> list[tuple[str, bytes]]:
    """The HTTP requests through ``tap``, without their ``Host`` header: it names the provider's
    own address (the tap's, in a test), which says nothing about a person."""
    return [
        (path, _HOST.sub(b"", raw))
        for flow in tap.flows
        for path, raw in http_requests(bytes(flow.up))
    ]


def provider_requests(tap: Tap, observations: Observations) -> None:
    """The hub's requests through the provider's callback tap, as the provider reads them."""
    for path, raw in requests_of(tap):
        seen = raw + b"\n" + b"\n".join(jws_payloads(raw))
        observer = "push receiver" if path == PUSH_PATH else "provider HTTP"
        observations.add(observer, seen)


def media_fetches(tap: Tap, observations: Observations) -> None:
    """The media proxy's fetches through the media host's tap (the third-party user's own
    uploads cross it too, and are the provider's own business)."""
    for _path, raw in requests_of(tap):
        if raw.startswith((b"GET ", b"HEAD ")):
            observations.add("provider media host", raw)


def decrypted(flows: list[Flow], keylog: Path) -> tuple[list[tuple[bytes, bytes]], int]:
    """The flows (up, down) as a holder of the secrets in ``keylog`` reads them (a flow none of
    them opens stays as it crossed the wire), and how many flows were opened."""
    text = keylog.read_text() if keylog.exists() else ""
    out, opened = [], 0
    for flow in flows:
        try:
            out.append(tls_plaintext(flow, text))
            opened += 1
        except NotDecrypted:
            out.append((bytes(flow.up), bytes(flow.down)))
    return out, opened


def joined(pairs: list[tuple[bytes, bytes]]) -> bytes:
    return b"\n".join(up + b"\n" + down for up, down in pairs)


NOT_THE_HUB = ("interlink.client", "interlink.provider", "interlink.chat")


class LogTap(logging.Handler):
    """The hub's log lines at the default level, as ``interlink serve`` writes them."""

    def __init__(self, observations: Observations) -> None:
        super().__init__(logging.INFO)
        self.observations = observations
        self.setFormatter(JsonFormatter())
        redactor = log_redactor(Settings())
        assert redactor is not None
        self.addFilter(redactor)
        self.own_fields = redactor.settings.own_fields

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.startswith(NOT_THE_HUB):
            return False  # the SDK's, the provider kit's and the proxy's own logs
        return super().filter(record)

    def emit(self, record: logging.LogRecord) -> None:
        # The fields the redactor keeps as the hub's own configuration (the bind address of the
        # "listening" lines; here 127.0.0.1, as are the clients) say nothing about a person.
        fields = {k: v for k, v in record.__dict__.items() if k not in self.own_fields}
        self.observations.add("hub logs", self.format(logging.makeLogRecord(fields)).encode())


async def started(stack: AsyncExitStack, tap: Tap) -> Tap:
    await tap.start()
    stack.push_async_callback(tap.close)
    return tap


# -- connection models of the provider kit -------------------------------------------------------
@dataclass
class Reach:
    """How the third-party user's client reaches the hub, and what to read afterwards."""

    client: dict[str, Any]  # InterlinkClient keyword arguments
    collect: Callable[[Observations], None]


Connector = Callable[[KitSetup, AsyncExitStack, Path], Awaitable[Reach]]


async def plug_and_play(setup: KitSetup, stack: AsyncExitStack, tmp: Path) -> Reach:
    wire = await started(stack, Tap("127.0.0.1", setup.server.ports["c2s-starttls"]))

    def collect(observations: Observations) -> None:
        observations.add("client↔hub wire", wire.wire())

    return Reach({"port": wire.port_bound, "ca_file": setup.certs.ca}, collect)


def through_proxy(mode: Mode) -> Connector:
    async def connect(setup: KitSetup, stack: AsyncExitStack, tmp: Path) -> Reach:
        client_tls = hub_tls = None
        ca_file = setup.certs.ca
        keylog = tmp / "proxy-keys.log"  # every TLS secret the proxy's operator holds
        if mode is Mode.TERMINATING:
            own = trustme.CA()
            client_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            own.issue_cert(DOMAIN, f"*.interop.{DOMAIN}").configure_cert(client_tls)
            hub_tls = ssl.create_default_context(cafile=str(setup.certs.ca))
            for context in (client_tls, hub_tls):
                context.keylog_filename = str(keylog)
            ca_file = tmp / "client-trust.pem"  # the proxy's CA for XMPP, the hub's for HTTPS
            ca_file.write_bytes(own.cert_pem.bytes() + setup.certs.ca.read_bytes())
        # proxy -> tap -> hub; the tap keeps the proxy's source address (registered at the hub)
        upstream = await started(
            stack, Tap("127.0.0.1", setup.server.ports["c2s-direct-tls"], same_source=True)
        )
        proxy = ProviderProxy(
            ProxyConfig(
                [Route(DOMAIN, "127.0.0.1", upstream.port_bound)],
                PROXY_KEY,
                mode,
                client_tls=client_tls,
                hub_tls=hub_tls,
                upstream_source=PROXY_SOURCE,
            )
        )
        _, port = await proxy.start("127.0.0.1", 0)
        stack.push_async_callback(proxy.close)
        downstream = await started(stack, Tap("127.0.0.1", port))

        def collect(observations: Observations) -> None:
            # in both modes both of the proxy's links carry TLS records and nothing else (the
            # hub's link after the signed PROXY header, which names the client's address)
            for flow in downstream.flows + upstream.flows:
                up = bytes(flow.up)
                if flow in upstream.flows:
                    assert up.startswith(PROXY_SIGNATURE)
                    up = up[16 + int.from_bytes(up[14:16], "big") :]
                assert only_tls(up)
                assert only_tls(bytes(flow.down))
            observations.add("client↔proxy wire", downstream.wire())
            observations.add("proxy↔hub wire", upstream.wire())
            view, opened = decrypted(downstream.flows + upstream.flows, keylog)
            # blind: the proxy holds no secret of any session; terminating: of every one
            assert opened == (0 if mode is Mode.BLIND else len(downstream.flows + upstream.flows))
            observations.add("provider proxy", joined(view))

        return Reach(
            {"port": downstream.port_bound, "direct_tls": True, "ca_file": ca_file}, collect
        )

    return connect


# -- the conversation (provider kit) --------------------------------------------------------------
async def next_of(client: InterlinkClient, kind: type[Any], wait: float = 20.0) -> Any:
    while True:
        event = await client.next_event(wait)
        if isinstance(event, kind):
            return event


def voice_note(path: Path) -> Path:
    with wave.open(str(path), "wb") as audio:
        audio.setnchannels(1)
        audio.setsampwidth(2)
        audio.setframerate(8000)
        audio.writeframes(b"\x01\x02" * 8000)
    return path


@asynccontextmanager
async def capturing_logs(observations: Observations) -> AsyncIterator[None]:
    hub_logger = logging.getLogger("interlink")
    handler, level = LogTap(observations), hub_logger.level
    hub_logger.addHandler(handler)
    hub_logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        hub_logger.removeHandler(handler)
        hub_logger.setLevel(level)


PROXY_KEY = Ed25519PrivateKey.generate()
PROXY_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"  # PROXY protocol v2


def kit_model(connect: Connector, *wires: str) -> Callable[[Path], Awaitable[Run]]:
    observers = (*wires, "provider HTTP", "push receiver", "provider media host", "hub logs")

    async def run(tmp: Path) -> Run:
        return await run_conversation(connect, observers, tmp)

    return run


async def run_conversation(
    connect: Connector, observers: tuple[str, ...], tmp: Path
) -> tuple[Observations, Conversation]:
    observations = Observations(observers)
    proxies = {
        "registered": [
            {
                "provider": "examplechat",
                "addresses": [f"{PROXY_SOURCE}/32"],
                "fingerprint": fingerprint(public_key_bytes(PROXY_KEY)),
            }
        ]
    }
    kit_sock = socket.socket()
    kit_sock.bind(("127.0.0.1", 0))
    async with AsyncExitStack() as taps:
        # the hub reaches the provider's endpoints and its media host through taps
        kit_port = kit_sock.getsockname()[1]
        callback = await started(taps, Tap("127.0.0.1", kit_port))
        media = await started(taps, Tap("127.0.0.1", kit_port))
        async with (
            capturing_logs(observations),
            hub_with_kit(
                tmp,
                features=("messaging", "media", "introspection"),
                kit_media=MediaLimits(),
                kit_sock=kit_sock,
                hub_facing={
                    "callback": f"http://{callback.address}",
                    "media": f"http://{media.address}",
                },
                accounts=(PHONE,),  # type: ignore[arg-type]
                media={"proxy_private_allowlist": ["127.0.0.1"]},
                proxies=proxies,
            ) as setup,
            AsyncExitStack() as stack,
        ):
            route = await connect(setup, stack, tmp)
            conversation = await kit_conversation(setup, route, tmp)
            await stack.aclose()  # the clients and the proxy first, then what they crossed
            route.collect(observations)
        provider_requests(callback, observations)
        media_fetches(media, observations)
    return observations, conversation


async def kit_conversation(setup: KitSetup, route: Reach, tmp: Path) -> Conversation:
    assert setup.server.storage is not None
    await setup.server.storage.policy.set_phone(ALICE, f"+{PHONE}")
    bob_jid, token = await setup.enlist(tmp / "bob")
    bob_user = await setup.kit.check_password("bob", "bob-secret")
    conversation = Conversation(ALICE, bob_jid, third_party_account=bob_user.subject)

    def bob_client() -> InterlinkClient:
        return InterlinkClient(
            f"{bob_jid}/app",
            "",
            data_dir=tmp / "bob",
            token_provider=token,
            uploader=KitUploader(setup.kit_url, "bob", "bob-secret"),
            http_url=setup.hub_url,
            **route.client,
        )

    alice = InterlinkClient(
        f"{ALICE}/phone",
        "pw",
        data_dir=tmp / "alice",
        port=setup.server.ports["c2s-starttls"],
        ca_file=setup.certs.ca,
        http_url=setup.hub_url,
    )
    bob = bob_client()
    await alice.connect()
    try:
        await bob.connect()
        try:
            # discovery: the third-party user looks the phone number up
            await alice.set_interop_settings(enabled=True, discoverable=True)
            found = await discover(
                setup.hub_url, await token(), f"+{PHONE}", ca_file=setup.certs.ca
            )
            assert found == ALICE
            # request, accept, text both ways, receipts, typing
            await bob.send_text(ALICE, REQUEST_TEXT)
            request = await next_of(alice, TextMessage)
            assert request.interop is not None
            assert request.interop.request
            await alice.accept_request(bob_jid)
            await alice.send_chat_state(bob_jid, "composing")
            await alice.send_text(bob_jid, REPLY_TEXT)
            reply = await next_of(bob, TextMessage)
            assert reply.text == REPLY_TEXT
            await bob.send_displayed(ALICE, reply.message_id or "")
            await bob.send_chat_state(ALICE, "composing")
            # media: stored on the provider's host, fetched through the hub's media proxy
            await bob.send_file(ALICE, voice_note(tmp / VOICE_NAME), kind="voice")
            heard = await next_of(alice, FileMessage)
            saved = await alice.download(heard, tmp / "alice-downloads")
            assert saved.read_bytes() == (tmp / VOICE_NAME).read_bytes()
        finally:
            await bob.close()
        # push: the third-party user is offline
        await asyncio.sleep(0.3)
        await alice.send_text(bob_jid, OFFLINE_TEXT)
        for _ in range(200):
            if await setup.kit.pushes(bob_user.subject):
                break
            await asyncio.sleep(0.05)
        assert await setup.kit.pushes(bob_user.subject)
        # report
        await alice.block(bob_jid, report="spam", text=REPORT_TEXT, attach=[request])
        for _ in range(200):
            if await setup.kit.reports():
                break
            await asyncio.sleep(0.05)
        assert await setup.kit.reports()
        # the offline message reaches the third party when it comes back
        again = bob_client()
        await again.connect()
        try:
            assert (await next_of(again, TextMessage)).text == OFFLINE_TEXT
        finally:
            await again.close()
    finally:
        await alice.close()
    return conversation


# -- the federation model -------------------------------------------------------------------------
FED_DOMAIN = "hub.example"  # not under .test: libunbound refuses the special-use names
PEER = "chat.example"
FED_PROVIDER = "chatprov"  # the provider test_s2s_prosody.enlist enlists to
PEER_JID = f"ledgerpeer@{PEER}"
HOME = f"{PHONE}@{FED_DOMAIN}"
FEDERATION_OBSERVERS = (
    "s2s wire",
    "provider's server",
    "provider's server: from the hub",
    "provider HTTP",
    "hub logs",
)


@contextmanager
def environment(name: str, value: str) -> Iterator[None]:
    before = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before


async def provider_endpoints(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """The federated provider's HTTP endpoints (reports), answering every request with 204."""
    try:
        while head := await reader.readuntil(b"\r\n\r\n"):
            length = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
            await reader.readexactly(int(length[1]) if length else 0)
            writer.write(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n")
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def federated(tmp: Path) -> Run:
    """A user of a stock Prosody (``ledgerpeer@chat.example``, slixmpp with slixmpp-omemo) and a
    gatekeeper user of the SDK: a message request (in clear: the hub shows the gatekeeper user's
    keys at the alias only after acceptance), acceptance, OMEMO-encrypted text both ways (legacy
    OMEMO, the only version slixmpp-omemo speaks), the peer's receipt, displayed marker and
    typing (the SDK sends those inside OMEMO 2 only, so not to a legacy peer), a voice note from
    the gatekeeper user (uploaded to the hub's XEP-0363 service; the aesgcm:// URL travels inside
    OMEMO and the peer's client fetches the file from the hub), and a report with the peer's
    message attached. Not in this model: discovery by phone number (the API serves plug-and-play
    providers' tokens; a federated provider has none), push (a federated user's server has its
    own), and media from the peer (a legacy OMEMO file is an aesgcm:// URL the SDK shows as
    text; with OMEMO 2 the SDK would fetch it directly, see the report of issue 16)."""
    observations = Observations(FEDERATION_OBSERVERS)
    keylog = tmp / "s2s-keys.log"
    certs = federation_certs(tmp / "certs", FED_DOMAIN, (PEER,))
    async with AsyncExitStack() as stack:
        stack.enter_context(environment("SSLKEYLOGFILE", str(keylog)))
        await stack.enter_async_context(capturing_logs(observations))
        hub = HubServer(
            settings_for(
                tmp / "hub",
                certs.hub,
                hub={"domain": FED_DOMAIN},
                net={"s2s_port": 0},
                s2s={"enabled": True},
                interop={"allow_insecure_loopback": True},
            )
        )
        await hub.start()
        stack.push_async_callback(hub.stop)
        assert hub.registry is not None
        assert hub.storage is not None
        # Prosody -> tap -> hub (through DNS), hub -> tap -> Prosody (the static s2s address)
        inbound = await started(stack, Tap("127.0.0.1", hub.ports["s2s"]))
        dns = await stack.enter_async_context(
            loopback_dns(
                {FED_DOMAIN: "127.0.0.1"},
                {f"_xmpp-server._tcp.{FED_DOMAIN}": (FED_DOMAIN, inbound.port_bound)},
            )
        )
        prosody = await stack.enter_async_context(
            running_prosody(tmp / "prosody", (PEER,), certs, dns.port)
        )
        outbound = await started(stack, Tap("127.0.0.1", prosody.s2s_port))
        endpoints = await asyncio.start_server(provider_endpoints, "127.0.0.1", 0)
        stack.callback(endpoints.close)
        callback = await started(stack, Tap("127.0.0.1", endpoints.sockets[0].getsockname()[1]))
        await hub.registry.add(
            Provider(
                FED_PROVIDER,
                "Chat Test",
                f"http://{callback.address}",
                jwks_url=f"http://{callback.address}/.well-known/jwks.json",
                mode=ProviderMode.FEDERATED,
                server_domains=(PEER,),
                s2s_ca=certs.ca_pem,
                s2s_address=outbound.address,
            ),
            "test",
        )
        await hub.registry.set_status(FED_PROVIDER, ProviderStatus.APPROVED, "test")
        await hub.storage.accounts.create(HOME, derive_credentials("pw", 4096), time.time())
        await enlist(hub, PEER_JID)
        assert hub.hub is not None
        alias = hub.hub.federation.aliases.alias(PHONE, FED_PROVIDER, FED_DOMAIN) + "@" + FED_DOMAIN
        conversation = Conversation(HOME, PEER_JID, alias=alias)
        await federated_conversation(hub, prosody, certs.hub, alias, tmp)
        for _ in range(200):  # the report, forwarded to the provider's endpoint
            if any(http_requests(bytes(f.up)) for f in callback.flows):
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)  # the last stanzas through the taps
        s2s = inbound.flows + outbound.flows
        observations.add("s2s wire", b"\n".join(bytes(f.up) + bytes(f.down) for f in s2s))
        dialled, opened_in = decrypted(inbound.flows, keylog)  # up: Prosody's, down: the hub's
        answered, opened_out = decrypted(outbound.flows, keylog)  # up: the hub's
        assert opened_in == len(inbound.flows) >= 1, "an s2s stream the ledger could not read"
        assert opened_out == len(outbound.flows) >= 1, "an s2s stream the ledger could not read"
        observations.add("provider's server", joined(dialled + answered))
        from_hub = [down for _up, down in dialled] + [up for up, _down in answered]
        observations.add("provider's server: from the hub", b"\n".join(from_hub))
        await stack.aclose()
        provider_requests(callback, observations)
    return observations, conversation


async def federated_conversation(
    hub: HubServer, prosody: Any, certs: Certs, alias: str, tmp: Path
) -> None:
    PeerOmemo._store = MemoryStorage()
    prosody.register(PEER_JID.split("@")[0], PEER, "pw")
    peer = Xmpp(f"{PEER_JID}/slixmpp-omemo", "pw", certs)
    peer.client.register_plugin("xep_0004")
    peer.client.register_plugin("xep_0085")
    peer.client.register_plugin("xep_0333")
    peer.client.register_plugin("xep_0384", module=sys.modules[test_omemo_interop.__name__])
    await peer.login(prosody.c2s_port)
    plugins: Any = peer.client.plugin
    omemo: Any = plugins["xep_0384"]
    decrypted_texts: asyncio.Queue[str] = asyncio.Queue()
    seen_by_peer: list[Any] = []

    async def on_message(msg: Any) -> None:
        seen_by_peer.append(msg)
        if omemo.is_encrypted(msg):
            clear, _device = await omemo.decrypt_message(msg)
            if clear["body"]:
                decrypted_texts.put_nowait(clear["body"])

    peer.client.add_event_handler("message", on_message)
    # the gatekeeper user: legacy OMEMO only, whatever the peer announces (see the report of
    # issue 16: OMEMO 2's envelope is being changed not to name the phone number)
    home = InterlinkClient(
        f"{HOME}/phone",
        "pw",
        data_dir=tmp / "home",
        port=hub.ports["c2s-starttls"],
        ca_file=certs.ca,
        omemo2=False,
    )
    watcher = Xmpp(f"{HOME}/other", "pw", certs)
    try:
        await omemo.get_session_manager()  # keys published on Prosody
        own = slixmpp.JID(PEER_JID)
        pubsub: Any = peer.client.plugin["xep_0060"]
        peer.client.del_event_handler("twomemo_device_list_publish", omemo._on_device_list_update)
        await pubsub.publish(
            own,
            "urn:xmpp:omemo:2:devices",
            id="current",
            payload=slixmpp.ET.fromstring("<devices xmlns='urn:xmpp:omemo:2'/>"),
            timeout=TIMEOUT,
        )
        await open_nodes(peer, own)
        await home.connect()
        await home.set_interop_settings(enabled=True, discoverable=True)
        # request, accept: the request is in clear, which the SDK does not show; the gatekeeper
        # user's other client (plain XMPP) does
        await watcher.login(hub.ports["c2s-starttls"])
        peer.send_chat(alias, REQUEST_TEXT)
        request = await watcher.next_message(timeout=20)
        assert request["body"] == REQUEST_TEXT
        await home.accept_request(PEER_JID)
        # text, gatekeeper -> peer (encrypted), with the receipt the peer sends; no typing this
        # way: the SDK sends chat states inside OMEMO 2 only (legacy OMEMO carries text alone)
        with pytest.raises(ClientError, match="legacy OMEMO can only carry text"):
            await home.send_chat_state(PEER_JID, "composing")
        reply_id = await home.send_text(PEER_JID, REPLY_TEXT)
        assert await asyncio.wait_for(decrypted_texts.get(), 20) == REPLY_TEXT
        receipt = peer.client.make_message(mto=slixmpp.JID(alias), mtype="chat")
        receipt.append(
            slixmpp.ET.fromstring(f"<received xmlns='urn:xmpp:receipts' id='{reply_id}'/>")
        )
        receipt.send()
        marker = peer.client.make_message(mto=slixmpp.JID(alias), mtype="chat")
        marker.append(
            slixmpp.ET.fromstring(f"<displayed xmlns='urn:xmpp:chat-markers:0' id='{reply_id}'/>")
        )
        marker.send()
        # typing and text, peer -> gatekeeper (encrypted)
        typing = peer.client.make_message(mto=slixmpp.JID(alias), mtype="chat")
        typing.append(
            slixmpp.ET.fromstring("<composing xmlns='http://jabber.org/protocol/chatstates'/>")
        )
        typing.send()
        manager = await omemo.get_session_manager()
        await manager.refresh_device_lists(alias)
        stanza = peer.client.make_message(mto=slixmpp.JID(alias), mtype="chat")
        stanza["body"] = PEER_TEXT
        encrypted, _errors = await omemo.encrypt_message(stanza, slixmpp.JID(alias))
        for message in encrypted.values() if isinstance(encrypted, dict) else [encrypted]:
            message.send()
        answer = await next_of(home, TextMessage)
        assert answer.text == PEER_TEXT
        # media, gatekeeper -> peer: the ciphertext on the hub's upload service, the aesgcm://
        # URL (its name, key and IV) inside legacy OMEMO; the peer's client fetches it from the hub
        await home.send_file(PEER_JID, voice_note(tmp / VOICE_NAME), kind="voice")
        url = await asyncio.wait_for(decrypted_texts.get(), 20)
        assert url.startswith("aesgcm://")
        https_url, key, iv = parse_aesgcm(url)
        async with httpx.AsyncClient(
            verify=ssl.create_default_context(cafile=str(certs.ca))
        ) as web:
            fetched = await web.get(https_url)
        assert fetched.status_code == 200
        assert AESGCM(key).decrypt(iv, fetched.content, None) == (tmp / VOICE_NAME).read_bytes()
        # report, with the peer's message attached
        await home.block(PEER_JID, report="spam", text=REPORT_TEXT, attach=[answer])
    finally:
        await watcher.close()
        await home.close()
        await peer.close()


# -- the models -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Model:
    name: str
    run: Callable[[Path], Awaitable[Run]]


MODELS = [
    Model("plug-and-play", kit_model(plug_and_play, "client↔hub wire")),
    Model(
        "proxy (blind)",
        kit_model(
            through_proxy(Mode.BLIND), "client↔proxy wire", "provider proxy", "proxy↔hub wire"
        ),
    ),
    Model(
        "proxy (terminating)",
        kit_model(
            through_proxy(Mode.TERMINATING), "client↔proxy wire", "provider proxy", "proxy↔hub wire"
        ),
    ),
    Model("federation", federated),
]

_NOTHING: list[str] = []
_PROVIDER_ALWAYS = {
    "provider HTTP": [
        "report reason",
        "third-party account (provider's id)",
        "third-party user's message text",
    ],
    "push receiver": ["third-party account (provider's id)"],
    "provider media host": ["media file name"],
    "hub logs": _NOTHING,
}
EXPECTED: dict[str, dict[str, list[str]]] = {
    "plug-and-play": {"client↔hub wire": _NOTHING, **_PROVIDER_ALWAYS},
    "proxy (blind)": {
        "client↔proxy wire": _NOTHING,
        "provider proxy": _NOTHING,
        "proxy↔hub wire": _NOTHING,
        **_PROVIDER_ALWAYS,
    },
    "proxy (terminating)": {
        "client↔proxy wire": _NOTHING,
        # Receipts, markers and chat states travel inside the OMEMO 2 envelope (SCE), and the
        # hub shares no presence across the interop boundary: the stream shows addresses only.
        "provider proxy": ["gatekeeper JID", "gatekeeper phone number", "third-party JID"],
        "proxy↔hub wire": _NOTHING,
        **_PROVIDER_ALWAYS,
    },
    "federation": {
        # the stream headers before STARTTLS name the two services' domains, nobody's address
        "s2s wire": _NOTHING,
        # its own user's stanzas (the request in clear, its receipt, marker and typing) and,
        # from the hub, the per-provider alias: no phone number, no presence, no IP address
        "provider's server": [
            "gatekeeper alias (per provider)",
            "receipts and markers",
            "third-party JID",
            "third-party user's message text",
            "typing notifications",
        ],
        "provider's server: from the hub": ["gatekeeper alias (per provider)", "third-party JID"],
        # the report: its reason, the attached message, the account (its JID for a federated one)
        "provider HTTP": ["report reason", "third-party JID", "third-party user's message text"],
        "hub logs": _NOTHING,
    },
}


# -- the tests ------------------------------------------------------------------------------------
RESULTS: dict[str, dict[str, list[str]]] = {}


@pytest.mark.timeout(240)
@pytest.mark.parametrize("model", MODELS, ids=[m.name for m in MODELS])
async def test_each_observer_learns_exactly_the_expected_fields(
    model: Model, tmp_path: Path
) -> None:
    observations, conversation = await model.run(tmp_path)
    found = learned(observations, conversation)
    for observer in ("client↔proxy wire", "proxy↔hub wire", "s2s wire", "provider's server"):
        if observer in observations.seen:  # it did carry the conversation
            assert len(observations.seen[observer]) > 10_000, observer
    for observer in ("push receiver", "provider media host", "provider HTTP", "hub logs"):
        if observer in observations.seen:
            assert observations.seen[observer], f"nothing observed by {observer}"
    assert found == EXPECTED[model.name]
    RESULTS[model.name] = found


def test_the_ledger_catches_a_phone_number_in_a_push() -> None:
    """The test of the test: the same observations with the gatekeeper's phone number added to a
    push no longer match the ledger, and the failure names the observer and the field."""
    observations = Observations(tuple(POSITION))
    conversation = Conversation(ALICE, f"abc123@examplechat.interop.{DOMAIN}", "subject-1")
    observations.add("push receiver", b'POST /interlink/v1/push\n{"sub": "subject-1"}')
    assert learned(observations, conversation)["push receiver"] == [
        "third-party account (provider's id)"
    ]
    observations.add("push receiver", json.dumps({"from": f"+{PHONE}"}).encode())
    found = learned(observations, conversation)
    assert found["push receiver"] != EXPECTED["plug-and-play"]["push receiver"]
    assert "gatekeeper phone number" in found["push receiver"]
    # and every observer's bytes are searched, not only the push receiver's
    for observer in POSITION:
        injected = Observations(tuple(POSITION))
        injected.add(observer, ALICE.encode())
        assert learned(injected, conversation)[observer] == [
            "gatekeeper JID",
            "gatekeeper phone number",
        ]


async def test_the_ledger_catches_a_phone_number_in_an_s2s_stanza(tmp_path: Path) -> None:
    """The federation boundary's test of the test: an s2s stream (STARTTLS, through a tap,
    decrypted the way the federation model reads it) whose stanza names the phone number no
    longer matches the ledger; without it, it matches the row of what the hub sends."""
    alias = f"gabcdefgh@{FED_DOMAIN}"
    conversation = Conversation(HOME, PEER_JID, alias=alias)
    observer = "provider's server: from the hub"

    async def provider_view(stanza: bytes, keylog: Path) -> list[str]:
        flow = await tls_flow(b"<stream:stream to='chat.example'>", stanza, keylog)
        assert b"<message" not in bytes(flow.up)  # the wire: TLS records
        view, opened = decrypted([flow], keylog)
        assert opened == 1
        observations = Observations(FEDERATION_OBSERVERS)
        observations.add(observer, joined(view))
        return learned(observations, conversation)[observer]

    clean = f"<message from='{alias}' to='{PEER_JID}'><x/></message>".encode()
    assert await provider_view(clean, tmp_path / "clean.log") == EXPECTED["federation"][observer]
    leaky = f"<message from='{alias}' to='{PEER_JID}'><x>+{PHONE}</x></message>".encode()
    found = await provider_view(leaky, tmp_path / "leaky.log")
    assert "gatekeeper phone number" in found
    assert found != EXPECTED["federation"][observer]


def render(results: dict[str, dict[str, list[str]]]) -> str:
    models = [m.name for m in MODELS if m.name in results]
    lines = [
        "# Metadata ledger: what each observer learns",
        "",
        "Generated by `tests/integration/test_metadata_ledger.py` from one full conversation per",
        "connection model (discovery by phone number, message request, acceptance, text both ways,",
        "receipts and displayed markers, typing, a voice note on the provider's media host fetched",
        "through the hub's media proxy, a push while the third-party user is offline, an abuse",
        "report; in the federation model what federation carries of it, see below). Each",
        "boundary is a TCP tap the test puts between the two parties: an observer's bytes are",
        "what crossed the socket, decrypted only with the TLS secrets that observer holds. They",
        "are searched for the conversation's values; the test fails when any observer learns a",
        "field not listed here, and rewrites this page when the table changes. Do not edit by",
        "hand.",
        "",
        "The gatekeeper user's JID is their phone number (`<E.164 digits>@<hub>`), so a JID",
        "implies the number. *By position* is what the observer knows whatever the bytes say;",
        "*n/a*: the model has no such party.",
        "",
        "| observer | by position | " + " | ".join(models) + " |",
        "|---|---|" + "---|" * len(models),
    ]
    for observer, position in POSITION.items():
        cells = []
        for model in models:
            fields = results[model].get(observer)
            if fields is None:
                cells.append("n/a")
            else:
                cells.append(", ".join(fields) if fields else "nothing")
        lines.append(f"| {observer} | {', '.join(position) or '—'} | " + " | ".join(cells) + " |")
    lines += NOTES
    return "\n".join(lines)


NOTES = [
    "",
    "Notes:",
    "",
    "- *wire* rows: a network observer of that link (TLS records, and in clear only what",
    "  precedes STARTTLS: the stream headers' domains).",
    "- *provider proxy*: the bytes of both of the proxy's sockets. Blind mode holds no TLS",
    "  secret, so it reads what the wire shows; terminating mode holds its own certificate's",
    "  and its hub sessions' secrets and reads the stream in clear. Message text stays end to",
    "  end encrypted (OMEMO) in every model, its length padded to a bucket",
    "  (docs/performance.md).",
    "- *provider HTTP*: the hub's requests to the provider's endpoints (JWKS, introspection,",
    "  reports). The introspection call carries the provider's own token for its user; a",
    "  report carries its reason and the text of the messages the reporter chose to attach",
    "  (here the third-party user's own request).",
    "- *push receiver*: a push is the provider's id for its user, a count, an id and a time;",
    "  no sender, no content.",
    "- *provider media host*: the media proxy fetches the file; the gatekeeper user's address",
    "  and identity do not reach the host.",
    "- *federation*: a user of a stock Prosody and a gatekeeper user of the SDK: a message",
    "  request (in clear: the hub shows the gatekeeper user's keys at the alias only after",
    "  acceptance), acceptance, text both ways in legacy OMEMO, the federated user's receipt,",
    "  displayed marker and typing (the SDK sends these inside OMEMO 2 only, so not to a legacy",
    "  peer), a voice note from the gatekeeper user (on the hub's upload service, its URL inside",
    "  OMEMO, fetched by the peer's client from the hub), a report. Not covered: discovery by",
    "  phone number (a provider-token API of plug-and-play), push (a federated user's server",
    "  has its own), media from the federated user. *provider's server* reads the s2s streams",
    "  in clear (it is the other end of their TLS; the ledger decrypts the tapped records with",
    "  the session secrets); *: from the hub* is the hub's half of them alone. The gatekeeper",
    "  user appears there only as the per-provider alias, with no presence, IP or phone number.",
    "- *hub logs*: at the default level, JIDs, phone numbers and IP addresses are pseudonyms",
    "  (`[log_privacy]`, docs/operations.md).",
    "",
]


def test_the_committed_page_is_the_ledger() -> None:
    """Runs after the model tests (file order); fails and rewrites docs/metadata.md when the
    committed table differs from what the models produced."""
    missing = [m.name for m in MODELS if m.name not in RESULTS]
    if missing:
        pytest.fail(f"the ledger needs every model's run first; missing {missing}")
    page = render(RESULTS)
    committed = LEDGER_PAGE.read_text(encoding="utf-8") if LEDGER_PAGE.exists() else ""
    if committed != page:
        LEDGER_PAGE.write_text(page, encoding="utf-8")
        pytest.fail("docs/metadata.md differed from the ledger; it was rewritten: commit it")


def test_log_tap_uses_the_production_redaction() -> None:
    stream = io.StringIO()
    tap = LogTap(Observations(("hub logs",)))
    record = logging.LogRecord("interlink.x", logging.INFO, "", 0, "bound %s", (ALICE,), None)
    assert tap.filter(record)
    stream.write(tap.format(record))
    assert PHONE not in stream.getvalue()
