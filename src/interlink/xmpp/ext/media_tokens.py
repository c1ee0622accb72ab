"""Our ``urn:interlink:media:0`` extension (docs/protocol.md §7, DESIGN Flow 5).

- ``<token/>``: a gatekeeper user's client asks the hub (iq get) for a short-lived bearer token
  for the media proxy (``GET /v1/media-proxy``); the result carries the token as text and its
  expiry (``expires``, Unix seconds). The token's format and MAC are the hub's business
  (:mod:`interlink.media.tokens`); here is only its XML.
- ``<media kind='image|voice|video|file'/>``: inside the encrypted envelope, beside the XEP-0447
  file-sharing element, how the sender wants the file shown.
"""

from __future__ import annotations

from collections.abc import Sequence
from xml.etree.ElementTree import Element

NS = "urn:interlink:media:0"
TOKEN = f"{{{NS}}}token"
MEDIA = f"{{{NS}}}media"
KINDS = ("image", "voice", "video", "file")


def token_request() -> Element:
    """The payload of the client's iq get."""
    return Element(TOKEN)


def token_element(token: str, expires: float) -> Element:
    """The payload of the hub's result: the token, valid until ``expires`` (Unix seconds)."""
    el = Element(TOKEN, {"expires": str(int(expires))})
    el.text = token
    return el


def parse_token(result: Element) -> str | None:
    """The token in an iq result (the ``<iq/>`` element), ``None`` if it carries none."""
    el = result.find(TOKEN)
    if el is None or not el.text:
        return None
    return el.text


def kind_element(kind: str) -> Element:
    return Element(MEDIA, {"kind": kind})


def parse_kind(content: Sequence[Element]) -> str:
    """The kind the envelope's ``<media/>`` states; ``file`` when it states none we know."""
    el = next((el for el in content if el.tag == MEDIA), None)
    kind = el.get("kind", "file") if el is not None else "file"
    return kind if kind in KINDS else "file"
