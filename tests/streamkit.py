"""A scripted peer for driving a sans-I/O ServerStream in memory."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from xml.etree.ElementTree import Element

from interlink.xmpp.jid import JID
from interlink.xmpp.parser import ElementReceived, ParseFailed, StreamFooter, StreamParser
from interlink.xmpp.sasl import StoredCredentials, derive_credentials
from interlink.xmpp.stream import (
    Authenticated,
    BindRequested,
    CredentialsRequested,
    ServerStream,
    SingleDomain,
    StreamConfig,
    StreamEvent,
)

DOMAIN = "hub.test"
PASSWORD = "correct horse"
CREDS = derive_credentials(PASSWORD, 4096)
HOSTS = SingleDomain(DOMAIN)
CONFIG = StreamConfig(hosts=HOSTS, decoy_secret=b"k" * 32)
OPEN = (
    "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' "
    f"to='{DOMAIN}' version='1.0'>"
).encode()
SASL = "urn:ietf:params:xml:ns:xmpp-sasl"


def b64(data: bytes | str) -> str:
    raw = data.encode() if isinstance(data, str) else data
    return base64.b64encode(raw).decode()


@dataclass
class Harness:
    """Feeds a ServerStream, answers its requests like the hub would, and parses its output."""

    config: StreamConfig = CONFIG
    secure: bool = False
    accounts: dict[str, StoredCredentials] = field(default_factory=lambda: {"alice": CREDS})
    bind_error: object | None = None
    events: list[StreamEvent] = field(default_factory=list)
    received: list[Element] = field(default_factory=list)
    footer: bool = False
    now: float = 0.0

    def __post_init__(self) -> None:
        self.stream = ServerStream(self.config, now=self.now, secure=self.secure)
        self._out = StreamParser()

    def send(self, data: bytes) -> list[StreamEvent]:
        return self._answer(self.stream.receive_data(data))

    def _answer(self, events: list[StreamEvent]) -> list[StreamEvent]:
        done: list[StreamEvent] = []
        queue = list(events)
        while queue:
            ev = queue.pop(0)
            done.append(ev)
            if isinstance(ev, CredentialsRequested):
                queue.extend(self.stream.supply_credentials(self.accounts.get(ev.username)))
            elif isinstance(ev, BindRequested):
                from interlink.errors import StanzaError

                if isinstance(self.bind_error, StanzaError):
                    queue.extend(self.stream.refuse_bind(self.bind_error))
                else:
                    resource = ev.resource or "generated"
                    queue.extend(self.stream.accept_bind(JID.parse(f"alice@{DOMAIN}/{resource}")))
        self.events.extend(done)
        self._drain_output()
        if any(isinstance(ev, Authenticated) for ev in done):
            self.restart_parser_for_output()  # the server's next output is a new stream header
        return done

    def _drain_output(self) -> None:
        for ev in self._out.feed(self.stream.data_to_send()):
            if isinstance(ev, ElementReceived):
                self.received.append(ev.element)
            elif isinstance(ev, StreamFooter):
                self.footer = True
            elif isinstance(ev, ParseFailed):
                raise AssertionError(f"server sent bad XML: {ev.error}")

    def restart_parser_for_output(self) -> None:
        """After STARTTLS or SASL success the server sends a new stream header."""
        self._out = StreamParser()

    def last(self) -> Element:
        return self.received[-1]

    def tags(self) -> list[str]:
        return [el.tag.rsplit("}", 1)[-1] for el in self.received]

    def timer(self, now: float) -> list[StreamEvent]:
        return self._answer(self.stream.handle_timer(now))

    def to_bound(self, resource: str = "phone") -> None:
        """STARTTLS, PLAIN, bind: the quickest way to a ready stream."""
        self.to_authenticated()
        self.send(
            b"<iq type='set' id='bind1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
            b"<resource>" + resource.encode() + b"</resource></bind></iq>"
        )

    def to_authenticated(self) -> None:
        """STARTTLS, PLAIN and the restarted stream: ready to bind (or resume)."""
        self.send(OPEN)
        self.send(b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
        self.stream.tls_established()
        self.restart_parser_for_output()
        self.send(OPEN)
        self.send(
            f"<auth xmlns='{SASL}' mechanism='PLAIN'>{b64(chr(0) + 'alice' + chr(0) + PASSWORD)}</auth>".encode()
        )
        self.restart_parser_for_output()
        self.send(OPEN)
