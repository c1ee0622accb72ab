"""The in-memory challenge store: single use, exact expiry, bounded, a refusal gives back."""

from __future__ import annotations

import base64

import pytest

from interlink.interop.challenges import CHALLENGE_BYTES, ChallengeStore

T0 = 1_000_000.0


def test_a_challenge_is_32_random_bytes_valid_for_five_minutes() -> None:
    store = ChallengeStore()
    nonce, expires_at = store.issue(T0)
    assert expires_at == T0 + 300
    assert len(base64.urlsafe_b64decode(nonce + "=" * (-len(nonce) % 4))) == CHALLENGE_BYTES
    assert store.issue(T0)[0] != nonce


def test_single_use() -> None:
    store = ChallengeStore()
    nonce, expires_at = store.issue(T0)
    assert store.take(nonce, T0 + 1) == expires_at
    assert store.take(nonce, T0 + 1) is None
    assert len(store) == 0


@pytest.mark.parametrize(
    ("elapsed", "valid"),
    [(0.0, True), (299.999, True), (300.0, False), (300.001, False), (10_000.0, False)],
)
def test_expiry_is_exact(elapsed: float, valid: bool) -> None:
    store = ChallengeStore()
    nonce, expires_at = store.issue(T0)
    assert store.take(nonce, T0 + elapsed) == (expires_at if valid else None)
    assert store.take(nonce, T0) is None  # an expired challenge is gone, not kept


def test_unknown_challenges_are_refused() -> None:
    store = ChallengeStore()
    store.issue(T0)
    assert store.take("made-up", T0) is None
    assert store.take("", T0) is None
    assert len(store) == 1


def test_expired_challenges_are_forgotten_when_new_ones_are_issued() -> None:
    store = ChallengeStore(ttl=10)
    for i in range(5):
        store.issue(T0 + i)
    store.issue(T0 + 12.5)  # those issued at T0, T0+1 and T0+2 have expired
    assert len(store) == 3


def test_bounded_the_oldest_goes_first() -> None:
    store = ChallengeStore(capacity=3)
    issued = [store.issue(T0 + i)[0] for i in range(5)]
    assert len(store) == 3
    assert store.take(issued[0], T0 + 5) is None
    assert store.take(issued[1], T0 + 5) is None
    assert all(store.take(n, T0 + 5) is not None for n in issued[2:])


def test_a_refused_request_gives_its_challenge_back_with_its_expiry() -> None:
    store = ChallengeStore()
    nonce, expires_at = store.issue(T0)
    taken = store.take(nonce, T0 + 1)
    assert taken is not None
    store.give_back(nonce, taken)
    assert store.take(nonce, T0 + 299) == expires_at
    store.give_back(nonce, expires_at)
    assert store.take(nonce, T0 + 300) is None  # giving back never extends the expiry


def test_a_full_store_does_not_take_a_challenge_back() -> None:
    store = ChallengeStore(capacity=1)
    nonce, expires_at = store.issue(T0)
    assert store.take(nonce, T0) is not None
    other, _ = store.issue(T0)
    store.give_back(nonce, expires_at)
    assert len(store) == 1
    assert store.take(nonce, T0) is None
    assert store.take(other, T0) is not None


def test_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError, match="capacity"):
        ChallengeStore(capacity=0)
