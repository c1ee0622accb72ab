"""Safety numbers: symmetric, 60 digits, sensitive to every key."""

from __future__ import annotations

from interlink.client.trust import normalise_fingerprint, safety_number

A_KEYS = [b"\x01" * 32, b"\x02" * 32]
B_KEYS = [b"\x03" * 32]


def test_same_on_both_sides_and_order_independent() -> None:
    one = safety_number("alice@h", A_KEYS, "bob@h", B_KEYS)
    other = safety_number("bob@h", B_KEYS, "alice@h", list(reversed(A_KEYS)))
    assert one == other
    digits = one.replace(" ", "")
    assert len(digits) == 60
    assert digits.isdigit()
    assert len(one.split(" ")) == 12


def test_any_key_change_changes_it() -> None:
    base = safety_number("alice@h", A_KEYS, "bob@h", B_KEYS)
    assert safety_number("alice@h", A_KEYS, "bob@h", [b"\x04" * 32]) != base
    assert safety_number("alice@h", A_KEYS[:1], "bob@h", B_KEYS) != base
    assert safety_number("alice@h", A_KEYS, "mallory@h", B_KEYS) != base


def test_fingerprint_normalisation() -> None:
    assert normalise_fingerprint("DEADbeef 0011-2233") == "deadbeef00112233"
