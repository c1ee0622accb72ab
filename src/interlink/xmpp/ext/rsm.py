"""XEP-0059 Result Set Management: the ``<set/>`` a request pages with and the one a result
carries.

§2.1: ``<max>`` asks for at most that many items (a responder may return fewer, never more);
§2.2: ``<after>UID</after>`` asks for the page after an item; §2.3: ``<before>UID</before>`` the
page before one, and an empty ``<before/>`` the last page; §2.4: ``<count>`` is the size of the
whole result set; §2.5: ``<first index='n'>`` gives the position of the page's first item in it.
§2.6 (``<index>``, jumping to a position) is not supported: ``feature-not-implemented``."""

from __future__ import annotations

from dataclasses import dataclass
from xml.etree.ElementTree import Element, SubElement

from interlink.errors import StanzaError, StanzaErrorCondition

NS = "http://jabber.org/protocol/rsm"
SET = f"{{{NS}}}set"
_MAX = f"{{{NS}}}max"
_AFTER = f"{{{NS}}}after"
_BEFORE = f"{{{NS}}}before"
_INDEX = f"{{{NS}}}index"
_KNOWN = frozenset((_MAX, _AFTER, _BEFORE, _INDEX))


@dataclass(frozen=True, slots=True)
class PageRequest:
    """What a request asks for: ``before == ""`` is the last page (§2.3); ``max`` is ``None``
    when the request names no maximum."""

    max: int | None = None
    after: str | None = None
    before: str | None = None

    @property
    def backwards(self) -> bool:
        return self.before is not None


@dataclass(frozen=True, slots=True)
class PageResult:
    """What a result tells of its page: ``first``/``last`` are ``None`` for an empty page."""

    count: int
    first: str | None = None
    first_index: int | None = None
    last: str | None = None


def parse(set_: Element | None) -> PageRequest:
    """The page a ``<set/>`` asks for (``None``: no set, the default page).

    Raises:
        StanzaError: ``bad-request`` for a ``<max>`` that is not a non-negative integer, an
            empty ``<after/>`` or an unknown child; ``feature-not-implemented`` for
            ``<index>`` (§2.6).
    """
    if set_ is None:
        return PageRequest()
    max_: int | None = None
    after: str | None = None
    before: str | None = None
    for child in set_:
        if child.tag not in _KNOWN:
            raise StanzaError(
                StanzaErrorCondition.BAD_REQUEST, f"unknown result set element {child.tag}"
            )
        text = (child.text or "").strip()
        if child.tag == _MAX:
            if not text.isdigit() or not text.isascii():
                raise StanzaError(
                    StanzaErrorCondition.BAD_REQUEST, "<max/> must be a non-negative integer"
                )
            max_ = int(text)
        elif child.tag == _AFTER:
            if not text:
                raise StanzaError(StanzaErrorCondition.BAD_REQUEST, "<after/> needs an id")
            after = text
        elif child.tag == _BEFORE:
            before = text
        else:
            raise StanzaError(
                StanzaErrorCondition.FEATURE_NOT_IMPLEMENTED,
                "paging by <index/> is not supported; page with <after/> or <before/>",
            )
    if after is not None and before is not None:
        raise StanzaError(
            StanzaErrorCondition.BAD_REQUEST, "a result set request has <after/> or <before/>"
        )
    return PageRequest(max_, after, before)


def element(result: PageResult) -> Element:
    """The ``<set/>`` of a result (§2.4, §2.5: an empty page carries only its count)."""
    set_ = Element(SET)
    if result.first is not None:
        first = SubElement(set_, f"{{{NS}}}first")
        first.text = result.first
        if result.first_index is not None:
            first.set("index", str(result.first_index))
    if result.last is not None:
        last = SubElement(set_, f"{{{NS}}}last")
        last.text = result.last
    count = SubElement(set_, f"{{{NS}}}count")
    count.text = str(result.count)
    return set_
