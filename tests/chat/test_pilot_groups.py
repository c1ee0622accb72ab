"""The chat client's groups driven through Textual's pilot against a real hub over TLS: create
a group, invite someone (whose SDK enters), chat there both ways, read the member list (where
the room shows its members under their aliases in it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from interlink.chat.app import ChatApp
from interlink.chat.session import ServerOptions
from interlink.client import GroupInvitation, GroupMessage, InterlinkClient
from tests.chat.test_pilot import ALICE, BOB, log_in, transcript, until
from tests.integration.kit import DOMAIN, next_of, running_hub

ROOM = f"team@groups.{DOMAIN}"


def shown(server: Any, jid: str) -> str:
    """The address the room shows for the service's user ``jid`` (its alias there)."""
    local, domain = jid.split("@")
    return f"{server.hub.router.federation.aliases.room_alias(local, 'team', domain)}@{domain}"


async def test_create_a_group_invite_and_chat_there(tmp_path: Path) -> None:
    async with running_hub(tmp_path) as (server, certs):
        port = server.ports["c2s-starttls"]
        bob = InterlinkClient(
            f"{BOB}/phone", "pw", data_dir=tmp_path / "bob", port=port, ca_file=certs.ca
        )
        await bob.connect()
        app = ChatApp(ServerOptions(port=port, ca_file=certs.ca, data_dir=tmp_path / "chat"))
        try:
            async with app.run_test(size=(140, 45)) as pilot:
                screen = await log_in(app, pilot)
                await pilot.click("#compose")
                await pilot.press(*"/group team", "enter")
                await until(pilot, lambda: screen.model.current == ROOM, "the new group")
                await pilot.press(*f"/invite {BOB}", "enter")
                invitation = await next_of(bob, GroupInvitation)
                assert (invitation.room, invitation.inviter) == (ROOM, ALICE)
                await bob.join_group(ROOM, "bob")
                bob_in_room, alice_in_room = shown(server, BOB), shown(server, ALICE)
                await until(
                    pilot,
                    lambda: bob_in_room in screen.model.conversation(ROOM).members,
                    "Bob entering",
                )
                await pilot.press(*"hello group", "enter")
                got = await next_of(bob, GroupMessage)
                assert (got.text, got.sender) == ("hello group", alice_in_room)
                await bob.send_group_text(ROOM, "hi from bob")
                await until(pilot, lambda: "bob: hi from bob" in transcript(app), "Bob's message")
                assert "hello group" in transcript(app)
                members = screen.model.members_text(ROOM).splitlines()
                assert sorted(members) == sorted(
                    [f"{alice_in_room} (owner)", f"{bob_in_room} (member)"]
                )
        finally:
            await bob.close()
