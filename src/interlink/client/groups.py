"""Groups in the SDK: XEP-0045 rooms (members-only, non-anonymous), OMEMO-encrypted for every
device of every member.

OMEMO has no group key: each message is encrypted to every device of every member the client
knows of at that moment (XEP-0384 §6.1, "group chats"), OMEMO 2 where a device has it and the
legacy version where it only has that. So the recipient set *is* the member list, kept by
:class:`GroupRoom` from what the room tells: the member, admin and owner lists read when
entering (XEP-0045 §9.5), occupants' presence (§7.2.3, their real JIDs: the room is
non-anonymous), affiliation changes of non-occupants (§9.3) and removals (307, 301, 321). A
member removed is out of the set the moment the room says so, before the next message is
encrypted: its devices get nothing sealed after that.

A member is whoever the room says it is. A hub shows its gatekeeper users in rooms under a
per-room alias, never their phone numbers (docs/protocol.md §17), to every member alike, and
answers key fetches to that alias. So this device encrypts to the addresses the room shows,
opens an OMEMO 2 envelope with the sender the room shows for that occupant, and seals its own
with the address the room shows for *it* (``GroupRoom.me``, learned from its own presence,
status 110): every member checks the envelope's ``<from/>`` (XEP-0420) against that address.

:class:`GroupRoom` is pure (stanza facts in, events out); :class:`Groups` talks to the rooms
for ``InterlinkClient``, which builds it with the ports it needs (the stream, this connection's
OMEMO, device-list refresh, events) and delegates its group calls to it.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol
from xml.etree.ElementTree import Element

import omemo
import slixmpp
from slixmpp.exceptions import IqError, IqTimeout
from slixmpp.xmlstream.matcher.base import MatcherBase

from interlink.client import sce
from interlink.client.consent import ConsentError, marker_of
from interlink.client.crypto import Decrypted, Undecryptable
from interlink.client.durable import CryptoGate
from interlink.client.errors import ClientError
from interlink.client.events import (
    ClientEvent,
    DecryptionFailed,
    EncryptionProblem,
    GroupInvitation,
    GroupJoined,
    GroupLeft,
    GroupMemberAdded,
    GroupMemberRemoved,
    GroupMessage,
    GroupSubject,
    TextMessage,
)
from interlink.client.omemo_session import LEGACY, OMEMO2, serialize_message
from interlink.client.room_names import as_sent, in_room, peer_of, room_of
from interlink.client.xmpp_port import first_line
from interlink.xmpp import ns
from interlink.xmpp.addressing import domain_of, groups_domain, home_service
from interlink.xmpp.ext import interop, muc
from interlink.xmpp.ext.interop import InteropMarker

MEMBERS = ("owner", "admin", "member")
_REASONS = {307: "kicked", 301: "banned", 321: "removed", 322: "removed"}
FALLBACK_BODY = "[This message is end-to-end encrypted with OMEMO; your client cannot read it.]"
_EME = "urn:xmpp:eme:0"
_SUBJECT = ns.qname(ns.CLIENT, "subject")


@dataclass(frozen=True, slots=True)
class ItemFacts:
    """What one muc#user ``<item/>`` says (presence or affiliation notice)."""

    jid: str | None  # bare
    affiliation: str
    role: str | None
    statuses: frozenset[int]
    marker: InteropMarker | None = None


def item_facts(x: Element) -> ItemFacts | None:
    item = x.find(muc.ITEM)
    if item is None:
        return None
    raw = item.get("jid")
    jid = None if not raw else str(slixmpp.JID(raw).bare)
    mark = item.find(interop.MARKER)
    return ItemFacts(
        jid,
        item.get("affiliation", "none"),
        item.get("role"),
        frozenset(muc.statuses_of(x)),
        None if mark is None else interop.parse_marker(mark),
    )


@dataclass(slots=True)
class GroupRoom:
    """One room as this device knows it: the member list (the recipient set) and who is in it."""

    jid: str
    nick: str
    own: str  # this account's bare JID
    me: str = ""  # this account as the room shows it (its alias there); "" until it says
    members: dict[str, str] = field(default_factory=dict)  # bare JID -> owner/admin/member
    occupants: dict[str, str] = field(default_factory=dict)  # nick -> bare JID
    markers: dict[str, InteropMarker] = field(default_factory=dict)
    subject: str = ""
    joined: bool = False
    created: bool = False

    def recipients(self) -> frozenset[str]:
        """Whom a message is encrypted to (this account's other devices are added by OMEMO)."""
        return frozenset(j for j in self.members if j not in (self.own, self.me))

    def identity(self) -> str:
        """The address this account seals its messages to the room with."""
        return self.me or self.own

    def set_member(
        self, jid: str, affiliation: str, marker: InteropMarker | None = None
    ) -> list[ClientEvent]:
        if marker is not None:
            self.markers[jid] = marker
        old = self.members.get(jid)
        if affiliation in MEMBERS:
            self.members[jid] = affiliation
            if old is None and jid not in (self.own, self.me):
                return [GroupMemberAdded(self.jid, jid, affiliation, self.markers.get(jid))]
            return []
        if old is not None:
            del self.members[jid]
            reason = "banned" if affiliation == "outcast" else "removed"
            return [GroupMemberRemoved(self.jid, jid, reason)]
        return []

    def on_presence(self, nick: str, unavailable: bool, facts: ItemFacts) -> list[ClientEvent]:
        """An occupant's presence (ours when 110 is among the statuses)."""
        events: list[ClientEvent] = []
        mine = 110 in facts.statuses
        if mine and not unavailable and facts.jid is not None:
            self.me = facts.jid
        if unavailable:
            self.occupants.pop(nick, None)
            removal = next((_REASONS[c] for c in facts.statuses if c in _REASONS), None)
            if 303 in facts.statuses:
                return events  # a nick change: the new presence follows
            if mine:
                self.joined = False
                events.append(GroupLeft(self.jid, removal or "left"))
                return events
            if facts.jid is not None and removal is not None:
                events.extend(self.set_member(facts.jid, facts.affiliation))
            return events
        if facts.jid is not None:
            self.occupants[nick] = facts.jid
            events.extend(self.set_member(facts.jid, facts.affiliation, facts.marker))
        if mine:
            self.nick = nick
            self.created = self.created or 201 in facts.statuses
        return events


class RoomStream(Protocol):
    """What groups need of the slixmpp stream: its stanza factories (``slixmpp.ClientXMPP``)."""

    def make_presence(self, *, pto: slixmpp.JID, ptype: Any = None) -> Any: ...

    def make_message(self, mto: slixmpp.JID, *, mtype: Any = None) -> Any: ...

    def make_iq(self, *, ito: slixmpp.JID, itype: Any) -> Any: ...


class RoomCrypto(Protocol):
    """What groups need of this connection's OMEMO (:class:`DeviceCrypto`): the gate every
    crypto operation and its effects go through, encryption to every device of a set of
    accounts, and decryption with the trust decision."""

    @property
    def gate(self) -> CryptoGate: ...

    async def encrypt(
        self, recipients: Iterable[str], plaintext: dict[str, bytes], order: list[str]
    ) -> tuple[list[Any], list[Any]]: ...

    async def decrypt(
        self, element: Element, sender: str, *, also: Iterable[str] = ()
    ) -> Decrypted | Undecryptable | None: ...


class Block(Protocol):
    """The consent call a member report goes through (``InterlinkClient.block``)."""

    async def __call__(
        self, jid: str, *, report: str | None, text: str, attach: Sequence[TextMessage]
    ) -> None: ...


class RoomMatcher(MatcherBase):
    """Presence and (non-encrypted) messages from rooms this device joins, and invitations."""

    def __init__(self, rooms: dict[str, GroupRoom]) -> None:
        super().__init__(rooms)
        self._rooms = rooms

    def match(self, xml: Any) -> bool:
        element = xml.xml
        tag = element.tag
        frm = str(slixmpp.JID(element.get("from", "")).bare)
        if tag == "{jabber:client}presence":
            return frm in self._rooms
        if tag != "{jabber:client}message" or element.get("type") == "error":
            return False
        if element.find(f"{{{OMEMO2}}}encrypted") is not None:
            return False
        if element.find(f"{{{LEGACY}}}encrypted") is not None:
            return False
        if element.find(muc.USER_X) is not None or element.find(muc.DIRECT_INVITE) is not None:
            return True
        return frm in self._rooms and element.find(_SUBJECT) is not None


class Groups:
    """This account's rooms: the group calls of ``InterlinkClient`` and the handling of what
    rooms send. Built once per client; what it needs of the client comes in as ports:
    ``stream()`` the connected slixmpp stream, ``crypto()`` this connection's OMEMO (both raise
    :class:`NotConnected` before ``connect()``), ``refresh(bare)`` device lists fresh enough to
    encrypt to, ``emit(event)`` an event for the application (held until the crypto state
    behind it is durable), and ``block`` the consent call a report goes through."""

    def __init__(
        self,
        *,
        own: str,
        timeout: float,
        omemo2: bool,
        legacy: bool,
        stream: Callable[[], RoomStream],
        crypto: Callable[[], RoomCrypto],
        refresh: Callable[[str], Awaitable[None]],
        emit: Callable[[ClientEvent], None],
        block: Block,
    ) -> None:
        self._own = own
        self._timeout = timeout
        self._omemo2 = omemo2
        self._legacy = legacy
        self._stream = stream
        self._crypto = crypto
        self._refresh = refresh
        self._emit = emit
        self._block = block
        self._rooms: dict[str, GroupRoom] = {}
        self._waiters: dict[str, asyncio.Future[None]] = {}
        self._sent: set[str] = set()  # ids of our own messages, whose room copies are skipped
        self.matcher = RoomMatcher(self._rooms)  # what on_room() is for

    # -- the calls ---------------------------------------------------------------------------
    def room(self, room: str) -> GroupRoom:
        """What this device knows of ``room``. Raises ``ClientError`` if it never entered it."""
        try:
            return self._rooms[str(slixmpp.JID(room).bare)]
        except KeyError:
            raise ClientError(f"not in {room}") from None

    async def create(
        self, room: str, nick: str, *, name: str = "", encrypted_only: bool = True
    ) -> GroupRoom:
        """Create ``room`` (``name@groups.<service>``) and enter it as its owner: members-only,
        non-anonymous, persistent, and (default) encrypted-only.

        Raises:
            NotConnected: before ``connect()``.
            ConsentError: the room exists (``conflict`` when taken by someone else's join,
                ``registration-required`` for a members-only room of others) or the hub refused
                (e.g. ``resource-constraint``: too many rooms).
        """
        state = await self.join(room, nick)
        if not state.created:
            raise ConsentError("conflict", f"{room} already exists")
        form = Element("{jabber:x:data}x", {"type": "submit"})
        for var, value in (
            ("FORM_TYPE", muc.NS_ROOMCONFIG),
            ("muc#roomconfig_roomname", name),
            ("muc#roomconfig_membersonly", "1"),
            ("muc#roomconfig_whois", "anyone"),
            ("muc#roomconfig_persistentroom", "1"),
            (muc.ENCRYPTED_ONLY_FIELD, "1" if encrypted_only else "0"),
        ):
            f = Element("{jabber:x:data}field", {"var": var})
            v = Element("{jabber:x:data}value")
            v.text = value
            f.append(v)
            form.append(f)
        query = Element(muc.OWNER_QUERY)
        query.append(form)
        await self._room_iq(state.jid, "set", query)
        return state

    async def join(self, room: str, nick: str) -> GroupRoom:
        """Enter ``room`` as ``nick`` (accepting an invitation is entering) and read its member
        list, the recipients of what this device sends there.

        Raises:
            NotConnected: before ``connect()``.
            ConsentError: the room refused (XEP-0045: ``registration-required`` for a
                non-member, ``forbidden`` when banned, ``conflict`` for a nick in use,
                ``item-not-found``...), or ``timeout``.
        """
        xmpp = self._stream()
        jid = str(slixmpp.JID(room).bare)
        rooms = self._rooms
        state = rooms.get(jid) or GroupRoom(jid, nick, self._own)
        rooms[jid] = state
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters[jid] = waiter
        presence = xmpp.make_presence(pto=slixmpp.JID(f"{jid}/{nick}"))
        presence.xml.append(Element(muc.JOIN))
        presence.send()
        try:
            await asyncio.wait_for(waiter, self._timeout)
        except TimeoutError:
            raise ConsentError("timeout", f"{jid} did not answer") from None
        except ConsentError:
            if not state.joined:
                rooms.pop(jid, None)
            raise
        finally:
            self._waiters.pop(jid, None)
        for affiliation in MEMBERS:
            query = Element(muc.ADMIN_QUERY)
            query.append(Element(muc.ADMIN_ITEM, {"affiliation": affiliation}))
            try:
                result = await self._room_iq(jid, "get", query)
            except ConsentError as exc:
                if exc.condition == "forbidden":
                    continue  # a room that does not show that list to members
                raise
            for item in [] if result is None else result.findall(muc.ADMIN_ITEM):
                member = item.get("jid")
                if member:
                    mark = item.find(interop.MARKER)
                    state.set_member(
                        str(slixmpp.JID(member).bare),
                        affiliation,
                        None if mark is None else interop.parse_marker(mark),
                    )
        for member in state.recipients():
            await self._refresh(self.session_name(state, member))
        self._emit(
            GroupJoined(jid, state.nick, tuple(sorted(state.members.items())), state.created)
        )
        return state

    async def leave(self, room: str, *, forget: bool = False) -> None:
        """Leave ``room``; ``forget``: also leave its member list (it stops being encrypted to
        this account), as when leaving a group for good.

        Raises:
            NotConnected: before ``connect()``.
            ConsentError: the room refused to remove this account (``conflict``: the last
                owner), or ``timeout``.
        """
        xmpp = self._stream()
        state = self.room(room)
        if forget:
            await self._set_affiliation(state.jid, self._own, "none")
        presence = xmpp.make_presence(
            pto=slixmpp.JID(f"{state.jid}/{state.nick}"), ptype="unavailable"
        )
        presence.send()
        state.joined = False

    async def invite(self, room: str, jid: str, reason: str = "") -> None:
        """Invite ``jid`` through the room (XEP-0045 §7.8.2); in a members-only room it becomes
        a member. A refusal comes back as a ``MessageRefused`` event from the room (the hub
        refuses an invitation to a user who cannot be reached exactly as a message to a
        nonexistent account).

        Raises:
            NotConnected: before ``connect()``.
        """
        xmpp = self._stream()
        message = xmpp.make_message(mto=slixmpp.JID(str(slixmpp.JID(room).bare)))
        message["id"] = secrets.token_hex(8)
        x = Element(muc.USER_X)
        invite = Element(muc.INVITE, {"to": str(slixmpp.JID(jid).bare)})
        if reason:
            r = Element(muc.REASON)
            r.text = reason
            invite.append(r)
        x.append(invite)
        message.xml.append(x)
        message.send()

    async def invite_directly(self, room: str, jid: str, reason: str = "") -> None:
        """Invite ``jid`` with a XEP-0249 direct invitation (a message to them naming the
        room). It is a message like any other: across the boundary the consent rules decide
        (a request from a third party; refused like a nonexistent account when they cannot be
        reached). It does not make them a member: add them too (:meth:`add_member`).

        Raises:
            NotConnected: before ``connect()``.
        """
        xmpp = self._stream()
        message = xmpp.make_message(mto=slixmpp.JID(str(slixmpp.JID(jid).bare)))
        message["id"] = secrets.token_hex(8)
        message.xml.append(muc.direct_invitation(str(slixmpp.JID(room).bare), reason))
        message.send()

    async def decline(self, room: str, inviter: str, reason: str = "") -> None:
        """Decline an invitation (XEP-0045 §7.8.3): the pending membership is withdrawn.

        Raises:
            NotConnected: before ``connect()``.
        """
        xmpp = self._stream()
        message = xmpp.make_message(mto=slixmpp.JID(str(slixmpp.JID(room).bare)))
        x = Element(muc.USER_X)
        decline = Element(muc.DECLINE, {"to": str(slixmpp.JID(inviter).bare)})
        if reason:
            r = Element(muc.REASON)
            r.text = reason
            decline.append(r)
        x.append(decline)
        message.xml.append(x)
        message.send()

    async def add_member(self, room: str, jid: str, affiliation: str = "member") -> None:
        """Make ``jid`` a member (or admin, owner) of ``room``.

        Raises:
            NotConnected: before ``connect()``.
            ConsentError: the room refused: ``forbidden``/``not-allowed`` without the
                privilege, ``service-unavailable`` for an address that cannot be reached (not
                opted in, no account: one answer), ``resource-constraint`` for a full room.
        """
        await self._set_affiliation(str(slixmpp.JID(room).bare), jid, affiliation)

    async def remove_member(self, room: str, jid: str, *, ban: bool = False) -> None:
        """Take ``jid`` off the member list (``ban``: make it an outcast). This device stops
        encrypting to it at once.

        Raises:
            NotConnected: before ``connect()``.
            ConsentError: the room refused (``forbidden``, ``not-allowed``, ``conflict`` for the
                last owner), or ``timeout``.
        """
        jid_bare = str(slixmpp.JID(jid).bare)
        room_jid = str(slixmpp.JID(room).bare)
        await self._set_affiliation(room_jid, jid_bare, "outcast" if ban else "none")
        state = self._rooms.get(room_jid)
        if state is not None:
            for event in state.set_member(jid_bare, "outcast" if ban else "none"):
                self._emit(event)

    async def send_text(self, room: str, text: str) -> str:
        """Encrypt ``text`` for every device of every member of ``room`` (and this account's
        other devices) and send it to the room. Returns the message id.

        Raises:
            NotConnected: before ``connect()``.
            ClientError: not in the room, or no member device could be encrypted to.
        """
        xmpp = self._stream()
        state = self.room(room)
        if not state.joined:
            raise ClientError(f"not in {state.jid}")
        body = Element(sce.BODY)
        body.text = text
        plaintext: dict[str, bytes] = {}
        order: list[str] = []
        if self._omemo2:
            plaintext[OMEMO2] = sce.seal(
                [body], sender=state.identity(), recipient=state.jid, now=time.time()
            )
            order.append(OMEMO2)
        if self._legacy:
            plaintext[LEGACY] = text.encode()
            order.append(LEGACY)
        recipients = {self.session_name(state, m) for m in state.recipients()}
        messages: Iterable[Any] = ()
        crypto = self._crypto()
        async with crypto.gate.operation():
            for member in recipients:
                await self._refresh(member)
            while True:
                try:
                    messages, errors = await crypto.encrypt(recipients, plaintext, order)
                    break
                except omemo.NoEligibleDevices as exc:
                    for member in exc.bare_jids:
                        self._emit(
                            EncryptionProblem(peer_of(member), None, "no device to encrypt to")
                        )
                    recipients -= set(exc.bare_jids)
                    if not recipients:
                        raise ClientError(f"no member of {state.jid} can be encrypted to") from exc
                except omemo.SessionManagerException as exc:
                    raise ClientError(f"cannot encrypt to {state.jid}: {first_line(exc)}") from exc
        for error in errors:
            self._emit(
                EncryptionProblem(
                    peer_of(error.bare_jid), error.device_id, first_line(error.exception)
                )
            )
        message_id = secrets.token_hex(8)
        self._sent.add(message_id)
        stanza = xmpp.make_message(mto=slixmpp.JID(state.jid), mtype="groupchat")
        stanza["id"] = message_id
        for message in messages:
            stanza.xml.append(as_sent(serialize_message(message)))
        stanza.xml.append(Element(f"{{{_EME}}}encryption", {"namespace": order[0]}))
        stanza["body"] = FALLBACK_BODY
        stanza.xml.append(Element(f"{{{ns.HINTS}}}store"))
        try:
            await crypto.gate.after(stanza.send)
        except Exception as exc:
            raise ClientError(f"not sent: {first_line(exc)}") from exc
        return message_id

    async def report_member(
        self,
        room: str,
        member: str,
        *,
        report: str = "spam",
        text: str = "",
        attach: Sequence[GroupMessage] = (),
    ) -> None:
        """Block and report a member of ``room`` (a nick or a bare JID) as a 1:1 sender is
        reported (XEP-0377): the room is non-anonymous, so the report names the member's own
        address, and the hub forwards a third party's report to its provider with the chosen
        messages as this device decrypted them.

        Raises:
            ValueError: ``report`` is neither "spam" nor "abuse".
            ClientError: ``member`` is no occupant's nick of ``room`` this device knows.
            ConsentError: the hub refused (e.g. too many reports), or did not answer in time.
        """
        state = self.room(room)
        real = state.occupants.get(member) or (member if member in state.members else None)
        if real is None:
            raise ClientError(f"{member} is not a member of {state.jid} this device knows")
        copies = [
            TextMessage(
                f"{state.jid}/{m.nick}",
                m.text,
                m.message_id,
                m.device_id,
                OMEMO2,
                sent_at=m.sent_at,
            )
            for m in attach
        ]
        await self._block(real, report=report, text=text, attach=copies)

    @staticmethod
    def _aliased(member: str, room: str) -> bool:
        """Whether ``member`` is how ``room`` shows one of its service's own users (an alias:
        an address on the service whose group service holds the room)."""
        return groups_domain(domain_of(member)) == domain_of(room)

    def session_name(self, state: GroupRoom, member: str) -> str:
        """The name python-omemo knows ``member`` by in ``state``'s room: for a client shown
        there under an alias, a third party gets a name of its own for the room (see
        :mod:`interlink.client.room_names`); anyone else is named by its address."""
        if state.identity() == self._own or self._aliased(member, state.jid):
            return member
        return in_room(member, state.jid)

    def protocol_route(self, name: str) -> str | None:
        """Where python-omemo's own messages (session completion, heartbeats: no text) for
        the session ``name`` go. A session of a room (a room-scoped name, or a peer the room
        shows under an alias) must not use a direct message: that would name this account's
        real address, or go to an alias no one answers. It goes as a private message through
        the room (XEP-0045 §7.5) to the peer's nick; when the peer is not in the room now,
        nowhere (the ratchet moves on with the next room message). Any other session: its
        address."""
        peer, room = peer_of(name), room_of(name)
        states = [self._rooms[room]] if room in self._rooms else []
        if room is None:
            states = [
                s
                for s in self._rooms.values()
                if self._aliased(peer, s.jid)
                and (peer in s.members or peer in s.occupants.values())
            ]
            if not states:
                return peer
        for state in states:
            nick = next((n for n, j in state.occupants.items() if j == peer), None)
            if state.joined and nick is not None:
                return f"{state.jid}/{nick}"
        return None

    # -- plumbing ----------------------------------------------------------------------------
    async def _room_iq(
        self, room: str, itype: Literal["get", "set"], payload: Element
    ) -> Element | None:
        xmpp = self._stream()
        iq: Any = xmpp.make_iq(ito=slixmpp.JID(room), itype=itype)
        iq.xml.append(payload)
        try:
            result = await iq.send(timeout=self._timeout)
        except IqError as exc:
            error = exc.iq["error"]
            raise ConsentError(error["condition"], error["text"]) from None
        except IqTimeout:
            raise ConsentError("timeout", f"{room} did not answer") from None
        children = list(result.xml)
        return children[0] if children else None

    async def _set_affiliation(self, room: str, jid: str, affiliation: str) -> None:
        query = Element(muc.ADMIN_QUERY)
        query.append(
            Element(muc.ADMIN_ITEM, {"affiliation": affiliation, "jid": str(slixmpp.JID(jid).bare)})
        )
        await self._room_iq(room, "set", query)

    # -- receiving ---------------------------------------------------------------------------
    async def on_room(self, stanza: Any) -> None:
        element: Element = stanza.xml
        frm = slixmpp.JID(element.get("from", ""))
        room = str(frm.bare)
        if element.tag == "{jabber:client}presence":
            await self._on_room_presence(room, frm.resource, element)
            return
        direct = element.find(muc.DIRECT_INVITE)
        x = element.find(muc.USER_X)
        if direct is not None and x is None:
            self._emit(
                GroupInvitation(
                    direct.get("jid", ""),
                    str(frm.bare),
                    direct.get("reason", ""),
                    marker_of(element, str(frm.bare), self._own),
                )
            )
            return
        state = self._rooms.get(room)
        if x is not None:
            invite = x.find(muc.INVITE)
            if invite is not None:
                self._emit(
                    GroupInvitation(
                        room,
                        str(slixmpp.JID(invite.get("from", "")).bare),
                        invite.findtext(muc.REASON) or "",
                        self._room_marker(element, room),
                    )
                )
                return
            facts = item_facts(x)
            if state is not None and facts is not None and facts.jid is not None:
                for event in state.set_member(facts.jid, facts.affiliation, facts.marker):
                    self._emit(event)
            return
        subject = element.find(_SUBJECT)
        if state is not None and subject is not None:
            state.subject = subject.text or ""
            self._emit(GroupSubject(room, state.subject, frm.resource or ""))

    async def _on_room_presence(self, room: str, nick: str, element: Element) -> None:
        state = self._rooms.get(room)
        if state is None:
            return
        waiter = self._waiters.get(room)
        if element.get("type") == "error":
            err = element.find("{jabber:client}error")
            condition = "undefined-condition" if err is None or not len(err) else err[0].tag
            text = "" if err is None else (err.findtext(f"{{{ns.STANZAS_ERR}}}text") or "")
            if waiter is not None and not waiter.done():
                waiter.set_exception(ConsentError(condition.rpartition("}")[2], text))
            return
        x = element.find(muc.USER_X)
        facts = None if x is None else item_facts(x)
        if facts is None:
            return
        unavailable = element.get("type") == "unavailable"
        destroyed = x is not None and x.find(muc.DESTROY_USER) is not None
        events = state.on_presence(nick, unavailable, facts)
        if destroyed and 110 in facts.statuses:
            events = [GroupLeft(room, "destroyed")]
            self._rooms.pop(room, None)
        if 110 in facts.statuses and not unavailable:
            state.joined = True
            if waiter is not None and not waiter.done():
                waiter.set_result(None)
        for event in events:
            if isinstance(event, GroupMemberAdded) and state.joined:
                await self._refresh(self.session_name(state, event.member))
            self._emit(event)

    async def on_message(self, stanza: Any) -> None:
        """Hook: an encrypted groupchat message (client.py's receive path hands it over)."""
        element: Element = stanza.xml
        frm = slixmpp.JID(element.get("from", ""))
        room, nick = str(frm.bare), frm.resource
        state = self._rooms.get(room)
        message_id = element.get("id")
        if state is None or not nick:
            return
        private = element.get("type") != "groupchat"
        sender = state.occupants.get(nick)
        if sender is None:
            self._emit(DecryptionFailed(str(frm), message_id, "unknown occupant"))
            return
        if not private and sender in (self._own, state.me) and message_id in self._sent:
            self._sent.discard(message_id)
            return  # the room's copy of our own message: not encrypted to this device
        encrypted = element.find(f"{{{OMEMO2}}}encrypted")
        if encrypted is None and self._legacy:
            encrypted = element.find(f"{{{LEGACY}}}encrypted")
        if encrypted is None:
            return
        marker = self._room_marker(element, room)
        crypto = self._crypto()
        async with crypto.gate.operation():
            opened = await crypto.decrypt(
                encrypted, self.session_name(state, sender), also=(state.identity(),)
            )
        if isinstance(opened, Undecryptable):
            self._emit(DecryptionFailed(str(frm), message_id, opened.reason))
            return
        if opened is None:
            return  # python-omemo's own message (in private: protocol_route's)
        if private:
            self._emit(DecryptionFailed(str(frm), message_id, "private messages in rooms unread"))
            return
        if opened.namespace == OMEMO2:
            try:
                envelope = sce.open_envelope(
                    opened.plaintext, sender=sender, recipients={room}, now=time.time()
                )
            except sce.SceError as exc:
                self._emit(DecryptionFailed(str(frm), message_id, str(exc)))
                return
            text, sent_at = envelope.body, envelope.timestamp
        else:
            text, sent_at = opened.plaintext.decode("utf-8", errors="replace"), None
        if text is None:
            return
        self._emit(
            GroupMessage(
                room,
                nick,
                sender,
                text,
                message_id,
                opened.device_id,
                opened.flagged,
                marker,
                sent_at,
            )
        )

    def _room_marker(self, element: Element, room: str) -> InteropMarker | None:
        """The hub's marker on what one of our service's rooms relays: trusted only from the
        service's own group service (the hub strips any marker a sender wrote)."""
        el = element.find(interop.MARKER)
        if el is None or domain_of(room) != groups_domain(home_service(domain_of(self._own))):
            return None
        return interop.parse_marker(el)


__all__ = [
    "Block",
    "GroupRoom",
    "Groups",
    "ItemFacts",
    "RoomCrypto",
    "RoomMatcher",
    "RoomStream",
    "item_facts",
]
