"""The directory cache's rules (:mod:`interlink.cluster.cache`), without I/O: kept only while
notices arrive, dropped on a notice, never kept from a lookup a notice overlapped, expired
after its time, bounded in size."""

from __future__ import annotations

from interlink.cluster import Located
from interlink.cluster.cache import DirectoryCache

BOB = "bob@hub.test"
ON_B = [Located(f"{BOB}/phone", "b", True, 0)]
ON_C = [Located(f"{BOB}/phone", "c", True, 0)]


def live(ttl: float = 30.0, size: int = 100) -> DirectoryCache:
    cache = DirectoryCache(ttl=ttl, size=size)
    cache.live = True
    return cache


def look_up(cache: DirectoryCache, bare: str, answer: list[Located], now: float) -> None:
    cache.fetched(bare, cache.start(bare), answer, now)


def test_an_answer_is_kept_until_a_notice() -> None:
    cache = live()
    assert cache.get(BOB, 0.0) is None
    look_up(cache, BOB, ON_B, 0.0)
    assert cache.get(BOB, 1.0) == ON_B
    cache.invalidate("alice@hub.test")
    assert cache.get(BOB, 1.0) == ON_B
    cache.invalidate(BOB)
    assert cache.get(BOB, 1.0) is None
    assert (cache.hits, cache.misses) == (2, 2)


def test_an_answer_a_notice_overlapped_is_not_kept() -> None:
    """The lookup may have read the directory before the write the notice announces."""
    cache = live()
    started = cache.start(BOB)
    cache.invalidate(BOB)  # arrives while the lookup is in flight
    cache.fetched(BOB, started, ON_B, 0.0)
    assert cache.get(BOB, 0.0) is None
    look_up(cache, BOB, ON_C, 0.0)  # one begun after the notice is kept
    assert cache.get(BOB, 0.0) == ON_C


def test_overlapping_lookups_of_one_account() -> None:
    cache = live()
    first = cache.start(BOB)
    cache.invalidate(BOB)
    second = cache.start(BOB)  # begun after the notice: sees the write
    cache.fetched(BOB, second, ON_C, 0.0)
    assert cache.get(BOB, 0.0) == ON_C
    cache.fetched(BOB, first, ON_B, 0.0)  # the older answer, late: not kept over it
    assert cache.get(BOB, 0.0) == ON_C


def test_nothing_is_kept_while_notices_do_not_arrive() -> None:
    cache = DirectoryCache(ttl=30.0, size=100)  # not subscribed yet
    look_up(cache, BOB, ON_B, 0.0)
    assert cache.get(BOB, 0.0) is None
    started = cache.start(BOB)
    cache.live = True  # notices from now on; the lookup begun before may predate a missed one
    cache.fetched(BOB, started, ON_B, 0.0)
    assert cache.get(BOB, 0.0) is None
    look_up(cache, BOB, ON_B, 0.0)
    assert cache.get(BOB, 0.0) == ON_B
    cache.live = False  # the subscription was lost: everything goes
    assert len(cache) == 0
    assert cache.get(BOB, 0.0) is None


def test_an_answer_expires_and_failed_lookups_are_not_kept() -> None:
    cache = live(ttl=2.0)
    look_up(cache, BOB, ON_B, 10.0)
    assert cache.get(BOB, 11.9) == ON_B
    assert cache.get(BOB, 12.0) is None
    cache.fetched(BOB, cache.start(BOB), None, 12.0)  # the lookup failed
    assert cache.get(BOB, 12.0) is None
    off = live(ttl=0.0)  # caching off
    look_up(off, BOB, ON_B, 0.0)
    assert off.get(BOB, 0.0) is None


def test_the_oldest_answers_go_first_at_the_size_limit() -> None:
    cache = live(size=2)
    for i in range(3):
        look_up(cache, f"u{i}@hub.test", [], 0.0)
    assert len(cache) == 2
    assert cache.get("u0@hub.test", 0.0) is None
    assert cache.get("u1@hub.test", 0.0) == []
    assert cache.get("u2@hub.test", 0.0) == []
    none = live(size=0)
    look_up(none, BOB, ON_B, 0.0)
    assert len(none) == 0
