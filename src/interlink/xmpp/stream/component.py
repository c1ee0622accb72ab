"""External components (XEP-0114, ``jabber:component:accept``), the server's side, sans I/O.

Theory of operation
-------------------
A trusted program (here: a push app server, XEP-0357) connects and opens a stream ``to`` the
domain it wants to serve. We answer with our header, which carries a fresh stream id; the
component proves it knows the domain's shared secret by sending
``<handshake>hex(SHA-1(stream id + secret))</handshake>`` (§3). The digest is compared in constant
time; a match is answered with an empty ``<handshake/>`` and stanzas flow both ways, a mismatch
is the ``<not-authorized/>`` stream error. There are no stream features, no TLS and no SASL,
which is why this is a machine of its own beside :class:`~interlink.xmpp.stream.ServerStream`
rather than a :class:`~interlink.xmpp.stream.StreamRole`: every step of that machine after the
header (features, STARTTLS, SASL, binding) would be one the component does not take. The
listener binds to the loopback address by default: the secret crosses the wire in no form, but
nothing else is protected.

Once ready, every stanza from the component must carry a ``from`` in the component's domain
(its subdomains included); anything else is the ``<invalid-from/>`` stream error (RFC 6120
§4.9.3.9), so a component cannot speak for the hub's users. Stanzas are written and read in the
stream's default namespace ``jabber:component:accept``; inside the hub they are the same typed
stanzas as on client streams (the namespace is rewritten at this boundary, both ways).

Time is passed in: until the handshake succeeds the stream has a deadline
(:meth:`ComponentStream.get_timer` / :meth:`ComponentStream.handle_timer`).

::

    WAIT_HEADER --header(to=known domain)--> WAIT_HANDSHAKE --handshake(ok)--> READY
    any state --footer / error / close() / deadline--> CLOSED
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum, auto
from typing import Any
from xml.etree.ElementTree import Element

from interlink.errors import StanzaError, StreamError, StreamErrorCondition
from interlink.xmpp import ns
from interlink.xmpp.framing import Framing
from interlink.xmpp.jid import JID, InvalidJID
from interlink.xmpp.parser import (
    ElementReceived,
    ParseFailed,
    ParserEvent,
    StreamHeader,
    StreamParser,
    XmlLimits,
)
from interlink.xmpp.stanza import (
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
from interlink.xmpp.xml import escape_attr

NS = "jabber:component:accept"
HANDSHAKE = ns.qname(NS, "handshake")
_STANZAS = frozenset(ns.qname(NS, local) for local in ("message", "presence", "iq"))
_PREFIX = "{" + NS + "}"
_CLIENT_PREFIX = "{" + ns.CLIENT + "}"


@dataclass(frozen=True, slots=True)
class ComponentConfig:
    """``secrets``: component domain → shared secret; ``handshake_timeout``: seconds from the
    connection to a successful handshake; ``limits``: what one stanza may be."""

    secrets: Mapping[str, str]
    handshake_timeout: float = 10.0
    limits: XmlLimits = field(default_factory=XmlLimits)


@dataclass(frozen=True, slots=True)
class ComponentAuthenticated:
    """The handshake succeeded: the stream serves ``domain`` from now on."""

    domain: str


@dataclass(frozen=True, slots=True)
class ComponentStanza:
    """A stanza from the component (its ``from`` checked to be in the component's domain)."""

    stanza: Stanza


@dataclass(frozen=True, slots=True)
class ComponentClosed:
    error: StreamError | None
    by_peer: bool


ComponentEvent = ComponentAuthenticated | ComponentStanza | ComponentClosed


class ComponentState(Enum):
    WAIT_HEADER = auto()
    WAIT_HANDSHAKE = auto()
    READY = auto()
    CLOSED = auto()


class ComponentStream:
    """One component's stream; see the module docstring. Raises nothing to the shell: errors in
    the peer's input become a stream error and a :class:`ComponentClosed` event."""

    def __init__(self, config: ComponentConfig, *, now: float) -> None:
        self.config = config
        self.state = ComponentState.WAIT_HEADER
        self.domain = ""  # the domain asked for; served once READY
        self.stream_id = secrets.token_hex(16)
        self._parser = StreamParser(config.limits)
        self._out: list[str] = []
        self._header_sent = False
        self._deadline: float | None = now + config.handshake_timeout

    # -- output -------------------------------------------------------------------------------
    def data_to_send(self) -> bytes:
        data = "".join(self._out).encode()
        self._out.clear()
        return data

    def send_stanza(self, stanza: Stanza) -> None:
        """Write ``stanza`` to the component (only once the stream is ready).

        Stanzas serialized for ``jabber:client`` and written into a stream whose default
        namespace is ``jabber:component:accept`` are that namespace's stanzas."""
        if self.state is ComponentState.READY:
            self._out.append(to_xml(stanza, ns.CLIENT))

    # -- timers -------------------------------------------------------------------------------
    def get_timer(self) -> float | None:
        return self._deadline

    def handle_timer(self, now: float) -> list[ComponentEvent]:
        if self._deadline is not None and now >= self._deadline:
            return self.close(
                StreamError(
                    StreamErrorCondition.CONNECTION_TIMEOUT, "the handshake did not come in time"
                )
            )
        return []

    # -- input --------------------------------------------------------------------------------
    def receive_data(self, data: bytes) -> list[ComponentEvent]:
        events: list[ComponentEvent] = []
        if self.state is ComponentState.CLOSED:
            return events
        for ev in self._parser.feed(data):
            if self.closed:
                break
            try:
                handler = _TABLE.get((self.state, _kind(ev)))
                if handler is None:
                    raise _unexpected(ev)
                handler(self, ev, events)
            except StreamError as err:
                events.extend(self.close(err))
        return events

    def _header(self, header: StreamHeader, events: list[ComponentEvent]) -> None:
        if header.tag != ns.qname(ns.STREAM, "stream"):
            raise StreamError(StreamErrorCondition.INVALID_NAMESPACE, "not a stream header")
        to = header.attrs.get("to", "")
        self.domain = to
        self._write_header()
        if to not in self.config.secrets:
            raise StreamError(
                StreamErrorCondition.HOST_UNKNOWN, f"no component is configured for '{to}'"
            )
        self.state = ComponentState.WAIT_HANDSHAKE

    def _handshake(self, ev: ElementReceived, events: list[ComponentEvent]) -> None:
        secret = self.config.secrets[self.domain]
        # SHA-1 is what XEP-0114 §3 prescribes; the secret never crosses the wire in the clear.
        digest = hashlib.sha1((self.stream_id + secret).encode(), usedforsecurity=True)  # noqa: S324
        expected = digest.hexdigest()
        given = (ev.element.text or "").strip().lower()
        if not hmac.compare_digest(given.encode(), expected.encode()):
            raise StreamError(StreamErrorCondition.NOT_AUTHORIZED, "the handshake is wrong")
        self._out.append("<handshake/>")
        self.state = ComponentState.READY
        self._deadline = None
        events.append(ComponentAuthenticated(self.domain))

    def _stanza(self, ev: ElementReceived, events: list[ComponentEvent]) -> None:
        el = ev.element
        claimed = el.get("from")
        try:
            sender = JID.parse(claimed) if claimed else None
        except InvalidJID:
            sender = None
        if sender is None or not (
            sender.domain == self.domain or sender.domain.endswith("." + self.domain)
        ):
            raise StreamError(
                StreamErrorCondition.INVALID_FROM,
                f"a component's stanzas must come from its domain '{self.domain}'",
            )
        _to_client_namespace(el)
        try:
            stanza = parse_stanza(el, from_=sender)
        except StanzaError as err:
            if el.get("type") != "error":
                self._out.append(_error_xml(el, err, sender))
            return
        events.append(ComponentStanza(stanza))

    def _footer(self, _: object, events: list[ComponentEvent]) -> None:
        self._out.append("</stream:stream>")
        self._finish()
        events.append(ComponentClosed(None, by_peer=True))

    # -- closing ------------------------------------------------------------------------------
    def close(self, error: StreamError | None = None) -> list[ComponentEvent]:
        if self.state is ComponentState.CLOSED:
            return []
        if not self._header_sent:
            self._write_header()
        if error is not None:
            error.__traceback__ = None  # a reference cycle otherwise: see ServerStream.close
            self._out.append(Framing.TCP.stream_error(error))
        self._out.append("</stream:stream>")
        self._finish()
        return [ComponentClosed(error, by_peer=False)]

    @property
    def closed(self) -> bool:
        return self.state is ComponentState.CLOSED

    def _finish(self) -> None:
        self.state = ComponentState.CLOSED
        self._deadline = None
        self._parser.release()

    def _write_header(self) -> None:
        # XEP-0114 §3: no version, so no features follow.
        self._out.append(
            "<?xml version='1.0'?>"
            f'<stream:stream xmlns="{NS}" xmlns:stream="{ns.STREAM}" '
            f'from="{escape_attr(self.domain)}" id="{self.stream_id}">'
        )
        self._header_sent = True


def _kind(ev: ParserEvent) -> str:
    if isinstance(ev, ParseFailed):
        raise ev.error
    if isinstance(ev, StreamHeader):
        return "header"
    if isinstance(ev, ElementReceived):
        tag = ev.element.tag
        if tag == HANDSHAKE:
            return "handshake"
        return "stanza" if tag in _STANZAS else "other"
    return "footer"


def _unexpected(ev: ParserEvent) -> StreamError:
    if isinstance(ev, ElementReceived):
        tag = ev.element.tag
        if tag in _STANZAS:
            return StreamError(StreamErrorCondition.NOT_AUTHORIZED, "handshake first (XEP-0114)")
        if not tag.startswith(_PREFIX):
            return StreamError(
                StreamErrorCondition.INVALID_NAMESPACE, "unsupported top-level element namespace"
            )
        return StreamError(StreamErrorCondition.UNSUPPORTED_STANZA_TYPE, "unexpected element")
    return StreamError(StreamErrorCondition.BAD_FORMAT, "unexpected stream header")


def _to_client_namespace(el: Element) -> None:
    """Elements in the stream's default namespace are ``jabber:client`` inside the hub."""
    for child in el.iter():
        if child.tag.startswith(_PREFIX):
            child.tag = _CLIENT_PREFIX + child.tag[len(_PREFIX) :]


def _error_xml(el: Element, err: StanzaError, sender: JID) -> str:
    """An error answer for a stanza from the component too broken to become a typed stanza."""
    kind = el.tag.rsplit("}", 1)[-1]
    payload = (error_element(err),)
    sid = el.get("id")
    reply: Stanza
    if kind == "message":
        reply = Message(sender, None, sid, None, payload, MessageType.ERROR)
    elif kind == "presence":
        reply = Presence(sender, None, sid, None, payload, PresenceType.ERROR)
    else:
        reply = Iq(sender, None, sid or "", None, payload, IqType.ERROR)
    return to_xml(reply, ns.CLIENT)


Handler = Callable[[ComponentStream, Any, list[ComponentEvent]], None]
_S = ComponentState
#: (state, input kind) → handler; anything else is a stream error (:func:`_unexpected`).
_TABLE: Mapping[tuple[ComponentState, str], Handler] = {
    (_S.WAIT_HEADER, "header"): ComponentStream._header,
    (_S.WAIT_HANDSHAKE, "handshake"): ComponentStream._handshake,
    (_S.WAIT_HANDSHAKE, "footer"): ComponentStream._footer,
    (_S.READY, "stanza"): ComponentStream._stanza,
    (_S.READY, "footer"): ComponentStream._footer,
}

__all__ = [
    "HANDSHAKE",
    "NS",
    "ComponentAuthenticated",
    "ComponentClosed",
    "ComponentConfig",
    "ComponentEvent",
    "ComponentStanza",
    "ComponentState",
    "ComponentStream",
]
