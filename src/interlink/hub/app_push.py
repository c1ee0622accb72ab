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
waits to be resumed (XEP-0198) leads to **one** notification per registration: a pubsub publish
from the account's bare JID to the app server on the registered node, whose summary form says
``message-count`` = 1 and nothing else (no sender, no body), with the registration's
publish-options. An error answer from the app server disables that registration (§8: the app
server removed the node, or refuses it), except an error of type ``wait``, which is temporary;
no answer (app server not connected, or silent past ``reply_timeout``) keeps it.

Notifications go out in the background, in order per hub; they never hold up routing."""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol
from xml.etree.ElementTree import Element

from interlink.errors import StanzaError, StanzaErrorCondition
from interlink.hub.session import Session
from interlink.storage.push_registrations import PushRegistration, PushRegistrationRepository
from interlink.xmpp import ns
from interlink.xmpp.ext import push
from interlink.xmpp.jid import JID
from interlink.xmpp.stanza import Iq, IqType, Message, iq_result
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


@dataclass(frozen=True, slots=True)
class AppPushSettings:
    max_registrations: int = 10  # per account
    max_publish_options_bytes: int = 4096  # one serialized publish-options form
    reply_timeout: float = 30.0  # seconds to wait for the app server's answer

    def __post_init__(self) -> None:
        if self.max_registrations < 1 or self.reply_timeout <= 0:
            raise ValueError("max_registrations must be at least 1, reply_timeout positive")


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
    ) -> None:
        self._repo = repo
        self._link = link
        self._settings = settings
        self._clock = clock
        self._is_gatekeeper = is_gatekeeper_account
        self._tasks: set[asyncio.Task[None]] = set()
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
        is connected. Schedules the notifications; never blocks, never raises."""
        task = asyncio.get_running_loop().create_task(
            self._notify_quietly(account.bare), name=f"app push {account.bare}"
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _notify_quietly(self, account: JID) -> None:
        await self.notify(account)

    async def notify(self, account: JID) -> int:
        """One content-free notification to each of ``account``'s registrations; returns how
        many app servers accepted theirs."""
        accepted = 0
        for registration in await self._repo.for_account(str(account)):
            try:
                if await self._publish(account, registration):
                    accepted += 1
            except Exception:
                self.stats.failed += 1
                log.exception("push notification failed", extra={"jid": str(account)})
        return accepted

    async def _publish(self, account: JID, registration: PushRegistration) -> bool:
        options = (
            parse_fragment(registration.publish_options) if registration.publish_options else None
        )
        iq = Iq(
            JID.parse(registration.service),
            account,
            "push-" + secrets.token_hex(8),
            None,
            (push.publish(registration.node, options, message_count=1),),
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
        """Wait for notifications under way."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    # -- disco (§5: the account advertises push) ----------------------------------------------
    @staticmethod
    def account_features(info: Element) -> None:
        info.append(Element(ns.qname(ns.DISCO_INFO, "feature"), {"var": push.NS}))


def _error_type(answer: Iq) -> str:
    error = answer.find(_ERROR)
    return "" if error is None else error.get("type", "")


__all__ = ["AppPushSettings", "AppPushStats", "AppServerLink", "AppServerPush"]
