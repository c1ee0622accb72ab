"""XEP-0054 vcard-temp: the ``<vCard/>`` element, and what of a vCard crosses the interop
boundary.

A third-party account's vCard is only what its user typed: nothing in it is attested by its
provider; and a gatekeeper user's holds more (telephone, addresses) than a stranger on another
messenger should read. So what crosses the boundary, either way, is what a chat list shows
(:data:`THIRD_PARTY_FIELDS`: the display name, nickname and photo); clients present a third
party's as self-declared (docs/protocol.md §13).

XEP-0153: the hub stamps every available presence of an account with the SHA-1 of its stored
vCard's photo (:func:`with_update`)."""

from __future__ import annotations

import base64
import binascii
import hashlib
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


# -- XEP-0153 vCard-based avatars ------------------------------------------------------------------
UPDATE_NS = "vcard-temp:x:update"
UPDATE = f"{{{UPDATE_NS}}}x"
_PHOTO = f"{{{UPDATE_NS}}}photo"


def photo_hash(vcard: Element) -> str:
    """XEP-0153 §3.1: the lowercase hex SHA-1 of the vCard's PHOTO (its BINVAL, decoded); ``""``
    when there is none to hash (no PHOTO, only an EXTVAL, or a BINVAL that is not base64)."""
    binval = vcard.findtext(f"{{{NS}}}PHOTO/{{{NS}}}BINVAL")
    if not binval or not binval.strip():
        return ""
    try:
        data = base64.b64decode("".join(binval.split()), validate=True)
    except (binascii.Error, ValueError):
        return ""
    return hashlib.sha1(data, usedforsecurity=False).hexdigest()


def update_element(digest: str) -> Element:
    """``<x xmlns='vcard-temp:x:update'><photo>digest</photo></x>``, an empty ``<photo/>`` for
    no avatar (§3.2: "the user has no avatar", not "not ready": that is an ``x`` without photo)."""
    x = Element(UPDATE)
    photo = Element(_PHOTO)
    photo.text = digest or None
    x.append(photo)
    return x


def with_update(payload: tuple[Element, ...], digest: str) -> tuple[Element, ...]:
    """``payload`` advertising ``digest``: unchanged when it already says exactly that (one
    ``x`` holding one ``photo`` of that value), else without the client's ``x`` elements and with
    the hub's (§4: the server knows the stored vCard; a client's stale or absent hash would make
    contacts fetch the vCard again or miss a change)."""
    updates = [el for el in payload if el.tag == UPDATE]
    if len(updates) == 1:
        photos = list(updates[0])
        if len(photos) == 1 and photos[0].tag == _PHOTO and (photos[0].text or "") == digest:
            return payload
    return (*(el for el in payload if el.tag != UPDATE), update_element(digest))
