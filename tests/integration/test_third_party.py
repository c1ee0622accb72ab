"""A third-party user end to end: the provider is onboarded and approved, its user enlists with
the SDK (proof of ownership of its OMEMO identity key), logs in with SASL OAUTHBEARER and
exchanges end-to-end encrypted messages with a hub user; refused logins; suspension."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from interlink.client import InterlinkClient
from interlink.client.client import ClientError
from interlink.client.enlist import EnlistmentFailed, enlist, identity_thumbprint
from tests.integration.kit import DOMAIN, next_text, onboard_provider, running_hub
from tests.interop.enlistkit import ThirdParty

TOKEN = "operator-token-for-tests-0123456789"


async def test_enlist_log_in_with_oauthbearer_and_talk_e2ee(tmp_path: Path) -> None:
    async with running_hub(tmp_path, admin={"token": TOKEN}) as (server, certs):
        base = f"https://127.0.0.1:{server.ports['http']}"
        port = server.ports["c2s-starttls"]
        party = ThirdParty()
        admin = {"Authorization": f"Bearer {TOKEN}"}
        async with httpx.AsyncClient(base_url=base, verify=str(certs.ca), timeout=10) as http:
            await onboard_provider(base, certs.ca, TOKEN, party.provider_body())
            tp_dir = tmp_path / "third-party"
            thumbprint = await identity_thumbprint(tp_dir)

            def token() -> str:
                return party.token(aud=DOMAIN, cnf={"jkt": thumbprint})

            # A token bound to another key is refused, and nothing is enlisted.
            with pytest.raises(EnlistmentFailed) as refused:
                await enlist(tp_dir, base, DOMAIN, party.token(aud=DOMAIN), ca_file=certs.ca)
            assert refused.value.problem["type"] == "urn:interlink:problem:key-not-bound"
            enlisted = await enlist(tp_dir, base, DOMAIN, token(), ca_file=certs.ca)
            assert enlisted.created
            jid = enlisted.jid

            async def fresh_token() -> str:
                return token()

            tp = InterlinkClient(
                f"{jid}/app",
                "",
                data_dir=tp_dir,
                port=port,
                ca_file=certs.ca,
                token_provider=fresh_token,
            )
            alice = InterlinkClient(
                f"alice@{DOMAIN}/phone",
                "pw",
                data_dir=tmp_path / "alice",
                port=port,
                ca_file=certs.ca,
            )
            await tp.connect()
            await alice.connect()
            await alice.set_interop_settings(enabled=True)
            try:
                # The identity key enlisted is the one OMEMO uses on this device.
                assert (await tp.fingerprint()) == (await alice.peer_fingerprints(jid))[
                    next(iter(await alice.peer_fingerprints(jid)))
                ]
                await tp.send_text(f"alice@{DOMAIN}", "hello from another messenger")
                got = await next_text(alice)
                assert got.text == "hello from another messenger"
                assert got.sender == f"{jid}/app"
                await alice.accept_request(jid)
                await alice.send_text(jid, "welcome")
                assert (await next_text(tp)).text == "welcome"
                # Suspending the provider ends the third-party session at once.
                await http.post(f"/admin/v1/providers/{party.provider_id}/suspend", headers=admin)
                await asyncio.sleep(0.3)
                assert server.hub is not None
                assert not list(
                    server.hub.ctx.sessions.sessions(
                        __import__("interlink.xmpp.jid", fromlist=["JID"]).JID.parse(jid)
                    )
                )
                again = InterlinkClient(
                    f"{jid}/app2",
                    "",
                    data_dir=tmp_path / "tp2",
                    port=port,
                    ca_file=certs.ca,
                    token_provider=fresh_token,
                )
                with pytest.raises(ClientError, match="authentication failed"):
                    await again.connect()
                await again.close()
            finally:
                await tp.close()
                await alice.close()


async def test_oauthbearer_refusals(tmp_path: Path) -> None:
    async with running_hub(tmp_path, admin={"token": TOKEN}) as (server, certs):
        base = f"https://127.0.0.1:{server.ports['http']}"
        port = server.ports["c2s-starttls"]
        party = ThirdParty()
        await onboard_provider(base, certs.ca, TOKEN, party.provider_body())
        tp_dir = tmp_path / "tp"
        thumbprint = await identity_thumbprint(tp_dir)
        jid = (
            await enlist(
                tp_dir,
                base,
                DOMAIN,
                party.token(aud=DOMAIN, cnf={"jkt": thumbprint}),
                ca_file=certs.ca,
            )
        ).jid
        used = party.token(aud=DOMAIN)

        async def login(token: str, who: str = jid) -> bool:
            async def provide() -> str:
                return token

            client = InterlinkClient(
                f"{who}/x",
                "",
                data_dir=tmp_path / "probe",
                port=port,
                ca_file=certs.ca,
                token_provider=provide,
            )
            try:
                await client.connect()
            except ClientError:
                return False
            finally:
                await client.close()
            return True

        assert await login(used)
        assert not await login(used)  # the same token twice
        assert not await login(party.token(aud="elsewhere"))
        assert not await login(
            party.token(aud=DOMAIN, sub="never-enlisted"),
            who="nobody@examplechat.interop." + DOMAIN,
        )
        assert not await login(party.token(aud=DOMAIN, iat=0, exp=1))
