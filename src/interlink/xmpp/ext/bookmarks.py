"""Bookmarks: XEP-0048 (legacy, ``storage:bookmarks``) and XEP-0402 (PEP native,
``urn:xmpp:bookmarks:1``), and the conversion between the two forms.

XEP-0048 §3 keeps every bookmark of an account in one ``<storage xmlns='storage:bookmarks'>``
element (conferences, and URLs), stored in XEP-0049 private storage or as the single item
``current`` of the PEP node ``storage:bookmarks`` (XEP-0223). XEP-0402 §2 stores one item per
chatroom in the PEP node ``urn:xmpp:bookmarks:1``, its id the room's JID, its payload a
``<conference/>`` with ``name``/``autojoin`` attributes, ``<nick/>``, ``<password/>`` and an
``<extensions/>`` element for anything else a client keeps (§3.5). The conversion (XEP-0402
§5.3 "Compatibility", XEP-0411 §3): a legacy conference's ``jid`` is the item id; its other
children (not ``nick``/``password``) go into ``<extensions/>`` and come back out of it. URLs have
no native form (XEP-0402 §1 drops them): they live only in the legacy form."""

from __future__ import annotations

from dataclasses import dataclass
from xml.etree.ElementTree import Element

from interlink.errors import StanzaError, StanzaErrorCondition
from interlink.xmpp.jid import JID, InvalidJID

LEGACY_NS = "storage:bookmarks"  # XEP-0048; also the XEP-0223 PEP node's name
NATIVE_NS = "urn:xmpp:bookmarks:1"  # XEP-0402; also the PEP node's name
STORAGE = f"{{{LEGACY_NS}}}storage"
COMPAT = NATIVE_NS + "#compat"  # XEP-0402 §5.3: private storage kept in sync with the node
COMPAT_PEP = NATIVE_NS + "#compat-pep"  # XEP-0402 §5.3: the XEP-0048 PEP node likewise
CONVERSION = "urn:xmpp:bookmarks-conversion:0"  # XEP-0411 §2 (private storage <-> PEP form)
LEGACY_ITEM_ID = "current"  # XEP-0223 §3: the one item of a private-data node
# XEP-0402 §3 / XEP-0223 §3: what clients publish with; the node is created with them.
NATIVE_OPTIONS = {
    "pubsub#persist_items": ["true"],
    "pubsub#max_items": ["max"],
    "pubsub#send_last_published_item": ["never"],
    "pubsub#access_model": ["whitelist"],
}

_LEGACY_CONFERENCE = f"{{{LEGACY_NS}}}conference"
_NATIVE_CONFERENCE = f"{{{NATIVE_NS}}}conference"
_EXTENSIONS = f"{{{NATIVE_NS}}}extensions"


@dataclass(frozen=True, slots=True)
class Conference:
    """One bookmarked chatroom, in neither wire form."""

    jid: str
    name: str | None = None
    autojoin: bool = False
    nick: str | None = None
    password: str | None = None
    extensions: tuple[Element, ...] = ()  # other elements a client keeps with the bookmark


def _truthy(value: str | None) -> bool:
    return value in ("1", "true")


def _room(text: str) -> str:
    """A conference's JID, normalized (the native item id).

    Raises:
        StanzaError: ``bad-request`` unless it is a bare JID.
    """
    try:
        jid = JID.parse(text)
    except InvalidJID:
        jid = None
    if jid is None or jid.resource is not None:
        raise StanzaError(
            StanzaErrorCondition.BAD_REQUEST, f"a bookmark names a chatroom's bare JID: {text!r}"
        )
    return str(jid)


def _child_text(el: Element, tag: str) -> str | None:
    child = el.find(tag)
    return None if child is None else (child.text or "")


def parse_legacy(storage: Element) -> tuple[list[Conference], list[Element]]:
    """The conferences of a XEP-0048 ``<storage/>`` and the rest of it (URLs, others).

    Raises:
        StanzaError: ``bad-request`` for a conference without a bare JID, or two for one room.
    """
    conferences: dict[str, Conference] = {}
    rest: list[Element] = []
    nick, password = f"{{{LEGACY_NS}}}nick", f"{{{LEGACY_NS}}}password"
    for child in storage:
        if child.tag != _LEGACY_CONFERENCE:
            rest.append(child)
            continue
        jid = _room(child.get("jid", ""))
        if jid in conferences:
            raise StanzaError(
                StanzaErrorCondition.BAD_REQUEST, f"{jid} is bookmarked twice in one storage"
            )
        conferences[jid] = Conference(
            jid,
            child.get("name"),
            _truthy(child.get("autojoin")),
            _child_text(child, nick),
            _child_text(child, password),
            tuple(c for c in child if c.tag not in (nick, password)),
        )
    return list(conferences.values()), rest


def holds_conferences(storage: Element) -> bool:
    """Whether a XEP-0048 ``<storage/>`` has any ``<conference/>``."""
    return storage.tag == STORAGE and storage.find(_LEGACY_CONFERENCE) is not None


def names_room(el: Element, rooms: set[str]) -> bool:
    """Whether ``el`` is a legacy ``<conference/>`` for one of ``rooms``."""
    if el.tag != _LEGACY_CONFERENCE:
        return False
    try:
        return _room(el.get("jid", "")) in rooms
    except StanzaError:
        return False


def legacy_storage(conferences: list[Conference], rest: list[Element]) -> Element:
    """A XEP-0048 ``<storage/>`` holding ``conferences`` and then ``rest``."""
    storage = Element(STORAGE)
    for conf in conferences:
        attrs = {"jid": conf.jid, "autojoin": "true" if conf.autojoin else "false"}
        if conf.name is not None:
            attrs["name"] = conf.name
        el = Element(_LEGACY_CONFERENCE, attrs)
        _append_text(el, f"{{{LEGACY_NS}}}nick", conf.nick)
        _append_text(el, f"{{{LEGACY_NS}}}password", conf.password)
        el.extend(conf.extensions)
        storage.append(el)
    storage.extend(rest)
    return storage


def parse_native(item_id: str, payload: Element) -> Conference | None:
    """The conference of a XEP-0402 item, ``None`` if the item is no conference (nothing a
    legacy reader could use)."""
    if payload.tag != _NATIVE_CONFERENCE:
        return None
    try:
        jid = _room(item_id)
    except StanzaError:
        return None
    extensions = payload.find(_EXTENSIONS)
    return Conference(
        jid,
        payload.get("name"),
        _truthy(payload.get("autojoin")),
        _child_text(payload, f"{{{NATIVE_NS}}}nick"),
        _child_text(payload, f"{{{NATIVE_NS}}}password"),
        () if extensions is None else tuple(extensions),
    )


def native_payload(conf: Conference) -> Element:
    """The ``<conference xmlns='urn:xmpp:bookmarks:1'/>`` of an item whose id is ``conf.jid``."""
    attrs = {"autojoin": "true" if conf.autojoin else "false"}
    if conf.name is not None:
        attrs["name"] = conf.name
    el = Element(_NATIVE_CONFERENCE, attrs)
    _append_text(el, f"{{{NATIVE_NS}}}nick", conf.nick)
    _append_text(el, f"{{{NATIVE_NS}}}password", conf.password)
    if conf.extensions:
        extensions = Element(_EXTENSIONS)
        extensions.extend(conf.extensions)
        el.append(extensions)
    return el


def _append_text(parent: Element, tag: str, text: str | None) -> None:
    if text is not None:
        child = Element(tag)
        child.text = text
        parent.append(child)
