"""Routing of stanzas from a bound session (RFC 6120 §10, RFC 6121 §8).

:meth:`Router.route` is the hub's entry point for every stanza. Messages to an available local
resource are delivered synchronously, without awaiting anything: that is the hot path. Anything
needing storage returns a coroutine that the transport shell awaits before it reads the sender's
next stanza, which keeps each sender's stanzas in order and makes "stored" mean "acknowledged".

Errors raised as :class:`StanzaError` become an error reply to the sender; error stanzas are never
answered with errors.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from xml.etree.ElementTree import Element

from interlink.errors import StanzaError, StanzaErrorCondition, StorageBusyError
from interlink.hub import carbons, disco
from interlink.hub.addressing import Kind
from interlink.hub.archive import ArchiveService, Decision
from interlink.hub.archive import disco_features as archive_features
from interlink.hub.bookmarks import BookmarksService, bookmark_node_defaults
from interlink.hub.caps import CapsService
from interlink.hub.carbons import Carbons
from interlink.hub.context import HubContext
from interlink.hub.federation import ALIAS_PREFIX, Federation, RoomEvents
from interlink.hub.groups.aliases import AliasAccounts
from interlink.hub.groups.service import GroupService
from interlink.hub.observers import notify
from interlink.hub.offline import OfflineDelivery
from interlink.hub.pep import PUBSUB, PUBSUB_OWNER, PepService
from interlink.hub.policy.engine import InteropPolicy
from interlink.hub.policy.service import PolicyService
from interlink.hub.presence import PresenceService
from interlink.hub.private import PrivateStorageService
from interlink.hub.roster import QUERY as ROSTER_QUERY
from interlink.hub.roster import RosterPushes, RosterService
from interlink.hub.session import Session
from interlink.hub.vcard import VcardService
from interlink.storage.archive import ArchiveEntry
from interlink.xmpp.ext import blocking, interop, mam, private, vcard
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
    to_xml,
)

if TYPE_CHECKING:
    from interlink.hub.hub import UserIds

log = logging.getLogger("interlink.router")
Pending = Coroutine[Any, Any, None]


DomainHandler = Callable[[Session, Iq], Pending]


@dataclass(frozen=True, slots=True)
class DomainServices:
    """Services addressed to a service's domain JID (e.g. XEP-0363 upload, media tokens): the
    query's tag -> handler; what they add to the domain's disco#info; and the disco nodes they
    answer (disco#info/#items with ``node``, e.g. XEP-0050 commands) -> handler.
    ``account_handlers`` and ``account_info`` are the same for requests a session sends to its
    own account (e.g. XEP-0357 push registration)."""

    handlers: Mapping[str, DomainHandler] = field(default_factory=dict)
    info: tuple[Callable[[Element], None], ...] = ()
    nodes: Mapping[str, DomainHandler] = field(default_factory=dict)
    account_handlers: Mapping[str, DomainHandler] = field(default_factory=dict)
    account_info: tuple[Callable[[Element], None], ...] = ()


class Router:
    def __init__(
        self,
        ctx: HubContext,
        *,
        user_ids: UserIds,
        domain_services: DomainServices,
        federation: Callable[[HubContext, RoomEvents], Federation],
    ) -> None:
        """``federation`` builds the way to federated users (stanzas to them leave through
        it), given what its rooms must hear (the group service, built after it)."""
        self.ctx = ctx
        rooms = RoomEvents(unsent=self._room_stanza_unsent, closed=self._provider_closed)
        self.federation = federation(ctx, rooms)
        self.addressing = ctx.addressing
        # what a user blocks or reports by an alias it was shown reaches the account behind it
        aliases = AliasAccounts(self.federation.aliases, ctx.addressing)
        self.policy = InteropPolicy(
            ctx, ctx.storage.policy, ctx.settings.policy, user_ids, aliases.account_of
        )
        self.policy_service = PolicyService(ctx, self.policy, ctx.storage.policy, aliases.behind)
        self.offline = OfflineDelivery(ctx)
        self.pep = PepService(
            ctx, self.policy, node_defaults=bookmark_node_defaults(ctx.settings.pep_max_items)
        )
        self.caps = CapsService(ctx, self.pep.features_known)
        pushes = RosterPushes(ctx.sessions, ctx.fanout)
        self.vcard = VcardService(ctx, lambda jid: self.policy.provider_of(jid) is not None)
        self.presence = PresenceService(
            ctx,
            pushes,
            self.offline,
            self.caps,
            self.policy,
            self.vcard.avatar_hash,
            self.federation,
        )
        self.roster = RosterService(ctx, pushes, self.presence)
        self.carbons = Carbons(ctx.sessions, ctx.fanout)
        self.bookmarks = BookmarksService(ctx, self.pep)
        self.private = PrivateStorageService(ctx, self.bookmarks)
        self.archive = ArchiveService(ctx)
        self.groups = GroupService(
            ctx,
            ctx.settings.groups,
            self.policy,
            self.offline,
            self.archive,
            self.federation,
            self.pep,
        )
        self.domain_services = domain_services
        self._routed = ctx.observers.stanza_routed
        self._home_domain = ctx.addressing.is_home_domain
        self._groups_domain = ctx.addressing.is_groups_domain

    def _room_stanza_unsent(self, stanza: Stanza) -> None:
        self.groups.stanza_unsent(stanza)

    def _provider_closed(self, provider_id: str) -> None:
        self.groups.provider_closed(provider_id)

    def route(self, session: Session, stanza: Stanza) -> Pending | None:
        """Handle one stanza from ``session`` (its ``from`` already stamped by the stream)."""
        if self._routed:
            notify(self._routed, session, stanza)
        try:
            to = stanza.to
            if to is not None and self._groups_domain(to.domain):  # XEP-0045 rooms
                return self._guard(session, stanza, self.groups.handle(session, stanza))
            if type(stanza) is Message:
                return self._message(session, stanza)
            if type(stanza) is Iq:
                return self._iq(session, stanza)
            assert isinstance(stanza, Presence)
            if to is None and stanza.type is PresenceType.UNAVAILABLE:
                self.groups.session_ended(session)  # unavailable leaves every room (RFC 6121)
            return self._guard(session, stanza, self.presence.handle(session, stanza))
        except StanzaError as err:
            self.reply_error(session, stanza, err)
            return None

    def reply_error(self, session: Session, stanza: Stanza, err: StanzaError) -> None:
        if not is_error_stanza(stanza):
            from_ = stanza.to if stanza.to is not None else None
            session.deliver(error_reply(stanza, err, from_=from_))

    async def _guard(self, session: Session, stanza: Stanza, work: Pending) -> None:
        """Await the handling of ``stanza``: a refusal, or a database too busy to take the
        operation it needed (which did not run: the sender may try again), is that stanza's
        error, never the end of the stream."""
        try:
            await work
        except StanzaError as err:
            self.reply_error(session, stanza, err)
        except StorageBusyError as exc:
            log.warning("a stanza refused: the database is busy", extra={"error": str(exc)})
            busy = StanzaError(
                StanzaErrorCondition.RESOURCE_CONSTRAINT, "the server is busy; try again"
            )
            self.reply_error(session, stanza, busy)

    # -- messages -----------------------------------------------------------------------------
    def _message(self, session: Session, msg: Message) -> Pending | None:
        msg = mam.without_forged_ids(msg, self._ours)
        to = msg.to
        if to is None:
            to = session.jid.bare
        sender = session.jid
        domain = to.domain
        # The hot path, two users of one service, without a call; everything else is classified.
        crossing = not (domain == sender.domain and self._home_domain(domain)) and self._crossing(
            sender, to
        )
        if to.local is None:
            if msg.type in (MessageType.ERROR, MessageType.HEADLINE, MessageType.GROUPCHAT):
                return None
            raise StanzaError(StanzaErrorCondition.SERVICE_UNAVAILABLE)
        if crossing:
            if to.bare != sender.bare:  # between a third party and anyone else: the rules
                return self._guard(session, msg, self._crossing_message(session, msg, to))
        elif self.policy.blocks.active:
            self._check_blocks(sender, to)
        return self._deliver_message(session, msg, to)

    async def _crossing_message(self, session: Session, msg: Message, to: JID) -> None:
        checked = await self.policy.message(session.jid, msg, to)
        if checked is not None:
            work = self._deliver_message(session, checked, to, sent=msg)
            if work is not None:
                await work

    def _crossing(self, sender: JID, to: JID) -> bool:
        """Whether a stanza from ``sender`` to ``to`` crosses the interop boundary (a third
        party on either side: the consent rules decide); raises for addresses not hosted here
        and between the users of two different services on this hub."""
        domain = to.domain
        if domain == sender.domain and self._home_domain(domain):
            return False  # the hot path: two users of one service
        addressing = self.addressing
        where = addressing.locate(to)
        if where.kind is Kind.REMOTE:
            raise StanzaError(
                StanzaErrorCondition.REMOTE_SERVER_NOT_FOUND,
                "this hub federates only with onboarded providers' servers",
            )
        origin = addressing.locate(sender)
        if origin.kind is Kind.HOME and where.kind is Kind.HOME:
            if origin.service != where.service and to.local is not None:
                raise StanzaError(
                    StanzaErrorCondition.SERVICE_UNAVAILABLE,
                    f"{to.bare} is a user of another service ({where.service}); the services "
                    "on this hub do not exchange messages directly",
                )
            return False
        return True

    def _check_blocks(self, sender: JID, to: JID) -> None:
        """XEP-0191 between this hub's own users (across the boundary the rules do it)."""
        blocks = self.policy.blocks
        if blocks.blocks(sender.bare, to):
            raise blocks.blocked_error()
        if blocks.keeps_out(to.bare, sender):
            raise StanzaError(StanzaErrorCondition.SERVICE_UNAVAILABLE)

    def _ours(self, by: str) -> bool:
        """Whether a stanza-id's ``by`` names an address of this hub (XEP-0359 §5): one of
        its services or any domain under them (interop subdomains, served or not)."""
        domain = by.rpartition("@")[2].partition("/")[0].lower()
        addressing = self.addressing
        return addressing.serves(domain) or addressing.under_service(domain)

    def _deliver_message(
        self, session: Session, msg: Message, to: JID, sent: Message | None = None
    ) -> Pending | None:
        """Deliver or store ``msg`` (which the consent rules let through), archiving it where
        it is worth it (:mod:`interlink.hub.archive`); ``sent`` is what the sender's own
        devices get as carbons if the hub changed the message on its way (the interop
        marker)."""
        archive = self.archive
        if archive.enabled and mam.worth_archiving(msg):
            sender = session.jid
            keep = (archive.decide(sender, to), archive.decide(to, sender))
            if Decision.LOOKUP in keep:
                return self._guard(session, msg, self._archive_looked_up(session, msg, to, sent))
            return self._archive_and_deliver(
                session, msg, to, sent, (keep[0] is Decision.KEEP, keep[1] is Decision.KEEP)
            )
        return self._route_message(session, msg, to, sent, ())

    async def _archive_looked_up(
        self, session: Session, msg: Message, to: JID, sent: Message | None
    ) -> None:
        sender = session.jid
        keep = (await self.archive.resolve(sender, to), await self.archive.resolve(to, sender))
        work = self._archive_and_deliver(session, msg, to, sent, keep)
        if work is not None:
            await work

    def _archive_and_deliver(
        self,
        session: Session,
        msg: Message,
        to: JID,
        sent: Message | None,
        keep: tuple[bool, bool],
    ) -> Pending | None:
        if not (keep[0] or keep[1]):
            return self._route_message(session, msg, to, sent, ())
        xml = to_xml(msg, None)
        sent_xml = xml if sent is None or sent is msg else to_xml(sent, None)
        plan = self.archive.plan(session.jid, to, xml, sent_xml, keep)
        return self._route_message(
            session, msg, to, sent, plan.entries, xml=plan.delivered, sent_xml=sent_xml
        )

    def _archived(self, entries: tuple[ArchiveEntry, ...]) -> Pending | None:
        """The archive write the transport awaits (before it acknowledges the message)."""
        return self.archive.write(entries) if entries else None

    async def _store_then_archive(
        self,
        msg: Message,
        xml: str,
        bare: JID,
        entries: tuple[ArchiveEntry, ...],
        *,
        full: JID | None = None,
    ) -> None:
        await self.offline.accept(msg, xml, bare, full=full)  # a refusal raises: nothing archived
        work = self.archive.write(entries)
        if work is not None:
            await work

    def _route_message(
        self,
        session: Session,
        msg: Message,
        to: JID,
        sent: Message | None,
        entries: tuple[ArchiveEntry, ...],
        *,
        xml: str | None = None,
        sent_xml: str | None = None,
    ) -> Pending | None:
        """Deliver ``msg`` serialized as ``xml`` (built here when not given; the archive's
        stamped copy when given), the sender's devices getting ``sent_xml`` as carbons."""
        ctx = self.ctx
        if xml is None:
            xml = to_xml(msg, None)
        mtype = msg.type
        if sent is None or sent is msg:
            copy, copy_xml = msg, xml if sent_xml is None else sent_xml
        else:
            copy, copy_xml = sent, to_xml(sent, None) if sent_xml is None else sent_xml
        self.carbons.sent(copy, copy_xml, session)
        self.carbons.sent_elsewhere(copy, copy_xml, session)  # in a cluster, queued
        if self.federation.federated(to):
            self.federation.deliver(msg)  # over s2s, after the rules (issue 15)
            return self._archived(entries)  # the sender's copy, if its archive keeps it
        if to.resource is not None:
            target = ctx.sessions.get(to)
            if target is not None:
                target.deliver_xml(xml)
                others = ctx.sessions.message_targets(to.bare)
                self.offline.delivered(to.bare, msg, (target, *others))
                self.carbons.received(msg, xml, to.bare, (target,))
                self.carbons.received_elsewhere(msg, xml, to.bare)
                return self._archived(entries)
            if mtype is MessageType.HEADLINE:
                return None  # RFC 6121 §8.5.3.2.1: no such resource, silently ignored
        if mtype is MessageType.ERROR:
            return None
        if mtype is MessageType.GROUPCHAT:
            raise StanzaError(StanzaErrorCondition.SERVICE_UNAVAILABLE)
        bare = to.bare
        if mtype is MessageType.HEADLINE:
            for target in ctx.sessions.non_negative(bare):
                target.deliver_xml(xml)
            return None
        # in a cluster a resource not here may be on another node: the offline path looks
        if not self.offline.is_draining(bare) and not (
            to.resource is not None and ctx.cluster.shared
        ):
            targets = ctx.sessions.message_targets(bare)
            if targets:
                for target in targets:
                    target.deliver_xml(xml)
                self.offline.delivered(bare, msg, targets)
                self.carbons.received(msg, xml, bare, targets)
                self.carbons.received_elsewhere(msg, xml, bare)
                return self._archived(entries)
        full = to if to.resource is not None else None
        if entries:
            return self._guard(
                session, msg, self._store_then_archive(msg, xml, bare, entries, full=full)
            )
        return self._guard(session, msg, self.offline.accept(msg, xml, bare, full=full))

    # -- iq -----------------------------------------------------------------------------------
    def _iq(self, session: Session, iq: Iq) -> Pending | None:
        to = iq.to
        own = session.jid.bare
        if to is None or to == own:
            if not iq.type.is_request:
                return None
            query = iq.query
            assert query is not None
            if query.tag == ROSTER_QUERY:
                return self._guard(session, iq, self.roster.handle_iq(session, iq))
            if query.tag in (PUBSUB, PUBSUB_OWNER):
                return self._guard(session, iq, self._pubsub(session, iq, own))
            if query.tag == private.QUERY:
                return self._guard(session, iq, self.private.handle_iq(session, iq))
            if query.tag == vcard.VCARD:
                return self._guard(session, iq, self._own_vcard(session, iq))
            if query.tag in mam.QUERIES:
                return self._guard(session, iq, self.archive.handle_iq(session, iq))
            if query.tag == interop.ALIAS:
                return self._guard(session, iq, self.federation.handle_alias_query(session, iq))
            if query.tag in interop.QUERIES or query.tag in blocking.QUERIES:
                return self._guard(session, iq, self.policy_service.handle_iq(session, iq))
            if query.tag in (carbons.ENABLE, carbons.DISABLE) and iq.type is IqType.SET:
                self.carbons.enable(session, query.tag == carbons.ENABLE)
                session.deliver(iq_result(iq, from_=None))
                return None
            if query.tag == disco.DISCO_ITEMS and iq.type is IqType.GET:
                return self._guard(session, iq, self._account_items(session, iq, own))
            own_handler = self.domain_services.account_handlers.get(query.tag)
            if own_handler is not None:
                return self._guard(session, iq, own_handler(session, iq))
            self._answer(session, iq, self._account_query(iq, own))
            return None
        if (
            to.local is not None
            and to.local[:1] == ALIAS_PREFIX
            and self.addressing.is_home_domain(to.domain)
            and self.groups.is_alias(to)
        ):  # a member as a room shows it (OMEMO's key fetches): the group service answers
            return self._guard(session, iq, self._alias_iq(session, iq, to))
        return self._iq_to(session, iq, to)

    async def _alias_iq(self, session: Session, iq: Iq, to: JID) -> None:
        """An iq to a room alias: the group service answers it for those who may see that
        member; for anyone else it goes on as to any address, which no account holds (the
        answer of a nonexistent account, whoever asks)."""
        if await self.groups.alias_iq(session, iq):
            return
        work = self._iq_to(session, iq, to)
        if work is not None:
            await work

    def _iq_to(self, session: Session, iq: Iq, to: JID) -> Pending | None:
        """An iq to another address than the sender's own account."""
        try:
            crossing = self._crossing(session.jid, to)
        except StanzaError:
            if iq.type.is_request:
                raise
            return None
        if to.local is None:
            if to.resource is None and iq.type.is_request:
                query = iq.query
                services = self.domain_services
                handler = None if query is None else services.handlers.get(query.tag)
                if query is not None and query.tag in (disco.DISCO_INFO, disco.DISCO_ITEMS):
                    node = query.get("node") or ""
                    handler = services.nodes.get(node) if iq.type is IqType.GET else None
                if handler is not None:
                    return self._guard(session, iq, handler(session, iq))
                answer = disco.server_query(iq)
                if answer is not None and answer.tag == disco.DISCO_INFO:
                    for extend in services.info:
                        extend(answer)
                elif answer is not None and answer.tag == disco.DISCO_ITEMS:
                    self.groups.server_items(to.domain, answer)
                self._answer(session, iq, answer)
            elif iq.type.is_request:
                raise StanzaError(StanzaErrorCondition.SERVICE_UNAVAILABLE)
            else:
                self.caps.on_response(session, iq)  # answers to the hub's own queries
            return None
        sender = session.jid
        if crossing and to.bare != sender.bare:
            return self._guard(session, iq, self._crossing_iq(session, iq, to))
        if self.policy.blocks.active and iq.type.is_request:
            self._check_blocks(sender, to)
        return self._iq_to_account(session, iq, to)

    async def _crossing_iq(self, session: Session, iq: Iq, to: JID) -> None:
        if iq.type.is_request:
            await self.policy.check_iq(session.jid, to)
        elif not await self.policy.iq_response(session.jid, to):
            return
        work = self._iq_to_account(session, iq, to)
        if work is not None:
            await work

    def _iq_to_account(self, session: Session, iq: Iq, to: JID) -> Pending | None:
        ctx = self.ctx
        if self.federation.federated(to):
            self.federation.deliver(iq)  # its server answers (PEP, vCard, disco: issue 15)
            return None
        if to.resource is not None:
            target = ctx.sessions.get(to)
            if target is not None:
                target.deliver(iq)
                return None
            if iq.type.is_request:
                raise StanzaError(StanzaErrorCondition.SERVICE_UNAVAILABLE)
            return None
        if not iq.type.is_request:
            return None
        query = iq.query
        if query is not None and query.tag in (PUBSUB, PUBSUB_OWNER):
            return self._guard(session, iq, self._pubsub(session, iq, to))
        if query is not None and query.tag == private.QUERY:
            raise StanzaError(  # XEP-0049 §3; the same for every account, existing or not
                StanzaErrorCondition.FORBIDDEN, "private storage belongs to its account alone"
            )
        if query is not None and query.tag in mam.QUERIES:
            raise StanzaError(  # XEP-0313 §5.1.1; the same for every account, existing or not
                StanzaErrorCondition.FORBIDDEN, "an archive is queried by its account alone"
            )
        if query is not None and query.tag == vcard.VCARD:
            return self._guard(session, iq, self.vcard.handle_other(session, iq, to))
        return self._guard(session, iq, self._on_behalf(session, iq, to))

    async def _own_vcard(self, session: Session, iq: Iq) -> None:
        if await self.vcard.handle_own(session, iq) is not None:
            await self.presence.avatar_changed(session.jid.bare)  # XEP-0153

    def _pubsub(self, session: Session, iq: Iq, owner: JID) -> Pending:
        query = iq.query
        assert query is not None
        if self.bookmarks.claims(query):
            return self.bookmarks.handle_pubsub(session, iq, owner)
        return self.pep.handle_iq(session, iq, owner)

    async def _on_behalf(self, session: Session, iq: Iq, account: JID) -> None:
        """Answer for another account only to those it lets see its presence; everyone else
        gets the answer a nonexistent account gives, so iqs are no existence oracle."""
        item = await self.ctx.storage.roster.get(str(account), str(session.jid.bare))
        if item is None or not item.subscription.has_from:
            raise StanzaError(StanzaErrorCondition.SERVICE_UNAVAILABLE)
        query = iq.query
        if query is not None and query.tag == disco.DISCO_ITEMS and iq.type is IqType.GET:
            await self._account_items(session, iq, account)
            return
        self._answer(session, iq, self._account_query(iq, account))

    def _account_query(self, iq: Iq, account: JID) -> Element | None:
        """What the hub answers for an account; its disco#info lists the archive (XEP-0313
        §6.1) and the ``account_info`` features (push) for the hub's own accounts."""
        answer = disco.account_query(iq)
        if (
            answer is not None
            and answer.tag == disco.DISCO_INFO
            and self.archive.enabled
            and self.addressing.is_home(account)
        ):
            disco.add_features(answer, archive_features())
        if (
            answer is not None
            and answer.tag == disco.DISCO_INFO
            and self.addressing.is_home(account)
        ):
            for extend in self.domain_services.account_info:  # e.g. XEP-0357 push (§5)
                extend(answer)
        return answer

    async def _account_items(self, session: Session, iq: Iq, account: JID) -> None:
        """disco#items on an account lists the PEP nodes the requester may read."""
        query = iq.query
        assert query is not None
        if query.get("node"):
            raise StanzaError(StanzaErrorCondition.ITEM_NOT_FOUND, "no such node")
        nodes = await self.pep.node_items_for_disco(session.jid.bare, account)
        self._answer(session, iq, disco.node_items(account, nodes))

    def _answer(self, session: Session, iq: Iq, payload: Any) -> None:
        if payload is None:
            session.deliver(iq_result(iq, from_=iq.to))
        else:
            session.deliver(iq_result(iq, payload, from_=iq.to))

    # -- session lifecycle --------------------------------------------------------------------
    def session_ended(self, session: Session) -> Pending | None:
        self.carbons.forget(session)
        self.groups.session_ended(session)
        if self.ctx.sessions.remove(session) and session.available:
            return self.presence.go_unavailable(session)
        return None


__all__ = ["DomainServices", "Router"]
