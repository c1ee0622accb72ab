"""The XML stream state machine, server role (RFC 6120 §4–§7, RFC 7395 for WebSocket framing).

Theory of operation
-------------------
A :class:`ServerStream` is one client-to-server stream. The asyncio shell feeds it bytes
(:meth:`ServerStream.receive_data`, or :meth:`ServerStream.receive_frame` for WebSocket), acts on
the events it returns and writes out :meth:`ServerStream.data_to_send`. The stream never does I/O,
never reads a clock (``now`` is passed in) and never blocks: where it needs something from outside
it emits an event and waits for the matching call.

    event                    the shell answers with (input arriving meanwhile waits)
    -----------------------  -------------------------------------------------
    TlsStartRequested        upgrade the transport, then tls_established()
    CredentialsRequested     supply_credentials(stored credentials or None)
    Authenticated            (nothing; informational)
    BindRequested            accept_bind(full JID) or refuse_bind(StanzaError)
    StanzaReceived           route the stanza (its ``from`` is already stamped)
    StreamClosed             close the transport once data_to_send() is flushed

States move forward only:

    WAIT_HEADER ─header→ NEGOTIATING ─<starttls/>→ TLS_STARTING ─tls_established()→ WAIT_HEADER
    NEGOTIATING ─<auth/>→ SASL ─success→ WAIT_HEADER (authenticated)
    NEGOTIATING (authenticated) ─bind iq→ BINDING ─accept_bind()→ READY
    any ─footer, error or close()→ CLOSED

The stages a stream goes through are kept in three fields: ``secure`` (TLS is on), ``username``
(SASL succeeded) and ``jid`` (a resource is bound); features offered after each restart follow
from them. Until a resource is bound the stream has a deadline (:meth:`get_timer`).
"""

from __future__ import annotations

import base64
import binascii
import secrets
from dataclasses import dataclass, field
from enum import Enum, auto
from xml.etree.ElementTree import Element

from interlink.errors import (
    SaslCondition,
    SaslFailure,
    StanzaError,
    StreamError,
    StreamErrorCondition,
)
from interlink.xmpp import ns
from interlink.xmpp.jid import JID, InvalidJID
from interlink.xmpp.parser import (
    WS_OPEN,
    ElementReceived,
    Framing,
    ParserEvent,
    StreamFooter,
    StreamHeader,
    StreamParser,
    XmlLimits,
)
from interlink.xmpp.sasl import (
    MECHANISMS,
    NeedCredentials,
    NeedTokenCheck,
    SaslChallenge,
    SaslExchange,
    SaslSuccess,
    StoredCredentials,
    start_exchange,
)
from interlink.xmpp.sasl.mechanisms import OAUTHBEARER, PLAIN, SaslStep
from interlink.xmpp.stanza import (
    STANZA_TAGS,
    Iq,
    IqType,
    Message,
    MessageType,
    Presence,
    PresenceType,
    Stanza,
    error_element,
    parse_stanza,
    to_xml,
)
from interlink.xmpp.xml import escape_attr, escape_text, serialize, split_qname

_STREAM_TAG = ns.qname(ns.STREAM, "stream")
_STARTTLS = ns.qname(ns.TLS, "starttls")
_AUTH = ns.qname(ns.SASL, "auth")
_RESPONSE = ns.qname(ns.SASL, "response")
_ABORT = ns.qname(ns.SASL, "abort")
_IQ = ns.qname(ns.CLIENT, "iq")
_BIND = ns.qname(ns.BIND, "bind")
_RESOURCE = ns.qname(ns.BIND, "resource")
_SESSION = ns.qname(ns.SESSION, "session")
_KNOWN_NAMESPACES = frozenset((ns.CLIENT, ns.TLS, ns.SASL, ns.STREAM))


class StreamState(Enum):
    WAIT_HEADER = auto()
    NEGOTIATING = auto()
    TLS_STARTING = auto()
    SASL = auto()
    WAIT_CREDENTIALS = auto()
    BINDING = auto()
    READY = auto()
    CLOSED = auto()


_WAITING = frozenset((StreamState.WAIT_CREDENTIALS, StreamState.BINDING))


@dataclass(frozen=True, slots=True)
class StreamConfig:
    """What a stream needs to know about its server; built once by the composition root."""

    domain: str
    limits: XmlLimits = field(default_factory=XmlLimits)
    starttls_available: bool = True
    tls_required: bool = True
    auth_timeout: float = 30.0
    max_auth_failures: int = 3
    decoy_secret: bytes = b""
    decoy_iterations: int = 4096
    oauthbearer: bool = False  # offer SASL OAUTHBEARER (inside TLS) for third-party users
    # Subdomains also served (".interop.<domain>": third-party users' addresses live there).
    hosted_suffix: str = ""


# -- events ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TlsStartRequested:
    pass


@dataclass(frozen=True, slots=True)
class CredentialsRequested:
    mechanism: str
    username: str


@dataclass(frozen=True, slots=True)
class TokenCheckRequested:
    """OAUTHBEARER: verify ``token``; answer with :meth:`ServerStream.supply_token_result`."""

    token: str
    authzid: str


@dataclass(frozen=True, slots=True)
class Authenticated:
    username: str


@dataclass(frozen=True, slots=True)
class BindRequested:
    resource: str | None


@dataclass(frozen=True, slots=True)
class StanzaReceived:
    stanza: Stanza
    size: int


@dataclass(frozen=True, slots=True)
class StreamClosed:
    """The stream is over. ``error`` is the stream error sent, if any; ``by_peer`` says whether
    the peer closed it cleanly."""

    error: StreamError | None
    by_peer: bool


StreamEvent = (
    TlsStartRequested
    | CredentialsRequested
    | TokenCheckRequested
    | Authenticated
    | BindRequested
    | StanzaReceived
    | StreamClosed
)


class ServerStream:
    """One client-to-server XML stream, server side."""

    def __init__(
        self,
        config: StreamConfig,
        *,
        now: float,
        framing: Framing = Framing.TCP,
        secure: bool = False,
    ) -> None:
        self.config = config
        self.framing = framing
        self.secure = secure
        self.state = StreamState.WAIT_HEADER
        self.username: str | None = None
        self.jid: JID | None = None
        self.stream_id = ""
        self._domain_jid = JID.parse(config.domain)
        self._parser = StreamParser(config.limits, framing)
        self._out: list[str] = []
        self._header_sent = False
        self._deadline: float | None = now + config.auth_timeout
        self._sasl: SaslExchange | None = None
        self._auth_failures = 0
        self._bind_iq_id = ""
        self._deferred: list[ParserEvent] = []
        self._token_authzid = ""
        self._host = config.domain  # the domain the peer asked for (hub or interop subdomain)
        # WebSocket frames carry no enclosing default namespace.
        self.content_ns: str | None = ns.CLIENT if framing is Framing.TCP else None

    # -- output -------------------------------------------------------------------------------
    def data_to_send(self) -> bytes:
        """Pending output as one byte string (TCP framing)."""
        if not self._out:
            return b""
        data = "".join(self._out).encode()
        self._out.clear()
        return data

    def frames_to_send(self) -> list[str]:
        """Pending output, one complete element per item (WebSocket framing, RFC 7395 §3.3.3)."""
        frames, self._out = self._out, []
        return frames

    @property
    def has_output(self) -> bool:
        return bool(self._out)

    def send_stanza(self, stanza: Stanza) -> None:
        if self.state is StreamState.READY:
            self._out.append(to_xml(stanza, self.content_ns))

    def send_xml(self, xml: str) -> None:
        """Queue an already serialized stanza (serialized for :attr:`content_ns`)."""
        if self.state is StreamState.READY:
            self._out.append(xml)

    @property
    def closed(self) -> bool:
        return self.state is StreamState.CLOSED

    def hibernate(self) -> bool:
        """Free parser memory while the peer is idle; see :meth:`StreamParser.hibernate`."""
        return self.state is not StreamState.CLOSED and self._parser.hibernate()

    # -- timers -------------------------------------------------------------------------------
    def get_timer(self) -> float | None:
        """When :meth:`handle_timer` must be called next, or ``None``."""
        return self._deadline

    def handle_timer(self, now: float) -> list[StreamEvent]:
        if self._deadline is not None and now >= self._deadline and not self.closed:
            return self.close(
                StreamError(
                    StreamErrorCondition.CONNECTION_TIMEOUT,
                    "authentication and resource binding did not complete in time",
                )
            )
        return []

    # -- input --------------------------------------------------------------------------------
    def receive_data(self, data: bytes) -> list[StreamEvent]:
        if self.state in (StreamState.CLOSED, StreamState.TLS_STARTING):
            return []
        return self._handle(self._parser.feed(data))

    def receive_frame(self, frame: bytes) -> list[StreamEvent]:
        if self.state in (StreamState.CLOSED, StreamState.TLS_STARTING):
            return []
        return self._handle(self._parser.feed_frame(frame))

    def _handle(self, parsed: list[ParserEvent]) -> list[StreamEvent]:
        events: list[StreamEvent] = []
        for i, ev in enumerate(parsed):
            if self.state is StreamState.CLOSED:
                break
            if self.state in _WAITING:
                # The answer to a request we emitted is pending: keep the rest for later.
                self._deferred.extend(parsed[i:])
                break
            try:
                if isinstance(ev, ElementReceived):
                    self._on_element(ev, events)
                elif isinstance(ev, StreamHeader):
                    self._on_header(ev)
                elif isinstance(ev, StreamFooter):
                    self._write_footer()
                    self.state = StreamState.CLOSED
                    events.append(StreamClosed(None, by_peer=True))
                else:
                    raise ev.error
            except StreamError as err:
                events.extend(self.close(err))
            if self.state is StreamState.TLS_STARTING:
                break  # the rest of the input is the TLS handshake, not XML
        return events

    # -- negotiation --------------------------------------------------------------------------
    def _on_header(self, header: StreamHeader) -> None:
        if self.state is not StreamState.WAIT_HEADER:
            raise StreamError(StreamErrorCondition.BAD_FORMAT, "unexpected stream header")
        expected = _STREAM_TAG if self.framing is Framing.TCP else WS_OPEN
        if header.tag != expected:
            raise StreamError(
                StreamErrorCondition.INVALID_NAMESPACE, "the stream root is not a stream header"
            )
        to = header.attrs.get("to")
        if to is not None:
            try:
                host = JID.parse(to)
            except InvalidJID:
                host = None
            suffix = self.config.hosted_suffix
            served = host == self._domain_jid or bool(
                host is not None
                and host.is_bare
                and host.local is None
                and suffix
                and host.domain.endswith(suffix)
            )
            if not served or host is None:
                raise StreamError(
                    StreamErrorCondition.HOST_UNKNOWN, f"this server does not serve '{to}'"
                )
            self._host = host.domain
        version = header.attrs.get("version", "0.9")
        if not version.startswith("1."):
            raise StreamError(
                StreamErrorCondition.UNSUPPORTED_VERSION, "only XMPP stream version 1.0 is served"
            )
        self._write_header()
        self.state = StreamState.NEGOTIATING
        self._write_features()

    def _write_header(self) -> None:
        self.stream_id = secrets.token_urlsafe(12)
        domain = escape_attr(self._host)
        if self.framing is Framing.TCP:
            self._out.append(
                "<?xml version='1.0'?>"
                f'<stream:stream xmlns="jabber:client" xmlns:stream="{ns.STREAM}" '
                f'id="{self.stream_id}" from="{domain}" version="1.0" xml:lang="en">'
            )
        else:
            self._out.append(
                f'<open xmlns="{ns.FRAMING}" id="{self.stream_id}" from="{domain}" '
                'version="1.0" xml:lang="en"/>'
            )
        self._header_sent = True

    def _write_footer(self) -> None:
        if self.framing is Framing.TCP:
            self._out.append("</stream:stream>")
        else:
            self._out.append(f'<close xmlns="{ns.FRAMING}"/>')

    def _stream_element(self, body: str) -> str:
        """Wrap ``stream:``-prefixed content: declared by the header on TCP, inline on WebSocket."""
        if self.framing is Framing.TCP:
            return body
        return body.replace("<stream:features", f'<stream:features xmlns:stream="{ns.STREAM}"', 1)

    def _write_features(self) -> None:
        parts: list[str] = []
        if self.username is None:
            if not self.secure and self.config.starttls_available:
                required = "<required/>" if self.config.tls_required else ""
                parts.append(f'<starttls xmlns="{ns.TLS}">{required}</starttls>')
            if self.secure or not self.config.tls_required:
                offered = [m for m in MECHANISMS if m != PLAIN or self.secure]
                if self.secure and self.config.oauthbearer:
                    offered.append(OAUTHBEARER)
                mechs = "".join(f"<mechanism>{m}</mechanism>" for m in offered)
                parts.append(f'<mechanisms xmlns="{ns.SASL}">{mechs}</mechanisms>')
        else:
            parts.append(f'<bind xmlns="{ns.BIND}"/>')
            parts.append(f'<session xmlns="{ns.SESSION}"><optional/></session>')
        self._out.append(
            self._stream_element("<stream:features>" + "".join(parts) + "</stream:features>")
        )

    def _on_element(self, ev: ElementReceived, events: list[StreamEvent]) -> None:
        el = ev.element
        state = self.state
        if state is StreamState.READY:
            if el.tag in STANZA_TAGS:
                self._on_stanza(el, ev.size, events)
                return
            self._reject_element(el)
        if el.tag in STANZA_TAGS:
            if state is StreamState.BINDING or (
                state is StreamState.NEGOTIATING and self.username is not None
            ):
                self._on_bind_stage_iq(el, events)
                return
            raise StreamError(
                StreamErrorCondition.NOT_AUTHORIZED,
                "stanzas are not accepted before authentication and resource binding",
            )
        if el.tag == _STARTTLS and state is StreamState.NEGOTIATING:
            self._on_starttls(events)
        elif el.tag == _AUTH and state is StreamState.NEGOTIATING and self.username is None:
            self._on_auth(el, events)
        elif el.tag == _RESPONSE and state is StreamState.SASL:
            self._on_sasl_response(el, events)
        elif el.tag == _ABORT and state is StreamState.SASL:
            self._sasl_failed(SaslFailure(SaslCondition.ABORTED, "aborted by the client"))
        else:
            self._reject_element(el)

    def _reject_element(self, el: Element) -> None:
        el_ns, local = split_qname(el.tag)
        if (el_ns or "") not in _KNOWN_NAMESPACES:
            raise StreamError(
                StreamErrorCondition.INVALID_NAMESPACE,
                f"unsupported namespace '{el_ns}' for a top-level element",
            )
        raise StreamError(
            StreamErrorCondition.UNSUPPORTED_STANZA_TYPE,
            f"unexpected element <{local}/> at this stage of the stream",
        )

    def _on_starttls(self, events: list[StreamEvent]) -> None:
        if self.secure or not self.config.starttls_available or self.username is not None:
            self._out.append(f'<failure xmlns="{ns.TLS}"/>')
            self._write_footer()
            self.state = StreamState.CLOSED
            events.append(StreamClosed(None, by_peer=False))
            return
        self._out.append(f'<proceed xmlns="{ns.TLS}"/>')
        self.state = StreamState.TLS_STARTING
        events.append(TlsStartRequested())

    def tls_established(self) -> None:
        """The transport is now TLS; the client restarts the stream (RFC 6120 §5.4.3.3)."""
        self.secure = True
        self._restart()

    def _restart(self) -> None:
        self._parser = StreamParser(self.config.limits, self.framing)
        self.state = StreamState.WAIT_HEADER
        self._header_sent = False  # a stream error now needs a new header first (RFC 6120 §4.9.1.1)

    # -- SASL ---------------------------------------------------------------------------------
    def _on_auth(self, el: Element, events: list[StreamEvent]) -> None:
        if self.config.tls_required and not self.secure:
            raise StreamError(
                StreamErrorCondition.POLICY_VIOLATION, "STARTTLS is required before authentication"
            )
        try:
            self._sasl = start_exchange(
                el.get("mechanism", ""),
                secure=self.secure,
                decoy_secret=self.config.decoy_secret,
                decoy_iterations=self.config.decoy_iterations,
                oauthbearer=self.config.oauthbearer,
            )
            self.state = StreamState.SASL
            self._sasl_step(self._sasl.begin(_b64decode(el.text)), events)
        except SaslFailure as failure:
            self._sasl_failed(failure)

    def _on_sasl_response(self, el: Element, events: list[StreamEvent]) -> None:
        assert self._sasl is not None
        try:
            self._sasl_step(self._sasl.respond(_b64decode(el.text)), events)
        except SaslFailure as failure:
            self._sasl_failed(failure)

    def supply_credentials(self, credentials: StoredCredentials | None) -> list[StreamEvent]:
        """Answer :class:`CredentialsRequested`; ``None`` means no such account."""
        if self.state is not StreamState.WAIT_CREDENTIALS or self._sasl is None:
            return []
        events: list[StreamEvent] = []
        self.state = StreamState.SASL
        try:
            try:
                self._sasl_step(self._sasl.supply(credentials), events)
            except SaslFailure as failure:
                self._sasl_failed(failure)
        except StreamError as err:
            events.extend(self.close(err))
        return events + self._resume()

    def _resume(self) -> list[StreamEvent]:
        """Handle input that arrived while we waited for the shell (pipelined by the peer)."""
        if not self._deferred or self.state in _WAITING:
            return []
        deferred, self._deferred = self._deferred, []
        return self._handle(deferred)

    def supply_token_result(
        self, username: str | None, *, text: str = "", temporary: bool = False
    ) -> list[StreamEvent]:
        """Answer :class:`TokenCheckRequested`: the account the token authenticates, or ``None``
        (``temporary`` when the provider could not be asked, e.g. its endpoint is down)."""
        if self.state is not StreamState.WAIT_CREDENTIALS or self._sasl is None:
            return []
        events: list[StreamEvent] = []
        self.state = StreamState.SASL
        authzid = self._token_authzid
        try:
            try:
                if username is None:
                    condition = (
                        SaslCondition.TEMPORARY_AUTH_FAILURE
                        if temporary
                        else SaslCondition.NOT_AUTHORIZED
                    )
                    raise SaslFailure(condition, text or "the token was not accepted")
                if authzid and authzid != username:
                    raise SaslFailure(
                        SaslCondition.INVALID_AUTHZID, "authzid is not the token's account"
                    )
                self._sasl_step(SaslSuccess(username, b""), events)
            except SaslFailure as failure:
                self._sasl_failed(failure)
        except StreamError as err:
            events.extend(self.close(err))
        return events + self._resume()

    def _sasl_step(self, step: SaslStep, events: list[StreamEvent]) -> None:
        assert self._sasl is not None
        if isinstance(step, NeedCredentials):
            self.state = StreamState.WAIT_CREDENTIALS
            events.append(CredentialsRequested(self._sasl.mechanism, step.username))
        elif isinstance(step, NeedTokenCheck):
            self.state = StreamState.WAIT_CREDENTIALS
            self._token_authzid = step.authzid
            events.append(TokenCheckRequested(step.token, step.authzid))
        elif isinstance(step, SaslChallenge):
            self._out.append(f'<challenge xmlns="{ns.SASL}">{_b64encode(step.data)}</challenge>')
        else:
            data = _b64encode(step.data) if step.data else ""
            self._out.append(f'<success xmlns="{ns.SASL}">{data}</success>')
            self.username = step.username
            self._sasl = None
            self._restart()
            events.append(Authenticated(step.username))

    def _sasl_failed(self, failure: SaslFailure) -> None:
        self._sasl = None
        text = f'<text xml:lang="en">{escape_text(failure.text)}</text>' if failure.text else ""
        self._out.append(f'<failure xmlns="{ns.SASL}"><{failure.condition}/>{text}</failure>')
        self.state = StreamState.NEGOTIATING
        if failure.condition is not SaslCondition.ABORTED:
            self._auth_failures += 1
        if self._auth_failures >= self.config.max_auth_failures:
            raise StreamError(
                StreamErrorCondition.POLICY_VIOLATION,
                f"too many failed authentication attempts ({self._auth_failures})",
            )

    # -- resource binding (RFC 6120 §7) -------------------------------------------------------
    def _on_bind_stage_iq(self, el: Element, events: list[StreamEvent]) -> None:
        if el.tag != _IQ:
            raise StreamError(
                StreamErrorCondition.NOT_AUTHORIZED, "stanzas are not accepted before binding"
            )
        iq_id = el.get("id", "")
        child = el[0] if len(el) == 1 else None
        if (
            self.state is not StreamState.NEGOTIATING
            or child is None
            or child.tag != _BIND
            or el.get("type") != "set"
            or not iq_id
        ):
            raise StreamError(
                StreamErrorCondition.NOT_AUTHORIZED, "bind a resource before sending stanzas"
            )
        res_el = child.find(_RESOURCE)
        resource = (res_el.text or "").strip() if res_el is not None else ""
        self._bind_iq_id = iq_id
        self.state = StreamState.BINDING
        events.append(BindRequested(resource or None))

    def accept_bind(self, jid: JID) -> list[StreamEvent]:
        """Complete binding with ``jid`` (full JID, possibly with a server-chosen resource).

        Returns the events of any input the peer pipelined after its bind request."""
        if self.state is not StreamState.BINDING:
            return []
        self.jid = jid
        self.state = StreamState.READY
        self._deadline = None
        self._out.append(
            f'<iq {self._xmlns()}type="result" id="{escape_attr(self._bind_iq_id)}">'
            f'<bind xmlns="{ns.BIND}"><jid>{escape_text(str(jid))}</jid></bind></iq>'
        )
        return self._resume()

    def refuse_bind(self, error: StanzaError) -> list[StreamEvent]:
        if self.state is not StreamState.BINDING:
            return []
        self.state = StreamState.NEGOTIATING
        self._out.append(
            f'<iq {self._xmlns()}type="error" id="{escape_attr(self._bind_iq_id)}">'
            + serialize(error_element(error), ns.CLIENT)
            + "</iq>"
        )
        return self._resume()

    def _xmlns(self) -> str:
        return "" if self.content_ns == ns.CLIENT else 'xmlns="jabber:client" '

    # -- stanzas ------------------------------------------------------------------------------
    def _on_stanza(self, el: Element, size: int, events: list[StreamEvent]) -> None:
        jid = self.jid
        assert jid is not None
        claimed = el.get("from")
        if claimed is not None and claimed != str(jid):
            try:
                claimed_jid = JID.parse(claimed)
            except InvalidJID:
                claimed_jid = None
            if claimed_jid != jid and claimed_jid != jid.bare:
                raise StreamError(
                    StreamErrorCondition.INVALID_FROM,
                    "the 'from' address does not match the authenticated session",
                )
        if (
            el.tag == _IQ
            and len(el) == 1
            and el[0].tag == _SESSION
            and el.get("type") == "set"
            and el.get("to") in (None, self.config.domain)
        ):
            self._out.append(
                f'<iq {self._xmlns()}type="result" id="{escape_attr(el.get("id", ""))}"/>'
            )
            return
        try:
            stanza = parse_stanza(el, from_=jid)  # the hub stamps 'from' (RFC 6120 §8.1.2.1)
        except StanzaError as err:
            if el.get("type") != "error":
                self._out.append(_error_reply_xml(el, err, jid, self.content_ns))
            return
        events.append(StanzaReceived(stanza, size))

    # -- closing ------------------------------------------------------------------------------
    def close(self, error: StreamError | None = None) -> list[StreamEvent]:
        """Close the stream from our side, with ``error`` if given (RFC 6120 §4.4, §4.9)."""
        if self.state is StreamState.CLOSED:
            return []
        if not self._header_sent:
            self._write_header()
        if error is not None:
            text = (
                f'<text xmlns="{ns.STREAMS_ERR}" xml:lang="en">{escape_text(error.text)}</text>'
                if error.text
                else ""
            )
            self._out.append(
                self._stream_error_xml(f'<{error.condition} xmlns="{ns.STREAMS_ERR}"/>{text}')
            )
        self._write_footer()
        self.state = StreamState.CLOSED
        self._deadline = None
        return [StreamClosed(error, by_peer=False)]

    def _stream_error_xml(self, inner: str) -> str:
        if self.framing is Framing.TCP:
            return f"<stream:error>{inner}</stream:error>"
        return f'<stream:error xmlns:stream="{ns.STREAM}">{inner}</stream:error>'


def _error_reply_xml(el: Element, err: StanzaError, jid: JID, content_ns: str | None) -> str:
    """An error answer for a stanza too broken to become a typed stanza."""
    kind = el.tag.rsplit("}", 1)[-1]
    payload = (error_element(err),)
    sid = el.get("id")
    reply: Stanza
    if kind == "message":
        reply = Message(jid, None, sid, None, payload, MessageType.ERROR)
    elif kind == "presence":
        reply = Presence(jid, None, sid, None, payload, PresenceType.ERROR)
    else:
        reply = Iq(jid, None, sid or "", None, payload, IqType.ERROR)
    return to_xml(reply, content_ns)


def _b64decode(text: str | None) -> bytes:
    text = (text or "").strip()
    if text in ("", "="):
        return b""
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise SaslFailure(SaslCondition.INCORRECT_ENCODING, "invalid base64") from None


def _b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode() if data else "="


__all__ = [
    "Authenticated",
    "BindRequested",
    "CredentialsRequested",
    "ServerStream",
    "StanzaReceived",
    "StreamClosed",
    "StreamConfig",
    "StreamEvent",
    "StreamState",
    "TlsStartRequested",
    "TokenCheckRequested",
]
