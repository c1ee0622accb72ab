"""The ad-hoc commands the hub offers (run by :class:`~interlink.hub.adhoc.AdhocService`).

- change password (every local account, for itself): a new password twice, checked by the same
  :func:`~interlink.xmpp.sasl.credentials.password_problem` rules as ``interlink user add`` and
  ``passwd``, stored as salted SCRAM keys like every password (re-derived with the configured
  ``sasl.scram_iterations``; the password itself is not kept). The account's other sessions are
  ended with the stream error ``<reset/>`` (RFC 6120 §4.9.3.16; as Prosody does), parked XEP-0198
  sessions too: whoever held the old password holds no session after the change.
- XEP-0133 §4.23 announce, §4.15 get-online-users-list and §4.16 get-online-users-num, for the
  operators in ``[adhoc] operators``: on the service the command was sent to."""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass

from interlink.errors import StanzaError, StanzaErrorCondition, StreamError, StreamErrorCondition
from interlink.hub.addressing import Addressing
from interlink.hub.adhoc import AdhocLimits, Requester, Step
from interlink.hub.session import SessionRegistry
from interlink.storage.accounts import AccountRepository
from interlink.xmpp import ns
from interlink.xmpp.ext import commands
from interlink.xmpp.ext.commands import Action, AppCondition, Note, NoteType, Status
from interlink.xmpp.forms import FormField, render_form
from interlink.xmpp.jid import JID
from interlink.xmpp.sasl.credentials import PasswordRules, derive_credentials, password_problem
from interlink.xmpp.stanza import Message, MessageType
from interlink.xmpp.xml import element

CHANGE_PASSWORD = "urn:interlink:adhoc:change-password"  # noqa: S105 (a node name)
_PASSWORD_FORM = CHANGE_PASSWORD


def _one(fields: dict[str, list[str]], var: str, *, required: bool = True) -> str:
    values = fields.get(var, [])
    if required and (not values or not values[0]):
        raise commands.error(AppCondition.BAD_PAYLOAD, f"the field {var!r} is required")
    if len(values) > 1:
        raise commands.error(AppCondition.BAD_PAYLOAD, f"the field {var!r} takes one value")
    return values[0] if values else ""


@dataclass(slots=True)
class ChangePassword:
    accounts: AccountRepository
    sessions: SessionRegistry
    rules: PasswordRules
    scram_iterations: int
    node: str = CHANGE_PASSWORD
    name: str = "Change password"
    operators_only: bool = False

    async def start(self, requester: Requester) -> Step:
        if await self.accounts.get_credentials(str(requester.jid.bare)) is None:
            # e.g. a third party's account, which logs in with its provider's tokens
            raise StanzaError(StanzaErrorCondition.FORBIDDEN, "this account has no password")
        form = render_form(
            _PASSWORD_FORM,
            [
                FormField("password", "text-private", "New password", required=True),
                FormField("password-confirm", "text-private", "Again", required=True),
            ],
            title="Change password",
            instructions=f"At least {self.rules.min_length} characters. Your other sessions "
            "will be logged out.",
        )
        return Step(Status.EXECUTING, form, actions=(Action.COMPLETE,), default=Action.COMPLETE)

    async def submit(
        self, requester: Requester, stage: int, action: Action, fields: dict[str, list[str]]
    ) -> Step:
        password = _one(fields, "password")
        if password != _one(fields, "password-confirm"):
            raise commands.error(AppCondition.BAD_PAYLOAD, "the two passwords differ")
        problem = password_problem(password, self.rules)
        if problem is not None:
            raise commands.error(AppCondition.BAD_PAYLOAD, problem)
        # PBKDF2 of the configured cost, off the event loop
        creds = await asyncio.to_thread(derive_credentials, password, self.scram_iterations)
        account = requester.jid.bare
        await self.accounts.set_credentials(str(account), creds)
        ended = self.sessions.terminate(
            lambda full: full.bare == account and full != requester.jid,
            StreamError(StreamErrorCondition.RESET, "the account's password was changed"),
        )
        return Step.done(f"Password changed; {ended} other session(s) logged out.")


def _users_of(addressing: Addressing, jid: JID, service: str) -> bool:
    """Whether ``jid`` is one of ``service``'s own users: not a third party reaching it through
    the interop subdomains, whom the operator's announcements and lists do not concern (what a
    third party receives goes through the consent rules)."""
    return jid.domain == service and addressing.is_home(jid)


def _online(sessions: SessionRegistry, addressing: Addressing, service: str) -> list[JID]:
    """The accounts of ``service`` with a bound session, in JID order."""
    found = {s.jid.bare for s in sessions.all_sessions() if _users_of(addressing, s.jid, service)}
    return sorted(found, key=str)


@dataclass(slots=True)
class Announce:
    """XEP-0133 §4.23: a headline from the service's domain to every online session of it."""

    sessions: SessionRegistry
    addressing: Addressing
    node: str = commands.ANNOUNCE
    name: str = "Send announcement to online users"
    operators_only: bool = True

    async def start(self, requester: Requester) -> Step:
        form = render_form(
            commands.ADMIN,
            [
                FormField("subject", "text-single", "Subject"),
                FormField("announcement", "text-multi", "Announcement", required=True),
            ],
            title="Send announcement to online users",
        )
        return Step(Status.EXECUTING, form, actions=(Action.COMPLETE,), default=Action.COMPLETE)

    async def submit(
        self, requester: Requester, stage: int, action: Action, fields: dict[str, list[str]]
    ) -> Step:
        lines = fields.get("announcement", [])
        body = "\n".join(lines)
        if not body.strip():
            raise commands.error(AppCondition.BAD_PAYLOAD, "the announcement is empty")
        subject = _one(fields, "subject", required=False)
        payload = [element(ns.qname(ns.CLIENT, "body"), text=body)]
        if subject:
            payload.insert(0, element(ns.qname(ns.CLIENT, "subject"), text=subject))
        service = JID.make(None, requester.service)
        sent = 0
        for s in self.sessions.all_sessions():
            if s.available and _users_of(self.addressing, s.jid, requester.service):
                s.deliver(
                    Message(
                        s.jid,
                        service,
                        secrets.token_hex(6),
                        None,
                        tuple(payload),
                        MessageType.HEADLINE,
                    )
                )
                sent += 1
        return Step.done(f"Announcement sent to {sent} session(s).")


@dataclass(slots=True)
class OnlineUsersNum:
    """XEP-0133 §4.16."""

    sessions: SessionRegistry
    addressing: Addressing
    node: str = commands.ONLINE_USERS_NUM
    name: str = "Get number of online users"
    operators_only: bool = True

    async def start(self, requester: Requester) -> Step:
        count = len(_online(self.sessions, self.addressing, requester.service))
        form = render_form(
            commands.ADMIN,
            [FormField("onlineusersnum", "text-single", "Online users", (str(count),))],
            type_="result",
        )
        return Step(Status.COMPLETED, form)

    async def submit(
        self, requester: Requester, stage: int, action: Action, fields: dict[str, list[str]]
    ) -> Step:
        raise commands.error(AppCondition.BAD_ACTION, "this command has one stage")


@dataclass(slots=True)
class OnlineUsersList:
    """XEP-0133 §4.15, answered at once (no max_items stage), at most
    ``adhoc.online_users_list_max`` JIDs."""

    sessions: SessionRegistry
    addressing: Addressing
    limits: AdhocLimits
    node: str = commands.ONLINE_USERS_LIST
    name: str = "Get list of online users"
    operators_only: bool = True

    async def start(self, requester: Requester) -> Step:
        online = _online(self.sessions, self.addressing, requester.service)
        cap = self.limits.online_users_list_max
        shown = tuple(str(j) for j in online[:cap])
        form = render_form(
            commands.ADMIN,
            [FormField("onlineuserjids", "jid-multi", "The list of all online users", shown)],
            type_="result",
        )
        notes: tuple[Note, ...] = ()
        if len(online) > cap:
            notes = (Note(NoteType.WARN, f"the first {cap} of {len(online)} online users"),)
        return Step(Status.COMPLETED, form, notes)

    async def submit(
        self, requester: Requester, stage: int, action: Action, fields: dict[str, list[str]]
    ) -> Step:
        raise commands.error(AppCondition.BAD_ACTION, "this command has one stage")


def standard_commands(
    *,
    accounts: AccountRepository,
    sessions: SessionRegistry,
    addressing: Addressing,
    limits: AdhocLimits,
    rules: PasswordRules,
    scram_iterations: int,
) -> list[ChangePassword | Announce | OnlineUsersNum | OnlineUsersList]:
    """The hub's command registry, in the order disco lists it."""
    return [
        ChangePassword(accounts, sessions, rules, scram_iterations),
        Announce(sessions, addressing),
        OnlineUsersList(sessions, addressing, limits),
        OnlineUsersNum(sessions, addressing),
    ]


__all__ = ["CHANGE_PASSWORD", "standard_commands"]
