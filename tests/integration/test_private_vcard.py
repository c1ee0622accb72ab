"""Stock-client storage over loopback with slixmpp's own plugins: XEP-0049 private XML storage
and XEP-0054 vcard-temp."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from slixmpp import JID
from slixmpp.xmlstream import ElementBase

from tests.integration.kit import DOMAIN, TIMEOUT, Xmpp, running_hub


class Prefs(ElementBase):
    name = "prefs"
    namespace = "exodus:prefs"
    plugin_attrib = "prefs"
    interfaces: ClassVar[set[str]] = {"nick"}
    sub_interfaces: ClassVar[set[str]] = {"nick"}


async def test_private_storage_round_trip(tmp_path: Path) -> None:
    async with running_hub(tmp_path) as (server, certs):
        alice = Xmpp(f"alice@{DOMAIN}/phone", "pw", certs)
        alice.client.register_plugin("xep_0049")
        private: Any = alice.client.plugin["xep_0049"]
        private.register(Prefs)
        await alice.login(server.ports["c2s-starttls"])
        try:
            prefs = Prefs()
            prefs["nick"] = "Hamlet"
            await private.store(prefs, timeout=TIMEOUT)
            got = await private.retrieve("prefs", timeout=TIMEOUT)
            assert got["private"]["prefs"]["nick"] == "Hamlet"
        finally:
            await alice.close()
        again = Xmpp(f"alice@{DOMAIN}/laptop", "pw", certs)
        again.client.register_plugin("xep_0049")
        later: Any = again.client.plugin["xep_0049"]
        later.register(Prefs)
        await again.login(server.ports["c2s-starttls"])
        try:
            got = await later.retrieve("prefs", timeout=TIMEOUT)
            assert got["private"]["prefs"]["nick"] == "Hamlet"
        finally:
            await again.close()


async def test_vcard_round_trip(tmp_path: Path) -> None:
    async with running_hub(tmp_path) as (server, certs):
        alice = Xmpp(f"alice@{DOMAIN}/phone", "pw", certs)
        bob = Xmpp(f"bob@{DOMAIN}/laptop", "pw", certs)
        for x in (alice, bob):
            x.client.register_plugin("xep_0054")
        await alice.login(server.ports["c2s-starttls"])
        await bob.login(server.ports["c2s-starttls"])
        try:
            vcards: Any = alice.client.plugin["xep_0054"]
            card = vcards.make_vcard()
            card["FN"] = "Alice Liddell"
            card["NICKNAME"] = "alice"
            await vcards.publish_vcard(card, timeout=TIMEOUT)
            got = await bob.client.plugin["xep_0054"].get_vcard(
                JID(f"alice@{DOMAIN}"), cached=False, local=False, timeout=TIMEOUT
            )
            assert got["vcard_temp"]["FN"] == "Alice Liddell"
            assert got["vcard_temp"]["NICKNAME"] == ["alice"]  # slixmpp gives a list
            none = await vcards.get_vcard(
                JID(f"bob@{DOMAIN}"), cached=False, local=False, timeout=TIMEOUT
            )
            assert none["vcard_temp"]["FN"] == ""
        finally:
            for x in (alice, bob):
                await x.close()
