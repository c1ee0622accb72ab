"""``interlink chat`` keeps its conversations on the device: after a restart it shows the last
session's messages (once each), and catches up from the hub's archive with what another device
of the account received while the chat was closed."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

from textual.pilot import Pilot

from interlink.chat.app import ChatApp, ChatScreen
from interlink.chat.dialogs import NewChatDialog
from interlink.chat.history import FILE
from interlink.chat.session import ServerOptions, _safe
from interlink.client import GroupInvitation, InterlinkClient
from tests.chat.test_pilot import ALICE, BOB, log_in, transcript, until
from tests.chat.test_pilot_groups import shown as room_address
from tests.integration.kit import DOMAIN, next_of, next_text, running_hub

ROOM = f"team@groups.{DOMAIN}"


async def open_chat(app: ChatApp, pilot: Pilot[None], screen: ChatScreen) -> None:
    await pilot.press("ctrl+n")
    await until(pilot, lambda: isinstance(app.screen, NewChatDialog), "the new-chat dialog")
    await pilot.press(*BOB, "enter")
    await until(pilot, lambda: screen.model.current == BOB, "the chat with Bob")


async def test_the_chat_shows_the_last_sessions_lines_and_catches_up_after_a_restart(
    tmp_path: Path,
) -> None:
    async with running_hub(tmp_path) as (server, certs):
        port = server.ports["c2s-starttls"]
        bob = InterlinkClient(
            f"{BOB}/phone", "pw", data_dir=tmp_path / "bob", port=port, ca_file=certs.ca
        )
        await bob.connect()
        phone = InterlinkClient(  # another device of Alice's
            f"{ALICE}/phone", "pw", data_dir=tmp_path / "alice-phone", port=port, ca_file=certs.ca
        )
        await phone.connect()
        options = ServerOptions(port=port, ca_file=certs.ca, data_dir=tmp_path / "chat")
        try:
            app = ChatApp(options)
            async with app.run_test(size=(140, 45)) as pilot:
                screen = await log_in(app, pilot)
                await open_chat(app, pilot, screen)
                await pilot.click("#compose")
                await pilot.press(*"hello bob", "enter")
                assert (await next_text(bob)).text == "hello bob"
                await bob.send_text(ALICE, "hi alice")
                await until(pilot, lambda: "hi alice" in transcript(app), "Bob's reply")
            # while the chat is closed, Bob writes; Alice's phone (online) gets it
            await bob.send_text(ALICE, "while the chat was closed")
            while (await next_text(phone)).text != "while the chat was closed":
                pass  # carbons of the first session's messages come first

            app = ChatApp(options)  # the same data directory: the same device, its history
            async with app.run_test(size=(140, 45)) as pilot:
                screen = await log_in(app, pilot)
                await open_chat(app, pilot, screen)

                def shown() -> str:
                    return transcript(app)

                await until(pilot, lambda: "hello bob" in shown(), "the kept outgoing line")
                await until(pilot, lambda: "hi alice" in shown(), "the kept incoming line")
                await until(
                    pilot, lambda: "while the chat was closed" in shown(), "the archive's catch-up"
                )
                await pilot.pause(0.5)
                for text in ("hello bob", "hi alice", "while the chat was closed"):
                    assert shown().count(text) == 1, text
                assert not app.errors
            path = options.data_dir / _safe(ALICE) / FILE
            with closing(sqlite3.connect(path)) as db:
                rows = db.execute("SELECT text, outgoing FROM lines ORDER BY seq").fetchall()
                read_up_to = db.execute("SELECT value FROM state").fetchall()
            assert rows == [
                ("hello bob", 1),
                ("hi alice", 0),
                ("while the chat was closed", 0),
            ]
            assert len(read_up_to) == 1  # how far the archive was read, for the next start
        finally:
            await bob.close()
            await phone.close()


async def test_the_chat_catches_up_a_groups_messages_from_the_rooms_archive(
    tmp_path: Path,
) -> None:
    """A group the chat knows (kept from the last run) is caught up from its room's archive
    after a restart: what was said while the chat was closed is shown once, and what it had
    read live is not decrypted again (nor shown twice)."""
    async with running_hub(tmp_path) as (server, certs):
        port = server.ports["c2s-starttls"]
        bob = InterlinkClient(
            f"{BOB}/phone", "pw", data_dir=tmp_path / "bob", port=port, ca_file=certs.ca
        )
        await bob.connect()
        options = ServerOptions(port=port, ca_file=certs.ca, data_dir=tmp_path / "chat")
        try:
            app = ChatApp(options)
            async with app.run_test(size=(140, 45)) as pilot:
                screen = await log_in(app, pilot)
                await pilot.click("#compose")
                await pilot.press(*"/group team", "enter")
                await until(pilot, lambda: screen.model.current == ROOM, "the new group")
                await pilot.press(*f"/invite {BOB}", "enter")
                await next_of(bob, GroupInvitation)
                await bob.join_group(ROOM, "bob")
                bob_in_room = room_address(server, BOB)  # the room shows members by their aliases
                await until(
                    pilot,
                    lambda: bob_in_room in screen.model.conversation(ROOM).members,
                    "Bob entering",
                )
                await bob.send_group_text(ROOM, "said live")
                await until(pilot, lambda: "bob: said live" in transcript(app), "Bob's message")
            await bob.send_group_text(ROOM, "said while the chat was closed")

            app = ChatApp(options)
            async with app.run_test(size=(140, 45)) as pilot:
                screen = await log_in(app, pilot)
                await until(pilot, lambda: ROOM in screen.model.conversations, "the kept group")
                screen.open_conversation(ROOM)

                def shown() -> str:
                    return transcript(app)

                await until(
                    pilot,
                    lambda: "said while the chat was closed" in shown(),
                    "the room archive's catch-up",
                )
                await pilot.pause(0.5)
                assert shown().count("bob: said live") == 1
                assert shown().count("bob: said while the chat was closed") == 1
                assert not app.errors
            path = options.data_dir / _safe(ALICE) / FILE
            with closing(sqlite3.connect(path)) as db:
                keys = [k for (k,) in db.execute("SELECT key FROM state")]
            assert f"room_archive_id:{ROOM}" in keys  # how far the room's archive was read
        finally:
            await bob.close()
