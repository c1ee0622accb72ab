"""XEP-0049 Private XML Storage (``jabber:iq:private``): the query and the fragments in it.

§2: a set stores each child element under its namespace (one element per namespace, replacing
the one there); a get names exactly one empty element and is answered with what is stored under
its namespace, or with that empty element when nothing is. §3: storing in ``jabber:iq:private``,
``jabber:client`` or ``jabber:server`` (or with no namespace at all) is ``not-acceptable``."""

from __future__ import annotations

from xml.etree.ElementTree import Element

from interlink.errors import StanzaError, StanzaErrorCondition
from interlink.xmpp.xml import split_qname

NS = "jabber:iq:private"
QUERY = f"{{{NS}}}query"
RESERVED = frozenset({NS, "jabber:client", "jabber:server"})


def namespace_of(el: Element) -> str:
    """The namespace ``el`` is stored under.

    Raises:
        StanzaError: ``not-acceptable`` for no namespace or a reserved one (§3).
    """
    namespace, _ = split_qname(el.tag)
    if not namespace or namespace in RESERVED:
        raise StanzaError(
            StanzaErrorCondition.NOT_ACCEPTABLE,
            f"private storage does not take elements in {namespace or 'no namespace'!r}",
        )
    return namespace


def requested(query: Element) -> Element:
    """The one element a get names.

    Raises:
        StanzaError: ``not-acceptable`` unless there is exactly one, in an allowed namespace.
    """
    children = list(query)
    if len(children) != 1:
        raise StanzaError(
            StanzaErrorCondition.NOT_ACCEPTABLE, "a private storage get names exactly one element"
        )
    namespace_of(children[0])
    return children[0]


def stored(query: Element) -> list[tuple[str, Element]]:
    """The elements a set stores, with their namespaces (each at most once).

    Raises:
        StanzaError: ``not-acceptable`` for no element, a reserved namespace or a namespace
            named twice.
    """
    children = [(namespace_of(child), child) for child in query]
    if not children:
        raise StanzaError(
            StanzaErrorCondition.NOT_ACCEPTABLE, "a private storage set needs an element"
        )
    if len({namespace for namespace, _ in children}) != len(children):
        raise StanzaError(
            StanzaErrorCondition.NOT_ACCEPTABLE,
            "one element per namespace in a private storage set",
        )
    return children


def query_with(*payload: Element) -> Element:
    el = Element(QUERY)
    el.extend(payload)
    return el
