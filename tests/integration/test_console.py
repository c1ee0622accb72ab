"""The operator console over real HTTPS, without a browser (tests/browser has the Playwright
ones): login with the admin token through a form into an HttpOnly/Secure/SameSite=Strict session
cookie, CSRF on every form, a strict Content-Security-Policy on every page, and the operator's
daily actions going through the same services as the admin API."""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path

import httpx
import pytest

from interlink.storage.policy import Report
from tests.integration.kit import DOMAIN, running_hub

TOKEN = "console-admin-token-0123456789abcdef"


def csrf_of(html: str, name: str = "csrf") -> str:
    found = re.search(rf'name="{name}" value="([^"]+)"', html)
    assert found is not None, html[:2000]
    return found.group(1)


async def login(http: httpx.AsyncClient, token: str = TOKEN) -> httpx.Response:
    form = await http.get("/admin/login")
    return await http.post(
        "/admin/login", data={"token": token, "login_csrf": csrf_of(form.text, "login_csrf")}
    )


async def test_login_cookie_csp_and_csrf(tmp_path: Path) -> None:
    async with running_hub(tmp_path, admin={"token": TOKEN}) as (server, certs):
        base = f"https://127.0.0.1:{server.ports['http']}"
        async with httpx.AsyncClient(base_url=base, verify=str(certs.ca), timeout=10) as http:
            anonymous = await http.get("/admin/providers")
            assert anonymous.status_code == 303
            assert anonymous.headers["location"] == "/admin/login"
            form = await http.get("/admin/login")
            csp = form.headers["content-security-policy"]
            assert "default-src 'none'" in csp
            assert "script" not in csp  # no script is allowed at all
            assert form.headers["x-frame-options"] == "DENY"
            assert "<script" not in form.text
            assert 'name="token" type="password"' in form.text
            # A login without the pre-login CSRF token is refused; so is a wrong token.
            no_csrf = await http.post("/admin/login", data={"token": TOKEN, "login_csrf": "x"})
            assert no_csrf.status_code == 403
            wrong = await login(http, "not-the-token")
            assert wrong.status_code == 401
            assert "Wrong admin token" in wrong.text
            ok = await login(http)
            assert ok.status_code == 303
            cookie = ok.headers["set-cookie"]
            for flag in ("HttpOnly", "Secure", "SameSite=strict", "Path=/admin"):
                assert flag.lower() in cookie.lower(), cookie
            assert TOKEN not in cookie
            assert TOKEN not in ok.headers["location"]
            page = await http.get("/admin/providers")
            assert page.status_code == 200
            assert TOKEN not in page.text
            # A form without the session's CSRF token changes nothing.
            forged = await http.post(
                "/admin/providers",
                data={"csrf": "forged", "provider_id": "evil", "display_name": "Evil"},
            )
            assert forged.status_code == 403
            assert await server.storage.providers.get("evil") is None  # type: ignore[union-attr]
            css = await http.get("/admin/console.css")
            assert css.headers["content-type"].startswith("text/css")
            # Logged out: the cookie no longer opens anything.
            out = await http.post("/admin/logout", data={"csrf": csrf_of(page.text)})
            assert out.status_code == 303
            assert (await http.get("/admin/providers")).status_code == 303


async def test_failed_logins_are_throttled_per_source_at_the_boundary(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Two free failures; the third attempt, even with the right token, waits (429 with
    Retry-After, the token not compared), and is logged."""
    caplog.set_level(logging.WARNING, "interlink.console")
    console = {"login_free_failures": 2, "login_backoff": 60.0, "login_backoff_cap": 600.0}
    async with running_hub(tmp_path, admin={"token": TOKEN}, console=console) as (server, certs):
        base = f"https://127.0.0.1:{server.ports['http']}"
        async with httpx.AsyncClient(base_url=base, verify=str(certs.ca), timeout=10) as http:
            assert (await login(http, "guess-1")).status_code == 401
            assert (await login(http)).status_code == 303  # a success in between is fine
            assert (await login(http, "guess-2")).status_code == 401
            throttled = await login(http)
            assert throttled.status_code == 429
            assert throttled.headers["retry-after"] == "60"
            assert "try again in 60 s" in throttled.text
            assert "<script" not in throttled.text
    messages = [r.getMessage() for r in caplog.records]
    assert messages.count("console login failed") == 2
    assert messages.count("console login throttled") == 1


async def test_daily_actions_through_the_console(tmp_path: Path) -> None:
    async with running_hub(tmp_path, admin={"token": TOKEN}) as (server, certs):
        assert server.storage is not None
        base = f"https://127.0.0.1:{server.ports['http']}"
        async with httpx.AsyncClient(base_url=base, verify=str(certs.ca), timeout=10) as http:
            await login(http)
            csrf = csrf_of((await http.get("/admin/providers")).text)
            onboarded = await http.post(
                "/admin/providers",
                data={
                    "csrf": csrf,
                    "provider_id": "examplechat",
                    "display_name": "Example Chat",
                    "callback_url": "https://api.example.chat",
                    "jwks_url": "https://api.example.chat/jwks.json",
                    "media_hosts": "media.example.chat, media.example.chat:8443",
                    "features": ["messaging", "media"],
                    "rate_tier": "standard",
                },
                follow_redirects=True,
            )
            assert "Provider examplechat onboarded" in onboarded.text
            refused = await http.post(
                "/admin/providers",
                data={
                    "csrf": csrf,
                    "provider_id": "bad id",
                    "display_name": "x",
                    "callback_url": "http://x.example",
                    "jwks_url": "",
                },
                follow_redirects=True,
            )
            assert "Refused:" in refused.text
            approved = await http.post(
                "/admin/providers/examplechat/status",
                data={"csrf": csrf, "to": "approved"},
                follow_redirects=True,
            )
            assert "Provider examplechat is approved" in approved.text
            provider = await server.storage.providers.get("examplechat")
            assert provider is not None
            assert provider.media_hosts == ("media.example.chat", "media.example.chat:8443")
            audit = await server.storage.providers.audit("examplechat")
            assert {e.actor for e in audit} == {"console"}
            # the federation fields (issue 15): onboard a federated provider, edit its address
            federated = await http.post(
                "/admin/providers",
                data={
                    "csrf": csrf,
                    "provider_id": "chatprov",
                    "display_name": "Chat Example",
                    "callback_url": "https://chat.example/hub",
                    "jwks_url": "https://chat.example/jwks",
                    "mode": "federated",
                    "server_domains": "chat.example",
                    "s2s_fingerprints": "ab" * 32,
                },
                follow_redirects=True,
            )
            assert "Provider chatprov onboarded" in federated.text
            page = (await http.get("/admin/providers/chatprov")).text
            assert "federated (chat.example)" in page
            edited = await http.post(
                "/admin/providers/chatprov/edit",
                data={
                    "csrf": csrf,
                    "display_name": "Chat Example",
                    "callback_url": "https://chat.example/hub",
                    "jwks_url": "https://chat.example/jwks",
                    "mode": "both",
                    "server_domains": "chat.example",
                    "s2s_fingerprints": "ab" * 32,
                    "s2s_address": "127.0.0.1:5270",
                },
                follow_redirects=True,
            )
            assert "Provider chatprov updated" in edited.text
            chatprov = await server.storage.providers.get("chatprov")
            assert chatprov is not None
            assert (str(chatprov.mode), chatprov.server_domains, chatprov.s2s_address) == (
                "both",
                ("chat.example",),
                "127.0.0.1:5270",
            )
            assert chatprov.s2s_fingerprints == ("ab" * 32,)
            bad_mode = await http.post(
                "/admin/providers/chatprov/edit",
                data={
                    "csrf": csrf,
                    "display_name": "x",
                    "callback_url": "https://x.example",
                    "mode": "sideways",
                },
                follow_redirects=True,
            )
            assert "Refused:" in bad_mode.text

            report_id = await server.storage.policy.add_report(
                Report(
                    0,
                    f"alice@{DOMAIN}",
                    f"bob@{DOMAIN}",
                    None,
                    "urn:xmpp:reporting:spam",
                    "spam",
                    (),
                    time.time(),
                )
            )
            listed = await http.get("/admin/reports")
            assert f"Report {report_id}" in listed.text
            resolved = await http.post(
                f"/admin/reports/{report_id}/resolve",
                data={"csrf": csrf, "resolution": "warned bob"},
                follow_redirects=True,
            )
            assert "warned bob" in resolved.text
            assert "resolved" in resolved.text

            await server.storage.policy.set_phone(f"alice@{DOMAIN}", "+4915112345678")
            found = await http.get("/admin/users", params={"phone": "+4915112345678"})
            assert f"alice@{DOMAIN}" in found.text
            disabled = await http.post(
                "/admin/users/action",
                data={"csrf": csrf, "jid": f"alice@{DOMAIN}", "do": "disable"},
                follow_redirects=True,
            )
            assert "disabled; its sessions ended" in disabled.text
            assert await server.storage.moderation.disabled_at(f"alice@{DOMAIN}") is not None

            metrics = await http.get("/admin/")
            assert metrics.text.count("<svg") >= 5
            assert "Refusals by rule" in metrics.text
            assert 'http-equiv="refresh"' in metrics.text


def test_the_metrics_history_keeps_the_newest_values_and_a_bounded_number() -> None:
    from interlink.net.console_charts import MetricsHistory

    history = MetricsHistory(size=3, spacing=2.0)
    history.add(0.0, {"messages": 0})
    history.add(1.0, {"messages": 3})  # sooner than the spacing: updates the newest sample
    assert history.series("messages") == [(0.0, 3)]
    for t in (2.0, 4.0, 6.0):
        history.add(t, {"messages": t})
    assert history.series("messages") == [(2.0, 2.0), (4.0, 4.0), (6.0, 6.0)]
    assert history.series("other") == [(2.0, 0.0), (4.0, 0.0), (6.0, 0.0)]
