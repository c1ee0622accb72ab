"""The operator's web console, ``/admin/``: server-rendered HTML over the same operations as the
admin API (providers, enlistments, reports, users and sessions) and live metrics with charts.

Security, in one place:

* Login with the admin token through a form (``POST /admin/login``); the token is compared in
  constant time and never appears in a URL. Wrong tokens are throttled per source (an IPv4
  address, an IPv6 /64, ``console.login_*``) by the guard every admin door shares
  (:class:`~interlink.net.admin_token.AdminTokenGuard`: the admin API and ``/metrics`` count
  against the same budget): beyond the free ones, each attempt waits, doubling, and a refused
  one is answered 429 without the token being compared, so the public HTTP port is no place to
  guess it (it has 32 characters or more anyway). A login opens a console session kept in
  memory (:class:`ConsoleSessions`, bounded, expiring), named by a random id in the cookie
  ``interlink_console``: ``HttpOnly; Secure; SameSite=Strict; Path=/admin``.
* Every form carries the session's CSRF token (the login form a pre-login one, double-submitted
  with a cookie), checked in constant time before anything is done.
* Every page is sent with a strict Content-Security-Policy (``default-src 'none'``; the one
  stylesheet from the hub; no script at all: the charts are SVG rendered on the server,
  :mod:`interlink.net.console_charts`), no caching, no referrer, no framing.

Actions call the same domain services as the admin API (the provider registry, the moderation
service): the change goes to the database and its change feed, and through
:class:`~interlink.interop.operator.OperatorState`. The audit names the actor ``console``.
"""

from __future__ import annotations

import hmac
import json
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from importlib import resources
from typing import Annotated, Any
from urllib.parse import parse_qs, urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape

from interlink.errors import HttpProblem
from interlink.hub.auth_throttle import Backoff
from interlink.interop.moderation import Moderation, ReportStatus, enlistment_view
from interlink.interop.providers import FEATURES, RATE_TIERS, ProviderRegistry
from interlink.net.admin_token import (
    AdminAuthError,
    AdminThrottled,
    AdminTokenGuard,
    WrongAdminToken,
)
from interlink.net.console_charts import (
    MetricsHistory,
    Samples,
    bar_chart,
    line_chart,
    sum_by,
    total,
)
from interlink.net.console_sessions import ConsoleSession, ConsoleSessions
from interlink.storage.providers import Provider, ProviderMode, ProviderStatus

log = logging.getLogger("interlink.console")
COOKIE = "interlink_console"
LOGIN_COOKIE = "interlink_console_login"
ACTOR = "console"
CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
}


@dataclass(frozen=True, slots=True)
class ConsoleLimits:
    session_lifetime: float = 8 * 3600.0
    max_sessions: int = 32
    refresh: int = 10
    history: int = 360
    # failed logins per source: free ones, then the first wait doubling up to the cap
    login_backoff: Backoff = field(default_factory=lambda: Backoff(5, 1.0, 300.0))


FORM_MAX_BYTES = 64 * 1024


class FormTooLarge(HttpProblem):
    status = 413
    kind = "too-large"
    title = "the form is too large"


@dataclass(frozen=True, slots=True)
class FormFields:
    """An ``application/x-www-form-urlencoded`` body (the console's forms send no files)."""

    fields: dict[str, list[str]]

    def get(self, name: str, default: str = "") -> str:
        values = self.fields.get(name)
        return values[0] if values else default

    def getlist(self, name: str) -> list[str]:
        return list(self.fields.get(name, []))


async def read_form(request: Request) -> FormFields:
    """The request's form fields, at most :data:`FORM_MAX_BYTES` of them."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > FORM_MAX_BYTES:
            raise FormTooLarge(f"at most {FORM_MAX_BYTES} bytes")
    return FormFields(parse_qs(body.decode("utf-8", errors="replace"), keep_blank_values=True))


class CsrfRefused(HttpProblem):
    status = 403
    kind = "csrf"
    title = "the form's CSRF token is missing or wrong"


# -- the router -------------------------------------------------------------------------------


def _split(text: str) -> list[str]:
    return [part for part in text.replace(",", " ").split() if part]


def _mode(text: str) -> ProviderMode:
    try:
        return ProviderMode(text or ProviderMode.PLUG_AND_PLAY)
    except ValueError:
        raise HttpProblem(f"mode must be one of {[str(m) for m in ProviderMode]}") from None


def console_router(
    registry: ProviderRegistry,
    moderation: Moderation,
    guard: AdminTokenGuard,
    samples: Callable[[], Awaitable[Samples]] | None,
    *,
    limits: ConsoleLimits,
    clock: Callable[[], float] = time.time,
) -> APIRouter:
    env = Environment(
        loader=PackageLoader("interlink.net", "console_templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = lambda t: (
        "—" if t is None else time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(float(t)))
    )
    sessions = ConsoleSessions(limits.max_sessions, limits.session_lifetime, clock)
    history = MetricsHistory(limits.history)
    stylesheet = (
        resources.files("interlink.net").joinpath("console_static/console.css").read_bytes()
    )
    router = APIRouter(prefix="/admin", include_in_schema=False)

    def page(
        name: str, request: Request, session: ConsoleSession | None, code: int = 200, **ctx: Any
    ) -> HTMLResponse:
        notices = []
        if session is not None:
            notices, session.notices = session.notices, []
        html = env.get_template(name).render(
            csrf=None if session is None else session.csrf,
            notices=notices,
            path=request.url.path,
            **ctx,
        )
        return HTMLResponse(html, status_code=code, headers=SECURITY_HEADERS)

    def redirect(to: str) -> RedirectResponse:
        return RedirectResponse(to, status_code=303, headers=SECURITY_HEADERS)

    def current(request: Request) -> ConsoleSession | None:
        return sessions.get(request.cookies.get(COOKIE))

    def check_csrf(session: ConsoleSession, sent: str) -> None:
        if not hmac.compare_digest(sent.encode(), session.csrf.encode()):
            raise CsrfRefused("reload the page and send the form again")

    async def guarded(
        request: Request, form: FormFields, action: Callable[[], Awaitable[str]], back: str
    ) -> Response:
        """Run a form's ``action`` for a logged-in operator with a valid CSRF token; its
        notice (or the refusal's detail) is shown on ``back``."""
        session = current(request)
        if session is None:
            return redirect("/admin/login")
        check_csrf(session, form.get("csrf"))
        try:
            session.notices.append(await action())
        except HttpProblem as exc:
            session.notices.append(f"Refused: {exc.detail}")
        return redirect(back)

    @router.get("/console.css")
    async def css() -> Response:
        return Response(
            stylesheet,
            media_type="text/css",
            headers={**SECURITY_HEADERS, "Cache-Control": "max-age=300"},
        )

    def refuse_login(request: Request, code: int, error: str) -> HTMLResponse:
        again = secrets.token_urlsafe(32)
        refused = page("login.html", request, None, code, login_csrf=again, error=error)
        refused.set_cookie(
            LOGIN_COOKIE, again, httponly=True, secure=True, samesite="strict", path="/admin"
        )
        return refused

    @router.get("/login")
    async def login_form(request: Request) -> Response:
        pre = secrets.token_urlsafe(32)
        response = page("login.html", request, None, login_csrf=pre)
        response.set_cookie(
            LOGIN_COOKIE, pre, httponly=True, secure=True, samesite="strict", path="/admin"
        )
        return response

    @router.post("/login")
    async def login(request: Request, form: Annotated[FormFields, Depends(read_form)]) -> Response:
        token, login_csrf = form.get("token"), form.get("login_csrf")
        pre = request.cookies.get(LOGIN_COOKIE, "")
        if not pre or not hmac.compare_digest(pre.encode(), login_csrf.encode()):
            raise CsrfRefused("reload the login page and try again")
        host = request.client.host if request.client is not None else None
        try:
            guard.check(host, token.strip())
        except AdminThrottled as exc:
            source = guard.source(host)
            log.warning(
                "console login throttled", extra={"source": source, "retry_after": exc.retry_after}
            )
            refused = refuse_login(
                request,
                429,
                f"Too many failed logins from your address; try again in {exc.retry_after} s.",
            )
            refused.headers.update(exc.headers())
            return refused
        except WrongAdminToken:
            log.warning(
                "console login failed",
                extra={"source": guard.source(host), "failures": guard.failures(host)},
            )
            return refuse_login(request, 401, "Wrong admin token.")
        except AdminAuthError:
            return refuse_login(request, 401, "Enter the admin token.")
        sid, _session = sessions.create()
        response = redirect("/admin/")
        response.set_cookie(
            COOKIE,
            sid,
            max_age=int(limits.session_lifetime),
            httponly=True,
            secure=True,
            samesite="strict",
            path="/admin",
        )
        response.delete_cookie(LOGIN_COOKIE, path="/admin")
        return response

    @router.post("/logout")
    async def logout(request: Request, form: Annotated[FormFields, Depends(read_form)]) -> Response:
        session = current(request)
        if session is not None:
            check_csrf(session, form.get("csrf"))
            sessions.end(request.cookies.get(COOKIE))
        response = redirect("/admin/login")
        response.delete_cookie(COOKIE, path="/admin")
        return response

    # -- metrics --------------------------------------------------------------------------

    @router.get("/")
    async def dashboard(request: Request) -> Response:
        session = current(request)
        if session is None:
            return redirect("/admin/login")
        found: Samples = {} if samples is None else await samples()
        messages = sum_by(found, "interlink_provider_messages_total", "provider")
        history.add(
            clock(),
            {
                "messages": sum(v for _, v in messages),
                "sessions": total(found, "interlink_sessions"),
                "proxy": total(found, "interlink_media_proxy_total"),
            },
        )
        bars = [
            ("Messages per provider (both ways)", messages),
            ("Refusals by rule", sum_by(found, "interlink_policy_refusals_total", "reason")),
            (
                "Push queue: queued per provider",
                sum_by(found, "interlink_pushes_total", "provider", outcome="queued"),
            ),
            ("Pushes by outcome", sum_by(found, "interlink_pushes_total", "outcome")),
            ("Media proxy by outcome", sum_by(found, "interlink_media_proxy_total", "outcome")),
        ]
        charts = [(title, bar_chart(title, items)) for title, items in bars]
        series = [
            ("Messages across the boundary (total)", history.series("messages")),
            ("Bound sessions", history.series("sessions")),
        ]
        lines = [(title, line_chart(title, points)) for title, points in series]
        return page(
            "dashboard.html",
            request,
            session,
            charts=charts,
            lines=lines,
            refresh=limits.refresh,
            enabled=samples is not None,
        )

    # -- providers ------------------------------------------------------------------------

    @router.get("/providers")
    async def providers(request: Request) -> Response:
        session = current(request)
        if session is None:
            return redirect("/admin/login")
        return page(
            "providers.html",
            request,
            session,
            providers=await registry.all(),
            features=sorted(FEATURES),
            tiers=sorted(RATE_TIERS),
            modes=[str(m) for m in ProviderMode],
        )

    def _provider_fields(form: FormFields) -> dict[str, Any]:
        jwks = form.get("jwks")
        inline: dict[str, Any] | None = None
        if jwks.strip():
            try:
                loaded = json.loads(jwks)
            except ValueError as exc:
                raise HttpProblem(f"the JWK set is not JSON: {exc}") from None
            if not isinstance(loaded, dict):
                raise HttpProblem("the JWK set must be a JSON object with 'keys'")
            inline = loaded
        return {
            "display_name": form.get("display_name").strip(),
            "callback_url": form.get("callback_url").strip(),
            "jwks": inline,
            "jwks_url": form.get("jwks_url").strip() or None,
            "media_hosts": _split(form.get("media_hosts")),
            "features": form.getlist("features") or ["messaging"],
            "rate_tier": form.get("rate_tier", "standard"),
            "services": _split(form.get("services")),
            # federation (issue 15): how its own XMPP server is reached and authenticated
            "mode": str(_mode(form.get("mode", "plug-and-play"))),
            "server_domains": _split(form.get("server_domains")),
            "s2s_fingerprints": _split(form.get("s2s_fingerprints")),
            "s2s_ca": form.get("s2s_ca").strip() or None,
            "s2s_address": form.get("s2s_address").strip() or None,
        }

    @router.post("/providers")
    async def onboard(
        request: Request, form: Annotated[FormFields, Depends(read_form)]
    ) -> Response:
        async def action() -> str:
            fields = _provider_fields(form)
            provider_id = form.get("provider_id")
            added = await registry.add(
                Provider(
                    id=provider_id.strip(),
                    display_name=fields["display_name"],
                    callback_url=fields["callback_url"],
                    jwks=fields["jwks"],
                    jwks_url=fields["jwks_url"],
                    media_hosts=tuple(fields["media_hosts"]),
                    features=tuple(fields["features"]),
                    rate_tier=fields["rate_tier"],
                    services=tuple(fields["services"]),
                    mode=_mode(fields["mode"]),
                    server_domains=tuple(fields["server_domains"]),
                    s2s_fingerprints=tuple(fields["s2s_fingerprints"]),
                    s2s_ca=fields["s2s_ca"],
                    s2s_address=fields["s2s_address"],
                ),
                ACTOR,
            )
            return f"Provider {added.id} onboarded: pending until approved."

        return await guarded(request, form, action, "/admin/providers")

    @router.get("/providers/{provider_id}")
    async def provider(request: Request, provider_id: str) -> Response:
        session = current(request)
        if session is None:
            return redirect("/admin/login")
        try:
            found = await registry.get(provider_id)
        except HttpProblem as exc:
            return page("missing.html", request, session, 404, detail=exc.detail)
        return page(
            "provider.html",
            request,
            session,
            p=found,
            audit=await registry.audit(found.id),
            enlisted=[enlistment_view(a) for a in await moderation.enlistments(found.id, 20)],
            features=sorted(FEATURES),
            tiers=sorted(RATE_TIERS),
            modes=[str(m) for m in ProviderMode],
            jwks_text="" if found.jwks is None else json.dumps(found.jwks, indent=2),
        )

    @router.post("/providers/{provider_id}/edit")
    async def edit(
        request: Request, provider_id: str, form: Annotated[FormFields, Depends(read_form)]
    ) -> Response:
        async def action() -> str:
            fields = _provider_fields(form)
            await registry.update(provider_id, fields, ACTOR)
            return f"Provider {provider_id} updated."

        return await guarded(request, form, action, f"/admin/providers/{provider_id}")

    @router.post("/providers/{provider_id}/status")
    async def status(
        request: Request, provider_id: str, form: Annotated[FormFields, Depends(read_form)]
    ) -> Response:
        to = form.get("to")

        async def action() -> str:
            if to not in (ProviderStatus.APPROVED, ProviderStatus.SUSPENDED):
                raise HttpProblem("approve or suspend")
            updated = await registry.set_status(provider_id, ProviderStatus(to), ACTOR)
            return f"Provider {updated.id} is {updated.status}."

        return await guarded(request, form, action, f"/admin/providers/{provider_id}")

    # -- enlistments ----------------------------------------------------------------------

    @router.get("/enlistments")
    async def enlistments(request: Request, provider: str = "") -> Response:
        session = current(request)
        if session is None:
            return redirect("/admin/login")
        rows = await moderation.enlistments(provider or None, 200)
        return page(
            "enlistments.html",
            request,
            session,
            rows=[enlistment_view(a) for a in rows],
            provider=provider,
        )

    @router.post("/enlistments/revoke")
    async def revoke(request: Request, form: Annotated[FormFields, Depends(read_form)]) -> Response:
        jid = form.get("jid")

        async def action() -> str:
            await moderation.revoke(jid)
            return f"Enlistment of {jid} revoked; its sessions ended."

        return await guarded(request, form, action, "/admin/enlistments")

    # -- reports --------------------------------------------------------------------------

    @router.get("/reports")
    async def reports(request: Request, status: str = "open") -> Response:
        session = current(request)
        if session is None:
            return redirect("/admin/login")
        chosen = ReportStatus(status) if status in set(ReportStatus) else ReportStatus.OPEN
        views = await moderation.reports(chosen, 200)
        return page(
            "reports.html",
            request,
            session,
            reports=[v.public_view() for v in views],
            status=str(chosen),
            statuses=[str(s) for s in ReportStatus],
        )

    @router.get("/reports/{report_id}")
    async def report(request: Request, report_id: int) -> Response:
        session = current(request)
        if session is None:
            return redirect("/admin/login")
        try:
            view = await moderation.report(report_id)
        except HttpProblem as exc:
            return page("missing.html", request, session, 404, detail=exc.detail)
        return page("report.html", request, session, r=view.public_view(full=True))

    @router.post("/reports/{report_id}/resolve")
    async def resolve(
        request: Request, report_id: int, form: Annotated[FormFields, Depends(read_form)]
    ) -> Response:
        async def action() -> str:
            await moderation.resolve(report_id, form.get("resolution"), ACTOR)
            return f"Report {report_id} resolved."

        return await guarded(request, form, action, f"/admin/reports/{report_id}")

    @router.post("/reports/{report_id}/forward")
    async def forward(
        request: Request, report_id: int, form: Annotated[FormFields, Depends(read_form)]
    ) -> Response:
        async def action() -> str:
            await moderation.forward(report_id)
            return f"Report {report_id} is being sent to the provider."

        return await guarded(request, form, action, f"/admin/reports/{report_id}")

    # -- users and sessions ---------------------------------------------------------------

    @router.get("/users")
    async def users(request: Request, phone: str = "", jid: str = "") -> Response:
        session = current(request)
        if session is None:
            return redirect("/admin/login")
        found: list[dict[str, object]] = []
        error = None
        try:
            if phone.strip():
                found = [u.public_view() for u in await moderation.find_by_phone(phone)]
            elif jid.strip():
                found = [(await moderation.user(jid)).public_view()]
        except HttpProblem as exc:
            error = exc.detail
        return page(
            "users.html",
            request,
            session,
            found=found,
            phone=phone,
            jid=jid,
            error=error,
            searched=bool(phone.strip() or jid.strip()),
            sessions=moderation.all_sessions(200),
        )

    @router.post("/users/action")
    async def user_action(
        request: Request, form: Annotated[FormFields, Depends(read_form)]
    ) -> Response:
        jid, do = form.get("jid"), form.get("do")

        async def action() -> str:
            if do == "disable":
                await moderation.set_disabled(jid, True)
                return f"{jid} disabled; its sessions ended."
            if do == "enable":
                await moderation.set_disabled(jid, False)
                return f"{jid} enabled."
            if do == "end-sessions":
                ended = await moderation.end_sessions(jid)
                return f"{ended} session(s) of {jid} ended."
            raise HttpProblem("unknown action")

        return await guarded(request, form, action, f"/admin/users?{urlencode({'jid': jid})}")

    return router
