"""XEP-0045 Multi-User Chat wire code (and XEP-0249 direct invitations), shared by the hub's group
service and the SDK: namespaces, roles and affiliations, status codes, ``<item/>`` elements, the
``muc#roomconfig`` form (§15.5.3) and what is read from clients' requests.

Sections cited are those of XEP-0045 1.34.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields, replace
from enum import IntEnum, StrEnum
from xml.etree.ElementTree import Element

from interlink.errors import StanzaError, StanzaErrorCondition
from interlink.xmpp import ns
from interlink.xmpp.ext import bad_request
from interlink.xmpp.forms import X as FORM
from interlink.xmpp.forms import read_form
from interlink.xmpp.jid import JID, InvalidJID

NS = "http://jabber.org/protocol/muc"
NS_USER = NS + "#user"
NS_ADMIN = NS + "#admin"
NS_OWNER = NS + "#owner"
NS_ROOMCONFIG = NS + "#roomconfig"
NS_ROOMINFO = NS + "#roominfo"
NS_CONFERENCE = "jabber:x:conference"  # XEP-0249 direct invitations
NS_ENCRYPTED_ONLY = "urn:interlink:groups:0"  # our room feature and config field

JOIN = f"{{{NS}}}x"
USER_X = f"{{{NS_USER}}}x"
ITEM = f"{{{NS_USER}}}item"
STATUS = f"{{{NS_USER}}}status"
INVITE = f"{{{NS_USER}}}invite"
DECLINE = f"{{{NS_USER}}}decline"
REASON = f"{{{NS_USER}}}reason"
DESTROY_USER = f"{{{NS_USER}}}destroy"
ADMIN_QUERY = f"{{{NS_ADMIN}}}query"
ADMIN_ITEM = f"{{{NS_ADMIN}}}item"
ADMIN_REASON = f"{{{NS_ADMIN}}}reason"
OWNER_QUERY = f"{{{NS_OWNER}}}query"
OWNER_DESTROY = f"{{{NS_OWNER}}}destroy"
OWNER_REASON = f"{{{NS_OWNER}}}reason"
DIRECT_INVITE = f"{{{NS_CONFERENCE}}}x"
SUBJECT = ns.qname(ns.CLIENT, "subject")
BODY = ns.qname(ns.CLIENT, "body")

ENCRYPTED_ONLY_FIELD = f"{NS_ENCRYPTED_ONLY}#encrypted-only"


class Role(StrEnum):
    """§5.1."""

    MODERATOR = "moderator"
    PARTICIPANT = "participant"
    VISITOR = "visitor"
    NONE = "none"


class Affiliation(StrEnum):
    """§5.2, ordered by :attr:`rank`."""

    OWNER = "owner"
    ADMIN = "admin"
    MEMBER = "member"
    NONE = "none"
    OUTCAST = "outcast"

    @property
    def rank(self) -> int:
        return _RANK[self]


_RANK = {
    Affiliation.OUTCAST: -1,
    Affiliation.NONE: 0,
    Affiliation.MEMBER: 1,
    Affiliation.ADMIN: 2,
    Affiliation.OWNER: 3,
}


class Status(IntEnum):
    """Status codes (§15.6.2) this service sends."""

    NON_ANONYMOUS = 100  # in self-presence on entering a non-anonymous room
    CONFIG_CHANGED = 104  # non-privacy configuration changed
    SELF = 110  # the presence is about the recipient
    LOGGING = 170  # in self-presence on entering: the room keeps an archive (§7.2.12)
    NOW_NON_ANONYMOUS = 172
    NOW_SEMI_ANONYMOUS = 173
    CREATED = 201
    BANNED = 301
    NEW_NICK = 303
    KICKED = 307
    AFFILIATION_CHANGED = 321  # removed: no longer a member of a members-only room
    MEMBERS_ONLY = 322  # removed: the room became members-only
    SHUTDOWN = 332  # removed: the service lost the room (a storage failure)


@dataclass(frozen=True, slots=True)
class RoomConfig:
    """A room's configuration (§10.2, the ``muc#roomconfig`` form). The defaults are what
    OMEMO needs: members-only and non-anonymous."""

    name: str = ""
    description: str = ""
    persistent: bool = True
    members_only: bool = True
    non_anonymous: bool = True  # muc#roomconfig_whois: anyone
    allow_invites: bool = False  # members (not only admins and owners) may invite
    change_subject: bool = False  # participants may change the subject
    public: bool = False  # listed in the service's disco#items
    max_occupants: int = 100
    encrypted_only: bool = False  # bodies refused unless the message is OMEMO-encrypted


_BOOL_FIELDS = {
    "muc#roomconfig_persistentroom": "persistent",
    "muc#roomconfig_membersonly": "members_only",
    "muc#roomconfig_allowinvites": "allow_invites",
    "muc#roomconfig_changesubject": "change_subject",
    "muc#roomconfig_publicroom": "public",
    ENCRYPTED_ONLY_FIELD: "encrypted_only",
}
_TEXT_FIELDS = {"muc#roomconfig_roomname": "name", "muc#roomconfig_roomdesc": "description"}
_TRUE = {"1": True, "true": True, "0": False, "false": False}


def config_form(config: RoomConfig, max_occupants: int) -> Element:
    """The configuration form an owner is sent (§10.2, example 163)."""
    x = Element(FORM, {"type": "form"})
    _field(x, "FORM_TYPE", "hidden", [NS_ROOMCONFIG])
    for var, attr in _TEXT_FIELDS.items():
        _field(x, var, "text-single", [getattr(config, attr)])
    for var, attr in _BOOL_FIELDS.items():
        _field(x, var, "boolean", ["1" if getattr(config, attr) else "0"])
    whois = _field(
        x,
        "muc#roomconfig_whois",
        "list-single",
        ["anyone" if config.non_anonymous else "moderators"],
    )
    for option in ("moderators", "anyone"):
        opt = Element(ns.qname(ns.DATA_FORMS, "option"))
        value = Element(ns.qname(ns.DATA_FORMS, "value"))
        value.text = option
        opt.append(value)
        whois.append(opt)
    _field(x, "muc#roomconfig_maxusers", "text-single", [str(config.max_occupants)]).set(
        "label", f"at most {max_occupants}"
    )
    return x


def _field(x: Element, var: str, type_: str, values: list[str]) -> Element:
    f = Element(ns.qname(ns.DATA_FORMS, "field"), {"var": var, "type": type_})
    for text in values:
        v = Element(ns.qname(ns.DATA_FORMS, "value"))
        v.text = text
        f.append(v)
    x.append(f)
    return f


def read_config(x: Element, current: RoomConfig, *, max_occupants: int) -> RoomConfig:
    """``current`` changed by a submitted form (§10.2); fields not named keep their values and
    unknown fields are ignored (XEP-0004 §3.4 lets a service do so).

    Raises:
        StanzaError: ``bad-request`` for a wrong FORM_TYPE or a value that is not one,
            ``not-acceptable`` for more occupants than the service allows.
    """
    form = read_form(x)
    form_type = form.get("FORM_TYPE", [NS_ROOMCONFIG])
    if form_type != [NS_ROOMCONFIG]:
        raise bad_request(f"FORM_TYPE must be {NS_ROOMCONFIG}")
    changes: dict[str, object] = {}
    for var, values in form.items():
        value = values[0] if values else ""
        if var in _BOOL_FIELDS:
            if value.lower() not in _TRUE:
                raise bad_request(f"{var} must be a boolean")
            changes[_BOOL_FIELDS[var]] = _TRUE[value.lower()]
        elif var in _TEXT_FIELDS:
            changes[_TEXT_FIELDS[var]] = value[:1024]
        elif var == "muc#roomconfig_whois":
            if value not in ("anyone", "moderators"):
                raise bad_request("muc#roomconfig_whois must be 'anyone' or 'moderators'")
            changes["non_anonymous"] = value == "anyone"
        elif var == "muc#roomconfig_maxusers":
            try:
                count = int(value)
            except ValueError:
                raise bad_request("muc#roomconfig_maxusers must be a number") from None
            if not 1 <= count <= max_occupants:
                raise StanzaError(
                    StanzaErrorCondition.NOT_ACCEPTABLE,
                    f"a room holds at most {max_occupants} occupants here",
                )
            changes["max_occupants"] = count
    known = {f.name for f in fields(RoomConfig)}
    return replace(current, **{k: v for k, v in changes.items() if k in known})  # type: ignore[arg-type]


def room_features(config: RoomConfig) -> tuple[str, ...]:
    """The room's disco#info features (§6.4, §15.5.4)."""
    features = [
        NS,
        "muc_persistent" if config.persistent else "muc_temporary",
        "muc_membersonly" if config.members_only else "muc_open",
        "muc_nonanonymous" if config.non_anonymous else "muc_semianonymous",
        "muc_public" if config.public else "muc_hidden",
        "muc_unmoderated",
        "muc_unsecured",
        "urn:xmpp:ping",  # XEP-0410 self-ping
        NS_CONFERENCE,
    ]
    if config.encrypted_only:
        features.append(NS_ENCRYPTED_ONLY + "#encrypted-only")
    return tuple(features)


# -- <x xmlns='…muc#user'/> --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ItemView:
    """What one ``<item/>`` says about an occupant or a member."""

    affiliation: Affiliation
    role: Role | None = None
    jid: JID | None = None  # shown only where the room lets the recipient see it
    nick: str | None = None
    reason: str = ""
    actor: str | None = None  # the nick of who did it (kick, ban)


def item_element(view: ItemView, tag: str = ITEM, extra: Iterable[Element] = ()) -> Element:
    attrs = {"affiliation": str(view.affiliation)}
    if view.role is not None:
        attrs["role"] = str(view.role)
    if view.jid is not None:
        attrs["jid"] = str(view.jid)
    if view.nick is not None:
        attrs["nick"] = view.nick
    item = Element(tag, attrs)
    namespace = tag[1:].partition("}")[0]
    if view.actor is not None:
        item.append(Element(f"{{{namespace}}}actor", {"nick": view.actor}))
    if view.reason:
        reason = Element(f"{{{namespace}}}reason")
        reason.text = view.reason
        item.append(reason)
    item.extend(extra)
    return item


def user_x(
    item: Element | None = None, statuses: Iterable[int] = (), *children: Element
) -> Element:
    x = Element(USER_X)
    if item is not None:
        x.append(item)
    for code in statuses:
        x.append(Element(STATUS, {"code": str(int(code))}))
    x.extend(children)
    return x


def statuses_of(x: Element) -> set[int]:
    return {int(s.get("code", "0")) for s in x.findall(STATUS) if s.get("code", "").isdigit()}


# -- requests read from clients ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AdminItem:
    """One ``<item/>`` of a muc#admin set (§9, §8): a change of affiliation (by ``jid``) or of
    role (by ``nick``)."""

    affiliation: Affiliation | None
    role: Role | None
    jid: JID | None
    nick: str | None
    reason: str


def read_admin_items(query: Element) -> list[AdminItem]:
    """The items of a muc#admin query.

    Raises:
        StanzaError: ``bad-request`` for an item naming neither or both of affiliation and
            role, an unknown value, or a role change without a nick / affiliation change without
            a jid; ``jid-malformed`` for a bad jid.
    """
    out: list[AdminItem] = []
    for item in query.findall(ADMIN_ITEM):
        aff_attr, role_attr = item.get("affiliation"), item.get("role")
        try:
            affiliation = Affiliation(aff_attr) if aff_attr is not None else None
            role = Role(role_attr) if role_attr is not None else None
        except ValueError:
            raise bad_request("unknown affiliation or role") from None
        if (affiliation is None) == (role is None):
            raise bad_request("an item changes either an affiliation or a role")
        jid: JID | None = None
        if item.get("jid"):
            try:
                jid = JID.parse(item.get("jid", "")).bare
            except InvalidJID as exc:
                raise StanzaError(StanzaErrorCondition.JID_MALFORMED, str(exc)) from None
        nick = item.get("nick")
        reason_el = item.find(ADMIN_REASON)
        reason = (reason_el.text or "") if reason_el is not None else ""
        out.append(AdminItem(affiliation, role, jid, nick, reason[:1024]))
    if not out:
        raise bad_request("a muc#admin query needs at least one item")
    return out


def admin_list_request(query: Element) -> Affiliation | Role:
    """What a muc#admin get asks for (§9.5, §8.5): the affiliation or role to list.

    Raises:
        StanzaError: ``bad-request`` unless there is exactly one item naming one of them.
    """
    items = query.findall(ADMIN_ITEM)
    if len(items) != 1:
        raise bad_request("a muc#admin get names one affiliation or role")
    (item,) = items
    try:
        if item.get("affiliation") is not None:
            return Affiliation(item.get("affiliation", ""))
        if item.get("role") is not None:
            return Role(item.get("role", ""))
    except ValueError:
        raise bad_request("unknown affiliation or role") from None
    raise bad_request("a muc#admin get names one affiliation or role")


@dataclass(frozen=True, slots=True)
class Invitation:
    """A mediated invitation (§7.8.2) or a decline (§7.8.3) as sent to the room."""

    to: JID | None  # the invitee (bare), or the inviter a decline goes back to (optional)
    reason: str
    decline: bool = False


def read_invitations(x: Element) -> list[Invitation]:
    """The ``<invite/>`` and ``<decline/>`` children of a message's muc#user ``<x/>``.

    Raises:
        StanzaError: ``bad-request`` for one without ``to`` (invite), ``jid-malformed`` for a
            bad address.
    """
    out: list[Invitation] = []
    for child in x:
        if child.tag not in (INVITE, DECLINE):
            continue
        decline = child.tag == DECLINE
        target = child.get("to")
        if not target:
            if not decline:
                raise bad_request("an invitation needs a 'to' address")
            target = ""
        reason_el = child.find(REASON)
        reason = (reason_el.text or "")[:1024] if reason_el is not None else ""
        try:
            to = JID.parse(target).bare if target else None
        except InvalidJID as exc:
            raise StanzaError(StanzaErrorCondition.JID_MALFORMED, str(exc)) from None
        out.append(Invitation(to, reason, decline))
    return out


def invite_message_x(inviter: JID, reason: str, *, decline: bool = False) -> Element:
    """What the invitee (or, declined, the inviter) gets from the room (§7.8.2, §7.8.3)."""
    child = Element(DECLINE if decline else INVITE, {"from": str(inviter)})
    if reason:
        r = Element(REASON)
        r.text = reason
        child.append(r)
    return user_x(None, (), child)


def direct_invitation(room: JID | str, reason: str = "") -> Element:
    """XEP-0249 §2: ``<x xmlns='jabber:x:conference' jid='room'/>``."""
    attrs = {"jid": str(room)}
    if reason:
        attrs["reason"] = reason
    return Element(DIRECT_INVITE, attrs)


def read_direct_invitation(el: Element) -> JID:
    """The room a XEP-0249 invitation names.

    Raises:
        StanzaError: ``bad-request`` without a jid, ``jid-malformed`` for a bad one.
    """
    value = el.get("jid")
    if not value:
        raise bad_request("a direct invitation needs the room's jid")
    try:
        return JID.parse(value).bare
    except InvalidJID as exc:
        raise StanzaError(StanzaErrorCondition.JID_MALFORMED, str(exc)) from None


def destroy_element(tag: str, reason: str, alternate: JID | None = None) -> Element:
    attrs = {} if alternate is None else {"jid": str(alternate)}
    el = Element(tag, attrs)
    if reason:
        r = Element(tag[: tag.index("}") + 1] + "reason")
        r.text = reason
        el.append(r)
    return el


__all__ = [
    "NS",
    "NS_ADMIN",
    "NS_OWNER",
    "NS_USER",
    "AdminItem",
    "Affiliation",
    "Invitation",
    "ItemView",
    "Role",
    "RoomConfig",
    "Status",
    "admin_list_request",
    "config_form",
    "direct_invitation",
    "invite_message_x",
    "item_element",
    "read_admin_items",
    "read_config",
    "read_direct_invitation",
    "read_invitations",
    "room_features",
    "statuses_of",
    "user_x",
]
