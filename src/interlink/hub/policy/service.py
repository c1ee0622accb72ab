"""A user's own requests about the rules: interop settings, message requests, the providers
there are (``urn:interlink:interop:0``), and XEP-0191 blocking with XEP-0377 reports."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable

from interlink.errors import StanzaError, StanzaErrorCondition
from interlink.hub.context import HubContext
from interlink.hub.groups.aliases import Behind
from interlink.hub.observers import notify
from interlink.hub.policy.engine import InteropPolicy
from interlink.hub.policy.limits import BucketTable
from interlink.hub.session import Session
from interlink.storage.policy import AttachedMessage, PolicyRepository, Report
from interlink.xmpp.ext import blocking, interop, jid_attr, reporting
from interlink.xmpp.jid import JID
from interlink.xmpp.stanza import Iq, IqType, Presence, PresenceType, iq_result

log = logging.getLogger("interlink.policy")

#: (holder, alias) -> the account (and room) behind an alias it was shown, else ``None``
AliasBehind = Callable[[JID, JID], Behind | None]


class PolicyService:
    def __init__(
        self, ctx: HubContext, policy: InteropPolicy, repo: PolicyRepository, behind: AliasBehind
    ) -> None:
        """``behind``: the account behind an alias, so that a report of one reaches the
        account (:class:`~interlink.hub.groups.aliases.AliasAccounts`)."""
        self._ctx = ctx
        self._behind = behind
        self._policy = policy
        self._repo = repo
        self._reports = BucketTable(policy.limits.reports_per_sender, policy.limits.rate_keys)

    async def handle_iq(self, session: Session, iq: Iq) -> None:
        query = iq.query
        assert query is not None
        if query.tag in blocking.QUERIES:
            await self._blocking(session, iq)
            return
        own = session.jid.bare
        if not self._ctx.addressing.is_home(own):
            raise StanzaError(
                StanzaErrorCondition.FEATURE_NOT_IMPLEMENTED,
                "interop settings are for this hub's own users",
            )
        tag, itype = query.tag, iq.type
        if tag == interop.SETTINGS and itype is IqType.GET:
            answer = interop.settings_element(await self._policy.settings(own))
        elif tag == interop.SETTINGS and itype is IqType.SET:
            current = await self._policy.settings(own)
            updated = interop.apply_settings(
                query, current, max_providers=self._policy.limits.max_allowed_providers
            )
            await self._policy.put_settings(own, updated)
            log.info(
                "interop settings changed",
                extra={"jid": str(own), "enabled": updated.enabled},
            )
            answer = interop.settings_element(updated)
        elif tag == interop.REQUESTS and itype is IqType.GET:
            answer = await self._policy.requests(own)
        elif tag == interop.ACCEPT and itype is IqType.SET:
            await self._policy.accept(own, jid_attr(query, "<accept/>").bare)
            session.deliver(iq_result(iq, from_=None))
            return
        elif tag == interop.PROVIDERS and itype is IqType.GET:
            service = own.domain  # a home user's domain is their service
            approved = self._ctx.addressing.approved_providers(service)
            answer = interop.providers_element(dict(approved))
        else:
            raise StanzaError(StanzaErrorCondition.BAD_REQUEST, "wrong iq type for this query")
        session.deliver(iq_result(iq, answer, from_=None))

    # -- XEP-0191 ----------------------------------------------------------------------------------
    async def _blocking(self, session: Session, iq: Iq) -> None:
        query = iq.query
        assert query is not None
        own = session.jid.bare
        blocks = self._policy.blocks
        if query.tag == blocking.BLOCKLIST and iq.type is IqType.GET:
            session.blocklist_requested = True
            answer = blocking.blocklist_element(blocking.BLOCKLIST, blocks.items(own))
            session.deliver(iq_result(iq, answer, from_=None))
            return
        if iq.type is not IqType.SET or query.tag == blocking.BLOCKLIST:
            raise StanzaError(StanzaErrorCondition.BAD_REQUEST, "wrong iq type for this query")
        now = self._ctx.clock()
        if query.tag == blocking.BLOCK:
            items = blocking.block_items(query, allow_empty=False)
            reports = []
            for jid, item in items:
                found = reporting.parse_report(
                    item,
                    max_messages=self._policy.limits.max_report_messages,
                    max_text=self._policy.limits.max_report_text,
                )
                if found is not None:
                    reports.append((jid, self._reported(own, jid), found))
            if reports:
                self._may_report(own, [(jid, reported) for jid, reported, _ in reports], now)
            changed = await blocks.block(own, [jid for jid, _ in items], now)
            await self._appear_offline(own, changed)
            for _, reported, found in reports:
                report = Report(
                    0,
                    str(own),
                    str(reported.account),
                    self._ctx.addressing.provider_of(reported.account),
                    found.reason,
                    found.text,
                    tuple(AttachedMessage(m.id, m.at, m.body) for m in found.messages),
                    now,
                    room=None if reported.room is None else str(reported.room),
                )
                report_id = await self._repo.add_report(report)
                log.info("report stored", extra={"report": report_id, "reporter": str(own)})
                stored = await self._repo.report(report_id)
                if stored is not None:
                    notify(self._ctx.observers.report_filed, stored)
            push_tag = blocking.BLOCK
        else:
            items = blocking.block_items(query, allow_empty=True)
            jids = [jid for jid, _ in items] if items else None
            changed = await blocks.unblock(own, jids)
            push_tag = blocking.UNBLOCK
        session.deliver(iq_result(iq, from_=None))
        if changed or (push_tag == blocking.UNBLOCK and not items):
            self._push(own, push_tag, changed)

    async def _appear_offline(self, own: JID, blocked: list[str]) -> None:
        """A newly blocked contact that could see the user's presence (subscription or directed
        presence) sees the user's resources go unavailable (XEP-0191 §3.3); nobody else learns
        anything."""
        mine = self._ctx.sessions.available(own)
        if not blocked or not mine:
            return
        watchers = {
            JID.parse(item.contact)
            for item in await self._ctx.storage.roster.items(str(own))
            if item.subscription.has_from
        }
        for s in mine:
            watchers.update(target.bare for target in s.directed)
        blocks = self._policy.blocks
        for contact in watchers:
            if not blocks.blocks(own, contact):
                continue
            for other in self._ctx.sessions.available(contact):
                for s in mine:
                    other.deliver(
                        Presence(other.jid, s.jid, None, None, (), PresenceType.UNAVAILABLE)
                    )

    def _reported(self, reporter: JID, named: JID) -> Behind:
        """Whom a report names: the account (and room) behind an alias the reporter was
        shown, else the address as given. A garbled or forged alias is an address as given,
        like a number no account holds: the same answer, the same record."""
        found = self._behind(reporter, named)
        return found if found is not None else Behind(named, None)

    def _may_report(self, reporter: JID, reported: list[tuple[JID, Behind]], now: float) -> None:
        """Reports are filed by this hub's users about users of their own service or third
        parties (a report about a third party is forwarded to its provider, signed by the
        hub), and by third parties about the hub's users of the service they are linked to
        (named by the alias they were shown or the address they know; those stay with the
        operator) — about anyone else, a third party reports to its own provider. Each
        reporter files at most ``reports_per_sender`` of them per period. ``reported``: what
        the reporter named, and the account behind it (:meth:`_reported`); a refusal names
        only the former (the account behind an alias is a phone number)."""
        addressing = self._ctx.addressing
        if not addressing.is_home(reporter):
            for _, behind in reported:
                jid = behind.account
                if not (
                    jid.local is not None
                    and addressing.is_home(jid)
                    and addressing.same_service(reporter, jid)
                ):
                    raise StanzaError(
                        StanzaErrorCondition.NOT_ALLOWED,
                        "third parties report this hub's users here; report others to "
                        "your provider",
                    )
        for named, behind in reported:
            jid = behind.account
            if addressing.is_local(jid) and not addressing.same_service(reporter, jid):
                raise StanzaError(
                    StanzaErrorCondition.NOT_ALLOWED,
                    f"{named} is not a user of your service; report what you received",
                )
        for _ in reported:
            if self._reports.take(str(reporter), now):
                self._ctx.refusals["rate-reports"] += 1
                rate = self._policy.limits.reports_per_sender
                raise StanzaError(
                    StanzaErrorCondition.POLICY_VIOLATION,
                    f"rate limit: at most {rate.count} reports per {rate.period:g} s",
                )

    def _push(self, own: JID, tag: str, jids: list[str]) -> None:
        """Tell every resource of the account that asked for the list, the one that made the
        change included (XEP-0191 §3.3, §3.4: the push follows its iq result)."""
        payload = (blocking.blocklist_element(tag, jids),)
        for s in self._ctx.sessions.sessions(own):
            if s.blocklist_requested:
                s.deliver(
                    Iq(s.jid, None, "push-" + secrets.token_hex(4), None, payload, IqType.SET)
                )
