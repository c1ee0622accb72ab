"""XEP-0313 archives of rooms: what a room keeps, and who reads it.

The group service hands :class:`RoomHistory` every ``groupchat`` message its room accepted and
broadcast — after the size, rate, occupant and encrypted-only checks, so a refused message is
never archived — together with the room's :class:`~interlink.hub.groups.room.Effects`:

- **Once per room** (§5.1.2): the room's copy as its occupants got it (``from`` the sender's
  room JID, the interop marker of a third-party sender included, without ``to``) goes into the
  archive owned by the room's address, under a fresh random id. A message with a body, an OMEMO
  payload or a ``<store/>`` hint is kept, and a subject change (:func:`~interlink.xmpp.ext.mam.
  worth_archiving_in_room`); private messages between occupants never are.
- **Stanza id** (XEP-0359 §3): every broadcast copy carries ``<stanza-id by='room' id/>``.
  What a sender put in its message that only the room may write is removed first: a
  ``<stanza-id/>`` ``by`` one of this hub's addresses (§5), and a ``muc#user`` ``<x/>`` (XEP-0313
  "MUC message spoofing": a MUC archive strips it, since clients read the sender's address
  from it).
- **Who reads** (§5.1.2, "Data privacy"): at the time of the query, a members-only room's
  owners, admins and members (a pending invitation is not enough: nothing of a room reaches an
  invitee before they enter), an open room's non-outcasts; anyone else gets ``forbidden``.
  Someone removed from the member list reads nothing more.
- **What a reader sees.** The archived copy holds no real address. When the reader may see
  members' addresses (a non-anonymous room, or a moderator), each result carries the sender's
  bare address in ``<x xmlns='…muc#user'><item jid/></x>`` (§5.1.2), which is what OMEMO
  clients need to decrypt history of members who have left; and ``with`` then selects one
  member's messages (otherwise ``with`` is ``forbidden``). A reader who blocked a member gets
  none of that member's messages (they are skipped, still counted and paged over).

Writes, retention and the quota are the account archive's (:mod:`interlink.hub.archive`):
the same write-behind writer or durable-before-ack, ``archive.retention``, and
``archive.max_messages_per_room`` per room. A destroyed room's archive goes with it.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol
from xml.etree.ElementTree import Element

from interlink.errors import StanzaError, StanzaErrorCondition
from interlink.hub.groups.room import Effects, Room
from interlink.hub.session import Session
from interlink.storage.archive import ArchivedMessage, ArchiveEntry
from interlink.xmpp.ext import mam, muc
from interlink.xmpp.ext.muc import Affiliation
from interlink.xmpp.jid import JID
from interlink.xmpp.stanza import Iq, IqType, Message, iq_result, to_xml
from interlink.xmpp.xml import escape_attr

# A room's disco#info when it archives (XEP-0313 "Determining support", XEP-0359 §8).
FEATURES = (mam.NS, mam.EXTENDED, mam.SID)


class RoomArchive(Protocol):
    """The archive the rooms write to and read from (:class:`~interlink.hub.archive.
    ArchiveService` with ``rooms=True``)."""

    @property
    def enabled(self) -> bool: ...

    @property
    def page_max(self) -> int:
        """Messages one query returns at most; also the most ids one query may name."""
        ...

    def new_id(self) -> str: ...

    def write(
        self, entries: Sequence[ArchiveEntry], *, rooms: bool = False
    ) -> Coroutine[Any, Any, None] | None: ...

    async def caught_up(self) -> None: ...

    async def answer_query(
        self,
        session: Session,
        iq: Iq,
        query: mam.ArchiveQuery,
        owner: JID,
        *,
        rooms: bool = False,
        shown: Callable[[ArchivedMessage], str | None] | None = None,
        reply_from: JID | None = None,
    ) -> None: ...

    async def answer_metadata(
        self,
        session: Session,
        iq: Iq,
        owner: JID,
        *,
        rooms: bool = False,
        reply_from: JID | None = None,
    ) -> None: ...


@dataclass(frozen=True, slots=True)
class Reader:
    """What one reader of a room's archive may see, decided under the room's lock."""

    sees_addresses: bool
    blocked: Callable[[JID], bool]  # whether the reader blocked this member
    shown: Callable[[JID], JID]  # the address the room shows for a member (its alias)
    real: Callable[[JID], JID]  # the member behind an address the room shows


class RoomHistory:
    def __init__(self, archive: RoomArchive, ours: Callable[[str], bool]) -> None:
        self._archive = archive
        self._ours = ours  # whether a stanza-id's 'by' is an address of this hub

    @property
    def enabled(self) -> bool:
        return self._archive.enabled

    def cleaned(self, msg: Message) -> Message:
        """``msg`` without what only the room writes (see the module docstring)."""
        kept = tuple(
            el
            for el in msg.payload
            if el.tag != muc.USER_X
            and not (el.tag == mam.STANZA_ID and self._ours(el.get("by", "")))
        )
        return msg if len(kept) == len(msg.payload) else replace(msg, payload=kept)

    def stanza_id(self, room: JID, msg: Message) -> Element | None:
        """The ``<stanza-id/>`` the room's copies of ``msg`` carry (XEP-0359 §3), under a fresh
        archive id; ``None`` when ``msg`` is not worth archiving or archives are off."""
        if not self._archive.enabled or not mam.worth_archiving_in_room(msg):
            return None
        return Element(mam.STANZA_ID, {"by": str(room), "id": self._archive.new_id()})

    @staticmethod
    def entry(room: JID, sender: JID, fx: Effects, sid: Element, now: float) -> ArchiveEntry:
        """The archive entry of the message the room broadcast as ``fx.out`` with ``sid``: one
        copy without ``to`` and without the stanza-id (the result's id says it)."""
        first = fx.out[0]
        assert type(first) is Message
        payload = tuple(el for el in first.payload if el is not sid)
        kept = Message(None, first.from_, first.id, first.lang, payload, first.type)
        return ArchiveEntry(
            str(room),
            sid.get("id", ""),
            str(sender.bare),
            sender.resource or "",
            now,
            to_xml(kept, None),
        )

    async def keep(self, entry: ArchiveEntry) -> None:
        """Write ``entry`` (at once with ``durable_before_ack``, else queued)."""
        work = self._archive.write((entry,), rooms=True)
        if work is not None:
            await work

    async def destroyed(self) -> None:
        """Before a room's removal: what was queued for it is written first (and then removed
        with the room), so that a room made again under that name starts empty."""
        await self._archive.caught_up()

    @staticmethod
    def reader(
        room: Room,
        requester: JID,
        blocked: Callable[[JID], bool],
        *,
        shown: Callable[[JID], JID] = lambda jid: jid,
        real: Callable[[JID], JID] = lambda jid: jid,
    ) -> Reader:
        """Whether ``requester`` may read ``room``'s archive now, and what it sees; ``blocked``:
        members whose messages it does not get; ``shown``: the address the room shows for a
        member (a gatekeeper user's alias, never its phone number), ``real`` the reverse (a
        ``with`` filter names what the room shows).

        Raises:
            StanzaError: ``forbidden`` for an outcast, for anyone but a member (pending
                invitations excluded) of a members-only room.
        """
        affiliation = room.affiliation(requester)
        member = room.state.members.get(requester.bare)
        if affiliation is Affiliation.OUTCAST or (
            room.config.members_only
            and (
                affiliation.rank < Affiliation.MEMBER.rank
                or (member is not None and member.invited_by is not None)
            )
        ):
            raise StanzaError(
                StanzaErrorCondition.FORBIDDEN, "only the room's members read its history"
            )
        sees = room.config.non_anonymous or affiliation.rank >= Affiliation.ADMIN.rank
        return Reader(sees, blocked, shown, real)

    async def answer(self, session: Session, iq: Iq, room: JID, reader: Reader) -> None:
        """A query, form or metadata request to the room's archive (XEP-0313 §4, §7).

        Raises:
            StanzaError: ``feature-not-implemented`` when rooms keep no archive or for
                preferences (a room has none); ``forbidden`` for ``with`` where members'
                addresses are hidden from the reader; as :func:`~interlink.xmpp.ext.mam.
                parse_query` and the archive's queries say.
        """
        query = iq.query
        assert query is not None
        if not self._archive.enabled or query.tag == mam.PREFS:
            raise StanzaError(
                StanzaErrorCondition.FEATURE_NOT_IMPLEMENTED,
                "rooms keep no history here"
                if query.tag != mam.PREFS
                else "a room has no archiving preferences",
            )
        if query.tag == mam.METADATA:
            if iq.type is not IqType.GET:
                raise StanzaError(StanzaErrorCondition.BAD_REQUEST, "archive metadata is read-only")
            await self._archive.answer_metadata(session, iq, room, rooms=True, reply_from=room)
            return
        if iq.type is IqType.GET:
            session.deliver(iq_result(iq, mam.query_fields(), from_=room))
            return
        parsed = mam.parse_query(query, max_ids=self._archive.page_max)
        if parsed.with_ is not None and not reader.sees_addresses:
            raise StanzaError(
                StanzaErrorCondition.FORBIDDEN, "members' addresses are hidden in this room"
            )
        if parsed.with_ is not None:  # a member by the address the room shows (its alias)
            parsed = replace(parsed, with_=reader.real(parsed.with_))

        def shown(message: ArchivedMessage) -> str | None:
            if not message.peer:
                return message.stanza
            if reader.blocked(JID.parse(message.peer)):
                return None
            if not reader.sees_addresses:
                return message.stanza
            return with_publisher(message.stanza, str(reader.shown(JID.parse(message.peer))))

        await self._archive.answer_query(
            session, iq, parsed, room, rooms=True, shown=shown, reply_from=room
        )


def with_publisher(stanza: str, jid: str) -> str:
    """An archived room message with the sender's address (XEP-0313 §5.1.2), without
    serializing it again."""
    assert stanza.endswith("</message>")  # an archived message has content
    return f'{stanza[:-10]}<x xmlns="{muc.NS_USER}"><item jid="{escape_attr(jid)}"/></x></message>'


__all__ = ["FEATURES", "Reader", "RoomArchive", "RoomHistory", "with_publisher"]
