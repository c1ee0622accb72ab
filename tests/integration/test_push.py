"""Push to a provider: a hub user writes to an offline third-party user; the provider's push
endpoint (a small HTTP server in the test) receives exactly one signed, content-free push; the
user reconnects and decrypts the message."""

from __future__ import annotations

import asyncio
import json
import warnings
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from fastapi import FastAPI, Request
from joserfc import jws
from joserfc.jwk import KeySet

from interlink.client import InterlinkClient, TextMessage
from interlink.client.enlist import enlist, identity_thumbprint
from tests.integration.kit import DOMAIN, onboard_provider, running_hub, serving
from tests.interop.enlistkit import ThirdParty

TOKEN = "operator-token-for-tests-0123456789"


@asynccontextmanager
async def push_receiver() -> AsyncIterator[tuple[str, list[bytes]]]:
    """A provider's push endpoint on 127.0.0.1 that records what it receives."""
    received: list[bytes] = []
    app = FastAPI()

    @app.post("/interlink/v1/push")
    async def push(request: Request) -> dict[str, str]:
        received.append(await request.body())
        return {"status": "ok"}

    async with serving(app) as url:
        yield url, received


async def test_offline_third_party_user_gets_exactly_one_signed_push(tmp_path: Path) -> None:
    async with (
        push_receiver() as (callback, pushes),
        running_hub(
            tmp_path, admin={"token": TOKEN}, interop={"allow_insecure_loopback": True}
        ) as (server, certs),
    ):
        base = f"https://127.0.0.1:{server.ports['http']}"
        port = server.ports["c2s-starttls"]
        party = ThirdParty()
        await onboard_provider(base, certs.ca, TOKEN, party.provider_body(callback))
        async with httpx.AsyncClient(base_url=base, verify=str(certs.ca), timeout=10) as http:
            hub_jwks = (await http.get("/.well-known/interlink/jwks.json")).json()
        tp_dir = tmp_path / "tp"
        thumbprint = await identity_thumbprint(tp_dir)

        async def fresh_token() -> str:
            return party.token(aud=DOMAIN, cnf={"jkt": thumbprint})

        jid = (await enlist(tp_dir, base, DOMAIN, await fresh_token(), ca_file=certs.ca)).jid
        tp = InterlinkClient(
            f"{jid}/app",
            "",
            data_dir=tp_dir,
            port=port,
            ca_file=certs.ca,
            token_provider=fresh_token,
        )
        await tp.connect()  # publishes its keys
        await tp.close()
        alice = InterlinkClient(
            f"alice@{DOMAIN}/phone", "pw", data_dir=tmp_path / "alice", port=port, ca_file=certs.ca
        )
        await alice.connect()
        await alice.set_interop_settings(enabled=True)
        try:
            await alice.send_text(jid, "are you there?")
            for _ in range(100):
                if pushes:
                    break
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.3)
            assert len(pushes) == 1
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                verified = jws.deserialize_compact(
                    pushes[0].decode(), KeySet.import_key_set(hub_jwks), algorithms=["Ed25519"]
                )
            claims = json.loads(verified.payload)
            assert claims["sub"] == "user-42"  # the provider's own subject
            assert claims["count"] == 1
            assert claims["aud"] == party.provider_id
            assert set(claims) == {
                "iss",
                "aud",
                "sub",
                "count",
                "jti",
                "iat",
            }  # no content, no sender
            assert b"are you there" not in pushes[0]
            tp = InterlinkClient(
                f"{jid}/app",
                "",
                data_dir=tp_dir,
                port=port,
                ca_file=certs.ca,
                token_provider=fresh_token,
            )
            await tp.connect()
            while True:
                event = await tp.next_event(15)
                if isinstance(event, TextMessage):
                    break
            assert event.text == "are you there?"
            await tp.close()
        finally:
            await alice.close()
