"""One XEP-0045 room as a sans-I/O state machine.

Theory of operation
===================

A :class:`Room` holds what a room *is* (its configuration, subject and members: the durable
part, see :class:`RoomState`) and who is *in* it now (occupants, each a nick held by one real
bare JID with one or more sessions). Every input is a typed stanza from one real full JID,
already past the hub's consent and rate checks; every call returns :class:`Effects`: the stanzas
to send (typed, addressed, ``from`` the room or an occupant's room JID) and the durable changes
for the shell to store. A refusal is a :class:`~interlink.errors.StanzaError` with the condition
XEP-0045 names for it, raised before anything changes. No I/O, no clock (``now`` comes in).

Transitions, by input (sections of XEP-0045 1.34):

===========================  ============================================================
presence to room/nick        not an occupant: enter (§7.2: outcast ``forbidden``, not a member
                             of a members-only room ``registration-required``, nick taken
                             ``conflict``, full ``service-unavailable``, locked
                             ``item-not-found``); an occupant's session: update (§7.7) or
                             change nick (§7.6, 303); ``unavailable``: exit (§7.14)
groupchat message            an occupant's: to every occupant (§7.4; else ``not-acceptable``),
                             a subject change if allowed (§8.1; else ``forbidden``)
chat message to room/nick    private message (§7.5; ``item-not-found`` for no such nick)
muc#user invite / decline    mediated invitation (§7.8.2): a members-only room makes the invitee
                             a member, pending until they enter or decline (§7.8.3)
muc#admin get / set          lists (§9.5) / affiliation changes (§9.1–§10.7) and kicks (§8.2)
muc#owner get / set          configuration (§10.2), instant room (§10.1.2), cancel (§10.1.3),
                             destruction (§10.9)
ping to own room/nick        XEP-0410 self-ping: result if that session is joined under it
===========================  ============================================================

A new room starts *locked* (§10.1): only its owner is in it until the owner submits a
configuration or accepts the instant room.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from xml.etree.ElementTree import Element

from interlink.errors import StanzaError, StanzaErrorCondition
from interlink.xmpp import ns
from interlink.xmpp.ext import muc
from interlink.xmpp.ext.muc import Affiliation, ItemView, Role, RoomConfig, Status
from interlink.xmpp.forms import X as FORM
from interlink.xmpp.jid import JID
from interlink.xmpp.stanza import (
    Iq,
    Message,
    MessageType,
    Presence,
    PresenceType,
    Stanza,
    iq_result,
)

_MUC_X = (muc.JOIN, muc.USER_X)
OMEMO_ENCRYPTED = ("{urn:xmpp:omemo:2}encrypted", "{eu.siacs.conversations.axolotl}encrypted")


@dataclass(frozen=True, slots=True)
class Member:
    """A durable affiliation (owner, admin, member or outcast); ``invited_by`` while a
    member's invitation is pending (not yet entered, not declined)."""

    affiliation: Affiliation
    invited_by: JID | None = None


@dataclass(slots=True)
class RoomState:
    """What is stored of a room."""

    jid: JID
    config: RoomConfig
    members: dict[JID, Member]
    subject: str = ""
    subject_by: str = ""
    created: float = 0.0


@dataclass(frozen=True, slots=True)
class RoomLimits:
    max_members: int = 1000  # owners, admins and members together
    max_occupants: int = 100  # the most a room's configuration may allow
    max_nick_chars: int = 64
    max_subject_chars: int = 1024


@dataclass(slots=True)
class Occupant:
    nick: str
    real: JID  # bare
    role: Role
    sessions: dict[JID, tuple[Element, ...]]  # full JID -> its presence payload (no MUC x)
    last: JID  # the session whose presence is broadcast


@dataclass(slots=True)
class Effects:
    """What one input did: stanzas to send, durable changes to store."""

    out: list[Stanza] = field(default_factory=list)
    members: dict[JID, Member | None] = field(default_factory=dict)  # None: removed
    saved: bool = False  # configuration or subject changed
    destroyed: bool = False
    created: bool = False
    removed: set[JID] = field(default_factory=set)  # lost membership or banned


Labels = Callable[[JID], Iterable[Element]]
Outsiders = Callable[[JID], bool]
Shown = Callable[[JID], JID]


def _no_labels(real: JID) -> Iterable[Element]:
    return ()


def _no_outsiders(real: JID) -> bool:
    return False


def _as_is(real: JID) -> JID:
    return real


def _error(condition: StanzaErrorCondition, text: str = "") -> StanzaError:
    return StanzaError(condition, text)


class Room:
    """See the module's docstring. ``labels`` gives extra elements shown with a real JID
    (the hub's interop marker for third-party members); ``outsiders`` tells the addresses
    that are in the room only as members, whatever its configuration (third-party users:
    an invitation makes them members, they enter only as members, and they leave when
    their membership ends, as in a members-only room); ``shown`` gives the bare address the
    room shows for a member's real bare JID, to every member alike (a gatekeeper user's alias,
    :mod:`interlink.hub.groups.aliases`), wherever an ``<item/>`` names one."""

    def __init__(
        self,
        state: RoomState,
        limits: RoomLimits,
        *,
        locked: bool = False,
        labels: Labels = _no_labels,
        logged: bool = False,
        outsiders: Outsiders = _no_outsiders,
        shown: Shown = _as_is,
    ) -> None:
        self.state = state
        self.limits = limits
        self.locked = locked
        self.labels = labels
        self.logged = logged  # the room keeps an archive (XEP-0313): 170 on entering
        self.outsiders = outsiders
        self.shown = shown
        self.occupants: dict[str, Occupant] = {}
        self._by_session: dict[JID, str] = {}

    @classmethod
    def create(
        cls,
        jid: JID,
        owner: JID,
        config: RoomConfig,
        limits: RoomLimits,
        now: float,
        *,
        labels: Labels = _no_labels,
        logged: bool = False,
        outsiders: Outsiders = _no_outsiders,
        shown: Shown = _as_is,
    ) -> Room:
        """A new, locked room owned by ``owner`` (§10.1.1)."""
        state = RoomState(jid, config, {owner.bare: Member(Affiliation.OWNER)}, created=now)
        return cls(
            state,
            limits,
            locked=True,
            labels=labels,
            logged=logged,
            outsiders=outsiders,
            shown=shown,
        )

    # -- reading -----------------------------------------------------------------------------
    @property
    def jid(self) -> JID:
        return self.state.jid

    @property
    def config(self) -> RoomConfig:
        return self.state.config

    def affiliation(self, real: JID) -> Affiliation:
        member = self.state.members.get(real.bare)
        return Affiliation.NONE if member is None else member.affiliation

    def member_jids(self) -> list[JID]:
        """Owners, admins and members (pending invitations included): who may enter."""
        return [
            jid
            for jid, m in self.state.members.items()
            if m.affiliation.rank >= Affiliation.MEMBER.rank
        ]

    def occupant_of(self, session: JID) -> Occupant | None:
        nick = self._by_session.get(session)
        return None if nick is None else self.occupants[nick]

    def is_empty(self) -> bool:
        return not self.occupants

    def members_only_for(self, real: JID) -> bool:
        """Whether ``real`` is in the room only as a member (the room is members-only, or
        ``real`` is an outsider)."""
        return self.config.members_only or self.outsiders(real.bare)

    def _role_for(self, affiliation: Affiliation) -> Role:
        if affiliation.rank >= Affiliation.ADMIN.rank:
            return Role.MODERATOR
        return Role.PARTICIPANT

    def _room_jid(self, nick: str) -> JID:
        return self.jid.with_resource(nick)

    def _face(self, real: JID) -> JID:
        """What the room shows for ``real`` (full or bare): its address, or its alias with
        the same resource."""
        shown = self.shown(real.bare)
        return shown if real.resource is None else shown.with_resource(real.resource)

    def _face_to(self, real: JID, recipient: JID) -> JID:
        """``real`` (bare) in a notice to one account only (an invitation, a decline): the
        service's own users see each other's addresses there, as outside rooms; a third
        party sees the alias every member sees."""
        return self._face(real) if self.outsiders(recipient.bare) else real.bare

    def _sees_jids(self, recipient: Occupant) -> bool:
        return self.config.non_anonymous or recipient.role is Role.MODERATOR

    def _item(
        self, who: Occupant, recipient: Occupant | None, *, reason: str = "", actor: str | None
    ) -> Element:
        shown = recipient is None or self._sees_jids(recipient)
        view = ItemView(
            self.affiliation(who.real),
            who.role,
            self._face(who.last) if shown else None,
            reason=reason,
            actor=actor,
        )
        return muc.item_element(view, extra=self.labels(who.real) if shown else ())

    def _presence_of(
        self,
        who: Occupant,
        to: JID,
        recipient: Occupant | None,
        *,
        statuses: Iterable[int] = (),
        unavailable: bool = False,
        reason: str = "",
        actor: str | None = None,
        extra: Iterable[Element] = (),
        item: Element | None = None,
    ) -> Presence:
        base = () if unavailable else who.sessions.get(who.last, ())
        x = muc.user_x(
            item if item is not None else self._item(who, recipient, reason=reason, actor=actor),
            statuses,
            *extra,
        )
        return Presence(
            to,
            self._room_jid(who.nick),
            None,
            None,
            (*base, x),
            PresenceType.UNAVAILABLE if unavailable else PresenceType.AVAILABLE,
        )

    def _to_all(self, who: Occupant, fx: Effects) -> None:
        """``who``'s (available) presence to every session of every occupant, with 110 to
        its own sessions."""
        for other in self.occupants.values():
            codes = (Status.SELF,) if other is who else ()
            for session in other.sessions:
                fx.out.append(self._presence_of(who, session, other, statuses=codes))

    # -- presence ----------------------------------------------------------------------------
    def presence(self, sender: JID, to: JID, presence: Presence, now: float) -> Effects:
        """A presence from ``sender`` (full JID) to ``to`` (room/nick).

        Raises:
            StanzaError: as the module's table says.
        """
        nick = to.resource
        current = self.occupant_of(sender)
        if presence.type is PresenceType.UNAVAILABLE:
            if current is None:
                return Effects()
            return self._exit(current, sender, presence)
        if presence.type is not PresenceType.AVAILABLE:
            raise _error(StanzaErrorCondition.BAD_REQUEST, "rooms take no subscriptions")
        if not nick:
            raise _error(StanzaErrorCondition.JID_MALFORMED, "enter a room as room@service/nick")
        payload = tuple(el for el in presence.payload if el.tag not in _MUC_X)
        if current is not None and current.nick == nick:
            current.sessions[sender] = payload
            current.last = sender
            fx = Effects()
            self._to_all(current, fx)
            return fx
        if current is not None:
            return self._change_nick(current, sender, nick, payload)
        return self._enter(sender, nick, payload, now)

    def _check_nick(self, nick: str, real: JID) -> None:
        if len(nick) > self.limits.max_nick_chars:
            raise _error(
                StanzaErrorCondition.NOT_ACCEPTABLE,
                f"a nickname has at most {self.limits.max_nick_chars} characters",
            )
        taken = self.occupants.get(nick)
        if taken is not None and taken.real != real:
            raise _error(StanzaErrorCondition.CONFLICT, "that nickname is in use in this room")

    def _enter(self, sender: JID, nick: str, payload: tuple[Element, ...], now: float) -> Effects:
        real = sender.bare
        member = self.state.members.get(real)
        affiliation = Affiliation.NONE if member is None else member.affiliation
        if self.locked and affiliation is not Affiliation.OWNER:
            raise _error(StanzaErrorCondition.ITEM_NOT_FOUND, "no such room")
        if affiliation is Affiliation.OUTCAST:
            raise _error(StanzaErrorCondition.FORBIDDEN, "you are banned from this room")
        if self.members_only_for(real) and affiliation.rank < Affiliation.MEMBER.rank:
            raise _error(
                StanzaErrorCondition.REGISTRATION_REQUIRED, "this room is for its members only"
            )
        self._check_nick(nick, real)
        existing = self.occupants.get(nick)
        if existing is None and any(o.real == real for o in self.occupants.values()):
            raise _error(StanzaErrorCondition.CONFLICT, "you are in this room under another nick")
        fx = Effects()
        if existing is None:
            if (
                len(self.occupants) >= self.config.max_occupants
                and affiliation.rank < Affiliation.ADMIN.rank
            ):
                raise _error(StanzaErrorCondition.SERVICE_UNAVAILABLE, "this room is full")
            existing = Occupant(nick, real, self._role_for(affiliation), {}, sender)
            self.occupants[nick] = existing
        existing.sessions[sender] = payload
        existing.last = sender
        self._by_session[sender] = nick
        if member is not None and member.invited_by is not None:
            accepted = Member(member.affiliation)
            self.state.members[real] = accepted
            fx.members[real] = accepted
        joiner = existing
        for other in self.occupants.values():  # §7.2.3: everyone already there, to the joiner
            if other is not joiner:
                fx.out.append(self._presence_of(other, sender, joiner))
        codes: list[int] = [Status.SELF]
        if self.config.non_anonymous:
            codes.append(Status.NON_ANONYMOUS)
        if self.logged:  # §7.2.12: the discussion is archived
            codes.append(Status.LOGGING)
        if self.locked:
            codes.append(Status.CREATED)
            fx.created = True
        for other in self.occupants.values():
            targets = [sender] if other is joiner else list(other.sessions)
            for session in targets:
                fx.out.append(
                    self._presence_of(
                        joiner, session, other, statuses=codes if other is joiner else ()
                    )
                )
        # §7.2.15: the subject, even when there is none, ends the join.
        subject = Element(muc.SUBJECT)
        subject.text = self.state.subject or None
        subject_from = self._room_jid(self.state.subject_by) if self.state.subject_by else self.jid
        fx.out.append(Message(sender, subject_from, None, None, (subject,), MessageType.GROUPCHAT))
        return fx

    def _change_nick(
        self, who: Occupant, sender: JID, nick: str, payload: tuple[Element, ...]
    ) -> Effects:
        self._check_nick(nick, who.real)
        if nick in self.occupants:
            raise _error(StanzaErrorCondition.CONFLICT, "that nickname is in use in this room")
        if len(who.sessions) > 1:
            raise _error(
                StanzaErrorCondition.NOT_ACCEPTABLE,
                "leave from your other sessions before changing nickname",
            )
        fx = Effects()
        for other in self.occupants.values():  # §7.6.3: unavailable with 303 and the new nick
            for session in other.sessions:
                view = ItemView(
                    self.affiliation(who.real),
                    who.role,
                    self._face(who.last) if self._sees_jids(other) else None,
                    nick=nick,
                )
                fx.out.append(
                    self._presence_of(
                        who,
                        session,
                        other,
                        unavailable=True,
                        statuses=(Status.NEW_NICK, *((Status.SELF,) if other is who else ())),
                        item=muc.item_element(view),
                    )
                )
        del self.occupants[who.nick]
        who.nick = nick
        who.sessions[sender] = payload
        self.occupants[nick] = who
        for session in who.sessions:
            self._by_session[session] = nick
        self._to_all(who, fx)
        return fx

    def _exit(self, who: Occupant, sender: JID, presence: Presence) -> Effects:
        fx = Effects()
        status = tuple(el for el in presence.payload if el.tag == ns.qname(ns.CLIENT, "status"))
        if len(who.sessions) > 1:  # another session stays: only this one is told
            fx.out.append(
                self._presence_of(who, sender, who, unavailable=True, statuses=(Status.SELF,))
            )
            del who.sessions[sender]
            del self._by_session[sender]
            if who.last == sender:
                who.last = next(iter(who.sessions))
            return fx
        for other in self.occupants.values():
            for session in other.sessions:
                p = self._presence_of(
                    who,
                    session,
                    other,
                    unavailable=True,
                    statuses=(Status.SELF,) if other is who else (),
                )
                fx.out.append(replace(p, payload=(*status, *p.payload)))
        self._remove(who)
        self._maybe_vanish(fx)
        return fx

    def _remove(self, who: Occupant) -> None:
        del self.occupants[who.nick]
        for session in who.sessions:
            self._by_session.pop(session, None)

    def _maybe_vanish(self, fx: Effects) -> None:
        """A temporary room ends with its last occupant (§10.1.1)."""
        if not self.occupants and (not self.config.persistent or self.locked):
            fx.destroyed = True

    # -- messages ----------------------------------------------------------------------------
    def groupchat(
        self, sender: JID, msg: Message, now: float, extra: tuple[Element, ...] = ()
    ) -> Effects:
        """A ``groupchat`` message from ``sender`` to the room; ``extra`` goes last on every
        copy (the room's stanza-id).

        Raises:
            StanzaError: ``not-acceptable`` from a non-occupant or, in an encrypted-only room,
                for a body that is not OMEMO-encrypted; ``forbidden`` for a subject change the
                sender may not make.
        """
        who = self.occupant_of(sender)
        if who is None:
            raise _error(StanzaErrorCondition.NOT_ACCEPTABLE, "only occupants write to the room")
        subject = msg.find(muc.SUBJECT)
        fx = Effects()
        if subject is not None and msg.find(muc.BODY) is None:
            if not (self.config.change_subject or who.role is Role.MODERATOR):
                raise _error(StanzaErrorCondition.FORBIDDEN, "you may not change the subject")
            text = (subject.text or "")[: self.limits.max_subject_chars]
            self.state.subject = text
            self.state.subject_by = who.nick
            fx.saved = True
        elif (
            self.config.encrypted_only
            and msg.find(muc.BODY) is not None
            and not any(msg.find(tag) is not None for tag in OMEMO_ENCRYPTED)
        ):
            raise _error(
                StanzaErrorCondition.NOT_ACCEPTABLE,
                "this room is encrypted-only: send OMEMO-encrypted messages",
            )
        frm = self._room_jid(who.nick)
        payload = (*msg.payload, *self.labels(who.real), *extra)
        for other in self.occupants.values():
            for session in other.sessions:
                fx.out.append(
                    Message(session, frm, msg.id, msg.lang, payload, MessageType.GROUPCHAT)
                )
        return fx

    def private_message(self, sender: JID, nick: str, msg: Message) -> Effects:
        """A private message (§7.5) from an occupant to the occupant ``nick``.

        Raises:
            StanzaError: ``not-acceptable`` from a non-occupant, ``item-not-found`` for no
                such occupant.
        """
        who = self.occupant_of(sender)
        if who is None:
            raise _error(StanzaErrorCondition.NOT_ACCEPTABLE, "only occupants write to the room")
        target = self.occupants.get(nick)
        if target is None:
            raise _error(StanzaErrorCondition.ITEM_NOT_FOUND, "no such occupant")
        fx = Effects()
        payload = (*msg.payload, *self.labels(who.real), Element(f"{{{muc.NS_USER}}}x"))
        for session in target.sessions:
            fx.out.append(
                Message(session, self._room_jid(who.nick), msg.id, msg.lang, payload, msg.type)
            )
        return fx

    # -- invitations (§7.8) ------------------------------------------------------------------
    def may_invite(self, sender: JID) -> None:
        """Raises ``not-acceptable`` for a non-occupant, ``forbidden`` for one who may not."""
        who = self.occupant_of(sender)
        if who is None:
            raise _error(StanzaErrorCondition.NOT_ACCEPTABLE, "only occupants invite")
        affiliation = self.affiliation(who.real)
        if (
            self.config.members_only
            and not self.config.allow_invites
            and affiliation.rank < Affiliation.ADMIN.rank
        ):
            raise _error(StanzaErrorCondition.FORBIDDEN, "only admins and owners invite here")

    def invite(self, sender: JID, invitation: muc.Invitation, now: float) -> Effects:
        """A mediated invitation (§7.8.2), consent already checked by the shell.

        Raises:
            StanzaError: as :meth:`may_invite`; ``bad-request`` without an invitee,
                ``forbidden`` for an outcast invitee, ``resource-constraint`` past
                ``max_members``.
        """
        self.may_invite(sender)
        invitee = invitation.to
        if invitee is None:
            raise _error(StanzaErrorCondition.BAD_REQUEST, "an invitation needs a 'to' address")
        fx = Effects()
        current = self.affiliation(invitee)
        if current is Affiliation.OUTCAST:
            raise _error(StanzaErrorCondition.FORBIDDEN, "that address is banned from this room")
        if self.members_only_for(invitee) and current.rank < Affiliation.MEMBER.rank:
            self._check_room_for_members(1)
            member = Member(Affiliation.MEMBER, sender.bare)
            self.state.members[invitee] = member
            fx.members[invitee] = member
            self._announce_affiliation(invitee, fx)
        x = muc.invite_message_x(self._face_to(sender.bare, invitee), invitation.reason)
        fx.out.append(Message(invitee, self.jid, None, None, (x,), MessageType.NORMAL))
        return fx

    def decline(self, sender: JID, invitation: muc.Invitation) -> Effects:
        """The invitee declines (§7.8.3): a pending membership is withdrawn, the inviter told."""
        real = sender.bare
        member = self.state.members.get(real)
        fx = Effects()
        if member is None or member.invited_by is None:
            return fx  # nothing pending: nobody to tell
        del self.state.members[real]
        fx.members[real] = None
        fx.removed.add(real)
        x = muc.invite_message_x(
            self._face_to(real, member.invited_by), invitation.reason, decline=True
        )
        fx.out.append(Message(member.invited_by, self.jid, None, None, (x,), MessageType.NORMAL))
        self._announce_affiliation(real, fx)
        return fx

    def forget(self, real: JID) -> Effects:
        """``real``'s account is gone: it leaves the member list (occupants who see JIDs are
        told, §9.3, so that no one keeps encrypting to it), and an owner is found to replace
        it or the room ends (:meth:`ensure_owner`). Its sessions ended already."""
        fx = Effects()
        if self.state.members.pop(real.bare, None) is not None:
            fx.members[real.bare] = None
            fx.removed.add(real.bare)
            self._announce_affiliation(real.bare, fx)
            heir = self.ensure_owner()
            if heir.destroyed:
                heir.removed |= fx.removed
                return heir
            fx.members.update(heir.members)
            fx.out.extend(heir.out)
        return fx

    def ensure_owner(self) -> Effects:
        """A room keeps an owner (§10.7): when its last owner's account is gone, the first
        admin (by address) becomes owner, else the first member who entered (an accepted
        member), else the first member with an invitation pending; a room with none of them
        is destroyed. Nothing happens while an owner remains."""
        if any(m.affiliation is Affiliation.OWNER for m in self.state.members.values()):
            return Effects()
        ranked = sorted(
            (
                (m.affiliation is not Affiliation.ADMIN, m.invited_by is not None, str(jid), jid)
                for jid, m in self.state.members.items()
                if m.affiliation.rank >= Affiliation.MEMBER.rank
            ),
        )
        if not ranked:
            return self.destroy("the room's owner is gone")
        heir = ranked[0][3]
        owner = Member(Affiliation.OWNER)
        self.state.members[heir] = owner
        fx = Effects(members={heir: owner})
        occupant = next((o for o in self.occupants.values() if o.real == heir), None)
        if occupant is None:
            self._announce_affiliation(heir, fx)
        else:
            occupant.role = self._role_for(Affiliation.OWNER)
            self._to_all(occupant, fx)
        return fx

    def _check_room_for_members(self, more: int) -> None:
        if len(self.member_jids()) + more > self.limits.max_members:
            raise _error(
                StanzaErrorCondition.RESOURCE_CONSTRAINT,
                f"a room has at most {self.limits.max_members} members",
            )

    def _announce_affiliation(self, real: JID, fx: Effects) -> None:
        """A non-occupant's affiliation changed: occupants who see JIDs are told (§9.3), so
        that clients keep their recipient sets (OMEMO) equal to the member list."""
        if any(o.real == real for o in self.occupants.values()):
            return
        view = ItemView(self.affiliation(real), None, self._face(real))
        for other in self.occupants.values():
            if not self._sees_jids(other):
                continue
            item = muc.item_element(view, extra=self.labels(real))
            for session in other.sessions:
                fx.out.append(
                    Message(session, self.jid, None, None, (muc.user_x(item),), MessageType.NORMAL)
                )

    # -- muc#admin (§8, §9) ------------------------------------------------------------------
    def admin_get(self, requester: JID, query: Element) -> Element:
        """A list of affiliations or of occupants with a role (§9.5, §8.5).

        Raises:
            StanzaError: ``forbidden`` for who may not read it: outcasts to admins, other
                lists to members (in a members-only room) and admins.
        """
        what = muc.admin_list_request(query)
        affiliation = self.affiliation(requester)
        may = affiliation.rank >= Affiliation.ADMIN.rank or (
            affiliation is Affiliation.MEMBER
            and what not in (Affiliation.OUTCAST, Affiliation.NONE)
        )
        if not may:
            raise _error(StanzaErrorCondition.FORBIDDEN, "you may not read that list")
        result = Element(muc.ADMIN_QUERY)
        if isinstance(what, Affiliation):
            for jid, member in sorted(self.state.members.items(), key=lambda kv: str(kv[0])):
                if member.affiliation is what:
                    nick = next((o.nick for o in self.occupants.values() if o.real == jid), None)
                    view = ItemView(what, None, self._face(jid), nick=nick)
                    result.append(muc.item_element(view, muc.ADMIN_ITEM, extra=self.labels(jid)))
        else:
            for occupant in self.occupants.values():
                if occupant.role is what:
                    view = ItemView(
                        self.affiliation(occupant.real),
                        occupant.role,
                        self._face(occupant.real),
                        occupant.nick,
                    )
                    result.append(
                        muc.item_element(view, muc.ADMIN_ITEM, extra=self.labels(occupant.real))
                    )
        return result

    def admin_set(self, requester: JID, items: list[muc.AdminItem]) -> Effects:
        """Affiliation changes and kicks, all or none (§9.1–§9.4, §10.3–§10.7, §8.2).

        Raises:
            StanzaError: ``forbidden`` without the privilege, ``not-allowed`` against a
                higher affiliation, ``conflict`` for removing the last owner,
                ``item-not-found`` for a kick of no occupant, ``resource-constraint`` past
                ``max_members``, ``feature-not-implemented`` for voice and moderator grants.
        """
        actor = requester.bare
        mine = self.affiliation(actor)
        members = dict(self.state.members)
        kicks: list[tuple[Occupant, str]] = []
        for item in items:
            if item.role is not None:
                if item.role is not Role.NONE:
                    raise _error(
                        StanzaErrorCondition.FEATURE_NOT_IMPLEMENTED,
                        "rooms here are unmoderated: only kicks change roles",
                    )
                target = self.occupants.get(item.nick or "")
                if target is None:
                    raise _error(StanzaErrorCondition.ITEM_NOT_FOUND, "no such occupant")
                if mine.rank < Affiliation.ADMIN.rank:
                    raise _error(StanzaErrorCondition.FORBIDDEN, "only moderators kick")
                if self.affiliation(target.real).rank >= mine.rank and target.real != actor:
                    raise _error(StanzaErrorCondition.NOT_ALLOWED, "you may not kick them")
                kicks.append((target, item.reason))
                continue
            assert item.affiliation is not None
            if item.jid is None:
                raise _error(StanzaErrorCondition.BAD_REQUEST, "an affiliation item needs a jid")
            target_jid = item.jid
            old = members.get(target_jid)
            old_aff = Affiliation.NONE if old is None else old.affiliation
            new = item.affiliation
            leaving_self = target_jid == actor and new is Affiliation.NONE
            if not leaving_self:
                if mine.rank < Affiliation.ADMIN.rank:
                    raise _error(StanzaErrorCondition.FORBIDDEN, "only admins change affiliations")
                if mine is not Affiliation.OWNER and (
                    new.rank >= Affiliation.ADMIN.rank or old_aff.rank >= Affiliation.ADMIN.rank
                ):
                    raise _error(
                        StanzaErrorCondition.NOT_ALLOWED, "only owners change admins and owners"
                    )
            if new is Affiliation.NONE:
                members.pop(target_jid, None)
            else:
                members[target_jid] = Member(new)
        if not any(m.affiliation is Affiliation.OWNER for m in members.values()):
            raise _error(StanzaErrorCondition.CONFLICT, "a room keeps at least one owner")
        count = sum(1 for m in members.values() if m.affiliation.rank >= Affiliation.MEMBER.rank)
        if count > max(self.limits.max_members, len(self.member_jids())):
            raise _error(
                StanzaErrorCondition.RESOURCE_CONSTRAINT,
                f"a room has at most {self.limits.max_members} members",
            )
        # Checked: apply.
        fx = Effects()
        actor_nick = next((o.nick for o in self.occupants.values() if o.real == actor), None)
        changed = {
            jid
            for jid in set(members) | set(self.state.members)
            if members.get(jid) != self.state.members.get(jid)
        }
        self.state.members = members
        for jid in sorted(changed, key=str):
            member = members.get(jid)
            fx.members[jid] = member
            aff = Affiliation.NONE if member is None else member.affiliation
            if aff.rank < Affiliation.MEMBER.rank:
                fx.removed.add(jid)
            occupant = next((o for o in self.occupants.values() if o.real == jid), None)
            if occupant is None:
                self._announce_affiliation(jid, fx)
            elif aff is Affiliation.OUTCAST:
                self._eject(occupant, fx, Status.BANNED, "", actor_nick)
            elif self.members_only_for(jid) and aff.rank < Affiliation.MEMBER.rank:
                self._eject(occupant, fx, Status.AFFILIATION_CHANGED, "", actor_nick)
            else:
                occupant.role = self._role_for(aff)
                self._to_all(occupant, fx)
        for target, reason in kicks:
            if target.nick in self.occupants:
                self._eject(target, fx, Status.KICKED, reason, actor_nick)
        return fx

    def _eject(
        self, who: Occupant, fx: Effects, code: Status, reason: str, actor: str | None
    ) -> None:
        who.role = Role.NONE
        for other in self.occupants.values():
            for session in other.sessions:
                fx.out.append(
                    self._presence_of(
                        who,
                        session,
                        other,
                        unavailable=True,
                        statuses=(code, *((Status.SELF,) if other is who else ())),
                        reason=reason,
                        actor=actor,
                    )
                )
        self._remove(who)

    # -- muc#owner (§10) ---------------------------------------------------------------------
    def owner_get(self, requester: JID) -> Element:
        """The configuration form (§10.2). Raises ``forbidden`` for a non-owner."""
        self._owner(requester)
        query = Element(muc.OWNER_QUERY)
        query.append(muc.config_form(self.config, self.limits.max_occupants))
        return query

    def _owner(self, requester: JID) -> None:
        if self.affiliation(requester) is not Affiliation.OWNER:
            raise _error(StanzaErrorCondition.FORBIDDEN, "only owners configure the room")

    def owner_set(self, requester: JID, query: Element, now: float) -> Effects:
        """A submitted or cancelled configuration, or the room's destruction.

        Raises:
            StanzaError: ``forbidden`` for a non-owner, ``bad-request`` for a query with
                neither a form nor ``<destroy/>``, or a bad form (see
                :func:`~interlink.xmpp.ext.muc.read_config`).
        """
        self._owner(requester)
        destroy = query.find(muc.OWNER_DESTROY)
        if destroy is not None:
            reason_el = destroy.find(muc.OWNER_REASON)
            return self.destroy((reason_el.text or "") if reason_el is not None else "")
        form = query.find(FORM)
        if form is None:
            raise _error(StanzaErrorCondition.BAD_REQUEST, "send a form or <destroy/>")
        if form.get("type") == "cancel":
            if self.locked:  # §10.1.3: cancelling the first configuration destroys the room
                return self.destroy("")
            return Effects()
        if form.get("type") != "submit":
            raise _error(StanzaErrorCondition.BAD_REQUEST, "submit or cancel the form")
        old = self.config
        new = muc.read_config(form, old, max_occupants=self.limits.max_occupants)
        self.state.config = new
        fx = Effects(saved=True)
        was_locked, self.locked = self.locked, False
        if was_locked or new == old:
            return fx
        codes: list[int] = []
        if new.non_anonymous != old.non_anonymous:
            codes.append(
                Status.NOW_NON_ANONYMOUS if new.non_anonymous else Status.NOW_SEMI_ANONYMOUS
            )
        if len(codes) == 0:
            codes.append(Status.CONFIG_CHANGED)
        for other in self.occupants.values():  # §10.2.1
            for session in other.sessions:
                fx.out.append(
                    Message(
                        session,
                        self.jid,
                        None,
                        None,
                        (muc.user_x(None, codes),),
                        MessageType.GROUPCHAT,
                    )
                )
        if new.members_only and not old.members_only:  # §9.3: non-members leave, 322
            for occupant in list(self.occupants.values()):
                if self.affiliation(occupant.real).rank < Affiliation.MEMBER.rank:
                    self._eject(occupant, fx, Status.MEMBERS_ONLY, "", None)
        return fx

    def destroy(self, reason: str) -> Effects:
        """§10.9: every occupant leaves with ``<destroy/>``; the room is gone."""
        fx = Effects(destroyed=True)
        destroy = muc.destroy_element(muc.DESTROY_USER, reason)
        for who in list(self.occupants.values()):
            item = muc.item_element(ItemView(Affiliation.NONE, Role.NONE))
            for session in who.sessions:
                fx.out.append(
                    self._presence_of(
                        who,
                        session,
                        who,
                        unavailable=True,
                        statuses=(Status.SELF,),
                        item=item,
                        extra=(destroy,),
                    )
                )
        for who in list(self.occupants.values()):
            self._remove(who)
        fx.removed.update(self.member_jids())
        return fx

    def shutdown_presence(self, who: Occupant, session: JID) -> Presence:
        """``session``'s own unavailable presence with 332 (§9.8 and §15.6.2): the service
        no longer holds the room in memory, so the occupant is out of it."""
        item = muc.item_element(ItemView(self.affiliation(who.real), Role.NONE))
        return self._presence_of(
            who, session, who, unavailable=True, statuses=(Status.SELF, Status.SHUTDOWN), item=item
        )

    # -- XEP-0410 ----------------------------------------------------------------------------
    def self_ping(self, sender: JID, nick: str, iq: Iq) -> Iq:
        """A ping to ``room/nick`` from ``sender``: answered by the room (XEP-0410 §3).

        Raises:
            StanzaError: ``not-acceptable`` when ``sender`` is not joined under ``nick``.
        """
        if self._by_session.get(sender) != nick:
            raise _error(StanzaErrorCondition.NOT_ACCEPTABLE, "you are not joined as that nick")
        return iq_result(iq, from_=self._room_jid(nick))

    def occupant_iq(self, sender: JID, nick: str, iq: Iq) -> None:
        """Other iqs to an occupant are not relayed (§7.5 lets the service choose).

        Raises:
            StanzaError: ``not-acceptable`` from a non-occupant, ``item-not-found`` for no
                such occupant, else ``service-unavailable``.
        """
        if self.occupant_of(sender) is None:
            raise _error(StanzaErrorCondition.NOT_ACCEPTABLE, "only occupants reach occupants")
        if nick not in self.occupants:
            raise _error(StanzaErrorCondition.ITEM_NOT_FOUND, "no such occupant")
        raise _error(StanzaErrorCondition.SERVICE_UNAVAILABLE)

    def sessions_of(self, real: JID) -> list[JID]:
        for o in self.occupants.values():
            if o.real == real:
                return list(o.sessions)
        return []


__all__ = [
    "Effects",
    "Member",
    "Occupant",
    "Room",
    "RoomLimits",
    "RoomState",
]
