"""Stanza errors on the wire: RFC 6120 §8.3.2 with XEP-0086's legacy ``code`` beside the
condition (older clients, e.g. profanity 0.13, read only the code)."""

from __future__ import annotations

import pytest

from interlink.errors import StanzaError, StanzaErrorCondition
from interlink.xmpp import ns
from interlink.xmpp.stanza import error_element


@pytest.mark.parametrize(
    ("condition", "code"),
    [
        (StanzaErrorCondition.ITEM_NOT_FOUND, "404"),
        (StanzaErrorCondition.FORBIDDEN, "403"),
        (StanzaErrorCondition.SERVICE_UNAVAILABLE, "503"),
        (StanzaErrorCondition.REGISTRATION_REQUIRED, "407"),
        (StanzaErrorCondition.POLICY_VIOLATION, None),  # newer than XEP-0086: no code
    ],
)
def test_an_error_carries_its_legacy_code(
    condition: StanzaErrorCondition, code: str | None
) -> None:
    el = error_element(StanzaError(condition, "why"))
    assert el.get("code") == code
    assert el.get("type") == str(condition.default_type)
    assert el.find(ns.qname(ns.STANZAS_ERR, str(condition))) is not None


def test_every_condition_but_policy_violation_has_a_code() -> None:
    missing = [c for c in StanzaErrorCondition if c.legacy_code is None]
    assert missing == [StanzaErrorCondition.POLICY_VIOLATION]
