"""A strict parser for incoming OMEMO 2 ``<encrypted/>`` elements (XEP-0384 v0.8+, "Message
structure" and the schema of its "XML Schema" section).

``twomemo.etree.parse_message`` validates every incoming element against that schema with
``xmlschema`` first, which costs 0.5-1 ms per message (most of a decryption's parsing time,
measured with ``bench/crypto.py``). :func:`parse_encrypted` checks the same structure by hand
and builds the same ``omemo.Message`` with twomemo's own protobuf parsers.

It accepts a subset of what the schema accepts, and nothing more. Where the schema is lenient in
ways no OMEMO implementation uses, this parser refuses: whitespace around attribute values or
inside base64, a ``+`` sign in numbers, non-canonical base64 padding bits, any attribute the
schema does not declare (including ``xsi:`` ones, which could switch the schema's types).
It also refuses what twomemo's parser rejects only after validation: a header without ``sid``, an
empty key or payload, and key material whose protobuf does not parse. ``tests/client/
test_omemo2_parse.py`` checks this against twomemo's own schema-validating parser.
"""

from __future__ import annotations

import base64
import re
from xml.etree.ElementTree import Element

import omemo
from google.protobuf.message import Error as ProtobufError  # type: ignore[import-untyped]
from omemo import EncryptedKeyMaterial, KeyExchange
from twomemo.twomemo import NAMESPACE, ContentImpl, EncryptedKeyMaterialImpl, KeyExchangeImpl

from interlink.client.errors import ClientError

_NS = "{" + NAMESPACE + "}"
ENCRYPTED = _NS + "encrypted"
_HEADER = _NS + "header"
_PAYLOAD = _NS + "payload"
_KEYS = _NS + "keys"
_KEY = _NS + "key"

# XML Schema's whitespace (XSD 1.0 part 2, §4.3.6): only these may stand between elements.
_XML_SPACE = " \t\r\n"
_UNSIGNED_INT_MAX = 2**32 - 1
_DIGITS = re.compile(r"[0-9]{1,10}")  # 2**32 - 1 has ten digits
# Canonical base64 (RFC 4648 §4, padding bits zero as XSD's base64Binary lexical space requires),
# at least one group: the schema allows an empty value, but twomemo then fails on it.
_BASE64 = re.compile(
    r"(?:[A-Za-z0-9+/]{4})*"
    r"(?:[A-Za-z0-9+/]{4}|[A-Za-z0-9+/]{2}[AEIMQUYcgkosw048]=|[A-Za-z0-9+/][AQgw]==)"
)
_KEX = {"true": True, "1": True, "false": False, "0": False}


class MalformedEncrypted(ClientError, ValueError):
    """The peer sent an ``<encrypted/>`` element this parser does not accept."""


def parse_encrypted(element: Element, sender: str) -> omemo.Message:
    """The OMEMO 2 message in ``element``, sent by the bare JID ``sender``.

    Raises:
        MalformedEncrypted: if the element is not a well-formed OMEMO 2 message (see the module
            docstring for what is refused).
    """
    if element.tag != ENCRYPTED:
        raise MalformedEncrypted(f"not an OMEMO 2 <encrypted/>: {element.tag!r}")
    _only_attributes(element, ())
    _no_text(element)
    header: Element | None = None
    payload: Element | None = None
    for child in element:
        if child.tag == _HEADER and header is None:
            header = child
        elif child.tag == _PAYLOAD and payload is None:
            payload = child
        else:
            raise MalformedEncrypted(
                f"unexpected or repeated element in <encrypted/>: {child.tag!r}"
            )
    if header is None:
        raise MalformedEncrypted("no <header/>")
    _only_attributes(header, ("sid",))
    sid = _unsigned_int(header, "sid")
    _no_text(header)
    keys: set[tuple[EncryptedKeyMaterial, KeyExchange | None]] = set()
    for keys_element in header:
        if keys_element.tag != _KEYS:
            raise MalformedEncrypted(f"unexpected element in <header/>: {keys_element.tag!r}")
        keys.update(_parse_keys(keys_element))
    if not keys:
        raise MalformedEncrypted("<header/> without <keys/>")
    if payload is None:
        content = ContentImpl.make_empty()
    else:
        _only_attributes(payload, ())
        content = ContentImpl(_base64_content(payload))
    return omemo.Message(NAMESPACE, sender, sid, content, frozenset(keys))


def _parse_keys(keys_element: Element) -> list[tuple[EncryptedKeyMaterial, KeyExchange | None]]:
    _only_attributes(keys_element, ("jid",))
    jid = keys_element.get("jid")
    if jid is None:
        raise MalformedEncrypted("<keys/> without jid")
    _no_text(keys_element)
    parsed: list[tuple[EncryptedKeyMaterial, KeyExchange | None]] = []
    for key in keys_element:
        if key.tag != _KEY:
            raise MalformedEncrypted(f"unexpected element in <keys/>: {key.tag!r}")
        _only_attributes(key, ("rid", "kex"))
        rid = _unsigned_int(key, "rid")
        kex = _KEX.get(key.get("kex", "false"))
        if kex is None:
            raise MalformedEncrypted(f"kex is not a boolean: {key.get('kex')!r}")
        content = _base64_content(key)
        key_exchange: KeyExchange | None = None
        try:
            if kex:
                key_exchange, content = KeyExchangeImpl.parse(content)
            material = EncryptedKeyMaterialImpl.parse(content, jid, rid)
        except (ValueError, ProtobufError) as exc:  # twomemo's parsers let EncodeError through
            raise MalformedEncrypted(f"malformed key material for {jid}/{rid}") from exc
        parsed.append((material, key_exchange))
    if not parsed:
        raise MalformedEncrypted("<keys/> without <key/>")
    return parsed


def _only_attributes(element: Element, allowed: tuple[str, ...]) -> None:
    for name in element.attrib:
        if name not in allowed:
            raise MalformedEncrypted(f"unexpected attribute {name!r} on {element.tag!r}")


def _no_text(element: Element) -> None:
    """Element-only content: nothing but whitespace between and after the children."""
    if element.text and element.text.strip(_XML_SPACE):
        raise MalformedEncrypted(f"text in {element.tag!r}")
    for child in element:
        if child.tail and child.tail.strip(_XML_SPACE):
            raise MalformedEncrypted(f"text in {element.tag!r}")


def _unsigned_int(element: Element, name: str) -> int:
    text = element.get(name)
    if text is None or _DIGITS.fullmatch(text) is None or int(text) > _UNSIGNED_INT_MAX:
        raise MalformedEncrypted(f"{name} is not an unsigned 32-bit integer: {text!r}")
    return int(text)


def _base64_content(element: Element) -> bytes:
    """Simple content: canonical, non-empty base64 and no child elements."""
    if len(element):
        raise MalformedEncrypted(f"child elements in {element.tag!r}")
    text = element.text
    if text is None or _BASE64.fullmatch(text) is None:
        raise MalformedEncrypted(f"{element.tag!r} is not canonical base64")
    return base64.b64decode(text)
