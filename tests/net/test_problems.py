"""The one exception handler: domain errors carry their HTTP mapping and become RFC 9457
problem+json (with their headers); any other InterlinkError is a generic 500 problem."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from fastapi import FastAPI

from interlink.errors import HttpProblem, StorageError
from interlink.hub.auth_throttle import Backoff
from interlink.interop.discovery import DiscoveryError
from interlink.interop.providers import ProviderRegistry
from interlink.net.admin import admin_router
from interlink.net.admin_token import AdminTokenGuard
from interlink.net.problems import PROBLEM_JSON, install_problem_handler
from interlink.storage.providers import Provider
from interlink.storage.sqlite import open_sqlite

TOKEN = "admin-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
JWKS: dict[str, object] = {"keys": [{"kty": "OKP", "crv": "Ed25519", "kid": "k1", "x": "A" * 43}]}


@asynccontextmanager
async def admin_api() -> AsyncIterator[httpx.AsyncClient]:
    storage = await open_sqlite(":memory:")
    try:
        registry = ProviderRegistry(storage.providers, lambda: 1000.0, services=("hub.test",))
        await registry.add(
            Provider(
                id="examplechat",
                display_name="Example Chat",
                callback_url="https://api.example.chat",
                jwks=JWKS,
            ),
            "test",
        )
        app = FastAPI()
        install_problem_handler(app)
        app.include_router(admin_router(registry, AdminTokenGuard(TOKEN, Backoff(5, 1.0, 300.0))))

        @app.get("/broken")
        async def broken() -> None:
            raise StorageError("database is locked at /secret/path")

        @app.get("/limited")
        async def limited() -> None:
            raise DiscoveryError(429, "rate-limited", "slow down", retry_after=7)

        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://hub") as http:
            yield http
    finally:
        await storage.close()


@pytest.mark.parametrize(
    "field", ["display_name", "callback_url", "media_hosts", "features", "rate_tier"]
)
async def test_a_null_for_a_field_that_needs_a_value_is_a_400_naming_it(field: str) -> None:
    async with admin_api() as http:
        refused = await http.patch(
            "/admin/v1/providers/examplechat", json={field: None}, headers=AUTH
        )
        assert refused.status_code == 400
        assert refused.headers["content-type"] == PROBLEM_JSON
        problem = refused.json()
        assert problem["type"] == "urn:interlink:problem:invalid-provider"
        assert field in problem["detail"]
        unchanged = await http.get("/admin/v1/providers/examplechat", headers=AUTH)
        assert unchanged.json()["display_name"] == "Example Chat"


async def test_the_key_set_fields_may_be_nulled_one_for_the_other() -> None:
    async with admin_api() as http:
        switched = await http.patch(
            "/admin/v1/providers/examplechat",
            json={"jwks": None, "jwks_url": "https://api.example.chat/jwks"},
            headers=AUTH,
        )
        assert switched.status_code == 200, switched.text
        both = await http.patch(
            "/admin/v1/providers/examplechat", json={"jwks_url": None}, headers=AUTH
        )
        assert both.status_code == 400
        assert "exactly one of jwks" in both.json()["detail"]


async def test_problems_carry_their_status_type_title_and_headers() -> None:
    async with admin_api() as http:
        anonymous = await http.get("/admin/v1/providers")
        assert anonymous.status_code == 401
        assert anonymous.headers["content-type"] == PROBLEM_JSON
        assert anonymous.headers["www-authenticate"] == "Bearer"
        assert anonymous.json() == {
            "type": "urn:interlink:problem:unauthorized",
            "title": "admin token required",
            "status": 401,
            "detail": "send Authorization: Bearer <admin token>",
        }
        missing = await http.get("/admin/v1/providers/nobody", headers=AUTH)
        assert missing.status_code == 404
        assert missing.json()["title"] == "provider request refused"
        limited = await http.get("/limited")
        assert limited.status_code == 429
        assert limited.headers["retry-after"] == "7"
        assert limited.json()["type"] == "urn:interlink:problem:rate-limited"


async def test_an_error_without_an_http_mapping_is_a_500_that_leaks_nothing() -> None:
    async with admin_api() as http:
        broken = await http.get("/broken")
        assert broken.status_code == 500
        assert broken.headers["content-type"] == PROBLEM_JSON
        assert broken.json()["type"] == "urn:interlink:problem:internal-error"
        assert "secret" not in broken.text


def test_an_http_problem_defaults_to_a_400() -> None:
    problem = HttpProblem("no")
    assert problem.problem() == {
        "type": "urn:interlink:problem:bad-request",
        "title": "request refused",
        "status": 400,
        "detail": "no",
    }
