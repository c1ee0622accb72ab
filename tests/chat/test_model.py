"""The chat client's state, fed SDK events with time passed in: inboxes, requests, ticks,
typing, key changes, refusals and what the user types."""

from __future__ import annotations

import pytest

from interlink.chat.model import (
    TYPING_PAUSE,
    ChatModel,
    Delivery,
    Download,
    Inbox,
    Level,
    Report,
    SendFile,
    SendText,
    Simple,
    TypingTracker,
    Usage,
    group_safety_number,
    parse_input,
)
from interlink.client import (
    ChatState,
    ConnectionEnded,
    Disconnected,
    Displayed,
    FileInfo,
    FileMessage,
    InteropMarker,
    KeyChanged,
    MessageRefused,
    MessageRequest,
    NewDevice,
    Receipt,
    Reconnected,
    Sent,
    TextMessage,
)

OWN = "4915100000001@hub.test"
FRIEND = "4915100000002@hub.test"
STRANGER = "q3x9@examplechat.interop.hub.test"
OMEMO2 = "urn:xmpp:omemo:2"


def marker(*, request: bool = False, inbox: str = "separate") -> InteropMarker:
    return InteropMarker("examplechat", "Example Chat", "bob", inbox, request)


def text(sender: str, body: str, message_id: str, **kw: object) -> TextMessage:
    return TextMessage(f"{sender}/phone", body, message_id, 7, OMEMO2, **kw)  # type: ignore[arg-type]


def file_info() -> FileInfo:
    return FileInfo(
        kind="image",
        name="cat.png",
        media_type="image/png",
        size=2048,
        url="https://media.example/cat",
        key=b"k" * 32,
        iv=b"i" * 12,
        sha256=b"s" * 32,
        ciphertext_sha256=b"c" * 32,
        caption="our cat",
    )


def inbox_names(model: ChatModel) -> dict[Inbox, list[str]]:
    return {inbox: [c.peer for c in cs] for inbox, cs in model.inboxes().items()}


# -- inboxes and requests --------------------------------------------------------------------------
def test_third_party_chats_sit_in_their_own_inbox_when_separate() -> None:
    model = ChatModel(OWN)
    model.apply(text(FRIEND, "hi", "m1"), 1.0)
    model.apply(text(STRANGER, "hello", "m2", interop=marker()), 2.0)
    assert inbox_names(model) == {Inbox.CHATS: [FRIEND], Inbox.OTHER_SERVICES: [STRANGER]}
    assert model.conversation(STRANGER).title == "bob (Example Chat)"


def test_combined_inbox_puts_them_with_the_other_chats_most_recent_first() -> None:
    model = ChatModel(OWN)
    model.apply(text(FRIEND, "hi", "m1"), 1.0)
    model.apply(text(STRANGER, "hello", "m2", interop=marker(inbox="combined")), 2.0)
    assert inbox_names(model) == {Inbox.CHATS: [STRANGER, FRIEND]}
    assert model.conversation(STRANGER).third_party


def test_the_address_alone_marks_a_third_party_chat_started_from_here() -> None:
    model = ChatModel(OWN)
    model.sent(STRANGER, "m1", "hi", 1.0)
    assert inbox_names(model) == {Inbox.OTHER_SERVICES: [STRANGER]}


def test_a_third_party_users_own_chats_are_one_inbox() -> None:
    model = ChatModel(STRANGER, third_party_user=True)
    model.apply(text(OWN, "hi", "m1"), 1.0)
    assert inbox_names(model) == {Inbox.CHATS: [OWN]}


def test_a_request_sits_in_requests_until_accepted() -> None:
    model = ChatModel(OWN)
    model.apply(text(STRANGER, "buy now", "m1", interop=marker(request=True)), 1.0)
    assert inbox_names(model) == {Inbox.REQUESTS: [STRANGER]}
    model.accepted(STRANGER)
    assert inbox_names(model) == {Inbox.OTHER_SERVICES: [STRANGER]}


def test_the_hubs_list_of_requests_is_the_truth() -> None:
    model = ChatModel(OWN)
    model.apply(text(STRANGER, "hello", "m1", interop=marker(request=True)), 1.0)
    other = "zz@otherchat.interop.hub.test"
    model.load_requests([MessageRequest(other, 2, marker(request=True))], 5.0)
    assert not model.conversation(STRANGER).request  # accepted elsewhere (another device)
    assert model.conversation(other).request
    assert model.conversation(other).lines[0].note


def test_blocking_a_requester_removes_the_request() -> None:
    model = ChatModel(OWN)
    model.apply(text(STRANGER, "spam", "m1", interop=marker(request=True)), 1.0)
    model.open(STRANGER)
    model.blocked(STRANGER)
    assert model.inboxes() == {}
    assert model.current is None


def test_reportable_messages_are_the_peers_texts_only() -> None:
    model = ChatModel(OWN)
    model.apply(text(STRANGER, "one", "m1", interop=marker(request=True)), 1.0)
    model.sent(STRANGER, "m2", "mine", 2.0)
    model.apply(text(STRANGER, "two", "m3", interop=marker(request=True)), 3.0)
    assert [t.text for t in model.conversation(STRANGER).reportable()] == ["one", "two"]
    assert [t.text for t in model.conversation(STRANGER).reportable(most=1)] == ["two"]


# -- unread and displayed markers ----------------------------------------------------------------
def test_opening_a_chat_clears_unread_and_names_the_message_to_mark_displayed() -> None:
    model = ChatModel(OWN)
    model.apply(text(FRIEND, "a", "m1"), 1.0)
    model.apply(text(FRIEND, "b", "m2"), 2.0)
    assert model.conversation(FRIEND).unread == 2
    assert model.open(FRIEND) == "m2"
    assert model.conversation(FRIEND).unread == 0
    assert model.open(FRIEND) is None  # nothing new since
    model.apply(text(FRIEND, "c", "m3"), 3.0)
    assert model.conversation(FRIEND).unread == 0  # it is on screen


def test_nothing_goes_back_to_a_requester() -> None:
    model = ChatModel(OWN)
    model.apply(text(STRANGER, "hello", "m1", interop=marker(request=True)), 1.0)
    assert model.open(STRANGER) is None


# -- ticks -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("events", "expected"),
    [
        ([], [Delivery.SENT, Delivery.SENT, Delivery.SENT]),
        ([Receipt(FRIEND, "m2")], [Delivery.SENT, Delivery.DELIVERED, Delivery.SENT]),
        (
            [Displayed(FRIEND, "m2")],
            [Delivery.DISPLAYED, Delivery.DISPLAYED, Delivery.SENT],
        ),
        (
            [Displayed(FRIEND, "m3"), Receipt(FRIEND, "m3")],  # a late receipt: no step back
            [Delivery.DISPLAYED] * 3,
        ),
        ([Receipt(FRIEND, "unknown")], [Delivery.SENT] * 3),
        ([Receipt("x@hub.test", "m1")], [Delivery.SENT] * 3),  # not this peer's message
        (
            [MessageRefused(FRIEND, "m1", "service-unavailable", ""), Displayed(FRIEND, "m3")],
            [Delivery.FAILED, Delivery.DISPLAYED, Delivery.DISPLAYED],
        ),
    ],
)
def test_delivery_ticks(events: list[Receipt | Displayed], expected: list[Delivery]) -> None:
    model = ChatModel(OWN)
    for i in (1, 2, 3):
        model.sent(FRIEND, f"m{i}", f"text {i}", float(i))
        model.apply(Sent(FRIEND, f"m{i}"), float(i))  # the hub acknowledged it
    for event in events:
        model.apply(event, 10.0)
    assert [line.delivery for line in model.conversation(FRIEND).lines] == expected


def test_a_refusal_marks_the_message_and_says_why() -> None:
    model = ChatModel(OWN)
    model.sent(STRANGER, "m1", "hi", 1.0)
    refusal = MessageRefused(
        STRANGER, "m1", "policy-violation", "third-party chats are turned off in your settings"
    )
    notices = model.apply(refusal, 2.0)
    assert [n.level for n in notices] == [Level.ERROR]
    assert "turned off in your settings" in notices[0].text
    line = model.conversation(STRANGER).lines[0]
    assert line.delivery is Delivery.FAILED
    assert line.error == "third-party chats are turned off in your settings"
    anonymous = model.apply(MessageRefused(FRIEND, None, "service-unavailable", ""), 3.0)
    assert "cannot be reached" in anonymous[0].text


# -- typing, key changes, carbons, files ---------------------------------------------------------
def test_typing_shows_until_the_message_arrives() -> None:
    model = ChatModel(OWN)
    model.apply(ChatState(FRIEND, "composing"), 1.0)
    assert FRIEND not in model.conversations  # typing alone starts no conversation
    model.apply(text(FRIEND, "hi", "m1"), 1.0)
    model.apply(ChatState(FRIEND, "composing"), 2.0)
    assert model.conversation(FRIEND).typing
    model.apply(ChatState(FRIEND, "paused"), 3.0)
    assert not model.conversation(FRIEND).typing
    model.apply(ChatState(FRIEND, "composing"), 4.0)
    model.apply(text(FRIEND, "there", "m2"), 5.0)
    assert not model.conversation(FRIEND).typing


def test_a_key_change_warns_and_flagged_messages_are_marked_until_verified() -> None:
    model = ChatModel(OWN)
    notices = model.apply(KeyChanged(FRIEND, 42, "aa bb"), 1.0)
    assert [n.level for n in notices] == [Level.WARNING]
    model.apply(text(FRIEND, "it is me", "m1", flagged=True), 2.0)
    conversation = model.conversation(FRIEND)
    assert conversation.key_changed
    assert conversation.lines[0].note
    assert conversation.lines[1].flagged
    model.verified(FRIEND)
    assert not conversation.key_changed


def test_copies_of_own_messages_from_other_devices_go_to_the_recipients_chat() -> None:
    model = ChatModel(OWN)
    copy = TextMessage(f"{OWN}/laptop", "sent elsewhere", "m1", 3, OMEMO2, False, True, FRIEND)
    model.apply(copy, 1.0)
    line = model.conversation(FRIEND).lines[0]
    assert line.outgoing
    assert line.delivery is Delivery.SENT
    assert model.conversation(FRIEND).unread == 0
    assert OWN not in model.conversations


def test_an_incoming_file_can_be_downloaded_and_an_outgoing_one_completes() -> None:
    model = ChatModel(OWN)
    event = FileMessage(f"{FRIEND}/phone", file_info(), "m1", 7)
    model.apply(event, 1.0)
    [line] = model.conversation(FRIEND).files
    assert line.file_event is event
    assert line.text == "[image] cat.png (2.0 KiB) our cat"
    upload = model.sending_file(FRIEND, "dog.jpg", 2.0)
    assert upload.transfer is not None
    upload.transfer.done, upload.transfer.total = 50, 200
    assert upload.transfer.fraction == 0.25
    model.file_sent(upload, "m2", "dog.jpg")
    assert upload.text == "[file] dog.jpg"
    model.apply(Receipt(FRIEND, "m2"), 3.0)
    assert [ln.delivery for ln in model.conversation(FRIEND).lines] == [None, Delivery.DELIVERED]


# -- the composer ----------------------------------------------------------------------------------
def test_typing_tracker_sends_each_change_once() -> None:
    tracker = TypingTracker()
    assert tracker.typed("h", 0.0) == "composing"
    assert tracker.typed("he", 1.0) is None
    assert tracker.tick(1.0 + TYPING_PAUSE - 0.1) is None
    assert tracker.tick(1.0 + TYPING_PAUSE) == "paused"
    assert tracker.tick(100.0) is None
    assert tracker.typed("hel", 101.0) == "composing"
    assert tracker.typed("", 102.0) == "active"
    assert tracker.typed("x", 103.0) == "composing"
    tracker.sent()
    assert tracker.state == "active"
    assert tracker.tick(200.0) is None


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("", None),
        ("   ", None),
        ("hello", SendText("hello")),
        ("//etc/hosts is a path", SendText("/etc/hosts is a path")),
        ("/file a.txt", SendFile("a.txt")),
        ("/file --image 'my cat.png' look at her", SendFile("my cat.png", "image", "look at her")),
        ("/file --voice note.ogg", SendFile("note.ogg", "voice")),
        ("/file --kind video clip.mp4", SendFile("clip.mp4", "video")),
        ("/download", Download()),
        ("/download 2", Download(2)),
        ("/safety", Simple("safety")),
        ("/ACCEPT", Simple("accept")),
        ("/report spam sold me nothing", Report("spam", "sold me nothing")),
        ("/report abuse", Report("abuse", "")),
    ],
)
def test_parse_input(typed: str, expected: object) -> None:
    assert parse_input(typed) == expected


@pytest.mark.parametrize(
    "typed",
    [
        "/file",
        "/file --kind sticker x",
        "/download 0",
        "/download x",
        "/report",
        "/report ham",
        "/nonsense",
        "/block now",
        "/file 'unterminated",
    ],
)
def test_misused_commands_get_usage(typed: str) -> None:
    assert isinstance(parse_input(typed), Usage)


def test_safety_number_in_three_rows_of_four_groups() -> None:
    number = " ".join(f"{i:05d}" for i in range(12))
    rows = group_safety_number(number)
    assert rows == [
        "00000 00001 00002 00003",
        "00004 00005 00006 00007",
        "00008 00009 00010 00011",
    ]
    with pytest.raises(ValueError, match="60 digits"):
        group_safety_number("12345")


def test_a_message_is_unsent_until_the_hub_acknowledges_it_and_survives_an_outage() -> None:
    model = ChatModel(OWN)
    model.sent(FRIEND, "m1", "hello", 1.0)
    line = model.conversation(FRIEND).lines[0]
    assert line.delivery is Delivery.UNSENT
    assert "not sent" in line.delivery.tick
    notices = model.apply(Disconnected("system-shutdown", 2.0), 2.0)
    assert [n.level for n in notices] == [Level.WARNING]
    assert model.connection.startswith("offline")
    model.sent(FRIEND, "m2", "during the outage", 3.0)
    back = model.apply(Reconnected(False), 4.0)
    assert "2 unsent message(s) sent again" in back[0].text
    assert model.connection == "online"
    model.apply(Sent(FRIEND, "m1"), 5.0)
    model.apply(Receipt(FRIEND, "m2"), 5.0)  # a receipt before the ack: no step back after it
    model.apply(Sent(FRIEND, "m2"), 5.0)
    assert [ln.delivery for ln in model.conversation(FRIEND).lines] == [
        Delivery.SENT,
        Delivery.DELIVERED,
    ]


def test_a_terminal_end_is_shown_as_such() -> None:
    model = ChatModel(OWN)
    notices = model.apply(ConnectionEnded("the hub refused the login"), 1.0)
    assert notices[0].level is Level.ERROR
    assert model.ended
    assert "refused" in model.connection


def test_a_new_device_is_a_note_once_not_a_key_warning() -> None:
    model = ChatModel(OWN)
    notices = model.apply(NewDevice(FRIEND, 7, "aabbccdd " * 8), 1.0)
    assert notices[0].level is Level.INFO
    conversation = model.conversation(FRIEND)
    assert not conversation.key_changed
    assert "added a device" in conversation.lines[0].text


def test_a_message_that_waited_shows_its_send_time() -> None:
    model = ChatModel(OWN)
    late = TextMessage(f"{FRIEND}/phone", "sent yesterday", "m1", 3, OMEMO2, sent_at=1000.0)
    model.apply(late, 90000.0)
    assert model.conversation(FRIEND).lines[0].at == 1000.0
    future = TextMessage(f"{FRIEND}/phone", "clock ahead", "m2", 3, OMEMO2, sent_at=95000.0)
    model.apply(future, 90000.0)  # a sender's clock ahead of ours is not believed
    assert model.conversation(FRIEND).lines[1].at == 90000.0
