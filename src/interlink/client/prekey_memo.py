"""A bounded memo for ``x3dh.PreKeyPair.pub``.

x3dh does not store the public half of a one-time prekey: every read of ``PreKeyPair.pub`` is an
X25519 base-point multiplication (46-71 µs on the benchmark VM), and a key exchange reads all of
them seven or eight times (x3dh's lookup builds the whole bundle; twomemo re-parses its state and
rebuilds the bundle on each access). With python-omemo's 100 prekeys that is ~55 ms of the
~95 ms it takes to decrypt a new contact's first message, and ~7 ms on every further message
until the session is confirmed (``bench/crypto.py``, "prekeys").

PreKeyPair objects are made inside x3dh, so no subclass of ours can carry the memo:
:func:`install` replaces the property on x3dh's class, once per process. The memo is keyed by
SHA-256 of the private key, so deleted one-time keys do not linger in memory, and holds at most
:data:`MAX_ENTRIES` public keys (least recently used dropped first).
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict

import x3dh.pre_key_pair
import xeddsa

MAX_ENTRIES = 1024

_memo: OrderedDict[bytes, bytes] = OrderedDict()


def public_key(pair: x3dh.pre_key_pair.PreKeyPair) -> bytes:
    """``pair.pub`` as x3dh computes it, from the memo when it was computed before."""
    tag = hashlib.sha256(pair.priv).digest()
    pub = _memo.get(tag)
    if pub is None:
        pub = xeddsa.priv_to_curve25519_pub(pair.priv)
        _memo[tag] = pub
        if len(_memo) > MAX_ENTRIES:
            _memo.popitem(last=False)
    else:
        _memo.move_to_end(tag)
    return pub


def install() -> None:
    """Make ``x3dh.PreKeyPair.pub`` go through :func:`public_key` (idempotent)."""
    cls = x3dh.pre_key_pair.PreKeyPair
    if cls.__dict__.get("pub") is not _PROPERTY:
        type.__setattr__(cls, "pub", _PROPERTY)


_PROPERTY = property(public_key)
