"""The identity key in an OMEMO bundle (xmpp/ext/omemo_bundles.py): the Curve25519 form of an
Ed25519 key agrees with xeddsa's (python-omemo's own conversion), and a bundle matches only the
key it carries, in either OMEMO version."""

from __future__ import annotations

import base64

import pytest
import xeddsa
from hypothesis import given
from hypothesis import strategies as st

from interlink.xmpp.ext.omemo_bundles import bundle_matches, bundles_in, montgomery_u
from interlink.xmpp.xml import parse_fragment


@given(st.binary(min_size=32, max_size=32))
def test_montgomery_u_is_xeddsas_conversion(seed: bytes) -> None:
    ed = xeddsa.seed_to_ed25519_pub(seed)
    assert montgomery_u(ed) == xeddsa.ed25519_pub_to_curve25519_pub(ed)


def test_keys_that_are_not_ed25519_are_refused() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        montgomery_u(b"\x01" * 31)
    with pytest.raises(ValueError, match="not an Ed25519"):
        montgomery_u((2**255 - 19).to_bytes(32, "little"))


def test_a_bundle_matches_only_its_own_identity_key_in_either_version() -> None:
    key, other = xeddsa.seed_to_ed25519_pub(b"a" * 32), xeddsa.seed_to_ed25519_pub(b"b" * 32)
    curve = base64.b64encode(b"\x05" + montgomery_u(key)).decode()
    stanza = parse_fragment(
        "<iq xmlns='jabber:client'><pubsub xmlns='http://jabber.org/protocol/pubsub'><items>"
        f"<item><bundle xmlns='urn:xmpp:omemo:2'><ik>{base64.b64encode(key).decode()}</ik>"
        "</bundle></item><item><bundle xmlns='eu.siacs.conversations.axolotl'>"
        f"<identityKey>{curve}</identityKey></bundle></item>"
        "<item><bundle xmlns='urn:xmpp:omemo:2'><ik>not base64!</ik></bundle></item>"
        "</items></pubsub></iq>"
    )
    found = list(bundles_in(tuple(stanza)))
    assert len(found) == 3
    assert [bundle_matches(b, key) for b in found] == [True, True, False]
    assert [bundle_matches(b, other) for b in found] == [False, False, False]
