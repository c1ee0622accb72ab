"""The chat client driven through Textual's pilot against a real hub over TLS (issue 7's
acceptance): log in through the login form, send a message that the peer's SDK decrypts,
receive a reply with its delivery tick, compare the safety number with the SDK's, verify."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from textual.pilot import Pilot
from textual.widgets import Static

from interlink.chat.app import ChatApp, ChatScreen, LoginScreen
from interlink.chat.dialogs import NewChatDialog, SafetyDialog
from interlink.chat.model import Delivery
from interlink.chat.session import ServerOptions
from interlink.client import Displayed, InterlinkClient
from tests.integration.kit import DOMAIN, next_of, next_text, running_hub

WAIT = 15.0  # seconds any one condition may take before the test fails

ALICE = f"alice@{DOMAIN}"
BOB = f"bob@{DOMAIN}"


async def until(pilot: Pilot[None], condition: Callable[[], bool], what: str) -> None:
    """Let the app run until ``condition`` holds; fail after WAIT seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause(0.05)


async def log_in(app: ChatApp, pilot: Pilot[None]) -> ChatScreen:
    """Alice logs in through the login form (password ``pw``); her chat screen."""
    await until(pilot, lambda: isinstance(app.screen, LoginScreen), "the login form")
    await pilot.click("#jid")
    await pilot.press(*ALICE)
    await pilot.click("#password")
    await pilot.press("p", "w")
    await pilot.click("#login-hub")
    await until(pilot, lambda: isinstance(app.screen, ChatScreen), "the login")
    screen = app.screen
    assert isinstance(screen, ChatScreen)
    return screen


def transcript(app: ChatApp) -> str:
    return str(app.screen.query_one("#transcript", Static).render())


async def test_login_send_receive_and_verify_the_safety_number(tmp_path: Path) -> None:
    async with running_hub(tmp_path) as (server, certs):
        port = server.ports["c2s-starttls"]
        bob = InterlinkClient(
            f"{BOB}/phone", "pw", data_dir=tmp_path / "bob", port=port, ca_file=certs.ca
        )
        await bob.connect()
        options = ServerOptions(port=port, ca_file=certs.ca, data_dir=tmp_path / "chat")
        app = ChatApp(options)
        try:
            async with app.run_test(size=(140, 45)) as pilot:
                screen = await log_in(app, pilot)

                await pilot.press("ctrl+n")
                await until(
                    pilot, lambda: isinstance(app.screen, NewChatDialog), "the new-chat dialog"
                )
                await pilot.press(*BOB, "enter")
                await until(pilot, lambda: screen.model.current == BOB, "the chat with Bob")

                await pilot.click("#compose")
                await pilot.press(*"hello bob", "enter")
                got = await next_text(bob)
                assert got.text == "hello bob"
                assert got.sender.startswith(ALICE)
                conversation = screen.model.conversation(BOB)
                await until(
                    pilot,
                    lambda: any(
                        ln.outgoing and ln.delivery is Delivery.DELIVERED
                        for ln in conversation.lines
                    ),
                    "Bob's delivery receipt",
                )

                reply_id = await bob.send_text(ALICE, "hi alice")
                await until(pilot, lambda: "hi alice" in transcript(app), "Bob's reply")
                seen = await next_of(bob, Displayed)  # the chat is open: Alice saw it
                assert seen.message_id == reply_id
                assert "hello bob" in transcript(app)
                assert "✓✓" in transcript(app)

                await pilot.press("ctrl+s")
                await until(pilot, lambda: isinstance(app.screen, SafetyDialog), "safety view")
                dialog = app.screen
                assert isinstance(dialog, SafetyDialog)
                shown = str(dialog.query_one("#safety-number", Static).render())
                digits = "".join(ch for ch in shown if ch.isdigit())
                expected = "".join((await bob.safety_number(ALICE)).split())
                assert len(digits) == 60
                assert digits == expected
                assert len(shown.splitlines()) == 3

                bob_devices = await bob.manager.get_own_device_information()
                device_id = bob_devices[0].device_id
                await pilot.click(f"#verify-{device_id}")
                await until(
                    pilot,
                    lambda: f"verified device {device_id} of {BOB}" in app.shown,
                    "the verification",
                )
                assert app.session is not None
                known = await app.session.client.manager.get_device_information(BOB)
                trust = {d.device_id: d.trust_level_name for d in known}
                assert trust[device_id] == "VERIFIED"
                await pilot.press("escape")
                await until(pilot, lambda: app.screen is screen, "the chat again")
                assert app.errors == []
        finally:
            await bob.close()
