"""Personal eventing (XEP-0163) on the part of publish-subscribe (XEP-0060) it needs.

Every account has its own nodes, addressed by the account's bare JID. The owner publishes
(creating a node on first publish, with XEP-0223 publish-options), retracts, configures and
deletes; others read and subscribe as the node's access model allows. A publication is sent as a
``headline`` event to the owner's resources and its presence subscribers' resources that asked for
``<node>+notify`` in their capabilities, and to explicit subscribers. When a resource's
capabilities become known it gets the newest item of each node it may read and wants.

In a cluster the audience's resources on other nodes get their notifications through those
nodes' inboxes (:func:`~interlink.hub.nodes.send_live`); each node checks its own sessions'
``+notify`` features.

This is what OMEMO uses for device lists and bundles (``urn:xmpp:omemo:2:*`` and
``eu.siacs.conversations.axolotl.*``).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping
from typing import Protocol
from xml.etree.ElementTree import Element

from interlink.cluster import Located
from interlink.errors import StanzaError, StanzaErrorCondition
from interlink.hub.context import HubContext, log
from interlink.hub.nodes import WHEN_AVAILABLE, elsewhere_all, send_live, when_notify
from interlink.hub.session import Session
from interlink.storage.pep import AccessModel, PepItem, PepNodeConfig
from interlink.xmpp import ns
from interlink.xmpp.forms import X as FORM
from interlink.xmpp.forms import build_form, read_form
from interlink.xmpp.jid import JID, InvalidJID
from interlink.xmpp.stanza import Iq, IqType, Message, MessageType, iq_result, to_xml
from interlink.xmpp.xml import parse_fragment, serialize

PUBSUB = ns.qname(ns.PUBSUB, "pubsub")
PUBSUB_OWNER = ns.qname(ns.PUBSUB_OWNER, "pubsub")
_EVENT = ns.qname(ns.PUBSUB_EVENT, "event")
_PUBLISH_OPTIONS_FORM = "http://jabber.org/protocol/pubsub#publish-options"
_NODE_CONFIG_FORM = "http://jabber.org/protocol/pubsub#node_config"
_BOOLEAN = ("1", "true", "0", "false")
# Node options whose value is the hub's behaviour and cannot be changed: accepted (publish
# options, configuration) with these values only. Deletions and retractions are always notified.
_FIXED = {
    "pubsub#notify_delete": ("1", "true"),
    "pubsub#notify_retract": ("1", "true"),
    "pubsub#deliver_payloads": ("1", "true"),
    "pubsub#deliver_notifications": ("1", "true"),
    "pubsub#presence_based_delivery": ("0", "false"),
}


def send_last_published_item(config: PepNodeConfig) -> str:
    """When the hub sends a node's newest item by itself (XEP-0060 §12.20): to a resource whose
    capabilities show ``+notify`` (XEP-0163 §4.3.2), unless only the owner reads the node
    (``whitelist``: private data, XEP-0223 §3, XEP-0402 §3, whose clients ask ``never`` and
    fetch the items when they want them)."""
    if config.access_model is AccessModel.WHITELIST:
        return "never"
    return "on_sub_and_presence"


def _q(namespace: str, local: str) -> str:
    return ns.qname(namespace, local)


def _error(
    condition: StanzaErrorCondition, text: str, pubsub_error: str | None = None
) -> StanzaError:
    app = _q(ns.PUBSUB_ERRORS, pubsub_error) if pubsub_error else None
    return StanzaError(condition, text, app_condition=app)


def _node_attr(el: Element) -> str:
    node = el.get("node", "")
    if not node:
        raise _error(StanzaErrorCondition.BAD_REQUEST, "a node is required", "nodeid-required")
    if len(node) > 1023:
        raise _error(StanzaErrorCondition.BAD_REQUEST, "node name too long")
    return node


def publish_options(query: Element) -> dict[str, list[str]]:
    """The fields of a publish request's ``<publish-options/>`` form (XEP-0060 §7.1.5), without
    ``FORM_TYPE``; empty when there is none."""
    opts = query.find(_q(ns.PUBSUB, "publish-options"))
    form = None if opts is None else opts.find(FORM)
    if form is None:
        return {}
    options = read_form(form)
    options.pop("FORM_TYPE", None)
    return options


def node_of(query: Element) -> str | None:
    """The node a pubsub request acts on (its one action's ``node``), if it names one."""
    for child in query:
        if child.tag != _q(ns.PUBSUB, "publish-options"):
            return child.get("node")
    return None


class PepGates(Protocol):
    """The interop rules and blocks, as PEP needs them (a required gate, never optional)."""

    async def may_query(self, reader: JID, owner: JID) -> bool:
        """Whether ``reader`` may read ``owner``'s nodes."""
        ...

    async def may_exchange(self, from_: JID, to: JID) -> bool:
        """Whether ``from_``'s notifications may reach ``to`` (bare JIDs)."""
        ...

    async def marker_for(self, sender: JID, recipient: JID) -> Element | None:
        """The interop marker for what ``sender``'s node sends ``recipient``, if any."""
        ...


class PepService:
    """``node_defaults``: the configuration a node of that name is created with before the
    publish-options apply (e.g. XEP-0402 bookmarks: ``whitelist``, so a client that publishes
    without options does not show its bookmarks to its contacts); others get
    :class:`PepNodeConfig`'s defaults."""

    def __init__(
        self,
        ctx: HubContext,
        gates: PepGates,
        node_defaults: Mapping[str, PepNodeConfig] | None = None,
    ) -> None:
        self._ctx = ctx
        self._gates = gates
        self._node_defaults = dict(node_defaults or {})

    async def _event_message(self, owner: JID, to: JID, event: Element) -> Message:
        payload: tuple[Element, ...] = (event,)
        if owner != to.bare:
            mark = await self._gates.marker_for(owner, to)
            if mark is not None:
                payload = (event, mark)
        return Message(to, owner, secrets.token_hex(6), None, payload, MessageType.HEADLINE)

    # -- dispatch ----------------------------------------------------------------------------
    async def handle_iq(self, session: Session, iq: Iq, owner: JID) -> None:
        query = iq.query
        assert query is not None
        actions = [c for c in query if c.tag != _q(ns.PUBSUB, "publish-options")]
        if len(actions) != 1:
            raise StanzaError(StanzaErrorCondition.BAD_REQUEST, "one pubsub action per request")
        action = actions[0]
        is_owner = session.jid.bare == owner
        answer: Element | None
        if query.tag == PUBSUB:
            if iq.type is IqType.SET and action.tag == _q(ns.PUBSUB, "publish"):
                self._owner_only(is_owner)
                answer = await self._publish(session, owner, action, query)
            elif iq.type is IqType.SET and action.tag == _q(ns.PUBSUB, "retract"):
                self._owner_only(is_owner)
                await self._retract(owner, action)
                answer = None
            elif iq.type is IqType.GET and action.tag == _q(ns.PUBSUB, "items"):
                answer = await self._items(session, owner, action)
            elif iq.type is IqType.SET and action.tag == _q(ns.PUBSUB, "subscribe"):
                answer = await self._subscribe(session, owner, action)
            elif iq.type is IqType.SET and action.tag == _q(ns.PUBSUB, "unsubscribe"):
                await self._unsubscribe(session, owner, action)
                answer = None
            else:
                raise _error(
                    StanzaErrorCondition.FEATURE_NOT_IMPLEMENTED, "pubsub action not supported"
                )
        else:
            self._owner_only(is_owner)
            if action.tag == _q(ns.PUBSUB_OWNER, "configure"):
                answer = await self._configure(owner, action, iq.type)
            elif iq.type is IqType.SET and action.tag == _q(ns.PUBSUB_OWNER, "delete"):
                await self._delete(owner, action)
                answer = None
            else:
                raise _error(
                    StanzaErrorCondition.FEATURE_NOT_IMPLEMENTED,
                    "pubsub owner action not supported",
                )
        result = (
            iq_result(iq, answer, from_=iq.to) if answer is not None else iq_result(iq, from_=iq.to)
        )
        session.deliver(result)

    @staticmethod
    def _owner_only(is_owner: bool) -> None:
        if not is_owner:
            raise StanzaError(StanzaErrorCondition.FORBIDDEN, "only the owner may do this")

    # -- access --------------------------------------------------------------------------------
    async def _config(self, owner: JID, node: str) -> PepNodeConfig:
        config = await self._ctx.storage.pep.node(str(owner), node)
        if config is None:
            raise StanzaError(StanzaErrorCondition.ITEM_NOT_FOUND, "no such node")
        return config

    async def _may_read(self, reader: JID, owner: JID, config: PepNodeConfig) -> bool:
        if reader == owner:
            return True
        if not await self._gates.may_query(reader, owner):
            return False
        if config.access_model is AccessModel.OPEN:
            return True
        if config.access_model is AccessModel.PRESENCE:
            item = await self._ctx.storage.roster.get(str(owner), str(reader))
            return item is not None and item.subscription.has_from
        return False

    async def _check_read(self, reader: JID, owner: JID, node: str) -> PepNodeConfig:
        config = await self._config(owner, node)
        if not await self._may_read(reader, owner, config):
            if config.access_model is AccessModel.PRESENCE:
                raise _error(
                    StanzaErrorCondition.NOT_AUTHORIZED,
                    "a presence subscription is required",
                    "presence-subscription-required",
                )
            raise _error(StanzaErrorCondition.NOT_ALLOWED, "the node is closed", "closed-node")
        return config

    # -- publish (XEP-0060 §7.1, XEP-0223) -------------------------------------------------------
    def _options(
        self, fields: dict[str, list[str]], base: PepNodeConfig, *, publishing: bool
    ) -> PepNodeConfig:
        """``base`` changed by the fields of a publish-options (``publishing``) or configuration
        form. The hub supports the fields below; another is ``precondition-not-met`` in
        publish-options (XEP-0060 §7.1.5: the service cannot meet it) and ``not-acceptable`` in a
        configuration form (§8.2.5.3). Fields whose value the hub does not let change
        (:data:`_FIXED`, and ``send_last_published_item``, which follows the access model) are
        accepted with that value only."""
        access, max_items, persist = base.access_model, base.max_items, base.persist_items
        limit = self._ctx.settings.pep_max_items
        send_last: str | None = None
        for var, values in fields.items():
            value = values[0] if values else ""
            if var == "pubsub#access_model":
                try:
                    access = AccessModel(value)
                except ValueError:
                    raise _error(
                        StanzaErrorCondition.NOT_ACCEPTABLE,
                        f"access model '{value}' is not supported",
                        "unsupported-access-model",
                    ) from None
            elif var == "pubsub#max_items":
                if value == "max":
                    max_items = limit
                elif value.isdigit() and 1 <= int(value) <= limit:
                    max_items = int(value)
                else:
                    raise StanzaError(
                        StanzaErrorCondition.NOT_ACCEPTABLE,
                        f"max_items must be 1 to {limit} or 'max'",
                    )
            elif var == "pubsub#persist_items":
                if value not in _BOOLEAN:
                    raise StanzaError(StanzaErrorCondition.BAD_REQUEST, "persist_items is boolean")
                persist = value in ("1", "true")
            elif var == "pubsub#send_last_published_item":
                send_last = value
            elif var in _FIXED and value in _FIXED[var]:
                continue
            else:
                raise self._unmet(publishing, f"the node option {var}={value!r} is not supported")
        config = PepNodeConfig(access, max_items, persist)
        if send_last is not None and send_last != send_last_published_item(config):
            raise self._unmet(
                publishing,
                f"send_last_published_item is {send_last_published_item(config)} on a node "
                f"with access model {config.access_model}",
            )
        return config

    @staticmethod
    def _unmet(publishing: bool, text: str) -> StanzaError:
        if publishing:
            return _error(StanzaErrorCondition.CONFLICT, text, "precondition-not-met")
        return StanzaError(StanzaErrorCondition.NOT_ACCEPTABLE, text)

    async def _publish(
        self, session: Session, owner: JID, publish: Element, query: Element
    ) -> Element:
        node = _node_attr(publish)
        items = list(publish)
        if len(items) != 1 or items[0].tag != _q(ns.PUBSUB, "item"):
            raise _error(
                StanzaErrorCondition.BAD_REQUEST, "publish exactly one item", "invalid-payload"
            )
        item_el = items[0]
        if len(item_el) != 1:
            raise _error(
                StanzaErrorCondition.BAD_REQUEST,
                "an item carries exactly one payload",
                "invalid-payload",
            )
        item_id = item_el.get("id") or secrets.token_hex(8)
        await self.publish_item(owner, node, item_id, item_el[0], publish_options(query))
        answer = Element(PUBSUB)
        done = Element(_q(ns.PUBSUB, "publish"), {"node": node})
        done.append(Element(_q(ns.PUBSUB, "item"), {"id": item_id}))
        answer.append(done)
        return answer

    async def publish_item(
        self,
        owner: JID,
        node: str,
        item_id: str,
        payload_el: Element,
        options: dict[str, list[str]],
    ) -> None:
        """Publish one item as the owner (creating the node with ``options``, or checking them
        as preconditions on a node that exists, XEP-0060 §7.1.5) and notify.

        Raises:
            StanzaError: ``not-acceptable``/``payload-too-big`` past ``pep_max_item_bytes``,
                ``conflict``/``precondition-not-met``, ``not-allowed`` past ``pep_max_nodes``,
                ``resource-constraint`` past ``pep_quota_bytes``.
        """
        payload = serialize(payload_el, None)
        limit = self._ctx.settings.pep_max_item_bytes
        if len(payload.encode()) > limit:
            raise _error(
                StanzaErrorCondition.NOT_ACCEPTABLE,
                f"item payload larger than {limit} bytes",
                "payload-too-big",
            )
        repo = self._ctx.storage.pep
        async with self._ctx.pep_locks.hold(owner):
            existing = await repo.node(str(owner), node)
            if existing is None:
                if await repo.node_count(str(owner)) >= self._ctx.settings.pep_max_nodes:
                    raise StanzaError(
                        StanzaErrorCondition.NOT_ALLOWED,
                        f"at most {self._ctx.settings.pep_max_nodes} nodes per account",
                    )
                base = self._node_defaults.get(node, PepNodeConfig())
                config = self._options(options, base, publishing=True)
                await repo.configure(str(owner), node, config, self._ctx.clock())
            else:
                config = existing
                if options and self._options(options, existing, publishing=True) != existing:
                    raise _error(
                        StanzaErrorCondition.CONFLICT,
                        "the node's configuration differs from the publish options",
                        "precondition-not-met",
                    )
            item = PepItem(item_id, payload, self._ctx.clock())
            quota = self._ctx.settings.pep_quota_bytes
            if config.persist_items and not await repo.publish(str(owner), node, item, quota=quota):
                log.info("PEP quota reached", extra={"jid": str(owner), "quota": quota})
                raise StanzaError(
                    StanzaErrorCondition.RESOURCE_CONSTRAINT,
                    f"this account's PEP items would take more than its quota of {quota} bytes; "
                    "retract items or delete nodes first",
                )
        event_items = Element(_q(ns.PUBSUB_EVENT, "items"), {"node": node})
        event_item = Element(_q(ns.PUBSUB_EVENT, "item"), {"id": item_id})
        event_item.append(payload_el)
        event_items.append(event_item)
        await self._notify(owner, node, config, event_items)

    async def _retract(self, owner: JID, retract: Element) -> None:
        node = _node_attr(retract)
        ids = [i.get("id", "") for i in retract.findall(_q(ns.PUBSUB, "item"))]
        if len(ids) != 1 or not ids[0]:
            raise _error(
                StanzaErrorCondition.BAD_REQUEST, "retract one item by id", "item-required"
            )
        await self.retract_item(owner, node, ids[0])

    async def retract_item(self, owner: JID, node: str, item_id: str) -> None:
        """Retract an item as the owner and notify (``pubsub#notify_retract`` is always on).

        Raises:
            StanzaError: ``item-not-found`` for no such node or item.
        """
        config = await self._config(owner, node)
        if not await self._ctx.storage.pep.retract(str(owner), node, item_id):
            raise StanzaError(StanzaErrorCondition.ITEM_NOT_FOUND, "no such item")
        event = Element(_q(ns.PUBSUB_EVENT, "items"), {"node": node})
        event.append(Element(_q(ns.PUBSUB_EVENT, "retract"), {"id": item_id}))
        await self._notify(owner, node, config, event)

    async def stored_items(self, owner: JID, node: str) -> list[tuple[str, Element]] | None:
        """Every item of ``owner``'s ``node`` (id, payload), oldest first; ``None`` if there is
        no such node. For the owner's own services (no access check)."""
        repo = self._ctx.storage.pep
        if await repo.node(str(owner), node) is None:
            return None
        return [(i.id, parse_fragment(i.payload)) for i in await repo.items(str(owner), node)]

    # -- retrieval (XEP-0060 §6.5) ---------------------------------------------------------------
    async def _items(self, session: Session, owner: JID, request: Element) -> Element:
        node = _node_attr(request)
        await self._check_read(session.jid.bare, owner, node)
        ids = [i.get("id", "") for i in request.findall(_q(ns.PUBSUB, "item"))]
        newest: int | None = None
        if request.get("max_items") is not None:
            text = request.get("max_items", "")
            if not text.isdigit() or int(text) < 1:
                raise StanzaError(StanzaErrorCondition.BAD_REQUEST, "max_items must be positive")
            newest = int(text)
        found = await self._ctx.storage.pep.items(
            str(owner), node, ids=[i for i in ids if i], newest=newest
        )
        items = Element(_q(ns.PUBSUB, "items"), {"node": node})
        for item in found:
            el = Element(_q(ns.PUBSUB, "item"), {"id": item.id})
            el.append(parse_fragment(item.payload))
            items.append(el)
        answer = Element(PUBSUB)
        answer.append(items)
        return answer

    # -- subscriptions (XEP-0060 §6.1, §6.2) ---------------------------------------------------
    def _subscriber(self, session: Session, request: Element) -> JID:
        try:
            jid = JID.parse(request.get("jid", ""))
        except InvalidJID:
            jid = None
        if jid is None or jid.bare != session.jid.bare:
            raise _error(
                StanzaErrorCondition.BAD_REQUEST, "you may only subscribe yourself", "invalid-jid"
            )
        return jid

    async def _subscribe(self, session: Session, owner: JID, request: Element) -> Element:
        node = _node_attr(request)
        jid = self._subscriber(session, request)
        await self._check_read(session.jid.bare, owner, node)
        cap = self._ctx.settings.pep_max_subscriptions
        if not await self._ctx.storage.pep.subscribe(str(owner), node, str(jid), cap=cap):
            raise _error(  # XEP-0060 §6.1.3.10
                StanzaErrorCondition.POLICY_VIOLATION,
                f"this account has the most subscriptions allowed ({cap})",
                "too-many-subscriptions",
            )
        answer = Element(PUBSUB)
        answer.append(
            Element(
                _q(ns.PUBSUB, "subscription"),
                {"node": node, "jid": str(jid), "subscription": "subscribed"},
            )
        )
        return answer

    async def _unsubscribe(self, session: Session, owner: JID, request: Element) -> None:
        node = _node_attr(request)
        jid = self._subscriber(session, request)
        await self._config(owner, node)
        if not await self._ctx.storage.pep.unsubscribe(str(owner), node, str(jid)):
            raise _error(
                StanzaErrorCondition.UNEXPECTED_REQUEST, "not subscribed", "not-subscribed"
            )

    # -- owner: configure and delete (XEP-0060 §8) -----------------------------------------------
    async def _configure(self, owner: JID, request: Element, itype: IqType) -> Element | None:
        node = _node_attr(request)
        config = await self._config(owner, node)
        if itype is IqType.GET:
            answer = Element(PUBSUB_OWNER)
            configure = Element(_q(ns.PUBSUB_OWNER, "configure"), {"node": node})
            configure.append(
                build_form(
                    _NODE_CONFIG_FORM,
                    {
                        "pubsub#access_model": str(config.access_model),
                        "pubsub#max_items": str(config.max_items),
                        "pubsub#persist_items": "1" if config.persist_items else "0",
                        "pubsub#send_last_published_item": send_last_published_item(config),
                        "pubsub#notify_retract": "1",
                        "pubsub#notify_delete": "1",
                    },
                )
            )
            answer.append(configure)
            return answer
        form = request.find(FORM)
        if form is None:
            raise StanzaError(StanzaErrorCondition.BAD_REQUEST, "a configuration form is required")
        if form.get("type") == "cancel":
            return None
        fields = read_form(form)
        fields.pop("FORM_TYPE", None)
        new = self._options(fields, config, publishing=False)
        await self._ctx.storage.pep.configure(str(owner), node, new, self._ctx.clock())
        return None

    async def _delete(self, owner: JID, request: Element) -> None:
        node = _node_attr(request)
        config = await self._config(owner, node)
        subscribers = await self._ctx.storage.pep.subscribers(str(owner), node)
        await self._ctx.storage.pep.delete_node(str(owner), node)
        event = Element(_q(ns.PUBSUB_EVENT, "delete"), {"node": node})
        await self._notify(owner, node, config, event, subscribers=subscribers)

    # -- notifications (XEP-0163 §4.3) ---------------------------------------------------------
    async def _audience(
        self, owner: JID, node: str, config: PepNodeConfig, subscribers: Iterable[str] | None
    ) -> list[tuple[JID, bool]]:
        """Who gets ``owner``'s notifications of ``node``: ``(jid, by_presence)``, where
        ``by_presence`` means the available resources of the bare ``jid`` that asked for
        ``node+notify`` (the owner, contacts with a presence subscription), else an explicit
        subscriber (a full JID: that resource; a bare one: every available resource)."""
        audience: list[tuple[JID, bool]] = [(owner, True)]
        sessions, alone = self._ctx.sessions, not self._ctx.cluster.shared
        if config.access_model is not AccessModel.WHITELIST:
            for item in await self._ctx.storage.roster.items(str(owner)):
                if item.subscription.has_from:
                    contact = JID.parse(item.contact)
                    if alone and not any(s.wants_notify(node) for s in sessions.available(contact)):
                        continue  # nobody to tell: spare the rules' check
                    if await self._gates.may_exchange(owner, contact):
                        audience.append((contact, True))
        if subscribers is None:
            subscribers = await self._ctx.storage.pep.subscribers(str(owner), node)
        for text in subscribers:
            jid = JID.parse(text)
            if not await self._may_read(jid.bare, owner, config):
                continue  # e.g. the presence subscription was cancelled since
            if not await self._gates.may_exchange(owner, jid.bare):
                continue  # e.g. to a message request the owner has not accepted
            audience.append((jid, False))
        return audience

    def _recipients(self, node: str, audience: list[tuple[JID, bool]]) -> list[Session]:
        """The sessions of this node among ``audience``."""
        sessions = self._ctx.sessions
        targets: dict[JID, Session] = {}
        for jid, by_presence in audience:
            if by_presence:
                chosen = [s for s in sessions.available(jid) if s.wants_notify(node)]
            elif jid.resource:
                chosen = [s for s in [sessions.get(jid)] if s]
            else:
                chosen = sessions.available(jid)
            for s in chosen:
                targets[s.jid] = s
        return list(targets.values())

    async def _notify(
        self,
        owner: JID,
        node: str,
        config: PepNodeConfig,
        event_child: Element,
        *,
        subscribers: Iterable[str] | None = None,
    ) -> None:
        event = Element(_EVENT)
        event.append(event_child)
        audience = await self._audience(owner, node, config, subscribers)
        for s in self._recipients(node, audience):
            s.deliver(await self._event_message(owner, s.jid, event))
        cluster = self._ctx.cluster
        if cluster.shared:
            await self._notify_elsewhere(owner, node, event, audience)

    async def _notify_elsewhere(
        self, owner: JID, node: str, event: Element, audience: list[tuple[JID, bool]]
    ) -> None:
        """The notifications for the audience's resources on other nodes, which write each to
        the session if it still wants it (only its node knows its ``+notify`` features)."""
        cluster = self._ctx.cluster
        found = await elsewhere_all(cluster, [jid.bare for jid, _ in audience])
        explicit: dict[str, Located] = {}
        by_presence: dict[str, Located] = {}
        for jid, presence_based in audience:
            for where in found.get(jid.bare, ()):
                if presence_based:
                    by_presence[where.full_jid] = where
                elif jid.resource is None or where.full_jid == str(jid):
                    explicit[where.full_jid] = where
        for chosen, when in (
            (explicit, WHEN_AVAILABLE),
            ({k: v for k, v in by_presence.items() if k not in explicit}, when_notify(node)),
        ):
            out = [
                (where, to_xml(await self._event_message(owner, JID.parse(full), event), None))
                for full, where in sorted(chosen.items())
            ]
            if out:
                await send_live(cluster, out, when)

    async def features_known(self, session: Session) -> None:
        """Send the newest item of every node ``session`` wants and may read: its own account's
        and those of the contacts whose presence it receives (XEP-0163 §4.3.2)."""
        reader = session.jid.bare
        owners = [reader]
        for contact in await self._ctx.storage.roster.items(str(reader)):
            if contact.subscription.has_to:
                owners.append(JID.parse(contact.contact))
        repo = self._ctx.storage.pep
        for owner in owners:
            for node, config in await repo.nodes(str(owner)):
                if (
                    not session.wants_notify(node)
                    or send_last_published_item(config) == "never"
                    or not await self._may_read(reader, owner, config)
                ):
                    continue
                for item in await repo.items(str(owner), node, newest=1):
                    el = Element(_q(ns.PUBSUB_EVENT, "item"), {"id": item.id})
                    el.append(parse_fragment(item.payload))
                    items = Element(_q(ns.PUBSUB_EVENT, "items"), {"node": node})
                    items.append(el)
                    event = Element(_EVENT)
                    event.append(items)
                    session.deliver(await self._event_message(owner, session.jid, event))
        log.debug("pep last items sent", extra={"jid": str(session.jid)})

    async def node_items_for_disco(self, reader: JID, owner: JID) -> list[str]:
        """Nodes of ``owner`` that ``reader`` may read (disco#items on an account)."""
        return [
            node
            for node, config in await self._ctx.storage.pep.nodes(str(owner))
            if await self._may_read(reader, owner, config)
        ]
