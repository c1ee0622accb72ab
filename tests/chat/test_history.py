"""The chat's history file: kept messages come back in order, once each, at most
``max_lines`` of them; the archive position survives; the model shows a message once."""

from __future__ import annotations

from pathlib import Path

import pytest

from interlink.chat.history import ChatHistory, HistoryError, Kept
from interlink.chat.model import ChatModel, Delivery, Line
from interlink.client import TextMessage

ME = "me@hub.test"
BOB = "bob@hub.test"


def kept(text: str, at: float, message_id: str | None, *, outgoing: bool = False) -> Kept:
    return Kept(BOB, False, Line(text, at, outgoing=outgoing, message_id=message_id))


def test_kept_lines_come_back_in_order_once_each(tmp_path: Path) -> None:
    history = ChatHistory.open(tmp_path / "h.sqlite3")
    assert history.save([kept("b", 2.0, "m2"), kept("a", 1.0, "m1", outgoing=True)]) == 2
    assert history.save([kept("a again", 1.0, "m1", outgoing=True)]) == 0  # the same message
    assert history.save([kept("same id, other way", 3.0, "m1")]) == 1
    assert history.save([Kept(BOB, False, Line("a note", 4.0, note=True, message_id="n"))]) == 0
    assert history.save([kept("no id", 5.0, None)]) == 0
    history.close()
    again = ChatHistory.open(tmp_path / "h.sqlite3")
    lines = [k.line for k in again.load()]
    assert [(ln.text, ln.outgoing) for ln in lines] == [
        ("a", True),
        ("b", False),
        ("same id, other way", False),
    ]
    assert lines[0].delivery is Delivery.SENT


def test_at_most_max_lines_are_kept_the_oldest_going_first(tmp_path: Path) -> None:
    history = ChatHistory.open(tmp_path / "h.sqlite3", max_lines=3)
    history.save([kept(f"t{i}", float(i), f"m{i}") for i in range(3)])
    assert [k.line.text for k in history.load()] == ["t0", "t1", "t2"]  # at the limit: all
    history.save([kept("t3", 3.0, "m3")])
    assert [k.line.text for k in history.load()] == ["t1", "t2", "t3"]
    with pytest.raises(ValueError, match="max_lines"):
        ChatHistory.open(tmp_path / "other.sqlite3", max_lines=0)


def test_the_archive_position_is_kept(tmp_path: Path) -> None:
    history = ChatHistory.open(tmp_path / "h.sqlite3")
    assert history.last_archive_id is None
    history.set_last_archive_id("A7")
    history.close()
    again = ChatHistory.open(tmp_path / "h.sqlite3")
    assert again.last_archive_id == "A7"
    again.set_last_archive_id(None)
    assert again.last_archive_id is None


def test_a_file_that_is_not_a_database_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    path.write_bytes(b"not a database at all" * 100)
    with pytest.raises(HistoryError, match="cannot open the chat history"):
        ChatHistory.open(path)


def test_the_model_shows_a_message_once_and_keeps_only_new_ones() -> None:
    model = ChatModel(ME)
    model.restore(BOB, False, Line("hi", 1.0, message_id="m1"))
    assert model.take_unsaved() == []  # restored lines are kept already
    event = TextMessage(f"{BOB}/phone", "hi", "m1", 7, "urn:xmpp:omemo:2", from_archive=True)
    model.apply(event, 2.0)  # the archive's copy of a kept message
    assert [ln.text for ln in model.conversation(BOB).lines] == ["hi"]
    model.apply(TextMessage(f"{BOB}/phone", "new", "m2", 7, "urn:xmpp:omemo:2"), 3.0)
    model.sent(BOB, "m3", "mine", 4.0)
    assert [(c.peer, ln.text) for c, ln in model.take_unsaved()] == [(BOB, "new"), (BOB, "mine")]
    assert model.take_unsaved() == []
