"""Typed stanzas: ``<message/>``, ``<presence/>`` and ``<iq/>`` (RFC 6120 §8, RFC 6121).

A stanza enters the core as an :class:`~xml.etree.ElementTree.Element` and leaves the parser as one
of the frozen dataclasses below; routing and policy read fields, never raw attributes. Payload
elements (the children) are kept as elements, since their meaning belongs to the extension that
handles them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import ClassVar
from xml.etree.ElementTree import Element

from interlink.errors import StanzaError, StanzaErrorCondition, StanzaErrorType
from interlink.xmpp import ns
from interlink.xmpp.jid import JID, InvalidJID
from interlink.xmpp.xml import escape_attr, escape_text, serialize, split_qname

_MESSAGE = ns.qname(ns.CLIENT, "message")
_PRESENCE = ns.qname(ns.CLIENT, "presence")
_IQ = ns.qname(ns.CLIENT, "iq")
_ERROR = ns.qname(ns.CLIENT, "error")
_BODY = ns.qname(ns.CLIENT, "body")
_SHOW = ns.qname(ns.CLIENT, "show")
_STATUS = ns.qname(ns.CLIENT, "status")
_PRIORITY = ns.qname(ns.CLIENT, "priority")
STANZA_TAGS = frozenset((_MESSAGE, _PRESENCE, _IQ))


class MessageType(StrEnum):
    NORMAL = "normal"
    CHAT = "chat"
    GROUPCHAT = "groupchat"
    HEADLINE = "headline"
    ERROR = "error"


class PresenceType(StrEnum):
    AVAILABLE = ""  # no type attribute
    UNAVAILABLE = "unavailable"
    SUBSCRIBE = "subscribe"
    SUBSCRIBED = "subscribed"
    UNSUBSCRIBE = "unsubscribe"
    UNSUBSCRIBED = "unsubscribed"
    PROBE = "probe"
    ERROR = "error"

    @property
    def is_subscription(self) -> bool:
        return self in _SUBSCRIPTION_TYPES


_SUBSCRIPTION_TYPES = frozenset(
    (
        PresenceType.SUBSCRIBE,
        PresenceType.SUBSCRIBED,
        PresenceType.UNSUBSCRIBE,
        PresenceType.UNSUBSCRIBED,
    )
)


class IqType(StrEnum):
    GET = "get"
    SET = "set"
    RESULT = "result"
    ERROR = "error"

    @property
    def is_request(self) -> bool:
        return self is IqType.GET or self is IqType.SET


@dataclass(frozen=True, slots=True)
class _Base:
    to: JID | None
    from_: JID | None
    id: str | None
    lang: str | None
    payload: tuple[Element, ...]

    def find(self, tag: str) -> Element | None:
        for child in self.payload:
            if child.tag == tag:
                return child
        return None

    def payload_namespaces(self) -> Iterator[str]:
        for child in self.payload:
            child_ns = split_qname(child.tag)[0]
            if child_ns is not None:
                yield child_ns


@dataclass(frozen=True, slots=True)
class Message(_Base):
    type: MessageType = MessageType.NORMAL
    KIND: ClassVar[str] = "message"

    @property
    def body(self) -> str | None:
        el = self.find(_BODY)
        return None if el is None else (el.text or "")


@dataclass(frozen=True, slots=True)
class Presence(_Base):
    type: PresenceType = PresenceType.AVAILABLE
    KIND: ClassVar[str] = "presence"

    @property
    def priority(self) -> int:
        el = self.find(_PRIORITY)
        if el is None or not el.text:
            return 0
        return int(el.text)  # validated by parse_stanza

    @property
    def show(self) -> str | None:
        el = self.find(_SHOW)
        return None if el is None else el.text


@dataclass(frozen=True, slots=True)
class Iq(_Base):
    type: IqType = IqType.GET
    KIND: ClassVar[str] = "iq"

    @property
    def query(self) -> Element | None:
        """The single child of a get/set request (RFC 6120 §8.2.3)."""
        return self.payload[0] if self.payload else None


Stanza = Message | Presence | Iq


def _jid_attr(el: Element, name: str) -> JID | None:
    value = el.get(name)
    if value is None:
        return None
    try:
        return JID.parse(value)
    except InvalidJID as exc:
        raise StanzaError(
            StanzaErrorCondition.JID_MALFORMED, f"'{name}' is not a valid JID: {exc}"
        ) from None


def parse_stanza(el: Element, *, from_: JID | None = None) -> Stanza:
    """Build a typed stanza from a top-level element in the ``jabber:client`` namespace.

    ``from_``, when given, is the stamped sender and replaces the attribute. Raises
    :class:`StanzaError` (``jid-malformed`` or ``bad-request``) for an invalid stanza whose kind
    is still known, so that an error reply can be addressed.
    """
    tag = el.tag
    to = _jid_attr(el, "to")
    if from_ is None:
        from_ = _jid_attr(el, "from")
    sid = el.get("id")
    lang = el.get(ns.XML_LANG)
    payload = tuple(el)
    type_attr = el.get("type")
    if tag == _MESSAGE:
        try:
            mtype = MessageType(type_attr) if type_attr is not None else MessageType.NORMAL
        except ValueError:
            raise StanzaError(
                StanzaErrorCondition.BAD_REQUEST, f"unknown message type '{type_attr}'"
            ) from None
        return Message(to, from_, sid, lang, payload, mtype)
    if tag == _PRESENCE:
        try:
            ptype = PresenceType(type_attr) if type_attr else PresenceType.AVAILABLE
        except ValueError:
            raise StanzaError(
                StanzaErrorCondition.BAD_REQUEST, f"unknown presence type '{type_attr}'"
            ) from None
        prio = el.find(_PRIORITY)
        if prio is not None:
            try:
                value = int((prio.text or "").strip())
            except ValueError:
                value = 1000
            if not -128 <= value <= 127:
                raise StanzaError(
                    StanzaErrorCondition.BAD_REQUEST, "priority must be an integer from -128 to 127"
                )
        return Presence(to, from_, sid, lang, payload, ptype)
    if tag == _IQ:
        try:
            itype = IqType(type_attr or "")
        except ValueError:
            raise StanzaError(
                StanzaErrorCondition.BAD_REQUEST, "iq type must be get, set, result or error"
            ) from None
        if not sid:
            raise StanzaError(StanzaErrorCondition.BAD_REQUEST, "an iq must have an id")
        if itype.is_request and len(payload) != 1:
            raise StanzaError(
                StanzaErrorCondition.BAD_REQUEST, "an iq get or set must have exactly one child"
            )
        return Iq(to, from_, sid, lang, payload, itype)
    raise ValueError(f"not a stanza: {tag}")  # the stream filters these first


# -- serialization ---------------------------------------------------------------------------


def to_xml(stanza: Stanza, content_ns: str | None = ns.CLIENT) -> str:
    """Serialize ``stanza`` for a stream whose default namespace is ``content_ns``.

    Pass ``content_ns=None`` for WebSocket framing, where every stanza declares its namespace.
    """
    if isinstance(stanza, Message):
        name = "message"
        type_ = None if stanza.type is MessageType.NORMAL else str(stanza.type)
    elif isinstance(stanza, Presence):
        name = "presence"
        type_ = str(stanza.type) or None
    else:
        name = "iq"
        type_ = str(stanza.type)
    parts = ["<", name]
    if content_ns != ns.CLIENT:
        parts.append(' xmlns="jabber:client"')
    if stanza.from_ is not None:
        parts.append(' from="' + escape_attr(str(stanza.from_)) + '"')
    if stanza.to is not None:
        parts.append(' to="' + escape_attr(str(stanza.to)) + '"')
    if type_:
        parts.append(' type="' + type_ + '"')
    if stanza.id is not None:
        parts.append(' id="' + escape_attr(stanza.id) + '"')
    if stanza.lang is not None:
        parts.append(' xml:lang="' + escape_attr(stanza.lang) + '"')
    if not stanza.payload:
        parts.append("/>")
        return "".join(parts)
    parts.append(">")
    for child in stanza.payload:
        parts.append(serialize(child, ns.CLIENT))
        if child.tail and child.tail.strip():
            parts.append(escape_text(child.tail))
    parts.append("</" + name + ">")
    return "".join(parts)


def error_element(error: StanzaError) -> Element:
    """``<error type='…' code='…'><condition/><text/></error>`` (RFC 6120 §8.3.2; the legacy
    ``code`` of XEP-0086 beside it, for older clients)."""
    el = Element(_ERROR, {"type": str(error.type)})
    code = error.condition.legacy_code
    if code is not None:
        el.set("code", str(code))
    el.append(Element(ns.qname(ns.STANZAS_ERR, str(error.condition))))
    if error.text:
        text = Element(ns.qname(ns.STANZAS_ERR, "text"), {ns.XML_LANG: "en"})
        text.text = error.text
        el.append(text)
    if error.app_condition:
        el.append(Element(error.app_condition))
    return el


def error_reply(stanza: Stanza, error: StanzaError, *, from_: JID | None) -> Stanza:
    """The error answer to ``stanza``: addressed back to its sender, from ``from_``.

    The original payload is not echoed back (RFC 6120 §8.3.1 makes that optional); we share as
    little as possible.
    """
    payload = (error_element(error),)
    if isinstance(stanza, Message):
        return Message(stanza.from_, from_, stanza.id, None, payload, MessageType.ERROR)
    if isinstance(stanza, Presence):
        return Presence(stanza.from_, from_, stanza.id, None, payload, PresenceType.ERROR)
    return Iq(stanza.from_, from_, stanza.id, None, payload, IqType.ERROR)


def iq_result(request: Iq, *payload: Element, from_: JID | None) -> Iq:
    return Iq(request.from_, from_, request.id, None, tuple(payload), IqType.RESULT)


def is_error_stanza(stanza: Stanza) -> bool:
    return stanza.type in (MessageType.ERROR, PresenceType.ERROR, IqType.ERROR)


__all__ = [
    "STANZA_TAGS",
    "Iq",
    "IqType",
    "Message",
    "MessageType",
    "Presence",
    "PresenceType",
    "Stanza",
    "StanzaError",
    "StanzaErrorType",
    "error_element",
    "error_reply",
    "iq_result",
    "is_error_stanza",
    "parse_stanza",
    "to_xml",
]
