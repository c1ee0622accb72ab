"""Log redaction: no phone number, JID or raw IP address survives; pseudonyms are stable within
a retention period and unlinkable across periods."""

from __future__ import annotations

import io
import json
import logging

import pytest

from interlink.log_privacy import LogRedactor, Pseudonyms, RedactionSettings, install
from interlink.logs import JsonFormatter
from interlink.xmpp.jid import JID


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("raw", "gone", "kept"),
    [
        ("4915112345678@hub.example/phone", ["4915112345678", "phone"], ["@hub.example"]),
        ("k3j4h5g6@examplechat.interop.hub.example", ["k3j4h5g6"], ["examplechat.interop"]),
        ("peer 203.0.113.77:40000", ["203.0.113.77"], ["203.0.113.0/24~", ":40000"]),
        ("2001:db8:1:2::77", ["2001:db8:1:2::77"], ["2001:db8:1::/48~"]),
        ("[2001:db8:1:2::77]:5223", ["2001:db8:1:2::77"], ["2001:db8:1::/48~"]),
        ("lookup of +4915112345678 refused", ["4915112345678"], ["lookup of #"]),
        ("at 2026-12-07T15:53:04Z port 5223", [], ["2026-12-07T15:53:04Z port 5223"]),
        ("hub.example listening", [], ["hub.example listening"]),
    ],
)
def test_scrub(raw: str, gone: list[str], kept: list[str]) -> None:
    out = LogRedactor(RedactionSettings()).scrub(raw)
    for secret in gone:
        assert secret not in out
    for part in kept:
        assert part in out


def test_scrubbing_twice_changes_nothing() -> None:
    redactor = LogRedactor(RedactionSettings())
    once = redactor.scrub("4915112345678@hub.example from 203.0.113.77 and +4915112345678")
    assert redactor.scrub(once) == once


def test_pseudonyms_are_linkable_within_retention_only() -> None:
    clock = Clock()
    names = Pseudonyms(3600, clock)
    first = names.of("jid", "alice@hub.example")
    assert names.of("jid", "alice@hub.example") == first
    assert names.of("jid", "bob@hub.example") != first
    clock.now += 3599 - clock.now % 3600  # still the same period
    assert names.of("jid", "alice@hub.example") == first
    clock.now += 1  # the next one: a new key, the old one forgotten
    assert names.of("jid", "alice@hub.example") != first


def test_prefixes_are_settings() -> None:
    redactor = LogRedactor(RedactionSettings(ipv4_prefix=16))
    assert redactor.scrub("203.0.113.77").startswith("203.0.0.0/16~")
    with pytest.raises(ValueError, match="prefixes"):
        RedactionSettings(ipv4_prefix=33)


def test_a_handler_with_the_redactor_writes_no_personal_data() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    install(LogRedactor(RedactionSettings()), [handler])
    log = logging.getLogger("interlink.test-redaction")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        log.info(
            "session bound %s",
            "4915112345678@hub.example/phone",
            extra={"peer": "203.0.113.77:40000", "jids": ["anna@hub.example", "berta@hub.example"]},
        )
    finally:
        log.removeHandler(handler)
    line = json.loads(stream.getvalue())
    text = json.dumps(line)
    for secret in ("4915112345678", "203.0.113.77", "anna", "berta", "/phone"):
        assert secret not in text
    assert line["event"].startswith("session bound ~")


def test_the_hubs_own_bind_address_is_kept_and_nothing_else() -> None:
    """``host`` on the "listening" lines is the hub's configuration, not a person's address; the
    same address in any other field is scrubbed."""
    redactor = LogRedactor(RedactionSettings())
    record = logging.LogRecord("interlink", logging.INFO, __file__, 1, "listening", None, None)
    record.__dict__.update(host="192.0.2.10", peer="192.0.2.10:5222")
    redactor.filter(record)
    assert record.__dict__["host"] == "192.0.2.10"
    assert "192.0.2.10" not in record.__dict__["peer"]
    assert RedactionSettings(own_fields=frozenset()).own_fields == frozenset()


def test_fields_of_any_type_are_scrubbed() -> None:
    """A JID object, a dict, an int phone number, an address tuple, nested containers: none is
    written as it came; counts, flags and durations stay what they were."""
    redactor = LogRedactor(RedactionSettings())
    record = logging.LogRecord("interlink", logging.INFO, __file__, 1, "x", None, None)
    fields: dict[str, object] = {
        "jid": JID.parse("4915112345678@hub.example/phone"),
        "user": {"who": "anna@hub.example", "anna@hub.example": [("203.0.113.77", 5222)]},
        "phone": 4915112345678,
        "peer": ("2001:db8::1", 40000),
        "nested": [[{"ips": {"198.51.100.9"}}]],
        "count": 3,
        "port": 5222,
        "backing_off": True,
        "retry_after": 2.5,
        "nothing": None,
    }
    record.__dict__.update(fields)
    redactor.filter(record)
    text = json.dumps({k: record.__dict__[k] for k in fields})
    for secret in ("4915112345678", "anna", "203.0.113.77", "2001:db8::1", "198.51.100.9"):
        assert secret not in text
    assert "/phone" not in text
    assert record.__dict__["phone"] == "#" + redactor.pseudonyms.of("phone", "4915112345678")
    kept = {k: record.__dict__[k] for k in ("count", "port", "backing_off", "retry_after")}
    assert kept == {"count": 3, "port": 5222, "backing_off": True, "retry_after": 2.5}
    assert record.__dict__["nothing"] is None


def test_nesting_beyond_the_bound_is_scrubbed_as_one_string() -> None:
    redactor = LogRedactor(RedactionSettings())
    deep: object = "anna@hub.example"
    for _ in range(20):
        deep = [deep]
    scrubbed = redactor.scrub_value(deep)
    assert "anna" not in json.dumps(scrubbed)
