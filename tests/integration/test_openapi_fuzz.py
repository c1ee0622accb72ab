"""Property-based requests against the hub's own OpenAPI document (schemathesis): no endpoint
answers a 5xx, whatever the input; errors are problem+json."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import schemathesis
from hypothesis import HealthCheck, given, settings

from tests.integration.kit import running_hub

TOKEN = "fuzz-admin-token-0123456789abcdefgh"


def body_of(case: Any) -> Any:
    """The generated JSON body, or None when the operation has none (schemathesis' NOT_SET)."""
    body = case.body
    if body is None or isinstance(body, bytes) or type(body).__name__ == "NotSet":
        return None
    return body


def examples(strategy: Any, count: int) -> list[Any]:
    """Draw up to ``count`` generated requests from a schemathesis strategy."""
    found: list[Any] = []

    @settings(max_examples=count, deadline=None, suppress_health_check=list(HealthCheck))
    @given(strategy)
    def collect(case: Any) -> None:
        found.append(case)

    collect()
    return found


async def test_no_5xx_for_generated_requests(tmp_path: Path) -> None:
    async with running_hub(tmp_path, admin={"token": TOKEN}) as (server, _certs):
        assert server.hub is not None
        app = server.http_app
        assert app is not None
        schema = schemathesis.openapi.from_dict(app.openapi())
        failures: list[str] = []
        sent = 0
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://hub") as http:
            for operation in schema.get_all_operations():
                op: Any = operation.ok()  # type: ignore[union-attr]

                cases = examples(op.as_strategy(), 25)
                for case in cases:
                    headers = dict(case.headers or {})
                    headers.setdefault("Authorization", f"Bearer {TOKEN}")
                    response = await http.request(
                        case.method,
                        case.formatted_path,
                        params=case.query,
                        headers=headers,
                        json=body_of(case),
                    )
                    sent += 1
                    if response.status_code >= 500:
                        failures.append(
                            f"{case.method} {case.formatted_path}: {response.status_code}"
                        )
                    elif response.status_code >= 400:
                        assert response.headers["content-type"].startswith(
                            "application/problem+json"
                        ), (case.method, case.formatted_path, response.status_code, response.text)
        assert failures == []
        assert sent >= 100  # every operation was exercised
