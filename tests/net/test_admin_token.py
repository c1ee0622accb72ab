"""The admin token guard every admin door shares (the admin API, /metrics, the console login):
constant-time check, wrong tokens counted per source, a source over its budget refused before
its token is compared, and the admin API answering that with 429 problem+json."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI

from interlink.hub.auth_throttle import Backoff
from interlink.interop.providers import ProviderRegistry
from interlink.net.admin import admin_router
from interlink.net.admin_token import (
    AdminAuthError,
    AdminThrottled,
    AdminTokenGuard,
    WrongAdminToken,
    bearer,
)
from interlink.net.problems import PROBLEM_JSON, install_problem_handler
from interlink.storage.sqlite import open_sqlite

TOKEN = "t" * 32


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def guard(clock: Clock, free: int = 3) -> AdminTokenGuard:
    return AdminTokenGuard(TOKEN, Backoff(free, 2.0, 60.0), clock)


def test_the_right_token_passes_and_no_token_is_not_counted() -> None:
    clock = Clock()
    g = guard(clock)
    g.check("192.0.2.1", TOKEN)
    for _ in range(10):
        with pytest.raises(AdminAuthError) as missing:
            g.check("192.0.2.1", None)
        assert not isinstance(missing.value, WrongAdminToken)
    assert g.failures("192.0.2.1") == 0


def test_free_failures_then_a_doubling_wait_then_the_token_is_not_even_compared() -> None:
    clock = Clock()
    g = guard(clock, free=3)
    for _ in range(3):  # the boundary: exactly ``free`` wrong tokens go through to a 401
        with pytest.raises(WrongAdminToken):
            g.check("192.0.2.1", "wrong")
    with pytest.raises(AdminThrottled) as early:
        g.check("192.0.2.1", TOKEN)  # even the right token: refused before comparing
    assert early.value.retry_after == 2
    assert early.value.headers() == {"Retry-After": "2"}
    clock.now += 2.0
    with pytest.raises(WrongAdminToken):
        g.check("192.0.2.1", "wrong again")
    with pytest.raises(AdminThrottled) as later:
        g.check("192.0.2.1", TOKEN)
    assert later.value.retry_after == 4  # doubled
    clock.now += 4.0
    g.check("192.0.2.1", TOKEN)


def test_sources_are_counted_apart_and_ipv6_by_its_64() -> None:
    clock = Clock()
    g = guard(clock, free=1)
    with pytest.raises(WrongAdminToken):
        g.check("2001:db8:1:2::1", "wrong")
    with pytest.raises(AdminThrottled):
        g.check("2001:db8:1:2::ffff", TOKEN)  # same /64
    g.check("2001:db8:1:3::1", TOKEN)  # another /64
    g.check("192.0.2.9", TOKEN)


@pytest.mark.parametrize(
    ("header", "token"),
    [
        (None, None),
        ("", None),
        ("Bearer", None),
        ("Bearer   ", None),
        ("Basic abc", None),
        ("Bearer abc", "abc"),
        ("bearer abc ", "abc"),
    ],
)
def test_bearer_header(header: str | None, token: str | None) -> None:
    assert bearer(header) == token


async def test_the_admin_api_answers_429_with_retry_after_once_a_source_is_over_budget() -> None:
    clock = Clock()
    storage = await open_sqlite(":memory:")
    try:
        registry = ProviderRegistry(storage.providers, clock, services=("hub.test",))
        app = FastAPI()
        install_problem_handler(app)
        app.include_router(admin_router(registry, guard(clock, free=2)))
        transport = httpx.ASGITransport(app=app, client=("198.51.100.7", 4000))
        async with httpx.AsyncClient(transport=transport, base_url="http://hub") as http:
            for _ in range(2):
                wrong = await http.get("/admin/v1/providers", headers={"Authorization": "Bearer x"})
                assert wrong.status_code == 401
                assert wrong.headers["www-authenticate"] == "Bearer"
            right = {"Authorization": f"Bearer {TOKEN}"}
            throttled = await http.get("/admin/v1/providers", headers=right)
            assert throttled.status_code == 429
            assert throttled.headers["content-type"] == PROBLEM_JSON
            assert throttled.headers["retry-after"] == "2"
            assert "try again in 2 s" in throttled.json()["detail"]
            clock.now += 2.0
            ok = await http.get("/admin/v1/providers", headers=right)
            assert ok.status_code == 200
    finally:
        await storage.close()
