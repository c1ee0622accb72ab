"""The PreKeyPair.pub memo gives what x3dh computes, stays bounded, and forgets old keys."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import x3dh.pre_key_pair
import xeddsa

from interlink.client import prekey_memo


@pytest.fixture(autouse=True)
def unpatched_after() -> Iterator[None]:
    """The speed-up is opt-in: no test leaves it on for the tests after it."""
    yield
    prekey_memo.uninstall()


def test_nothing_is_patched_unless_asked_and_uninstall_restores() -> None:
    original = x3dh.pre_key_pair.PreKeyPair.__dict__["pub"]
    assert prekey_memo.install() is True  # the x3dh this environment pins is verified
    assert x3dh.pre_key_pair.PreKeyPair.__dict__["pub"] is not original
    prekey_memo.uninstall()
    assert x3dh.pre_key_pair.PreKeyPair.__dict__["pub"] is original


def test_an_unverified_x3dh_is_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    original = x3dh.pre_key_pair.PreKeyPair.__dict__["pub"]
    monkeypatch.setattr(prekey_memo, "VERIFIED", frozenset({"0.0.1"}))
    assert prekey_memo.install() is False
    assert x3dh.pre_key_pair.PreKeyPair.__dict__["pub"] is original


def test_the_memo_gives_x3dh_s_public_keys_and_stays_bounded() -> None:
    assert prekey_memo.install()
    assert prekey_memo.install()  # idempotent
    pairs = [x3dh.pre_key_pair.PreKeyPair(os.urandom(32)) for _ in range(prekey_memo.MAX_ENTRIES)]
    for pair in pairs + pairs[:5]:
        assert pair.pub == xeddsa.priv_to_curve25519_pub(pair.priv)
    extra = x3dh.pre_key_pair.PreKeyPair(os.urandom(32))
    assert extra.pub == xeddsa.priv_to_curve25519_pub(extra.priv)
    assert len(prekey_memo._memo) == prekey_memo.MAX_ENTRIES
    assert all(pair.priv not in prekey_memo._memo for pair in pairs)  # keyed by a hash
