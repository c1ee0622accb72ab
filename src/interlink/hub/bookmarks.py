"""Bookmarks in three forms, one source of truth (wire code: :mod:`interlink.xmpp.ext.bookmarks`).

The truth is the XEP-0402 PEP node ``urn:xmpp:bookmarks:1`` of the account: one item per
chatroom. The two XEP-0048 forms are views of it, computed when read, written through to it:

- XEP-0049 private storage, ``<storage xmlns='storage:bookmarks'/>`` (XEP-0402 §5.3, the
  ``#compat`` feature), answered by :class:`~interlink.hub.private.PrivateStorageService`
  through :meth:`BookmarksService.legacy_view` and :meth:`BookmarksService.store_legacy`;
- the PEP node ``storage:bookmarks`` with its one item ``current`` (XEP-0223; XEP-0411 and the
  ``#compat-pep`` feature), answered by :meth:`BookmarksService.handle_legacy_pep`.

A legacy write replaces the whole list: each conference that is new or changed is published
to the native node, each one missing is retracted (every write notifies the account's resources
that asked ``urn:xmpp:bookmarks:1+notify``). What has no native form (XEP-0048 URLs, other
elements beside the conferences) is kept in private storage under ``storage:bookmarks`` and
shown in both legacy forms. After any change, the resources that asked
``storage:bookmarks+notify`` get the new legacy ``<storage/>`` (XEP-0048 §3.3 / XEP-0223).
Sync-on-write of two copies was not chosen: two copies can disagree after a crash between the
writes, a view cannot."""

from __future__ import annotations

import secrets
from xml.etree.ElementTree import Element

from interlink.errors import StanzaError, StanzaErrorCondition
from interlink.hub.context import HubContext, KeyedLock, log
from interlink.hub.pep import PUBSUB, PepService, node_of, publish_options
from interlink.hub.session import Session
from interlink.storage.pep import AccessModel, PepNodeConfig
from interlink.storage.private import PrivateFragment
from interlink.xmpp import ns
from interlink.xmpp.ext import bookmarks
from interlink.xmpp.jid import JID
from interlink.xmpp.stanza import Iq, IqType, Message, MessageType, iq_result
from interlink.xmpp.xml import parse_fragment, serialize

NODES = (bookmarks.NATIVE_NS, bookmarks.LEGACY_NS)
# What a XEP-0223 client may ask of the legacy node (it has this configuration, as a view).
_LEGACY_PROFILE = {
    "pubsub#persist_items": ("1", "true"),
    "pubsub#access_model": ("whitelist",),
    "pubsub#send_last_published_item": ("never",),
    "pubsub#max_items": ("1", "max"),
}


def bookmark_node_defaults(max_items: int) -> dict[str, PepNodeConfig]:
    """The native node's configuration before any publish-options (XEP-0402 §3's): private to
    the account however a client first publishes."""
    return {bookmarks.NATIVE_NS: PepNodeConfig(AccessModel.WHITELIST, max_items, True)}


def _q(local: str) -> str:
    return ns.qname(ns.PUBSUB, local)


class BookmarksService:
    def __init__(self, ctx: HubContext, pep: PepService) -> None:
        self._ctx = ctx
        self._pep = pep
        self._locks = KeyedLock()  # one legacy write at a time per account

    @staticmethod
    def claims(query: Element) -> bool:
        """Whether a pubsub request to an account is for one of the bookmark nodes."""
        return node_of(query) in NODES

    # -- the views -----------------------------------------------------------------------------
    async def _native(self, owner: JID) -> list[bookmarks.Conference] | None:
        stored = await self._pep.stored_items(owner, bookmarks.NATIVE_NS)
        if stored is None:
            return None
        found = (bookmarks.parse_native(item_id, payload) for item_id, payload in stored)
        return [conf for conf in found if conf is not None]

    async def _rest(self, owner: JID) -> list[Element] | None:
        text = await self._ctx.storage.private.get(str(owner), bookmarks.LEGACY_NS)
        return None if text is None else list(parse_fragment(text))

    async def legacy_view(self, owner: JID) -> Element | None:
        """The XEP-0048 ``<storage/>`` of ``owner``: the native node's conferences, then what
        only the legacy form holds; ``None`` when the account never stored bookmarks."""
        await self.adopt(owner)
        native, rest = await self._native(owner), await self._rest(owner)
        if native is None and rest is None:
            return None
        rooms = {conf.jid for conf in native or []}
        rest = [el for el in rest or [] if not bookmarks.names_room(el, rooms)]
        return bookmarks.legacy_storage(native or [], rest)

    async def adopt(self, owner: JID) -> None:
        """Bookmarks stored in private storage before the hub kept them as a view (a raw
        XEP-0048 ``<storage/>``): their conferences move to the native node, once; the rest
        stays. Conferences that cannot be read as such (no bare JID) or that the node does not
        take (its limits) stay where they are, shown in the legacy forms as before: nothing is
        lost."""
        private = self._ctx.storage.private
        text = await private.get(str(owner), bookmarks.LEGACY_NS)
        if text is None or not bookmarks.holds_conferences(parse_fragment(text)):
            return
        async with self._locks.hold(owner):
            text = await private.get(str(owner), bookmarks.LEGACY_NS)
            storage = None if text is None else parse_fragment(text)
            if storage is None or not bookmarks.holds_conferences(storage):
                return
            try:
                conferences, rest = bookmarks.parse_legacy(storage)
                rooms = {conf.jid for conf in await self._native(owner) or []}
                for conf in conferences:
                    if conf.jid not in rooms:
                        await self._pep.publish_item(
                            owner,
                            bookmarks.NATIVE_NS,
                            conf.jid,
                            bookmarks.native_payload(conf),
                            bookmarks.NATIVE_OPTIONS,
                        )
            except StanzaError as err:
                log.info(
                    "legacy bookmarks kept as they are",
                    extra={"jid": str(owner), "reason": err.text},
                )
                return
            rest_text = serialize(bookmarks.legacy_storage([], rest), None)
            settings = self._ctx.settings
            await private.put(  # smaller than what it replaces: within any budget it was
                str(owner),
                [PrivateFragment(bookmarks.LEGACY_NS, rest_text)],
                quota=settings.private_quota_bytes,
                max_fragments=settings.private_max_fragments,
            )
            log.info("legacy bookmarks adopted", extra={"jid": str(owner)})

    async def store_legacy(self, owner: JID, storage: Element) -> None:
        """Replace ``owner``'s bookmarks with a XEP-0048 ``<storage/>``.

        Raises:
            StanzaError: ``bad-request`` for a malformed storage, ``resource-constraint`` for
                more conferences than a node keeps (``hub.pep_max_items``) or past the private
                storage budget, and what :meth:`PepService.publish_item` raises.
        """
        if storage.tag != bookmarks.STORAGE:
            raise StanzaError(
                StanzaErrorCondition.BAD_REQUEST,
                "bookmarks are a <storage xmlns='storage:bookmarks'/> element",
            )
        conferences, rest = bookmarks.parse_legacy(storage)
        settings = self._ctx.settings
        if len(conferences) > settings.pep_max_items:
            raise StanzaError(
                StanzaErrorCondition.RESOURCE_CONSTRAINT,
                f"at most {settings.pep_max_items} bookmarked chatrooms per account",
            )
        rest_text = serialize(bookmarks.legacy_storage([], rest), None)
        if len(rest_text.encode()) > settings.private_max_fragment_bytes:
            raise StanzaError(
                StanzaErrorCondition.NOT_ACCEPTABLE,
                f"a private storage element holds at most "
                f"{settings.private_max_fragment_bytes} bytes",
            )
        async with self._locks.hold(owner):
            current = {
                conf.jid: serialize(bookmarks.native_payload(conf), None)
                for conf in (await self._native(owner) or [])
            }
            before = await self._ctx.storage.private.get(str(owner), bookmarks.LEGACY_NS)
            # The private storage write goes first: it is the one that can be refused for the
            # budget (atomically, storage/private.py), and a refused write must change nothing.
            if not await self._ctx.storage.private.put(
                str(owner),
                [PrivateFragment(bookmarks.LEGACY_NS, rest_text)],
                quota=settings.private_quota_bytes,
                max_fragments=settings.private_max_fragments,
            ):
                raise StanzaError(
                    StanzaErrorCondition.RESOURCE_CONSTRAINT,
                    f"private storage holds at most {settings.private_quota_bytes} bytes in "
                    f"{settings.private_max_fragments} elements per account",
                )
            try:
                for conf in conferences:
                    payload = bookmarks.native_payload(conf)
                    if current.get(conf.jid) != serialize(payload, None):
                        await self._pep.publish_item(
                            owner, bookmarks.NATIVE_NS, conf.jid, payload, bookmarks.NATIVE_OPTIONS
                        )
                wanted = {conf.jid for conf in conferences}
                for jid in current.keys() - wanted:
                    await self._pep.retract_item(owner, bookmarks.NATIVE_NS, jid)
            except StanzaError:
                if before is not None:  # the rest goes back to what it was; it fit then
                    await self._ctx.storage.private.put(
                        str(owner),
                        [PrivateFragment(bookmarks.LEGACY_NS, before)],
                        quota=settings.private_quota_bytes,
                        max_fragments=settings.private_max_fragments,
                    )
                raise
        await self.legacy_changed(owner)

    async def legacy_changed(self, owner: JID) -> None:
        """Send the new legacy form to ``owner``'s resources that asked
        ``storage:bookmarks+notify`` (whitelist: the owner's alone)."""
        targets = [
            s for s in self._ctx.sessions.available(owner) if s.wants_notify(bookmarks.LEGACY_NS)
        ]
        if not targets:
            return
        view = await self.legacy_view(owner)
        items = Element(ns.qname(ns.PUBSUB_EVENT, "items"), {"node": bookmarks.LEGACY_NS})
        item = Element(ns.qname(ns.PUBSUB_EVENT, "item"), {"id": bookmarks.LEGACY_ITEM_ID})
        item.append(view if view is not None else bookmarks.legacy_storage([], []))
        items.append(item)
        event = Element(ns.qname(ns.PUBSUB_EVENT, "event"))
        event.append(items)
        for s in targets:
            s.deliver(
                Message(s.jid, owner, secrets.token_hex(6), None, (event,), MessageType.HEADLINE)
            )

    # -- pubsub requests on the two nodes -----------------------------------------------------
    async def handle_pubsub(self, session: Session, iq: Iq, owner: JID) -> None:
        """A pubsub request to one of the bookmark nodes (:meth:`claims`).

        Raises:
            StanzaError: as :meth:`PepService.handle_iq`; on the legacy node, ``forbidden`` for
                anyone but the owner, ``feature-not-implemented`` for anything but publish and
                items, ``conflict``/``precondition-not-met`` for publish options it cannot meet.
        """
        query = iq.query
        assert query is not None
        if node_of(query) == bookmarks.NATIVE_NS:
            if session.jid.bare == owner:  # never on a stranger's request (access is checked
                await self.adopt(owner)  # below, and the migration's timing would tell)
            await self._pep.handle_iq(session, iq, owner)
            if iq.type is IqType.SET and session.jid.bare == owner:
                await self.legacy_changed(owner)
            return
        await self.handle_legacy_pep(session, iq, owner)

    async def handle_legacy_pep(self, session: Session, iq: Iq, owner: JID) -> None:
        query = iq.query
        assert query is not None
        if session.jid.bare != owner:
            raise StanzaError(StanzaErrorCondition.FORBIDDEN, "bookmarks are their owner's alone")
        actions = [c for c in query if c.tag != _q("publish-options")]
        action = actions[0] if len(actions) == 1 else None
        if query.tag != PUBSUB or action is None:
            raise StanzaError(
                StanzaErrorCondition.FEATURE_NOT_IMPLEMENTED,
                "the storage:bookmarks node takes publish and items requests",
            )
        answer = Element(PUBSUB)
        if iq.type is IqType.GET and action.tag == _q("items"):
            view = await self.legacy_view(owner)
            if view is None:
                raise StanzaError(StanzaErrorCondition.ITEM_NOT_FOUND, "no bookmarks stored")
            items = Element(_q("items"), {"node": bookmarks.LEGACY_NS})
            item = Element(_q("item"), {"id": bookmarks.LEGACY_ITEM_ID})
            item.append(view)
            items.append(item)
            answer.append(items)
        elif iq.type is IqType.SET and action.tag == _q("publish"):
            children = list(action)
            item_el = children[0] if len(children) == 1 else None
            if item_el is None or item_el.tag != _q("item") or len(item_el) != 1:
                raise StanzaError(
                    StanzaErrorCondition.BAD_REQUEST,
                    "publish one item holding one <storage xmlns='storage:bookmarks'/>",
                )
            if item_el[0].tag != bookmarks.STORAGE:
                raise StanzaError(
                    StanzaErrorCondition.BAD_REQUEST,
                    "the storage:bookmarks node holds <storage xmlns='storage:bookmarks'/>",
                )
            for var, values in publish_options(query).items():
                if (
                    var not in _LEGACY_PROFILE
                    or (values[:1] or [""])[0] not in _LEGACY_PROFILE[var]
                ):
                    raise StanzaError(
                        StanzaErrorCondition.CONFLICT,
                        f"the storage:bookmarks node cannot have {var}={values!r}",
                        app_condition=ns.qname(ns.PUBSUB_ERRORS, "precondition-not-met"),
                    )
            await self.store_legacy(owner, item_el[0])
            done = Element(_q("publish"), {"node": bookmarks.LEGACY_NS})
            done.append(Element(_q("item"), {"id": bookmarks.LEGACY_ITEM_ID}))
            answer.append(done)
        else:
            raise StanzaError(
                StanzaErrorCondition.FEATURE_NOT_IMPLEMENTED,
                "the storage:bookmarks node takes publish and items requests",
            )
        session.deliver(iq_result(iq, answer, from_=iq.to))
