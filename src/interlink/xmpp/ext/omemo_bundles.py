"""The identity key in an OMEMO bundle, as it passes through the hub (issue 15 item 4).

Both OMEMO versions publish one bundle per device over PEP (XEP-0163):

- OMEMO 2 (XEP-0384 v0.8+, §5.3.2): node ``urn:xmpp:omemo:2:bundles``, item id = device id,
  ``<bundle xmlns='urn:xmpp:omemo:2'>…<ik>`` base64 of the device's Ed25519 identity key;
- legacy OMEMO (XEP-0384 v0.3, §4.3): node ``eu.siacs.conversations.axolotl.bundles:<device>``,
  ``<bundle xmlns='eu.siacs.conversations.axolotl'>…<identityKey>`` base64 of the same key in
  its Curve25519 (Montgomery) form, with libsignal's type byte ``0x05`` in front.

The hub knows a federated user's enlisted identity key in its Ed25519 form (the Enlistment
API); :func:`bundle_matches` says whether a bundle carries that key, in either form.
Pure functions; no I/O.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator
from xml.etree.ElementTree import Element

OMEMO2_NS = "urn:xmpp:omemo:2"
LEGACY_NS = "eu.siacs.conversations.axolotl"
OMEMO2_BUNDLE = f"{{{OMEMO2_NS}}}bundle"
LEGACY_BUNDLE = f"{{{LEGACY_NS}}}bundle"
_BUNDLES = frozenset((OMEMO2_BUNDLE, LEGACY_BUNDLE))
_IK = f"{{{OMEMO2_NS}}}ik"
_IDENTITY_KEY = f"{{{LEGACY_NS}}}identityKey"
_DJB_TYPE = 0x05  # libsignal's key type byte for Curve25519 public keys

_P = 2**255 - 19  # the field of Curve25519 and Ed25519 (RFC 7748 §4.1, RFC 8032 §5.1)


def bundles_in(payload: tuple[Element, ...]) -> Iterator[Element]:
    """Every OMEMO bundle (either version) anywhere in a stanza's payload: a pubsub result's
    ``<items/>``, a PEP notification's ``<event/>``, a publish."""
    for el in payload:
        for node in el.iter():
            if node.tag in _BUNDLES:
                yield node


def montgomery_u(ed25519_public: bytes) -> bytes:
    """The Curve25519 public key (u coordinate, 32 bytes little-endian) of an Ed25519 public
    key: u = (1 + y) / (1 - y) mod p (RFC 7748 §4.1, the birational map). Raises ValueError
    for a key that is not 32 bytes or whose y is not below p."""
    if len(ed25519_public) != 32:
        raise ValueError("an Ed25519 public key is 32 bytes")
    y = int.from_bytes(ed25519_public, "little") & ((1 << 255) - 1)  # drop the sign of x
    if y >= _P or y == 1:
        raise ValueError("not an Ed25519 public key")
    u = (1 + y) * pow(1 - y, _P - 2, _P) % _P
    return u.to_bytes(32, "little")


def _decoded(el: Element | None) -> bytes | None:
    if el is None or not el.text:
        return None
    try:
        return base64.b64decode(el.text.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None


def bundle_matches(bundle: Element, identity_key: bytes) -> bool:
    """Whether ``bundle`` carries ``identity_key`` (Ed25519, 32 bytes): an OMEMO 2 ``<ik/>``
    equal to it, or a legacy ``<identityKey/>`` equal to its Curve25519 form. A bundle without
    a readable key matches nothing."""
    if bundle.tag == OMEMO2_BUNDLE:
        return _decoded(bundle.find(_IK)) == identity_key
    key = _decoded(bundle.find(_IDENTITY_KEY))
    if key is None:
        return False
    if len(key) == 33 and key[0] == _DJB_TYPE:
        key = key[1:]
    try:
        return key == montgomery_u(identity_key)
    except ValueError:
        return False


__all__ = [
    "LEGACY_BUNDLE",
    "LEGACY_NS",
    "OMEMO2_BUNDLE",
    "OMEMO2_NS",
    "bundle_matches",
    "bundles_in",
    "montgomery_u",
]
