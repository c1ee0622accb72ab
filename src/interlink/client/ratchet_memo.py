"""Two costs python-doubleratchet pays on every message that its results do not need.

Measured with ``bench/crypto.py --profile`` (cProfile, memory variant, 3,000 messages):

1. **The clone before decrypting.** ``DoubleRatchet.decrypt_message`` works on a
   ``copy.deepcopy`` of its Diffie-Hellman ratchet, so that a message that fails to decrypt
   leaves the state untouched. The generic deep copy walks ~49 objects through ``__reduce_ex__``
   for what is three small objects holding bytes, ints and classes: ~16 % of a decryption. The
   classes get a ``__deepcopy__`` that copies exactly what they hold: their own ``__dict__``,
   with immutable values shared (as ``deepcopy`` itself shares them) and every other value
   deep-copied as before. The result is the same independent copy.
2. **The ratchet's own public key, derived again for every message sent.** The curve25519 DH
   ratchet keeps only its private key; each message header needs the public one, one X25519
   base-point multiplication (~45 µs) each time, although it changes only when the DH ratchet
   steps. ``_derive_pub`` gets a bounded memo, keyed by SHA-256 of the private key (as
   :mod:`interlink.client.prekey_memo` does for x3dh's one-time prekeys).

:func:`install` puts both on python-doubleratchet's classes, once per process — only when the
application asks for it (``InterlinkClient(speedups=True)``) and only for the
python-doubleratchet versions they were verified against (:data:`VERIFIED`); with any other
version it changes nothing. :func:`uninstall` takes them off again.
"""

from __future__ import annotations

import copy
import importlib.metadata
from typing import Any

from doubleratchet import diffie_hellman_ratchet, kdf_chain, symmetric_key_ratchet
from doubleratchet.recommended import diffie_hellman_ratchet_curve25519

from interlink.client.prekey_memo import PublicKeyMemo

MAX_ENTRIES = 256  # ratchet key pairs remembered: one per active sending chain
VERIFIED = frozenset(("1.3.0",))  # python-doubleratchet versions this was checked against

_IMMUTABLE = (bytes, str, int, float, bool, type(None), type)
_CLONED = (
    diffie_hellman_ratchet.DiffieHellmanRatchet,
    symmetric_key_ratchet.SymmetricKeyRatchet,
    kdf_chain.KDFChain,
)
_Curve25519 = diffie_hellman_ratchet_curve25519.DiffieHellmanRatchet
_ORIGINAL_DERIVE_PUB = _Curve25519.__dict__.get("_derive_pub")
_original_derive_pub = getattr(_ORIGINAL_DERIVE_PUB, "__func__", None)


def clone(self: Any, memo: dict[int, Any]) -> Any:
    """``copy.deepcopy`` of a ratchet or chain object: its attributes, copied as deepcopy would
    (immutable values shared, the rest deep-copied), without the generic reduce protocol."""
    twin = object.__new__(type(self))
    memo[id(self)] = twin
    state = twin.__dict__
    for name, value in self.__dict__.items():
        state[name] = value if type(value) in _IMMUTABLE else copy.deepcopy(value, memo)
    return twin


def _unpatched_derive_pub(priv: bytes) -> bytes:
    assert _original_derive_pub is not None  # install() checked
    pub: bytes = _original_derive_pub(priv)
    return pub


derive_pub = PublicKeyMemo(MAX_ENTRIES, _unpatched_derive_pub)
"""The curve25519 ratchet's ``_derive_pub``, from the memo when it was computed before."""

_DERIVE_PUB = staticmethod(derive_pub)


def verified() -> bool:
    """Whether the installed python-doubleratchet is a version :func:`install` was checked
    against."""
    try:
        return importlib.metadata.version("DoubleRatchet") in VERIFIED
    except importlib.metadata.PackageNotFoundError:
        return False


def install() -> bool:
    """Put :func:`clone` and :func:`derive_pub` on python-doubleratchet's classes (idempotent);
    returns whether it did (False, changing nothing, for a version not in :data:`VERIFIED`)."""
    if not verified() or _original_derive_pub is None:
        return False
    for cls in _CLONED:
        if "__deepcopy__" in cls.__dict__ and cls.__dict__["__deepcopy__"] is not clone:
            return False  # someone else's: leave it
    for cls in _CLONED:
        if cls.__dict__.get("__deepcopy__") is not clone:
            type.__setattr__(cls, "__deepcopy__", clone)
    if _Curve25519.__dict__.get("_derive_pub") is not _DERIVE_PUB:
        type.__setattr__(_Curve25519, "_derive_pub", _DERIVE_PUB)
    return True


def uninstall() -> None:
    """Take :func:`clone` and :func:`derive_pub` off python-doubleratchet's classes."""
    for cls in _CLONED:
        if cls.__dict__.get("__deepcopy__") is clone:
            type.__delattr__(cls, "__deepcopy__")
    if _Curve25519.__dict__.get("_derive_pub") is _DERIVE_PUB:
        type.__setattr__(_Curve25519, "_derive_pub", _ORIGINAL_DERIVE_PUB)
