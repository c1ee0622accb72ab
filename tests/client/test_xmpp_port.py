"""The SDK's PEP publishing: when a refused publish is worth one more try without the
``pubsub#max_items`` publish option."""

from __future__ import annotations

import pytest

from interlink.client.xmpp_port import max_items_refused

EJABBERD_23_01 = (
    "Unknown field 'pubsub#max_items' of type 'http://jabber.org/protocol/pubsub#publish-options'"
)


@pytest.mark.parametrize(
    ("condition", "text", "retry"),
    [
        ("resource-constraint", EJABBERD_23_01, True),  # ejabberd before 23.04
        ("conflict", "", True),  # precondition-not-met (XEP-0060 §7.1.5)
        ("resource-constraint", "too many items", False),
        ("forbidden", "", False),
        ("not-authorized", "", False),
        ("item-not-found", "", False),
    ],
)
def test_a_publish_is_retried_only_when_refused_for_its_max_items(
    condition: str, text: str, retry: bool
) -> None:
    assert max_items_refused(condition, text) is retry
