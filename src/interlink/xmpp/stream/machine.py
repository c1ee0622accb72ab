"""The XML stream state machine, receiving side (RFC 6120 §4–§8; RFC 7395 over WebSocket).

Theory of operation
-------------------
A :class:`ServerStream` is one stream a peer opened to us. The transport shell feeds it what it
reads (:meth:`~ServerStream.receive_data`, or :meth:`~ServerStream.receive_frame` for one
WebSocket message), acts on the events it returns (:mod:`~interlink.xmpp.stream.events`) and
writes out :meth:`~ServerStream.data_to_send` (or :meth:`~ServerStream.frames_to_send`). The
stream never does I/O, never reads a clock (``now`` is passed in, :meth:`~ServerStream.get_timer`
says when to call :meth:`~ServerStream.handle_timer`) and never blocks: where it needs something
from outside it emits an event and waits for the call that answers it.

Three objects share the work:

- this module: the states, the transition table and everything every kind of stream does —
  the header and its ``to`` (:class:`~interlink.xmpp.stream.config.HostedDomains`), STARTTLS,
  the SASL exchange loop, waiting for the shell, stream errors and closing;
- a role (:mod:`~interlink.xmpp.stream.roles`): what this kind of stream offers and accepts —
  features, SASL mechanisms, resource binding, stanza ``from`` rules. Client-to-server today;
- a framing (:mod:`interlink.xmpp.framing`): how the stream's edges look on the transport.

Every input is classified into an :class:`Input` kind — from the peer through the parser (the
header, the footer, a negotiation element, a stanza), or an answer from the shell (a method call
such as :meth:`~ServerStream.accept_bind`). :data:`TRANSITIONS` maps ``(state, kind)`` to the
handler that runs and the states it may leave the stream in; the machine checks after each step
that the state reached is one of them (or ``CLOSED``), so the table, and the diagram rendered
from it (:func:`mermaid`, shown in ``docs/architecture.md`` and compared by a test), stay true.

A pair with no entry is decided by a rule, never by a handler:

- in ``CLOSED`` every input is ignored;
- in ``TLS_STARTING`` what the peer sends is the TLS handshake, not XML: it is dropped;
- in a :data:`WAITING` state the rest of the peer's input is kept and handled once the shell
  answers (clients pipeline: ``<presence/>`` right behind the bind request);
- an answer from the shell that the stream did not ask for (it closed meanwhile) is ignored;
- any other peer input is a stream error chosen by its kind (:data:`UNEXPECTED`).

Independently of the table, from any state a parse error, a handler's ``StreamError``,
:meth:`~ServerStream.close` and the authentication deadline end the stream in ``CLOSED``.

What the stream has achieved is kept beside the state: ``secure`` (TLS is on), ``username``
(SASL succeeded) and ``jid`` (a resource is bound); the features offered after each restart
follow from them. Until a resource is bound the stream has a deadline.

This module is the one central state machine and stays in one piece: the states, the inputs, the
handlers and :data:`TRANSITIONS` (at the end, after the handlers it names) read together.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum, auto
from typing import Any

from interlink.errors import (
    SaslCondition,
    SaslFailure,
    StanzaError,
    StanzaErrorCondition,
    StreamError,
    StreamErrorCondition,
)
from interlink.xmpp import ns
from interlink.xmpp.framing import Framing
from interlink.xmpp.jid import JID, InvalidJID
from interlink.xmpp.parser import (
    ElementReceived,
    ParseFailed,
    ParserEvent,
    StreamHeader,
    StreamParser,
)
from interlink.xmpp.sasl import (
    NeedCredentials,
    NeedTokenCheck,
    SaslChallenge,
    SaslExchange,
    SaslSuccess,
    StoredCredentials,
)
from interlink.xmpp.sasl.mechanisms import SaslStep
from interlink.xmpp.stanza import Stanza, to_xml
from interlink.xmpp.stream import csi, sm
from interlink.xmpp.stream.config import StreamConfig
from interlink.xmpp.stream.events import (
    AckReceived,
    AckRequested,
    Authenticated,
    AuthenticationFailed,
    CredentialsRequested,
    ResumeRefused,
    ResumeRequested,
    SmEnabled,
    StanzaReceived,
    StreamClosed,
    StreamEvent,
    TlsStartRequested,
    TokenCheckRequested,
)
from interlink.xmpp.stream.roles import ClientRole, StreamRole
from interlink.xmpp.xml import escape_text, split_qname


class StreamState(Enum):
    WAIT_HEADER = auto()  # before the peer's (first or restarted) stream header
    NEGOTIATING = auto()  # features sent; STARTTLS, SASL or binding may start
    TLS_STARTING = auto()  # <proceed/> sent; the shell upgrades the transport
    SASL = auto()  # a SASL exchange is under way (RFC 6120 §6.4)
    WAIT_CREDENTIALS = auto()  # the shell looks up credentials or checks a token
    BINDING = auto()  # the shell decides on a resource binding
    RESUMING = auto()  # the shell looks for the session a <resume/> names (XEP-0198 §5)
    READY = auto()  # stanzas flow
    CLOSED = auto()

    # Members are singletons compared by identity: hash them by identity too, in C. (Enum's own
    # __hash__ is Python code, and the table is consulted for every stanza.)
    __hash__ = object.__hash__


class Input(Enum):
    """What can happen to a stream. The first group comes from the peer (through the parser),
    the second from the shell (method calls)."""

    HEADER = "stream header"
    FOOTER = "stream footer"
    STARTTLS = "starttls"
    SASL_AUTH = "sasl auth"
    SASL_RESPONSE = "sasl response"
    SASL_ABORT = "sasl abort"
    STANZA = "stanza"
    OTHER = "other element"  # a top-level element in a known namespace that means nothing here
    FOREIGN = "foreign element"  # a top-level element in a namespace the stream does not speak
    SM_ENABLE = "sm enable"  # XEP-0198
    SM_REQUEST = "sm r"
    SM_ACK = "sm a"
    SM_RESUME = "sm resume"
    CSI_ACTIVE = "csi active"  # XEP-0352
    CSI_INACTIVE = "csi inactive"

    TLS_ESTABLISHED = "tls_established()"
    CREDENTIALS = "credentials answer"  # supply_credentials() or supply_token_result()
    BIND_ACCEPTED = "accept_bind()"
    BIND_REFUSED = "refuse_bind()"
    RESUME_ACCEPTED = "accept_resume()"
    RESUME_REFUSED = "refuse_resume()"

    __hash__ = object.__hash__  # as StreamState's


PEER_INPUTS = frozenset(
    (
        Input.HEADER,
        Input.FOOTER,
        Input.STARTTLS,
        Input.SASL_AUTH,
        Input.SASL_RESPONSE,
        Input.SASL_ABORT,
        Input.STANZA,
        Input.OTHER,
        Input.FOREIGN,
        Input.SM_ENABLE,
        Input.SM_REQUEST,
        Input.SM_ACK,
        Input.SM_RESUME,
        Input.CSI_ACTIVE,
        Input.CSI_INACTIVE,
    )
)
SHELL_INPUTS = frozenset(Input) - PEER_INPUTS

#: States in which the stream waits for the shell; peer input queues until it answers.
WAITING = frozenset((StreamState.WAIT_CREDENTIALS, StreamState.BINDING, StreamState.RESUMING))

_ELEMENT_TEXT = "unexpected element <{local}/> at this stage of the stream"
#: The stream error for peer input with no entry in :data:`TRANSITIONS`, by its kind. (``FOOTER``
#: has an entry in every state that reads the peer, so it is never unexpected.)
UNEXPECTED: Mapping[Input, tuple[StreamErrorCondition, str]] = {
    Input.HEADER: (StreamErrorCondition.BAD_FORMAT, "unexpected stream header"),
    Input.STANZA: (
        StreamErrorCondition.NOT_AUTHORIZED,
        "stanzas are not accepted before authentication and resource binding",
    ),
    Input.FOREIGN: (
        StreamErrorCondition.INVALID_NAMESPACE,
        "unsupported namespace '{ns}' for a top-level element",
    ),
    Input.STARTTLS: (StreamErrorCondition.UNSUPPORTED_STANZA_TYPE, _ELEMENT_TEXT),
    Input.SASL_AUTH: (StreamErrorCondition.UNSUPPORTED_STANZA_TYPE, _ELEMENT_TEXT),
    Input.SASL_RESPONSE: (StreamErrorCondition.UNSUPPORTED_STANZA_TYPE, _ELEMENT_TEXT),
    Input.SASL_ABORT: (StreamErrorCondition.UNSUPPORTED_STANZA_TYPE, _ELEMENT_TEXT),
    Input.OTHER: (StreamErrorCondition.UNSUPPORTED_STANZA_TYPE, _ELEMENT_TEXT),
    Input.SM_ENABLE: (StreamErrorCondition.UNSUPPORTED_STANZA_TYPE, _ELEMENT_TEXT),
    Input.SM_REQUEST: (StreamErrorCondition.UNSUPPORTED_STANZA_TYPE, _ELEMENT_TEXT),
    Input.SM_ACK: (StreamErrorCondition.UNSUPPORTED_STANZA_TYPE, _ELEMENT_TEXT),
    Input.SM_RESUME: (StreamErrorCondition.UNSUPPORTED_STANZA_TYPE, _ELEMENT_TEXT),
    Input.CSI_ACTIVE: (StreamErrorCondition.UNSUPPORTED_STANZA_TYPE, _ELEMENT_TEXT),
    Input.CSI_INACTIVE: (StreamErrorCondition.UNSUPPORTED_STANZA_TYPE, _ELEMENT_TEXT),
}

_NEGOTIATION_ELEMENTS = {
    ns.qname(ns.TLS, "starttls"): Input.STARTTLS,
    ns.qname(ns.SASL, "auth"): Input.SASL_AUTH,
    ns.qname(ns.SASL, "response"): Input.SASL_RESPONSE,
    ns.qname(ns.SASL, "abort"): Input.SASL_ABORT,
    sm.ENABLE: Input.SM_ENABLE,
    sm.REQUEST: Input.SM_REQUEST,
    sm.ACK: Input.SM_ACK,
    sm.RESUME: Input.SM_RESUME,
    csi.ACTIVE: Input.CSI_ACTIVE,
    csi.INACTIVE: Input.CSI_INACTIVE,
}
_STREAM_NAMESPACES = (ns.TLS, ns.SASL, ns.STREAM)

# A handler gets the stream, what arrived and the list to append events to. What arrived is fixed
# by the input kind: the parser event for peer input, the call's argument for the shell's.
Handler = Callable[["ServerStream", Any, list[StreamEvent]], None]
SaslAnswer = Callable[[SaslExchange], SaslStep]  # raises SaslFailure


@dataclass(frozen=True, slots=True)
class Transition:
    """What ``(state, input)`` does: run ``handler``, which leaves the stream in one of
    ``targets`` (or ``CLOSED``, always allowed)."""

    handler: Handler
    targets: tuple[StreamState, ...]


class ServerStream:
    """One XML stream opened to us by a peer; the role says what kind (client-to-server by
    default).

    Raises nothing to the shell: every error in the peer's input becomes a stream error sent to
    the peer and a :class:`StreamClosed` event."""

    def __init__(
        self,
        config: StreamConfig,
        *,
        now: float,
        framing: Framing = Framing.TCP,
        secure: bool = False,
        role: StreamRole | None = None,
    ) -> None:
        self.config = config
        self.framing = framing
        self.role: StreamRole = role if role is not None else ClientRole(config)
        self.secure = secure
        self.state = StreamState.WAIT_HEADER
        self.username: str | None = None
        self.jid: JID | None = None
        self.stream_id = ""
        self.content_ns = framing.content_ns(self.role.content_ns)
        self._host = config.hosts.default
        self._parser = StreamParser(config.pre_auth_limits, framing)
        self._out: list[str] = []
        self._header_sent = False
        self._deadline: float | None = now + config.auth_timeout
        self._sasl: SaslExchange | None = None
        self._auth_failures = 0
        self._deferred: list[ParserEvent] = []
        self._token_authzid = ""
        self.sm: sm.StreamManagement | None = None  # XEP-0198, once the client enabled it
        # The shell does not read this client now (it awaits storage for one of its stanzas):
        # stream management's limit on unacknowledged stanzas allows for it (hold_input).
        self.input_held = False
        self.csi: csi.ClientStateFilter | None = None  # XEP-0352, once the client used it
        self._resume_asked = ("", 0)  # the <resume previd h/> being looked up

    @property
    def host(self) -> str:
        """The domain the peer asked for in its stream header (``to``), or the default domain if
        it named none. Fixed once the peer has authenticated."""
        return self._host

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
        self.send_xml(to_xml(stanza, self.content_ns))

    def send_xml(
        self, xml: str, *, stored: bool = False, now: float | None = None
    ) -> list[StreamEvent]:
        """Queue an already serialized stanza (serialized for :attr:`content_ns`). With stream
        management it is kept until acknowledged (``stored``: it stays in offline storage until
        then). Returns the events of closing the stream when the client let too many stanzas go
        unacknowledged. ``now`` arms stream management's ``<r/>`` timer (``request_after``)."""
        if self.state is not StreamState.READY:
            if self.sm is not None and self.state is StreamState.CLOSED:
                # Routed to the session before the shell took its unacknowledged stanzas back
                # (to store them): keep it with them, in order.
                self.sm.keep(xml, stored)
            return []
        client_state = self.csi
        if client_state is not None and client_state.inactive:
            events: list[StreamEvent] = []
            for held_xml, held_stored in client_state.outgoing(xml, stored):
                events.extend(self._write_stanza(held_xml, held_stored, now))
            return events
        # _write_stanza, inlined: this is every stanza's way out
        self._out.append(xml)
        if self.sm is not None:
            try:
                if self.sm.record_sent(xml, stored=stored, now=now, input_held=self.input_held):
                    self._out.append(self.sm.request_xml())
            except StreamError as err:
                return self.close(err)
        return []

    def _write_stanza(self, xml: str, stored: bool, now: float | None) -> list[StreamEvent]:
        if self.state is not StreamState.READY:
            return self.send_xml(xml, stored=stored, now=now)  # closed meanwhile: kept
        self._out.append(xml)
        if self.sm is not None:
            try:
                if self.sm.record_sent(xml, stored=stored, now=now, input_held=self.input_held):
                    self._out.append(self.sm.request_xml())
            except StreamError as err:
                return self.close(err)
        return []

    def hold_input(self, held: bool) -> None:
        """The shell stops (``True``) or resumes (``False``) reading this client, while it awaits
        storage for one of its stanzas: acknowledgements the client sends meanwhile stay unread,
        so stream management allows more unacknowledged stanzas until it reads again."""
        self.input_held = held

    def request_ack(self) -> None:
        """Ask the client to acknowledge what it has received (XEP-0198 ``<r/>``)."""
        if self.state is StreamState.READY and self.sm is not None:
            self._out.append(self.sm.request_xml())

    def send_ack(self) -> None:
        """Answer :class:`AckRequested`: ``<a h/>`` for the stanzas handled so far. The shell
        calls it once every stanza before the ``<r/>`` is handled (durably routed)."""
        if self.state is StreamState.READY and self.sm is not None:
            self._out.append(self.sm.ack_xml())

    @property
    def closed(self) -> bool:
        return self.state is StreamState.CLOSED

    def hibernate(self) -> bool:
        """Free parser memory while the peer is idle; see :meth:`StreamParser.hibernate`."""
        return self.state is not StreamState.CLOSED and self._parser.hibernate()

    # -- timers -------------------------------------------------------------------------------
    def get_timer(self) -> float | None:
        """When :meth:`handle_timer` must be called next, or ``None``: the authentication
        deadline, or when stream management's ``<r/>`` is due."""
        if self.sm is not None and self.state is StreamState.READY:
            return self.sm.get_timer()
        return self._deadline

    def handle_timer(self, now: float) -> list[StreamEvent]:
        if self._deadline is not None and now >= self._deadline and not self.closed:
            return self.close(
                StreamError(
                    StreamErrorCondition.CONNECTION_TIMEOUT,
                    "authentication and resource binding did not complete in time",
                )
            )
        sm_state = self.sm
        if sm_state is not None and self.state is StreamState.READY and sm_state.handle_timer(now):
            self._out.append(sm_state.request_xml())
        return []

    # -- input from the peer ------------------------------------------------------------------
    def receive_data(self, data: bytes) -> list[StreamEvent]:
        """Bytes read from a byte-stream transport (TCP framing)."""
        if self.state in (StreamState.CLOSED, StreamState.TLS_STARTING):
            return []
        return self._handle(self._parser.feed(data))

    def receive_frame(self, frame: bytes) -> list[StreamEvent]:
        """One WebSocket message: exactly one top-level element (RFC 7395 §3.3.3)."""
        if self.state in (StreamState.CLOSED, StreamState.TLS_STARTING):
            return []
        return self._handle(self._parser.feed_frame(frame))

    def _handle(self, parsed: list[ParserEvent]) -> list[StreamEvent]:
        events: list[StreamEvent] = []
        for i, ev in enumerate(parsed):
            if self.state is StreamState.CLOSED:
                break
            if self.state in WAITING:
                self._deferred.extend(parsed[i:])
                break
            try:
                if isinstance(ev, ParseFailed):
                    raise ev.error
                self._step(self._classify(ev), ev, events)
            except StreamError as err:
                events.extend(self.close(err))
            if self.state is StreamState.TLS_STARTING:
                break  # the rest of the input is the TLS handshake, not XML
        return events

    def _classify(self, ev: ParserEvent) -> Input:
        if isinstance(ev, ElementReceived):
            tag = ev.element.tag
            if tag in self.role.stanza_tags:
                return Input.STANZA
            kind = _NEGOTIATION_ELEMENTS.get(tag)
            if kind is not None:
                return kind
            el_ns = split_qname(tag)[0] or ""
            if el_ns == self.role.content_ns or el_ns in _STREAM_NAMESPACES or el_ns == sm.NS:
                return Input.OTHER
            return Input.FOREIGN
        return Input.HEADER if isinstance(ev, StreamHeader) else Input.FOOTER

    def _step(self, kind: Input, arrival: object, events: list[StreamEvent]) -> None:
        """Run the table's entry for ``kind`` in the current state. Raises: StreamError."""
        transition = TRANSITIONS.get((self.state, kind))
        if transition is None:
            raise _unexpected(kind, arrival)
        before = self.state
        transition.handler(self, arrival, events)
        if self.state not in transition.targets and self.state is not StreamState.CLOSED:
            raise AssertionError(f"{before.name} --{kind.name}--> {self.state.name} not in table")

    # -- input from the shell -----------------------------------------------------------------
    def _answer(self, kind: Input, arrival: object) -> list[StreamEvent]:
        if (self.state, kind) not in TRANSITIONS:
            return []  # not asked for: the stream moved on (closed) meanwhile
        events: list[StreamEvent] = []
        try:
            self._step(kind, arrival, events)
        except StreamError as err:
            events.extend(self.close(err))
        return events + self._resume()

    def _resume(self) -> list[StreamEvent]:
        """Handle input that arrived while we waited for the shell (pipelined by the peer)."""
        if not self._deferred or self.state in WAITING:
            return []
        deferred, self._deferred = self._deferred, []
        return self._handle(deferred)

    def tls_established(self) -> None:
        """Answer :class:`TlsStartRequested`: the transport is now TLS; the peer restarts the
        stream (RFC 6120 §5.4.3.3)."""
        self._answer(Input.TLS_ESTABLISHED, None)

    def supply_credentials(self, credentials: StoredCredentials | None) -> list[StreamEvent]:
        """Answer :class:`CredentialsRequested`; ``None`` means no such account."""

        def supply(sasl: SaslExchange) -> SaslStep:
            return sasl.supply(credentials)

        return self._answer(Input.CREDENTIALS, supply)

    def supply_token_result(
        self, username: str | None, *, text: str = "", temporary: bool = False
    ) -> list[StreamEvent]:
        """Answer :class:`TokenCheckRequested`: the account the token authenticates, or ``None``
        (``temporary`` when the provider could not be asked, e.g. its endpoint is down)."""
        authzid = self._token_authzid

        def checked(_: SaslExchange) -> SaslStep:
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
            return SaslSuccess(username, b"")

        return self._answer(Input.CREDENTIALS, checked)

    def refuse_authentication(self, text: str) -> list[StreamEvent]:
        """Answer :class:`CredentialsRequested` or :class:`TokenCheckRequested` without looking:
        ``<temporary-auth-failure/>`` with ``text`` (e.g. the attempt is throttled)."""

        def refused(_: SaslExchange) -> SaslStep:
            raise SaslFailure(SaslCondition.TEMPORARY_AUTH_FAILURE, text)

        return self._answer(Input.CREDENTIALS, refused)

    def accept_bind(self, jid: JID) -> list[StreamEvent]:
        """Answer :class:`BindRequested`: bind ``jid`` (full, possibly with a server-chosen
        resource). Returns the events of any input the peer pipelined after its request."""
        return self._answer(Input.BIND_ACCEPTED, jid)

    def refuse_bind(self, error: StanzaError) -> list[StreamEvent]:
        """Answer :class:`BindRequested` with a stanza error; the peer may try again."""
        return self._answer(Input.BIND_REFUSED, error)

    def accept_resume(self, jid: JID, state: sm.StreamManagement) -> list[StreamEvent]:
        """Answer :class:`ResumeRequested`: the session ``jid`` with its stream-management
        ``state`` continues on this stream; what the client did not acknowledge is sent again.
        Returns the events of the peer's pipelined input (or of closing, for a bad ``h``)."""
        return self._answer(Input.RESUME_ACCEPTED, (jid, state))

    def refuse_resume(self) -> list[StreamEvent]:
        """Answer :class:`ResumeRequested`: no such session (or not the client's, or expired);
        ``<failed/>``, and the client may bind a new resource."""
        return self._answer(Input.RESUME_REFUSED, None)

    # -- handlers: the stream header (RFC 6120 §4.7) ------------------------------------------
    def _open(self, header: StreamHeader, events: list[StreamEvent]) -> None:
        if header.tag != self.framing.header_tag:
            raise StreamError(
                StreamErrorCondition.INVALID_NAMESPACE, "the stream root is not a stream header"
            )
        to = header.attrs.get("to")
        if to is not None:
            self._host = self._served_host(to)
        version = header.attrs.get("version", "0.9")
        if not version.startswith("1."):
            raise StreamError(
                StreamErrorCondition.UNSUPPORTED_VERSION, "only XMPP stream version 1.0 is served"
            )
        self._write_header()
        self.state = StreamState.NEGOTIATING
        features = self.role.features(secure=self.secure, authenticated=self.username is not None)
        self._out.append(self.framing.stream_element("features", features))

    def _served_host(self, to: str) -> str:
        """The domain named by a header's ``to``. Raises: StreamError (host-unknown)."""
        try:
            asked: JID | None = JID.parse(to)
        except InvalidJID:
            asked = None
        if (
            asked is None
            or asked.local is not None
            or asked.resource is not None
            or not self.config.hosts.serves(asked.domain)
        ):
            raise StreamError(
                StreamErrorCondition.HOST_UNKNOWN, f"this server does not serve '{to}'"
            )
        if self.username is not None and asked.domain != self._host:
            # Credentials were looked up for the first domain; the identity must not move.
            raise StreamError(
                StreamErrorCondition.HOST_UNKNOWN,
                f"this stream authenticated for '{self._host}', not '{to}'",
            )
        return asked.domain

    def _write_header(self) -> None:
        self.stream_id = secrets.token_urlsafe(12)
        self._out.append(
            self.framing.header(
                content_ns=self.role.content_ns, stream_id=self.stream_id, from_=self._host
            )
        )
        self._header_sent = True

    def _restart(self) -> None:
        """After TLS or SASL success both sides start a new stream (RFC 6120 §4.3.3); after SASL
        success its parser allows what an authenticated peer may send (``config.limits``)."""
        self._parser.release()
        limits = self.config.pre_auth_limits if self.username is None else self.config.limits
        self._parser = StreamParser(limits, self.framing)
        self.state = StreamState.WAIT_HEADER
        self._header_sent = False  # a stream error now needs a new header first (RFC 6120 §4.9.1.1)

    def _peer_closed(self, _: object, events: list[StreamEvent]) -> None:
        self._out.append(self.framing.footer())
        self.state = StreamState.CLOSED
        self._parser.release()
        self._keep_held()
        events.append(StreamClosed(None, by_peer=True))

    # -- handlers: STARTTLS (RFC 6120 §5.4) ---------------------------------------------------
    def _starttls(self, _: ElementReceived, events: list[StreamEvent]) -> None:
        if self.secure or not self.config.starttls_available or self.username is not None:
            self._out.append(f'<failure xmlns="{ns.TLS}"/>')  # §5.4.2.2: then close
            events.extend(self.close())
            return
        self._out.append(f'<proceed xmlns="{ns.TLS}"/>')
        self.state = StreamState.TLS_STARTING
        events.append(TlsStartRequested())

    def _tls_established(self, _: None, events: list[StreamEvent]) -> None:
        self.secure = True
        self._restart()

    # -- handlers: SASL (RFC 6120 §6.4) -------------------------------------------------------
    def _sasl_auth(self, ev: ElementReceived, events: list[StreamEvent]) -> None:
        if self.username is not None:
            raise _unexpected(Input.SASL_AUTH, ev)  # authenticated once is enough (§6.4.6)
        if self.config.tls_required and not self.secure:
            raise StreamError(
                StreamErrorCondition.POLICY_VIOLATION, "STARTTLS is required before authentication"
            )
        el = ev.element
        try:
            self._sasl = self.role.start_sasl(el.get("mechanism", ""), secure=self.secure)
            self.state = StreamState.SASL
            self._sasl_step(self._sasl.begin(_b64decode(el.text)), events)
        except SaslFailure as failure:
            self._sasl_failed(failure, events)

    def _sasl_response(self, ev: ElementReceived, events: list[StreamEvent]) -> None:
        assert self._sasl is not None
        try:
            self._sasl_step(self._sasl.respond(_b64decode(ev.element.text)), events)
        except SaslFailure as failure:
            self._sasl_failed(failure, events)

    def _sasl_abort(self, _: ElementReceived, events: list[StreamEvent]) -> None:
        self._sasl_failed(SaslFailure(SaslCondition.ABORTED, "aborted by the client"), events)

    def _sasl_answered(self, answer: SaslAnswer, events: list[StreamEvent]) -> None:
        assert self._sasl is not None
        self.state = StreamState.SASL
        try:
            self._sasl_step(answer(self._sasl), events)
        except SaslFailure as failure:
            self._sasl_failed(failure, events)

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

    def _sasl_failed(self, failure: SaslFailure, events: list[StreamEvent]) -> None:
        """Send ``<failure/>``; the peer may try again, up to ``max_auth_failures`` times.

        Raises: StreamError (too many failures)."""
        self._sasl = None
        events.append(AuthenticationFailed(failure.condition, failure.text))
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

    # -- handlers: binding (the role's request to become ready) and stanzas -------------------
    def _bind_request(self, ev: ElementReceived, events: list[StreamEvent]) -> None:
        if self.username is None:
            raise _unexpected(Input.STANZA, ev)
        events.append(self.role.bind_request(ev.element))
        self.state = StreamState.BINDING

    def _bind_accepted(self, jid: JID, events: list[StreamEvent]) -> None:
        self.jid = jid
        self.state = StreamState.READY
        self._deadline = None
        self._out.append(self.role.bind_result(jid, self.content_ns))

    def _bind_refused(self, error: StanzaError, events: list[StreamEvent]) -> None:
        self.state = StreamState.NEGOTIATING
        self._out.append(self.role.bind_error(error, self.content_ns))

    def _stanza(self, ev: ElementReceived, events: list[StreamEvent]) -> None:
        assert self.jid is not None
        accepted = self.role.accept_stanza(ev.element, self.jid, self._host, self.content_ns)
        if isinstance(accepted, str):
            if self.sm is not None:
                self.sm.stanza_handled()  # answered here: handled (XEP-0198 §4)
            if accepted:
                events.extend(self.send_xml(accepted))
        else:
            events.append(StanzaReceived(accepted, ev.size, counted=self.sm is not None))

    # -- handlers: stream management (XEP-0198) -----------------------------------------------
    def _sm_enable(self, ev: ElementReceived, events: list[StreamEvent]) -> None:
        if self.sm is not None or self.config.sm is None:
            self._out.append(sm.failed_xml(StanzaErrorCondition.UNEXPECTED_REQUEST))
            return
        # A client that asks for resumption gets an id: the shell may keep its session for
        # the window, and what it reports for the id later settles its offline deliveries.
        wants_resume = ev.element.get("resume") in ("true", "1")
        resume_id = secrets.token_urlsafe(18) if wants_resume else None
        self.sm = sm.StreamManagement(self.config.sm, resume_id)
        self._out.append(sm.enabled_xml(resume_id, self.config.sm.resume_window))
        events.append(SmEnabled())

    def _sm_request(self, _: ElementReceived, events: list[StreamEvent]) -> None:
        if self.sm is None:
            self._out.append(sm.failed_xml(StanzaErrorCondition.UNEXPECTED_REQUEST))
            return
        events.append(AckRequested())

    def _sm_ack(self, ev: ElementReceived, events: list[StreamEvent]) -> None:
        if self.sm is None:
            self._out.append(sm.failed_xml(StanzaErrorCondition.UNEXPECTED_REQUEST))
            return
        if self.sm.ack(ev.element.get("h")):
            events.append(AckReceived(self.sm.acked))
        if self.sm.request_needed():  # stanzas went out unasked while the <r/> was out
            self._out.append(self.sm.request_xml())

    # -- handlers: client state indication (XEP-0352) -----------------------------------------
    def _keep_held(self) -> None:
        """Once closed: what was held for an inactive client was never sent; with stream
        management it joins the unacknowledged stanzas (stored, or sent again on resumption),
        in order."""
        if self.csi is not None and self.sm is not None:
            for xml, stored in self.csi.take_held():
                self.send_xml(xml, stored=stored)

    def _csi(self, ev: ElementReceived, events: list[StreamEvent]) -> None:
        if self.config.csi is None:
            raise _unexpected(Input.CSI_ACTIVE, ev)
        if self.csi is None:
            self.csi = csi.ClientStateFilter(self.config.csi)
        for xml, stored in self.csi.set_active(ev.element.tag == csi.ACTIVE):
            events.extend(self._write_stanza(xml, stored, None))

    def _sm_resume(self, ev: ElementReceived, events: list[StreamEvent]) -> None:
        previd = ev.element.get("previd")
        if self.username is None or not previd or self.config.sm is None:
            self._out.append(sm.failed_xml(StanzaErrorCondition.ITEM_NOT_FOUND))
            return
        self._resume_asked = (previd, sm.parse_h(ev.element.get("h")))
        self.state = StreamState.RESUMING
        events.append(ResumeRequested(*self._resume_asked))

    def _resume_accepted(
        self, arrival: tuple[JID, sm.StreamManagement], events: list[StreamEvent]
    ) -> None:
        jid, state = arrival
        previd, h = self._resume_asked
        self.jid, self.sm = jid, state
        self.state = StreamState.READY
        self._deadline = None
        state.ack(str(h))  # raises StreamError for an h above what was sent
        self._out.append(state.resumed_xml(previd))
        self._out.extend(state.queue)  # the same numbers as before
        if state.queue:
            self._out.append(state.request_xml())

    def _resume_refused(self, _: None, events: list[StreamEvent]) -> None:
        # What the client says it received on the old stream still counts: the shell settles it.
        self._out.append(sm.failed_xml(StanzaErrorCondition.ITEM_NOT_FOUND))
        self.state = StreamState.NEGOTIATING
        events.append(ResumeRefused(*self._resume_asked))

    # -- closing (RFC 6120 §4.4, §4.9) --------------------------------------------------------
    def close(self, error: StreamError | None = None) -> list[StreamEvent]:
        """Close the stream from our side, with ``error`` if given."""
        if self.state is StreamState.CLOSED:
            return []
        if not self._header_sent:
            self._write_header()
        if error is not None:
            # Raised inside this stream, its traceback holds our frames, whose locals hold the
            # events that will hold the error: a cycle that would keep the whole stream (and what
            # it parsed) alive until a full garbage collection.
            error.__traceback__ = None
            self._out.append(self.framing.stream_error(error))
        self._out.append(self.framing.footer())
        self.state = StreamState.CLOSED
        self._deadline = None
        self._parser.release()
        self._deferred = []
        self._keep_held()
        return [StreamClosed(error, by_peer=False)]


_S = StreamState
_SASL_OUTCOMES = (_S.SASL, _S.WAIT_CREDENTIALS, _S.NEGOTIATING, _S.WAIT_HEADER)

#: The transition table: ``(state, input) → Transition(handler, states it may lead to)``.
TRANSITIONS: Mapping[tuple[StreamState, Input], Transition] = {
    # the stream header, then features (RFC 6120 §4.3)
    (_S.WAIT_HEADER, Input.HEADER): Transition(ServerStream._open, (_S.NEGOTIATING,)),
    # STARTTLS (§5.4): the transport is upgraded, the stream restarts
    (_S.NEGOTIATING, Input.STARTTLS): Transition(ServerStream._starttls, (_S.TLS_STARTING,)),
    (_S.TLS_STARTING, Input.TLS_ESTABLISHED): Transition(
        ServerStream._tls_established, (_S.WAIT_HEADER,)
    ),
    # SASL (§6.4): challenges and responses until success (a restart) or failure
    (_S.NEGOTIATING, Input.SASL_AUTH): Transition(ServerStream._sasl_auth, _SASL_OUTCOMES),
    (_S.SASL, Input.SASL_RESPONSE): Transition(ServerStream._sasl_response, _SASL_OUTCOMES),
    (_S.SASL, Input.SASL_ABORT): Transition(ServerStream._sasl_abort, (_S.NEGOTIATING,)),
    (_S.WAIT_CREDENTIALS, Input.CREDENTIALS): Transition(
        ServerStream._sasl_answered, (_S.SASL, _S.NEGOTIATING, _S.WAIT_HEADER)
    ),
    # after authentication, the role's request to become ready (c2s: resource binding, §7)
    (_S.NEGOTIATING, Input.STANZA): Transition(ServerStream._bind_request, (_S.BINDING,)),
    (_S.BINDING, Input.BIND_ACCEPTED): Transition(ServerStream._bind_accepted, (_S.READY,)),
    (_S.BINDING, Input.BIND_REFUSED): Transition(ServerStream._bind_refused, (_S.NEGOTIATING,)),
    # stanzas (§8)
    (_S.READY, Input.STANZA): Transition(ServerStream._stanza, (_S.READY,)),
    # stream management (XEP-0198): enabled once bound, acks both ways; nothing is resumable
    (_S.READY, Input.SM_ENABLE): Transition(ServerStream._sm_enable, (_S.READY,)),
    (_S.READY, Input.SM_REQUEST): Transition(ServerStream._sm_request, (_S.READY,)),
    (_S.READY, Input.SM_ACK): Transition(ServerStream._sm_ack, (_S.READY,)),
    (_S.NEGOTIATING, Input.SM_RESUME): Transition(
        ServerStream._sm_resume, (_S.RESUMING, _S.NEGOTIATING)
    ),
    (_S.RESUMING, Input.RESUME_ACCEPTED): Transition(ServerStream._resume_accepted, (_S.READY,)),
    # client state indication (XEP-0352): the client says whether its user is looking
    (_S.READY, Input.CSI_ACTIVE): Transition(ServerStream._csi, (_S.READY,)),
    (_S.READY, Input.CSI_INACTIVE): Transition(ServerStream._csi, (_S.READY,)),
    (_S.RESUMING, Input.RESUME_REFUSED): Transition(
        ServerStream._resume_refused, (_S.NEGOTIATING,)
    ),
    # the peer's footer, wherever we read the peer (§4.4)
    **{
        (state, Input.FOOTER): Transition(ServerStream._peer_closed, (_S.CLOSED,))
        for state in (_S.WAIT_HEADER, _S.NEGOTIATING, _S.SASL, _S.READY)
    },
}


def mermaid(table: Mapping[tuple[StreamState, Input], Transition] = TRANSITIONS) -> str:
    """The table as a Mermaid state diagram (``docs/architecture.md`` shows it; a test compares)."""
    lines = ["stateDiagram-v2", f"    [*] --> {StreamState.WAIT_HEADER.name}"]
    for (state, kind), transition in table.items():
        for target in transition.targets:
            lines.append(f"    {state.name} --> {target.name} : {kind.value}")
    lines.append(f"    {StreamState.CLOSED.name} --> [*]")
    lines.append(
        f"    note right of {StreamState.CLOSED.name} : also from any state on a stream error, "
        "close() or the authentication deadline"
    )
    return "\n".join(lines) + "\n"


def _unexpected(kind: Input, arrival: object) -> StreamError:
    """The stream error for peer input with no entry in the current state."""
    condition, text = UNEXPECTED[kind]
    if isinstance(arrival, ElementReceived):
        el_ns, local = split_qname(arrival.element.tag)
        text = text.format(ns=el_ns, local=local)
    return StreamError(condition, text)


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
    "PEER_INPUTS",
    "SHELL_INPUTS",
    "TRANSITIONS",
    "UNEXPECTED",
    "WAITING",
    "Input",
    "ServerStream",
    "StreamState",
    "Transition",
    "mermaid",
]
