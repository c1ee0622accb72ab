"""The SDK's entity capabilities (XEP-0115) match what it answers to disco#info.

A contact's client learns what the SDK's device supports from the ``ver`` in its presence, and
checks it (XEP-0115 §5.4): it asks disco#info at ``node#ver`` and hashes the answer. A ``ver``
that does not match makes it discard the answer: Gajim 1.7 logs "Disco info malformed … Caps
hashes differ" and knows nothing of the SDK's features (found driving Gajim,
tests/integration/test_real_clients.py)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import slixmpp

from interlink.client import InterlinkClient
from tests.integration.kit import DOMAIN, TIMEOUT, Xmpp, running_hub
from tests.integration.test_real_clients import befriend


async def test_the_caps_in_the_sdks_presence_hash_its_disco_info(tmp_path: Path) -> None:
    async with running_hub(tmp_path) as (server, certs):
        port = server.ports["c2s-starttls"]
        await befriend(port, certs, "alice", "bob")
        bob = Xmpp(f"bob@{DOMAIN}/peer", "pw", certs)
        bob.client.register_plugin("xep_0115")
        await bob.login(port)
        alice = InterlinkClient(
            f"alice@{DOMAIN}/sdk", "pw", data_dir=tmp_path / "alice", port=port, ca_file=certs.ca
        )
        await alice.connect()
        try:
            deadline = time.monotonic() + TIMEOUT
            while True:
                presence: Any = await asyncio.wait_for(
                    bob.presences.get(), max(0.01, deadline - time.monotonic())
                )
                if presence["from"] == f"alice@{DOMAIN}/sdk" and presence["caps"]["ver"]:
                    break
            caps = presence["caps"]
            disco: Any = bob.client.plugin["xep_0030"]
            answer = await disco.get_info(
                jid=slixmpp.JID(f"alice@{DOMAIN}/sdk"),
                node=f"{caps['node']}#{caps['ver']}",
                timeout=TIMEOUT,
            )
            info = answer["disco_info"]
            assert "eu.siacs.conversations.axolotl.devicelist+notify" in info["features"]
            entity_caps: Any = bob.client.plugin["xep_0115"]
            hashed = entity_caps.generate_verstring(info, caps["hash"])
            assert hashed == caps["ver"]
        finally:
            await alice.close()
            await bob.close()
