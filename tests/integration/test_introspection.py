"""Introspection at login: the provider is asked whether the account is active; inactive is
refused; a slow or failing endpoint makes that login fail (temporarily) and nobody else waits."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from interlink.client import InterlinkClient
from interlink.client.client import ClientError
from interlink.client.enlist import enlist, identity_thumbprint
from tests.integration.kit import DOMAIN, Xmpp, onboard_provider, running_hub, serving
from tests.interop.enlistkit import ThirdParty

TOKEN = "operator-token-for-tests-0123456789"


@asynccontextmanager
async def provider_endpoint(mode: dict[str, str]) -> AsyncIterator[tuple[str, list[bytes]]]:
    asked: list[bytes] = []
    app = FastAPI()

    @app.post("/interlink/v1/introspect")
    async def introspect(request: Request) -> JSONResponse:
        asked.append(await request.body())
        if mode["now"] == "slow":
            await asyncio.sleep(3)
        if mode["now"] == "error":
            return JSONResponse({"oops": True}, status_code=500)
        return JSONResponse({"active": mode["now"] == "active"})

    async with serving(app) as url:
        yield url, asked


async def test_introspection_at_login(tmp_path: Path) -> None:
    mode = {"now": "active"}
    async with (
        provider_endpoint(mode) as (callback, asked),
        running_hub(
            tmp_path,
            admin={"token": TOKEN},
            interop={"allow_insecure_loopback": True, "introspection_timeout": 0.5},
        ) as (server, certs),
    ):
        base = f"https://127.0.0.1:{server.ports['http']}"
        port = server.ports["c2s-starttls"]
        party = ThirdParty()
        body = party.provider_body(callback)
        body["features"] = ["messaging", "introspection"]
        await onboard_provider(base, certs.ca, TOKEN, body)
        tp_dir = tmp_path / "tp"
        thumbprint = await identity_thumbprint(tp_dir)

        async def fresh_token() -> str:
            return party.token(aud=DOMAIN, cnf={"jkt": thumbprint})

        jid = (await enlist(tp_dir, base, DOMAIN, await fresh_token(), ca_file=certs.ca)).jid
        bystander = Xmpp(f"alice@{DOMAIN}/a", "pw", certs)
        await bystander.login(port)

        async def login() -> bool:
            client = InterlinkClient(
                f"{jid}/app",
                "",
                data_dir=tp_dir,
                port=port,
                ca_file=certs.ca,
                token_provider=fresh_token,
            )
            try:
                await client.connect()
            except ClientError:
                return False
            finally:
                await client.close()
            return True

        try:
            assert await login()
            import json
            import warnings

            import httpx
            from joserfc import jws
            from joserfc.jwk import KeySet

            async with httpx.AsyncClient(verify=str(certs.ca)) as http:
                hub_jwks = (await http.get(f"{base}/.well-known/interlink/jwks.json")).json()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                signed = jws.deserialize_compact(
                    asked[-1].decode(), KeySet.import_key_set(hub_jwks), algorithms=["Ed25519"]
                )
            claims = json.loads(signed.payload)
            assert claims["sub"] == "user-42"  # the provider's own subject, signed by the hub
            assert claims["aud"] == party.provider_id
            mode["now"] = "inactive"
            assert not await login()
            mode["now"] = "error"
            assert not await login()
            mode["now"] = "slow"
            started = time.monotonic()
            attempt = asyncio.create_task(login())
            await asyncio.sleep(0.1)
            # While that login waits for the slow provider, the hub serves everyone else.
            pong = await bystander.ping_server()
            assert pong < 0.5
            assert not await attempt
            assert time.monotonic() - started < 10
            mode["now"] = "active"
            assert await login()
            assert len(asked) == 5
        finally:
            await bystander.close()
