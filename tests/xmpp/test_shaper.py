"""Read shaping with time passed in: a byte budget per stream, paid back by pausing reads."""

from __future__ import annotations

import pytest

from interlink.xmpp.shaper import ReadRate, ReadShaper

RATE = ReadRate(bytes_per_second=1000, burst=4000)


def test_a_burst_passes_and_one_byte_more_pauses() -> None:
    shaper = ReadShaper(RATE, now=0.0)
    assert shaper.consume(4000, now=0.0) == 0.0
    assert shaper.consume(1, now=0.0) == pytest.approx(0.001)


def test_the_pause_pays_back_the_debt_exactly() -> None:
    shaper = ReadShaper(RATE, now=0.0)
    pause = shaper.consume(10_000, now=0.0)  # already read: 6000 bytes over the burst
    assert pause == pytest.approx(6.0)
    # Read again just before the pause ends: still in debt.
    assert shaper.consume(1, now=5.9) > 0.0
    shaper = ReadShaper(RATE, now=0.0)
    shaper.consume(10_000, now=0.0)
    assert shaper.consume(0, now=6.0) == 0.0


def test_a_steady_rate_below_the_limit_never_pauses() -> None:
    shaper = ReadShaper(RATE, now=0.0)
    now = 0.0
    for _ in range(10_000):  # 900 bytes a second, in reads of 90 bytes
        now += 0.1
        assert shaper.consume(90, now) == 0.0


def test_a_steady_rate_above_the_limit_is_held_to_the_limit() -> None:
    shaper = ReadShaper(RATE, now=0.0)
    now, read = 0.0, 0
    while now < 100.0:  # a peer that sends 500 bytes whenever it may
        read += 500
        now += shaper.consume(500, now) or 0.01
    assert read == pytest.approx(4000 + 1000 * 100, rel=0.02)


def test_idle_time_refills_no_more_than_the_burst() -> None:
    shaper = ReadShaper(RATE, now=0.0)
    assert shaper.consume(4000, now=1_000_000.0) == 0.0
    assert shaper.consume(1, now=1_000_000.0) > 0.0


def test_time_going_backwards_gives_nothing() -> None:
    shaper = ReadShaper(RATE, now=10.0)
    shaper.consume(4000, now=10.0)
    assert shaper.consume(1000, now=5.0) == pytest.approx(1.0)


def test_changing_the_rate_starts_a_full_budget() -> None:
    shaper = ReadShaper(ReadRate(bytes_per_second=10, burst=100), now=0.0)
    assert shaper.consume(200, now=0.0) == pytest.approx(10.0)
    shaper.change_rate(RATE, now=1.0)
    assert shaper.consume(4000, now=1.0) == 0.0


@pytest.mark.parametrize(("rate", "burst"), [(0, 1), (1, 0)])
def test_rates_must_be_positive(rate: int, burst: int) -> None:
    with pytest.raises(ValueError, match="read rate"):
        ReadRate(bytes_per_second=rate, burst=burst)
