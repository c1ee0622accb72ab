"""Observability over the real HTTP port: /metrics (Prometheus text, admin token unless public),
/healthz and /readyz, with counters that move when traffic flows and rules refuse."""

from __future__ import annotations

import re
from pathlib import Path

import httpx

from tests.integration.kit import DOMAIN, Xmpp, running_hub

TOKEN = "operator-token-for-tests-0123456789"


def sample(text: str, name: str, labels: str = "") -> float:
    """The value of one sample line, e.g. ``interlink_stanzas_total{direction="in",…}``."""
    pattern = re.escape(name) + (re.escape("{" + labels + "}") if labels else "") + r" (\S+)"
    match = re.search("^" + pattern + "$", text, re.MULTILINE)
    assert match is not None, f"no sample {name}{{{labels}}} in:\n{text[:2000]}"
    return float(match.group(1))


async def test_metrics_health_and_readiness(tmp_path: Path) -> None:
    async with running_hub(tmp_path, admin={"token": TOKEN}) as (server, certs):
        base = f"https://127.0.0.1:{server.ports['http']}"
        async with httpx.AsyncClient(base_url=base, verify=str(certs.ca)) as http:
            assert (await http.get("/healthz")).json()["status"] == "ok"
            assert (await http.get("/readyz")).json() == {"status": "ready"}
            refused = await http.get("/metrics")
            assert refused.status_code == 401
            assert refused.headers["content-type"] == "application/problem+json"
            wrong = await http.get("/metrics", headers={"Authorization": "Bearer nope"})
            assert wrong.status_code == 401

            alice = Xmpp(f"alice@{DOMAIN}/a", "pw", certs)
            bob = Xmpp(f"bob@{DOMAIN}/b", "pw", certs)
            await alice.login(server.ports["c2s-starttls"])
            await bob.login(server.ports["c2s-starttls"])
            try:
                for i in range(5):
                    alice.send_chat(f"bob@{DOMAIN}", f"hello {i}")
                for _ in range(5):
                    await bob.next_message()
                # A third-party address that does not exist: refused by the rules, counted.
                alice.send_chat(f"nobody@examplechat.interop.{DOMAIN}", "hi")
                await alice.ping_server()
                auth = {"Authorization": f"Bearer {TOKEN}"}
                answer = await http.get("/metrics", headers=auth)
            finally:
                await alice.close()
                await bob.close()
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/plain; version=0.0.4")
        text = answer.text
        assert sample(text, "interlink_sessions") == 2
        assert sample(text, "interlink_connections") == 2
        assert sample(text, "interlink_stanzas_total", 'direction="in",kind="message"') >= 6
        assert sample(text, "interlink_stanzas_total", 'direction="out",kind="message"') >= 5
        assert sample(text, "interlink_routing_seconds_count") >= 6
        assert sample(text, "interlink_routing_seconds_bucket", 'le="+Inf"') == sample(
            text, "interlink_routing_seconds_count"
        )
        assert sample(text, "interlink_offline_messages") == 0
        assert sample(text, "interlink_auth_attempts_total", 'outcome="failed"') == 0
        assert sample(text, "interlink_auth_attempts_total", 'outcome="throttled"') == 0
        assert sample(text, "interlink_auth_throttle_keys") >= 1  # the two logins' places
        assert (
            sample(text, "interlink_policy_refusals_total", 'reason="provider-not-approved"') == 1
        )
        assert sample(text, "process_resident_memory_bytes") > 0
        assert await server.not_ready() is None
    assert await server.not_ready() == "starting or shutting down"


async def test_metrics_can_be_public(tmp_path: Path) -> None:
    async with running_hub(tmp_path, admin={"metrics_public": True}) as (server, certs):
        base = f"https://127.0.0.1:{server.ports['http']}"
        async with httpx.AsyncClient(base_url=base, verify=str(certs.ca)) as http:
            answer = await http.get("/metrics")
        assert answer.status_code == 200
        assert "interlink_sessions 0.0" in answer.text
