"""Which OMEMO version to encrypt text with first, from what a peer's clients advertise."""

from __future__ import annotations

from interlink.client.omemo_session import LEGACY, OMEMO2
from interlink.client.peer_caps import needs_twin, reads_legacy_only, text_order

BOTH = {"urn:xmpp:omemo:2:devices+notify", "eu.siacs.conversations.axolotl.devicelist+notify"}
LEGACY_ONLY = {"eu.siacs.conversations.axolotl.devicelist+notify", "urn:xmpp:ping"}
OMEMO2_ONLY = {"urn:xmpp:omemo:2:devices+notify"}


def test_a_client_reads_legacy_only_when_it_asks_for_legacy_notifications_alone() -> None:
    assert reads_legacy_only(LEGACY_ONLY)
    assert not reads_legacy_only(BOTH)
    assert not reads_legacy_only(OMEMO2_ONLY)
    assert not reads_legacy_only(set())  # advertises nothing: no evidence either way


def test_one_legacy_only_client_puts_legacy_first_for_that_peer() -> None:
    assert text_order([BOTH, LEGACY_ONLY], [OMEMO2, LEGACY]) == [LEGACY, OMEMO2]
    assert text_order([BOTH, OMEMO2_ONLY], [OMEMO2, LEGACY]) == [OMEMO2, LEGACY]
    assert text_order([], [OMEMO2, LEGACY]) == [OMEMO2, LEGACY]


def test_legacy_is_never_added_when_the_sdk_has_it_off() -> None:
    assert text_order([LEGACY_ONLY], [OMEMO2]) == [OMEMO2]


def test_a_peer_that_last_wrote_legacy_is_answered_legacy_first_whatever_it_advertises() -> None:
    """poezio-omemo 0.9.1 advertises both notifications but reads legacy OMEMO only."""
    assert text_order([BOTH], [OMEMO2, LEGACY], wrote_legacy=True) == [LEGACY, OMEMO2]
    assert text_order([BOTH], [OMEMO2, LEGACY], wrote_legacy=False) == [OMEMO2, LEGACY]
    assert text_order([BOTH], [OMEMO2], wrote_legacy=True) == [OMEMO2]


BOTH_LISTS = frozenset((OMEMO2, LEGACY))


def test_a_device_in_both_lists_that_never_wrote_omemo2_gets_a_legacy_twin() -> None:
    """poezio-omemo 0.9.1 lists its device for both versions and reads legacy only."""
    order = [OMEMO2, LEGACY]
    assert needs_twin([(BOTH_LISTS, None)], order)  # never wrote to us
    assert needs_twin([(BOTH_LISTS, LEGACY)], order)  # wrote legacy (e.g. before a restart)
    assert not needs_twin([(BOTH_LISTS, OMEMO2)], order)  # wrote OMEMO 2: it reads it
    assert needs_twin([(BOTH_LISTS, OMEMO2), (BOTH_LISTS, None)], order)  # one device enough
    assert not needs_twin([(frozenset((OMEMO2,)), None)], order)  # one list: no doubt
    assert not needs_twin([(frozenset((LEGACY,)), None)], order)
    assert not needs_twin([(BOTH_LISTS, None)], [LEGACY, OMEMO2])  # legacy first already
    assert not needs_twin([(BOTH_LISTS, None)], [OMEMO2])  # no legacy to send (not text)
    assert not needs_twin([], order)
