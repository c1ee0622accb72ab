"""Messages across the interop boundary, counted per provider and direction."""

from __future__ import annotations

from interlink.hub.addressing import Addressing, ProviderDirectory
from interlink.hub.session import Session
from interlink.interop.traffic import FROM_PROVIDER, TO_PROVIDER, ProviderTraffic
from interlink.xmpp.jid import JID
from interlink.xmpp.stanza import Iq, IqType, Message, MessageType
from tests.hubkit import FakePort

ALICE = JID.parse("alice@wa.test/phone")
BOB = JID.parse("x1@chat.interop.wa.test/app")


def message(to: JID, kind: MessageType = MessageType.CHAT) -> Message:
    return Message(to, None, "m1", None, (), kind)


def test_messages_are_counted_per_provider_and_direction() -> None:
    traffic = ProviderTraffic(Addressing(("wa.test",), ProviderDirectory()).provider_of)
    alice, bob = Session(ALICE, FakePort()), Session(BOB, FakePort())
    traffic.observe(alice, message(BOB.bare))
    traffic.observe(alice, message(BOB.bare))
    traffic.observe(bob, message(ALICE.bare))
    traffic.observe(alice, message(JID.parse("carol@wa.test")))
    traffic.observe(bob, message(ALICE.bare, MessageType.ERROR))  # not a message sent
    traffic.observe(alice, Iq(BOB.bare, None, "1", None, (), IqType.GET))  # not a message
    assert traffic.messages == {("chat", TO_PROVIDER): 2, ("chat", FROM_PROVIDER): 1}
    assert traffic.per_provider() == {"chat": 3}
