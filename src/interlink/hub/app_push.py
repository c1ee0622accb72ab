"""XEP-0357 push notifications for the hub's own (gatekeeper) accounts: registrations and the
content-free notifications (wire code: :mod:`interlink.xmpp.ext.push`).

A client registers an app server (``<enable jid node/>``, §5) through its own account; the
registration is stored (:class:`~interlink.storage.push_registrations.PushRegistration`), at most
``max_registrations`` per account. The app server is an XMPP entity the hub can reach: today an
external component (XEP-0114) configured on this hub; enabling any other ``jid`` is refused with
``remote-server-not-found`` at once rather than accepted and never delivered. Third-party
accounts are refused (``not-allowed``): their provider is notified over HTTP instead
(:mod:`interlink.interop.push`).

Each message stored for an account whose devices are all offline
(:class:`~interlink.hub.observers.HubObservers` ``offline_stored``) or queued for a session that
waits to be resumed (XEP-0198) is counted in **one** notification per registration: a pubsub
publish from the account's bare JID to the app server on the registered node, whose summary form
says ``message-count`` and nothing else (no sender, no body), with the registration's
publish-options. While an account's notifications are in flight, messages stored meanwhile are
coalesced: at most one notification per registration waits, carrying their count (XEP-0357 §7's
``message-count``). So when the app server answers before the next message, every stored message
gets its own push with ``message-count`` = 1; a burst gets fewer pushes whose counts add up to it.
At most ``max_in_flight`` accounts' notifications are in flight at once (``push.max_in_flight``);
the others wait their turn, one pending count per account. An error answer from the app server
disables that registration (§8: the app server removed the node, or refuses it), except an error
of type ``wait``, which is temporary; no answer (app server not connected, or silent past
``reply_timeout``) keeps it.

Notifications go out in the background (``spawn``, the hub's task set); they never hold up
routing, and a failure is logged.

In a cluster a notification starts on the node that stored (or queued) the message, so once per
message whatever the number of nodes, and reaches the app server through the node it is
connected to (:class:`ClusterAppServers`: each node writes where its components are to the
session directory, and a request for a component of another node goes to that node,
:class:`~interlink.hub.nodes.NodeCalls`)."""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any, Protocol
from xml.etree.ElementTree import Element

from interlink.cluster import Cluster
from interlink.errors import StanzaError, StanzaErrorCondition
from interlink.hub.nodes import NodeCalls
from interlink.hub.session import Session
from interlink.storage.push_registrations import PushRegistration, PushRegistrationRepository
from interlink.xmpp import ns
from interlink.xmpp.ext import push
from interlink.xmpp.jid import JID
from interlink.xmpp.stanza import Iq, IqType, Message, iq_result, parse_stanza, to_xml
from interlink.xmpp.xml import parse_fragment, serialize

log = logging.getLogger("interlink.push")
_ERROR = ns.qname(ns.CLIENT, "error")


class AppServerLink(Protocol):
    """Where app servers are reached (the component listener)."""

    def reaches(self, domain: str) -> bool:
        """Whether an app server may be registered at ``domain`` (a configured component)."""
        ...

    async def request(self, iq: Iq, reply_within: float) -> Iq | None:
        """Send ``iq`` to the app server at its ``to``; its answer (result or error), or
        ``None`` when none is connected or it did not answer within ``reply_within`` seconds."""
        ...


class LocalAppServers(AppServerLink, Protocol):
    """The app servers connected to this node."""

    def connected(self, domain: str) -> bool: ...


_COMPONENT = "component"  # the resource under which a node lists a component it holds


class ClusterAppServers:
    """The :class:`AppServerLink` of a node of a cluster: the app servers connected here, and
    through the other nodes those connected there (``calls``; ``None``: this node alone).
    ``spawn`` runs background work."""

    def __init__(
        self,
        local: LocalAppServers,
        cluster: Cluster,
        calls: NodeCalls | None,
        spawn: Callable[[Coroutine[Any, Any, None], str], None],
    ) -> None:
        self._local = local
        self._cluster = cluster
        self._calls = calls if cluster.shared else None
        self._spawn = spawn

    def reaches(self, domain: str) -> bool:
        return self._local.reaches(domain)

    def changed(self, domain: str, connected: bool) -> None:
        """A component connected to this node, or left it: the directory says so."""
        if self._calls is None:
            return
        directory = self._cluster.directory
        where = f"{domain}/{_COMPONENT}"
        work = (
            directory.bind(where, available=True, priority=0)
            if connected
            else directory.unbind(where)
        )
        self._spawn(work, f"component {domain} in the directory")

    async def request(self, iq: Iq, reply_within: float) -> Iq | None:
        to = iq.to
        assert to is not None
        cluster, calls = self._cluster, self._calls
        if calls is None or self._local.connected(to.domain):
            return await self._local.request(iq, reply_within)
        held = await cluster.directory.locate(to.domain)
        for node in sorted({w.node for w in held if w.node != cluster.node_id}):
            body = {"iq": to_xml(iq, None), "within": reply_within}
            answer = await calls.call(node, "component", body, reply_within)
            if answer is not None:
                raw = str(answer.get("iq", ""))
                stanza = parse_stanza(parse_fragment(raw)) if raw else None
                return stanza if isinstance(stanza, Iq) else None
        return None

    async def answer(self, body: Mapping[str, Any]) -> Mapping[str, Any] | None:
        """Another node's request for an app server connected here (served as ``component``
        through :class:`~interlink.hub.nodes.NodeCalls`)."""
        iq = parse_stanza(parse_fragment(str(body["iq"])))
        if not isinstance(iq, Iq):
            return None
        answer = await self._local.request(iq, float(body["within"]))
        return {"iq": "" if answer is None else to_xml(answer, None)}


@dataclass(frozen=True, slots=True)
class AppPushSettings:
    max_registrations: int = 10  # per account
    max_publish_options_bytes: int = 4096  # one serialized publish-options form
    reply_timeout: float = 30.0  # seconds to wait for the app server's answer
    max_in_flight: int = 100  # accounts whose notifications are under way at once

    def __post_init__(self) -> None:
        if self.max_registrations < 1 or self.reply_timeout <= 0 or self.max_in_flight < 1:
            raise ValueError(
                "max_registrations and max_in_flight must be at least 1, reply_timeout positive"
            )


@dataclass(slots=True)
class AppPushStats:
    sent: int = 0  # notifications the app server accepted
    failed: int = 0  # no answer, or a temporary error
    disabled: int = 0  # registrations removed after an error answer


class AppServerPush:
    def __init__(
        self,
        repo: PushRegistrationRepository,
        link: AppServerLink,
        settings: AppPushSettings,
        clock: Callable[[], float],
        is_gatekeeper_account: Callable[[JID], bool],
        spawn: Callable[[Coroutine[Any, Any, None], str], None],
    ) -> None:
        self._repo = repo
        self._link = link
        self._settings = settings
        self._clock = clock
        self._is_gatekeeper = is_gatekeeper_account
        self._spawn = spawn
        self._pending: dict[JID, int] = {}  # messages not yet counted in a push, per account
        self._busy: set[JID] = set()  # accounts whose notifications are in flight
        self._idle = asyncio.Event()
        self._idle.set()
        self.stats = AppPushStats()

    # -- registrations (§5, §6) ---------------------------------------------------------------
    async def handle_iq(self, session: Session, iq: Iq) -> None:
        """An ``<enable/>`` or ``<disable/>`` from the account's own session.

        Raises:
            StanzaError: ``bad-request``/``jid-malformed`` for a malformed request (see
                :func:`~interlink.xmpp.ext.push.parse_request`); ``bad-request`` for a get;
                ``not-allowed`` for a third-party account; ``remote-server-not-found`` for an
                app server the hub cannot reach; ``not-acceptable`` for an oversized
                publish-options form; ``resource-constraint`` past ``max_registrations``.
        """
        query = iq.query
        assert query is not None
        if iq.type is not IqType.SET:
            raise StanzaError(StanzaErrorCondition.BAD_REQUEST, "push is enabled with an iq set")
        account = session.jid.bare
        request = push.parse_request(query)
        if isinstance(request, push.Disable):
            await self._repo.unregister(str(account), str(request.service), request.node)
            session.deliver(iq_result(iq, from_=None))
            return
        if not self._is_gatekeeper(account):
            raise StanzaError(
                StanzaErrorCondition.NOT_ALLOWED,
                "third-party accounts are notified through their provider",
            )
        if not self._link.reaches(request.service.domain):
            raise StanzaError(
                StanzaErrorCondition.REMOTE_SERVER_NOT_FOUND,
                f"this hub cannot reach an app server at '{request.service.domain}'",
            )
        options = (
            serialize(request.publish_options, None) if request.publish_options is not None else ""
        )
        limit = self._settings.max_publish_options_bytes
        if len(options.encode()) > limit:
            raise StanzaError(
                StanzaErrorCondition.NOT_ACCEPTABLE,
                f"publish-options hold at most {limit} bytes",
            )
        registration = PushRegistration(
            str(account), str(request.service), request.node, options, self._clock()
        )
        maximum = self._settings.max_registrations
        if not await self._repo.register(registration, max_per_account=maximum):
            raise StanzaError(
                StanzaErrorCondition.RESOURCE_CONSTRAINT,
                f"an account holds at most {maximum} push registrations; disable one first",
            )
        session.deliver(iq_result(iq, from_=None))

    # -- notifications (§7) -------------------------------------------------------------------
    def message_stored(self, account: JID, message: Message) -> None:
        """Observer: a message was stored (or queued) for ``account``, none of whose devices
        is connected. Counts it for the account's next notification and starts that when the
        account has none in flight and ``max_in_flight`` allows; never blocks, never raises."""
        bare = account.bare
        self._pending[bare] = self._pending.get(bare, 0) + 1
        self._idle.clear()
        self._start_ready()

    def _start_ready(self) -> None:
        cap = self._settings.max_in_flight
        for bare in list(self._pending):
            if len(self._busy) >= cap:
                return
            if bare in self._busy:
                continue  # coalesced: counted in the push after the one in flight
            count = self._pending.pop(bare)
            self._busy.add(bare)
            work = self._notify_then_next(bare, count)
            try:
                self._spawn(work, f"app push {bare}")
            except Exception:  # e.g. the loop is closing: these messages go unpushed, said so
                work.close()
                self._busy.discard(bare)
                self.stats.failed += 1
                log.exception("push notification not started", extra={"jid": str(bare)})
        if not self._busy and not self._pending:
            self._idle.set()

    async def _notify_then_next(self, account: JID, count: int) -> None:
        try:
            await self.notify(account, count)
        finally:
            self._busy.discard(account)
            self._start_ready()

    @property
    def in_flight(self) -> int:
        """Accounts whose notifications are under way."""
        return len(self._busy)

    async def notify(self, account: JID, count: int = 1) -> int:
        """One content-free notification (``message-count`` = ``count``) to each of
        ``account``'s registrations; returns how many app servers accepted theirs."""
        try:
            registrations = await self._repo.for_account(str(account))
        except Exception:
            self.stats.failed += 1
            log.exception("push registrations could not be read", extra={"jid": str(account)})
            return 0
        accepted = 0
        for registration in registrations:
            try:
                if await self._publish(account, registration, count):
                    accepted += 1
            except Exception:
                self.stats.failed += 1
                log.exception("push notification failed", extra={"jid": str(account)})
        return accepted

    async def _publish(self, account: JID, registration: PushRegistration, count: int) -> bool:
        options = (
            parse_fragment(registration.publish_options) if registration.publish_options else None
        )
        iq = Iq(
            JID.parse(registration.service),
            account,
            "push-" + secrets.token_hex(8),
            None,
            (push.publish(registration.node, options, message_count=count),),
            IqType.SET,
        )
        answer = await self._link.request(iq, self._settings.reply_timeout)
        if answer is None:
            self.stats.failed += 1
            return False
        if answer.type is IqType.RESULT:
            self.stats.sent += 1
            return True
        if _error_type(answer) == "wait":
            self.stats.failed += 1
            return False
        removed = await self._repo.unregister(
            registration.account, registration.service, registration.node
        )
        self.stats.disabled += removed
        log.info(
            "push registration disabled after an error from the app server",
            extra={"jid": registration.account, "service": registration.service},
        )
        return False

    async def close(self) -> None:
        """Wait for notifications under way and those waiting their turn."""
        await self._idle.wait()

    # -- disco (§5: the account advertises push) ----------------------------------------------
    @staticmethod
    def account_features(info: Element) -> None:
        info.append(Element(ns.qname(ns.DISCO_INFO, "feature"), {"var": push.NS}))


def _error_type(answer: Iq) -> str:
    error = answer.find(_ERROR)
    return "" if error is None else error.get("type", "")


__all__ = ["AppPushSettings", "AppPushStats", "AppServerLink", "AppServerPush"]
