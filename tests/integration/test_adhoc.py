"""XEP-0050 over loopback with slixmpp's own plugin: the change-password command (after which the
old password fails, the new one works and the account's other session is gone), and the XEP-0133
commands for an operator named in ``[adhoc] operators``."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from slixmpp import JID

from tests.integration.kit import DOMAIN, TIMEOUT, Xmpp, running_hub

CHANGE_PASSWORD = "urn:interlink:adhoc:change-password"
ADMIN = "http://jabber.org/protocol/admin"


def submit(client: Xmpp, form_type: str, **fields: str) -> Any:
    forms: Any = client.client.plugin["xep_0004"]  # slixmpp's plugins are untyped
    form = forms.make_form(ftype="submit")
    form.add_field(var="FORM_TYPE", ftype="hidden", value=form_type)
    for var, value in fields.items():
        form.add_field(var=var.replace("_", "-"), value=value)
    return form


def with_commands(jid: str, password: str, certs: Any) -> Xmpp:
    x = Xmpp(jid, password, certs)
    for plugin in ("xep_0004", "xep_0050"):
        x.client.register_plugin(plugin)
    return x


async def test_change_password_with_slixmpp(tmp_path: Path) -> None:
    async with running_hub(tmp_path) as (server, certs):
        port = server.ports["c2s-starttls"]
        alice = with_commands(f"alice@{DOMAIN}/phone", "pw", certs)
        laptop = Xmpp(f"alice@{DOMAIN}/laptop", "pw", certs)
        await alice.login(port)
        await laptop.login(port)
        ended = asyncio.Event()
        laptop.client.add_event_handler("disconnected", lambda _: ended.set())
        try:
            adhoc: Any = alice.client.plugin["xep_0050"]
            listed = await adhoc.get_commands(JID(DOMAIN), timeout=TIMEOUT)
            nodes = [node for _jid, node, _name in listed["disco_items"]["items"]]
            assert nodes == [CHANGE_PASSWORD]  # no operator commands for alice
            first = await adhoc.send_command(JID(DOMAIN), CHANGE_PASSWORD, timeout=TIMEOUT)
            assert first["command"]["status"] == "executing"
            form = submit(alice, CHANGE_PASSWORD, password="n3w-pass", password_confirm="n3w-pass")
            done = await adhoc.send_command(
                JID(DOMAIN),
                CHANGE_PASSWORD,
                action="complete",
                sessionid=first["command"]["sessionid"],
                payload=form,
                timeout=TIMEOUT,
            )
            assert done["command"]["status"] == "completed"
            await asyncio.wait_for(ended.wait(), TIMEOUT)  # the other session is logged out
        finally:
            for x in (alice, laptop):
                await x.close()
        old = Xmpp(f"alice@{DOMAIN}/old", "pw", certs)
        try:
            with pytest.raises(AssertionError, match="login failed"):
                await old.login(port)  # the old password no longer works
        finally:
            await old.close()
        new = Xmpp(f"alice@{DOMAIN}/new", "n3w-pass", certs)
        await new.login(port)
        await new.close()


async def test_operator_commands_with_slixmpp(tmp_path: Path) -> None:
    async with running_hub(tmp_path, adhoc={"operators": [f"alice@{DOMAIN}"]}) as (server, certs):
        port = server.ports["c2s-starttls"]
        op = with_commands(f"alice@{DOMAIN}/desk", "pw", certs)
        bob = with_commands(f"bob@{DOMAIN}/phone", "pw", certs)
        await op.login(port)
        await bob.login(port)
        await bob.ping_server()  # bob's initial presence is handled: the announcement's audience
        try:
            adhoc: Any = op.client.plugin["xep_0050"]
            listed = await adhoc.send_command(
                JID(DOMAIN), f"{ADMIN}#get-online-users-list", timeout=TIMEOUT
            )
            assert listed["command"]["status"] == "completed"
            jids = listed["command"]["form"]["values"]["onlineuserjids"]
            assert sorted(str(j) for j in jids) == [f"alice@{DOMAIN}", f"bob@{DOMAIN}"]
            start = await adhoc.send_command(JID(DOMAIN), f"{ADMIN}#announce", timeout=TIMEOUT)
            await adhoc.send_command(
                JID(DOMAIN),
                f"{ADMIN}#announce",
                action="complete",
                sessionid=start["command"]["sessionid"],
                payload=submit(op, ADMIN, subject="Hello", announcement="Maintenance at noon"),
                timeout=TIMEOUT,
            )
            got = await bob.next_message()
            assert got["body"] == "Maintenance at noon"
            assert str(got["from"]) == DOMAIN
            bobs: Any = bob.client.plugin["xep_0050"]
            refused = await bobs.get_commands(JID(DOMAIN), timeout=TIMEOUT)
            assert [n for _j, n, _name in refused["disco_items"]["items"]] == [CHANGE_PASSWORD]
        finally:
            for x in (op, bob):
                await x.close()
