"""XEP-0357 Push Notifications (``urn:xmpp:push:0``), the user's-server side: the client's
``<enable/>`` and ``<disable/>`` (§5, §6) and the notification the server publishes to the app
server (§7).

§5: ``<enable jid node/>`` names the app server (``jid``) and the node on it; an optional data
form of type ``http://jabber.org/protocol/pubsub#publish-options`` is given back with every
publish (the app server uses it, e.g. for a secret). §6: ``<disable jid/>`` stops every node of
that app server, ``<disable jid node/>`` that one node. §7: a notification is a pubsub publish
(XEP-0060) of one ``<notification/>`` item whose optional summary form
(``urn:xmpp:push:summary``) may say how many messages are pending and who sent the last one
and what it said.

Interlink's notifications are **content-free**: the summary form carries ``FORM_TYPE`` and
``message-count`` only — never ``last-message-sender`` nor ``last-message-body`` (the hub sees
ciphertext only anyway, and the sender is metadata the app server's push service must not
learn)."""

from __future__ import annotations

from dataclasses import dataclass
from xml.etree.ElementTree import Element

from interlink.errors import StanzaError, StanzaErrorCondition
from interlink.xmpp import ns
from interlink.xmpp.forms import X, build_form, read_form
from interlink.xmpp.jid import JID, InvalidJID
from interlink.xmpp.stanza import Message, MessageType

NS = "urn:xmpp:push:0"
ENABLE = ns.qname(NS, "enable")
DISABLE = ns.qname(NS, "disable")
NOTIFICATION = ns.qname(NS, "notification")
QUERIES = frozenset((ENABLE, DISABLE))
SUMMARY = "urn:xmpp:push:summary"
PUBLISH_OPTIONS = "http://jabber.org/protocol/pubsub#publish-options"
MAX_NODE_LENGTH = 1023

_PUBSUB = ns.qname(ns.PUBSUB, "pubsub")
_PUBLISH = ns.qname(ns.PUBSUB, "publish")
_ITEM = ns.qname(ns.PUBSUB, "item")
_PUBLISH_OPTIONS = ns.qname(ns.PUBSUB, "publish-options")


@dataclass(frozen=True, slots=True)
class Enable:
    service: JID
    node: str
    publish_options: Element | None  # the submitted form, as the client sent it


@dataclass(frozen=True, slots=True)
class Disable:
    service: JID
    node: str | None  # None: every node of the app server


def parse_request(query: Element) -> Enable | Disable:
    """The client's ``<enable/>`` or ``<disable/>`` (§5, §6).

    Raises:
        StanzaError: ``bad-request`` for a missing or malformed ``jid``, an enable without a
            ``node``, a node longer than 1023 characters, or a form that is not a submitted
            publish-options form; ``jid-malformed`` for a ``jid`` that is not a JID.
    """
    raw = query.get("jid")
    if not raw:
        raise StanzaError(StanzaErrorCondition.BAD_REQUEST, "the app server's 'jid' is missing")
    try:
        service = JID.parse(raw)
    except InvalidJID:
        raise StanzaError(
            StanzaErrorCondition.JID_MALFORMED, "the app server's 'jid' is not a JID"
        ) from None
    node = query.get("node")
    if node is not None and (not node or len(node) > MAX_NODE_LENGTH):
        raise StanzaError(
            StanzaErrorCondition.BAD_REQUEST,
            f"a push node is 1 to {MAX_NODE_LENGTH} characters",
        )
    if query.tag == DISABLE:
        return Disable(service, node)
    if node is None:
        raise StanzaError(StanzaErrorCondition.BAD_REQUEST, "enable needs a 'node' (§5)")
    forms = query.findall(X)
    if len(forms) > 1:
        raise StanzaError(StanzaErrorCondition.BAD_REQUEST, "at most one publish-options form")
    form = forms[0] if forms else None
    if form is not None and (
        form.get("type") != "submit" or read_form(form).get("FORM_TYPE") != [PUBLISH_OPTIONS]
    ):
        raise StanzaError(
            StanzaErrorCondition.BAD_REQUEST,
            f"the form in <enable/> must be a submitted {PUBLISH_OPTIONS} form",
        )
    return Enable(service, node, form)


#: Payloads that make a message worth waking a device for: a body, or an OMEMO message
#: (``urn:xmpp:omemo:2`` and legacy ``eu.siacs.conversations.axolotl``).
WAKING_PAYLOADS = frozenset(
    (
        ns.qname(ns.CLIENT, "body"),
        "{urn:xmpp:omemo:2}encrypted",
        "{eu.siacs.conversations.axolotl}encrypted",
    )
)


def wakes_device(message: Message) -> bool:
    """Whether ``message`` is worth a notification: a chat or normal message carrying a body
    or an encrypted payload (not a chat state, receipt or marker alone)."""
    if message.type not in (MessageType.CHAT, MessageType.NORMAL):
        return False
    return any(child.tag in WAKING_PAYLOADS for child in message.payload)


def publish(node: str, publish_options: Element | None, *, message_count: int) -> Element:
    """The ``<pubsub/>`` payload of one content-free notification (§7): one ``<notification/>``
    item whose summary holds ``message-count`` alone, and the registration's publish-options."""
    pubsub = Element(_PUBSUB)
    publish_el = Element(_PUBLISH, {"node": node})
    item = Element(_ITEM)
    notification = Element(NOTIFICATION)
    notification.append(build_form(SUMMARY, {"message-count": str(message_count)}, type_="submit"))
    item.append(notification)
    publish_el.append(item)
    pubsub.append(publish_el)
    if publish_options is not None:
        options = Element(_PUBLISH_OPTIONS)
        options.append(publish_options)
        pubsub.append(options)
    return pubsub


__all__ = [
    "DISABLE",
    "ENABLE",
    "NOTIFICATION",
    "NS",
    "PUBLISH_OPTIONS",
    "QUERIES",
    "SUMMARY",
    "WAKING_PAYLOADS",
    "Disable",
    "Enable",
    "parse_request",
    "publish",
    "wakes_device",
]
