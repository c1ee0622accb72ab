"""The connection lifecycle core: transitions, back-off with jitter, keepalive, terminal ends;
and the outbox's re-send rule. Time is passed in; nothing sleeps."""

from __future__ import annotations

import pytest

from interlink.client.errors import ClientError
from interlink.client.events import ConnectionEnded, Disconnected, Reconnected
from interlink.client.lifecycle import (
    TRANSITIONS,
    Backoff,
    DropConnection,
    Input,
    Keepalive,
    Lifecycle,
    Notify,
    SendPing,
    StartConnecting,
    State,
)
from interlink.client.outbox import Outbox, OutboxFull, Outgoing


def online(draw: float = 0.0, **backoff: float) -> Lifecycle:
    life = Lifecycle(Backoff(**backoff), Keepalive(interval=30, timeout=10), draw=lambda: draw)  # type: ignore[arg-type]
    assert life.handle(Input.CONNECTED, 0.0) == []  # the first login is no "reconnected"
    return life


def test_a_lost_connection_waits_the_backoff_then_connects_and_reports_both_ways() -> None:
    life = online(initial=1, maximum=8, jitter=0.5)
    assert life.handle(Input.LOST, 100.0, reason="eof") == [Notify(Disconnected("eof", 1.0))]
    assert life.state is State.WAITING
    assert life.get_timer() == 101.0
    assert life.handle_timer(100.9) == []
    assert life.handle_timer(101.0) == [StartConnecting(1)]
    assert life.handle(Input.CONNECTED, 101.5, resumed=True) == [Notify(Reconnected(True))]
    assert life.attempt == 0


def test_failed_attempts_back_off_exponentially_up_to_the_maximum() -> None:
    life = online(initial=1, maximum=8, factor=2, jitter=0.5)
    life.handle(Input.LOST, 0.0)
    waits = []
    now = 0.0
    for _ in range(6):
        due = life.get_timer()
        assert due is not None
        waits.append(due - now)
        now = due
        assert life.handle_timer(now)
        assert life.handle(Input.LOST, now) == []  # failed attempts are not new outages
    assert waits == [1, 2, 4, 8, 8, 8]


def test_jitter_takes_off_at_most_its_fraction() -> None:
    assert Backoff(initial=10, maximum=10, jitter=0.3).delay(1, 0.0) == 10
    assert Backoff(initial=10, maximum=10, jitter=0.3).delay(1, 0.999) == pytest.approx(7.003)
    life = online(draw=0.5, initial=4, maximum=4, jitter=0.5)
    assert life.handle(Input.LOST, 0.0) == [Notify(Disconnected("", 3.0))]


def test_the_attempts_are_bounded_then_the_client_ends() -> None:
    life = online(initial=1, maximum=1, max_attempts=2)
    life.handle(Input.LOST, 0.0)
    life.handle_timer(1.0)
    assert life.handle(Input.LOST, 1.0) == []
    life.handle_timer(2.0)
    [ended] = life.handle(Input.LOST, 2.0, reason="refused")
    assert isinstance(ended, Notify)
    assert isinstance(ended.event, ConnectionEnded)
    assert "gave up after 2 attempts" in ended.event.reason
    assert life.state is State.ENDED
    assert life.get_timer() is None


def test_refused_is_terminal_from_every_live_state_and_nothing_follows() -> None:
    for state in (State.CONNECTING, State.ONLINE, State.WAITING):
        assert (state, Input.REFUSED) in TRANSITIONS
    life = online()
    life.handle(Input.LOST, 0.0)
    assert life.handle(Input.REFUSED, 0.5, reason="suspended") == [
        Notify(ConnectionEnded("suspended"))
    ]
    assert life.handle_timer(1000.0) == []
    assert life.handle(Input.LOST, 1000.0) == []
    assert life.handle(Input.CONNECTED, 1000.0) == []


def test_a_first_login_that_fails_ends_without_an_event() -> None:
    life = Lifecycle()
    assert life.handle(Input.LOST, 0.0, reason="refused") == []
    assert life.state is State.ENDED


def test_close_ends_quietly() -> None:
    life = online()
    assert life.handle(Input.CLOSE, 1.0) == []
    assert life.state is State.ENDED
    assert life.handle(Input.LOST, 1.0) == []


def test_a_quiet_connection_is_pinged_then_dropped() -> None:
    life = online()  # interval 30, timeout 10, heard at 0
    assert life.get_timer() == 30
    assert life.handle_timer(29.9) == []
    assert life.handle_timer(30.0) == [SendPing()]
    assert life.get_timer() == 40
    assert life.handle_timer(40.0) == [DropConnection("no answer from the hub for 40 s")]


def test_traffic_answers_the_ping_and_postpones_the_next() -> None:
    life = online()
    life.handle_timer(30.0)
    life.heard(31.0)
    assert life.get_timer() == 61.0
    assert life.handle_timer(40.0) == []


@pytest.mark.parametrize(
    "bad",
    [
        {"initial": 0},
        {"initial": 5, "maximum": 1},
        {"factor": 0.5},
        {"jitter": 1.0},
        {"max_attempts": 0},
    ],
)
def test_backoff_limits_are_checked(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="backoff"):
        Backoff(**bad)  # type: ignore[arg-type]


def test_keepalive_limits_are_checked() -> None:
    with pytest.raises(ValueError, match="keepalive"):
        Keepalive(interval=0)


def test_outbox_resends_only_unwritten_after_resume_and_everything_after_a_new_session() -> None:
    box = Outbox()
    for mid in ("a", "b", "c"):
        box.add(Outgoing("bob@x", mid, [object()], report=True))
    box.written("a")
    box.written("b")
    assert box.acknowledged("a") is not None
    assert box.acknowledged("a") is None  # once
    assert [e.message_id for e in box.to_send(resumed=True)] == ["c"]
    assert [e.message_id for e in box.to_send(resumed=False)] == ["b", "c"]
    assert [e.message_id for e in box.unwritten()] == ["c"]
    assert len(box) == 2


def test_the_outbox_is_bounded_and_says_so() -> None:
    box = Outbox(limit=2)
    box.add(Outgoing("bob@x", "a", [], report=True))
    box.add(Outgoing("bob@x", "b", [], report=True))
    box.add(Outgoing("bob@x", "b", [], report=True))  # the same message again: no new room
    with pytest.raises(OutboxFull, match="outbox_limit 2"):
        box.add(Outgoing("bob@x", "c", [], report=True))
    with pytest.raises(ClientError):  # what callers catch
        box.check_room()
    box.restore(Outgoing("bob@x", "old", [], report=True))  # an earlier run's: kept anyway
    assert len(box) == 3
    box.acknowledged("a")
    box.acknowledged("b")
    box.check_room()  # room again
    with pytest.raises(ValueError, match="outbox_limit"):
        Outbox(limit=0)


def test_a_twin_pair_leaves_the_outbox_when_the_hub_acknowledged_both_of_its_last_writing() -> None:
    box = Outbox()
    box.add(Outgoing("bob@x", "t", [object(), object()], report=True))
    box.written("t")
    assert box.stanza_acknowledged("t") is None  # the OMEMO 2 one only
    box.written("t")  # written again (a new session): the acks start over
    assert box.stanza_acknowledged("t") is None
    entry = box.stanza_acknowledged("t")
    assert entry is not None
    assert entry.message_id == "t"
    assert box.stanza_acknowledged("t") is None  # gone
    assert len(box) == 0
