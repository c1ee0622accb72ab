"""Failures the chat client must show and survive: bad login input (no network needed), a wrong
password against a real hub, misused commands, a missing file, and an address nobody has."""

from __future__ import annotations

from pathlib import Path

import pytest

from interlink.chat.app import ChatApp, ChatScreen, LoginScreen
from interlink.chat.session import GatekeeperLogin, KitLogin, LoginError, ServerOptions, log_in
from tests.chat.test_pilot import ALICE, until
from tests.integration.kit import DOMAIN, running_hub


@pytest.mark.parametrize(
    ("login", "reason"),
    [
        (GatekeeperLogin("no-at-sign", "pw"), "give an address"),
        (GatekeeperLogin(ALICE, ""), "give the password"),
        (KitLogin("", "bob", "pw"), "kit's URL"),
        (KitLogin("http://127.0.0.1:9", "bob", "pw"), "give --http-url and --domain"),
    ],
)
async def test_login_input_is_checked_before_connecting(
    tmp_path: Path, login: GatekeeperLogin | KitLogin, reason: str
) -> None:
    with pytest.raises(LoginError, match=reason):
        await log_in(login, ServerOptions(port=9, data_dir=tmp_path))


async def test_wrong_password_then_errors_in_the_chat_never_end_the_app(tmp_path: Path) -> None:
    async with running_hub(tmp_path) as (server, certs):
        options = ServerOptions(
            port=server.ports["c2s-starttls"], ca_file=certs.ca, data_dir=tmp_path / "chat"
        )
        app = ChatApp(options, {"jid": ALICE})
        async with app.run_test(size=(140, 45)) as pilot:
            await until(pilot, lambda: isinstance(app.screen, LoginScreen), "the login form")
            await pilot.click("#password")
            await pilot.press("n", "o", "enter")
            await until(pilot, lambda: bool(app.errors), "the refusal")
            assert "authentication failed" in app.errors[0]
            assert isinstance(app.screen, LoginScreen)

            await pilot.click("#password")
            await pilot.press("end", "backspace", "backspace", "p", "w", "enter")
            await until(pilot, lambda: isinstance(app.screen, ChatScreen), "the login")
            screen = app.screen
            assert isinstance(screen, ChatScreen)

            await pilot.click("#compose")
            await pilot.press(*"hello", "enter")
            await until(pilot, lambda: "open or start a chat first (Ctrl+N)" in app.shown, "hint")
            await pilot.press(*"/nonsense", "enter")
            await until(pilot, lambda: any("/file" in text for text in app.shown), "the usage")

            screen.open_conversation(f"nobody@{DOMAIN}")
            await pilot.press(*"/file /no/such/file.png", "enter")
            await until(pilot, lambda: any("no such file" in e for e in app.errors), "missing")
            await pilot.press(*"/download", "enter")
            await until(pilot, lambda: "no such file in this chat" in app.shown, "no download")
            errors_before = len(app.errors)
            await pilot.press(*"anyone there?", "enter")
            await until(pilot, lambda: len(app.errors) > errors_before, "the failed send")
            assert isinstance(app.screen, ChatScreen)  # still running, still chatting
