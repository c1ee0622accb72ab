"""The SASL throttle on its own: back-off per pair, source and account, with time passed in."""

from __future__ import annotations

import pytest

from interlink.hub.auth_throttle import (
    AuthAttempt,
    AuthThrottle,
    AuthThrottled,
    Backoff,
    ThrottleLimits,
)

T0 = 1_000.0
LIMITS = ThrottleLimits(
    pair=Backoff(3, 1.0, 8.0),
    source=Backoff(10, 1.0, 4.0),
    account=Backoff(6, 1.0, 4.0),
    forget_after=100.0,
    trusted_for=1000.0,
    max_keys=50,
)


def fail(throttle: AuthThrottle, now: float, source: str, account: str | None) -> AuthAttempt:
    attempt = throttle.begin(now, source, account)
    assert isinstance(attempt, AuthAttempt), attempt
    throttle.failed(attempt, now)
    return attempt


def refused(throttle: AuthThrottle, now: float, source: str, account: str | None) -> float:
    verdict = throttle.begin(now, source, account)
    assert isinstance(verdict, AuthThrottled), verdict
    return verdict.retry_after


def test_backoff_doubles_from_the_free_failures_to_the_cap() -> None:
    backoff = Backoff(3, 1.0, 8.0)
    assert [backoff.delay(n) for n in range(9)] == [0, 0, 0, 1, 2, 4, 8, 8, 8]
    assert Backoff(0, 0.5, 1e9).delay(10_000) == 1e9  # no overflow
    with pytest.raises(ValueError, match="first <= cap"):
        Backoff(1, 2.0, 1.0)


def test_pair_boundary_free_failures_then_exponential_waits() -> None:
    throttle = AuthThrottle(LIMITS)
    for _ in range(3):  # the free ones, back to back
        fail(throttle, T0, "10.0.0.1", "alice@hub.test")
    assert refused(throttle, T0, "10.0.0.1", "alice@hub.test") == 1.0
    assert refused(throttle, T0 + 0.999, "10.0.0.1", "alice@hub.test") == pytest.approx(0.001)
    now = T0 + 1.0
    for wait in (2.0, 4.0, 8.0, 8.0):  # each let-through failure doubles the next wait
        fail(throttle, now, "10.0.0.1", "alice@hub.test")
        assert refused(throttle, now, "10.0.0.1", "alice@hub.test") == wait
        now += wait
    assert throttle.failures == 7
    assert throttle.throttled == 6


def test_refusal_text_is_the_same_for_any_account() -> None:
    throttle = AuthThrottle(LIMITS)
    texts = []
    for account in ("alice@hub.test", "nobody@hub.test", "?not a jid"):
        for _ in range(3):
            fail(throttle, T0, "10.0.0.1", account)
        verdict = throttle.begin(T0 + 0.5, "10.0.0.1", account)
        assert isinstance(verdict, AuthThrottled)
        texts.append(verdict.text)
    assert texts == ["too many failed attempts; try again in 1 s"] * 3


def test_parallel_attempts_count_when_they_begin() -> None:
    """Attempts whose outcome is not known yet count as failures: a burst of parallel guesses
    gets only the free ones through."""
    throttle = AuthThrottle(LIMITS)
    verdicts = [throttle.begin(T0, "10.0.0.1", "alice@hub.test") for _ in range(50)]
    assert sum(isinstance(v, AuthAttempt) for v in verdicts) == 3


def test_success_resets_the_pair_and_takes_back_only_its_own_count() -> None:
    throttle = AuthThrottle(LIMITS)
    for _ in range(2):
        fail(throttle, T0, "10.0.0.1", "alice@hub.test")
    ok = throttle.begin(T0, "10.0.0.1", "alice@hub.test")
    assert isinstance(ok, AuthAttempt)
    throttle.succeeded(ok, T0)
    assert throttle.source_failures("10.0.0.1", T0) == 2
    assert throttle.account_failures("alice@hub.test", T0) == 2
    for _ in range(3):  # the pair starts afresh
        fail(throttle, T0, "10.0.0.1", "alice@hub.test")


def test_own_account_logins_do_not_reset_a_sprayers_source() -> None:
    throttle = AuthThrottle(LIMITS)
    for i in range(10):
        fail(throttle, T0, "10.0.0.9", f"victim{i}@hub.test")
        if i % 2:
            mine = throttle.begin(T0, "10.0.0.9", "mallory@hub.test")
            assert isinstance(mine, AuthAttempt)
            throttle.succeeded(mine, T0)
    assert refused(throttle, T0, "10.0.0.9", "victim99@hub.test") == 1.0


def test_source_backoff_stops_spraying_and_bearer_tokens() -> None:
    throttle = AuthThrottle(LIMITS)
    for i in range(10):
        fail(throttle, T0, "10.0.0.9", None if i % 2 else f"u{i}@hub.test")
    assert refused(throttle, T0, "10.0.0.9", None) == 1.0
    assert refused(throttle, T0, "10.0.0.9", "fresh@hub.test") == 1.0
    assert isinstance(throttle.begin(T0, "10.0.0.10", None), AuthAttempt)  # another source


def test_one_source_adds_at_most_its_free_failures_to_the_account() -> None:
    throttle = AuthThrottle(LIMITS)
    now = T0
    for _ in range(12):  # a stubborn source, as fast as its pair back-off allows
        verdict = throttle.begin(now, "10.0.0.1", "alice@hub.test")
        assert isinstance(verdict, AuthAttempt)
        throttle.failed(verdict, T0)
        now += 8.0
    assert throttle.account_failures("alice@hub.test", now) == 3
    assert isinstance(throttle.begin(now, "10.0.0.2", "alice@hub.test"), AuthAttempt)


def test_distributed_guessing_holds_back_new_sources_but_not_trusted_ones() -> None:
    throttle = AuthThrottle(LIMITS)
    ok = throttle.begin(T0, "192.0.2.7", "alice@hub.test")  # alice's phone, last week
    assert isinstance(ok, AuthAttempt)
    throttle.succeeded(ok, T0)
    now = T0 + 500.0  # within trusted_for
    for i in range(6):
        fail(throttle, now, f"10.0.1.{i}", "alice@hub.test")
    assert refused(throttle, now, "10.0.1.99", "alice@hub.test") == 1.0  # a new device waits
    again = throttle.begin(now, "192.0.2.7", "alice@hub.test")  # the phone does not
    assert isinstance(again, AuthAttempt)
    # ... and however long the attack goes on, a new device is asked to wait at most the cap
    for i in range(20):
        assert refused(throttle, now, "10.0.3.1", "alice@hub.test") <= LIMITS.account.cap
        now += LIMITS.account.cap
        fail(throttle, now, f"10.0.2.{i}", "alice@hub.test")


def test_a_claimed_source_neither_uses_nor_earns_trust() -> None:
    """A provider proxy can claim any client address: claiming alice's usual one must not let
    it skip the account back-off, and its own successes must not make a pair trusted."""
    throttle = AuthThrottle(LIMITS)
    ok = throttle.begin(T0, "192.0.2.7", "alice@hub.test")  # alice's phone, seen directly
    assert isinstance(ok, AuthAttempt)
    throttle.succeeded(ok, T0)
    claimed = throttle.begin(T0, "198.51.100.9", "bob@hub.test", may_trust=False)
    assert isinstance(claimed, AuthAttempt)
    assert not claimed.may_trust
    throttle.succeeded(claimed, T0)
    now = T0 + 500.0
    for i in range(6):
        fail(throttle, now, f"10.0.1.{i}", "alice@hub.test")
        fail(throttle, now, f"10.0.2.{i}", "bob@hub.test")
    # the same address, seen directly, is trusted; claimed by a proxy, it waits
    assert isinstance(throttle.begin(now, "192.0.2.7", "alice@hub.test"), AuthAttempt)
    verdict = throttle.begin(now, "192.0.2.7", "alice@hub.test", may_trust=False)
    assert isinstance(verdict, AuthThrottled)
    # the claimed success earned no trust, even when the address is later seen directly
    assert refused(throttle, now, "198.51.100.9", "bob@hub.test") == 1.0


def test_trust_expires() -> None:
    throttle = AuthThrottle(LIMITS)
    ok = throttle.begin(T0, "192.0.2.7", "alice@hub.test")
    assert isinstance(ok, AuthAttempt)
    throttle.succeeded(ok, T0)
    now = T0 + 1000.0
    for i in range(6):
        fail(throttle, now, f"10.0.1.{i}", "alice@hub.test")
    assert refused(throttle, now, "192.0.2.7", "alice@hub.test") == 1.0


def test_counts_are_forgotten_after_a_quiet_period() -> None:
    throttle = AuthThrottle(LIMITS)
    for _ in range(3):
        fail(throttle, T0, "10.0.0.1", "alice@hub.test")
    assert throttle.source_failures("10.0.0.1", T0 + 99.9) == 3
    assert throttle.source_failures("10.0.0.1", T0 + 100.0) == 0
    for _ in range(3):  # free again
        fail(throttle, T0 + 100.0, "10.0.0.1", "alice@hub.test")


def test_memory_is_bounded() -> None:
    throttle = AuthThrottle(LIMITS)
    for i in range(1000):
        attempt = throttle.begin(T0 + i * 10.0, f"10.1.{i // 250}.{i % 250}", f"u{i}@hub.test")
        assert isinstance(attempt, AuthAttempt)
        throttle.succeeded(attempt, T0 + i * 10.0)
    assert len(throttle) <= 4 * LIMITS.max_keys


@pytest.mark.parametrize(
    ("address", "source"),
    [
        ("192.0.2.1", "192.0.2.1"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
        ("[2001:db8:1:2::9]", "2001:db8:1:2::/64"),
        ("::ffff:192.0.2.1", "192.0.2.1"),
        ("?", "?"),
    ],
)
def test_sources_are_addresses_and_ipv6_networks(address: str, source: str) -> None:
    assert AuthThrottle(LIMITS).source_key(address) == source


def test_limits_are_checked() -> None:
    with pytest.raises(ValueError, match="forget_after"):
        ThrottleLimits(forget_after=10.0)
    with pytest.raises(ValueError, match="ipv6_prefix"):
        ThrottleLimits(ipv6_prefix=0)


def test_configuration_builds_the_limits() -> None:
    from interlink.config import load_settings
    from interlink.errors import ConfigError
    from interlink.settings_map import hub_settings, throttle_limits

    settings = load_settings(
        None,
        {
            "sasl": {
                "throttle_pair_free": 2,
                "throttle_first_delay": 0.5,
                "throttle_pair_max_delay": 30.0,
                "throttle_max_delay": 10.0,
                "throttle_ipv6_prefix": 56,
            }
        },
    )
    limits = throttle_limits(settings)
    assert limits.pair == Backoff(2, 0.5, 30.0)
    assert limits.source == Backoff(20, 0.5, 10.0)
    assert limits.account == Backoff(20, 0.5, 10.0)
    assert limits.ipv6_prefix == 56
    assert hub_settings(settings).auth_throttle == limits
    with pytest.raises(ConfigError, match="forget_after"):
        load_settings(None, {"sasl": {"throttle_forget_after": 5.0}})


def test_many_logins_at_once_from_one_address_are_not_failures() -> None:
    """Users behind one address (a NAT, an office, a load test) logging in together: their
    attempts in flight do not count on the source; only failures do."""
    throttle = AuthThrottle(LIMITS)
    attempts = [throttle.begin(T0, "192.0.2.1", f"user{n}@hub.test") for n in range(50)]
    assert all(isinstance(a, AuthAttempt) for a in attempts)
    for attempt in attempts:
        assert isinstance(attempt, AuthAttempt)
        throttle.succeeded(attempt, T0)
    assert throttle.source_failures("192.0.2.1", T0) == 0
    # Failures do count: past the source's free ones, the next attempt waits.
    for n in range(LIMITS.source.free):
        fail(throttle, T0, "192.0.2.1", f"other{n}@hub.test")
    assert refused(throttle, T0, "192.0.2.1", "late@hub.test") > 0
