"""A domainpart IDNA cannot encode is an invalid JID, not a crash (found by the admin API's
OpenAPI fuzzing: a control character in a user's address)."""

from __future__ import annotations

import pytest

from interlink.xmpp.jid import JID, InvalidJID


@pytest.mark.parametrize("text", ["a@b\x8dc.example", "a@\u0080x.test", "x@" + "é" * 70 + ".test"])
def test_a_domain_idna_refuses_is_an_invalid_jid(text: str) -> None:
    with pytest.raises(InvalidJID):
        JID.parse(text)


def test_an_internationalised_domain_still_parses() -> None:
    assert str(JID.parse("alice@bücher.example")) == "alice@bücher.example"
