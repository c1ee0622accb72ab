"""``interlink chat`` through Textual's pilot: focus order on the login form, a help screen that
stays, certificate errors that say so, and a hub restarted under the open chat — the status
line says offline, a message typed meanwhile is marked unsent, then sent once when the hub is
back."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

import trustme
from textual.widgets import Input, Static

from interlink.chat.app import ChatApp, ChatScreen, HelpScreen, LoginScreen
from interlink.chat.model import Delivery
from interlink.chat.session import ServerOptions
from interlink.client import TextMessage
from interlink.client.events import ClientEvent
from tests.chat.test_pilot import ALICE, BOB, until
from tests.integration.kit import (
    TIMEOUT,
    make_certs,
    next_text,
    running_hub,
    sdk_client,
    started_hub,
)
from tests.ports import free_port


def status(app: ChatApp) -> str:
    return str(app.screen.query_one("#status", Static).render())


async def test_focus_starts_in_the_password_and_the_address_is_not_selected(
    tmp_path: Path,
) -> None:
    async with running_hub(tmp_path) as (server, certs):
        port = server.ports["c2s-starttls"]
        options = ServerOptions(port=port, ca_file=certs.ca, data_dir=tmp_path / "chat")
        app = ChatApp(options, prefill={"jid": ALICE})
        async with app.run_test(size=(140, 45)) as pilot:
            await until(pilot, lambda: isinstance(app.screen, LoginScreen), "the login form")
            await pilot.pause()
            focused = app.focused
            assert isinstance(focused, Input)
            assert focused.id == "password"
            await pilot.press("shift+tab")  # back to the address
            address = app.focused
            assert isinstance(address, Input)
            assert address.id == "jid"
            assert address.selection.is_empty  # typing adds to it, does not replace it
            assert address.value == ALICE
            await pilot.press("tab")
            await pilot.press("p", "w", "enter")  # typed straight away, as a user would
            await until(pilot, lambda: isinstance(app.screen, ChatScreen), "the login")

            await pilot.press("f1")
            await until(pilot, lambda: isinstance(app.screen, HelpScreen), "the help screen")
            await pilot.pause(1.0)
            assert isinstance(app.screen, HelpScreen)  # it stays until closed
            help_text = str(app.screen.query_one("#help-text", Static).render())
            assert "arrows and Enter open a chat" in help_text
            assert "/file" in help_text
            await pilot.press("escape")
            await until(pilot, lambda: isinstance(app.screen, ChatScreen), "the chat again")
            assert status(app) == "connected"


async def login_errors(options: ServerOptions) -> list[str]:
    """The errors a password login with ``options`` shows; the login form stays."""
    app = ChatApp(options, prefill={"jid": ALICE})
    async with app.run_test(size=(140, 45)) as pilot:
        await until(pilot, lambda: isinstance(app.screen, LoginScreen), "the login form")
        await pilot.pause()
        await pilot.press("p", "w", "enter")
        await until(pilot, lambda: bool(app.errors), "the login error")
        assert isinstance(app.screen, LoginScreen)
        return app.errors


async def test_a_missing_or_wrong_ca_file_is_a_certificate_error(tmp_path: Path) -> None:
    async with running_hub(tmp_path) as (server, _certs):
        port = server.ports["c2s-starttls"]
        other_ca = tmp_path / "other-ca.pem"
        trustme.CA().cert_pem.write_to_path(str(other_ca))
        missing = ServerOptions(port=port, ca_file=tmp_path / "nowhere.pem", data_dir=tmp_path)
        [error] = await login_errors(missing)
        assert "nowhere.pem does not exist" in error
        wrong = ServerOptions(port=port, ca_file=other_ca, data_dir=tmp_path / "chat")
        [error] = await login_errors(wrong)
        assert "certificate" in error
        assert "verify failed" in error or "verif" in error, error


async def test_the_chat_rides_out_a_hub_restart_and_resends_what_waited(tmp_path: Path) -> None:
    certs = make_certs(tmp_path)
    port = free_port()
    server = await started_hub(tmp_path, certs, net={"c2s_port": port})
    bob = sdk_client(tmp_path, f"{BOB}/phone", port, certs, "bob")
    await bob.connect()
    options = ServerOptions(port=port, ca_file=certs.ca, data_dir=tmp_path / "chat")
    app = ChatApp(options, prefill={"jid": ALICE})
    try:
        async with app.run_test(size=(140, 45)) as pilot:
            await until(pilot, lambda: isinstance(app.screen, LoginScreen), "the login form")
            await pilot.pause()
            await pilot.press("p", "w", "enter")
            await until(pilot, lambda: isinstance(app.screen, ChatScreen), "the login")
            screen = app.screen
            assert isinstance(screen, ChatScreen)
            screen.open_conversation(BOB)
            await pilot.click("#compose")
            await pilot.press(*"before", "enter")
            assert (await next_text(bob)).text == "before"

            await asyncio.wait_for(server.stop(), TIMEOUT)
            await until(pilot, lambda: status(app).startswith("offline"), "the offline status")
            await pilot.click("#compose")
            await pilot.press(*"while the hub is away", "enter")
            lines = screen.model.conversation(BOB).lines
            await until(pilot, lambda: len(lines) == 2, "the message typed offline")
            assert lines[1].delivery is Delivery.UNSENT
            assert "not sent yet" in str(screen.query_one("#transcript", Static).render())

            server = await started_hub(tmp_path, certs, net={"c2s_port": port}, accounts=())
            await until(pilot, lambda: status(app) == "connected", "the reconnection")
            await until(pilot, lambda: lines[1].delivery is not Delivery.UNSENT, "the hub's ack")
            got: list[ClientEvent] = []
            deadline = asyncio.get_running_loop().time() + 10
            while not any(isinstance(e, TextMessage) for e in got):
                assert asyncio.get_running_loop().time() < deadline, "never arrived"
                got.append(await bob.next_event(10))
            assert [e.text for e in got if isinstance(e, TextMessage)] == ["while the hub is away"]
            await asyncio.sleep(1.0)
            later: list[ClientEvent] = []
            while True:
                try:
                    later.append(await bob.next_event(0.5))
                except TimeoutError:
                    break
            assert not [e for e in later if isinstance(e, TextMessage)]  # exactly once
            assert app.errors == []
    finally:
        await bob.close()
        await asyncio.wait_for(server.stop(), TIMEOUT)


async def test_a_message_typed_while_the_hub_is_away_survives_closing_the_chat(
    tmp_path: Path,
) -> None:
    """The chat is closed with a message still "not sent yet"; the SDK kept it in the data
    directory. At the next start (the hub back) it goes out once, with its id, and its kept
    line gets the hub's ✓."""
    certs = make_certs(tmp_path)
    port = free_port()
    server = await started_hub(tmp_path, certs, net={"c2s_port": port})
    bob = sdk_client(tmp_path, f"{BOB}/phone", port, certs, "bob")
    await bob.connect()
    options = ServerOptions(port=port, ca_file=certs.ca, data_dir=tmp_path / "chat")

    async def log_in(app: ChatApp, pilot: Any) -> ChatScreen:
        await until(pilot, lambda: isinstance(app.screen, LoginScreen), "the login form")
        await pilot.pause()
        await pilot.press("p", "w", "enter")
        await until(pilot, lambda: isinstance(app.screen, ChatScreen), "the login")
        screen = app.screen
        assert isinstance(screen, ChatScreen)
        return screen

    try:
        app = ChatApp(options, prefill={"jid": ALICE})
        async with app.run_test(size=(140, 45)) as pilot:
            screen = await log_in(app, pilot)
            screen.open_conversation(BOB)
            await pilot.click("#compose")
            await pilot.press(*"before", "enter")
            assert (await next_text(bob)).text == "before"
            await asyncio.wait_for(server.stop(), TIMEOUT)
            await until(pilot, lambda: status(app).startswith("offline"), "the offline status")
            await pilot.click("#compose")
            await pilot.press(*"typed before closing", "enter")
            lines = screen.model.conversation(BOB).lines
            await until(pilot, lambda: len(lines) == 2, "the message typed offline")
            assert lines[1].delivery is Delivery.UNSENT
            waiting = lines[1].message_id

        server = await started_hub(tmp_path, certs, net={"c2s_port": port}, accounts=())
        app = ChatApp(options, prefill={"jid": ALICE})
        async with app.run_test(size=(140, 45)) as pilot:
            screen = await log_in(app, pilot)
            screen.open_conversation(BOB)
            kept = screen.model.conversation(BOB).lines
            line = next(x for x in kept if x.message_id == waiting)
            await until(pilot, lambda: line.delivery is not Delivery.UNSENT, "the hub's ack")
            got: list[ClientEvent] = []
            with contextlib.suppress(TimeoutError):
                while True:
                    got.append(await bob.next_event(2.0))
            texts = [e for e in got if isinstance(e, TextMessage)]
            assert [(e.text, e.message_id) for e in texts] == [("typed before closing", waiting)]
            assert [x.text for x in kept].count("typed before closing") == 1
            assert app.errors == []
    finally:
        await bob.close()
        await asyncio.wait_for(server.stop(), TIMEOUT)
