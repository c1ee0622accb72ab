"""The chat client across the interop boundary, driven through Textual's pilot against a real
hub and the reference provider kit: a provider's user logs in through the kit (enlisting on
first run), finds a hub user by phone number and writes; a hub user turns third-party chats on
in the settings dialog, sees a message request in "Requests", accepts it and replies."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from textual.widgets import Button, Switch, TabbedContent

from interlink.chat.app import ChatApp, ChatScreen, LoginScreen
from interlink.chat.dialogs import NewChatDialog, SettingsDialog
from interlink.chat.model import Inbox
from interlink.chat.session import ServerOptions
from interlink.client import InterlinkClient
from interlink.client.enlist import enlist, fetch_token, identity_thumbprint
from tests.chat.test_pilot import ALICE, transcript, until
from tests.integration.kit import DOMAIN, Certs, hub_with_kit, next_text

PHONE = "+4915100000001"


@dataclass
class World:
    port: int
    hub_url: str
    kit_url: str
    certs: Certs
    tmp: Path

    def options(self) -> ServerOptions:
        return ServerOptions(
            port=self.port,
            ca_file=self.certs.ca,
            http_url=self.hub_url,
            hub_domain=DOMAIN,
            data_dir=self.tmp / "chat",
        )

    def sdk(self, jid: str, password: str, **kw: object) -> InterlinkClient:
        name = jid.partition("@")[0][:8]
        return InterlinkClient(
            f"{jid}/phone",
            password,
            data_dir=self.tmp / f"sdk-{name}",
            port=self.port,
            ca_file=self.certs.ca,
            **kw,  # type: ignore[arg-type]
        )


@asynccontextmanager
async def hub_and_kit(tmp: Path) -> AsyncIterator[World]:
    async with hub_with_kit(tmp) as setup:
        assert setup.server.storage is not None
        await setup.server.storage.policy.set_phone(ALICE, PHONE)
        port = setup.server.ports["c2s-starttls"]
        yield World(port, setup.hub_url, setup.kit_url, setup.certs, tmp)


async def test_a_provider_user_enlists_finds_a_hub_user_by_phone_and_writes(
    tmp_path: Path,
) -> None:
    async with hub_and_kit(tmp_path) as world:
        alice = world.sdk(ALICE, "pw")
        await alice.connect()
        app = ChatApp(world.options(), {"kit_url": world.kit_url, "kit_user": "bob"})
        try:
            await alice.set_interop_settings(enabled=True, discoverable=True)
            async with app.run_test(size=(140, 45)) as pilot:
                await until(pilot, lambda: isinstance(app.screen, LoginScreen), "the login form")
                app.screen.query_one(TabbedContent).active = "tab-kit"
                await pilot.pause()
                await pilot.click("#kit-password")
                await pilot.press(*"bob-secret", "enter")
                await until(pilot, lambda: isinstance(app.screen, ChatScreen), "the login")
                screen = app.screen
                assert isinstance(screen, ChatScreen)
                assert screen.session.third_party
                assert screen.session.jid.endswith(f"@examplechat.interop.{DOMAIN}")

                await pilot.press("ctrl+n")
                await until(pilot, lambda: isinstance(app.screen, NewChatDialog), "the dialog")
                await pilot.press(*PHONE, "enter")
                await until(pilot, lambda: screen.model.current == ALICE, "the discovery")
                await pilot.click("#compose")
                await pilot.press(*"hi from example chat", "enter")
                got = await next_text(alice)
                assert got.text == "hi from example chat"
                assert got.interop is not None
                assert got.interop.request
                assert got.interop.provider_name == "Example Chat"
                await alice.accept_request(got.sender)
                await alice.send_text(got.sender, "welcome")
                await until(pilot, lambda: "welcome" in transcript(app), "Alice's reply")
                assert app.errors == []
        finally:
            await alice.close()


async def test_a_hub_user_turns_chats_on_accepts_a_request_and_replies(tmp_path: Path) -> None:
    async with hub_and_kit(tmp_path) as world:
        bob_dir = tmp_path / "sdk-bob"
        thumbprint = await identity_thumbprint(bob_dir)

        async def token() -> str:
            return await fetch_token(world.kit_url, "bob", "bob-secret", thumbprint)

        bob_jid = (
            await enlist(bob_dir, world.hub_url, DOMAIN, await token(), ca_file=world.certs.ca)
        ).jid
        bob = world.sdk(bob_jid, "", token_provider=token)
        await bob.connect()
        app = ChatApp(world.options(), {"jid": ALICE})
        try:
            async with app.run_test(size=(140, 60)) as pilot:
                await until(pilot, lambda: isinstance(app.screen, LoginScreen), "the login form")
                await pilot.click("#password")
                await pilot.press("p", "w", "enter")
                await until(pilot, lambda: isinstance(app.screen, ChatScreen), "the login")
                screen = app.screen
                assert isinstance(screen, ChatScreen)
                client = screen.client

                await pilot.press("ctrl+o")
                await until(pilot, lambda: isinstance(app.screen, SettingsDialog), "settings")
                assert not app.screen.query_one("#enabled", Switch).value
                app.screen.query_one("#enabled", Switch).toggle()
                app.screen.query_one("#save", Button).press()
                await until(pilot, lambda: "settings saved" in app.shown, "the settings saved")
                assert (await client.interop_settings()).enabled

                await bob.send_text(ALICE, "hello from example chat")
                await until(
                    pilot,
                    lambda: Inbox.REQUESTS in screen.model.inboxes(),
                    "the message request",
                )
                conversations = screen.query_one("#conversations")
                conversations.focus()
                await pilot.press("down", "enter")
                await until(pilot, lambda: screen.model.current == bob_jid, "the request opened")
                assert "hello from example chat" in transcript(app)
                assert screen.query_one("#request-actions").has_class("shown")
                await pilot.click("#accept")
                await until(pilot, lambda: f"accepted {bob_jid}" in app.shown, "the accept")
                assert Inbox.OTHER_SERVICES in screen.model.inboxes()
                assert await client.message_requests() == []

                await pilot.click("#compose")
                await pilot.press(*"hi bob", "enter")
                assert (await next_text(bob)).text == "hi bob"
                assert app.errors == []
        finally:
            await bob.close()
