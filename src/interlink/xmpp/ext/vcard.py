"""XEP-0054 vcard-temp: the ``<vCard/>`` element, and what of a vCard crosses the interop
boundary.

A third-party account's vCard is only what its user typed: nothing in it is attested by its
provider; and a gatekeeper user's holds more (telephone, addresses) than a stranger on another
messenger should read. So what crosses the boundary, either way, is what a chat list shows
(:data:`THIRD_PARTY_FIELDS`: the display name, nickname and photo); clients present a third
party's as self-declared (docs/protocol.md §13)."""

from __future__ import annotations

from xml.etree.ElementTree import Element

NS = "vcard-temp"
VCARD = f"{{{NS}}}vCard"
THIRD_PARTY_FIELDS = frozenset(f"{{{NS}}}{name}" for name in ("FN", "NICKNAME", "PHOTO"))


def empty() -> Element:
    """The answer for an account that has not set a vCard (XEP-0054 §3.1)."""
    return Element(VCARD)


def third_party_view(vcard: Element) -> Element:
    """``vcard`` with only :data:`THIRD_PARTY_FIELDS` left, in their order."""
    view = Element(VCARD)
    view.extend(child for child in vcard if child.tag in THIRD_PARTY_FIELDS)
    return view
