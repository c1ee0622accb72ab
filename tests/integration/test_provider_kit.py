"""The reference provider kit against the hub, end to end (issue 4's acceptance path): onboard
and approve the provider (keys from the kit's JWKS URL), a kit user enlists through the SDK, logs
in with OAUTHBEARER, exchanges E2EE messages with a hub user; offline, the kit receives exactly
one push with a valid hub signature; the user reconnects and decrypts; deactivated at the kit,
the user can no longer log in (introspection)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from interlink.client import InterlinkClient
from interlink.client.client import ClientError
from interlink.client.enlist import fetch_token, identity_thumbprint
from interlink.provider.store import KitStore
from tests.integration.kit import DOMAIN, hub_with_kit, next_text


async def test_provider_kit_end_to_end(tmp_path: Path) -> None:
    async with hub_with_kit(tmp_path) as setup:
        certs, store, kit_url = setup.certs, setup.kit, setup.kit_url
        port = setup.server.ports["c2s-starttls"]
        bob_dir = tmp_path / "bob"
        thumbprint = await identity_thumbprint(bob_dir)
        jid, token = await setup.enlist(bob_dir)
        bob = InterlinkClient(
            f"{jid}/phone",
            "",
            data_dir=bob_dir,
            port=port,
            ca_file=certs.ca,
            token_provider=token,
        )
        alice = InterlinkClient(
            f"alice@{DOMAIN}/phone",
            "pw",
            data_dir=tmp_path / "alice",
            port=port,
            ca_file=certs.ca,
        )
        await bob.connect()
        await alice.connect()
        try:
            await alice.set_interop_settings(enabled=True)
            await bob.send_text(f"alice@{DOMAIN}", "hi from Example Chat")
            first = await next_text(alice)
            assert first.text == "hi from Example Chat"
            assert first.interop is not None
            assert first.interop.request
            assert first.interop.provider == "examplechat"
            await alice.accept_request(jid)
            await alice.send_text(jid, "hi Bob")
            assert (await next_text(bob)).text == "hi Bob"
            await bob.close()
            await asyncio.sleep(0.2)
            await alice.send_text(jid, "while you were away")
            async with httpx.AsyncClient(base_url=kit_url, timeout=5) as http:
                pushes: list[dict[str, object]] = []
                for _ in range(100):
                    answer = await http.post(
                        "/v1/pushes", json={"username": "bob", "password": "bob-secret"}
                    )
                    pushes = answer.json()["pushes"]
                    if pushes:
                        break
                    await asyncio.sleep(0.05)
                await asyncio.sleep(0.3)
                pushes = (
                    await http.post(
                        "/v1/pushes", json={"username": "bob", "password": "bob-secret"}
                    )
                ).json()["pushes"]
            assert len(pushes) == 1  # verified by the kit with the hub's published key
            assert pushes[0]["count"] == 1
            bob = InterlinkClient(
                f"{jid}/phone",
                "",
                data_dir=bob_dir,
                port=port,
                ca_file=certs.ca,
                token_provider=token,
            )
            await bob.connect()
            assert (await next_text(bob)).text == "while you were away"
            await bob.close()
            # Deactivated at the provider: the hub's introspection refuses the login.
            await store.set_active("bob", False)
            refused = InterlinkClient(
                f"{jid}/phone",
                "",
                data_dir=bob_dir,
                port=port,
                ca_file=certs.ca,
                token_provider=lambda: fetch_token_unchecked(kit_url, thumbprint, store),
            )
            try:
                await refused.connect()
                raise AssertionError("an inactive account logged in")
            except ClientError:
                pass
            finally:
                await refused.close()
        finally:
            await alice.close()
            await bob.close()


async def fetch_token_unchecked(kit_url: str, thumbprint: str, store: KitStore) -> str:
    """The kit refuses tokens for inactive users; reactivate briefly to get one, so the hub's
    introspection is what refuses the login."""
    await store.set_active("bob", True)
    try:
        return await fetch_token(kit_url, "bob", "bob-secret", thumbprint)
    finally:
        await store.set_active("bob", False)
