"""What the terminal client shows, as plain state: conversations, inboxes, message requests,
delivery ticks and typing. The Textual shell feeds SDK events in (:meth:`ChatModel.apply`) and
draws what this module holds; nothing here does I/O or reads the clock (``now`` is passed in).

Inboxes (docs/consent.md, "Your inbox"): a gatekeeper user's chats with third-party users sit in
"Other services" when the user's inbox setting is ``separate``, or among the other chats,
still labelled, when it is ``combined``. Conversations whose message request is open sit in
"Requests" either way, until accepted or blocked.
"""

from __future__ import annotations

import enum
import shlex
from dataclasses import dataclass, field

from interlink.client.consent import MessageRequest
from interlink.client.events import (
    ChatState,
    ClientEvent,
    ConnectionEnded,
    DecryptionFailed,
    DeviceListChanged,
    Disconnected,
    Displayed,
    EncryptionProblem,
    FileMessage,
    GroupInvitation,
    GroupJoined,
    GroupLeft,
    GroupMemberAdded,
    GroupMemberRemoved,
    GroupMessage,
    GroupSubject,
    InteropMarker,
    KeyChanged,
    MessageRefused,
    NewDevice,
    Receipt,
    Reconnected,
    Sent,
    TextMessage,
)
from interlink.client.media import KINDS as FILE_KINDS
from interlink.client.media import FileInfo
from interlink.xmpp.addressing import domain_of, groups_domain, home_service, interop_provider

TYPING_PAUSE = 5.0  # seconds without a keystroke before "composing" becomes "paused"


def bare(jid: str) -> str:
    return jid.partition("/")[0]


class Delivery(enum.Enum):
    """How far an outgoing message got: waiting to leave (offline, or not acknowledged by the
    hub yet: the SDK sends it again after reconnecting), acknowledged by the hub (XEP-0198),
    received by a device of the peer (XEP-0184), displayed by the peer (XEP-0333), or refused."""

    UNSENT = "unsent"
    SENT = "sent"
    DELIVERED = "delivered"
    DISPLAYED = "displayed"
    FAILED = "failed"

    @property
    def tick(self) -> str:
        return {
            "unsent": "… not sent yet",
            "sent": "✓",
            "delivered": "✓✓",
            "displayed": "✓✓ seen",
            "failed": "✗",
        }[self.value]


class Inbox(enum.Enum):
    CHATS = "Chats"
    OTHER_SERVICES = "Other services"
    REQUESTS = "Requests"


class Level(enum.Enum):
    INFO = "information"
    WARNING = "warning"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class Notice:
    """Something to tell the user once (a notification), not part of a conversation."""

    level: Level
    text: str


@dataclass
class Transfer:
    """An upload or download in progress (bytes done of total), or its outcome."""

    done: int = 0
    total: int = 0
    path: str | None = None  # the downloaded file, once there
    error: str | None = None

    @property
    def fraction(self) -> float:
        return 0.0 if self.total <= 0 else min(1.0, self.done / self.total)


@dataclass
class Line:
    """One entry of a conversation: a message (text or file) or a note from the client."""

    text: str
    at: float
    outgoing: bool = False
    message_id: str | None = None
    delivery: Delivery | None = None  # outgoing messages only
    flagged: bool = False  # the sender's key changed and is not verified
    note: bool = False  # written by this client (key changes, refusals), not by a person
    file: FileInfo | None = None
    file_event: FileMessage | None = None  # incoming files: what download() needs
    source: TextMessage | None = None  # incoming texts: what a report can attach
    group_source: GroupMessage | None = None  # incoming group messages, likewise
    transfer: Transfer | None = None
    error: str | None = None  # why the hub refused it


@dataclass
class Conversation:
    peer: str  # bare JID
    lines: list[Line] = field(default_factory=list)
    unread: int = 0
    typing: bool = False
    request: bool = False  # the peer's message request is open (we have not accepted)
    third_party: bool = False
    marker: InteropMarker | None = None  # the hub's last label for the peer
    key_changed: bool = False
    room: bool = False  # a group (XEP-0045 room): ``peer`` is the room's address
    name: str = ""  # the group's name
    members: dict[str, str] = field(default_factory=dict)  # bare JID -> affiliation
    providers: dict[str, str] = field(default_factory=dict)  # third-party member -> provider
    inviter: str | None = None  # an open invitation to the group came from
    joined: bool = False

    @property
    def title(self) -> str:
        """The peer's name as people recognise it: for third-party users the id their provider
        attests and the provider's name (their address here is an opaque code); for a group
        its name or the room's local part."""
        if self.room:
            return "# " + (self.name or self.peer.partition("@")[0])
        if self.marker is not None:
            who = self.marker.user or self.peer.partition("@")[0][:12]
            return f"{who} ({self.marker.provider_name or self.marker.provider})"
        return self.peer

    @property
    def files(self) -> list[Line]:
        return [line for line in self.lines if line.file is not None]

    def reportable(self, most: int = 20) -> list[TextMessage]:
        """The peer's latest text messages, which a report may attach (the user picks)."""
        return [line.source for line in self.lines if line.source is not None][-most:]

    def last_incoming_id(self) -> str | None:
        for line in reversed(self.lines):
            if not line.outgoing and not line.note and line.message_id:
                return line.message_id
        return None


class ChatModel:
    """Everything one logged-in account's client shows. ``third_party_user`` is true when this
    account is a provider's user (its peers are the gatekeeper's users: one inbox)."""

    def __init__(self, own_jid: str, *, third_party_user: bool = False) -> None:
        self.own = bare(own_jid)
        self.own_domain = domain_of(own_jid)
        self.third_party_user = third_party_user
        self.inbox_mode = "separate"
        self.conversations: dict[str, Conversation] = {}
        self.current: str | None = None
        self.connection = "online"  # what the status line says about the connection
        self.ended = False  # the hub will not have this account back: no retry
        # messages added since the app last kept them (chat/history.py): (conversation, line)
        self.unsaved: list[tuple[Conversation, Line]] = []

    def take_unsaved(self) -> list[tuple[Conversation, Line]]:
        """The messages added since the last call (for the history file), oldest first."""
        taken, self.unsaved = self.unsaved, []
        return taken

    def restore(self, peer: str, room: bool, line: Line) -> None:
        """A message kept from an earlier run (not unread, not to be kept again)."""
        conversation = self.group(peer) if room else self.conversation(peer)
        if not self._known(conversation, line.outgoing, line.message_id):
            conversation.lines.append(line)

    @staticmethod
    def _known(conversation: Conversation, outgoing: bool, message_id: str | None) -> bool:
        """Whether the conversation shows this message already (one id, one line)."""
        return message_id is not None and any(
            ln.message_id == message_id and ln.outgoing == outgoing and not ln.note
            for ln in conversation.lines
        )

    def _add(self, conversation: Conversation, line: Line) -> None:
        conversation.lines.append(line)
        self.unsaved.append((conversation, line))

    # -- conversations ----------------------------------------------------------------------
    def is_third_party(self, jid: str) -> bool:
        return interop_provider(domain_of(jid), self.own_domain) is not None

    def conversation(self, peer: str) -> Conversation:
        key = bare(peer)
        found = self.conversations.get(key)
        if found is None:
            found = Conversation(key, third_party=self.is_third_party(key))
            self.conversations[key] = found
        return found

    def inbox_of(self, conversation: Conversation) -> Inbox:
        if conversation.request:
            return Inbox.REQUESTS
        if conversation.room:
            return Inbox.CHATS
        if conversation.third_party and self.inbox_mode == "separate":
            return Inbox.OTHER_SERVICES
        return Inbox.CHATS

    def inboxes(self) -> dict[Inbox, list[Conversation]]:
        """Conversations by inbox (empty inboxes left out), most recent first."""
        result: dict[Inbox, list[Conversation]] = {}
        ordered = sorted(
            self.conversations.values(),
            key=lambda c: c.lines[-1].at if c.lines else 0.0,
            reverse=True,
        )
        for inbox in Inbox:
            members = [c for c in ordered if self.inbox_of(c) is inbox]
            if members:
                result[inbox] = members
        return result

    def open(self, peer: str) -> str | None:
        """Show ``peer``'s conversation; returns the message id to send a displayed marker for
        (the newest incoming message), or None when there is nothing new, it is a request
        (nothing goes back to a requester until accepted) or a group (a 1:1 marker to a room's
        address cannot be encrypted: the room has no OMEMO devices)."""
        conversation = self.conversation(peer)
        self.current = conversation.peer
        had_unread = conversation.unread > 0
        conversation.unread = 0
        if not had_unread or conversation.request or conversation.room:
            return None
        return conversation.last_incoming_id()

    # -- what this client did ---------------------------------------------------------------
    def sent(self, peer: str, message_id: str, text: str, now: float) -> Line:
        """A message handed to the SDK: unsent until the hub acknowledges it (:class:`Sent`)."""
        line = Line(text, now, outgoing=True, message_id=message_id, delivery=Delivery.UNSENT)
        self._add(self.conversation(peer), line)
        return line

    def sending_file(self, peer: str, info_name: str, now: float) -> Line:
        """A file on its way up; :meth:`file_sent` completes it."""
        line = Line(f"[uploading {info_name}]", now, outgoing=True, transfer=Transfer())
        self.conversation(peer).lines.append(line)
        return line

    def file_sent(self, line: Line, message_id: str, name: str) -> None:
        line.message_id = message_id
        line.delivery = Delivery.UNSENT
        line.text = f"[file] {name}"
        for conversation in self.conversations.values():
            if any(ln is line for ln in conversation.lines):
                self.unsaved.append((conversation, line))

    def note(self, peer: str, text: str, now: float) -> None:
        self.conversation(peer).lines.append(Line(text, now, note=True))

    def load_requests(self, requests: list[MessageRequest], now: float) -> None:
        """The hub's list of open requests (at login and on refresh) is the truth."""
        open_ones = {bare(r.jid) for r in requests}
        for request in requests:
            conversation = self.conversation(request.jid)
            conversation.request = True
            if request.marker is not None:
                conversation.marker = request.marker
            if not conversation.lines:
                conversation.lines.append(
                    Line(f"message request ({request.messages} messages)", now, note=True)
                )
        for conversation in self.conversations.values():
            if conversation.request and conversation.peer not in open_ones:
                conversation.request = False

    def accepted(self, peer: str) -> None:
        self.conversation(peer).request = False

    def blocked(self, peer: str) -> None:
        """A blocked person's request disappears from the list (their chat is kept, frozen)."""
        conversation = self.conversations.get(bare(peer))
        if conversation is not None and conversation.request:
            del self.conversations[conversation.peer]
            if self.current == conversation.peer:
                self.current = None

    def verified(self, peer: str) -> None:
        self.conversation(peer).key_changed = False

    # -- groups ------------------------------------------------------------------------------
    def group_address(self, name: str) -> str:
        """``name@groups.<this account's service>`` (a full address is kept as given)."""
        if "@" in name:
            return bare(name)
        return f"{name.lower()}@{groups_domain(home_service(self.own_domain))}"

    def group(self, room: str) -> Conversation:
        conversation = self.conversation(room)
        conversation.room = True
        conversation.third_party = False
        return conversation

    def members_text(self, room: str) -> str:
        """The member list as the client shows it: address, affiliation, provider."""
        conversation = self.group(room)
        lines = []
        for jid, affiliation in sorted(conversation.members.items()):
            provider = conversation.providers.get(jid)
            where = f" — {provider}" if provider else ""
            lines.append(f"{jid} ({affiliation}){where}")
        return "\n".join(lines) or "no members known yet"

    def _group_event(self, event: ClientEvent, now: float) -> list[Notice]:
        if isinstance(event, GroupInvitation):
            c = self.group(event.room)
            c.inviter = event.inviter
            c.request = not c.joined
            if event.interop is not None:
                c.marker = event.interop
            who = event.inviter
            if event.interop is not None:
                who = f"{event.interop.user or event.inviter} ({event.interop.provider_name})"
            c.lines.append(
                Line(f"invitation from {who}: /accept to enter, /decline", now, note=True)
            )
            return [Notice(Level.INFO, f"{who} invites you to {c.title}")]
        if isinstance(event, GroupJoined):
            c = self.group(event.room)
            c.request, c.joined, c.inviter = False, True, None
            c.members = dict(event.members)
            c.lines.append(Line(f"you entered as {event.nick}", now, note=True))
            return []
        if isinstance(event, GroupMemberAdded):
            c = self.group(event.room)
            c.members[event.member] = event.affiliation
            if event.interop is not None:
                c.providers[event.member] = event.interop.provider_name or event.interop.provider
            c.lines.append(Line(f"{event.member} is now a member", now, note=True))
            return []
        if isinstance(event, GroupMemberRemoved):
            c = self.group(event.room)
            c.members.pop(event.member, None)
            c.lines.append(Line(f"{event.member} left the group ({event.reason})", now, note=True))
            return []
        if isinstance(event, GroupSubject):
            c = self.group(event.room)
            if event.subject:
                c.lines.append(Line(f"subject: {event.subject}", now, note=True))
            return []
        if isinstance(event, GroupLeft):
            c = self.group(event.room)
            c.joined = False
            c.lines.append(
                Line(f"you are no longer in this group ({event.reason})", now, note=True)
            )
            return []
        assert isinstance(event, GroupMessage)
        c = self.group(event.room)
        if self._known(c, False, event.message_id):
            return []  # shown already (kept from an earlier run, or read twice)
        label = event.nick
        if event.interop is not None:
            provider = event.interop.provider_name or event.interop.provider
            c.providers[event.sender] = provider
            label = f"{event.nick} ({provider})"
        line = Line(f"{label}: {event.text}", now, message_id=event.message_id)
        line.flagged = event.flagged
        line.group_source = event
        self._add(c, line)
        if self.current != c.peer:
            c.unread += 1
        return []

    # -- what the SDK reports ---------------------------------------------------------------
    def apply(self, event: ClientEvent, now: float) -> list[Notice]:
        """Take one SDK event into the state; returns what to notify the user of."""
        if isinstance(event, TextMessage | FileMessage):
            return self._message(event, now)
        if isinstance(
            event,
            GroupInvitation
            | GroupJoined
            | GroupMemberAdded
            | GroupMemberRemoved
            | GroupMessage
            | GroupSubject
            | GroupLeft,
        ):
            return self._group_event(event, now)
        if isinstance(event, Sent):
            self._tick(event.peer, event.message_id, Delivery.SENT, upto=False)
        elif isinstance(event, Disconnected):
            self.connection = f"offline: reconnecting in {event.retry_in:.0f} s ({event.reason})"
            return [Notice(Level.WARNING, f"connection lost: {event.reason}; reconnecting")]
        elif isinstance(event, Reconnected):
            self.connection = "online"
            pending = sum(
                1
                for c in self.conversations.values()
                for line in c.lines
                if line.delivery is Delivery.UNSENT
            )
            again = f"; {pending} unsent message(s) sent again" if pending else ""
            return [Notice(Level.INFO, f"connected again{again}")]
        elif isinstance(event, ConnectionEnded):
            self.connection = f"disconnected: {event.reason}"
            self.ended = True
            return [Notice(Level.ERROR, f"disconnected for good: {event.reason}")]
        elif isinstance(event, NewDevice):
            conversation = self.conversation(event.peer)
            text = (
                f"{event.peer} added a device ({event.device_id}, fingerprint "
                f"{event.fingerprint[:23]}…); the safety number changed."
            )
            conversation.lines.append(Line(text, now, note=True))
            return [Notice(Level.INFO, text)]
        elif isinstance(event, Receipt):
            self._tick(event.sender, event.message_id, Delivery.DELIVERED, upto=False)
        elif isinstance(event, Displayed):
            self._tick(event.sender, event.message_id, Delivery.DISPLAYED, upto=True)
        elif isinstance(event, ChatState):
            known = self.conversations.get(bare(event.sender))
            if known is not None:  # typing alone does not start a conversation
                known.typing = event.state == "composing"
        elif isinstance(event, KeyChanged):
            conversation = self.conversation(event.peer)
            conversation.key_changed = True
            text = (
                f"{event.peer}'s key changed (device {event.device_id}). Compare the safety "
                "number before trusting new messages."
            )
            conversation.lines.append(Line(text, now, note=True))
            return [Notice(Level.WARNING, text)]
        elif isinstance(event, MessageRefused):
            return self._refused(event, now)
        elif isinstance(event, DecryptionFailed):
            return [Notice(Level.WARNING, f"a message from {event.sender} could not be read")]
        elif isinstance(event, EncryptionProblem):
            return [Notice(Level.WARNING, f"encryption problem with {event.peer}: {event.reason}")]
        elif isinstance(event, DeviceListChanged):
            return []
        return []

    def _message(self, event: TextMessage | FileMessage, now: float) -> list[Notice]:
        outgoing = event.outgoing and event.to is not None
        peer = event.to if outgoing and event.to is not None else event.sender
        conversation = self.conversation(peer)
        if self._known(conversation, outgoing, event.message_id):
            return []  # shown already (kept from an earlier run, or read from the archive)
        if event.interop is not None:
            conversation.marker = event.interop
            conversation.third_party = True
            self.inbox_mode = event.interop.inbox
            if event.interop.request and not outgoing:
                conversation.request = True
        if isinstance(event, TextMessage):
            # a message that waited (offline, delayed) shows when it was sent, not now
            at = event.sent_at if event.sent_at is not None and event.sent_at < now else now
            line = Line(event.text, at, message_id=event.message_id)
            line.source = None if outgoing else event
        else:
            info = event.file
            text = f"[{info.kind}] {info.name} ({human_size(info.size)})"
            if info.caption:
                text += f" {info.caption}"
            line = Line(text, now, message_id=event.message_id, file=info)
            line.file_event = None if outgoing else event
        line.flagged = event.flagged
        line.outgoing = outgoing
        if outgoing:
            line.delivery = Delivery.SENT
        self._add(conversation, line)
        if not outgoing:
            conversation.typing = False
            if self.current != conversation.peer:
                conversation.unread += 1
        return []

    def _tick(self, sender: str, message_id: str, state: Delivery, *, upto: bool) -> None:
        """Receipts name one message; a displayed marker covers every earlier one too."""
        conversation = self.conversations.get(bare(sender))
        if conversation is None:
            return
        outgoing = [line for line in conversation.lines if line.outgoing and line.message_id]
        index = next((i for i, ln in enumerate(outgoing) if ln.message_id == message_id), None)
        if index is None:
            return
        for line in outgoing[: index + 1] if upto else [outgoing[index]]:
            live = (Delivery.UNSENT, Delivery.SENT, Delivery.DELIVERED)
            if line.delivery in live and _rank(state) > _rank(line.delivery):
                line.delivery = state

    def _refused(self, event: MessageRefused, now: float) -> list[Notice]:
        reason = event.text or {
            "service-unavailable": "this address cannot be reached",
            "policy-violation": "refused by the hub's rules",
        }.get(event.condition, event.condition)
        conversation = self.conversations.get(bare(event.peer))
        if conversation is not None:
            for line in conversation.lines:
                if line.outgoing and event.message_id and line.message_id == event.message_id:
                    line.delivery = Delivery.FAILED
                    line.error = reason
        return [Notice(Level.ERROR, f"not delivered to {event.peer}: {reason}")]


def _rank(state: Delivery | None) -> int:
    order = [Delivery.UNSENT, Delivery.SENT, Delivery.DELIVERED, Delivery.DISPLAYED]
    return order.index(state) if state in order else -1


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"  # pragma: no cover - the loop always returns


def group_safety_number(number: str) -> list[str]:
    """The 60 digits as three rows of four groups of five, for comparing by eye."""
    digits = "".join(ch for ch in number if ch.isdigit())
    if len(digits) != 60:
        raise ValueError(f"a safety number has 60 digits, not {len(digits)}")
    groups = [digits[i : i + 5] for i in range(0, 60, 5)]
    return [" ".join(groups[i : i + 4]) for i in range(0, 12, 4)]


class TypingTracker:
    """Which chat state (XEP-0085) to send as the user types, with time passed in: ``composing``
    on the first keystroke, ``paused`` after :data:`TYPING_PAUSE` seconds without one,
    ``active`` once the draft is sent or cleared. Returns None when nothing changes, so the
    peer is told each change once."""

    def __init__(self) -> None:
        self.state = "active"
        self._last_key = 0.0

    def typed(self, draft: str, now: float) -> str | None:
        if not draft.strip():
            return self._become("active")
        self._last_key = now
        return self._become("composing")

    def tick(self, now: float) -> str | None:
        if self.state == "composing" and now - self._last_key >= TYPING_PAUSE:
            return self._become("paused")
        return None

    def sent(self) -> None:
        """The message itself tells the peer typing is over: no state to send."""
        self.state = "active"

    def _become(self, state: str) -> str | None:
        if state == self.state:
            return None
        self.state = state
        return state


# -- what the user types -------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class SendText:
    text: str


@dataclass(frozen=True, slots=True)
class SendFile:
    path: str
    kind: str = "file"
    caption: str | None = None


@dataclass(frozen=True, slots=True)
class Download:
    number: int | None = None  # the n-th file of the conversation (1-based); None: the newest


@dataclass(frozen=True, slots=True)
class Simple:
    """A command without arguments: safety, verify, accept, block, unblock, settings, help."""

    name: str


@dataclass(frozen=True, slots=True)
class Report:
    reason: str  # "spam" or "abuse"
    text: str = ""


@dataclass(frozen=True, slots=True)
class NewGroup:
    name: str  # a room name, or a full room address


@dataclass(frozen=True, slots=True)
class Invite:
    jid: str


@dataclass(frozen=True, slots=True)
class Usage:
    """The input was a command used wrongly: tell the user how to use it."""

    text: str


Command = SendText | SendFile | Download | Simple | Report | NewGroup | Invite | Usage

GUIDE = (
    "Chats: the list on the left shows every conversation, new messages counted in brackets;\n"
    "  Tab moves between the list and the message field, arrows and Enter open a chat.\n"
    "  Ctrl+N starts a chat with an address. Message requests sit under 'Requests'.\n"
    "Ticks: '… not sent yet' waits for the hub (sent again after a reconnection),\n"
    "  ✓ the hub has it, ✓✓ a device of the peer has it, 'seen' the peer read it.\n"
    "The line at the top says whether the connection is up.\n\n"
)
HELP = (
    "/file [--image|--voice|--video] PATH [caption]   send a file\n"
    "/download [N]   fetch the newest (or N-th) file of this chat\n"
    "/safety   the safety number;  /accept, /block, /report spam|abuse [text], /unblock\n"
    "/settings   third-party chat settings;  Ctrl+N new chat;  Ctrl+Q quit\n"
    "/group NAME   create a group;  /invite JID;  /members;  /leave;  "
    "/accept or /decline an invitation"
)
_SIMPLE = {
    "safety",
    "verify",
    "accept",
    "block",
    "unblock",
    "settings",
    "help",
    "requests",
    "members",
    "leave",
    "decline",
}


def parse_input(text: str) -> Command | None:
    """What the chat input means. A line starting with ``/`` is a command (``//`` sends a
    literal slash); None for an empty line."""
    if not text.strip():
        return None
    if not text.startswith("/") or text.startswith("//"):
        return SendText(text[1:] if text.startswith("//") else text)
    try:
        words = shlex.split(text[1:])
    except ValueError as exc:
        return Usage(f"cannot read that command: {exc}")
    if not words:
        return Usage(HELP)
    name, args = words[0].lower(), words[1:]
    if name == "file":
        return _file_command(args)
    if name == "download":
        if not args:
            return Download()
        if len(args) == 1 and args[0].isdigit() and int(args[0]) > 0:
            return Download(int(args[0]))
        return Usage("/download [N]: N is the file's number in this chat")
    if name == "group":
        if len(args) != 1:
            return Usage("/group NAME: create a group (members-only, encrypted)")
        return NewGroup(args[0])
    if name == "invite":
        if len(args) != 1 or "@" not in args[0]:
            return Usage("/invite ADDRESS: invite someone to this group")
        return Invite(args[0])
    if name == "report":
        if not args or args[0] not in ("spam", "abuse"):
            return Usage("/report spam|abuse [text]")
        return Report(args[0], " ".join(args[1:]))
    if name in _SIMPLE and not args:
        return Simple(name)
    return Usage(HELP)


def _file_command(args: list[str]) -> Command:
    kind = "file"
    rest: list[str] = []
    iterator = iter(args)
    for word in iterator:
        if word in ("--image", "--voice", "--video", "--file"):
            kind = word[2:]
        elif word == "--kind":
            kind = next(iterator, "")
            if kind not in FILE_KINDS:
                return Usage(f"--kind is one of {', '.join(FILE_KINDS)}")
        else:
            rest.append(word)
    if not rest:
        return Usage("/file [--image|--voice|--video] PATH [caption]")
    caption = " ".join(rest[1:]) or None
    return SendFile(rest[0], kind, caption)
