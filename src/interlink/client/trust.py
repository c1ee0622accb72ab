"""Fingerprints and safety numbers.

A *fingerprint* identifies one device's identity key: its Curve25519 form in eight groups of eight
hex digits, as OMEMO clients show it. A *safety number* identifies a conversation between two
accounts: 60 digits, the same on both sides, computed like Signal's from each account's identity
keys (every device's, sorted) with 5,200 rounds of SHA-512 per side; the two 30-digit halves are
put in a canonical order. Comparing it out of band detects a key substituted by a server.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

_VERSION = b"\x00\x00"
_ITERATIONS = 5200


def _half(keys: Iterable[bytes], account: str) -> str:
    material = b"".join(sorted(keys))
    digest = _VERSION + material + account.encode()
    for _ in range(_ITERATIONS):
        digest = hashlib.sha512(digest + material).digest()
    return "".join(
        f"{int.from_bytes(digest[i : i + 5], 'big') % 100000:05d}" for i in range(0, 30, 5)
    )


def safety_number(
    own_account: str, own_keys: Iterable[bytes], peer_account: str, peer_keys: Iterable[bytes]
) -> str:
    """60 digits in 12 groups of five, identical when computed by either side."""
    halves = sorted((_half(own_keys, own_account), _half(peer_keys, peer_account)))
    digits = "".join(halves)
    return " ".join(digits[i : i + 5] for i in range(0, 60, 5))


def normalise_fingerprint(text: str) -> str:
    return "".join(ch for ch in text.lower() if ch in "0123456789abcdef")
