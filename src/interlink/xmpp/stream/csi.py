"""Client State Indication (XEP-0352, ``urn:xmpp:csi:0``): what the server holds back while the
client says it is inactive.

Theory of operation
-------------------
A mobile client tells the server ``<inactive/>`` when its user is not looking and ``<active/>``
when they are again (§5); the server advertises ``<csi xmlns='urn:xmpp:csi:0'/>`` among the
stream features after authentication (§4). XEP-0352 leaves *what* to hold to the server
(§6). Interlink, while a stream is inactive:

- **holds presence**, keeping only the latest per sender (an available presence from
  ``juliet@example/balcony`` replaces the held one from the same full JID); subscription
  requests and answers are held in order, never replaced;
- **drops superseded standalone chat states** (XEP-0085 with no body): only the latest per
  sending bare JID is held;
- **holds other stanzas that wake nobody** (receipts, markers, message errors) in order;
- **delivers at once** a message with a body or an encrypted payload (OMEMO) and whatever
  comes from offline storage (its deletion waits for the client's acknowledgement) — after
  flushing what it held, so the client sees everything in the order it happened (minus what
  was superseded);
- **lets every iq through** at once without flushing (a request waits for an answer, a result
  is what the client asked for; iqs are not ordered with presence and chat, and a client that
  pings its server must not wake up for it);
- **flushes everything** when the client sends ``<active/>``, and when holding one more
  stanza would take it past ``max_held``.

Held stanzas have not been *sent*: stream management (XEP-0198) counts a stanza when it is
written, so a held one is not in the unacknowledged queue until it leaves. If the stream closes
while stanzas are held, they go back to the machine (:meth:`ClientStateFilter.take_held`), which
keeps them with the unacknowledged ones (to be stored or resent).

The filter looks at serialized stanzas (what the hub writes to a session), parsing only while
inactive. Nothing here does I/O or reads a clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from xml.etree.ElementTree import Element

from interlink.xmpp import ns
from interlink.xmpp.xml import parse_fragment

NS = "urn:xmpp:csi:0"
ACTIVE = ns.qname(NS, "active")
INACTIVE = ns.qname(NS, "inactive")
CHATSTATES = "http://jabber.org/protocol/chatstates"

_BODY = ns.qname(ns.CLIENT, "body")
_URGENT_PAYLOADS = frozenset(
    (_BODY, "{urn:xmpp:omemo:2}encrypted", "{eu.siacs.conversations.axolotl}encrypted")
)
#: Children that ride along with a chat state without making it more than one (XEP-0334 hints,
#: XEP-0359 ids, a thread).
_ALONGSIDE = frozenset(
    (
        "urn:xmpp:hints",
        "urn:xmpp:sid:0",
        ns.CLIENT,  # <thread/>
    )
)
_PLAIN_PRESENCE_TYPES = ("", "unavailable")


@dataclass(frozen=True, slots=True)
class CsiConfig:
    """``max_held``: stanzas held for an inactive client at most; holding one more flushes."""

    max_held: int = 100

    def __post_init__(self) -> None:
        if self.max_held < 1:
            raise ValueError("max_held must be at least 1")


def feature_xml() -> str:
    return f'<csi xmlns="{NS}"/>'


Held = tuple[str, bool]  # the serialized stanza, and whether it stays in offline storage


class ClientStateFilter:
    """One stream's client state and the stanzas held while it is inactive."""

    __slots__ = ("_held", "_serial", "config", "inactive")

    def __init__(self, config: CsiConfig) -> None:
        self.config = config
        self.inactive = False
        # Held stanzas in order, by key: a replaceable one under its kind and sender (a newer
        # one takes its key and moves to the end), any other under a serial number.
        self._held: dict[str, Held] = {}
        self._serial = 0

    @property
    def held(self) -> int:
        return len(self._held)

    def set_active(self, active: bool) -> list[Held]:
        """The client's ``<active/>`` or ``<inactive/>``; what to write now (all that was held,
        when it becomes active)."""
        self.inactive = not active
        return self.take_held() if active else []

    def take_held(self) -> list[Held]:
        """Everything held, in order, superseded stanzas left out; nothing stays held."""
        held = list(self._held.values())
        self._held.clear()
        return held

    def outgoing(self, xml: str, stored: bool = False) -> list[Held]:
        """A stanza to write to the client: what to write now (nothing when it is held)."""
        if not self.inactive:
            return [(xml, stored)]
        # A stanza from offline storage leaves at once: the drain deletes what the client
        # acknowledged, and a held stanza cannot be acknowledged.
        key = _URGENT if stored else _replaceable_key(xml)
        if key == _THROUGH:
            return [(xml, stored)]
        if key == _URGENT:
            return [*self.take_held(), (xml, stored)]
        if key:
            self._held.pop(key, None)  # superseded by this newer one
        else:
            self._serial += 1
            key = f"#{self._serial}"
        if len(self._held) >= self.config.max_held:
            return [*self.take_held(), (xml, stored)]  # full: flush, this one included
        self._held[key] = (xml, stored)
        return []


_URGENT = "!urgent"  # goes now, after what is held
_THROUGH = "!through"  # goes now, past what is held (an iq is not ordered with presence or chat)


def _replaceable_key(xml: str) -> str:
    """``_URGENT`` or ``_THROUGH`` for what goes out at once, ``""`` for what is held in order, or a
    key: a held stanza with the same key is superseded."""
    if xml.startswith("<iq"):
        return _THROUGH
    el = parse_fragment(xml)
    local = el.tag.rsplit("}", 1)[-1]
    sender = el.get("from", "")
    if local == "presence":
        if el.get("type", "") in _PLAIN_PRESENCE_TYPES:
            return "presence " + sender
        return ""
    if local != "message":
        return _URGENT
    if any(child.tag in _URGENT_PAYLOADS for child in el):
        return _URGENT
    if _standalone_chat_state(el):
        return "chatstate " + sender.split("/", 1)[0]
    return ""


def _standalone_chat_state(el: Element) -> bool:
    states = 0
    for child in el:
        child_ns = child.tag[1:].split("}", 1)[0] if child.tag.startswith("{") else ""
        if child_ns == CHATSTATES:
            states += 1
        elif child_ns not in _ALONGSIDE:
            return False
    return states == 1


__all__ = [
    "ACTIVE",
    "INACTIVE",
    "NS",
    "ClientStateFilter",
    "CsiConfig",
    "Held",
    "feature_xml",
]
