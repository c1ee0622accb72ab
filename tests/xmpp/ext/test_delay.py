"""XEP-0203 delay stamps: parsed in UTC, malformed or zone-less ones ignored."""

from __future__ import annotations

import pytest

from interlink.xmpp.ext.delay import delayed_at, format_stamp, parse_stamp
from interlink.xmpp.xml import parse_fragment as fromstring


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-12-07T15:00:00Z", 1796655600.0),
        ("2026-12-07T15:00:00.250Z", 1796655600.25),
        ("2026-12-07T17:00:00+02:00", 1796655600.0),
        ("2026-12-07T15:00:00", None),  # no zone
        ("yesterday", None),
        ("", None),
    ],
)
def test_stamps(text: str, expected: float | None) -> None:
    assert parse_stamp(text) == expected


def test_format_and_parse_round_trip() -> None:
    assert format_stamp(1796655600.25) == "2026-12-07T15:00:00.250Z"
    assert parse_stamp(format_stamp(1796655600.25)) == 1796655600.25


def test_the_delay_of_a_stanza() -> None:
    stored = fromstring(
        "<message xmlns='jabber:client'><delay xmlns='urn:xmpp:delay' from='h'"
        " stamp='2026-12-07T15:00:00Z'/></message>"
    )
    assert delayed_at(stored) == 1796655600.0
    assert delayed_at(fromstring("<message xmlns='jabber:client'/>")) is None
