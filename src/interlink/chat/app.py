"""The Textual shell of ``interlink chat``: a login screen and the main screen (conversation list,
chat view, composer). State lives in :class:`~interlink.chat.model.ChatModel`; this module turns
keys into SDK calls and SDK events into redraws. Every SDK call goes through
:meth:`ChatScreen.guarded`, which shows failures (refusals, connection and media errors) as
notifications: nothing the hub or a peer does may end the app."""

from __future__ import annotations

import functools
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from rich.text import Text
from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import (
    Button,
    Footer,
    Header,
    Input,
    Label,
    OptionList,
    ProgressBar,
    Static,
    TabbedContent,
    TabPane,
)
from textual.widgets.option_list import Option

from interlink.chat import model as m
from interlink.chat.dialogs import (
    NewChatDialog,
    ReportChoice,
    ReportDialog,
    SafetyDialog,
    SettingsChoice,
    SettingsDialog,
)
from interlink.chat.history import FILE as HISTORY_FILE
from interlink.chat.history import ChatHistory, HistoryError, Kept
from interlink.chat.look import CSS, render_lines
from interlink.chat.session import (
    GatekeeperLogin,
    KitLogin,
    Login,
    LoginError,
    ServerOptions,
    Session,
    log_in,
)
from interlink.client import (
    Archived,
    ClientError,
    DecryptionFailed,
    FileMessage,
    Reconnected,
    RoomArchived,
    TextMessage,
)

T = TypeVar("T")


class LoginScreen(Screen[None]):
    """A gatekeeper account (address and password) or a provider kit's user."""

    def __init__(self, prefill: dict[str, str]) -> None:
        super().__init__()
        self._prefill = prefill

    def compose(self) -> ComposeResult:
        p = self._prefill
        yield Header()
        with Vertical(id="login"), TabbedContent(id="login-kind"):
            with TabPane("Hub account", id="tab-hub"):
                # Tab into a pre-filled address puts the cursor at its end rather than
                # selecting it all (one keystroke would replace it)
                yield Input(
                    p.get("jid", ""),
                    placeholder="address, e.g. 4915…@hub",
                    id="jid",
                    select_on_focus=False,
                )
                yield Input(placeholder="password", password=True, id="password")
                yield Button("Log in", variant="primary", id="login-hub")
            with TabPane("Other service (provider kit)", id="tab-kit"):
                yield Input(
                    p.get("kit_url", ""), placeholder="kit URL", id="kit-url", select_on_focus=False
                )
                yield Input(
                    p.get("kit_user", ""),
                    placeholder="username",
                    id="kit-user",
                    select_on_focus=False,
                )
                yield Input(placeholder="password", password=True, id="kit-password")
                yield Button("Log in", variant="primary", id="login-kit")
        yield Label("", id="login-status")
        yield Footer()

    def on_mount(self) -> None:
        """Focus where typing starts: the password when the address is given (focus on the tab
        bar sent a typed password nowhere), else the address."""
        p = self._prefill
        if p.get("kit_url") and not p.get("jid"):
            self.query_one("#login-kind", TabbedContent).active = "tab-kit"
            target = "#kit-password" if p.get("kit_user") else "#kit-user"
        else:
            target = "#password" if p.get("jid") else "#jid"
        self.query_one(target, Input).focus()

    def _value(self, selector: str) -> str:
        return self.query_one(selector, Input).value.strip()

    @on(Button.Pressed, "#login-hub")
    @on(Input.Submitted, "#jid, #password")
    def _hub(self) -> None:
        self.start(GatekeeperLogin(self._value("#jid"), self._value("#password")))

    @on(Button.Pressed, "#login-kit")
    @on(Input.Submitted, "#kit-url, #kit-user, #kit-password")
    def _kit(self) -> None:
        login = KitLogin(
            self._value("#kit-url"), self._value("#kit-user"), self._value("#kit-password")
        )
        self.start(login)

    def start(self, login: Login) -> None:
        self.query_one("#login-status", Label).update("connecting…")
        app = self.app
        assert isinstance(app, ChatApp)
        app.log_in(login)

    def failed(self, reason: str) -> None:
        self.query_one("#login-status", Label).update(f"login failed: {reason}")


class HelpScreen(ModalScreen[None]):
    """How to get around, and the commands: stays until closed (a notification vanished)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Close"),
        Binding("q", "close", "Close"),
    ]

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label("Help")
            yield Static(m.GUIDE + m.HELP, id="help-text")
            yield Button("Close", id="close-help", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#close-help", Button).focus()

    @on(Button.Pressed, "#close-help")
    def action_close(self) -> None:
        self.dismiss(None)


class ChatScreen(Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("f1", "help", "Help", priority=True),
        Binding("ctrl+n", "new_chat", "New chat", priority=True),
        Binding("ctrl+s", "safety", "Safety number", priority=True),
        Binding("ctrl+o", "settings", "Settings", priority=True),
        Binding("ctrl+r", "refresh_requests", "Requests", priority=True),
    ]

    def __init__(self, session: Session) -> None:
        super().__init__()
        self.session = session
        self.client = session.client
        self.model = m.ChatModel(session.jid, third_party_user=session.third_party)
        self.typing = m.TypingTracker()
        self.history: ChatHistory | None = None  # opened on mount (chat/history.py)

    # -- layout --------------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("connected", id="status")
        with Horizontal():
            yield OptionList(id="conversations")
            with Vertical(id="chat"):
                yield Static("Press Ctrl+N to start a chat.", id="chat-header")
                with Horizontal(id="request-actions"):
                    yield Button("Accept", variant="success", id="accept")
                    yield Button("Block", variant="warning", id="block")
                    yield Button("Report spam", variant="error", id="report-spam")
                    yield Button("Report abuse", variant="error", id="report-abuse")
                with VerticalScroll(id="messages"):
                    yield Static("", id="transcript")
                yield Static("", id="typing")
                with Horizontal(id="transfer-row"):
                    yield Label("", id="transfer-label")
                    yield ProgressBar(id="transfer", show_eta=False)
                yield Input(placeholder="message, or /help", id="compose")
        yield Footer()

    def on_mount(self) -> None:
        kind = "other service" if self.session.third_party else "hub account"
        self.title = f"Interlink: {self.session.jid} ({kind})"
        self.set_interval(1.0, self._typing_tick)
        self._restore_history()
        self.pump_events()
        self.load_account_state()
        self.catch_up()
        self.query_one("#compose", Input).focus()

    @work(group="sdk")
    async def load_account_state(self) -> None:
        """A gatekeeper user's inbox setting and open message requests."""
        if not self.session.third_party:
            settings = await self.guarded(self.client.interop_settings())
            if settings is not None:
                self.model.inbox_mode = settings.inbox.value
            await self.refresh_requests()
        self.redraw()

    # -- the history kept on this device (chat/history.py) ----------------------------------------
    def _restore_history(self) -> None:
        """Open the history file and show what the last runs kept; without it the chat runs on,
        keeping nothing, and says so."""
        try:
            self.history = ChatHistory.open(
                self.session.data_dir / HISTORY_FILE, max_lines=self.session.options.history_lines
            )
            kept = self.history.load()
        except (HistoryError, ValueError) as exc:
            self.history = None
            self.chat_app.tell("error", f"history not kept: {exc}")
            return
        waiting = self.client.unacknowledged_ids  # the SDK sends them again: not ✓ yet
        for item in kept:
            if item.line.outgoing and item.line.message_id in waiting:
                item.line.delivery = m.Delivery.UNSENT
            self.model.restore(item.peer, item.room, item.line)
        self.redraw()

    def on_unmount(self) -> None:
        if self.history is not None:
            self._keep_lines()
            self.history.close()
            self.history = None

    def _keep_lines(self) -> None:
        """Write the messages added since the last call to the history file."""
        unsaved = self.model.take_unsaved()
        if self.history is None or not unsaved:
            return
        try:
            self.history.save(Kept(c.peer, c.room, line) for c, line in unsaved)
        except HistoryError as exc:
            self.chat_app.tell("error", str(exc))

    @work(group="history", exclusive=True)
    async def catch_up(self) -> None:
        """Read the account's archive after the last message read from it: what arrived while
        this client was closed, or went to another device of the account (the SDK decrypts
        each message once; what it read before comes without events)."""
        history = self.history
        if history is None:
            return
        unreadable = 0
        try:
            after = history.last_archive_id
            try:
                items = self.client.history(after_id=after, limit=self.session.options.catch_up)
                unreadable += await self._take_archived(items)
            except ClientError as exc:
                if after is None or "item-not-found" not in str(exc):
                    raise
                history.set_last_archive_id(None)  # that message left the archive (retention)
                items = self.client.history(limit=self.session.options.catch_up)
                unreadable += await self._take_archived(items)
        except (ClientError, HistoryError) as exc:
            self.chat_app.tell("warning", f"history not caught up: {exc}")
        for room in [c.peer for c in self.model.conversations.values() if c.room]:
            try:
                unreadable += await self._catch_up_room(history, room)
            except (ClientError, HistoryError) as exc:
                self.chat_app.tell("warning", f"{room}: history not caught up: {exc}")
        if unreadable:
            self.chat_app.tell(
                "warning",
                f"{unreadable} archived message(s) could not be read "
                "(encrypted before this device existed, or not for it)",
            )
        self.redraw()

    async def _catch_up_room(self, history: ChatHistory, room: str) -> int:
        """Read ``room``'s archive after the last message read from it (the SDK decrypts each
        once); returns how many could not be decrypted."""
        after = history.last_room_archive_id(room)
        limit = self.session.options.catch_up
        try:
            return await self._take_room_archived(
                history, room, self.client.room_history(room, after_id=after, limit=limit)
            )
        except ClientError as exc:
            if after is None or "item-not-found" not in str(exc):
                raise
        history.set_last_room_archive_id(room, None)  # that message left the archive
        items = self.client.room_history(room, limit=limit)
        return await self._take_room_archived(history, room, items)

    async def _take_room_archived(
        self, history: ChatHistory, room: str, items: AsyncIterator[RoomArchived]
    ) -> int:
        unreadable = 0
        async for item in items:
            for event in item.events:
                if isinstance(event, DecryptionFailed):
                    unreadable += 1
                else:
                    self.model.apply(event, item.archived_at or time.time())
            self._keep_lines()  # the lines first, then how far: a crash repeats, never skips
            history.set_last_room_archive_id(room, item.archive_id)
        return unreadable

    async def _take_archived(self, items: AsyncIterator[Archived]) -> int:
        """Show the archived messages' events and remember how far the archive was read;
        returns how many could not be decrypted."""
        assert self.history is not None
        unreadable = 0
        async for item in items:
            for event in item.events:
                if isinstance(event, DecryptionFailed):
                    unreadable += 1
                else:
                    self.model.apply(event, item.archived_at or time.time())
            self._keep_lines()  # the lines first, then how far: a crash repeats, never skips
            self.history.set_last_archive_id(item.archive_id)
        return unreadable

    # -- the SDK's events ------------------------------------------------------------------------
    @work(group="events")
    async def pump_events(self) -> None:
        async for event in self.client.events():
            try:
                if isinstance(event, Reconnected) and not event.resumed:
                    self.catch_up()  # a new session: what went elsewhere meanwhile
                for notice in self.model.apply(event, time.time()):
                    self.chat_app.tell(notice.level.value, notice.text)
                if (
                    isinstance(event, TextMessage | FileMessage)
                    and not event.outgoing
                    and event.message_id
                    and self.model.current == m.bare(event.sender)
                    and not self.model.conversation(event.sender).request
                ):
                    self.background(
                        functools.partial(
                            self.client.send_displayed, event.sender, event.message_id
                        )
                    )
                self.redraw()
            except Exception as exc:  # a drawing bug must not stop receiving
                self.chat_app.tell("error", f"could not show an event: {exc}")

    @property
    def chat_app(self) -> ChatApp:
        app = self.app
        assert isinstance(app, ChatApp)
        return app

    async def guarded(self, call: Awaitable[T], what: str = "") -> T | None:
        """Await an SDK call; a failure becomes a notification and None."""
        try:
            return await call
        except Exception as exc:  # the UI boundary: ConsentError, ClientError, MediaError, …
            prefix = f"{what}: " if what else ""
            self.chat_app.tell("error", f"{prefix}{exc or type(exc).__name__}")
            return None

    def background(self, make: Callable[[], Awaitable[Any]], what: str = "") -> None:
        """Run an SDK call without waiting for it (``make`` creates it once the worker runs,
        so a worker cancelled at exit leaves no coroutine unawaited)."""

        async def run() -> None:
            await self.guarded(make(), what)

        self.run_worker(run, group="sdk")  # type: ignore[arg-type]  # textual's overloads

    # -- drawing -------------------------------------------------------------------------------
    def redraw(self) -> None:
        self._keep_lines()  # every change is drawn: what is new is kept first
        self._draw_status()
        self._draw_list()
        self._draw_chat()

    def _draw_status(self) -> None:
        status = self.query_one("#status", Static)
        text = self.model.connection
        offline = text != "online"
        status.update("connected" if not offline else text)
        status.set_class(offline and not self.model.ended, "offline")
        status.set_class(self.model.ended, "ended")

    def _draw_list(self) -> None:
        view = self.query_one("#conversations", OptionList)
        options: list[Option] = []
        for inbox, members in self.model.inboxes().items():
            options.append(Option(Text(inbox.value, style="bold"), disabled=True))
            for c in members:
                label = c.title
                if c.third_party and self.model.inbox_of(c) is m.Inbox.CHATS:
                    label = f"↔ {label}"  # combined inbox: still labelled as another service
                if c.unread:
                    label += f" ({c.unread})"
                options.append(Option(label, id=c.peer))
        kept = view.highlighted_option.id if view.highlighted_option is not None else None
        view.clear_options()
        view.add_options(options)
        for peer in (kept, self.model.current):  # keep the user's place in the list
            if peer is not None and peer in self.model.conversations:
                view.highlighted = view.get_option_index(peer)
                break

    def _draw_chat(self) -> None:
        peer = self.model.current
        actions = self.query_one("#request-actions")
        if peer is None:
            actions.set_class(False, "shown")
            return
        c = self.model.conversation(peer)
        header = f"{c.title}  {c.peer}" if c.marker else c.peer
        if c.key_changed:
            header += "  ⚠ key changed: compare the safety number (Ctrl+S)"
        if c.request:
            header += "  — message request: accept before replying"
        self.query_one("#chat-header", Static).update(header)
        actions.set_class(c.request, "shown")
        self.query_one("#transcript", Static).update(render_lines(c, time.time()))
        self.query_one("#typing", Static).update("typing…" if c.typing else "")
        self.query_one("#messages", VerticalScroll).scroll_end(animate=False)

    # -- choosing a conversation ---------------------------------------------------------------
    @on(OptionList.OptionSelected, "#conversations")
    def _selected(self, event: OptionList.OptionSelected) -> None:
        if event.option.id is not None:
            self.open_conversation(event.option.id)

    def open_conversation(self, peer: str) -> None:
        if self.model.current != peer:
            self._leave_current()
        displayed = self.model.open(peer)
        if displayed is not None:
            self.background(functools.partial(self.client.send_displayed, peer, displayed))
        self.redraw()
        self.query_one("#compose", Input).focus()

    def _leave_current(self) -> None:
        if self.model.current is not None and self.typing.state != "active":
            self.typing.sent()
            self._send_state(self.model.current, "active")

    # -- typing and sending --------------------------------------------------------------------
    @on(Input.Changed, "#compose")
    def _typed(self, event: Input.Changed) -> None:
        peer = self.model.current
        if peer is None or event.value.startswith("/"):
            return
        state = self.typing.typed(event.value, time.monotonic())
        if state is not None:
            self._send_state(peer, state)

    def _typing_tick(self) -> None:
        state = self.typing.tick(time.monotonic())
        if state is not None and self.model.current is not None:
            self._send_state(self.model.current, state)

    def _send_state(self, peer: str, state: str) -> None:
        if not self.model.conversation(peer).request:  # the hub holds them back anyway
            self.background(functools.partial(self.client.send_chat_state, peer, state))

    @on(Input.Submitted, "#compose")
    async def _submitted(self, event: Input.Submitted) -> None:
        command = m.parse_input(event.value)
        event.input.value = ""
        if command is None:
            return
        peer = self.model.current
        if isinstance(command, m.Usage):
            self.chat_app.tell("information", command.text)
        elif isinstance(command, m.Simple) and command.name in ("help", "settings", "requests"):
            await self.run_action(
                {"help": "help", "settings": "settings", "requests": "refresh_requests"}[
                    command.name
                ]
            )
        elif isinstance(command, m.NewGroup):
            self.new_group(command.name)
        elif peer is None:
            self.chat_app.tell("warning", "open or start a chat first (Ctrl+N)")
        elif self.model.conversation(peer).room:
            self.group_command(peer, command)
        elif isinstance(command, m.Invite) or (
            isinstance(command, m.Simple) and command.name in ("members", "leave", "decline")
        ):
            self.chat_app.tell("warning", "that is for groups: open one first")
        elif isinstance(command, m.SendText):
            self.typing.sent()
            self.send_text(peer, command.text)
        elif isinstance(command, m.SendFile):
            self.send_file(peer, command)
        elif isinstance(command, m.Download):
            self.download(peer, command.number)
        elif isinstance(command, m.Report):
            self._ask_report(peer, command.reason, command.text)
        elif isinstance(command, m.Simple):
            await self.run_action(
                {
                    "safety": "safety",
                    "verify": "safety",
                    "accept": "accept",
                    "block": "block",
                    "unblock": "unblock",
                }[command.name]
            )

    # -- groups --------------------------------------------------------------------------------
    def _nick(self) -> str:
        return self.client.bare.partition("@")[0][:16]

    @work(group="send")
    async def new_group(self, name: str) -> None:
        room = self.model.group_address(name)
        created = await self.guarded(
            self.client.create_group(room, self._nick(), name=name), "group not created"
        )
        if created is not None:
            self.model.group(room)
            self.open_conversation(room)

    @work(group="send")
    async def group_command(self, room: str, command: m.Command) -> None:
        """What the input means in a group: text is a group message; /invite, /members,
        /leave, /accept (enter), /decline, /report."""
        client = self.client
        conversation = self.model.group(room)
        if isinstance(command, m.SendText):
            message_id = await self.guarded(client.send_group_text(room, command.text), "not sent")
            if message_id is not None:
                self.model.sent(room, message_id, command.text, time.time())
        elif isinstance(command, m.Invite):
            await self.guarded(client.invite_to_group(room, command.jid), "not invited")
            self.model.note(room, f"invited {command.jid}", time.time())
        elif isinstance(command, m.Report):
            offered = [
                line.text.partition(": ")[0].split(" (")[0] for line in conversation.lines[-1:]
            ]
            self.chat_app.tell(
                "information", f"report a member with /report in their chat {offered}"
            )
        elif isinstance(command, m.Simple) and command.name == "members":
            self.chat_app.tell("information", self.model.members_text(room))
        elif isinstance(command, m.Simple) and command.name == "accept":
            await self.guarded(client.join_group(room, self._nick()), "could not enter")
        elif isinstance(command, m.Simple) and command.name == "decline":
            if conversation.inviter is not None:
                await self.guarded(client.decline_invitation(room, conversation.inviter), "decline")
            conversation.request = False
            self.model.note(room, "invitation declined", time.time())
        elif isinstance(command, m.Simple) and command.name == "leave":
            if await self._done(client.leave_group(room, forget=True), "leave"):
                self.model.note(room, "you left the group", time.time())
        elif isinstance(command, m.Simple) and command.name == "block":
            if await self._done(client.block(room), "block"):
                self.model.blocked(room)
        else:
            self.chat_app.tell("warning", "in a group: text, /invite, /members, /leave")
        self.redraw()

    @work(group="send")
    async def send_text(self, peer: str, text: str) -> None:
        message_id = await self.guarded(self.client.send_text(peer, text), "not sent")
        if message_id is not None:
            self.model.sent(peer, message_id, text, time.time())
            self.redraw()

    @work(group="send")
    async def send_file(self, peer: str, command: m.SendFile) -> None:
        path = Path(command.path).expanduser()  # noqa: ASYNC240 - one stat, no waiting on I/O
        if not path.is_file():
            self.chat_app.tell("error", f"no such file: {path}")
            return
        line = self.model.sending_file(peer, path.name, time.time())
        self.redraw()
        progress = self._progress(f"uploading {path.name}", line)
        message_id = await self.guarded(
            self.client.send_file(
                peer, path, kind=command.kind, caption=command.caption, progress=progress
            ),
            "file not sent",
        )
        self._progress_done()
        if message_id is None:
            line.delivery = m.Delivery.FAILED
            line.text = f"[not sent] {path.name}"
        else:
            self.model.file_sent(line, message_id, path.name)
        self.redraw()

    @work(group="send")
    async def download(self, peer: str, number: int | None) -> None:
        files = [ln for ln in self.model.conversation(peer).files if ln.file_event is not None]
        if not files or (number is not None and number > len(files)):
            self.chat_app.tell("warning", "no such file in this chat")
            return
        line = files[-1] if number is None else files[number - 1]
        assert line.file_event is not None
        line.transfer = m.Transfer()
        progress = self._progress(f"downloading {line.file_event.file.name}", line)
        dest = self.session.data_dir / "downloads"
        saved = await self.guarded(
            self.client.download(line.file_event, dest, progress=progress), "download failed"
        )
        self._progress_done()
        if saved is None:
            line.transfer.error = "failed"
        else:
            line.transfer.path = str(saved)
            self.chat_app.tell("information", f"saved {saved}")
        self.redraw()

    def _progress(self, label: str, line: m.Line) -> Any:
        self.query_one("#transfer-row").set_class(True, "shown")
        self.query_one("#transfer-label", Label).update(label + " ")
        bar = self.query_one("#transfer", ProgressBar)
        bar.update(total=None, progress=0)

        def on_progress(done: int, total: int) -> None:
            if line.transfer is not None:
                line.transfer.done, line.transfer.total = done, total
            bar.update(total=total, progress=done)

        return on_progress

    def _progress_done(self) -> None:
        self.query_one("#transfer-row").set_class(False, "shown")

    # -- actions -------------------------------------------------------------------------------
    def action_help(self) -> None:
        if not isinstance(self.app.screen, HelpScreen):
            self.app.push_screen(HelpScreen())

    @work
    async def action_new_chat(self) -> None:
        answer = await self.app.push_screen_wait(NewChatDialog(self.session.third_party))
        if not answer:
            return
        peer: str | None = answer
        if "@" not in answer:
            if not self.session.third_party:
                self.chat_app.tell("warning", "give an address like 4915112345678@hub.example")
                return
            peer = await self.guarded(self.session.find_by_phone(answer))
            if peer is None:
                self.chat_app.tell("warning", f"no account can be reached at {answer}")
                return
        assert peer is not None
        self.model.conversation(peer)
        self.open_conversation(m.bare(peer))

    @work
    async def action_safety(self) -> None:
        peer = self.model.current
        if peer is None:
            self.chat_app.tell("warning", "open a chat first")
            return
        number = await self.guarded(self.client.safety_number(peer), "no safety number")
        own = await self.guarded(self.client.fingerprint())
        devices = await self.guarded(self.client.peer_fingerprints(peer))
        if number is None or own is None or devices is None:
            return

        async def verify(fingerprint: str) -> int | None:
            device = await self.guarded(self.client.verify(peer, fingerprint), "not verified")
            if device is not None:
                self.model.verified(peer)
                self.chat_app.tell("information", f"verified device {device} of {peer}")
                self.redraw()
            return device

        await self.app.push_screen_wait(SafetyDialog(peer, number, own, devices, verify))

    @work
    async def action_settings(self) -> None:
        if self.session.third_party:
            self.chat_app.tell("information", "these settings are for the hub's own users")
            return
        current = await self.guarded(self.client.interop_settings(), "settings")
        approved = await self.guarded(self.client.approved_providers(), "providers")
        if current is None or approved is None:
            return
        choice: SettingsChoice | None = await self.app.push_screen_wait(
            SettingsDialog(current, approved)
        )
        if choice is None:
            return
        saved = await self.guarded(
            self.client.set_interop_settings(
                enabled=choice.enabled,
                providers="all" if choice.providers is None else sorted(choice.providers),
                inbox=choice.inbox,
                discoverable=choice.discoverable,
                share_activity=choice.share_activity,
            ),
            "settings not saved",
        )
        if saved is not None:
            self.model.inbox_mode = saved.inbox.value
            self.chat_app.tell("information", "settings saved")
            self.redraw()

    async def action_refresh_requests(self) -> None:
        await self.refresh_requests()
        self.redraw()

    async def refresh_requests(self) -> None:
        if self.session.third_party:
            return
        requests = await self.guarded(self.client.message_requests(), "requests")
        if requests is not None:
            self.model.load_requests(requests, time.time())

    @on(Button.Pressed, "#accept")
    async def action_accept(self) -> None:
        peer = self.model.current
        if peer is not None and self.model.conversation(peer).room:
            self.group_command(peer, m.Simple("accept"))  # accepting an invitation is entering
            return
        if peer is not None and await self._done(self.client.accept_request(peer), "accept"):
            self.model.accepted(peer)
            self.chat_app.tell("information", f"accepted {peer}")
            self.redraw()

    @on(Button.Pressed, "#block")
    async def action_block(self) -> None:
        peer = self.model.current
        if peer is not None and self.model.conversation(peer).room:
            self.group_command(peer, m.Simple("block"))  # nothing of the group reaches us
            return
        if peer is not None and await self._done(self.client.block(peer), "block"):
            self.model.blocked(peer)
            self.chat_app.tell("information", f"blocked {peer}")
            self.redraw()

    async def action_unblock(self) -> None:
        peer = self.model.current
        if peer is not None and await self._done(self.client.unblock(peer), "unblock"):
            self.chat_app.tell("information", f"unblocked {peer}")

    @on(Button.Pressed, "#report-spam")
    def _report_spam(self) -> None:
        if self.model.current is not None:
            self._ask_report(self.model.current, "spam", "")

    @on(Button.Pressed, "#report-abuse")
    def _report_abuse(self) -> None:
        if self.model.current is not None:
            self._ask_report(self.model.current, "abuse", "")

    @work
    async def _ask_report(self, peer: str, reason: str, text: str) -> None:
        offered = self.model.conversation(peer).reportable()
        choice: ReportChoice | None = await self.app.push_screen_wait(
            ReportDialog(peer, reason, [message.text for message in offered])
        )
        if choice is None:
            return
        attach = [offered[i] for i in choice.attach]
        words = " ".join(part for part in (text, choice.text) if part)
        call = self.client.block(peer, report=reason, text=words, attach=attach)
        if await self._done(call, "report"):
            self.model.blocked(peer)
            self.chat_app.tell("information", f"reported and blocked {peer}")
            self.redraw()

    async def _done(self, call: Awaitable[None], what: str) -> bool:
        sentinel = object()

        async def wrapped() -> object:
            await call
            return sentinel

        return await self.guarded(wrapped(), what) is sentinel


class ChatApp(App[None]):
    """``interlink chat``. ``prefill`` fills the login form (jid, kit_url, kit_user)."""

    CSS = CSS
    TITLE = "Interlink"

    def __init__(self, options: ServerOptions, prefill: dict[str, str] | None = None) -> None:
        super().__init__()
        self.options = options
        self.prefill = prefill or {}
        self.session: Session | None = None
        self.shown: list[str] = []  # every notification's text, in order (tests read it)
        self.errors: list[str] = []  # those shown as errors

    def on_mount(self) -> None:
        self.push_screen(LoginScreen(self.prefill))

    @work(exclusive=True, group="login")
    async def log_in(self, login: Login) -> None:
        try:
            session = await log_in(login, self.options)
        except Exception as exc:  # the boundary: whatever failed, the user can try again
            reason = str(exc) if isinstance(exc, LoginError) else f"{type(exc).__name__}: {exc}"
            if isinstance(self.screen, LoginScreen):
                self.screen.failed(reason)
            self.tell("error", f"login failed: {reason}")
            return
        self.session = session
        await self.switch_screen(ChatScreen(session))

    def tell(self, severity: str, text: str) -> None:
        self.shown.append(text)
        if severity == "error":
            self.errors.append(text)
        level = severity if severity in ("information", "warning", "error") else "information"
        self.notify(text, severity=level)  # type: ignore[arg-type]

    async def on_unmount(self) -> None:
        if self.session is not None:
            await self.session.close()
            self.session = None


def default_data_dir() -> Path:
    return Path.home() / ".local" / "share" / "interlink-chat"
