"""Stanza Content Encryption (XEP-0420) for OMEMO 2: what is encrypted is a whole envelope.

The envelope carries the content elements (the body and anything else the sender wants hidden),
random padding that brings the envelope to a length bucket (:mod:`interlink.client.padding`),
so the ciphertext's length says only the bucket, and affix elements binding it to sender,
recipient and time; a receiver checks them, so a ciphertext cannot be replayed into another
conversation unnoticed.
Decrypted bytes are attacker-controlled: they are parsed with the same restricted XML parser that
guards the hub.
"""

from __future__ import annotations

import secrets
import string
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from xml.etree.ElementTree import Element

from interlink.client.errors import ClientError
from interlink.client.padding import bucket
from interlink.xmpp.jid import JID, InvalidJID
from interlink.xmpp.ns import qname as ns_qname
from interlink.xmpp.xml import parse_fragment, serialize

NS = "urn:xmpp:sce:1"
_ENVELOPE = ns_qname(NS, "envelope")
_CONTENT = ns_qname(NS, "content")
_RPAD = ns_qname(NS, "rpad")
_TIME = ns_qname(NS, "time")
_TO = ns_qname(NS, "to")
_FROM = ns_qname(NS, "from")
BODY = "{jabber:client}body"
_PAD_ALPHABET = string.ascii_letters + string.digits + "+/"  # never escaped in XML


class SceError(ClientError, ValueError):
    """The decrypted content is not a valid envelope for this conversation."""


@dataclass(frozen=True, slots=True)
class Envelope:
    content: tuple[Element, ...]
    sender: str
    recipient: str
    timestamp: float

    @property
    def body(self) -> str | None:
        for el in self.content:
            if el.tag == BODY:
                return el.text or ""
        return None


def _stamp(at: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at))


def _parse_stamp(text: str) -> float:
    """An XEP-0082 date-time (``Z`` or a ``±hh:mm`` offset; read as UTC if it has none)."""
    if len(text) < 19 or text[10] != "T":
        raise SceError(f"bad time stamp {text!r}")
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise SceError(f"bad time stamp {text!r}") from None
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return at.timestamp()


def seal(content: list[Element], *, sender: str, recipient: str, now: float) -> bytes:
    """Serialize an envelope for ``recipient`` (a bare JID) from ``sender`` (a bare JID), its
    length brought to a :func:`~interlink.client.padding.bucket` by ``<rpad/>`` (XEP-0420 §3:
    random characters, at least one)."""
    env = Element(_ENVELOPE)
    wrapper = Element(_CONTENT)
    wrapper.extend(content)
    env.append(wrapper)
    pad = Element(_RPAD)
    pad.text = "A"
    env.append(pad)
    env.append(Element(_TIME, {"stamp": _stamp(now)}))
    env.append(Element(_TO, {"jid": recipient}))
    env.append(Element(_FROM, {"jid": sender}))
    unpadded = len(serialize(env).encode()) - 1  # everything but the padding's characters
    size = bucket(unpadded + 1)
    pad.text = "".join(secrets.choice(_PAD_ALPHABET) for _ in range(size - unpadded))
    data = serialize(env).encode()
    assert len(data) == size  # the alphabet is ASCII and never escaped
    return data


def open_envelope(
    data: bytes, *, sender: str, recipients: set[str], now: float, max_skew: float = 7 * 86400
) -> Envelope:
    """Parse and check an envelope: ``sender`` must match its ``from``, its ``to`` must be one of
    ``recipients`` (bare JIDs), its time within ``max_skew`` of ``now``."""
    try:
        env = parse_fragment(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise SceError(f"not an XML envelope: {exc}") from None
    if env.tag != _ENVELOPE:
        raise SceError("not an SCE envelope")
    content = env.find(_CONTENT)
    from_el, to_el, time_el = env.find(_FROM), env.find(_TO), env.find(_TIME)
    if content is None or from_el is None or to_el is None:
        raise SceError("envelope lacks content, from or to")
    try:
        claimed_from = JID.parse(from_el.get("jid", "")).bare
        claimed_to = JID.parse(to_el.get("jid", "")).bare
    except InvalidJID as exc:
        raise SceError(f"bad affix JID: {exc}") from None
    if str(claimed_from) != sender:
        raise SceError(f"envelope says it is from {claimed_from}, but {sender} sent it")
    if str(claimed_to) not in recipients:
        raise SceError(f"envelope is addressed to {claimed_to}, not to us")
    stamp = _parse_stamp(time_el.get("stamp", "")) if time_el is not None else now
    if abs(now - stamp) > max_skew:
        raise SceError("envelope time is too far from now")
    return Envelope(tuple(content), str(claimed_from), str(claimed_to), stamp)
