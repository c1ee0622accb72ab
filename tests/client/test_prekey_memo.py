"""The PreKeyPair.pub memo gives what x3dh computes, stays bounded, and forgets old keys."""

from __future__ import annotations

import os

import x3dh.pre_key_pair
import xeddsa

from interlink.client import prekey_memo


def test_the_memo_gives_x3dh_s_public_keys_and_stays_bounded() -> None:
    prekey_memo.install()
    prekey_memo.install()  # idempotent
    pairs = [x3dh.pre_key_pair.PreKeyPair(os.urandom(32)) for _ in range(prekey_memo.MAX_ENTRIES)]
    for pair in pairs + pairs[:5]:
        assert pair.pub == xeddsa.priv_to_curve25519_pub(pair.priv)
    extra = x3dh.pre_key_pair.PreKeyPair(os.urandom(32))
    assert extra.pub == xeddsa.priv_to_curve25519_pub(extra.priv)
    assert len(prekey_memo._memo) == prekey_memo.MAX_ENTRIES
    assert all(pair.priv not in prekey_memo._memo for pair in pairs)  # keyed by a hash
