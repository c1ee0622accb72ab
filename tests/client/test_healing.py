"""When the SDK repairs a session that cannot read a peer device's messages
(``interlink.client.healing``): after a crossing exactly one side, alone at once, never twice
within the settle time, and never for a duplicate."""

from __future__ import annotations

import omemo
import pytest
from doubleratchet import DuplicateMessageException
from doubleratchet.aead import AuthenticationFailedException

from interlink.client.healing import MAX_PEERS, SessionRepair, broken_session, check_settle


def _failed(cause: Exception) -> omemo.DecryptionFailed:
    try:
        try:
            raise cause
        except Exception as exc:
            raise omemo.DecryptionFailed("Key material decryption failed.") from exc
    except omemo.DecryptionFailed as failed:
        return failed


def test_after_a_crossing_exactly_one_side_repairs() -> None:
    alice = SessionRepair("alice@h.test", 7)
    bob = SessionRepair("bob@h.test", 3)
    # each read the other's key exchange, then failed on the answer to its own
    alice.key_exchange_read("bob@h.test", 3, 100.0)
    bob.key_exchange_read("alice@h.test", 7, 100.0)
    decisions = [
        alice.should_repair("bob@h.test", 3, 100.1),
        bob.should_repair("alice@h.test", 7, 100.1),
    ]
    assert decisions == [True, False]  # alice's address sorts first


def test_the_device_id_breaks_a_tie_between_devices_of_one_account() -> None:
    one = SessionRepair("carol@h.test", 5)
    two = SessionRepair("carol@h.test", 9)
    one.key_exchange_read("carol@h.test", 9, 0.0)
    two.key_exchange_read("carol@h.test", 5, 0.0)
    assert [
        one.should_repair("carol@h.test", 9, 1.0),
        two.should_repair("carol@h.test", 5, 1.0),
    ] == [
        True,
        False,
    ]


def test_a_side_that_broke_alone_is_repaired_at_once_whatever_the_order() -> None:
    bob = SessionRepair("bob@h.test", 3)  # read nothing from alice lately
    assert bob.should_repair("alice@h.test", 7, 50.0)


def test_no_second_repair_within_the_settle_time_and_one_at_its_end() -> None:
    alice = SessionRepair("alice@h.test", 7, settle=10.0)
    assert alice.should_repair("bob@h.test", 3, 0.0)
    assert not alice.should_repair("bob@h.test", 3, 9.999)
    assert alice.should_repair("bob@h.test", 3, 10.0)


def test_the_side_that_waits_repairs_once_the_settle_time_is_over() -> None:
    bob = SessionRepair("bob@h.test", 3, settle=10.0)
    bob.key_exchange_read("alice@h.test", 7, 0.0)
    assert not bob.should_repair("alice@h.test", 7, 9.999)
    assert bob.should_repair("alice@h.test", 7, 10.0)


def test_a_peer_writing_from_ever_new_devices_cannot_grow_the_tables() -> None:
    """At MAX_PEERS devices nothing is forgotten within the settle time; one more and the
    oldest goes (it may then be repaired again: the price of the bound)."""
    alice = SessionRepair("alice@h.test", 7, settle=10.0)
    for device in range(MAX_PEERS):
        assert alice.should_repair("mallory@h.test", device, 1.0)
        alice.key_exchange_read("mallory@h.test", device, 1.0)
    assert alice.remembered == 2 * MAX_PEERS
    assert not alice.should_repair("mallory@h.test", 0, 2.0)  # all still remembered
    assert alice.should_repair("mallory@h.test", MAX_PEERS, 2.0)  # one more ...
    assert alice.remembered == 2 * MAX_PEERS
    assert alice.should_repair("mallory@h.test", 0, 2.0)  # ... and the oldest went
    assert not alice.should_repair("mallory@h.test", 2, 2.0)  # the others stay
    assert alice.remembered == 2 * MAX_PEERS
    assert alice.should_repair("bob@h.test", 3, 12.0)  # past the settle time: all forgotten
    assert alice.remembered == 1


def test_the_settle_time_must_be_positive() -> None:
    with pytest.raises(ValueError, match="session_repair_settle"):
        check_settle(0)
    check_settle(0.001)
    with pytest.raises(ValueError, match="session_repair_settle"):
        SessionRepair("a@h.test", 1, settle=-1)


def test_what_counts_as_a_broken_session() -> None:
    assert broken_session(omemo.NoSession("no session, no key exchange"))
    assert broken_session(_failed(AuthenticationFailedException("wrong keys")))
    assert not broken_session(_failed(DuplicateMessageException("seen")))  # a replay
    assert not broken_session(omemo.DecryptionFailed("no cause"))
    assert not broken_session(ValueError("malformed"))
