"""What an operator changes about users and reports, and what an operator looks up: disabled
accounts, the resolution of reports, accounts by phone number, enlisted third-party accounts.

Only the records and the repository are here; the actions are in
:mod:`interlink.interop.moderation`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from interlink.storage.enlistment import InteropAccount


@dataclass(frozen=True, slots=True)
class ReportResolution:
    """How an operator closed a report (a note for the record) and who did, when."""

    report_id: int
    resolution: str
    actor: str
    resolved_at: float


class ModerationRepository(Protocol):
    async def set_disabled(self, jid: str, disabled: bool, now: float) -> bool:
        """Disable (or enable again) the account ``jid``; returns whether that changed anything.
        A change is recorded in the change feed (``account-disabled`` / ``account-enabled``).

        Raises :class:`~interlink.errors.AccountNotFoundError`."""
        ...

    async def disabled_at(self, jid: str) -> float | None:
        """When ``jid`` was disabled, or ``None`` (enabled, or no such account)."""
        ...

    async def disabled_accounts(self) -> list[str]:
        """Every disabled account, in JID order."""
        ...

    async def accounts_with_phone(self, phone: str) -> list[str]:
        """The accounts holding the E.164 ``phone`` (at most one per service), in JID order."""
        ...

    async def resolve_report(
        self, report_id: int, resolution: str, actor: str, now: float
    ) -> ReportResolution | None:
        """Close the report (the first resolution stays: a second returns it unchanged);
        ``None`` when there is no such report."""
        ...

    async def resolutions(self, report_ids: list[int]) -> dict[int, ReportResolution]:
        """The resolutions of those of ``report_ids`` that are resolved."""
        ...

    async def unresolved_reports(self, limit: int) -> list[int]:
        """The ids of the newest ``limit`` reports not yet resolved, newest first."""
        ...

    async def resolved_reports(self, limit: int) -> list[int]:
        """The ids of the newest ``limit`` resolved reports, newest first."""
        ...

    async def accounts(self, limit: int) -> list[str]:
        """The first ``limit`` accounts, in JID order."""
        ...

    async def enlisted(self, provider_id: str | None, limit: int) -> list[InteropAccount]:
        """Enlisted third-party accounts (of ``provider_id``, or all), newest first."""
        ...
