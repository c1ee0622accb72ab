"""The metadata ledger (issue 16): one full conversation per connection model, every byte that
crosses a boundary captured by an observer, and per observer the exact set of fields it learns.

A gatekeeper user (a phone number) and a third-party user of the provider kit go through: discovery
by phone number, a message request, acceptance, text both ways, delivery receipts and a displayed
marker, typing notifications, a voice note stored on the provider's media host and fetched by the
gatekeeper user through the hub's media proxy, a push while the third-party user is offline, and
an abuse report. The observers, each fed by a hook and never by patching a library:

* ``provider proxy`` — every byte the provider's proxy handles (``RelayObserver``), plus what its
  position gives it: the client's address, connection times, sizes;
* ``provider HTTP`` — every request the hub makes to the provider's endpoints (JWKS, introspection,
  reports), captured by an ASGI observer around the provider kit's app;
* ``push receiver`` — the pushes the hub posts to the provider;
* ``provider media host`` — the media proxy's fetches from the provider's media host;
* ``hub logs`` — every record the hub logs at the default level (INFO), through the same
  redaction filter ``interlink serve`` installs.

Fields are found by searching each observer's bytes for the conversation's known values (the
phone number, both JIDs, the texts…). :data:`EXPECTED` is the exact set per observer and model;
an extra field anywhere fails the test, and :func:`test_the_ledger_catches_a_phone_number_in_a_push`
shows it does. The table in docs/metadata.md is rendered from the results: the test fails (and
rewrites the page) when the committed page differs.

Models are :class:`Model` entries in :data:`MODELS`; a new one (federation) adds an entry and its
expected row.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import logging
import re
import ssl
import wave
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import trustme
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from interlink.client import FileMessage, InterlinkClient, KitUploader, TextMessage
from interlink.client.enlist import discover
from interlink.config import Settings
from interlink.logs import JsonFormatter
from interlink.media import MediaLimits
from interlink.net.proxied import fingerprint, public_key_bytes
from interlink.provider.proxy import Leg, Mode, ProviderProxy, ProxyConfig, Route
from interlink.settings_map import log_redactor
from tests.integration.kit import DOMAIN, KitSetup, hub_with_kit

PHONE = "4915112345678"
ALICE = f"{PHONE}@{DOMAIN}"
PROXY_SOURCE = "127.0.0.3"
LEDGER_PAGE = Path(__file__).parents[2] / "docs" / "metadata.md"

REQUEST_TEXT = "ledger: hello from the third party"
REPLY_TEXT = "ledger: reply from the gatekeeper user"
OFFLINE_TEXT = "ledger: written while you were away"
REPORT_TEXT = "ledger: report reason"
VOICE_NAME = "ledger-voice.wav"


# -- what can be learned, and how it is recognised ---------------------------------------------
@dataclass(frozen=True)
class Conversation:
    """The values of one run that the ledger looks for."""

    bob_jid: str
    bob_subject: str

    def probes(self) -> dict[str, list[re.Pattern[bytes]]]:
        def lit(*values: str) -> list[re.Pattern[bytes]]:
            return [re.compile(re.escape(v.encode())) for v in values]

        bob_local = self.bob_jid.split("@", 1)[0]
        return {
            "gatekeeper phone number": lit(PHONE),
            "gatekeeper JID": lit(ALICE),
            "gatekeeper presence": [
                re.compile(rb"<presence[^>]*from=[\"']" + re.escape(ALICE.encode()))
            ],
            "third-party JID": lit(bob_local),
            "third-party account (provider's id)": lit(self.bob_subject),
            "message text": lit(REQUEST_TEXT, REPLY_TEXT, OFFLINE_TEXT),
            "typing notifications": lit("http://jabber.org/protocol/chatstates"),
            "receipts and markers": lit("urn:xmpp:receipts", "urn:xmpp:chat-markers"),
            "media file name": lit(VOICE_NAME),
            "report reason": lit(REPORT_TEXT),
            "raw IP address": [re.compile(rb"(?<![\d.])127\.0\.0\.\d{1,3}(?![\d/])")],
        }


#: What an observer learns by its position alone, whatever the bytes say.
POSITION = {
    "provider proxy": ["client IP address", "connection times", "sizes and timing of traffic"],
    "provider HTTP": ["time of each login check and report"],
    "push receiver": ["time a message was stored for its user"],
    "provider media host": ["time of each fetch, by the hub (not the user)"],
    "hub logs": [],
}


@dataclass
class Observations:
    """Captured bytes per observer."""

    seen: dict[str, bytearray] = field(
        default_factory=lambda: {name: bytearray() for name in POSITION}
    )

    def add(self, observer: str, data: bytes) -> None:
        self.seen[observer] += data + b"\n"


def learned(observations: Observations, conversation: Conversation) -> dict[str, list[str]]:
    """Per observer, the fields found in its bytes (sorted), or ``None`` if it saw nothing."""
    probes = conversation.probes()
    return {
        observer: sorted(
            name for name, patterns in probes.items() if any(p.search(data) for p in patterns)
        )
        for observer, data in observations.seen.items()
    }


# -- observers ------------------------------------------------------------------------------------
class ProxyTap:
    def __init__(self, observations: Observations) -> None:
        self.observations = observations

    def relayed(self, connection: int, leg: Leg, data: bytes) -> None:
        self.observations.add("provider proxy", data)


PUSH_PATH = "/interlink/v1/push"
HUB_CALLS = ("/.well-known/jwks.json", "/interlink/v1/introspect", "/interlink/v1/report")


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


class ProviderTap:
    """An ASGI observer around the provider kit's app: each request the hub makes, by observer.
    Requests from the provider's own user (token, media upload) are the provider's own business
    and are not a boundary of the hub."""

    def __init__(self, app: Any, observations: Observations) -> None:
        self.app = app
        self.observations = observations

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        body = bytearray()

        async def tapped() -> Any:
            message = await receive()
            if message["type"] == "http.request":
                body.extend(message.get("body", b""))
            return message

        await self.app(scope, tapped, send)
        path, method = scope["path"], scope["method"]
        headers = b"\n".join(k + b": " + v for k, v in scope["headers"] if k != b"host")
        seen = f"{method} {path}\n".encode() + headers + b"\n" + bytes(body)
        seen += b"\n" + b"\n".join(jws_payloads(seen))  # what the provider reads out of them
        if path == PUSH_PATH:
            self.observations.add("push receiver", seen)
        elif path in HUB_CALLS:
            self.observations.add("provider HTTP", seen)
        elif path.startswith("/media/") and method in ("GET", "HEAD"):
            self.observations.add("provider media host", seen)


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


# -- connection models ----------------------------------------------------------------------------
Connector = Callable[[KitSetup, AsyncExitStack, Observations, Path], Awaitable[dict[str, Any]]]


async def plug_and_play(
    setup: KitSetup, stack: AsyncExitStack, observations: Observations, tmp: Path
) -> dict[str, Any]:
    return {"port": setup.server.ports["c2s-starttls"], "ca_file": setup.certs.ca}


def through_proxy(mode: Mode) -> Connector:
    async def connect(
        setup: KitSetup, stack: AsyncExitStack, observations: Observations, tmp: Path
    ) -> dict[str, Any]:
        client_tls = hub_tls = None
        ca_file = setup.certs.ca
        if mode is Mode.TERMINATING:
            own = trustme.CA()
            client_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            own.issue_cert(DOMAIN, f"*.interop.{DOMAIN}").configure_cert(client_tls)
            hub_tls = ssl.create_default_context(cafile=str(setup.certs.ca))
            ca_file = tmp / "client-trust.pem"  # the proxy's CA for XMPP, the hub's for HTTPS
            ca_file.write_bytes(own.cert_pem.bytes() + setup.certs.ca.read_bytes())
        proxy = ProviderProxy(
            ProxyConfig(
                [Route(DOMAIN, "127.0.0.1", setup.server.ports["c2s-direct-tls"])],
                PROXY_KEY,
                mode,
                client_tls=client_tls,
                hub_tls=hub_tls,
                upstream_source=PROXY_SOURCE,
            ),
            observer=ProxyTap(observations),
        )
        _, port = await proxy.start("127.0.0.1", 0)
        stack.push_async_callback(proxy.close)
        return {"port": port, "direct_tls": True, "ca_file": ca_file}

    return connect


@dataclass(frozen=True)
class Model:
    name: str
    connect: Connector  # how the third-party user's client reaches the hub


PROXY_KEY = Ed25519PrivateKey.generate()
MODELS = [
    Model("plug-and-play", plug_and_play),
    Model("proxy (blind)", through_proxy(Mode.BLIND)),
    Model("proxy (terminating)", through_proxy(Mode.TERMINATING)),
]

_NOTHING: list[str] = []
_PROVIDER_ALWAYS = {
    "provider HTTP": [
        "message text",
        "report reason",
        "third-party account (provider's id)",
    ],
    "push receiver": ["third-party account (provider's id)"],
    "provider media host": ["media file name"],
    "hub logs": _NOTHING,
}
EXPECTED: dict[str, dict[str, list[str]]] = {
    "plug-and-play": {"provider proxy": _NOTHING, **_PROVIDER_ALWAYS},
    "proxy (blind)": {"provider proxy": _NOTHING, **_PROVIDER_ALWAYS},
    "proxy (terminating)": {
        # Receipts, markers and chat states travel inside the OMEMO 2 envelope (SCE), and the
        # hub shares no presence across the interop boundary: the stream shows addresses only.
        "provider proxy": ["gatekeeper JID", "gatekeeper phone number", "third-party JID"],
        **_PROVIDER_ALWAYS,
    },
}


# -- the conversation -----------------------------------------------------------------------------
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


async def run_conversation(model: Model, tmp: Path) -> tuple[Observations, Conversation]:
    observations = Observations()
    proxies = {
        "registered": [
            {
                "provider": "examplechat",
                "addresses": [f"{PROXY_SOURCE}/32"],
                "fingerprint": fingerprint(public_key_bytes(PROXY_KEY)),
            }
        ]
    }
    async with (
        capturing_logs(observations),
        hub_with_kit(
            tmp,
            features=("messaging", "media", "introspection"),
            kit_media=MediaLimits(),
            kit_wrap=lambda app: ProviderTap(app, observations),
            accounts=(PHONE,),  # type: ignore[arg-type]
            media={"proxy_private_allowlist": ["127.0.0.1"]},
            proxies=proxies,
        ) as setup,
        AsyncExitStack() as stack,
    ):
        assert setup.server.storage is not None
        await setup.server.storage.policy.set_phone(ALICE, f"+{PHONE}")
        bob_jid, token = await setup.enlist(tmp / "bob")
        bob_user = await setup.kit.check_password("bob", "bob-secret")
        conversation = Conversation(bob_jid, bob_user.subject)
        route = await model.connect(setup, stack, observations, tmp)

        def bob_client() -> InterlinkClient:
            return InterlinkClient(
                f"{bob_jid}/app",
                "",
                data_dir=tmp / "bob",
                token_provider=token,
                uploader=KitUploader(setup.kit_url, "bob", "bob-secret"),
                http_url=setup.hub_url,
                **route,
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
        stack.push_async_callback(alice.close)
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
    return observations, conversation


# -- the tests ------------------------------------------------------------------------------------
RESULTS: dict[str, dict[str, list[str]]] = {}
_CAPTURED: dict[str, tuple[Observations, Conversation]] = {}


@pytest.mark.timeout(180)
@pytest.mark.parametrize("model", MODELS, ids=[m.name for m in MODELS])
async def test_each_observer_learns_exactly_the_expected_fields(
    model: Model, tmp_path: Path
) -> None:
    observations, conversation = await run_conversation(model, tmp_path)
    _CAPTURED[model.name] = (observations, conversation)
    found = learned(observations, conversation)
    if model.name.startswith("proxy"):
        assert len(observations.seen["provider proxy"]) > 10_000  # it did relay the conversation
    assert observations.seen["push receiver"], "no push was observed"
    assert observations.seen["provider media host"], "no media fetch was observed"
    assert observations.seen["hub logs"], "no log line was observed"
    assert found == EXPECTED[model.name]
    RESULTS[model.name] = found


def test_the_ledger_catches_a_phone_number_in_a_push() -> None:
    """The test of the test: the same observations with the gatekeeper's phone number added to a
    push no longer match the ledger, and the failure names the observer and the field."""
    observations = Observations()
    conversation = Conversation(f"abc123@examplechat.interop.{DOMAIN}", "subject-1")
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
        injected = Observations()
        injected.add(observer, ALICE.encode())
        assert learned(injected, conversation)[observer] == [
            "gatekeeper JID",
            "gatekeeper phone number",
        ]


def render(results: dict[str, dict[str, list[str]]]) -> str:
    models = [m.name for m in MODELS if m.name in results]
    lines = [
        "# Metadata ledger: what each observer learns",
        "",
        "Generated by `tests/integration/test_metadata_ledger.py` from one full conversation per",
        "connection model (discovery by phone number, message request, acceptance, text both ways,",
        "receipts and displayed markers, typing, a voice note on the provider's media host fetched",
        "through the hub's media proxy, a push while the third-party user is offline, an abuse",
        "report). Each observer's bytes are captured by a hook and searched for the conversation's",
        "values; the test fails when any observer learns a field not listed here, and rewrites",
        "this page when the table changes. Do not edit by hand.",
        "",
        "The gatekeeper user's JID is their phone number (`<E.164 digits>@<hub>`), so a JID",
        "implies the number. *By position* is what the observer knows whatever the bytes say.",
        "",
        "| observer | by position | " + " | ".join(models) + " |",
        "|---|---|" + "---|" * len(models),
    ]
    for observer, position in POSITION.items():
        cells = []
        for model in models:
            fields = results[model].get(observer, [])
            if observer == "provider proxy" and model == "plug-and-play":
                cells.append("(no proxy)")
            else:
                cells.append(", ".join(fields) if fields else "nothing")
        lines.append(f"| {observer} | {', '.join(position) or '—'} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Notes:",
        "",
        "- *provider HTTP*: the hub's requests to the provider's endpoints (JWKS, introspection,",
        "  reports). The introspection call carries the provider's own token for its user; a",
        "  report carries its reason and the text of the messages the reporter chose to attach.",
        "- *push receiver*: a push is the provider's id for its user, a count, an id and a time;",
        "  no sender, no content.",
        "- *provider media host*: the media proxy fetches the file; the gatekeeper user's address",
        "  and identity do not reach the host.",
        "- *provider proxy*: blind mode relays TLS it cannot read; terminating mode reads the",
        "  stream in clear. Message text stays end-to-end encrypted (OMEMO) in every model, and",
        "  its length is padded to a bucket (docs/performance.md).",
        "- *hub logs*: at the default level, JIDs, phone numbers and IP addresses are pseudonyms",
        "  (`[log_privacy]`, docs/operations.md).",
        "",
    ]
    return "\n".join(lines)


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
    tap = LogTap(Observations())
    record = logging.LogRecord("interlink.x", logging.INFO, "", 0, "bound %s", (ALICE,), None)
    assert tap.filter(record)
    stream.write(tap.format(record))
    assert PHONE not in stream.getvalue()
