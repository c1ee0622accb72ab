"""Stanza Content Encryption envelopes (XEP-0420): sealing, opening, and every check."""

from __future__ import annotations

from xml.etree.ElementTree import Element

import pytest

from interlink.client import sce

NOW = 1_800_000_000.0


def body(text: str) -> Element:
    el = Element(sce.BODY)
    el.text = text
    return el


def test_round_trip() -> None:
    data = sce.seal([body("hé <&> ☃")], sender="alice@hub.test", recipient="bob@hub.test", now=NOW)
    env = sce.open_envelope(data, sender="alice@hub.test", recipients={"bob@hub.test"}, now=NOW + 5)
    assert env.body == "hé <&> ☃"
    assert (env.sender, env.recipient) == ("alice@hub.test", "bob@hub.test")


@pytest.mark.parametrize(
    ("text", "size"),
    [("", 256), ("x" * 66, 256), ("x" * 67, 512), ("é" * 929, 2048), ("x" * 5000, 8192)],
)
def test_envelopes_are_padded_to_a_bucket(text: str, size: int) -> None:
    """Lengths the hub and a proxy could see are buckets only (the envelope around the body
    takes 189 bytes here; the padding at least one)."""
    data = sce.seal([body(text)], sender="a@h.test", recipient="b@h.test", now=NOW)
    assert len(data) == size
    env = sce.open_envelope(data, sender="a@h.test", recipients={"b@h.test"}, now=NOW)
    assert env.body == text


def test_padding_is_random() -> None:
    sealed = {sce.seal([body("x")], sender="a@h.test", recipient="b@h.test", now=NOW)}
    sealed |= {sce.seal([body("x")], sender="a@h.test", recipient="b@h.test", now=NOW)}
    assert len(sealed) == 2
    assert {len(s) for s in sealed} == {256}


@pytest.mark.parametrize(
    ("sender", "recipients", "now", "message"),
    [
        ("mallory@hub.test", {"bob@hub.test"}, NOW, "from alice@hub.test, but mallory"),
        ("alice@hub.test", {"carol@hub.test"}, NOW, "addressed to bob@hub.test"),
        ("alice@hub.test", {"bob@hub.test"}, NOW + 30 * 86400, "too far"),
    ],
)
def test_affix_checks(sender: str, recipients: set[str], now: float, message: str) -> None:
    data = sce.seal([body("x")], sender="alice@hub.test", recipient="bob@hub.test", now=NOW)
    with pytest.raises(sce.SceError, match=message):
        sce.open_envelope(data, sender=sender, recipients=recipients, now=now)


@pytest.mark.parametrize(
    "data",
    [
        b"not xml",
        b"<envelope xmlns='urn:xmpp:other'/>",
        b"<envelope xmlns='urn:xmpp:sce:1'><content/></envelope>",
        b"<!DOCTYPE x><envelope xmlns='urn:xmpp:sce:1'/>",
        b"\xff\xfe",
        b"<envelope xmlns='urn:xmpp:sce:1'><content/><to jid='@@'/><from jid='a@h'/></envelope>",
    ],
)
def test_garbage_is_a_clear_error(data: bytes) -> None:
    with pytest.raises(sce.SceError):
        sce.open_envelope(data, sender="a@h", recipients={"b@h"}, now=NOW)


def envelope_at(stamp: str) -> bytes:
    return (
        "<envelope xmlns='urn:xmpp:sce:1'><content><body xmlns='jabber:client'>x</body></content>"
        f"<time stamp='{stamp}'/><to jid='b@h'/><from jid='a@h'/></envelope>"
    ).encode()


@pytest.mark.parametrize(
    ("stamp", "at"),
    [
        ("2027-01-15T08:00:00Z", 1_800_000_000.0),
        ("2027-01-15T08:00:00.250Z", 1_800_000_000.25),
        ("2027-01-15T10:00:00+02:00", 1_800_000_000.0),  # XEP-0082 offsets count
        ("2027-01-15T08:00:00", 1_800_000_000.0),  # no zone: read as UTC
    ],
)
def test_time_stamps_in_xep_0082_forms(stamp: str, at: float) -> None:
    env = sce.open_envelope(envelope_at(stamp), sender="a@h", recipients={"b@h"}, now=NOW)
    assert env.timestamp == at


@pytest.mark.parametrize("stamp", ["2027-01-15", "20270115T080000Z", "yesterday", ""])
def test_a_bad_time_stamp_is_a_clear_error(stamp: str) -> None:
    with pytest.raises(sce.SceError, match="bad time stamp"):
        sce.open_envelope(envelope_at(stamp), sender="a@h", recipients={"b@h"}, now=NOW)
