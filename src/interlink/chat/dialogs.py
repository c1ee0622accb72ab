"""The chat client's dialogs: a new chat, the safety number with its verify action, the
third-party chat settings, and a report. Each gets what it shows from its caller and hands back
what the user chose; the SDK calls stay in :mod:`interlink.chat.app`, except verify, which is
passed in as a function so the result shows where the user pressed it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import (
    Button,
    Input,
    Label,
    RadioButton,
    RadioSet,
    SelectionList,
    Static,
    Switch,
)

from interlink.chat.model import group_safety_number
from interlink.xmpp.ext.interop import InteropSettings


class NewChatDialog(ModalScreen[str | None]):
    """Asks for an address (or, for a provider's user, a phone number)."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, by_phone: bool) -> None:
        super().__init__()
        self._by_phone = by_phone

    def compose(self) -> ComposeResult:
        hint = "address or phone number (+49…)" if self._by_phone else "address, e.g. bob@hub"
        with Vertical(classes="dialog"):
            yield Label("Start a chat with")
            yield Input(placeholder=hint, id="new-peer")
            with Horizontal(classes="buttons"):
                yield Button("Start", variant="primary", id="start")
                yield Button("Cancel", id="cancel")

    @on(Input.Submitted, "#new-peer")
    @on(Button.Pressed, "#start")
    def _start(self) -> None:
        value = self.query_one("#new-peer", Input).value.strip()
        self.dismiss(value or None)

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)


class SafetyDialog(ModalScreen[None]):
    """The conversation's safety number, to compare with the peer's screen (it is the same on
    both sides), and a verify button per device of the peer."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "close", "Close")]

    def __init__(
        self,
        peer: str,
        number: str,
        own_fingerprint: str,
        devices: dict[int, str],
        verify: Callable[[str], Awaitable[int | None]],
    ) -> None:
        super().__init__()
        self.peer = peer
        self.number = number
        self._own = own_fingerprint
        self._devices = devices
        self._verify = verify

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(f"Safety number with {self.peer}")
            yield Static("\n".join(group_safety_number(self.number)), id="safety-number")
            yield Label("Compare it with the number on their screen, in person or by a call.")
            yield Static(f"your device: {self._own}", classes="fingerprint")
            if not self._devices:
                yield Label("No device of this contact is known yet.")
            for device_id, fingerprint in sorted(self._devices.items()):
                # one block per device: the fingerprint on its own lines, the button below it
                # (side by side, a wrapped fingerprint ran under the button)
                with Vertical(classes="device"):
                    yield Static(f"device {device_id}:", classes="fingerprint")
                    yield Static(fingerprint, classes="fingerprint", id=f"fingerprint-{device_id}")
                    yield Button("Verify", id=f"verify-{device_id}", variant="success")
            yield Button("Close", id="close")

    @on(Button.Pressed, "#close")
    def action_close(self) -> None:
        self.dismiss(None)

    async def on_button_pressed(self, event: Button.Pressed) -> None:
        button_id = event.button.id or ""
        if not button_id.startswith("verify-"):
            return
        device_id = int(button_id.removeprefix("verify-"))
        if await self._verify(self._devices[device_id]) is not None:
            event.button.label = "Verified"
            event.button.disabled = True


@dataclass(frozen=True, slots=True)
class SettingsChoice:
    """What the settings dialog hands back: the arguments of ``set_interop_settings``."""

    enabled: bool
    providers: frozenset[str] | None  # None: all approved providers
    inbox: str
    discoverable: bool
    share_activity: bool


class SettingsDialog(ModalScreen[SettingsChoice | None]):
    """Third-party chats on or off, which providers, the inbox, discoverability and sharing
    receipts and typing (docs/consent.md)."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, current: InteropSettings, approved: dict[str, str]) -> None:
        super().__init__()
        self._current = current
        self._approved = approved

    def compose(self) -> ComposeResult:
        s = self._current
        chosen = s.providers or frozenset()
        with Vertical(classes="dialog"):
            yield Label("Third-party chats")
            with Horizontal(classes="row"):
                yield Switch(value=s.enabled, id="enabled")
                yield Label("chats with people on other services")
            yield Label("Whom to hear from")
            with RadioSet(id="providers-mode"):
                yield RadioButton("all approved providers", value=s.providers is None, id="all")
                yield RadioButton("only those picked below", value=s.providers is not None)
            yield SelectionList[str](
                *((f"{name} ({pid})", pid, pid in chosen) for pid, name in self._approved.items()),
                id="providers",
            )
            yield Label("Inbox for other services")
            with RadioSet(id="inbox"):
                yield RadioButton("separate", value=s.inbox == "separate", id="separate")
                yield RadioButton("combined with my chats", value=s.inbox == "combined")
            with Horizontal(classes="row"):
                yield Switch(value=s.discoverable, id="discoverable")
                yield Label("discoverable by phone number")
            with Horizontal(classes="row"):
                yield Switch(value=s.share_activity, id="share")
                yield Label("share receipts and typing")
            with Horizontal(classes="buttons"):
                yield Button("Save", variant="primary", id="save")
                yield Button("Cancel", id="cancel")

    @on(Button.Pressed, "#save")
    def _save(self) -> None:
        mode = self.query_one("#providers-mode", RadioSet).pressed_button
        everyone = mode is None or mode.id == "all"
        inbox = self.query_one("#inbox", RadioSet).pressed_button
        picked = frozenset(self.query_one("#providers", SelectionList).selected)
        self.dismiss(
            SettingsChoice(
                enabled=self.query_one("#enabled", Switch).value,
                providers=None if everyone else picked,
                inbox="separate" if inbox is None or inbox.id == "separate" else "combined",
                discoverable=self.query_one("#discoverable", Switch).value,
                share_activity=self.query_one("#share", Switch).value,
            )
        )

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)


@dataclass(frozen=True, slots=True)
class ReportChoice:
    reason: str
    text: str
    attach: tuple[int, ...]  # indexes into the messages offered


class ReportDialog(ModalScreen[ReportChoice | None]):
    """Report (which also blocks). Attaching messages is opt-in, one by one: an attached
    message goes to the operator and to the person's provider in readable form."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, peer: str, reason: str, messages: list[str]) -> None:
        super().__init__()
        self._peer = peer
        self._reason = reason
        self._messages = messages

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(f"Report {self._peer} as {self._reason} (this also blocks them)")
            yield Input(placeholder="in your own words (optional)", id="report-text")
            yield Label("Attach messages? Those you tick are sent readable to the operator and")
            yield Label("to their provider; nothing else from this chat is sent.")
            yield SelectionList[int](
                *((text[:80], i, False) for i, text in enumerate(self._messages)),
                id="attach",
            )
            with Horizontal(classes="buttons"):
                yield Button("Report", variant="error", id="report")
                yield Button("Cancel", id="cancel")

    @on(Button.Pressed, "#report")
    def _report(self) -> None:
        attach = tuple(sorted(self.query_one("#attach", SelectionList).selected))
        text = self.query_one("#report-text", Input).value
        self.dismiss(ReportChoice(self._reason, text, attach))

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)
