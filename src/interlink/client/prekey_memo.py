"""A bounded memo for ``x3dh.PreKeyPair.pub``.

x3dh does not store the public half of a one-time prekey: every read of ``PreKeyPair.pub`` is an
X25519 base-point multiplication (46-71 µs on the benchmark VM), and a key exchange reads all of
them seven or eight times (x3dh's lookup builds the whole bundle; twomemo re-parses its state and
rebuilds the bundle on each access). With python-omemo's 100 prekeys that is ~55 ms of the
~95 ms it takes to decrypt a new contact's first message, and ~7 ms on every further message
until the session is confirmed (``bench/crypto.py``, "prekeys").

PreKeyPair objects are made inside x3dh, so no subclass of ours can carry the memo:
:func:`install` replaces the property on x3dh's class, once per process — only when the
application asks for it (``InterlinkClient(speedups=True)``) and only for the x3dh versions it
was verified against (:data:`VERIFIED`); with any other version it changes nothing. The memo is
keyed by SHA-256 of the private key, so deleted one-time keys do not linger in memory, and holds
at most :data:`MAX_ENTRIES` public keys (least recently used dropped first).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
from collections import OrderedDict
from collections.abc import Callable

import x3dh.pre_key_pair
import xeddsa

MAX_ENTRIES = 1024
VERIFIED = frozenset(("1.3.0",))  # x3dh versions whose PreKeyPair.pub this was checked against


class PublicKeyMemo:
    """Public keys by SHA-256 of their private key, at most ``max_entries`` (least recently
    used dropped first), so that deleted private keys do not linger here."""

    def __init__(self, max_entries: int, derive: Callable[[bytes], bytes]) -> None:
        self.max_entries = max_entries
        self._derive = derive
        self._entries: OrderedDict[bytes, bytes] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, tag: object) -> bool:
        """Whether ``tag`` is a key of the memo (they are hashes, never private keys)."""
        return tag in self._entries

    def clear(self) -> None:
        self._entries.clear()

    def __call__(self, priv: bytes) -> bytes:
        tag = hashlib.sha256(priv).digest()
        pub = self._entries.get(tag)
        if pub is None:
            pub = self._derive(priv)
            self._entries[tag] = pub
            if len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
        else:
            self._entries.move_to_end(tag)
        return pub


_memo = PublicKeyMemo(MAX_ENTRIES, xeddsa.priv_to_curve25519_pub)


def public_key(pair: x3dh.pre_key_pair.PreKeyPair) -> bytes:
    """``pair.pub`` as x3dh computes it, from the memo when it was computed before."""
    return _memo(pair.priv)


def verified() -> bool:
    """Whether the installed x3dh is a version :func:`install` was verified against."""
    try:
        return importlib.metadata.version("X3DH") in VERIFIED
    except importlib.metadata.PackageNotFoundError:
        return False


def install() -> bool:
    """Make ``x3dh.PreKeyPair.pub`` go through :func:`public_key` (idempotent); returns whether
    it did (False, changing nothing, for an x3dh version not in :data:`VERIFIED`)."""
    cls = x3dh.pre_key_pair.PreKeyPair
    if not verified() or not isinstance(_ORIGINAL, property):
        return False
    if cls.__dict__.get("pub") is not _PROPERTY:
        type.__setattr__(cls, "pub", _PROPERTY)
    return True


def uninstall() -> None:
    """Put x3dh's own property back."""
    if x3dh.pre_key_pair.PreKeyPair.__dict__.get("pub") is _PROPERTY:
        type.__setattr__(x3dh.pre_key_pair.PreKeyPair, "pub", _ORIGINAL)


_PROPERTY = property(public_key)
_ORIGINAL = x3dh.pre_key_pair.PreKeyPair.__dict__.get("pub")
