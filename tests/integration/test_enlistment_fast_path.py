"""The enlistment fast path answers exactly as FastAPI's routes do: the same request, once with
the fast path and once without, gets the same status, content type and body; and a well-formed
challenge and enlistment never reach FastAPI at all."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
from fastapi import Request

from interlink.net.enlist_api import EnlistmentFastPath, enlistment_router
from interlink.net.http import HubApp
from tests.integration.kit import DOMAIN, running_hub
from tests.interop.enlistkit import ThirdParty

TOKEN = "operator-token-for-tests-0123456789"


def _comparable(response: httpx.Response) -> tuple[int, str | None, Any]:
    try:
        body: Any = response.json()
    except ValueError:
        body = response.text
    if isinstance(body, dict):
        body = {k: v for k, v in body.items() if k not in ("challenge", "expires_at", "jid")}
    return response.status_code, response.headers.get("content-type"), body


async def test_fast_path_answers_as_fastapi_does(tmp_path: Path) -> None:
    async with running_hub(tmp_path, admin={"token": TOKEN}) as (server, _certs):
        app = server.http_app
        assert isinstance(app, HubApp)
        fast = app.fast_path
        assert fast is not None
        party = ThirdParty()
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://hub") as http:
            await http.post(
                "/admin/v1/providers",
                json=party.provider_body(),
                headers={"Authorization": f"Bearer {TOKEN}"},
            )
            await http.post(
                f"/admin/v1/providers/{party.provider_id}/approve",
                headers={"Authorization": f"Bearer {TOKEN}"},
            )

            subjects = iter(range(1000))

            async def enlist_body() -> dict[str, str]:
                """A valid enlistment of a new subject."""
                nonce = (await http.post("/v1/enlistments/challenge")).json()["challenge"]
                key, sig = party.prove(nonce, DOMAIN)
                token = party.token(f"user-{next(subjects)}", aud=DOMAIN)
                return {"token": token, "identity_key": key, "challenge": nonce, "signature": sig}

            async def both(make: Any) -> None:
                """Send the request ``make`` builds with the fast path, then without."""
                answers = []
                for path in (fast, None):
                    app.fast_path = path
                    answers.append(_comparable(await make()))
                app.fast_path = fast
                assert answers[0] == answers[1], answers

            async def created() -> httpx.Response:
                return await http.post("/v1/enlistments", json=await enlist_body())

            async def replayed_challenge() -> httpx.Response:
                body = await enlist_body()
                await http.post("/v1/enlistments", json=body)
                return await http.post(
                    "/v1/enlistments", json={**body, "token": party.token(aud=DOMAIN)}
                )

            async def bad_proof() -> httpx.Response:
                body = await enlist_body()
                return await http.post("/v1/enlistments", json={**body, "signature": "AAAA"})

            async def raw(content: bytes, content_type: str | None) -> httpx.Response:
                headers = {} if content_type is None else {"Content-Type": content_type}
                return await http.post("/v1/enlistments", content=content, headers=headers)

            # A well-formed challenge and enlistment never reach FastAPI.
            reached: list[str] = []
            stack = app.middleware_stack
            assert stack is not None

            async def spy(scope: Any, receive: Any, send: Any) -> None:
                reached.append(scope["path"])
                await stack(scope, receive, send)

            app.middleware_stack = spy
            assert (await created()).status_code == 201
            assert reached == []
            await both(created)
            # Only the requests sent without the fast path did.
            assert reached == ["/v1/enlistments/challenge", "/v1/enlistments"]
            await both(replayed_challenge)
            await both(bad_proof)

            async def valid() -> bytes:
                return json.dumps(await enlist_body()).encode()

            async def extra() -> bytes:
                return json.dumps({**await enlist_body(), "extra": 1}).encode()

            async def too_long() -> bytes:
                return json.dumps({**await enlist_body(), "challenge": "x" * 200}).encode()

            def fixed(content: bytes) -> Any:
                async def make() -> bytes:
                    return content

                return make

            for make_content, content_type in [
                (fixed(b""), None),
                (fixed(b""), "application/json"),
                (fixed(b"{"), "application/json"),
                (fixed(b"[]"), "application/json"),
                (fixed(b'{"token": "x"}'), "application/json"),
                (fixed(b'{"token": 1, "identity_key": 2}'), "application/vnd.api+json"),
                (fixed(b"x" * 40_000), "application/json"),
                (extra, "application/json"),
                (too_long, "application/json"),
                (valid, None),
                (valid, "text/plain"),
                (valid, "application/json; charset=utf-8"),
            ]:

                async def send(m: Any = make_content, t: str | None = content_type) -> Any:
                    return await raw(await m(), t)

                await both(send)
            for method, path in [
                ("GET", "/v1/enlistments"),
                ("PUT", "/v1/enlistments/challenge"),
                ("POST", "/v1/enlistments/"),
                ("POST", "/v1/enlistments/challenge/"),
            ]:

                async def other(m: str = method, p: str = path) -> httpx.Response:
                    return await http.request(m, p)

                await both(other)


class _StubService:
    def challenge(self) -> tuple[str, float]:
        return "nonce", 1.0


async def test_fast_path_bypasses_http_middleware() -> None:
    """The fast path answers before Starlette's middleware stack, so it steps aside when any
    middleware is added (``app.middleware("http")``, ``add_middleware``: the demo's request
    recorder, a future rate limit or metrics): the middleware sees these requests too."""
    app = HubApp()
    app.fast_path = EnlistmentFastPath(_StubService())  # type: ignore[arg-type]
    app.include_router(enlistment_router(_StubService()))  # type: ignore[arg-type]
    seen: list[str] = []

    @app.middleware("http")
    async def record(request: Request, call_next: Any) -> Any:
        seen.append(request.url.path)
        return await call_next(request)

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://hub") as http:
        assert (await http.post("/v1/enlistments/challenge")).status_code == 201
    assert seen == ["/v1/enlistments/challenge"], "the middleware never saw the request"
