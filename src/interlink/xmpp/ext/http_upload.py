"""XEP-0363 HTTP File Upload v1.1 (``urn:xmpp:http:upload:0``): the slot request (§4), the slot
(§4), the ``file-too-large`` error detail (§5) and the service's disco#info (§2). The hub serves
slots (:mod:`interlink.media.upload`); the SDK asks for them
(:mod:`interlink.client.media_transfer`).
"""

from __future__ import annotations

from dataclasses import dataclass
from xml.etree.ElementTree import Element

from interlink.xmpp import ns
from interlink.xmpp.ext import bad_request
from interlink.xmpp.forms import build_form

NS = "urn:xmpp:http:upload:0"
REQUEST = ns.qname(NS, "request")
SLOT = ns.qname(NS, "slot")
_PUT = ns.qname(NS, "put")
_GET = ns.qname(NS, "get")
_HEADER = ns.qname(NS, "header")
_MAX_SIZE_DIGITS = 20


@dataclass(frozen=True, slots=True)
class SlotRequest:
    filename: str
    size: int
    content_type: str | None = None


@dataclass(frozen=True, slots=True)
class Slot:
    put_url: str
    put_headers: dict[str, str]  # to send with the PUT
    get_url: str  # to share


def request_element(request: SlotRequest) -> Element:
    attrs = {"filename": request.filename, "size": str(request.size)}
    if request.content_type is not None:
        attrs["content-type"] = request.content_type
    return Element(REQUEST, attrs)


def parse_request(el: Element) -> SlotRequest:
    """Raises :class:`~interlink.errors.StanzaError` (``bad-request``) for a size that is not a
    number of bytes."""
    size_text = el.get("size", "")
    if not size_text.isdigit() or len(size_text) > _MAX_SIZE_DIGITS:
        raise bad_request("size must be a number of bytes")
    return SlotRequest(el.get("filename", ""), int(size_text), el.get("content-type"))


def slot_element(slot: Slot) -> Element:
    answer = Element(SLOT)
    put = Element(_PUT, {"url": slot.put_url})
    for name, value in slot.put_headers.items():
        header = Element(_HEADER, {"name": name})
        header.text = value
        put.append(header)
    answer.append(put)
    answer.append(Element(_GET, {"url": slot.get_url}))
    return answer


def parse_slot(result: Element) -> Slot | None:
    """The slot in an iq result (the ``<iq/>`` element), ``None`` if it carries none."""
    slot = result.find(SLOT)
    put = None if slot is None else slot.find(_PUT)
    get = None if slot is None else slot.find(_GET)
    if put is None or get is None:
        return None
    headers = {h.get("name", ""): h.text or "" for h in put.findall(_HEADER)}
    return Slot(put.get("url", ""), headers, get.get("url", ""))


def file_too_large(max_size: int) -> Element:
    """The §5 detail of a ``not-acceptable`` error for a file over the limit."""
    too_large = Element(ns.qname(NS, "file-too-large"))
    max_el = Element(ns.qname(NS, "max-file-size"))
    max_el.text = str(max_size)
    too_large.append(max_el)
    return too_large


def disco_identity() -> Element:
    """The identity §2 has the upload service announce."""
    return Element(
        ns.qname(ns.DISCO_INFO, "identity"),
        {"category": "store", "type": "file", "name": "HTTP File Upload"},
    )


def disco_features() -> tuple[str, ...]:
    return (NS,)


def disco_form(max_file_size: int) -> Element:
    """The XEP-0128 extension of disco#info announcing ``max-file-size`` (§2)."""
    return build_form(NS, {"max-file-size": str(max_file_size)}, type_="result")
