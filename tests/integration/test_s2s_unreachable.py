"""A federated provider's server that cannot be reached: the gatekeeper user's message is
answered with remote-server-timeout, never silently lost (issue 15)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from interlink.app import HubServer
from interlink.storage.providers import Provider, ProviderMode, ProviderStatus
from interlink.xmpp.ext import interop
from interlink.xmpp.sasl import derive_credentials
from tests.integration.kit import TIMEOUT, Xmpp, settings_for
from tests.integration.prosodykit import federation_certs, free_port
from tests.integration.test_s2s_prosody import DOMAIN, HOME, PEER, PROVIDER, enlist, interop_iq


async def test_a_message_to_an_unreachable_server_bounces(tmp_path: Path) -> None:
    certs = federation_certs(tmp_path / "certs", DOMAIN, (PEER,))
    hub = HubServer(
        settings_for(
            tmp_path / "hub",
            certs.hub,
            hub={"domain": DOMAIN},
            net={"s2s_port": 0},
            s2s={"enabled": True, "connect_timeout": 2},
        )
    )
    await hub.start()
    try:
        assert hub.registry is not None
        assert hub.storage is not None
        assert hub.s2s is not None
        await hub.registry.add(
            Provider(
                PROVIDER,
                "Chat Test",
                "https://chat.example/hub",
                jwks_url="https://chat.example/jwks",
                mode=ProviderMode.FEDERATED,
                server_domains=(PEER,),
                s2s_ca=certs.ca_pem,
                s2s_address=f"127.0.0.1:{free_port()}",  # nobody listens there
            ),
            "test",
        )
        await hub.registry.set_status(PROVIDER, ProviderStatus.APPROVED, "test")
        await hub.storage.accounts.create(HOME, derive_credentials("pw", 4096), time.time())
        await enlist(hub, f"alice@{PEER}")
        home = Xmpp(HOME, "pw", certs.hub)
        home.client.add_event_handler("message_error", home.messages.put_nowait)
        await home.login(hub.ports["c2s-starttls"])
        try:
            await interop_iq(home, f"<settings xmlns='{interop.NS}' enabled='true'/>")
            home.send_chat(f"alice@{PEER}", "anyone there?")
            bounced = await home.next_message(timeout=15)
            assert bounced["type"] == "error"
            assert bounced["error"]["condition"] == "remote-server-timeout"
            assert str(bounced["from"]) == f"alice@{PEER}"
            assert hub.s2s.counters[PROVIDER].refusals >= 1
        finally:
            await home.close()
    finally:
        await asyncio.wait_for(hub.stop(), timeout=TIMEOUT)
