"""A federated provider's server that cannot be reached: the gatekeeper user's message is
answered with remote-server-timeout, never silently lost (issue 15)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from interlink.xmpp.ext import interop
from tests.integration.federationkit import (
    DOMAIN,
    HOME,
    PEER,
    PROVIDER,
    enlist,
    federating_hub,
    interop_iq,
    onboard,
)
from tests.integration.kit import TIMEOUT, Xmpp
from tests.integration.prosodykit import federation_certs
from tests.ports import free_port


async def test_a_message_to_an_unreachable_server_bounces(tmp_path: Path) -> None:
    certs = federation_certs(tmp_path / "certs", DOMAIN, (PEER,))
    hub = federating_hub(tmp_path / "hub", certs, s2s={"connect_timeout": 2})
    await hub.start()
    try:
        assert hub.s2s is not None
        # nobody listens at the provider's server's address
        await onboard(hub, f"127.0.0.1:{free_port()}", s2s_ca=certs.ca_pem)
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
