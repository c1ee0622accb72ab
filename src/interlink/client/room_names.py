"""The names this device's OMEMO sessions go by: one peer, one name per place it is met.

python-omemo keeps one session per (peer name, device). A gatekeeper user appears to a third
party under two addresses, its own in 1:1 and its alias in a room (docs/protocol.md §17), so
the third party's client holds two sessions with each of its devices. The gatekeeper user's
client must hold two as well, or the two sides' ratchets part: its room messages to the third
party would continue the 1:1 session, which the third party looks for under the alias and does
not find. So a gatekeeper user's client (one shown under an alias in the room) names a
third-party member, in that room, ``<peer>#in#<room>``: a name for python-omemo only. Whatever
goes on the wire uses the peer's address (:func:`peer_of`): key fetches, the ``jid`` of OMEMO
2 ``<keys/>`` (:func:`as_sent`), and the room for python-omemo's own messages.
"""

from __future__ import annotations

from copy import deepcopy
from xml.etree.ElementTree import Element

SEP = "#in#"
_OMEMO2 = "urn:xmpp:omemo:2"


def in_room(peer: str, room: str) -> str:
    """The session name of ``peer`` (bare) met in ``room`` (bare)."""
    return f"{peer}{SEP}{room}"


def peer_of(name: str) -> str:
    """The address behind a session name (a plain address is its own)."""
    return name.partition(SEP)[0]


def room_of(name: str) -> str | None:
    """The room of a room-scoped session name, else ``None``."""
    _peer, sep, room = name.partition(SEP)
    return room if sep else None


def as_sent(element: Element) -> Element:
    """An OMEMO 2 ``<encrypted/>`` whose ``<keys jid=.../>`` name addresses, not session names
    (the same element when none needs changing)."""
    if not element.tag.startswith("{" + _OMEMO2 + "}"):
        return element
    header = element.find(f"{{{_OMEMO2}}}header")
    named = [] if header is None else header.findall(f"{{{_OMEMO2}}}keys")
    if not any(SEP in (k.get("jid") or "") for k in named):
        return element
    copy = deepcopy(element)
    header = copy.find(f"{{{_OMEMO2}}}header")
    assert header is not None
    for keys in header.findall(f"{{{_OMEMO2}}}keys"):
        keys.set("jid", peer_of(keys.get("jid") or ""))
    return copy


__all__ = ["SEP", "as_sent", "in_room", "peer_of", "room_of"]
