"""The hub on PostgreSQL (``storage.engine = "postgres"``), over loopback with real clients:
messages both ways, offline messages stored and delivered in order (also after the hub
restarts), and enlistment over the Enlistment API -- with two hubs on one database, where an
operator's change on one reaches the other through the change feed."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.kit import DOMAIN, Xmpp, running_hub
from tests.integration.test_enlistment_api import enlistment_body, onboarding
from tests.interop.enlistkit import ThirdParty
from tests.servers import PostgresServer, postgres_available

pytestmark = pytest.mark.skipif(
    not postgres_available(), reason="PostgreSQL is not installed (scripts/test installs it)"
)
TOKEN = "operator-token-" + "t" * 32


@pytest.fixture
def on_postgres(postgres: PostgresServer, tmp_path: Path) -> dict[str, Any]:
    """The ``storage`` section of a hub on a new database of the session's server (and the
    folders of the two hubs each test may run)."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    return {"engine": "postgres", "dsn": postgres.database(), "pool_size": 4}


async def test_messages_and_offline_messages_on_postgres(
    tmp_path: Path, on_postgres: dict[str, Any]
) -> None:
    async with running_hub(tmp_path / "a", storage=on_postgres) as (server, certs):
        alice = Xmpp(f"alice@{DOMAIN}/laptop", "pw", certs)
        bob = Xmpp(f"bob@{DOMAIN}/phone", "pw", certs)
        await alice.login(server.ports["c2s-starttls"])
        await bob.login(server.ports["c2s-direct-tls"], direct_tls=True)
        try:
            alice.send_chat(f"bob@{DOMAIN}", "hi bob")
            assert (await bob.next_message())["body"] == "hi bob"
            bob.send_chat(f"alice@{DOMAIN}/laptop", "hi alice")
            assert (await alice.next_message())["body"] == "hi alice"
            await bob.close()
            await asyncio.sleep(0.1)
            for i in range(30):
                alice.send_chat(f"bob@{DOMAIN}", f"msg {i}")
            await alice.ping_server()  # answered after all 30 were stored
            assert server.storage is not None
            assert await server.storage.offline.count(f"bob@{DOMAIN}") == 30
        finally:
            await alice.close()
            await bob.close()
    # a new hub process on the same database: the stored messages are there, in order
    async with running_hub(tmp_path / "b", accounts=(), storage=on_postgres) as (server, certs):
        bob = Xmpp(f"bob@{DOMAIN}/phone", "pw", certs)
        await bob.login(server.ports["c2s-starttls"])
        try:
            got = [(await bob.next_message())["body"] for _ in range(30)]
            assert got == [f"msg {i}" for i in range(30)]
        finally:
            await bob.close()


async def test_enlistment_on_two_hubs_sharing_one_database(
    tmp_path: Path, on_postgres: dict[str, Any]
) -> None:
    sections: dict[str, Any] = {
        "storage": on_postgres,
        "admin": {"token": TOKEN, "change_feed_interval": 0.05},
    }
    async with (
        running_hub(tmp_path / "a", **sections) as (one, certs_one),
        running_hub(tmp_path / "b", accounts=(), **sections) as (two, certs_two),
    ):
        party = ThirdParty()
        admin = {"Authorization": f"Bearer {TOKEN}"}
        base_one = f"https://127.0.0.1:{one.ports['http']}"
        base_two = f"https://127.0.0.1:{two.ports['http']}"
        async with (
            httpx.AsyncClient(
                base_url=base_one, verify=certs_one.client_context(), timeout=10
            ) as http_one,
            httpx.AsyncClient(
                base_url=base_two, verify=certs_two.client_context(), timeout=10
            ) as http_two,
        ):
            # the operator onboards and approves the provider on hub one ...
            created = await http_one.post(
                "/admin/v1/providers", json=onboarding(party), headers=admin
            )
            assert created.status_code == 201, created.text
            approved = await http_one.post(
                f"/admin/v1/providers/{party.provider_id}/approve", headers=admin
            )
            assert approved.status_code == 200, approved.text
            # ... and hub two, following the change feed, lets the provider's user enlist
            for _ in range(100):
                nonce = (await http_two.post("/v1/enlistments/challenge")).json()["challenge"]
                enlisted = await http_two.post(
                    "/v1/enlistments", json=enlistment_body(party, nonce)
                )
                if enlisted.status_code != 403:
                    break
                await asyncio.sleep(0.05)
            assert enlisted.status_code == 201, enlisted.text
            jid = enlisted.json()["jid"]
            assert one.storage is not None
            assert await one.storage.accounts.exists(jid)
            # a token id used on one hub is a replay on the other
            token = party.token(aud=DOMAIN)
            nonce = (await http_one.post("/v1/enlistments/challenge")).json()["challenge"]
            key, sig = party.prove(nonce, DOMAIN)
            body = {"token": token, "identity_key": key, "challenge": nonce, "signature": sig}
            assert (await http_one.post("/v1/enlistments", json=body)).status_code == 200
            nonce = (await http_two.post("/v1/enlistments/challenge")).json()["challenge"]
            key, sig = party.prove(nonce, DOMAIN)
            body = {"token": token, "identity_key": key, "challenge": nonce, "signature": sig}
            replayed = await http_two.post("/v1/enlistments", json=body)
            assert replayed.status_code == 401, replayed.text
            # unenlisted through hub two: gone for hub one too
            gone = await http_two.delete(
                "/v1/enlistments", headers={"Authorization": f"Bearer {party.token(aud=DOMAIN)}"}
            )
            assert gone.json() == {"jid": jid, "deleted": True}
            assert not await one.storage.accounts.exists(jid)
