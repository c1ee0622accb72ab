"""Forwarding abuse reports to the reported user's provider (DESIGN Flow 7).

A report a gatekeeper user files about a third-party user (XEP-0377, stored by the hub first) is
POSTed to ``{callback}/interlink/v1/report`` as a JWS signed with the hub's key, like a push. It
carries what the provider needs to act and nothing more: the provider's own subject for the
reported user, the reason, the reporter's text and the messages the reporter chose to attach.
The reporter's identity is not sent. Delivery is retried with exponential backoff; the outcome is
written to the report, and reports not yet forwarded are sent again when the hub starts.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable

import httpx

from interlink.interop.providers import ProviderError, ProviderRegistry
from interlink.interop.push import AccountLookup, HubSigner, post_jws
from interlink.storage.policy import PolicyRepository, Report
from interlink.storage.providers import ProviderStatus
from interlink.tasks import cancel_and_wait
from interlink.xmpp.addressing import domain_of, interop_service

log = logging.getLogger("interlink.reports")
REPORT_PATH = "/interlink/v1/report"


class ReportForwarder:
    def __init__(
        self,
        repo: PolicyRepository,
        accounts: AccountLookup,
        registry: ProviderRegistry,
        signer: HubSigner,
        client: httpx.AsyncClient,
        *,
        hub_domain: str,
        clock: Callable[[], float] = time.time,
        max_attempts: int = 5,
        backoff: float = 1.0,
    ) -> None:
        self._repo = repo
        self._accounts = accounts
        self._registry = registry
        self._signer = signer
        self._client = client
        self._domain = hub_domain
        self._clock = clock
        self._max_attempts = max_attempts
        self._backoff = backoff
        self._tasks: set[asyncio.Task[None]] = set()
        self.forwarded = 0
        self.failed = 0

    def submit(self, report: Report) -> None:
        """Forward ``report`` in the background (it is already stored)."""
        if report.provider_id is None:
            return  # about one of the hub's own users: for the operator only
        task = asyncio.get_running_loop().create_task(self._forward(report))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def resume(self, limit: int = 1000) -> None:
        """Forward the reports a previous run could not."""
        for report in reversed(await self._repo.reports(limit, unforwarded=True)):
            self.submit(report)

    async def _forward(self, report: Report) -> None:
        assert report.provider_id is not None
        try:
            provider = await self._registry.get(report.provider_id)
        except ProviderError:
            await self._repo.report_forwarded(
                report.id, None, "the provider no longer exists", done=True
            )
            return
        if provider.status is not ProviderStatus.APPROVED:
            # Kept for the operator; sent if the provider is approved again (at a later start).
            await self._repo.report_forwarded(
                report.id, None, f"the provider is {provider.status}", done=False
            )
            return
        account = await self._accounts.account(report.reported)
        claims = {
            # the service the reported user was reported on
            "iss": interop_service(domain_of(report.reported), provider.id) or self._domain,
            "aud": provider.id,
            "jti": secrets.token_urlsafe(12),
            "iat": int(self._clock()),
            "exp": int(self._clock()) + 300,
            "report_id": report.id,
            "sub": None if account is None else account.subject,
            "reason": report.reason,
            "text": report.text,
            "messages": [{"id": m.id, "at": m.at, "body": m.body} for m in report.messages],
            "reported_at": int(report.created_at),
        }
        delivery = await post_jws(
            self._client,
            provider.callback_url + REPORT_PATH,
            self._signer.sign(claims, typ="interlink-report+jwt"),
            attempts=self._max_attempts,
            backoff=self._backoff,
        )
        if delivery.delivered:
            self.forwarded += 1
            await self._repo.report_forwarded(report.id, self._clock(), None, done=True)
            return
        self.failed += 1
        log.warning("report not forwarded", extra={"report": report.id, "error": delivery.error})
        await self._repo.report_forwarded(report.id, None, delivery.error, done=delivery.refused)

    async def close(self) -> None:
        await cancel_and_wait(list(self._tasks))
