"""XEP-0191 Blocking Command (``urn:xmpp:blocking``): the block list queries (§3.1–§3.5), their
pushes to the account's other resources (§3.3) and the ``<blocked/>`` error condition (§3.6)."""

from __future__ import annotations

from collections.abc import Iterable
from xml.etree.ElementTree import Element

from interlink.xmpp.ext import bad_request, jid_attr
from interlink.xmpp.jid import JID

NS = "urn:xmpp:blocking"
BLOCKLIST = f"{{{NS}}}blocklist"
BLOCK = f"{{{NS}}}block"
UNBLOCK = f"{{{NS}}}unblock"
ITEM = f"{{{NS}}}item"
BLOCKED_ERROR = "{urn:xmpp:blocking:errors}blocked"
QUERIES = frozenset({BLOCKLIST, BLOCK, UNBLOCK})


def block_items(el: Element, *, allow_empty: bool) -> list[tuple[JID, Element]]:
    """The ``<item/>`` children of a ``<block/>`` or ``<unblock/>``, with their JIDs.

    Raises:
        StanzaError: ``jid-malformed`` for a bad JID, ``bad-request`` for an item without one or
            (unless ``allow_empty``) for no items.
    """
    items = [(jid_attr(child, "<item/>"), child) for child in el if child.tag == ITEM]
    if not items and not allow_empty:
        raise bad_request("<block/> needs at least one <item/>")
    return items


def blocklist_element(tag: str, jids: Iterable[str]) -> Element:
    """``<blocklist/>``, ``<block/>`` or ``<unblock/>`` (``tag``) with one item per JID, sorted."""
    el = Element(tag)
    for jid in sorted(jids):
        el.append(Element(ITEM, {"jid": jid}))
    return el


def parse_blocklist(el: Element | None) -> list[str]:
    return [] if el is None else [i.get("jid", "") for i in el.findall(ITEM)]
