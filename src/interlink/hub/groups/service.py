"""The group service: XEP-0045 rooms on ``groups.<service>``, the asyncio shell around
:class:`~interlink.hub.groups.room.Room`.

For every stanza addressed to a group service or one of its rooms (the router hands them over,
:meth:`GroupService.handle`), the shell: refuses users of another service; loads the room (or
creates it, for a join, within ``rooms_per_user``); checks what only it can check (message size,
the room's and the sender's rates, and consent: an invitation or a new member across the
interop boundary is decided by the consent RULES as the ``invite`` row, refused exactly like a
message to a nonexistent account); calls the room under the room's lock; stores the durable
changes; and delivers what the room produced, dropping what goes to a user who blocked the room.

Across the boundary inside a room, consent decides again, per delivery: what a third-party
occupant and a gatekeeper occupant bring each other (messages, presence, list entries) is the
consent rules' ``room`` row (:meth:`InteropPolicy.in_room`); third parties are in a room only as
members (:class:`Room`'s ``outsiders``). No member sees a gatekeeper user's address (its phone
number): every room shows each of the service's own users under a per-room alias, to every
member alike (:mod:`interlink.hub.groups.aliases` says why), and answers what OMEMO asks of
that alias (PEP device lists and bundles, disco) for the co-members consent lets see that
member (:meth:`GroupService.alias_iq`).

Occupants are memory only. A session that ends leaves its rooms (:meth:`session_ended`).

Federated users (issue 18 with issue 15: a provider's own XMPP server, over s2s) are third
parties in every respect: the same consent decisions, the same marker, the same aliases. What
they send arrives through :class:`~interlink.hub.federation.Federation` (which names the hub's
users inside by account, or refuses a phone number) for a session that is not registered
among the hub's; what the room sends them leaves through ``Federation.deliver``, from the
room's address. A federated occupant leaves its rooms when the room cannot reach it: a stanza
its server bounced (an error from that session, or one the s2s link never sent), a stanza the
federation refused to send, or its provider's links closed (suspended: :meth:`provider_closed`);
nothing is kept for it. Its leaving is shown to exactly those occupants it was shown to when it
entered (once suspended, its provider is no longer located, so consent could not tell them).

In a cluster each room lives on one node, its *home*, chosen from the live nodes by rendezvous
hashing of the room's address (:func:`~interlink.hub.nodes.home_of`; every node that sees the
same live nodes picks the same one). A stanza for a room whose home is another node goes to that
node's inbox (``room``); the home handles it for a stand-in session whose writes go back to the
sender's node, and what the room sends to occupants on other nodes goes to their nodes' inboxes
in order (:class:`~interlink.hub.nodes.LiveWriter`). A session that ends tells the homes of the
rooms it joined (``gone``). When the live nodes change (:meth:`GroupService.nodes_changed`), a
node drops the rooms that are no longer its own, telling their occupants the room went away
(XEP-0045 §7.14, status 332) so that their clients enter again at the new home, and the rooms'
occupants whose node died leave them.

Room archives (XEP-0313): :class:`~interlink.hub.groups.history.RoomHistory` gets every
groupchat message the room accepted and broadcast (ciphertext, as the occupants got it, with the
room's stanza id), and answers queries to the room's address for those who may read them.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import replace
from functools import partial
from typing import Any
from xml.etree.ElementTree import Element

from interlink.errors import (
    RoomExistsError,
    StanzaError,
    StanzaErrorCondition,
    StorageError,
    StreamError,
)
from interlink.hub import disco
from interlink.hub.addressing import Kind
from interlink.hub.context import HubContext, KeyedLock
from interlink.hub.federation import Federation
from interlink.hub.groups.aliases import RoomAliases
from interlink.hub.groups.history import FEATURES as HISTORY_FEATURES
from interlink.hub.groups.history import RoomArchive, RoomHistory
from interlink.hub.groups.room import Effects, Member, Room, RoomState
from interlink.hub.groups.settings import GroupSettings
from interlink.hub.nodes import LiveWriter, home_of, send_to_node
from interlink.hub.offline import OfflineDelivery
from interlink.hub.pep import PUBSUB, PepService
from interlink.hub.policy.engine import InteropPolicy, refusal
from interlink.hub.policy.limits import BucketTable
from interlink.hub.session import Session
from interlink.storage.rooms import StoredMember, StoredRoom
from interlink.xmpp import ns
from interlink.xmpp.ext import interop, mam, muc
from interlink.xmpp.ext.interop import InteropSettings
from interlink.xmpp.ext.muc import Affiliation, RoomConfig
from interlink.xmpp.jid import JID
from interlink.xmpp.stanza import (
    Iq,
    IqType,
    Message,
    MessageType,
    Presence,
    PresenceType,
    Stanza,
    error_reply,
    iq_result,
    is_error_stanza,
    parse_stanza,
    to_xml,
)
from interlink.xmpp.xml import parse_fragment

log = logging.getLogger("interlink.groups")

DISCO_INFO = ns.qname(ns.DISCO_INFO, "query")
DISCO_ITEMS = ns.qname(ns.DISCO_ITEMS, "query")
PING = ns.qname(ns.PING, "ping")
_OURS = "{" + interop.NS + "}"
SERVICE_FEATURES = (ns.DISCO_INFO, ns.DISCO_ITEMS, ns.PING, muc.NS, muc.NS_CONFERENCE)


def _strip_markers(payload: Iterable[Element]) -> tuple[Element, ...]:
    """Only the hub writes interop markers: a sender's own are removed."""
    return tuple(el for el in payload if not el.tag.startswith(_OURS) or el.tag == interop.ACTIVITY)


class GroupService:
    def __init__(
        self,
        ctx: HubContext,
        settings: GroupSettings,
        policy: InteropPolicy,
        offline: OfflineDelivery,
        archive: RoomArchive,
        federation: Federation,
        pep: PepService,
    ) -> None:
        """``federation``: the way to federated occupants (over s2s), and the hub's alias key
        (the one federation uses, kept in the database so that a member's alias in a room
        never changes); ``pep``: the accounts' PEP service, for what members fetch of each
        other through an alias."""
        self._ctx = ctx
        self.settings = settings
        self._policy = policy
        self._offline = offline
        self._addressing = ctx.addressing
        self._federation = federation
        #: room -> federated occupant (bare) -> the sessions its presence was shown to
        self._shown_to: dict[JID, dict[JID, set[JID]]] = {}
        self._faces = RoomAliases(federation.aliases, ctx.addressing)
        self._pep = pep
        self._history = RoomHistory(archive, self._ours)
        self._repo = ctx.storage.rooms
        self._rooms: OrderedDict[JID, Room] = OrderedDict()
        self._locks = KeyedLock()
        self._labels: OrderedDict[JID, tuple[Element, ...]] = OrderedDict()  # LRU
        self._joined: dict[JID, set[JID]] = {}  # session -> rooms it is in
        self._room_rate = BucketTable(settings.room_rate, settings.rate_keys)
        self._sender_rate = BucketTable(settings.sender_rate, settings.rate_keys)
        # in a cluster: the live nodes, the node of each occupant session of another node (as
        # a room's home), the rooms on other nodes each session of this node joined
        cluster = ctx.cluster
        self._cluster = cluster if cluster.shared else None
        self._nodes: set[str] = {cluster.node_id}
        self._origin: dict[JID, str] = {}
        self._away: dict[JID, set[JID]] = {}
        self._writer: LiveWriter | None = (
            None if self._cluster is None else LiveWriter(cluster, ctx.settings.fanout_backlog)
        )

    # -- entry points ------------------------------------------------------------------------
    async def handle(self, session: Session, stanza: Stanza) -> None:
        """One stanza addressed to a group service or a room.

        Raises:
            StanzaError: the error to answer it with (XEP-0045's conditions).
        """
        if is_error_stanza(stanza):
            # errors are never answered; a federated occupant's server bouncing what the room
            # sent it means the room cannot reach that session: it leaves
            if (
                self._federation.federated(session.jid)
                and session.jid in self._joined
                and _bounced(stanza)
            ):
                self._unreachable(session.jid, "its server bounced a stanza of the room")
            return
        to = stanza.to
        assert to is not None
        where = self._addressing.locate_domain(to.domain)
        if where.kind is not Kind.GROUPS:
            raise StanzaError(StanzaErrorCondition.SERVICE_UNAVAILABLE)
        if self._addressing.service_of(session.jid) != where.service:
            raise StanzaError(
                StanzaErrorCondition.SERVICE_UNAVAILABLE,
                f"the rooms of {where.service} are for the users of {where.service}",
            )
        if to.local is None:
            await self._service_stanza(session, stanza, to)
            return
        room_jid = to.bare
        home = self._home(room_jid)
        if home is not None and await self._forward(session, stanza, room_jid, home):
            return
        await self._in_room(session, stanza, to, where.service or "")

    async def _in_room(self, session: Session, stanza: Stanza, to: JID, service: str) -> None:
        room_jid = to.bare
        if type(stanza) is Iq and to.resource is None and self._history_request(stanza):
            await self._history_query(session, stanza, room_jid)
            return
        async with self._locks.hold(room_jid):
            room = await self._room(room_jid)
            if room is None:
                room = await self._maybe_create(session, stanza, room_jid, service)
                if room is None:
                    return
            if type(stanza) is Presence:
                await self._presence(session, room, stanza, to)
            elif type(stanza) is Message:
                await self._message(session, room, stanza, to)
            else:
                assert isinstance(stanza, Iq)
                await self._iq(session, room, stanza, to)

    @staticmethod
    def _history_request(iq: Iq) -> bool:
        query = iq.query
        return iq.type.is_request and query is not None and query.tag in mam.QUERIES

    async def _history_query(self, session: Session, iq: Iq, room_jid: JID) -> None:
        """A query of the room's archive: who may read it is decided under the room's lock,
        the reading itself happens outside it (messages to the room go on meanwhile)."""
        async with self._locks.hold(room_jid):
            room = await self._room(room_jid)
            if room is None:
                raise StanzaError(StanzaErrorCondition.ITEM_NOT_FOUND, "no such room")
            blocks = self._policy.blocks
            requester = session.jid.bare
            # Across the boundary the history shows what the room would show live: nothing of a
            # gatekeeper member whom consent hides from this third party, and (for everyone)
            # gatekeeper members under their aliases.
            hidden: set[JID] = set()
            outsider = self._third_party(requester)
            if outsider:
                for member in room.member_jids():
                    if self._faces.hides(member) and not await self._crosses(member, requester):
                        hidden.add(member.bare)
            reader = self._history.reader(
                room,
                session.jid,
                lambda member: member.bare in hidden or blocks.keeps_out(requester, member),
                shown=partial(self._faces.shown, room_jid),
                real=partial(self._faces.real, room_jid),
            )
        await self._history.answer(session, iq, room_jid, reader)

    # -- aliases -----------------------------------------------------------------------------
    def is_alias(self, jid: JID) -> bool:
        """Whether ``jid`` is a room alias of one of the service's users (whatever the room)."""
        return self._faces.resolve(jid) is not None

    async def alias_iq(self, session: Session, iq: Iq) -> bool:
        """An iq to a room alias (:meth:`is_alias`): answered for the account behind it, from
        the alias, where the sender may see that member in that room: a member or occupant of
        the room (an invitation still pending is not enough: nothing of the room reaches an
        invitee before it enters), the alias's account a member of it (invited ones too: the
        members encrypt to them from the start), and the consent rules' ``room`` row between
        them (as for what the member says there). What is answered is what OMEMO needs: PEP
        items (device lists and bundles, of OMEMO 2 and legacy), disco#info and disco#items;
        nothing that would later come from the account's own address (no subscriptions).

        Returns whether it answered: ``False`` for anyone who may not see that member (the
        caller answers as for an address no account holds) and for what is not a request.

        Raises:
            StanzaError: ``feature-not-implemented`` for other pubsub actions;
                ``service-unavailable`` for other queries; as the PEP service says.
        """
        to = iq.to
        found = None if to is None else self._faces.resolve(to)
        if found is None or not iq.type.is_request:
            return False
        account, room_jid = found
        requester = session.jid.bare
        async with self._locks.hold(room_jid):
            room = await self._room(room_jid)
            if room is None or not (
                room.affiliation(account).rank >= Affiliation.MEMBER.rank
                and self._member_or_occupant(room, requester)
            ):
                return False
        blocks = self._policy.blocks
        if blocks.keeps_out(requester, account) or not await self._crosses(account, requester):
            return False
        query = iq.query
        assert query is not None
        get = iq.type is IqType.GET
        if query.tag == PUBSUB:
            actions = [child.tag for child in query]
            if not get or actions != [ns.qname(ns.PUBSUB, "items")]:
                raise StanzaError(
                    StanzaErrorCondition.FEATURE_NOT_IMPLEMENTED,
                    "a room alias answers item retrieval only",
                )
            await self._pep.handle_iq(session, iq, account)  # answered from iq.to: the alias
            return True
        if query.tag == DISCO_INFO and get:
            self._answer(session, iq, disco.account_query(iq))
            return True
        if query.tag == DISCO_ITEMS and get:
            if query.get("node"):
                raise StanzaError(StanzaErrorCondition.ITEM_NOT_FOUND, "no such node")
            nodes = await self._pep.node_items_for_disco(requester, account)
            assert to is not None
            self._answer(session, iq, disco.node_items(to.bare, nodes))
            return True
        raise StanzaError(StanzaErrorCondition.SERVICE_UNAVAILABLE)

    @staticmethod
    def _member_or_occupant(room: Room, real: JID) -> bool:
        member = room.state.members.get(real)
        if (
            member is not None
            and member.affiliation.rank >= Affiliation.MEMBER.rank
            and member.invited_by is None
        ):
            return True
        return any(o.real == real for o in room.occupants.values())

    def _ours(self, by: str) -> bool:
        """Whether a stanza-id's ``by`` names an address of this hub (XEP-0359 §5)."""
        domain = by.rpartition("@")[2].partition("/")[0].lower()
        return self._addressing.serves(domain) or self._addressing.under_service(domain)

    def session_ended(self, session: Session) -> None:
        """``session`` is gone, or went unavailable: it leaves every room it was in (in the
        background), here and at the rooms' homes on other nodes."""
        self._leave(session.jid)

    def _leave(self, full: JID) -> None:
        rooms = self._joined.pop(full, None)
        if rooms:
            self._ctx.spawn(self._leave_all(full, rooms), name=f"leave rooms {full}")
        away = self._away.pop(full, None)
        if away and self._cluster is not None:
            self._ctx.spawn(self._gone(full, away), name=f"leave rooms {full}")

    # -- in a cluster: each room on its home node --------------------------------------------
    def _home(self, room_jid: JID) -> str | None:
        """The node the room lives on, if not this one."""
        if self._cluster is None:
            return None
        home = home_of(str(room_jid), self._nodes)
        return None if home == self._cluster.node_id else home

    async def _forward(self, session: Session, stanza: Stanza, room_jid: JID, home: str) -> bool:
        """Hand a stanza for a room to its home node; whether that node took it (one whose
        lease ran out did not: the room is served here until the live nodes are read again)."""
        assert self._cluster is not None
        body = {
            "from": str(session.jid),
            "node": self._cluster.node_id,
            "xml": to_xml(stanza, None),
        }
        if not await send_to_node(self._cluster, home, "room", body):
            return False
        if type(stanza) is Presence:
            self._away.setdefault(session.jid, set()).add(room_jid)
        return True

    async def _gone(self, full: JID, rooms: set[JID]) -> None:
        assert self._cluster is not None
        for home in sorted({h for r in rooms if (h := self._home(r)) is not None}):
            await send_to_node(
                self._cluster, home, "room", {"gone": str(full), "node": self._cluster.node_id}
            )

    async def from_node(self, body: Mapping[str, Any]) -> None:
        """A stanza for a room of this node from a session of another (``{"from", "node",
        "xml"}``), or a session there that ended (``{"gone", "node"}``)."""
        if "gone" in body:
            full = JID.parse(str(body["gone"]))
            self._origin.pop(full, None)
            rooms = self._joined.pop(full, None)
            if rooms:
                await self._leave_all(full, rooms)
            return
        full = JID.parse(str(body["from"]))
        node = str(body["node"])
        stanza = replace(parse_stanza(parse_fragment(str(body["xml"]))), from_=full)
        to = stanza.to
        assert to is not None
        assert self._writer is not None
        if self._federation.federated(full):
            # a federated user's stanza that came in over another node's s2s link: the answers
            # leave over this node's own (as the room's traffic to it does, :meth:`_write`)
            session = Session(full, _OverS2S(self))
        else:
            session = Session(full, _NodePort(self._writer, node, full))
        self._origin[full] = node
        try:
            await self._in_room(session, stanza, to, self._addressing.locate(to).service or "")
        except StanzaError as err:
            if not is_error_stanza(stanza):
                session.deliver(error_reply(stanza, err, from_=to))
        finally:
            if full not in self._joined:
                self._origin.pop(full, None)

    def nodes_changed(self, live: set[str]) -> None:
        """The live nodes are now ``live`` (read at each lease renewal): rooms whose home moved
        are dropped here (their occupants told to enter again), and occupants of nodes that
        died leave their rooms."""
        if self._cluster is None:
            return
        live = live | {self._cluster.node_id}
        if live == self._nodes:
            return
        dead = self._nodes - live
        self._nodes = live
        for room in list(self._rooms.values()):
            if self._home(room.jid) is not None and not room.is_empty():
                self._ctx.spawn(self._moved(room.jid), name=f"room moved {room.jid}")
            elif self._home(room.jid) is not None:
                self._rooms.pop(room.jid, None)
        gone = [full for full, node in self._origin.items() if node in dead]
        for full in gone:
            self._origin.pop(full, None)
            rooms = self._joined.pop(full, None)
            if rooms:
                self._ctx.spawn(self._leave_all(full, rooms), name=f"leave rooms {full}")

    async def _moved(self, room_jid: JID) -> None:
        async with self._locks.hold(room_jid):
            room = self._rooms.get(room_jid)
            if room is not None and self._home(room_jid) is not None:
                self._drop(room, "the room moved to another node")

    @property
    def live_dropped(self) -> int:
        """Room stanzas for sessions on other nodes dropped: ``fanout_backlog`` was full."""
        return 0 if self._writer is None else self._writer.dropped

    async def flush(self) -> None:
        """Wait until what the rooms here sent to other nodes was handed over."""
        if self._writer is not None:
            await self._writer.flush()

    async def close(self) -> None:
        if self._writer is not None:
            await self._writer.close()

    def _write(self, to: JID, stanza: Stanza) -> None:
        """``stanza`` for the occupant session ``to``, here or on its node, or over s2s."""
        target = self._ctx.sessions.get(to)
        if target is not None:
            target.deliver(stanza)
            return
        if self._federation.federated(to):
            self._to_federated(stanza, leave=True)
            return
        node = self._origin.get(to)
        if node is not None and self._writer is not None:
            self._writer.write(node, to, to_xml(stanza, None))

    # -- federated occupants ------------------------------------------------------------------
    def _to_federated(self, stanza: Stanza, *, leave: bool) -> None:
        """Send ``stanza`` over s2s; when it cannot be (no link, too much waiting for that
        server, or it would show an address it must not), an occupant session it was for
        (``leave``) leaves its rooms: nothing is kept for it."""
        try:
            self._federation.deliver(stanza)
        except StanzaError as err:
            to = stanza.to
            assert to is not None
            log.info(
                "a room's stanza was not sent over s2s",
                extra={"to_domain": to.domain, "condition": str(err.condition)},
            )
            if leave and not is_error_stanza(stanza):
                self._unreachable(to, f"not sent over s2s ({err.condition})")

    def _unreachable(self, full: JID, why: str) -> None:
        """The federated occupant session ``full`` cannot be reached: it leaves every room."""
        if full in self._joined:
            log.info("a federated occupant left its rooms", extra={"why": why})
            self._leave(full)

    def stanza_unsent(self, stanza: Stanza) -> None:
        """A stanza of a room that its s2s link never sent (``RoomEvents.unsent``)."""
        to = stanza.to
        if to is not None and to.resource is not None:
            self._unreachable(to, "its server could not be reached")

    def provider_closed(self, provider_id: str) -> None:
        """``provider_id``'s s2s links were closed (suspended, removed, no longer federated):
        its users' sessions leave every room at once (the other occupants see them leave;
        nothing is sent or kept for them)."""
        owner = self._addressing.providers.server_domain_owner
        for full in [j for j in self._joined if owner(j.domain) == provider_id]:
            self._unreachable(full, f"the provider {provider_id}'s links were closed")

    def _federated_author(self, room: Room, author: JID) -> bool:
        """Whether ``author`` (bare) is a federated occupant whose presence is being tracked
        (see :meth:`_seen`)."""
        return author in self._shown_to.get(room.jid, {})

    def _seen(self, room: Room, stanza: Stanza, author: JID) -> bool | None:
        """For a federated occupant's presence: an available one is remembered for the
        recipient it reaches (``None``: decide as usual); an unavailable one reaches exactly
        the sessions that saw it enter."""
        if not isinstance(stanza, Presence) or stanza.from_ is None or not stanza.from_.resource:
            return None
        to = stanza.to
        assert to is not None
        if stanza.type is PresenceType.UNAVAILABLE:
            seen = self._shown_to.get(room.jid, {}).get(author)
            return None if seen is None else to in seen
        if stanza.type is PresenceType.AVAILABLE and (
            self._federation.federated(author) or self._federated_author(room, author)
        ):
            self._shown_to.setdefault(room.jid, {}).setdefault(author, set())
        return None

    def _forget_gone(self, room: Room) -> None:
        """Drop what is remembered of federated occupants no longer in ``room``, and of the
        sessions they were shown to that left it (one that comes back is shown them again)."""
        shown = self._shown_to.get(room.jid)
        if not shown:
            return
        present = {o.real for o in room.occupants.values()}
        sessions = {s for o in room.occupants.values() for s in o.sessions}
        for author in list(shown):
            if author in present:
                shown[author] &= sessions
            else:
                del shown[author]
        if not shown:
            del self._shown_to[room.jid]

    async def _leave_all(self, full: JID, rooms: set[JID]) -> None:
        gone = Presence(None, full, None, None, (), PresenceType.UNAVAILABLE)
        for room_jid in rooms:
            async with self._locks.hold(room_jid):
                room = self._rooms.get(room_jid)
                occupant = None if room is None else room.occupant_of(full)
                if room is None or occupant is None:
                    continue
                fx = room.presence(
                    full, room_jid.with_resource(occupant.nick), gone, self._ctx.clock()
                )
                await self._apply(room, fx)

    def forget_account(self, jid: JID) -> None:
        """``jid``'s account was removed (its affiliations went with it in storage): the rooms
        in memory drop it too, and tell their occupants."""
        self._labels.pop(jid.bare, None)
        rooms = [r.jid for r in self._rooms.values() if jid.bare in r.state.members]
        if rooms:
            self._ctx.spawn(self._forget(jid.bare, rooms), name=f"forget {jid} in rooms")

    async def _forget(self, jid: JID, rooms: list[JID]) -> None:
        for room_jid in rooms:
            async with self._locks.hold(room_jid):
                room = self._rooms.get(room_jid)
                if room is not None:
                    await self._apply(room, room.forget(jid))

    def server_items(self, service_domain: str, items: Element) -> None:
        """Add the group service to a service's disco#items (XEP-0045 §6.1)."""
        domain = self._addressing.groups_domain(service_domain)
        if domain is not None:
            items.append(
                Element(ns.qname(ns.DISCO_ITEMS, "item"), {"jid": domain, "name": "Groups"})
            )

    # -- rooms in memory ---------------------------------------------------------------------
    async def _room(self, jid: JID) -> Room | None:
        room = self._rooms.get(jid)
        if room is not None:
            self._rooms.move_to_end(jid)
            return room
        stored = await self._repo.get(str(jid))
        if stored is None:
            return None
        record, members = stored
        state = RoomState(
            jid,
            record.config,
            {
                JID.parse(m.jid): Member(
                    m.affiliation, None if m.invited_by is None else JID.parse(m.invited_by)
                )
                for m in members
            },
            record.subject,
            record.subject_by,
            record.created,
        )
        room = Room(
            state,
            self.settings.room,
            labels=self._label,
            logged=self._history.enabled,
            outsiders=self._third_party,
            shown=partial(self._faces.shown, jid),
        )
        heir = room.ensure_owner()  # its owner's account was removed while it was not loaded
        if heir.members or heir.destroyed:
            await self._apply(room, heir)
            if heir.destroyed:
                return None
        await self._learn(room.member_jids())
        self._keep(room)
        return room

    def _keep(self, room: Room) -> None:
        self._rooms[room.jid] = room
        if len(self._rooms) > self.settings.rooms_cached:
            for jid, cached in list(self._rooms.items()):
                if cached.is_empty() and not cached.locked:
                    del self._rooms[jid]
                    break

    def _third_party(self, real: JID) -> bool:
        return self._addressing.provider_of(real) is not None

    def _label(self, real: JID) -> Iterable[Element]:
        bare = real.bare
        label = self._labels.get(bare)
        if label is None:
            return ()
        self._labels.move_to_end(bare)
        return label

    async def _learn(self, jids: Iterable[JID]) -> None:
        """Compute the interop marker shown with each third-party address."""
        for jid in jids:
            bare = jid.bare
            if bare in self._labels:
                self._labels.move_to_end(bare)
                continue
            provider = self._addressing.provider_of(bare)
            if provider is None:
                continue
            marker = await self._policy.marker(bare, provider, InteropSettings(), request=False)
            self._labels[bare] = (marker,)
            while len(self._labels) > self.settings.labels_cached:
                self._labels.popitem(last=False)  # the least recently used

    async def _maybe_create(
        self, session: Session, stanza: Stanza, jid: JID, service: str
    ) -> Room | None:
        """A join to a room that does not exist creates it (§10.1.1); anything else to it is
        ``item-not-found``."""
        if type(stanza) is not Presence or not stanza.to or not stanza.to.resource:
            if type(stanza) is Presence and stanza.type is PresenceType.UNAVAILABLE:
                return None
            raise StanzaError(StanzaErrorCondition.ITEM_NOT_FOUND, "no such room")
        if stanza.type is not PresenceType.AVAILABLE:
            return None
        if jid.local is not None and len(jid.local.encode()) > self.settings.max_room_name_bytes:
            raise StanzaError(
                StanzaErrorCondition.NOT_ACCEPTABLE,
                f"a room's name has at most {self.settings.max_room_name_bytes} bytes",
            )
        owner = session.jid.bare
        limits = self.settings.room
        config = RoomConfig(max_occupants=min(RoomConfig().max_occupants, limits.max_occupants))
        now = self._ctx.clock()
        record = StoredRoom(str(jid), service, config, "", "", now)
        try:
            created = await self._repo.create(
                record, str(owner), max_owned=self.settings.rooms_per_user
            )
        except RoomExistsError:  # made meanwhile by another process
            raise StanzaError(StanzaErrorCondition.CONFLICT, "the room was just created") from None
        if not created:
            raise StanzaError(
                StanzaErrorCondition.RESOURCE_CONSTRAINT,
                f"you own the most rooms allowed ({self.settings.rooms_per_user})",
            )
        room = Room.create(
            jid,
            owner,
            config,
            limits,
            now,
            labels=self._label,
            logged=self._history.enabled,
            outsiders=self._third_party,
            shown=partial(self._faces.shown, jid),
        )
        await self._learn((owner,))
        self._keep(room)
        log.info("room created", extra={"room": str(jid), "owner": str(owner)})
        return room

    # -- presence ----------------------------------------------------------------------------
    async def _presence(self, session: Session, room: Room, presence: Presence, to: JID) -> None:
        if presence.type is PresenceType.AVAILABLE:
            await self._learn((session.jid, *(o.real for o in room.occupants.values())))
            presence = replace(presence, payload=_strip_markers(presence.payload))
        fx = room.presence(session.jid, to, presence, self._ctx.clock())
        joined = room.occupant_of(session.jid) is not None
        rooms = self._joined.setdefault(session.jid, set())
        if joined:
            rooms.add(room.jid)
        else:
            rooms.discard(room.jid)
            if not rooms:
                self._joined.pop(session.jid, None)
        await self._apply(room, fx)

    # -- messages ----------------------------------------------------------------------------
    async def _message(self, session: Session, room: Room, msg: Message, to: JID) -> None:
        sender = session.jid
        now = self._ctx.clock()
        x = msg.find(muc.USER_X)
        if to.resource is None and x is not None and msg.type is not MessageType.GROUPCHAT:
            invitations = muc.read_invitations(x)
            if invitations:
                for invitation in invitations:
                    await self._invitation(session, room, invitation, now)
                return
        if to.resource is None and msg.type is not MessageType.GROUPCHAT:
            raise StanzaError(
                StanzaErrorCondition.BAD_REQUEST, "send groupchat messages to the room"
            )
        size = len(to_xml(msg, None).encode())
        if size > self.settings.max_message_bytes:
            raise StanzaError(
                StanzaErrorCondition.POLICY_VIOLATION,
                f"a message to a room holds at most {self.settings.max_message_bytes} bytes",
            )
        if room.occupant_of(sender) is None:
            raise StanzaError(
                StanzaErrorCondition.NOT_ACCEPTABLE, "only occupants write to the room"
            )
        self._rate(room.jid, sender.bare, now)
        await self._learn((sender,))  # its marker may have left the cache
        msg = replace(msg, payload=_strip_markers(msg.payload))
        if to.resource is None:
            msg = self._history.cleaned(msg)
            sid = self._history.stanza_id(room.jid, msg)
            fx = room.groupchat(sender, msg, now, () if sid is None else (sid,))
            entry = None if sid is None else self._history.entry(room.jid, sender, fx, sid, now)
            await self._apply(room, fx)
            if entry is not None:  # archived once delivered, as 1:1 messages are
                await self._history.keep(entry)
            return
        target = room.occupants.get(to.resource)
        if target is not None and not await self._crosses(sender, target.real):
            # Exactly what no such occupant gets: whom consent hides is not there.
            raise StanzaError(StanzaErrorCondition.ITEM_NOT_FOUND, "no such occupant")
        fx = room.private_message(sender, to.resource, msg)  # never archived (§5.1.2)
        await self._apply(room, fx)

    async def _crosses(self, author: JID, recipient: JID) -> bool:
        """Whether consent lets what ``author`` says or shows in a room reach ``recipient``
        (both bare): the ``room`` rows of the consent rules between a third party and a
        gatekeeper user; always otherwise (blocks between a service's own users apply to
        messages only, in :meth:`_deliver`)."""
        author, recipient = author.bare, recipient.bare
        if author == recipient or self._third_party(author) == self._third_party(recipient):
            return True
        return await self._policy.in_room(author, recipient)

    def _rate(self, room: JID, sender: JID, now: float) -> None:
        room_wait = self._room_rate.peek(str(room), now)
        sender_wait = self._sender_rate.peek(str(sender), now)
        if room_wait or sender_wait:
            which = "this room" if room_wait else "you"
            rate = self.settings.room_rate if room_wait else self.settings.sender_rate
            self._ctx.refusals["groups-rate"] += 1
            raise StanzaError(
                StanzaErrorCondition.POLICY_VIOLATION,
                f"rate limit: {which} may send at most {rate.count} messages per "
                f"{rate.period:g} s to rooms; try again later",
            )
        self._room_rate.take(str(room), now)
        self._sender_rate.take(str(sender), now)

    async def _invitation(
        self, session: Session, room: Room, invitation: muc.Invitation, now: float
    ) -> None:
        if invitation.decline:
            await self._apply(room, room.decline(session.jid, invitation))
            return
        room.may_invite(session.jid)
        assert invitation.to is not None  # read_invitations refuses an invitation without one
        invitee = self._faces.real(room.jid, invitation.to)  # a member again, by its alias
        invitation = replace(invitation, to=invitee)
        if self._policy.blocks.blocks(invitee, room.jid):
            raise refusal()  # the invitee blocked the room: as if there were nobody
        extra = await self._consent(session.jid, invitee)
        await self._learn((invitee,))
        fx = room.invite(session.jid, invitation, now)
        fx.out = [
            replace(s, payload=(*s.payload, *extra)) if s.to == invitee else s for s in fx.out
        ]
        await self._apply(room, fx)

    async def _consent(self, actor: JID, target: JID) -> tuple[Element, ...]:
        """Whether ``actor`` may invite ``target`` or make them a member: what the invitation
        carries (the marker of a request from a third party).

        Raises:
            StanzaError: ``remote-server-not-found`` for an address not hosted here nor
                on an approved federated provider's server, ``bad-request`` for a room;
                otherwise the consent refusal (a federated user is a third party like any
                other), the generic one for
                every address that cannot be reached (no account, not opted in, blocked).
        """
        addressing = self._addressing
        where = addressing.locate(target)
        if where.kind is Kind.REMOTE:
            raise StanzaError(
                StanzaErrorCondition.REMOTE_SERVER_NOT_FOUND,
                "this hub federates only with onboarded providers' servers",
            )
        if where.kind is Kind.GROUPS:
            raise StanzaError(StanzaErrorCondition.BAD_REQUEST, "a room is not a member")
        actor, target = actor.bare, target.bare
        if actor == target:
            return ()
        policy = self._policy
        if addressing.provider_of(actor) is None and addressing.provider_of(target) is None:
            # Between a service's own users: blocks, the service, and the account's existence.
            blocks = policy.blocks
            if blocks.blocks(actor, target):
                raise blocks.blocked_error()
            reach = await policy.reach(target)
            if not (
                reach.exists
                and addressing.same_service(actor, target)
                and not blocks.keeps_out(target, actor)
            ):
                raise refusal()
            return ()
        return await policy.invitation(actor, target, ())

    # -- iq ----------------------------------------------------------------------------------
    async def _iq(self, session: Session, room: Room, iq: Iq, to: JID) -> None:
        if not iq.type.is_request:
            return
        query = iq.query
        assert query is not None
        sender = session.jid
        if to.resource is not None:
            if query.tag == PING:
                session.deliver(room.self_ping(sender, to.resource, iq))
                return
            room.occupant_iq(sender, to.resource, iq)
            return
        now = self._ctx.clock()
        get = iq.type is IqType.GET
        if query.tag == muc.ADMIN_QUERY:
            if get:
                listing = room.admin_get(sender, query)
                await self._conceal_list(room, sender, listing)
                self._answer(session, iq, listing)
                return
            real = partial(self._faces.real, room.jid)  # members named as the room shows them
            items = [
                item if item.jid is None else replace(item, jid=real(item.jid))
                for item in muc.read_admin_items(query)
            ]
            for item in items:
                if (
                    item.jid is not None
                    and item.affiliation is not None
                    and item.affiliation.rank >= Affiliation.MEMBER.rank
                    and room.affiliation(item.jid).rank < Affiliation.MEMBER.rank
                ):
                    await self._consent(sender, item.jid)
            await self._learn(i.jid for i in items if i.jid is not None)
            fx = room.admin_set(sender, items)
            await self._apply(room, fx)
            self._answer(session, iq, None)
            return
        if query.tag == muc.OWNER_QUERY:
            if get:
                self._answer(session, iq, room.owner_get(sender))
                return
            fx = room.owner_set(sender, query, now)
            await self._apply(room, fx)
            self._answer(session, iq, None)
            return
        if query.tag == DISCO_INFO and get:
            self._answer(session, iq, self._room_info(room, sender, query))
            return
        if query.tag == DISCO_ITEMS and get:
            self._visible(room, sender)
            if query.get("node"):
                raise StanzaError(StanzaErrorCondition.ITEM_NOT_FOUND, "no such node")
            self._answer(session, iq, Element(DISCO_ITEMS))  # occupants are not listed
            return
        if query.tag == PING and get:
            self._answer(session, iq, None)
            return
        raise StanzaError(StanzaErrorCondition.SERVICE_UNAVAILABLE)

    def _visible(self, room: Room, requester: JID) -> None:
        """A hidden room is seen only by its members and occupants (else ``item-not-found``,
        as for no room: the room's name is no oracle)."""
        if room.config.public or room.locked:
            if room.locked and room.affiliation(requester) is not Affiliation.OWNER:
                raise StanzaError(StanzaErrorCondition.ITEM_NOT_FOUND, "no such room")
            return
        if (
            room.affiliation(requester).rank < Affiliation.MEMBER.rank
            and room.occupant_of(requester) is None
        ):
            raise StanzaError(StanzaErrorCondition.ITEM_NOT_FOUND, "no such room")

    def _room_info(self, room: Room, requester: JID, query: Element) -> Element:
        self._visible(room, requester)
        if query.get("node"):
            raise StanzaError(StanzaErrorCondition.ITEM_NOT_FOUND, "no such node")
        result = Element(DISCO_INFO)
        identity = {"category": "conference", "type": "text"}
        if room.config.name:
            identity["name"] = room.config.name
        result.append(Element(ns.qname(ns.DISCO_INFO, "identity"), identity))
        history = HISTORY_FEATURES if self._history.enabled else ()
        for feature in (
            ns.DISCO_INFO,
            ns.DISCO_ITEMS,
            *muc.room_features(room.config),
            *history,
        ):
            result.append(Element(ns.qname(ns.DISCO_INFO, "feature"), {"var": feature}))
        form = Element("{jabber:x:data}x", {"type": "result"})
        for var, value in (
            ("FORM_TYPE", muc.NS_ROOMINFO),
            ("muc#roominfo_description", room.config.description),
            ("muc#roominfo_occupants", str(len(room.occupants))),
        ):
            f = Element("{jabber:x:data}field", {"var": var})
            v = Element("{jabber:x:data}value")
            v.text = value
            f.append(v)
            form.append(f)
        result.append(form)
        return result

    async def _service_stanza(self, session: Session, stanza: Stanza, to: JID) -> None:
        """The group service's own address (XEP-0045 §6.2, §6.3)."""
        if type(stanza) is not Iq:
            if type(stanza) is Presence:
                return
            raise StanzaError(StanzaErrorCondition.SERVICE_UNAVAILABLE)
        iq = stanza
        if not iq.type.is_request or to.resource is not None:
            if iq.type.is_request:
                raise StanzaError(StanzaErrorCondition.SERVICE_UNAVAILABLE)
            return
        query = iq.query
        assert query is not None
        if iq.type is IqType.GET and query.tag == DISCO_INFO:
            if query.get("node"):
                raise StanzaError(StanzaErrorCondition.ITEM_NOT_FOUND, "no such node")
            result = Element(DISCO_INFO)
            result.append(
                Element(
                    ns.qname(ns.DISCO_INFO, "identity"),
                    {"category": "conference", "type": "text", "name": "Groups"},
                )
            )
            for feature in SERVICE_FEATURES:
                result.append(Element(ns.qname(ns.DISCO_INFO, "feature"), {"var": feature}))
            self._answer(session, iq, result)
            return
        if iq.type is IqType.GET and query.tag == DISCO_ITEMS:
            if query.get("node"):
                raise StanzaError(StanzaErrorCondition.ITEM_NOT_FOUND, "no such node")
            result = Element(DISCO_ITEMS)
            service = self._addressing.locate(to).service or ""
            for jid, name in await self._repo.public(service):
                attrs = {"jid": jid}
                if name:
                    attrs["name"] = name
                result.append(Element(ns.qname(ns.DISCO_ITEMS, "item"), attrs))
            self._answer(session, iq, result)
            return
        if iq.type is IqType.GET and query.tag == PING:
            self._answer(session, iq, None)
            return
        raise StanzaError(StanzaErrorCondition.SERVICE_UNAVAILABLE)

    def _answer(self, session: Session, iq: Iq, payload: Element | None) -> None:
        if payload is None:
            session.deliver(iq_result(iq, from_=iq.to))
        else:
            session.deliver(iq_result(iq, payload, from_=iq.to))

    # -- applying effects --------------------------------------------------------------------
    async def _apply(self, room: Room, fx: Effects) -> None:
        """Store what changed, then deliver (acknowledged only once durable). When storing
        fails, the room is dropped from memory (read again from the database when next
        needed, its occupants told they left) so that memory never runs ahead of the disk;
        nothing is delivered and the sender gets ``internal-server-error``.

        Raises:
            StanzaError: ``internal-server-error`` when storing failed.
        """
        try:
            await self._store(room, fx)
        except StorageError as exc:
            self._drop(room)
            raise StanzaError(
                StanzaErrorCondition.INTERNAL_SERVER_ERROR,
                "the room could not be stored; try again",
            ) from exc
        for stanza in fx.out:
            await self._deliver(room, stanza)
        self._forget_gone(room)

    def _drop(self, room: Room, why: str = "storing it failed") -> None:
        jid = room.jid
        if self._rooms.get(jid) is room:
            del self._rooms[jid]
        self._shown_to.pop(jid, None)
        for occupant in list(room.occupants.values()):
            for session in occupant.sessions:
                rooms = self._joined.get(session)
                if rooms is not None:
                    rooms.discard(jid)
                    if not rooms:
                        del self._joined[session]
                # §7.14 with 332: the service lost it
                self._write(session, room.shutdown_presence(occupant, session))
                if session not in self._joined:
                    self._origin.pop(session, None)
        log.warning("room dropped from memory", extra={"room": str(jid), "why": why})

    async def _store(self, room: Room, fx: Effects) -> None:
        jid = room.jid
        if fx.destroyed:
            await self._history.destroyed()
            await self._repo.delete(str(jid))  # its archive with it
            self._rooms.pop(jid, None)
            for rooms in self._joined.values():
                rooms.discard(jid)
            log.info("room destroyed", extra={"room": str(jid)})
        else:
            if fx.members:
                await self._repo.set_members(
                    str(jid),
                    {
                        str(member_jid): None
                        if member is None
                        else StoredMember(
                            str(member_jid),
                            member.affiliation,
                            None if member.invited_by is None else str(member.invited_by),
                        )
                        for member_jid, member in fx.members.items()
                    },
                )
            if fx.saved:
                state = room.state
                await self._repo.save(
                    StoredRoom(
                        str(jid),
                        self._addressing.locate(jid).service or "",
                        state.config,
                        state.subject,
                        state.subject_by,
                        state.created,
                    )
                )

    async def _deliver(self, room: Room, stanza: Stanza) -> None:
        to = stanza.to
        assert to is not None
        blocks = self._policy.blocks
        if blocks.blocks(to.bare, room.jid):
            return  # the user blocked the room (XEP-0191): nothing of it reaches them
        author = self._author(room, stanza)
        if (
            isinstance(stanza, Message)
            and stanza.from_ is not None
            and stanza.from_.resource
            and author is not None
            and blocks.keeps_out(to.bare, author)  # by address, or by an alias of any room
        ):
            return  # what a member they blocked writes does not reach them
        seen = None if author is None else self._seen(room, stanza, author)
        if seen is False:
            return  # a federated occupant leaving: not shown to whom it was never shown
        if (
            seen is None
            and author is not None
            and not _removal_notice(stanza)
            and not await self._crosses(author, to.bare)
        ):
            if not (isinstance(stanza, Message) and _is_subject(stanza)):
                return  # consent hides the author from the recipient
            stanza = replace(stanza, from_=room.jid)  # the subject still ends the join
        if (
            author is not None
            and isinstance(stanza, Presence)
            and stanza.type is PresenceType.AVAILABLE
            and self._federated_author(room, author)
        ):
            self._shown_to[room.jid][author].add(to)
        if to.resource is not None:  # to an occupant's session
            self._write(to, stanza)
            return  # a session that is gone leaves its rooms through session_ended
        if isinstance(stanza, Message) and self._federation.federated(to):
            self._to_federated(stanza, leave=False)  # an invitation or a decline, over s2s
            return
        if isinstance(stanza, Message):  # an invitation or a decline, to an account
            try:
                await self._offline.accept(stanza, to_xml(stanza, None), to.bare)
            except StanzaError as err:
                log.info(
                    "room message not delivered",
                    extra={"room": str(room.jid), "to": str(to), "condition": str(err.condition)},
                )

    def _author(self, room: Room, stanza: Stanza) -> JID | None:
        """Whom a stanza from the room is about (bare): the occupant it comes from, else the
        address its ``muc#user`` item names (an occupant gone, an affiliation changed)."""
        frm = stanza.from_
        if frm is not None and frm.resource:
            occupant = room.occupants.get(frm.resource)
            if occupant is not None:
                return occupant.real
        x = stanza.find(muc.USER_X)
        item = None if x is None else x.find(muc.ITEM)
        raw = None if item is None else item.get("jid")
        return None if not raw else self._faces.real(room.jid, JID.parse(raw))

    async def _conceal_list(self, room: Room, requester: JID, listing: Element) -> None:
        """A list as ``requester`` may read it: without the members across the boundary
        that consent hides from it (the ``room`` rows)."""
        for item in list(listing):
            raw = item.get("jid")
            if not raw:
                continue
            member = self._faces.real(room.jid, JID.parse(raw))
            if not await self._crosses(member, requester):
                listing.remove(item)  # consent hides them


class _NodePort:
    """The connection of a stand-in session for a session of another node: what is written
    to it goes to that node's inbox, in order."""

    def __init__(self, writer: LiveWriter, node: str, full: JID) -> None:
        self._writer = writer
        self._node = node
        self._full = full

    def write_xml(self, xml: str) -> None:
        self._writer.write(self._node, self._full, xml)

    async def wait_writable(self) -> None:
        return None

    def terminate(self, error: StreamError | None) -> None:
        return None  # the session's own node ends it


# RFC 6120 §8.3.3: what a server answers for a session or a server that cannot be reached
_GONE = frozenset(
    {
        "gone",
        "item-not-found",
        "recipient-unavailable",
        "redirect",
        "remote-server-not-found",
        "remote-server-timeout",
        "service-unavailable",
    }
)
_ERROR = "{jabber:client}error"


def _bounced(stanza: Stanza) -> bool:
    """Whether an error from an occupant says that the room's message or presence did not
    reach it (RFC 6120 §8.3.3: the session is gone, or its server is unreachable), as
    opposed to its client refusing something it got (which does not make it leave)."""
    if isinstance(stanza, Iq):
        return False
    error = stanza.find(_ERROR)
    if error is None:
        return False
    return any(child.tag.rpartition("}")[2] in _GONE for child in error)


class _OverS2S:
    """The connection of a stand-in session for a federated user whose stanza for a room of
    this node came through another node: what is written to it leaves over s2s from here."""

    def __init__(self, service: GroupService) -> None:
        self._service = service

    def write_xml(self, xml: str) -> None:
        self._service._to_federated(parse_stanza(parse_fragment(xml)), leave=False)

    async def wait_writable(self) -> None:
        return None

    def terminate(self, error: StreamError | None) -> None:
        return None  # the stream belongs to the whole server, not to this sender


def _is_subject(msg: Message) -> bool:
    return msg.find(muc.SUBJECT) is not None and msg.find(muc.BODY) is None


def _removal_notice(stanza: Stanza) -> bool:
    """A §9.3 notice that someone not in the room lost their membership: it reaches every
    occupant who sees addresses, so that no client keeps encrypting to them."""
    if not isinstance(stanza, Message) or stanza.from_ is None or stanza.from_.resource:
        return False
    x = stanza.find(muc.USER_X)
    item = None if x is None else x.find(muc.ITEM)
    return item is not None and item.get("affiliation") in ("none", "outcast")


__all__ = ["GroupService"]
