"""Server-to-server XML streams (RFC 6120 ``jabber:server``), both directions, sans-I/O.

Theory of operation
-------------------
A server-to-server link is two TCP connections, one per direction (XEP-0288 bidirectional
streams are not used): the *originating* server opens an :class:`OutboundStream` and sends
stanzas on it; the *receiving* server accepts it as an :class:`InboundStream` and only reads
stanzas from it. Each object takes the bytes its transport read (``receive_data``), returns
events (:mod:`interlink.xmpp.s2s.events`) and queues bytes to write (``data_to_send``). No
socket, no asyncio and no clock inside: ``now`` is passed in and :meth:`get_timer` says when
:meth:`handle_timer` must run.

Negotiation (RFC 6120 §4.3, §5, §6; XEP-0178; XEP-0220):

1. header, features: ``<starttls><required/></starttls>``. TLS is required both ways: a peer
   that will not start it is refused, and so is one that offers no STARTTLS to us. A stream on a
   direct-TLS socket (XEP-0368) starts ``secure``.
2. after TLS the receiving side offers SASL ``EXTERNAL`` — only if the peer's certificate is
   good for the domain it names in its header (:meth:`PeerGate.certificate_ok`: a trusted chain
   naming the domain, plus the provider's pins or CA) — and the dialback feature. The
   originating side uses EXTERNAL when offered (XEP-0178 §2), dialback otherwise (XEP-0220 §2).
   SASL success restarts the stream; dialback does not.
3. Dialback on the receiving side: when the peer's certificate is good for the claimed domain
   the answer is ``valid`` at once (XEP-0344 §2.3); otherwise the shell asks the claimed
   domain's authoritative server (:class:`DialbackVerifyRequested`, answered by
   :meth:`InboundStream.dialback_verified`). As authoritative server, any stream answers a
   ``<db:verify/>`` from the XEP-0185 key, statelessly.

Only onboarded domains federate: whatever names a domain (the header's ``from``, the SASL
authorization identity, a dialback request) goes through :meth:`PeerGate.admit` first, which
returns the stream error to refuse with (RFC 6120 §4.9.3: ``<not-authorized/>`` for a domain the
hub does not know, ``<policy-violation/>`` for a provider that is suspended or not federated).

Stanzas: inbound, only once a (peer domain, our domain) pair is authenticated, with a ``from``
in the peer domain (else ``<invalid-from/>``) and a ``to`` in one of our authenticated domains
(else ``<host-unknown/>``); they are handed on in the ``jabber:client`` namespace that the rest
of the hub uses (the two namespaces describe the same stanzas, RFC 6120 §4.8.3). Outbound,
:meth:`OutboundStream.send_stanza` queues until the stream is ready (up to
:attr:`S2SConfig.max_pending_stanzas`).

As in :mod:`interlink.xmpp.stream.machine`, transitions are data: :data:`INBOUND` and
:data:`OUTBOUND` map ``(state, input)`` to a handler; a pair with no entry is a stream error
(``<unsupported-stanza-type/>``, or ``<not-authorized/>`` for a stanza too early). A parse
error, a handler's :class:`StreamError`, :meth:`close` and the authentication deadline end the
stream in ``CLOSED`` from any state.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum, auto
from typing import Any, Protocol
from xml.etree.ElementTree import Element

from interlink.errors import StanzaError, StreamError, StreamErrorCondition
from interlink.xmpp import ns
from interlink.xmpp.framing import STREAM_TAG, Framing
from interlink.xmpp.jid import JID, InvalidJID
from interlink.xmpp.parser import (
    ElementReceived,
    ParseFailed,
    ParserEvent,
    StreamFooter,
    StreamHeader,
    StreamParser,
    XmlLimits,
)
from interlink.xmpp.s2s import dialback
from interlink.xmpp.s2s.events import (
    AuthMethod,
    DialbackVerifyAnswered,
    DialbackVerifyRequested,
    PeerAuthenticated,
    Ready,
    S2SEvent,
    StanzaReceived,
    StreamClosed,
    TlsStartRequested,
)
from interlink.xmpp.stanza import Stanza, parse_stanza, to_xml
from interlink.xmpp.stream.config import PRE_AUTH_LIMITS, HostedDomains
from interlink.xmpp.xml import escape_attr, split_qname

EXTERNAL = "EXTERNAL"


# -- what the stream needs from outside ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PeerCertificate:
    """The peer's TLS certificate as the transport saw it: ``der`` (``None``: it sent none) and
    whether the TLS layer verified its chain against the trust store."""

    der: bytes | None = None
    chain_verified: bool = False


NO_CERTIFICATE = PeerCertificate()


class PeerGate(Protocol):
    """Which remote domains may federate, and whether a certificate proves one.

    The hub's implementation reads the provider records (server domains, mode, status, pins, CA)."""

    def admit(self, domain: str) -> StreamError | None:
        """``None`` when ``domain`` is a server domain of an active provider in federated mode;
        otherwise the stream error to refuse it with."""
        ...

    def certificate_ok(self, domain: str, cert: PeerCertificate) -> bool:
        """Whether ``cert`` authenticates ``domain`` (XEP-0178 §3)."""
        ...


@dataclass(frozen=True, slots=True)
class S2SConfig:
    """Settings shared by every s2s stream of one hub (built by the composition root)."""

    hosts: HostedDomains
    gate: PeerGate
    dialback_secret: bytes
    limits: XmlLimits = field(default_factory=XmlLimits)
    pre_auth_limits: XmlLimits = field(default_factory=lambda: PRE_AUTH_LIMITS)
    auth_timeout: float = 30.0  # until a domain is authenticated (inbound) / ready (outbound)
    max_pending_stanzas: int = 1000  # queued on an outbound stream before it is ready
    max_auth_failures: int = 2


class S2SState(Enum):
    WAIT_HEADER = auto()  # before the peer's (first or restarted) stream header
    WAIT_FEATURES = auto()  # outbound: header read, features not yet
    NEGOTIATING = auto()  # inbound: features sent; STARTTLS, SASL or dialback may start
    WAIT_PROCEED = auto()  # outbound: <starttls/> sent
    TLS_STARTING = auto()  # the shell upgrades the transport
    WAIT_SASL = auto()  # outbound: <auth mechanism='EXTERNAL'/> sent
    WAIT_DIALBACK = auto()  # outbound: <db:result/> sent
    VERIFYING = auto()  # outbound, verify-only stream: <db:verify/> sent
    READY = auto()  # stanzas flow
    CLOSED = auto()

    __hash__ = object.__hash__


class Input(Enum):
    HEADER = "stream header"
    FOOTER = "stream footer"
    FEATURES = "stream features"
    STREAM_ERROR = "stream error"
    STARTTLS = "starttls"
    PROCEED = "proceed"
    TLS_FAILURE = "tls failure"
    SASL_AUTH = "sasl auth"
    SASL_SUCCESS = "sasl success"
    SASL_FAILURE = "sasl failure"
    DB_RESULT = "db:result"
    DB_VERIFY = "db:verify"
    STANZA = "stanza"
    OTHER = "other element"
    TLS_ESTABLISHED = "tls_established()"
    DIALBACK_VERIFIED = "dialback_verified()"

    __hash__ = object.__hash__


_ELEMENTS: Mapping[str, Input] = {
    ns.qname(ns.STREAM, "features"): Input.FEATURES,
    ns.qname(ns.STREAM, "error"): Input.STREAM_ERROR,
    ns.qname(ns.TLS, "starttls"): Input.STARTTLS,
    ns.qname(ns.TLS, "proceed"): Input.PROCEED,
    ns.qname(ns.TLS, "failure"): Input.TLS_FAILURE,
    ns.qname(ns.SASL, "auth"): Input.SASL_AUTH,
    ns.qname(ns.SASL, "success"): Input.SASL_SUCCESS,
    ns.qname(ns.SASL, "failure"): Input.SASL_FAILURE,
    dialback.RESULT: Input.DB_RESULT,
    dialback.VERIFY: Input.DB_VERIFY,
    ns.qname(ns.SERVER, "message"): Input.STANZA,
    ns.qname(ns.SERVER, "presence"): Input.STANZA,
    ns.qname(ns.SERVER, "iq"): Input.STANZA,
}
_STARTTLS_FEATURE = ns.qname(ns.TLS, "starttls")
_MECHANISMS = ns.qname(ns.SASL, "mechanisms")
_MECHANISM = ns.qname(ns.SASL, "mechanism")
_SERVER_PREFIX = "{" + ns.SERVER + "}"


def _client_ns(el: Element) -> Element:
    """The same stanza in ``jabber:client``, the namespace the hub's stanza code reads."""
    for node in el.iter():
        if node.tag.startswith(_SERVER_PREFIX):
            node.tag = "{" + ns.CLIENT + "}" + node.tag[len(_SERVER_PREFIX) :]
    return el


def _domain_of(text: str | None) -> str | None:
    if not text:
        return None
    try:
        jid = JID.parse(text)
    except InvalidJID:
        return None
    return jid.domain if jid.local is None and jid.resource is None else None


Handler = Callable[[Any, Any, list[S2SEvent]], None]


class _Stream:
    """What both directions share: output, the parser, stream errors, closing, the deadline."""

    table: Mapping[tuple[S2SState, Input], Handler]

    def __init__(self, config: S2SConfig, *, now: float, secure: bool) -> None:
        self.config = config
        self.secure = secure
        self.state = S2SState.WAIT_HEADER
        self.peer_certificate = NO_CERTIFICATE
        self.bytes_in = 0
        self.bytes_out = 0
        self._out: list[str] = []
        self._parser = StreamParser(config.pre_auth_limits)
        self._deadline: float | None = now + config.auth_timeout
        self._header_sent = False

    # -- output ---------------------------------------------------------------------------------
    def data_to_send(self) -> bytes:
        if not self._out:
            return b""
        data = "".join(self._out).encode()
        self._out.clear()
        self.bytes_out += len(data)
        return data

    @property
    def closed(self) -> bool:
        return self.state is S2SState.CLOSED

    def _header(self, *, from_: str, to: str | None, stream_id: str | None) -> None:
        attrs = f' from="{escape_attr(from_)}"'
        if to:
            attrs += f' to="{escape_attr(to)}"'
        if stream_id is not None:
            attrs += f' id="{stream_id}"'
        self._out.append(
            "<?xml version='1.0'?>"
            f'<stream:stream xmlns="{ns.SERVER}" xmlns:stream="{ns.STREAM}" '
            f'xmlns:db="{dialback.NS}"{attrs} version="1.0" xml:lang="en">'
        )
        self._header_sent = True

    def _write_own_header(self) -> None:
        raise NotImplementedError

    # -- timers ---------------------------------------------------------------------------------
    def get_timer(self) -> float | None:
        return None if self.closed else self._deadline

    def handle_timer(self, now: float) -> list[S2SEvent]:
        if self._deadline is not None and now >= self._deadline and not self.closed:
            return self.close(
                StreamError(
                    StreamErrorCondition.CONNECTION_TIMEOUT,
                    "the stream did not authenticate in time",
                )
            )
        return []

    # -- input ----------------------------------------------------------------------------------
    def receive_data(self, data: bytes) -> list[S2SEvent]:
        """Feed what the transport read; returns the events it completed."""
        events: list[S2SEvent] = []
        if self.closed or self.state is S2SState.TLS_STARTING:
            return events  # a TLS handshake in progress is not XML
        self.bytes_in += len(data)
        parser = self._parser
        for event in parser.feed(data):
            self._parser_event(event, events)
            if self.closed or self._parser is not parser:
                break  # closed, or restarted: the rest belongs to a new parser (none comes)
        return events

    def _parser_event(self, event: ParserEvent, events: list[S2SEvent]) -> None:
        if isinstance(event, ParseFailed):
            events.extend(self.close(event.error))
            return
        if isinstance(event, StreamFooter):
            events.extend(self.close())
            return
        if isinstance(event, StreamHeader):
            self._dispatch(Input.HEADER, event, events)
            return
        assert isinstance(event, ElementReceived)
        kind = _ELEMENTS.get(event.element.tag, Input.OTHER)
        self._dispatch(kind, event, events)

    def _dispatch(self, kind: Input, arg: object, events: list[S2SEvent]) -> None:
        handler = self.table.get((self.state, kind))
        try:
            if handler is None:
                if kind is Input.STREAM_ERROR:
                    self._remote_error(arg, events)
                    return
                raise self._unexpected(kind, arg)
            handler(self, arg, events)
        except StreamError as err:
            events.extend(self.close(err))

    def _unexpected(self, kind: Input, arg: object) -> StreamError:
        if kind is Input.HEADER:
            return StreamError(StreamErrorCondition.BAD_FORMAT, "unexpected stream header")
        if kind is Input.STANZA:
            return StreamError(StreamErrorCondition.NOT_AUTHORIZED, "stanzas before authentication")
        local = ""
        if isinstance(arg, ElementReceived):
            namespace, local = split_qname(arg.element.tag)
            if namespace not in (ns.SERVER, ns.STREAM, ns.TLS, ns.SASL, dialback.NS):
                return StreamError(
                    StreamErrorCondition.INVALID_NAMESPACE,
                    f"unsupported namespace '{namespace}' for a top-level element",
                )
        return StreamError(
            StreamErrorCondition.UNSUPPORTED_STANZA_TYPE,
            f"unexpected element <{local or kind.value}/> at this stage of the stream",
        )

    def _remote_error(self, arg: object, events: list[S2SEvent]) -> None:
        assert isinstance(arg, ElementReceived)
        condition = StreamErrorCondition.UNDEFINED_CONDITION
        text = ""
        for child in arg.element:
            namespace, local = split_qname(child.tag)
            if namespace != ns.STREAMS_ERR:
                continue
            if local == "text":
                text = child.text or ""
            else:
                try:
                    condition = StreamErrorCondition(local)
                except ValueError:
                    condition = StreamErrorCondition.UNDEFINED_CONDITION
        self._finish()
        events.append(StreamClosed(StreamError(condition, text), remote=True))

    def _restart(self, *, authenticated: bool) -> None:
        """A new stream on the same transport (after TLS or SASL, RFC 6120 §4.3.3)."""
        self._parser.release()
        self._parser = StreamParser(
            self.config.limits if authenticated else self.config.pre_auth_limits
        )
        self.state = S2SState.WAIT_HEADER

    def _authenticated_limits(self) -> None:
        self._parser.limits = self.config.limits
        self._deadline = None

    # -- closing --------------------------------------------------------------------------------
    def close(self, error: StreamError | None = None) -> list[S2SEvent]:
        """Close from our side, with the stream error ``error`` if given (RFC 6120 §4.9)."""
        if self.closed:
            return []
        if not self._header_sent:
            self._write_own_header()
        if error is not None:
            error.__traceback__ = None  # a reference cycle otherwise: see ServerStream.close
            self._out.append(Framing.TCP.stream_error(error))
        self._out.append("</stream:stream>")
        self._finish()
        return [StreamClosed(error)]

    def _finish(self) -> None:
        self.state = S2SState.CLOSED
        self._deadline = None
        self._parser.release()


# == the receiving side ==========================================================================


class InboundStream(_Stream):
    """A stream another server opened to us: we read its stanzas (see the module docstring)."""

    def __init__(self, config: S2SConfig, *, now: float, secure: bool = False) -> None:
        super().__init__(config, now=now, secure=secure)
        self.stream_id = ""
        self.local_domain = config.hosts.default
        self.peer_domain: str | None = None  # the header's 'from'
        #: (peer domain, our domain) pairs the peer has proved, by SASL or dialback
        self.authenticated: set[tuple[str, str]] = set()
        self._sasl_done = False
        self._auth_failures = 0
        self._dialback_pending: set[tuple[str, str]] = set()

    @property
    def peer_domains(self) -> frozenset[str]:
        return frozenset(peer for peer, _ in self.authenticated)

    def _write_own_header(self) -> None:
        self._header(from_=self.local_domain, to=self.peer_domain, stream_id=self._new_id())

    def _new_id(self) -> str:
        self.stream_id = secrets.token_hex(12)
        return self.stream_id

    # -- calls from the shell ---------------------------------------------------------------------
    def tls_established(self, certificate: PeerCertificate) -> list[S2SEvent]:
        """The transport is now TLS; ``certificate`` is what the peer presented."""
        events: list[S2SEvent] = []
        self._dispatch(Input.TLS_ESTABLISHED, certificate, events)
        return events

    def tls_direct(self, certificate: PeerCertificate) -> None:
        """Direct TLS (XEP-0368): the handshake happened before the first byte."""
        self.secure = True
        self.peer_certificate = certificate

    def dialback_verified(self, originating: str, receiving: str, valid: bool) -> list[S2SEvent]:
        """The authoritative server's answer to a :class:`DialbackVerifyRequested`."""
        events: list[S2SEvent] = []
        self._dispatch(Input.DIALBACK_VERIFIED, (originating, receiving, valid), events)
        return events

    # -- handlers ---------------------------------------------------------------------------------
    def _on_header(self, header: StreamHeader, events: list[S2SEvent]) -> None:
        attrs = header.attrs
        to = _domain_of(attrs.get("to"))
        if to is not None and self.config.hosts.serves(to):
            self.local_domain = to
        peer = _domain_of(attrs.get("from"))
        self.peer_domain = peer
        self._write_own_header()
        if header.tag != STREAM_TAG:
            raise StreamError(StreamErrorCondition.BAD_FORMAT, "not a stream header")
        if to is None or not self.config.hosts.serves(to):
            raise StreamError(
                StreamErrorCondition.HOST_UNKNOWN, f"this server does not serve {attrs.get('to')}"
            )
        if not attrs.get("version", "0.9").startswith("1."):
            raise StreamError(
                StreamErrorCondition.UNSUPPORTED_VERSION, "only XMPP stream version 1.0 is served"
            )
        if peer is not None:
            refusal = self.config.gate.admit(peer)
            if refusal is not None:
                raise refusal
        elif attrs.get("from"):
            raise StreamError(StreamErrorCondition.INVALID_FROM, "'from' is not a domain")
        self._out.append(f"<stream:features>{self._features()}</stream:features>")
        self.state = S2SState.READY if self._sasl_done else S2SState.NEGOTIATING

    def _features(self) -> str:
        if self._sasl_done:
            return ""
        if not self.secure:
            return f'<starttls xmlns="{ns.TLS}"><required/></starttls>'
        parts = []
        if self.peer_domain is not None and self.config.gate.certificate_ok(
            self.peer_domain, self.peer_certificate
        ):
            parts.append(
                f'<mechanisms xmlns="{ns.SASL}"><mechanism>{EXTERNAL}</mechanism></mechanisms>'
            )
        parts.append(f'<dialback xmlns="{dialback.FEATURE_NS}"><errors/></dialback>')
        return "".join(parts)

    def _on_starttls(self, _: ElementReceived, events: list[S2SEvent]) -> None:
        if self.secure:
            raise StreamError(StreamErrorCondition.POLICY_VIOLATION, "TLS is already on")
        self._out.append(f'<proceed xmlns="{ns.TLS}"/>')
        self.state = S2SState.TLS_STARTING
        events.append(TlsStartRequested())

    def _on_tls(self, certificate: PeerCertificate, events: list[S2SEvent]) -> None:
        self.secure = True
        self.peer_certificate = certificate
        self._restart(authenticated=False)

    def _require_tls(self) -> None:
        if not self.secure:
            raise StreamError(
                StreamErrorCondition.POLICY_VIOLATION, "start TLS before authenticating"
            )

    def _on_auth(self, arg: ElementReceived, events: list[S2SEvent]) -> None:
        """SASL EXTERNAL with the peer's certificate (RFC 6120 §6.4, XEP-0178 §2)."""
        self._require_tls()
        element = arg.element
        if element.get("mechanism") != EXTERNAL:
            self._sasl_failure("invalid-mechanism")
            return
        raw = (element.text or "").strip()
        try:
            authzid = "" if raw in ("", "=") else base64.b64decode(raw, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            self._sasl_failure("incorrect-encoding")
            return
        domain = _domain_of(authzid) if authzid else self.peer_domain
        if domain is None or (self.peer_domain is not None and domain != self.peer_domain):
            self._sasl_failure("invalid-authzid")
            return
        refusal = self.config.gate.admit(domain)
        if refusal is not None:
            raise refusal
        if not self.config.gate.certificate_ok(domain, self.peer_certificate):
            self._sasl_failure("not-authorized")
            return
        self._out.append(f'<success xmlns="{ns.SASL}"/>')
        self.peer_domain = domain
        self._sasl_done = True
        self.authenticated.add((domain, self.local_domain))
        self._deadline = None
        events.append(PeerAuthenticated(domain, AuthMethod.SASL_EXTERNAL))
        self._restart(authenticated=True)

    def _sasl_failure(self, condition: str) -> None:
        self._out.append(f'<failure xmlns="{ns.SASL}"><{condition}/></failure>')
        self._auth_failures += 1
        if self._auth_failures >= self.config.max_auth_failures:
            raise StreamError(StreamErrorCondition.NOT_AUTHORIZED, "too many failed attempts")

    def _on_db_result(self, arg: ElementReceived, events: list[S2SEvent]) -> None:
        """XEP-0220 §2.1.2: a peer asks to be accepted for a domain."""
        self._require_tls()
        element = arg.element
        originating = _domain_of(element.get("from"))
        receiving = _domain_of(element.get("to"))
        if originating is None or receiving is None:
            raise StreamError(StreamErrorCondition.INVALID_FROM, "db:result needs from and to")
        if element.get("type") is not None:
            raise StreamError(
                StreamErrorCondition.UNSUPPORTED_STANZA_TYPE, "a db:result answer on our stream"
            )
        if not self.config.hosts.serves(receiving):
            self._out.append(dialback.result_error(receiving, originating, "item-not-found"))
            return
        refusal = self.config.gate.admit(originating)
        if refusal is not None:
            raise refusal
        pair = (originating, receiving)
        if pair in self.authenticated:
            self._out.append(dialback.result_answer(receiving, originating, valid=True))
            return
        if self.config.gate.certificate_ok(originating, self.peer_certificate):
            self._dialback_done(originating, receiving, True, events)  # XEP-0344 §2.3
            return
        self._dialback_pending.add(pair)
        events.append(
            DialbackVerifyRequested(
                originating, receiving, self.stream_id, (element.text or "").strip()
            )
        )

    def _on_dialback_verified(self, arg: tuple[str, str, bool], events: list[S2SEvent]) -> None:
        originating, receiving, valid = arg
        if (originating, receiving) not in self._dialback_pending:
            return  # not asked, or the answer came twice
        self._dialback_pending.discard((originating, receiving))
        self._dialback_done(originating, receiving, valid, events)

    def _dialback_done(
        self, originating: str, receiving: str, valid: bool, events: list[S2SEvent]
    ) -> None:
        self._out.append(dialback.result_answer(receiving, originating, valid=valid))
        if not valid:
            # XEP-0220 §2.4.2: an invalid key ends the stream
            raise StreamError(StreamErrorCondition.NOT_AUTHORIZED, "dialback key not valid")
        self.authenticated.add((originating, receiving))
        self._authenticated_limits()
        self.state = S2SState.READY
        events.append(PeerAuthenticated(originating, AuthMethod.DIALBACK))

    def _on_db_verify(self, arg: ElementReceived, events: list[S2SEvent]) -> None:
        """XEP-0220 §2.3.2: as authoritative server, whether we sent this key."""
        element = arg.element
        receiving = element.get("from", "")
        originating = element.get("to", "")
        stream_id = element.get("id", "")
        if not self.config.hosts.serves(originating):
            raise StreamError(
                StreamErrorCondition.HOST_UNKNOWN, f"this server is not {originating}"
            )
        valid = dialback.key_matches(
            self.config.dialback_secret, receiving, originating, stream_id, element.text or ""
        )
        self._out.append(dialback.verify_answer(originating, receiving, stream_id, valid=valid))

    def _on_stanza(self, arg: ElementReceived, events: list[S2SEvent]) -> None:
        element = arg.element
        sender = element.get("from")
        try:
            sender_jid = JID.parse(sender or "")
            to_jid = JID.parse(element.get("to") or "")
        except InvalidJID:
            raise StreamError(
                StreamErrorCondition.INVALID_FROM, "a server stanza needs valid 'from' and 'to'"
            ) from None
        if sender_jid.domain not in self.peer_domains:
            raise StreamError(
                StreamErrorCondition.INVALID_FROM,
                f"{sender_jid.domain} is not authenticated on this stream",
            )
        if (sender_jid.domain, to_jid.domain) not in self.authenticated:
            raise StreamError(
                StreamErrorCondition.HOST_UNKNOWN,
                f"{to_jid.domain} is not authenticated for {sender_jid.domain} on this stream",
            )
        try:
            stanza = parse_stanza(_client_ns(element))
        except StanzaError:
            raise StreamError(
                StreamErrorCondition.INVALID_XML, "the stanza is not well-formed XMPP"
            ) from None
        events.append(StanzaReceived(stanza, arg.size))


# == the originating side ========================================================================


class OutboundStream(_Stream):
    """A stream we open to ``remote`` as ``local``: we write stanzas on it. ``verify_only``
    streams authenticate nothing and carry the ``<db:verify/>`` of :meth:`request_verify`."""

    def __init__(
        self,
        config: S2SConfig,
        *,
        local: str,
        remote: str,
        now: float,
        secure: bool = False,
        have_certificate: bool = True,
        verify_only: bool = False,
    ) -> None:
        super().__init__(config, now=now, secure=secure)
        self.local = local
        self.remote = remote
        self.stream_id = ""
        self.have_certificate = have_certificate
        self.verify_only = verify_only
        self.method: AuthMethod | None = None
        self._sasl_done = False
        self._pending: list[str] = []
        self._verifies: list[str] = []
        self._verify_waiting = 0
        self._write_own_header()

    def _write_own_header(self) -> None:
        self._header(from_=self.local, to=self.remote, stream_id=None)

    # -- calls from the shell ---------------------------------------------------------------------
    def tls_established(self, certificate: PeerCertificate) -> list[S2SEvent]:
        events: list[S2SEvent] = []
        self._dispatch(Input.TLS_ESTABLISHED, certificate, events)
        return events

    def send_stanza(self, stanza: Stanza) -> list[S2SEvent]:
        """Queue ``stanza`` (``from`` in our domain, ``to`` in the peer's).

        Raises: ValueError (a stanza this stream cannot carry: the caller's mistake)."""
        if stanza.from_ is None or stanza.from_.domain != self.local:
            raise ValueError(f"an s2s stanza to {self.remote} must come from {self.local}")
        if stanza.to is None or stanza.to.domain != self.remote:
            raise ValueError(f"this s2s stream carries stanzas to {self.remote} only")
        xml = to_xml(stanza, ns.CLIENT)  # unqualified: the stream's default (jabber:server)
        if self.state is S2SState.READY:
            self._out.append(xml)
            return []
        if self.closed:
            raise ValueError("the stream is closed")
        if len(self._pending) >= self.config.max_pending_stanzas:
            return self.close(
                StreamError(
                    StreamErrorCondition.RESOURCE_CONSTRAINT,
                    "too many stanzas waiting for the stream",
                    local=True,
                )
            )
        self._pending.append(xml)
        return []

    @property
    def pending(self) -> int:
        return len(self._pending)

    def request_verify(self, receiving: str, originating: str, stream_id: str, key: str) -> None:
        """Ask (as ``receiving``) whether ``originating`` sent ``key`` on stream ``stream_id``."""
        xml = dialback.verify_request(receiving, originating, stream_id, key)
        if self.state is S2SState.VERIFYING:
            self._out.append(xml)
            self._verify_waiting += 1
        else:
            self._verifies.append(xml)

    # -- handlers ---------------------------------------------------------------------------------
    def _on_header(self, header: StreamHeader, events: list[S2SEvent]) -> None:
        attrs = header.attrs
        if header.tag != STREAM_TAG:
            raise StreamError(StreamErrorCondition.BAD_FORMAT, "not a stream header")
        if not attrs.get("version", "0.9").startswith("1."):
            raise StreamError(
                StreamErrorCondition.UNSUPPORTED_VERSION, "XMPP 1.0 (STARTTLS) is required"
            )
        self.stream_id = attrs.get("id", "")
        if not self.stream_id:
            raise StreamError(StreamErrorCondition.INVALID_XML, "the stream header has no id")
        self.state = S2SState.WAIT_FEATURES

    def _on_features(self, arg: ElementReceived, events: list[S2SEvent]) -> None:
        features = arg.element
        if self._sasl_done:
            self._become_ready(events)
            return
        if not self.secure:
            if features.find(_STARTTLS_FEATURE) is None:
                raise StreamError(
                    StreamErrorCondition.POLICY_VIOLATION,
                    f"{self.remote} offers no STARTTLS; TLS is required",
                    local=True,
                )
            self._out.append(f'<starttls xmlns="{ns.TLS}"/>')
            self.state = S2SState.WAIT_PROCEED
            return
        if self.verify_only:
            self.state = S2SState.VERIFYING
            self._verify_waiting += len(self._verifies)
            self._out.extend(self._verifies)
            self._verifies.clear()
            return
        mechanisms = features.find(_MECHANISMS)
        offered = (
            {(m.text or "").strip() for m in mechanisms.iter(_MECHANISM)}
            if mechanisms is not None
            else set()
        )
        if EXTERNAL in offered and self.have_certificate:
            encoded = base64.b64encode(self.local.encode()).decode()
            self._out.append(f'<auth xmlns="{ns.SASL}" mechanism="{EXTERNAL}">{encoded}</auth>')
            self.state = S2SState.WAIT_SASL
            return
        self._start_dialback(features)

    def _start_dialback(self, features: Element | None) -> None:
        if features is not None and features.find(dialback.FEATURE) is None:
            raise StreamError(
                StreamErrorCondition.POLICY_VIOLATION,
                f"{self.remote} offers neither SASL EXTERNAL for our certificate nor dialback",
                local=True,
            )
        key = dialback.key(self.config.dialback_secret, self.remote, self.local, self.stream_id)
        self._out.append(dialback.result_request(self.local, self.remote, key))
        self.state = S2SState.WAIT_DIALBACK

    def _on_proceed(self, _: ElementReceived, events: list[S2SEvent]) -> None:
        self.state = S2SState.TLS_STARTING
        events.append(TlsStartRequested())

    def _on_tls_failure(self, _: ElementReceived, events: list[S2SEvent]) -> None:
        self._finish()  # RFC 6120 §5.4.2.2: the receiving entity closes the stream
        events.append(
            StreamClosed(StreamError(StreamErrorCondition.UNDEFINED_CONDITION, "TLS refused"))
        )

    def _on_tls(self, certificate: PeerCertificate, events: list[S2SEvent]) -> None:
        self.secure = True
        self.peer_certificate = certificate
        if not self.config.gate.certificate_ok(self.remote, certificate):
            raise StreamError(
                StreamErrorCondition.POLICY_VIOLATION,
                f"the certificate of {self.remote} does not authenticate it",
                local=True,
            )
        self._restart(authenticated=False)
        self._write_own_header()

    def _on_sasl_success(self, _: ElementReceived, events: list[S2SEvent]) -> None:
        self._sasl_done = True
        self.method = AuthMethod.SASL_EXTERNAL
        events.append(PeerAuthenticated(self.remote, AuthMethod.SASL_EXTERNAL))
        self._restart(authenticated=True)
        self._write_own_header()

    def _on_sasl_failure(self, _: ElementReceived, events: list[S2SEvent]) -> None:
        self._start_dialback(None)  # XEP-0178 §2.4: fall back to dialback

    def _on_db_result(self, arg: ElementReceived, events: list[S2SEvent]) -> None:
        element = arg.element
        if element.get("from") != self.remote or element.get("to") != self.local:
            raise StreamError(StreamErrorCondition.INVALID_FROM, "db:result for another pair")
        if element.get("type") != "valid":
            self._finish()
            events.append(
                StreamClosed(
                    StreamError(
                        StreamErrorCondition.NOT_AUTHORIZED,
                        f"{self.remote} refused our dialback ({element.get('type')})",
                        local=True,
                    )
                )
            )
            self._out.append("</stream:stream>")
            return
        self.method = AuthMethod.DIALBACK
        events.append(PeerAuthenticated(self.remote, AuthMethod.DIALBACK))
        self._become_ready(events)

    def _on_db_verify_answer(self, arg: ElementReceived, events: list[S2SEvent]) -> None:
        element = arg.element
        events.append(
            DialbackVerifyAnswered(
                originating=element.get("from", ""),
                receiving=element.get("to", ""),
                stream_id=element.get("id", ""),
                valid=element.get("type") == "valid",
            )
        )
        self._verify_waiting -= 1
        if self._verify_waiting <= 0 and not self._verifies:
            events.extend(self.close())

    def _become_ready(self, events: list[S2SEvent]) -> None:
        self.state = S2SState.READY
        self._authenticated_limits()
        self._out.extend(self._pending)
        self._pending.clear()
        events.append(Ready(self.remote))

    def _on_inbound_verify(self, arg: ElementReceived, events: list[S2SEvent]) -> None:
        """Some servers (ejabberd, Prosody) ask their db:verify on the stream we opened to
        them; the answer is the same as on an inbound stream."""
        element = arg.element
        receiving = element.get("from", "")
        originating = element.get("to", "")
        stream_id = element.get("id", "")
        if element.get("type") is not None:
            self._on_db_verify_answer(arg, events)
            return
        valid = originating == self.local and dialback.key_matches(
            self.config.dialback_secret, receiving, originating, stream_id, element.text or ""
        )
        self._out.append(dialback.verify_answer(originating, receiving, stream_id, valid=valid))


_S = S2SState
_I = Input

#: The receiving side: (state, input) -> handler.
INBOUND: Mapping[tuple[S2SState, Input], Handler] = {
    (_S.WAIT_HEADER, _I.HEADER): InboundStream._on_header,
    (_S.NEGOTIATING, _I.STARTTLS): InboundStream._on_starttls,
    (_S.TLS_STARTING, _I.TLS_ESTABLISHED): InboundStream._on_tls,
    (_S.NEGOTIATING, _I.SASL_AUTH): InboundStream._on_auth,
    (_S.NEGOTIATING, _I.DB_RESULT): InboundStream._on_db_result,
    (_S.READY, _I.DB_RESULT): InboundStream._on_db_result,  # more domains on one stream
    (_S.NEGOTIATING, _I.DIALBACK_VERIFIED): InboundStream._on_dialback_verified,
    (_S.READY, _I.DIALBACK_VERIFIED): InboundStream._on_dialback_verified,
    (_S.NEGOTIATING, _I.DB_VERIFY): InboundStream._on_db_verify,
    (_S.READY, _I.DB_VERIFY): InboundStream._on_db_verify,
    (_S.READY, _I.STANZA): InboundStream._on_stanza,
}
InboundStream.table = INBOUND

#: The originating side: (state, input) -> handler.
OUTBOUND: Mapping[tuple[S2SState, Input], Handler] = {
    (_S.WAIT_HEADER, _I.HEADER): OutboundStream._on_header,
    (_S.WAIT_FEATURES, _I.FEATURES): OutboundStream._on_features,
    (_S.WAIT_PROCEED, _I.PROCEED): OutboundStream._on_proceed,
    (_S.WAIT_PROCEED, _I.TLS_FAILURE): OutboundStream._on_tls_failure,
    (_S.TLS_STARTING, _I.TLS_ESTABLISHED): OutboundStream._on_tls,
    (_S.WAIT_SASL, _I.SASL_SUCCESS): OutboundStream._on_sasl_success,
    (_S.WAIT_SASL, _I.SASL_FAILURE): OutboundStream._on_sasl_failure,
    (_S.WAIT_DIALBACK, _I.DB_RESULT): OutboundStream._on_db_result,
    (_S.WAIT_DIALBACK, _I.DB_VERIFY): OutboundStream._on_inbound_verify,
    (_S.READY, _I.DB_VERIFY): OutboundStream._on_inbound_verify,
    (_S.VERIFYING, _I.DB_VERIFY): OutboundStream._on_inbound_verify,
}
OutboundStream.table = OUTBOUND


__all__ = [
    "EXTERNAL",
    "INBOUND",
    "NO_CERTIFICATE",
    "OUTBOUND",
    "InboundStream",
    "Input",
    "OutboundStream",
    "PeerCertificate",
    "PeerGate",
    "S2SConfig",
    "S2SState",
]
