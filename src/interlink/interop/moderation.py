"""What an operator does about users, reports and enlistments (the admin API and the console
call these; DESIGN Flow 7 for reports).

Every change is written to the database first (with its entry in the change feed, so that
another process or node follows it) and then applied to the running hub through
:class:`~interlink.interop.operator.OperatorState`, the one owner of operator state in memory:
disabling an account or removing it ends its sessions at once. Refusals are
:class:`ModerationError` (problem+json).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from interlink.errors import AccountNotFoundError, HttpProblem
from interlink.interop.discovery import normalize_phone
from interlink.interop.operator import OperatorState
from interlink.interop.reports import ReportForwarder
from interlink.storage.accounts import AccountRepository
from interlink.storage.enlistment import EnlistmentRepository, InteropAccount
from interlink.storage.moderation import ModerationRepository, ReportResolution
from interlink.storage.policy import PolicyRepository, Report
from interlink.xmpp.jid import JID, InvalidJID

RESOLUTION_MAX = 2000


class ModerationError(HttpProblem):
    """A refused operator action: ``status`` and ``kind`` say why."""

    title = "operator action refused"

    def __init__(self, status: int, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.kind = kind


def _not_found(what: str) -> ModerationError:
    return ModerationError(404, "not-found", what)


class ReportStatus(StrEnum):
    OPEN = "open"
    RESOLVED = "resolved"
    ALL = "all"


@dataclass(frozen=True, slots=True)
class UserView:
    """An account as an operator sees it."""

    jid: str
    provider_id: str | None  # a third-party user's provider; None for the hub's own users
    phone: str | None
    disabled_at: float | None
    sessions: tuple[str, ...]

    def public_view(self) -> dict[str, object]:
        return {
            "jid": self.jid,
            "kind": "home" if self.provider_id is None else "interop",
            "provider": self.provider_id,
            "phone": self.phone,
            "disabled": self.disabled_at is not None,
            "disabled_at": self.disabled_at,
            "sessions": list(self.sessions),
        }


@dataclass(frozen=True, slots=True)
class ReportView:
    report: Report
    resolution: ReportResolution | None

    def public_view(self, *, full: bool = False) -> dict[str, object]:
        r = self.report
        view: dict[str, object] = {
            "id": r.id,
            "reporter": r.reporter,
            "reported": r.reported,
            "room": r.room,
            "provider": r.provider_id,
            "reason": r.reason,
            "text": r.text,
            "created_at": r.created_at,
            "forwarded_at": r.forwarded_at,
            "forward_error": r.forward_error,
            "forward_done": r.forward_done,
            "status": str(ReportStatus.OPEN if self.resolution is None else ReportStatus.RESOLVED),
            "resolution": None
            if self.resolution is None
            else {
                "resolution": self.resolution.resolution,
                "actor": self.resolution.actor,
                "resolved_at": self.resolution.resolved_at,
            },
            "messages": len(r.messages),
        }
        if full:
            view["messages"] = [{"id": m.id, "at": m.at, "body": m.body} for m in r.messages]
        return view


def enlistment_view(account: InteropAccount) -> dict[str, object]:
    return {
        "jid": account.jid,
        "provider": account.provider_id,
        "user_id": account.user_id,
        "enlisted_at": account.enlisted_at,
        "updated_at": account.updated_at,
    }


class Moderation:
    def __init__(
        self,
        accounts: AccountRepository,
        policy: PolicyRepository,
        enlistment: EnlistmentRepository,
        repo: ModerationRepository,
        operator: OperatorState,
        forwarder: ReportForwarder,
        clock: Callable[[], float],
    ) -> None:
        self._accounts = accounts
        self._policy = policy
        self._enlistment = enlistment
        self._repo = repo
        self._operator = operator
        self._forwarder = forwarder
        self._clock = clock

    # Users

    @staticmethod
    def _jid(text: str) -> str:
        try:
            jid = JID.parse(text.strip())
        except InvalidJID as exc:
            raise ModerationError(422, "invalid-request", f"not a JID: {exc}") from None
        if jid.resource is not None or jid.local is None:
            raise ModerationError(
                422, "invalid-request", "give an account's bare JID (user@domain)"
            )
        return str(jid)

    async def user(self, jid_text: str) -> UserView:
        jid = self._jid(jid_text)
        if not await self._accounts.exists(jid):
            raise _not_found(f"no account {jid}")
        interop = await self._enlistment.account(jid)
        return UserView(
            jid,
            None if interop is None else interop.provider_id,
            await self._policy.phone_of(jid),
            await self._repo.disabled_at(jid),
            tuple(self._operator.sessions_of(jid)),
        )

    async def find_by_phone(self, phone: str) -> list[UserView]:
        compact = normalize_phone(phone)
        if compact is None:
            raise ModerationError(
                422, "invalid-request", "phone must be an E.164 number, e.g. +4915112345678"
            )
        return [await self.user(jid) for jid in await self._repo.accounts_with_phone(compact)]

    async def users(self, limit: int) -> list[str]:
        return await self._repo.accounts(limit)

    async def set_disabled(self, jid_text: str, disabled: bool) -> UserView:
        jid = self._jid(jid_text)
        try:
            await self._repo.set_disabled(jid, disabled, self._clock())
        except AccountNotFoundError:
            raise _not_found(f"no account {jid}") from None
        self._operator.account_disabled(jid, disabled)
        return await self.user(jid)

    async def delete(self, jid_text: str) -> None:
        """Remove the account with everything stored for it (an enlisted third-party user's
        too: that revokes its enlistment)."""
        jid = self._jid(jid_text)
        try:
            await self._accounts.delete(jid)
        except AccountNotFoundError:
            raise _not_found(f"no account {jid}") from None
        self._operator.account_removed(jid)

    async def sessions(self, jid_text: str) -> list[str]:
        return list((await self.user(jid_text)).sessions)

    async def end_sessions(self, jid_text: str) -> int:
        user = await self.user(jid_text)
        return self._operator.end_sessions_only(user.jid, "the operator ended this session")

    def all_sessions(self, limit: int) -> list[str]:
        return self._operator.all_sessions(limit)

    # Reports

    async def reports(self, status: ReportStatus, limit: int) -> list[ReportView]:
        if status is ReportStatus.ALL:
            reports = await self._policy.reports(limit)
        else:
            ids = await (
                self._repo.unresolved_reports(limit)
                if status is ReportStatus.OPEN
                else self._repo.resolved_reports(limit)
            )
            found = [await self._policy.report(i) for i in ids]
            reports = [r for r in found if r is not None]
        resolutions = await self._repo.resolutions([r.id for r in reports])
        return [ReportView(r, resolutions.get(r.id)) for r in reports]

    async def report(self, report_id: int) -> ReportView:
        report = await self._policy.report(report_id)
        if report is None:
            raise _not_found(f"no report {report_id}")
        return ReportView(report, (await self._repo.resolutions([report_id])).get(report_id))

    async def resolve(self, report_id: int, resolution: str, actor: str) -> ReportView:
        text = resolution.strip()
        if not text or len(text) > RESOLUTION_MAX:
            raise ModerationError(
                422,
                "invalid-request",
                f"say how the report was resolved (1 to {RESOLUTION_MAX} characters)",
            )
        done = await self._repo.resolve_report(report_id, text, actor, self._clock())
        if done is None:
            raise _not_found(f"no report {report_id}")
        return await self.report(report_id)

    async def forward(self, report_id: int) -> ReportView:
        """Send the report (again) to the reported user's provider, in the background."""
        view = await self.report(report_id)
        if view.report.provider_id is None:
            raise ModerationError(
                409, "not-forwardable", "the reported user is one of this hub's own users"
            )
        self._forwarder.submit(view.report)
        return view

    # Enlistments

    async def enlistments(self, provider_id: str | None, limit: int) -> list[InteropAccount]:
        return await self._repo.enlisted(provider_id, limit)

    async def revoke(self, jid_text: str) -> None:
        """Revoke an enlistment: the interop account is removed (its provider's user can
        enlist again with a fresh proof)."""
        jid = self._jid(jid_text)
        if await self._enlistment.account(jid) is None:
            raise _not_found(f"no enlisted account {jid}")
        await self.delete(jid)
