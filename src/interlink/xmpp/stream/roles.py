"""What a stream is *for*: the client-to-server role (RFC 6120 §5–§8), and the seam for others.

The stream machine (:mod:`interlink.xmpp.stream.machine`) owns the states, the transition table,
the wire framing, STARTTLS, the SASL exchange loop and stream errors. A role answers the
questions in which the kinds of stream differ:

- which stream features to offer after each (re)start (RFC 6120 §4.3.2);
- which SASL mechanisms exist and how an exchange starts (§6);
- how the peer asks to become ready after authentication (client-to-server: resource binding,
  §7) and what the answer looks like;
- what a stanza from this peer must look like and which ``from`` it gets (§8.1.2.1).

:class:`ClientRole` is the client-to-server role. Server-to-server streams are not a role of
this receiving machine: they need an initiating side too, and live in :mod:`interlink.xmpp.s2s`
(both directions, SASL EXTERNAL and dialback, their own transition tables).

A role object belongs to one stream (it may keep per-stream state, like the pending bind id).
"""

from __future__ import annotations

from typing import Protocol
from xml.etree.ElementTree import Element

from interlink.errors import StanzaError, StreamError, StreamErrorCondition
from interlink.xmpp import ns
from interlink.xmpp.jid import JID, InvalidJID
from interlink.xmpp.sasl import MECHANISMS, SaslExchange, start_exchange
from interlink.xmpp.sasl.mechanisms import OAUTHBEARER, PLAIN
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
from interlink.xmpp.stream import csi
from interlink.xmpp.stream.config import StreamConfig
from interlink.xmpp.stream.events import BindRequested
from interlink.xmpp.stream.sm import feature_xml
from interlink.xmpp.xml import escape_attr, escape_text, serialize

_IQ = ns.qname(ns.CLIENT, "iq")
_BIND = ns.qname(ns.BIND, "bind")
_RESOURCE = ns.qname(ns.BIND, "resource")
_SESSION = ns.qname(ns.SESSION, "session")


class StreamRole(Protocol):
    """The questions a stream machine asks its role; see the module docstring."""

    @property
    def content_ns(self) -> str:
        """The namespace of this stream's stanzas (``jabber:client`` or ``jabber:server``)."""
        ...

    @property
    def stanza_tags(self) -> frozenset[str]:
        """The top-level elements that are stanzas on this stream."""
        ...

    def features(self, *, secure: bool, authenticated: bool) -> str:
        """The content of ``<stream:features/>`` at this stage."""
        ...

    def start_sasl(self, mechanism: str, *, secure: bool) -> SaslExchange:
        """Begin a SASL exchange. Raises: SaslFailure (unknown or unavailable mechanism)."""
        ...

    def bind_request(self, element: Element) -> BindRequested:
        """An authenticated peer's stanza before it is ready: its request to become ready.

        Raises: StreamError (not a well-formed request, or the role has no such step)."""
        ...

    def bind_result(self, address: JID, content_ns: str | None) -> str:
        """The answer to the request accepted with ``address``."""
        ...

    def bind_error(self, error: StanzaError, content_ns: str | None) -> str:
        """The answer to the request refused with ``error``."""
        ...

    def accept_stanza(
        self, element: Element, address: JID, host: str, content_ns: str | None
    ) -> Stanza | str:
        """A stanza from a ready peer whose stream address is ``address``: the typed stanza to
        route, or the XML to answer with instead (possibly ``""``: nothing).

        Raises: StreamError (e.g. a forged ``from``)."""
        ...


class ClientRole:
    """Client-to-server (RFC 6120): STARTTLS, SASL with passwords or bearer tokens, resource
    binding, and ``from`` stamped with the bound full JID."""

    __slots__ = ("_bind_iq_id", "config")

    content_ns = ns.CLIENT
    stanza_tags = STANZA_TAGS

    def __init__(self, config: StreamConfig) -> None:
        self.config = config
        self._bind_iq_id = ""

    # -- features (RFC 6120 §5.4.1, §6.4.1, §7.2; RFC 3921 §3 session for old clients) ---------
    def features(self, *, secure: bool, authenticated: bool) -> str:
        config = self.config
        if authenticated:
            sm_feature = feature_xml() if config.sm is not None else ""
            csi_feature = csi.feature_xml() if config.csi is not None else ""
            return (
                f'<bind xmlns="{ns.BIND}"/><session xmlns="{ns.SESSION}"><optional/></session>'
                + sm_feature
                + csi_feature
            )
        parts: list[str] = []
        if not secure and config.starttls_available:
            required = "<required/>" if config.tls_required else ""
            parts.append(f'<starttls xmlns="{ns.TLS}">{required}</starttls>')
        if secure or not config.tls_required:
            offered = [m for m in MECHANISMS if m != PLAIN or secure]
            if secure and config.oauthbearer:
                offered.append(OAUTHBEARER)
            mechs = "".join(f"<mechanism>{m}</mechanism>" for m in offered)
            parts.append(f'<mechanisms xmlns="{ns.SASL}">{mechs}</mechanisms>')
        return "".join(parts)

    # -- SASL (RFC 6120 §6) ---------------------------------------------------------------------
    def start_sasl(self, mechanism: str, *, secure: bool) -> SaslExchange:
        config = self.config
        return start_exchange(
            mechanism,
            secure=secure,
            decoy_secret=config.decoy_secret,
            decoy_iterations=config.decoy_iterations,
            oauthbearer=config.oauthbearer,
        )

    # -- resource binding (RFC 6120 §7) ---------------------------------------------------------
    def bind_request(self, element: Element) -> BindRequested:
        if element.tag != _IQ:
            raise StreamError(
                StreamErrorCondition.NOT_AUTHORIZED, "stanzas are not accepted before binding"
            )
        iq_id = element.get("id", "")
        child = element[0] if len(element) == 1 else None
        if child is None or child.tag != _BIND or element.get("type") != "set" or not iq_id:
            raise StreamError(
                StreamErrorCondition.NOT_AUTHORIZED, "bind a resource before sending stanzas"
            )
        res_el = child.find(_RESOURCE)
        resource = (res_el.text or "").strip() if res_el is not None else ""
        self._bind_iq_id = iq_id
        return BindRequested(resource or None)

    def bind_result(self, address: JID, content_ns: str | None) -> str:
        return (
            f'<iq {_xmlns(content_ns)}type="result" id="{escape_attr(self._bind_iq_id)}">'
            f'<bind xmlns="{ns.BIND}"><jid>{escape_text(str(address))}</jid></bind></iq>'
        )

    def bind_error(self, error: StanzaError, content_ns: str | None) -> str:
        return (
            f'<iq {_xmlns(content_ns)}type="error" id="{escape_attr(self._bind_iq_id)}">'
            + serialize(error_element(error), ns.CLIENT)
            + "</iq>"
        )

    # -- stanzas (RFC 6120 §8.1.2.1: the server stamps 'from') ----------------------------------
    def accept_stanza(
        self, element: Element, address: JID, host: str, content_ns: str | None
    ) -> Stanza | str:
        claimed = element.get("from")
        if claimed is not None and claimed != str(address):
            try:
                claimed_jid: JID | None = JID.parse(claimed)
            except InvalidJID:
                claimed_jid = None
            if claimed_jid != address and claimed_jid != address.bare:
                raise StreamError(
                    StreamErrorCondition.INVALID_FROM,
                    "the 'from' address does not match the authenticated session",
                )
        if (
            element.tag == _IQ
            and len(element) == 1
            and element[0].tag == _SESSION
            and element.get("type") == "set"
            and element.get("to") in (None, host, self.config.hosts.default)
        ):
            return (
                f'<iq {_xmlns(content_ns)}type="result" id="{escape_attr(element.get("id", ""))}"/>'
            )
        try:
            return parse_stanza(element, from_=address)
        except StanzaError as err:
            if element.get("type") == "error":
                return ""  # never answer an error with an error (RFC 6120 §8.3.1)
            return _error_reply_xml(element, err, address, content_ns)


def _xmlns(content_ns: str | None) -> str:
    return "" if content_ns == ns.CLIENT else 'xmlns="jabber:client" '


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


__all__ = ["ClientRole", "StreamRole"]
