"""Presence: broadcast, probes, directed presence and subscriptions (RFC 6121 §3, §4).

Between two accounts of this hub, the "user's server" and the "contact's server" halves of each
subscription exchange run here one after the other: first the sender's roster changes (outbound
processing), then the recipient's (inbound processing). Subscription requests are stored until
answered and shown again at each login (RFC 6121 §3.1.3).

A federated provider's user (issue 15) has its half on its own server: what a gatekeeper user
sends it (subscriptions, broadcasts to a subscriber, directed presence, probes on login) leaves
through the :class:`RemotePresence` port, after the same interop decision and under the
sender's alias (:mod:`interlink.hub.federation`); what its server sends arrives through
:meth:`PresenceService.handle` with the federated sender's session and runs the gatekeeper
user's inbound half only, probes answered from the user's available resources when the roster
says the prober may see them.

In a cluster the resources of a user or contact may be on other nodes (the shared session
directory says which): broadcasts, directed presence and subscription notices reach them through
those nodes' inboxes (:func:`~interlink.hub.nodes.send_live`), and a new session's probes of
its contacts are answered by the nodes that hold them (:meth:`PresenceService.probed`), since
only they know the contacts' current presence.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from typing import Any, Protocol

from interlink.cluster import Located
from interlink.errors import StanzaError, StanzaErrorCondition
from interlink.hub.caps import CapsService
from interlink.hub.context import HubContext
from interlink.hub.nodes import (
    WHEN_AVAILABLE,
    elsewhere,
    elsewhere_all,
    send_live,
    send_to_node,
)
from interlink.hub.offline import OfflineDelivery
from interlink.hub.policy.engine import InteropPolicy
from interlink.hub.roster import RosterPushes, subscription_after
from interlink.hub.session import Session
from interlink.storage.roster import RosterItem
from interlink.xmpp.ext import vcard
from interlink.xmpp.jid import JID
from interlink.xmpp.stanza import Presence, PresenceType, Stanza, to_xml

log = logging.getLogger("interlink.presence")


class RemotePresence(Protocol):
    """Where federated users' servers are reached (hub.federation.Federation)."""

    def federated(self, jid: JID) -> bool:
        """Whether ``jid`` is a federated provider's user."""

    def deliver(self, stanza: Stanza) -> None:
        """Send ``stanza`` to its federated ``to`` over s2s. Raises: StanzaError (not sent)."""


def _presence(type_: PresenceType, from_: JID, to: JID | None) -> Presence:
    return Presence(to, from_, None, None, (), type_)


class PresenceService:
    def __init__(
        self,
        ctx: HubContext,
        pushes: RosterPushes,
        offline: OfflineDelivery,
        caps: CapsService,
        policy: InteropPolicy,
        avatar_hash: Callable[[Session], Awaitable[str]],
        remote: RemotePresence,
    ) -> None:
        self._ctx = ctx
        self._remote = remote
        self._avatar_hash = avatar_hash  # XEP-0153, stamped on every available broadcast
        self._policy = policy
        self._pushes = pushes
        self._offline = offline
        self._caps = caps
        self._leaving: dict[JID, asyncio.Task[None]] = {}

    def leave_later(self, session: Session) -> None:
        """Broadcast ``session``'s unavailable presence in the background (a replaced session);
        a new session of the same full JID waits for it before announcing itself."""
        if not session.available:
            return
        task = asyncio.get_running_loop().create_task(self.go_unavailable(session))
        self._leaving[session.jid] = task
        task.add_done_callback(lambda _: self._leaving.pop(session.jid, None))

    async def handle(self, session: Session, presence: Presence) -> None:
        to = presence.to
        if self._remote.federated(session.jid):
            if to is not None:
                await self._from_federated(session.jid, presence, to)
            return  # a federated server addresses each recipient; nothing to broadcast here
        if to is None:
            leaving = self._leaving.get(session.jid)
            if leaving is not None:
                await leaving  # a replaced session's goodbye must precede this hello
            await self._broadcast_from(session, presence)
            return
        addressing = self._ctx.addressing
        if not addressing.is_local(to) and not self._remote.federated(to):
            # No server-to-server yet: say so at once (RFC 6120 §8.3, §10.4), so that, say, a
            # group join fails now rather than after the client's timeout. Unavailable and
            # error presence are never answered.
            if presence.type in (PresenceType.UNAVAILABLE, PresenceType.ERROR):
                return
            if addressing.under_service(to.domain):
                raise StanzaError(
                    StanzaErrorCondition.SERVICE_UNAVAILABLE,
                    f"this hub has no service at {to.domain}",
                )
            raise StanzaError(
                StanzaErrorCondition.REMOTE_SERVER_NOT_FOUND,
                "this hub does not federate with other domains yet",
            )
        checked = await self._across(session.jid, presence, to, sent=True)
        if checked is None:
            return  # refused by the rules or a block: presence is dropped quietly
        presence = checked
        if presence.type.is_subscription:
            async with self._ctx.roster_locks.hold_all(session.jid.bare, to.bare):
                await self._outbound_subscription(session, presence, to.bare)
        elif presence.type is PresenceType.PROBE:
            await self._answer_probe(session, to.bare)
        else:
            await self._directed(session, presence, to)

    # -- broadcast (RFC 6121 §4.2, §4.4, §4.5) ------------------------------------------------
    async def _broadcast_from(self, session: Session, presence: Presence) -> None:
        if presence.type is PresenceType.AVAILABLE:
            digest = await self._avatar_hash(session)
            presence = replace(presence, payload=vcard.with_update(presence.payload, digest))
            first = not session.available
            was_negative = session.priority < 0
            session.available = True
            session.priority = presence.priority
            session.presence_payload = presence.payload
            self._ctx.sessions.presence_changed(session)
            await self._send_to_subscribers(session, presence)
            if first:
                await self._answer_probe_all(session)
                await self._deliver_pending_requests(session)
            if session.priority >= 0 and (first or was_negative):
                self._offline.start_drain(session.jid.bare)
            self._caps.on_presence(session, presence)
        elif presence.type is PresenceType.UNAVAILABLE:
            await self.go_unavailable(session, presence)

    async def avatar_changed(self, account: JID) -> None:
        """XEP-0153 §4: the account's photo changed; each available session's presence goes out
        again with the new hash (to the subscribers and the account's own resources)."""
        for session in self._ctx.sessions.available(account):
            digest = await self._avatar_hash(session)
            payload = vcard.with_update(session.presence_payload, digest)
            session.presence_payload = payload
            await self._send_to_subscribers(
                session, Presence(None, session.jid, None, None, payload, PresenceType.AVAILABLE)
            )

    async def go_unavailable(self, session: Session, presence: Presence | None = None) -> None:
        """Broadcast unavailable presence for ``session`` (also used when a connection drops)."""
        if not session.available:
            return
        if presence is None:
            presence = _presence(PresenceType.UNAVAILABLE, session.jid, None)
        await self._send_to_subscribers(session, presence)
        for target in session.directed:
            checked = await self._across(session.jid, presence, target)
            if checked is not None:
                await self._deliver_directed(checked, target)
        session.directed.clear()
        session.available = False
        self._ctx.sessions.presence_changed(session)

    async def _across(
        self, from_: JID, presence: Presence, to: JID, *, sent: bool = False
    ) -> Presence | None:
        """``presence`` as ``to`` may get it from ``from_``: unchanged between this hub's own
        users unless one blocked the other; through the interop rules across the boundary."""
        if from_.bare == to.bare:
            return presence
        addressing = self._ctx.addressing
        if addressing.is_home(from_) and addressing.is_home(to):
            if not addressing.same_service(from_, to):
                return None  # the services on one hub do not exchange presence
            blocks = self._policy.blocks
            if blocks.active and (
                blocks.keeps_out(to.bare, from_) or blocks.blocks(from_.bare, to)
            ):
                return None
            return presence
        return await self._policy.presence(from_, presence, to, sent=sent)

    async def _send_to_subscribers(self, session: Session, presence: Presence) -> None:
        owner = session.jid.bare
        recipients: list[tuple[Session, Presence]] = []
        contacts: list[JID] = []
        for item in await self._ctx.storage.roster.items(str(owner)):
            if item.subscription.has_from:
                contact = JID.parse(item.contact)
                if self._remote.federated(contact):
                    checked = await self._across(session.jid, presence, contact)
                    if checked is not None:  # its server fans it out (RFC 6121 §4.2.2)
                        p = checked
                        self._send_remote(
                            Presence(contact, session.jid, p.id, None, p.payload, p.type)
                        )
                    continue
                contacts.append(contact)
                targets = self._ctx.sessions.available(contact)
                if targets:
                    checked = await self._across(session.jid, presence, contact)
                    if checked is not None:
                        recipients.extend((t, checked) for t in targets)
        own = self._ctx.sessions.available(owner)
        recipients.extend((t, presence) for t in own)
        if session not in own and presence.type is PresenceType.AVAILABLE:
            recipients.append((session, presence))  # it sees its own presence (RFC 6121 §4.2.2)
        for target, p in recipients:
            target.deliver(Presence(target.jid, session.jid, p.id, p.lang, p.payload, p.type))
        if self._ctx.cluster.shared:
            await self._send_to_subscribers_elsewhere(session, presence, contacts)

    async def _send_to_subscribers_elsewhere(
        self, session: Session, presence: Presence, contacts: list[JID]
    ) -> None:
        """The broadcast, for the subscribers' and the user's resources on other nodes."""
        owner = session.jid.bare
        found = await elsewhere_all(self._ctx.cluster, [owner, *contacts])
        out: list[tuple[Located, str]] = []
        for bare, where in found.items():
            checked = presence if bare == owner else await self._across(session.jid, presence, bare)
            if checked is None:
                continue
            for w in where:
                p = Presence(
                    JID.parse(w.full_jid),
                    session.jid,
                    checked.id,
                    checked.lang,
                    checked.payload,
                    checked.type,
                )
                out.append((w, to_xml(p, None)))
        if out:
            await send_live(self._ctx.cluster, out, WHEN_AVAILABLE)

    @staticmethod
    def _presence_of(contact: Session, to: JID) -> Presence:
        """``contact``'s current availability, as last broadcast, addressed to ``to``."""
        return Presence(
            to, contact.jid, None, None, contact.presence_payload, PresenceType.AVAILABLE
        )

    async def _answer_probe_all(self, session: Session) -> None:
        """The server probes the user's contacts on initial presence and answers from its own
        knowledge, since every account is local (RFC 6121 §4.2.2, §4.3.2)."""
        for own in self._ctx.sessions.available(session.jid.bare):
            if own is not session:  # a user is subscribed to itself (RFC 6121 §4.2.2)
                session.deliver(self._presence_of(own, session.jid))
        contacts = [session.jid.bare]
        for item in await self._ctx.storage.roster.items(str(session.jid.bare)):
            if item.subscription.has_to:
                contact = JID.parse(item.contact)
                if self._remote.federated(contact):
                    await self._probe_remote(session.jid.bare, contact)
                    continue
                contacts.append(contact)
                await self._presence_of_contact(session, contact)
        if self._ctx.cluster.shared:
            await self._probe_elsewhere(session.jid, contacts)

    async def _probe_elsewhere(self, prober: JID, contacts: list[JID]) -> None:
        """Ask the nodes holding ``contacts``' available resources for their presence, for
        ``prober`` (a session of this node); one request per node and contact."""
        cluster = self._ctx.cluster
        for contact, where in (await elsewhere_all(cluster, contacts)).items():
            for node in sorted({w.node for w in where}):
                body = {"contact": str(contact), "to": str(prober), "node": cluster.node_id}
                await send_to_node(cluster, node, "probe", body)

    async def probed(self, body: Mapping[str, Any]) -> None:
        """Another node's session asks for the presence of an account's resources here
        (``{"contact", "to", "node"}``): answer with what each last broadcast, through the
        rules, to that session on its node."""
        contact = JID.parse(str(body["contact"]))
        to = JID.parse(str(body["to"]))
        out: list[tuple[Located, str]] = []
        where = Located(str(to), str(body["node"]), True, 0)
        for c in self._ctx.sessions.available(contact):
            if c.jid == to:
                continue
            checked = await self._across(c.jid, self._presence_of(c, to), to)
            if checked is not None:
                out.append((where, to_xml(checked, None)))
        if out:
            await send_live(self._ctx.cluster, out, WHEN_AVAILABLE)

    async def _presence_of_contact(self, session: Session, contact: JID) -> None:
        for c in self._ctx.sessions.available(contact):
            checked = await self._across(c.jid, self._presence_of(c, session.jid), session.jid)
            if checked is not None:
                session.deliver(checked)

    async def _answer_probe(self, session: Session, contact: JID) -> None:
        item = await self._ctx.storage.roster.get(str(session.jid.bare), str(contact))
        if item is None or not item.subscription.has_to:
            return  # not subscribed: a probe reveals nothing (RFC 6121 §4.3.2.1)
        if self._remote.federated(contact):
            await self._probe_remote(session.jid.bare, contact)
            return
        await self._presence_of_contact(session, contact)
        if self._ctx.cluster.shared:
            await self._probe_elsewhere(session.jid, [contact])

    async def _probe_remote(self, user: JID, contact: JID) -> None:
        """RFC 6121 §4.3.1: ask a federated contact's server, from the user's bare JID."""
        probe = await self._across(user, _presence(PresenceType.PROBE, user, contact), contact)
        if probe is not None:
            self._send_remote(probe)

    async def _deliver_pending_requests(self, session: Session) -> None:
        for pending in await self._ctx.storage.roster.pending(str(session.jid.bare)):
            session.deliver_xml(pending.stanza)

    # -- directed presence (RFC 6121 §4.6) ----------------------------------------------------
    async def _directed(self, session: Session, presence: Presence, to: JID) -> None:
        cap = self._ctx.settings.max_directed_presences
        if (
            presence.type is PresenceType.AVAILABLE
            and session.available
            and to not in session.directed
            and len(session.directed) >= cap
        ):
            # Each address is remembered until the session ends (for its unavailable): bounded.
            raise StanzaError(
                StanzaErrorCondition.RESOURCE_CONSTRAINT,
                f"directed presence is kept for at most {cap} addresses per session",
            )
        await self._deliver_directed(presence, to)
        if presence.type is PresenceType.ERROR:
            return
        item = await self._ctx.storage.roster.get(str(session.jid.bare), str(to.bare))
        if item is not None and item.subscription.has_from:
            return  # contacts get broadcasts anyway
        if presence.type is PresenceType.AVAILABLE and session.available:
            session.directed.add(to)
        else:
            session.directed.discard(to)

    async def _deliver_directed(self, presence: Presence, to: JID) -> None:
        if self._remote.federated(to):
            self._send_remote(presence if presence.to == to else _readdress(presence, to))
            return
        if to.resource is not None:
            target = self._ctx.sessions.get(to)
            if target is not None:
                target.deliver(presence if presence.to == to else _readdress(presence, to))
                return
            if self._ctx.cluster.shared:
                await self._elsewhere(
                    presence,
                    [
                        w
                        for w in await elsewhere(self._ctx.cluster, to.bare)
                        if w.full_jid == str(to)
                    ],
                )
            return
        await self._to_resources(to, presence)

    async def _to_resources(self, bare: JID, presence: Presence) -> None:
        """``presence`` for each available resource of ``bare``, here and on other nodes."""
        for target in self._ctx.sessions.available(bare):
            target.deliver(_readdress(presence, target.jid))
        if self._ctx.cluster.shared:
            await self._elsewhere(presence, await elsewhere(self._ctx.cluster, bare))

    async def _elsewhere(self, presence: Presence, where: list[Located]) -> None:
        out = [(w, to_xml(_readdress(presence, JID.parse(w.full_jid)), None)) for w in where]
        if out:
            await send_live(self._ctx.cluster, out, WHEN_AVAILABLE)

    # -- subscriptions (RFC 6121 §3) ----------------------------------------------------------
    async def _outbound_subscription(
        self, session: Session, presence: Presence, contact: JID
    ) -> None:
        user = session.jid.bare
        if contact == user:
            return
        repo = self._ctx.storage.roster
        item = await repo.get(str(user), str(contact))
        stamped = Presence(contact, user, presence.id, None, presence.payload, presence.type)
        ptype = presence.type
        if item is None and ptype in (PresenceType.SUBSCRIBE, PresenceType.SUBSCRIBED):
            await self._roster_has_room(user)
        if ptype is PresenceType.SUBSCRIBE:
            if item is None or not (item.ask or item.subscription.has_to):
                item = _with(item, str(contact), ask=True)
                await repo.put(str(user), item)
                self._pushes.push(user, item)
            await self._contact_side(stamped, contact, user)
        elif ptype is PresenceType.SUBSCRIBED:
            if not await repo.remove_pending(str(user), str(contact)):
                return  # nothing to approve (pre-approval, RFC 6121 §3.4, is not offered)
            item = _with(item, str(contact), from_=True)
            await repo.put(str(user), item)
            self._pushes.push(user, item)
            await self._contact_side(stamped, contact, user)
            for s in self._ctx.sessions.available(user):
                if self._remote.federated(contact):
                    shown = await self._across(s.jid, self._presence_of(s, contact), contact)
                    if shown is not None:
                        self._send_remote(shown)
                else:
                    await self._presence_to(self._presence_of(s, contact), contact)
        elif ptype is PresenceType.UNSUBSCRIBE:
            if item is not None and (item.subscription.has_to or item.ask):
                item = _with(item, str(contact), to=False, ask=False)
                await repo.put(str(user), item)
                self._pushes.push(user, item)
            await self._contact_side(stamped, contact, user)
        elif ptype is PresenceType.UNSUBSCRIBED:
            await repo.remove_pending(str(user), str(contact))
            if item is not None and item.subscription.has_from:
                item = _with(item, str(contact), from_=False)
                await repo.put(str(user), item)
                self._pushes.push(user, item)
            await self._contact_side(stamped, contact, user)
            await self._send_unavailable(user, contact)

    async def _contact_side(self, stamped: Presence, contact: JID, user: JID) -> None:
        """The contact's half of a subscription exchange ``user`` started: here for this hub's
        accounts, on its own server for a federated contact (sent there)."""
        if self._remote.federated(contact):
            self._send_remote(stamped)
            return
        inbound = {
            PresenceType.SUBSCRIBE: self._inbound_subscribe,
            PresenceType.SUBSCRIBED: self._inbound_subscribed,
            PresenceType.UNSUBSCRIBE: self._inbound_unsubscribe,
            PresenceType.UNSUBSCRIBED: self._inbound_unsubscribed,
        }[stamped.type]
        await inbound(stamped, contact, user)

    def _send_remote(self, presence: Presence) -> None:
        """Presence over s2s; never answered with an error (RFC 6121 §4): a refusal is logged."""
        try:
            self._remote.deliver(presence)
        except StanzaError as err:
            log.info(
                "presence for a federated user was not sent",
                extra={"condition": str(err.condition), "type": str(presence.type)},
            )

    # -- from a federated user's server (its contact's-server half is ours) ------------------
    async def _from_federated(self, sender: JID, presence: Presence, to: JID) -> None:
        user = to.bare
        if not self._ctx.addressing.is_home(to):
            return  # the federation layer lets through only stanzas to an alias
        item = await self._ctx.storage.roster.get(str(user), str(sender.bare))
        ptype = presence.type
        broadcast = ptype in (PresenceType.AVAILABLE, PresenceType.UNAVAILABLE) and (
            item is not None and item.subscription.has_to
        )
        checked = await self._across(sender, presence, to, sent=not broadcast)
        if checked is None:
            return  # refused by the rules or a block: dropped quietly
        contact = sender.bare
        stamped = Presence(user, contact, checked.id, None, checked.payload, ptype)
        if ptype.is_subscription:
            async with self._ctx.roster_locks.hold_all(user, contact):
                if ptype is PresenceType.SUBSCRIBE:
                    await self._inbound_subscribe(stamped, user, contact)
                elif ptype is PresenceType.SUBSCRIBED:
                    await self._inbound_subscribed(stamped, user, contact)
                elif ptype is PresenceType.UNSUBSCRIBE:
                    await self._inbound_unsubscribe(stamped, user, contact)
                else:
                    await self._inbound_unsubscribed(stamped, user, contact)
        elif ptype is PresenceType.PROBE:
            if item is None or not item.subscription.has_from:
                return  # not subscribed: a probe reveals nothing (RFC 6121 §4.3.2.1)
            for own in self._ctx.sessions.available(user):
                shown = await self._across(own.jid, self._presence_of(own, sender), sender)
                if shown is not None:
                    self._send_remote(shown)
        else:
            await self._deliver_directed(checked, to)

    async def _roster_has_room(self, user: JID) -> None:
        """A subscription that would add a roster item obeys the roster's cap, as a roster set
        does. Raises: StanzaError (``not-allowed``)."""
        cap = self._ctx.settings.max_roster_items
        if await self._ctx.storage.roster.count(str(user)) >= cap:
            raise StanzaError(StanzaErrorCondition.NOT_ALLOWED, f"the roster is full ({cap} items)")

    async def _inbound_subscribe(self, stamped: Presence, contact: JID, user: JID) -> None:
        repo = self._ctx.storage.roster
        if not await self._ctx.storage.accounts.exists(str(contact)):
            return  # no such account: drop quietly, revealing nothing (RFC 6121 §3.1.3)
        theirs = await repo.get(str(contact), str(user))
        if theirs is not None and theirs.subscription.has_from:
            # Already approved: answer on the contact's behalf (RFC 6121 §3.1.3 point 2).
            reply = _presence(PresenceType.SUBSCRIBED, contact, user)
            await self._contact_side(reply, user, contact)
            return
        xml = to_xml(Presence(None, user, stamped.id, None, stamped.payload, stamped.type), None)
        settings = self._ctx.settings
        if len(xml.encode()) > settings.max_pending_subscription_bytes:
            # kept without its status and extensions; the live copy below carries them
            xml = to_xml(Presence(None, user, stamped.id, None, (), stamped.type), None)
        # Beyond the cap the request is not kept (and the sender is not told: an answer would
        # tell an existing account from a missing one); a resource online still sees it.
        await repo.add_pending(
            str(contact), str(user), xml, self._ctx.clock(), cap=settings.max_pending_subscriptions
        )
        await self._to_resources(contact, stamped)

    async def _inbound_subscribed(self, stamped: Presence, user: JID, contact: JID) -> None:
        """``contact`` approved ``user``'s request: on ``user``'s side, none→to, from→both."""
        repo = self._ctx.storage.roster
        item = await repo.get(str(user), str(contact))
        if item is None or not item.ask:
            return  # no request pending: ignore (RFC 6121 §3.1.6)
        item = _with(item, str(contact), to=True, ask=False)
        await repo.put(str(user), item)
        self._pushes.push(user, item)
        await self._to_resources(user, stamped)

    async def _inbound_unsubscribe(self, stamped: Presence, contact: JID, user: JID) -> None:
        """``user`` stops following ``contact``: on ``contact``'s side, from→none, both→to."""
        repo = self._ctx.storage.roster
        await repo.remove_pending(str(contact), str(user))
        theirs = await repo.get(str(contact), str(user))
        if theirs is None or not theirs.subscription.has_from:
            return
        theirs = _with(theirs, str(user), from_=False)
        await repo.put(str(contact), theirs)
        self._pushes.push(contact, theirs)
        await self._to_resources(contact, stamped)
        await self._send_unavailable(contact, user)

    async def _inbound_unsubscribed(self, stamped: Presence, user: JID, contact: JID) -> None:
        """``contact`` (here the sender) cancels ``user``'s subscription or denies the request."""
        repo = self._ctx.storage.roster
        item = await repo.get(str(user), str(contact))
        if item is None or not (item.subscription.has_to or item.ask):
            return
        item = _with(item, str(contact), to=False, ask=False)
        await repo.put(str(user), item)
        self._pushes.push(user, item)
        await self._to_resources(user, stamped)

    async def _send_unavailable(self, from_bare: JID, to_bare: JID) -> None:
        """Tell ``to_bare`` that ``from_bare``'s resources are gone (RFC 6121 §3.2.2, §3.3.3)."""
        if self._remote.federated(to_bare):
            for s in self._ctx.sessions.available(from_bare):
                leaving = _presence(PresenceType.UNAVAILABLE, s.jid, to_bare)
                checked = await self._across(s.jid, leaving, to_bare)
                if checked is not None:
                    self._send_remote(checked)
            return
        for s in self._ctx.sessions.available(from_bare):
            await self._presence_to(_presence(PresenceType.UNAVAILABLE, s.jid, to_bare), to_bare)

    async def _presence_to(self, presence: Presence, bare: JID) -> None:
        """``presence`` (from one of this node's sessions) for each available resource of the
        account ``bare``, through the rules, here and on other nodes."""
        assert presence.from_ is not None
        checked = await self._across(presence.from_, presence, bare)
        if checked is not None:
            await self._to_resources(bare, checked)

    async def cancel_both(self, session: Session, contact: JID, item: RosterItem) -> None:
        """Roster removal cancels subscriptions in both directions (RFC 6121 §2.5.2)."""
        user = session.jid.bare
        if item.subscription.has_to or item.ask:
            await self._contact_side(
                _presence(PresenceType.UNSUBSCRIBE, user, contact), contact, user
            )
        if item.subscription.has_from:
            await self._contact_side(
                _presence(PresenceType.UNSUBSCRIBED, user, contact), contact, user
            )
            await self._send_unavailable(user, contact)
        await self._ctx.storage.roster.remove_pending(str(user), str(contact))


def _with(
    item: RosterItem | None,
    contact: str,
    *,
    to: bool | None = None,
    from_: bool | None = None,
    ask: bool | None = None,
) -> RosterItem:
    sub = subscription_after(item, to=to, from_=from_)
    if item is None:
        return RosterItem(contact, subscription=sub, ask=bool(ask))
    return RosterItem(contact, item.name, sub, item.ask if ask is None else ask, item.groups)


def _readdress(presence: Presence, to: JID) -> Presence:
    return Presence(to, presence.from_, presence.id, presence.lang, presence.payload, presence.type)


__all__ = ["PresenceService", "RemotePresence"]
