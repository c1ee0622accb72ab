"""Two gatekeeper services on one hub, over real sockets: separate accounts, each service
onboards providers of its own, and a provider's tokens are for the one service they name."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
import trustme

from interlink.app import HubServer
from interlink.client.enlist import EnlistmentFailed, enlist, identity_thumbprint
from interlink.errors import ConfigError
from interlink.xmpp.sasl import derive_credentials
from tests.integration.kit import TIMEOUT, Certs, Xmpp, settings_for
from tests.interop.enlistkit import ThirdParty

WA, MSG = "wa.test", "msg.test"
TOKEN = "operator-token-for-tests-0123456789"


def certs_for(folder: Path) -> Certs:
    ca = trustme.CA()
    names = [WA, MSG, f"*.interop.{WA}", f"*.interop.{MSG}", "localhost", "127.0.0.1"]
    issued = ca.issue_cert(*names)
    certs = Certs(folder / "ca.pem", folder / "cert.pem", folder / "key.pem")
    ca.cert_pem.write_to_path(str(certs.ca))
    issued.cert_chain_pems[0].write_to_path(str(certs.cert))
    issued.private_key_pem.write_to_path(str(certs.key))
    return certs


@asynccontextmanager
async def two_services(tmp: Path) -> AsyncIterator[tuple[HubServer, Certs]]:
    certs = certs_for(tmp)
    server = HubServer(
        settings_for(tmp / "data", certs, hub={"domains": [WA, MSG]}, admin={"token": TOKEN})
    )
    await server.start()
    try:
        assert server.storage is not None
        for jid, password in ((f"alice@{WA}", "wa-pw"), (f"alice@{MSG}", "msg-pw")):
            await server.storage.accounts.create(
                jid, derive_credentials(password, 4096), time.time()
            )
        yield server, certs
    finally:
        await asyncio.wait_for(server.stop(), TIMEOUT)


async def test_each_service_has_its_own_accounts(tmp_path: Path) -> None:
    async with two_services(tmp_path) as (server, certs):
        port = server.ports["c2s-starttls"]
        for jid, password in ((f"alice@{WA}/a", "wa-pw"), (f"alice@{MSG}/a", "msg-pw")):
            client = Xmpp(jid, password, certs)
            try:
                await client.login(port)
                assert str(client.client.boundjid) == jid
            finally:
                await client.close()
        # The other service's password is not this account's.
        wrong = Xmpp(f"alice@{MSG}/a", "wa-pw", certs)
        try:
            with pytest.raises(AssertionError, match="login failed"):
                await wrong.login(port)
        finally:
            await wrong.close()


async def test_each_service_onboards_providers_of_its_own(tmp_path: Path) -> None:
    async with two_services(tmp_path) as (server, certs):
        base = f"https://127.0.0.1:{server.ports['http']}"
        auth = {"Authorization": f"Bearer {TOKEN}"}
        wa_party, msg_party = ThirdParty("wachat"), ThirdParty("msgchat")
        async with httpx.AsyncClient(base_url=base, verify=str(certs.ca), timeout=10) as http:
            for party, service in ((wa_party, WA), (msg_party, MSG)):
                body = {**party.provider_body(), "services": [service]}
                assert (await http.post("/admin/v1/providers", json=body, headers=auth)).is_success
                approve = f"/admin/v1/providers/{party.provider_id}/approve"
                assert (await http.post(approve, headers=auth)).is_success
            listed = (await http.get("/admin/v1/providers", headers=auth)).json()
            assert {p["id"]: p["services"] for p in listed} == {
                "msgchat": [MSG],
                "wachat": [WA],
            }
            bad = {**ThirdParty("nowhere").provider_body(), "services": ["other.test"]}
            refused = await http.post("/admin/v1/providers", json=bad, headers=auth)
            assert refused.status_code == 400
            assert "other.test" in refused.json()["detail"]
        assert server.addressing is not None
        assert server.addressing.approved_providers(WA) == {"wachat": "Example Chat"}
        assert server.addressing.approved_providers(MSG) == {"msgchat": "Example Chat"}

        # A provider's user enlists on the service its token names, if the provider is there.
        device = tmp_path / "wa-user"
        thumbprint = await identity_thumbprint(device)
        token = wa_party.token(aud=WA, cnf={"jkt": thumbprint})
        enlisted = await enlist(device, base, WA, token, ca_file=certs.ca)
        assert enlisted.jid.endswith(f"@wachat.interop.{WA}")
        token = wa_party.token(aud=MSG, cnf={"jkt": thumbprint})
        with pytest.raises(EnlistmentFailed) as elsewhere:
            await enlist(device, base, MSG, token, ca_file=certs.ca)
        assert elsewhere.value.problem["type"] == "urn:interlink:problem:provider-not-approved"
        device = tmp_path / "msg-user"
        thumbprint = await identity_thumbprint(device)
        token = msg_party.token(aud=MSG, cnf={"jkt": thumbprint})
        enlisted = await enlist(device, base, MSG, token, ca_file=certs.ca)
        assert enlisted.jid.endswith(f"@msgchat.interop.{MSG}")


async def test_metrics_are_per_service(tmp_path: Path) -> None:
    async with two_services(tmp_path) as (server, certs):
        client = Xmpp(f"alice@{MSG}/a", "msg-pw", certs)
        await client.login(server.ports["c2s-starttls"])
        try:
            base = f"https://127.0.0.1:{server.ports['http']}"
            async with httpx.AsyncClient(base_url=base, verify=str(certs.ca), timeout=10) as http:
                auth = {"Authorization": f"Bearer {TOKEN}"}
                text = (await http.get("/metrics", headers=auth)).text
            assert 'interlink_service_sessions{kind="home",service="msg.test"} 1.0' in text
            assert 'interlink_service_sessions{kind="home",service="wa.test"} 0.0' in text
            assert 'interlink_service_providers{service="wa.test"} 0.0' in text
        finally:
            await client.close()


async def test_a_served_domain_cannot_silently_disappear(tmp_path: Path) -> None:
    async with two_services(tmp_path):
        pass
    certs = Certs(tmp_path / "ca.pem", tmp_path / "cert.pem", tmp_path / "key.pem")
    # Adding a service is fine; dropping one the data directory served is refused.
    grown = HubServer(settings_for(tmp_path / "data", certs, hub={"domains": [WA, MSG, "x.test"]}))
    await grown.start()
    await grown.stop()
    shrunk = HubServer(settings_for(tmp_path / "data", certs, hub={"domains": [WA]}))
    with pytest.raises(ConfigError, match=r"served msg\.test, x\.test"):
        await shrunk.start()
    await shrunk.stop()
