"""The admin HTTP API over real HTTPS: auth, provider lifecycle, problem+json errors, and a
suspension that ends the provider's sessions."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx

from interlink.xmpp.jid import JID
from tests.hubkit import FakePort
from tests.integration.kit import DOMAIN, Xmpp, running_hub

JWKS = {
    "keys": [
        {
            "kty": "OKP",
            "crv": "Ed25519",
            "kid": "k1",
            "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo",
        }
    ]
}
TOKEN = "operator-secret-token-0123456789ab"


async def test_provider_onboarding_through_the_admin_api(tmp_path: Path) -> None:
    async with running_hub(tmp_path, admin={"token": TOKEN}) as (server, certs):
        base = f"https://127.0.0.1:{server.ports['http']}/admin/v1"
        async with httpx.AsyncClient(verify=str(certs.ca), timeout=10) as http:
            anonymous = await http.get(f"{base}/providers")
            assert anonymous.status_code == 401
            assert anonymous.headers["content-type"] == "application/problem+json"
            assert anonymous.json()["type"] == "urn:interlink:problem:unauthorized"
            wrong = await http.get(f"{base}/providers", headers={"Authorization": "Bearer nope"})
            assert wrong.status_code == 401
            auth = {"Authorization": f"Bearer {TOKEN}"}
            body = {
                "id": "examplechat",
                "display_name": "Example Chat",
                "callback_url": "https://api.example.chat",
                "jwks": JWKS,
            }
            created = await http.post(f"{base}/providers", json=body, headers=auth)
            assert created.status_code == 201, created.text
            assert created.json()["status"] == "pending"
            again = await http.post(f"{base}/providers", json=body, headers=auth)
            assert again.status_code == 409
            assert again.json()["type"] == "urn:interlink:problem:provider-exists"
            bad = await http.post(f"{base}/providers", json={**body, "id": "x y"}, headers=auth)
            assert bad.status_code == 400
            assert "DNS label" in bad.json()["detail"]
            malformed = await http.post(f"{base}/providers", json={"id": 3}, headers=auth)
            assert malformed.status_code == 422
            assert malformed.headers["content-type"] == "application/problem+json"
            missing = await http.get(f"{base}/providers/nobody", headers=auth)
            assert missing.status_code == 404
            approved = await http.post(f"{base}/providers/examplechat/approve", headers=auth)
            assert approved.json()["status"] == "approved"
            patched = await http.patch(
                f"{base}/providers/examplechat",
                json={"media_hosts": ["media.example.chat"]},
                headers=auth,
            )
            assert patched.json()["media_hosts"] == ["media.example.chat"]
            nulled = await http.patch(
                f"{base}/providers/examplechat", json={"display_name": None}, headers=auth
            )
            assert nulled.status_code == 400
            assert nulled.headers["content-type"] == "application/problem+json"
            assert "display_name" in nulled.json()["detail"]
            # A live session of one of the provider's users ends on suspension.
            assert server.hub is not None
            port = FakePort()
            from interlink.hub.session import Session

            session = Session(JID.parse(f"opaque1@examplechat.interop.{DOMAIN}/app"), port)
            server.hub.ctx.sessions.add(session)
            suspended = await http.post(f"{base}/providers/examplechat/suspend", headers=auth)
            assert suspended.json()["status"] == "suspended"
            assert port.closed
            assert port.terminated is not None
            assert "suspended" in port.terminated.text
            # Delivery to the suspended provider's users stops with a clear error.
            alice = Xmpp(f"alice@{DOMAIN}/a", "pw", certs)
            errors: asyncio.Queue[Any] = asyncio.Queue()
            alice.client.add_event_handler("message_error", errors.put_nowait)
            await alice.login(server.ports["c2s-starttls"])
            try:
                alice.send_chat(f"opaque1@examplechat.interop.{DOMAIN}", "hello?")
                refused = await asyncio.wait_for(errors.get(), 10)
                assert refused["error"]["condition"] == "service-unavailable"
                assert "suspended" in refused["error"]["text"]
            finally:
                await alice.close()
            listed = await http.get(f"{base}/providers", headers=auth)
            assert [p["id"] for p in listed.json()] == ["examplechat"]
            audit = await http.get(f"{base}/providers/examplechat/audit", headers=auth)
            assert [e["action"] for e in audit.json()] == ["add", "status", "update", "status"]
            openapi = await http.get(f"https://127.0.0.1:{server.ports['http']}/openapi.json")
            assert "/admin/v1/providers" in openapi.json()["paths"]


async def test_the_operator_doors_on_their_own_listener_are_gone_from_the_public_port(
    tmp_path: Path,
) -> None:
    """``net.admin_port``: the admin API, the console and /metrics answer there (same TLS, same
    token) and nowhere else; users' and providers' routes stay on the public port only."""
    net = {"host": "127.0.0.1", "c2s_port": 0, "c2s_tls_port": 0, "http_port": 0, "admin_port": 0}
    async with running_hub(tmp_path, admin={"token": TOKEN}, net=net) as (server, certs):
        public = f"https://127.0.0.1:{server.ports['http']}"
        operator = f"https://127.0.0.1:{server.ports['admin']}"
        assert server.ports["admin"] not in (0, server.ports["http"])
        auth = {"Authorization": f"Bearer {TOKEN}"}
        async with httpx.AsyncClient(verify=str(certs.ca), timeout=10) as http:
            for path in ("/admin/v1/providers", "/metrics", "/admin/", "/admin/login"):
                gone = await http.get(public + path, headers=auth)
                assert gone.status_code == 404, (path, gone.status_code)
            providers = await http.get(f"{operator}/admin/v1/providers", headers=auth)
            assert providers.status_code == 200
            assert providers.json() == []
            metrics = await http.get(f"{operator}/metrics", headers=auth)
            assert metrics.status_code == 200
            assert "interlink_" in metrics.text
            assert (await http.get(f"{operator}/metrics")).status_code == 401
            login = await http.get(f"{operator}/admin/login")
            assert login.status_code == 200
            assert "text/html" in login.headers["content-type"]
            assert (await http.get(f"{operator}/readyz")).json() == {"status": "ready"}
            # what users and providers call is not on the operator's port
            assert (await http.get(f"{public}/readyz")).status_code == 200
            assert (await http.get(f"{public}/.well-known/interlink/jwks.json")).status_code == 200
            jwks = await http.get(f"{operator}/.well-known/interlink/jwks.json")
            assert jwks.status_code == 404
