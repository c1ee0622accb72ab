"""The metadata ledger's machinery (tests/integration/test_metadata_ledger.py): what can be
learned and how it is recognised (:class:`Conversation`), what each observer captured
(:class:`Observations`), and how the bytes of the taps (tests/integration/taps.py) become an
observer's view: HTTP requests by path, JWS payloads decoded, TLS records decrypted with the
secrets a party holds, the hub's log lines through the production redaction."""

from __future__ import annotations

import base64
import logging
import os
import re
import wave
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from interlink.config import Settings
from interlink.logs import JsonFormatter
from interlink.settings_map import log_redactor
from tests.integration.taps import (
    Flow,
    NotDecrypted,
    Tap,
    http_requests,
    tls_plaintext,
)

PHONE = "4915112345678"

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
