"""Bookmarks over loopback with slixmpp's own plugins: what one client stores in one form
(XEP-0048 in private storage, XEP-0048 in PEP, XEP-0402) another client of the same account
reads in the others (XEP-0402 §5.3, XEP-0411), and the account advertises it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from slixmpp import JID
from slixmpp.plugins.xep_0048.stanza import Bookmarks
from slixmpp.plugins.xep_0402.stanza import Conference

from tests.integration.kit import DOMAIN, TIMEOUT, Xmpp, running_hub

NATIVE = "urn:xmpp:bookmarks:1"
ALICE = f"alice@{DOMAIN}"


def native_options(client: Xmpp) -> Any:
    forms: Any = client.client.plugin["xep_0004"]  # slixmpp's plugins are untyped
    form = forms.make_form(ftype="submit")
    form.add_field(
        var="FORM_TYPE",
        ftype="hidden",
        value="http://jabber.org/protocol/pubsub#publish-options",
    )
    for var, value in (
        ("pubsub#persist_items", "true"),
        ("pubsub#max_items", "max"),
        ("pubsub#send_last_published_item", "never"),
        ("pubsub#access_model", "whitelist"),
    ):
        form.add_field(var=var, value=value)
    return form


async def native_rooms(client: Xmpp) -> dict[str, tuple[str, bool, str]]:
    pubsub: Any = client.client.plugin["xep_0060"]
    got = await pubsub.get_items(JID(ALICE), NATIVE, timeout=TIMEOUT)
    return {
        item["id"]: (
            item["conference"]["name"],
            item["conference"]["autojoin"],
            item["conference"]["nick"],
        )
        for item in got["pubsub"]["items"]
    }


def legacy_rooms(storage: Any) -> dict[str, tuple[str, bool, str]]:
    return {str(c["jid"]): (c["name"], c["autojoin"], c["nick"]) for c in storage["conferences"]}


async def test_bookmarks_cross_between_legacy_and_native_clients(tmp_path: Path) -> None:
    async with running_hub(tmp_path) as (server, certs):
        legacy = Xmpp(f"{ALICE}/old", "pw", certs)
        native = Xmpp(f"{ALICE}/new", "pw", certs)
        legacy.client.register_plugin("xep_0048")  # XEP-0049 private storage by default
        for plugin in ("xep_0060", "xep_0402", "xep_0004"):
            native.client.register_plugin(plugin)
        await legacy.login(server.ports["c2s-starttls"])
        await native.login(server.ports["c2s-starttls"])
        try:
            info = await native.client.plugin["xep_0030"].get_info(
                jid=JID(ALICE), local=False, cached=False, timeout=TIMEOUT
            )
            features = info["disco_info"]["features"]
            assert f"{NATIVE}#compat" in features
            assert f"{NATIVE}#compat-pep" in features
            marks: Any = legacy.client.plugin["xep_0048"]

            # legacy -> native
            storage: Any = Bookmarks()
            storage.add_conference(f"tea@muc.{DOMAIN}", "alice", name="Tea", autojoin=True)
            storage.add_url("https://example.org/", name="Site")
            await marks.set_bookmarks(storage, timeout=TIMEOUT)
            assert await native_rooms(native) == {f"tea@muc.{DOMAIN}": ("Tea", True, "alice")}

            # native -> legacy (private storage and the XEP-0048 PEP node)
            conf = Conference()
            conf["name"] = "Coven"
            conf["autojoin"] = False
            conf["nick"] = "witch"
            pubsub: Any = native.client.plugin["xep_0060"]
            await pubsub.publish(
                JID(ALICE),
                NATIVE,
                id=f"coven@muc.{DOMAIN}",
                payload=conf,
                options=native_options(native),
                timeout=TIMEOUT,
            )
            got = await marks.get_bookmarks(timeout=TIMEOUT)
            assert legacy_rooms(got["private"]["bookmarks"]) == {
                f"tea@muc.{DOMAIN}": ("Tea", True, "alice"),
                f"coven@muc.{DOMAIN}": ("Coven", False, "witch"),
            }
            assert [u["url"] for u in got["private"]["bookmarks"]["urls"]] == [
                "https://example.org/"
            ]  # what XEP-0402 cannot hold stays in the legacy form
            pep_form = await marks.get_bookmarks(method="xep_0223", timeout=TIMEOUT)
            item = pep_form["pubsub"]["items"]["item"]
            assert item["id"] == "current"
            assert set(legacy_rooms(item["bookmarks"])) == {
                f"tea@muc.{DOMAIN}",
                f"coven@muc.{DOMAIN}",
            }

            # a legacy rewrite that drops a room retracts it from the native node
            storage = Bookmarks()
            storage.add_conference(f"coven@muc.{DOMAIN}", "witch", name="Coven")
            await marks.set_bookmarks(storage, method="xep_0223", timeout=TIMEOUT)
            assert await native_rooms(native) == {f"coven@muc.{DOMAIN}": ("Coven", False, "witch")}
        finally:
            for x in (legacy, native):
                await x.close()
