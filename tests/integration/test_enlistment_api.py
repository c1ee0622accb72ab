"""The Enlistment API over HTTPS on a running hub, with a provider onboarded through the admin
API; and its OpenAPI document."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from tests.integration.kit import DOMAIN, running_hub
from tests.interop.enlistkit import ThirdParty

TOKEN = "operator-token-for-tests-0123456789"


def onboarding(party: ThirdParty) -> dict[str, Any]:
    """The admin API's body that registers ``party``'s provider."""
    return {
        "id": party.provider_id,
        "display_name": "Example Chat",
        "callback_url": "https://api.example.chat",
        "jwks": party.jwks,
    }


def enlistment_body(party: ThirdParty, nonce: str) -> dict[str, Any]:
    """A fresh token and the identity key's proof over ``nonce``."""
    key, sig = party.prove(nonce, DOMAIN)
    return {
        "token": party.token(aud=DOMAIN),
        "identity_key": key,
        "challenge": nonce,
        "signature": sig,
    }


async def test_enlistment_over_https(tmp_path: Path) -> None:
    async with running_hub(tmp_path, admin={"token": TOKEN}) as (server, certs):
        base = f"https://127.0.0.1:{server.ports['http']}"
        party = ThirdParty()
        async with httpx.AsyncClient(base_url=base, verify=str(certs.ca), timeout=10) as http:
            admin = {"Authorization": f"Bearer {TOKEN}"}
            await http.post("/admin/v1/providers", json=onboarding(party), headers=admin)
            # Pending providers' users cannot enlist.
            nonce = (await http.post("/v1/enlistments/challenge")).json()["challenge"]
            body = enlistment_body(party, nonce)
            refused = await http.post("/v1/enlistments", json=body)
            assert refused.status_code == 403
            assert refused.headers["content-type"] == "application/problem+json"
            assert refused.json()["type"] == "urn:interlink:problem:provider-not-approved"
            await http.post(f"/admin/v1/providers/{party.provider_id}/approve", headers=admin)
            body["token"] = party.token(aud=DOMAIN)
            created = await http.post("/v1/enlistments", json=body)
            assert created.status_code == 201, created.text
            jid = created.json()["jid"]
            assert jid.endswith(f"@{party.provider_id}.interop.{DOMAIN}")
            assert created.json()["user_id"] == "@alice:example.chat"
            reused = await http.post(
                "/v1/enlistments", json={**body, "token": party.token(aud=DOMAIN)}
            )
            assert reused.status_code == 401
            assert reused.json()["type"] == "urn:interlink:problem:bad-challenge"
            malformed = await http.post("/v1/enlistments", json={"token": "x"})
            assert malformed.status_code == 422
            nonce = (await http.post("/v1/enlistments/challenge")).json()["challenge"]
            updated = await http.post("/v1/enlistments", json=enlistment_body(party, nonce))
            assert updated.status_code == 200
            assert updated.json() == {
                "jid": jid,
                "created": False,
                "key_changed": False,
                "user_id": "@alice:example.chat",
            }
            no_token = await http.delete("/v1/enlistments")
            assert no_token.status_code == 401
            gone = await http.delete(
                "/v1/enlistments", headers={"Authorization": f"Bearer {party.token(aud=DOMAIN)}"}
            )
            assert gone.json() == {"jid": jid, "deleted": True}
            assert server.storage is not None
            assert not await server.storage.accounts.exists(jid)
            spec = (await http.get("/openapi.json")).json()
            assert {"/v1/enlistments", "/v1/enlistments/challenge"} <= set(spec["paths"])
            metrics = await http.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
            assert 'interlink_enlistments_total{outcome="created"} 1.0' in metrics.text
            assert 'interlink_enlistments_total{outcome="updated"} 1.0' in metrics.text
            assert 'interlink_enlistments_total{outcome="unenlisted"} 1.0' in metrics.text


async def test_open_challenges_is_the_bound_on_open_challenges(tmp_path: Path) -> None:
    """interop.open_challenges = 2: a third challenge pushes out the oldest, the two newest
    still work."""
    async with running_hub(tmp_path, admin={"token": TOKEN}, interop={"open_challenges": 2}) as (
        server,
        certs,
    ):
        base = f"https://127.0.0.1:{server.ports['http']}"
        party = ThirdParty()
        async with httpx.AsyncClient(base_url=base, verify=str(certs.ca), timeout=10) as http:
            admin = {"Authorization": f"Bearer {TOKEN}"}
            await http.post("/admin/v1/providers", json=onboarding(party), headers=admin)
            await http.post(f"/admin/v1/providers/{party.provider_id}/approve", headers=admin)
            nonces = [
                (await http.post("/v1/enlistments/challenge")).json()["challenge"] for _ in range(3)
            ]

            async def enlist(nonce: str) -> httpx.Response:
                return await http.post("/v1/enlistments", json=enlistment_body(party, nonce))

            pushed_out = await enlist(nonces[0])
            assert pushed_out.status_code == 401
            assert pushed_out.json()["type"] == "urn:interlink:problem:bad-challenge"
            assert (await enlist(nonces[1])).status_code == 201
            assert (await enlist(nonces[2])).status_code == 200
