"""Service discovery (XEP-0030), ping (XEP-0199) and software version (XEP-0092)."""

from __future__ import annotations

from xml.etree.ElementTree import Element

from interlink import __version__
from interlink.errors import StanzaError, StanzaErrorCondition
from interlink.xmpp import ns
from interlink.xmpp.ext import blocking, bookmarks, interop, private, reporting, vcard
from interlink.xmpp.jid import JID
from interlink.xmpp.stanza import Iq, IqType

PEP_FEATURES = tuple(
    ns.PUBSUB + "#" + f
    for f in (
        "publish",
        "publish-options",
        "auto-create",
        "retrieve-items",
        "retract-items",
        "delete-nodes",
        "config-node",
        "persistent-items",
        "access-open",
        "access-presence",
        "access-whitelist",
        "subscribe",
        "last-published",
        "filtered-notifications",
    )
)

DISCO_INFO = ns.qname(ns.DISCO_INFO, "query")
DISCO_ITEMS = ns.qname(ns.DISCO_ITEMS, "query")
PING = ns.qname(ns.PING, "ping")
VERSION = ns.qname(ns.VERSION, "query")

SERVER_FEATURES = (
    ns.DISCO_INFO,
    ns.DISCO_ITEMS,
    ns.PING,
    ns.VERSION,
    ns.ROSTER,
    "msgoffline",  # XEP-0160: offline messages are stored
    private.NS,  # XEP-0049, listed on the server as Prosody does
    vcard.NS,  # XEP-0054, likewise
    "urn:xmpp:carbons:2",  # XEP-0280
    blocking.NS,  # XEP-0191
    reporting.NS,  # XEP-0377
    reporting.SPAM,
    reporting.ABUSE,
    interop.NS,  # interop settings and message requests (docs/protocol.md)
)
ACCOUNT_FEATURES = (
    ns.DISCO_INFO,
    ns.DISCO_ITEMS,
    ns.PING,
    ns.PUBSUB,
    *PEP_FEATURES,
    bookmarks.COMPAT,  # XEP-0402 §5.3: private storage bookmarks are a view of the node
    bookmarks.COMPAT_PEP,  # XEP-0402 §5.3: so is the XEP-0048 PEP node
    bookmarks.CONVERSION,  # XEP-0411 §2, for clients that look for it
)


def _no_node(query: Element) -> None:
    if query.get("node"):
        raise StanzaError(StanzaErrorCondition.ITEM_NOT_FOUND, "no such node")


def info(
    query: Element, *, category: str, type_: str, name: str, features: tuple[str, ...]
) -> Element:
    _no_node(query)
    result = Element(DISCO_INFO)
    identity = {"category": category, "type": type_}
    if name:
        identity["name"] = name
    result.append(Element(ns.qname(ns.DISCO_INFO, "identity"), identity))
    for feature in features:
        result.append(Element(ns.qname(ns.DISCO_INFO, "feature"), {"var": feature}))
    return result


def add_features(info_: Element, features: tuple[str, ...]) -> None:
    """Append ``features`` to a disco#info answer."""
    for feature in features:
        info_.append(Element(ns.qname(ns.DISCO_INFO, "feature"), {"var": feature}))


def items(query: Element) -> Element:
    _no_node(query)
    return Element(DISCO_ITEMS)


def server_query(iq: Iq) -> Element | None:
    """The answer to a get/set sent to the hub's domain, ``None`` for an empty result.

    Raises ``service-unavailable`` for anything not served (RFC 6120 §8.4)."""
    query = iq.query
    assert query is not None
    if iq.type is IqType.GET:
        if query.tag == DISCO_INFO:
            return info(
                query, category="server", type_="im", name="Interlink", features=SERVER_FEATURES
            )
        if query.tag == DISCO_ITEMS:
            return items(query)
        if query.tag == PING:
            return None
        if query.tag == VERSION:
            result = Element(VERSION)
            for tag, text in (("name", "Interlink"), ("version", __version__)):
                child = Element(ns.qname(ns.VERSION, tag))
                child.text = text
                result.append(child)
            return result
    raise StanzaError(StanzaErrorCondition.SERVICE_UNAVAILABLE)


def node_items(account: JID, nodes: list[str]) -> Element:
    result = Element(DISCO_ITEMS)
    for node in nodes:
        result.append(
            Element(ns.qname(ns.DISCO_ITEMS, "item"), {"jid": str(account), "node": node})
        )
    return result


def account_query(iq: Iq) -> Element | None:
    """Requests the server answers on behalf of an account's bare JID (RFC 6121 §8.5.1)."""
    query = iq.query
    assert query is not None
    if iq.type is IqType.GET:
        if query.tag == DISCO_INFO:
            result = info(
                query, category="account", type_="registered", name="", features=ACCOUNT_FEATURES
            )
            # XEP-0163 §6: the account is also a PEP service.
            result.insert(
                1,
                Element(ns.qname(ns.DISCO_INFO, "identity"), {"category": "pubsub", "type": "pep"}),
            )
            return result
        if query.tag == DISCO_ITEMS:
            return items(query)
        if query.tag == PING:
            return None
    raise StanzaError(StanzaErrorCondition.SERVICE_UNAVAILABLE)
