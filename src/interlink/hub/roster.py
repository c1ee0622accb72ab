"""Roster management, RFC 6121 §2: get, set, remove, and pushes to interested resources."""

from __future__ import annotations

import secrets
from typing import Protocol
from xml.etree.ElementTree import Element

from interlink.cluster import Located
from interlink.errors import StanzaError, StanzaErrorCondition
from interlink.hub.context import HubContext
from interlink.hub.nodes import WHEN_ROSTER, Fanout
from interlink.hub.session import Session, SessionRegistry
from interlink.storage.roster import RosterItem, Subscription
from interlink.xmpp import ns
from interlink.xmpp.jid import JID, InvalidJID
from interlink.xmpp.stanza import Iq, IqType, iq_result, to_xml

QUERY = ns.qname(ns.ROSTER, "query")
_ITEM = ns.qname(ns.ROSTER, "item")
_GROUP = ns.qname(ns.ROSTER, "group")


def item_element(item: RosterItem, *, removed: bool = False) -> Element:
    attrs = {"jid": item.contact}
    if removed:
        attrs["subscription"] = "remove"
    else:
        attrs["subscription"] = str(item.subscription)
        if item.name:
            attrs["name"] = item.name
        if item.ask:
            attrs["ask"] = "subscribe"
    el = Element(_ITEM, attrs)
    for group in item.groups:
        g = Element(_GROUP)
        g.text = group
        el.append(g)
    return el


class RosterPushes:
    """Roster pushes (RFC 6121 §2.1.6): what both roster changes and subscriptions send. With a
    ``fanout`` (a cluster), the owner's resources on other nodes get them too, queued in order
    on it."""

    def __init__(self, sessions: SessionRegistry, fanout: Fanout | None = None) -> None:
        self._sessions = sessions
        self._fanout = fanout if fanout is not None and fanout.active else None

    def push(self, owner: JID, item: RosterItem, *, removed: bool = False) -> None:
        """Push ``item`` to each resource of ``owner`` that asked for the roster."""
        for session in self._sessions.sessions(owner):
            if session.roster_requested:
                session.deliver(_push(session.jid, item, removed))
        if self._fanout is not None:

            def build(where: Located) -> str:
                return to_xml(_push(JID.parse(where.full_jid), item, removed), None)

            self._fanout.put(owner, WHEN_ROSTER, build)


def _push(to: JID, item: RosterItem, removed: bool) -> Iq:
    query = Element(QUERY)
    query.append(item_element(item, removed=removed))
    return Iq(to, None, "push-" + secrets.token_hex(6), None, (query,), IqType.SET)


class RosterService:
    def __init__(
        self, ctx: HubContext, pushes: RosterPushes, canceller: SubscriptionCanceller
    ) -> None:
        self._ctx = ctx
        self._pushes = pushes
        self._canceller = canceller

    async def handle_iq(self, session: Session, iq: Iq) -> None:
        if iq.to is not None and iq.to != session.jid.bare:
            raise StanzaError(StanzaErrorCondition.FORBIDDEN, "a roster belongs to its own account")
        if iq.type is IqType.GET:
            items = await self._ctx.storage.roster.items(str(session.jid.bare))
            result = Element(QUERY)
            result.extend(item_element(i) for i in items)
            session.roster_requested = True
            session.deliver(iq_result(iq, result, from_=None))
            return
        assert iq.query is not None
        children = list(iq.query)
        if len(children) != 1 or children[0].tag != _ITEM:
            raise StanzaError(
                StanzaErrorCondition.BAD_REQUEST, "a roster set must contain exactly one item"
            )
        try:
            contact = JID.parse(children[0].get("jid", "")).bare
        except InvalidJID as exc:
            raise StanzaError(
                StanzaErrorCondition.BAD_REQUEST, f"invalid item jid: {exc}"
            ) from None
        async with self._ctx.roster_locks.hold_all(session.jid.bare, contact):
            await self._set(session, children[0], contact)
        session.deliver(iq_result(iq, from_=None))

    async def _set(self, session: Session, el: Element, contact: JID) -> None:
        owner = session.jid.bare
        repo = self._ctx.storage.roster
        existing = await repo.get(str(owner), str(contact))
        if el.get("subscription") == "remove":
            if existing is None:
                raise StanzaError(StanzaErrorCondition.ITEM_NOT_FOUND, "no such roster item")
            await self._canceller.cancel_both(session, contact, existing)
            await repo.remove(str(owner), str(contact))
            self._pushes.push(owner, existing, removed=True)
            return
        settings = self._ctx.settings
        name = el.get("name") or None
        if name is not None and len(name) > settings.max_roster_name_length:
            raise StanzaError(
                StanzaErrorCondition.NOT_ACCEPTABLE,
                f"item name longer than {settings.max_roster_name_length} characters",
            )
        groups = [(g.text or "").strip() for g in el.findall(_GROUP)]
        if any(not g for g in groups):
            raise StanzaError(StanzaErrorCondition.NOT_ACCEPTABLE, "empty group name")
        if len(set(groups)) != len(groups):
            raise StanzaError(StanzaErrorCondition.BAD_REQUEST, "duplicate group")
        if len(groups) > settings.max_roster_groups:
            raise StanzaError(
                StanzaErrorCondition.NOT_ACCEPTABLE,
                f"more than {settings.max_roster_groups} groups on one item",
            )
        if existing is None:
            if await repo.count(str(owner)) >= settings.max_roster_items:
                raise StanzaError(
                    StanzaErrorCondition.NOT_ALLOWED,
                    f"the roster is full ({settings.max_roster_items} items)",
                )
            replaced = 0
            existing = RosterItem(str(contact))
        else:
            replaced = existing.size
        item = RosterItem(
            contact=str(contact),
            name=name,
            subscription=existing.subscription,
            ask=existing.ask,
            groups=tuple(groups),
        )
        if item.size > replaced:  # only growth is checked: shrinking an item is always allowed
            budget = settings.max_roster_bytes
            used = sum(i.size for i in await repo.items(str(owner)))
            if used - replaced + item.size > budget:
                raise StanzaError(
                    StanzaErrorCondition.NOT_ALLOWED,
                    f"the roster would exceed its {budget} bytes of names and groups",
                )
        await repo.put(str(owner), item)
        self._pushes.push(owner, item)


class SubscriptionCanceller(Protocol):
    """What roster removal needs from the presence service (RFC 6121 §2.5.2)."""

    async def cancel_both(self, session: Session, contact: JID, item: RosterItem) -> None: ...


def subscription_after(
    item: RosterItem | None, *, to: bool | None = None, from_: bool | None = None
) -> Subscription:
    current = item.subscription if item else Subscription.NONE
    return Subscription.of(
        to=current.has_to if to is None else to,
        from_=current.has_from if from_ is None else from_,
    )
