"""The operator console in a real browser (Playwright with Chromium): onboarding a provider end
to end (the console's form, approval, then a user of that provider enlists), and resolving a
report. Skipped, with the reason, only where no browser can be started.

Screenshots go to ``$INTERLINK_CONSOLE_SCREENSHOTS`` when set (``docs/console`` refreshes the
ones the operations guide shows), else to the test's temporary directory."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from interlink.storage.policy import AttachedMessage, Report
from tests.integration.kit import ADMIN_TOKEN, DOMAIN, PROVIDER_ID, Xmpp, hub_with_kit

playwright_api = pytest.importorskip(
    "playwright.async_api", reason="Playwright is not installed (scripts/test installs it)"
)


def chromium_path() -> str | None:
    for candidate in (
        os.environ.get("INTERLINK_CHROMIUM"),
        "/usr/bin/chromium",
        shutil.which("chromium"),
        shutil.which("chromium-browser"),
    ):
        if candidate and Path(candidate).exists():
            return candidate
    return None


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    path = chromium_path()
    if path is None:
        pytest.skip("no Chromium on this machine (scripts/test installs Debian's chromium)")
    async with playwright_api.async_playwright() as p:
        launched = await p.chromium.launch(
            executable_path=path, args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        try:
            yield launched
        finally:
            await launched.close()


def shots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("INTERLINK_CONSOLE_SCREENSHOTS", str(tmp_path / "shots")))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


async def logged_in(browser: Any, hub_url: str) -> Any:
    # The hub's development certificate is self-signed: this browser context accepts it.
    context = await browser.new_context(
        ignore_https_errors=True, viewport={"width": 1280, "height": 900}
    )
    page = await context.new_page()
    await page.goto(f"{hub_url}/admin/")
    assert page.url.endswith("/admin/login")
    await page.get_by_label("Admin token").fill(ADMIN_TOKEN)
    await page.get_by_role("button", name="Log in").click()
    await page.wait_for_url(f"{hub_url}/admin/")
    assert ADMIN_TOKEN not in page.url
    cookies = await context.cookies()
    session = next(c for c in cookies if c["name"] == "interlink_console")
    assert session["httpOnly"]
    assert session["secure"]
    assert session["sameSite"] == "Strict"
    return page


async def test_onboarding_a_provider_end_to_end(browser: Any, tmp_path: Path) -> None:
    folder = shots(tmp_path)
    errors: list[str] = []
    async with hub_with_kit(tmp_path, onboard=False) as setup:
        page = await logged_in(browser, setup.hub_url)
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        await page.get_by_role("link", name="Providers", exact=True).click()
        await page.get_by_label("Id (a DNS label").fill(PROVIDER_ID)
        await page.get_by_label("Display name").fill("Example Chat")
        await page.get_by_label("Callback URL").fill(setup.kit_url)
        await page.get_by_label("JWK set URL").fill(f"{setup.kit_url}/.well-known/jwks.json")
        await page.get_by_label("introspection").check()
        await page.screenshot(path=str(folder / "onboard.png"), full_page=True)
        await page.get_by_role("button", name="Onboard").click()
        await page.get_by_text("Provider examplechat onboarded").wait_for()
        await page.get_by_role("link", name=PROVIDER_ID, exact=True).click()
        await page.get_by_role("button", name="Approve").click()
        await page.get_by_text("Provider examplechat is approved").wait_for()
        await page.screenshot(path=str(folder / "providers.png"), full_page=True)

        # The provider's user can now enlist, and the console lists the enlistment. Alice
        # writes to Bob without having turned third-party chats on: the metrics page charts her
        # messages to Example Chat and their refusal by that rule.
        jid, _token = await setup.enlist(tmp_path / "bob-device")
        alice = Xmpp(f"alice@{DOMAIN}/phone", "pw", setup.certs)
        await alice.login(setup.server.ports["c2s-starttls"])
        try:
            for text in ("hello?", "anyone there?", "hi Bob"):
                alice.send_chat(jid, text)
            await alice.ping_server()  # answered after the messages were handled
            await page.get_by_role("link", name="Metrics", exact=True).click()
            await page.get_by_role("img", name="Refusals by rule").wait_for()
            await page.reload()  # a second sample for the time series
        finally:
            await alice.close()
        await page.get_by_role("link", name="Enlistments", exact=True).click()
        await page.get_by_role("link", name=jid).wait_for()
        await page.get_by_role("button", name=f"Revoke the enlistment of {jid}").click()
        await page.get_by_text(f"Enlistment of {jid} revoked").wait_for()
        assert setup.server.storage is not None
        assert await setup.server.storage.enlistment.account(jid) is None
        audit = await setup.server.storage.providers.audit(PROVIDER_ID)
        assert [e.actor for e in audit] == ["console", "console"]
        await page.get_by_role("link", name="Metrics", exact=True).click()
        await page.get_by_role("img", name="Refusals by rule").wait_for()
        await page.screenshot(path=str(folder / "metrics.png"), full_page=True)
    assert errors == []  # no CSP violation, nothing blocked


async def test_resolving_a_report(browser: Any, tmp_path: Path) -> None:
    folder = shots(tmp_path)
    async with hub_with_kit(tmp_path) as setup:
        storage = setup.server.storage
        assert storage is not None
        jid, _token = await setup.enlist(tmp_path / "bob-device")
        report_id = await storage.policy.add_report(
            Report(
                id=0,
                reporter=f"alice@{DOMAIN}",
                reported=jid,
                provider_id=PROVIDER_ID,
                reason="urn:xmpp:reporting:spam",
                text="Unsolicited ads, three times today",
                messages=(AttachedMessage("m1", "2026-12-07T10:00:00Z", "cheap watches!!"),),
                created_at=time.time(),
            )
        )
        page = await logged_in(browser, setup.hub_url)
        await page.get_by_role("link", name="Reports", exact=True).click()
        await page.get_by_role("link", name=f"Report {report_id}").click()
        await page.get_by_text("cheap watches!!").wait_for()
        await page.get_by_label("What was done").fill("Example Chat suspended the sender")
        await page.screenshot(path=str(folder / "report.png"), full_page=True)
        await page.get_by_role("button", name="Resolve").click()
        await page.get_by_text(f"Report {report_id} resolved.").wait_for()
        await page.get_by_text("Example Chat suspended the sender — console").wait_for()
        resolutions = await storage.moderation.resolutions([report_id])
        assert resolutions[report_id].resolution == "Example Chat suspended the sender"
        assert resolutions[report_id].actor == "console"
        await page.get_by_role("link", name="Reports", exact=True).click()
        await page.get_by_text("No open report.").wait_for()
