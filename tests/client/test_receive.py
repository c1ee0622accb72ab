"""The SDK's 1:1 receive path (``Receiver``) over fakes of its ports: what decrypts becomes the
right typed events with the device's trust flag, an automatic receipt goes back only when asked
and allowed, carbons of our own messages give no receipts, and what cannot be read becomes
``DecryptionFailed``."""

from __future__ import annotations

import itertools
import time
from typing import Any
from xml.etree.ElementTree import Element, SubElement

import slixmpp

from interlink.client import sce
from interlink.client.crypto import Decrypted, Undecryptable
from interlink.client.durable import CryptoGate
from interlink.client.errors import ClientError
from interlink.client.events import (
    ChatState,
    ClientEvent,
    DecryptionFailed,
    Displayed,
    MessageRefused,
    Receipt,
    TextMessage,
)
from interlink.client.omemo_session import LEGACY, OMEMO2
from interlink.client.receive import Receiver
from interlink.xmpp import ns
from interlink.xmpp.ext import interop
from tests.client.test_durable import FakeStorage

ME = "me@hub.test"
BOB = "bob@hub.test"


class FakeCrypto:
    def __init__(self) -> None:
        self.gate = CryptoGate(FakeStorage([]))
        self.opened: Decrypted | Undecryptable | None = None
        self.senders: list[str] = []
        self.device_id = 7
        self.elements: list[str] = []

    async def decrypt(self, element: Element, sender: str) -> Decrypted | Undecryptable | None:
        self.senders.append(sender)
        self.elements.append(element.tag)
        return self.opened


class Setup:
    def __init__(self, *, auto_receipts: bool = True) -> None:
        self.crypto = FakeCrypto()
        self.events: list[ClientEvent] = []
        self.heard: list[str] = []
        self.wrote_in: dict[str, str] = {}
        self.groupchat: list[Any] = []
        self.receipts: list[tuple[str, str, bool]] = []
        self.handled: set[str] = set()
        self.aliases: dict[str, str] = {}  # federated peer domain -> this account's alias
        self.alias_error: ClientError | None = None  # what asking the hub raises, if anything
        self.receiver = Receiver(
            own=ME,
            seen_by=self._seen_by,
            legacy=True,
            auto_receipts=auto_receipts,
            crypto=lambda: self.crypto,
            heard_from=self.heard.append,
            wrote_in=self.wrote_in.__setitem__,
            group_message=self._group_message,
            emit=self.events.append,
            send_receipt=self._send_receipt,
            handled=self._handled,
            note_handled=self._note_handled,
        )

    async def _seen_by(self, peer: str) -> str | None:
        if self.alias_error is not None:
            raise self.alias_error
        return self.aliases.get(peer.rpartition("@")[2])

    async def _handled(self, keys: list[str]) -> bool:
        return bool(self.handled.intersection(keys))

    async def _note_handled(self, keys: list[str]) -> None:
        self.handled.update(keys)

    async def _group_message(self, stanza: Any) -> None:
        self.groupchat.append(stanza)

    async def _send_receipt(self, to: str, message_id: str, *, wait: bool) -> None:
        self.receipts.append((to, message_id, wait))

    def envelope(self, *content: Element, sender: str = BOB, to: str = ME) -> None:
        sealed = sce.seal(list(content), sender=sender, recipient=to, now=time.time())
        self.crypto.opened = Decrypted(sealed, 7, OMEMO2, flagged=True)


_ids = itertools.count(1)


def message(
    frm: str = f"{BOB}/phone",
    to: str = ME,
    namespace: str = OMEMO2,
    mtype: str = "chat",
    message_id: str | None = None,
) -> Any:
    """An encrypted message; each one has an id of its own unless ``message_id`` is given."""
    mid = message_id or f"m{next(_ids)}"
    xml = Element(ns.qname(ns.CLIENT, "message"), {"from": frm, "to": to, "id": mid})
    xml.set("type", mtype)
    encrypted = SubElement(xml, f"{{{namespace}}}encrypted")
    SubElement(encrypted, f"{{{namespace}}}payload").text = "AAAA"
    return stanza(xml)


def stanza(xml: Element) -> Any:
    """A slixmpp message stanza around ``xml``, as slixmpp hands it to handlers."""
    return slixmpp.Message(xml=xml)  # type: ignore[no-untyped-call]


def el(namespace: str, local: str, **attributes: str) -> Element:
    return Element(ns.qname(namespace, local), attributes)


def body(text: str) -> Element:
    element = Element(sce.BODY)
    element.text = text
    return element


async def test_a_text_asking_for_a_receipt_is_an_event_and_a_receipt_goes_back() -> None:
    s = Setup()
    s.envelope(body("hi"), el(ns.RECEIPTS, "request"))
    await s.receiver.on_message(message(message_id="m1"))
    assert s.crypto.senders == [BOB]
    [event] = s.events
    assert isinstance(event, TextMessage)
    assert (event.sender, event.text, event.device_id, event.flagged) == (
        f"{BOB}/phone",
        "hi",
        7,
        True,
    )
    assert s.receipts == [(f"{BOB}/phone", "m1", False)]  # leaves with the next commit
    assert s.heard == [f"{BOB}/phone"]
    assert s.wrote_in == {BOB: OMEMO2}  # the version the peer's client wrote in


async def test_no_receipt_when_not_asked_or_turned_off() -> None:
    s = Setup()
    s.envelope(body("hi"))
    await s.receiver.on_message(message())
    off = Setup(auto_receipts=False)
    off.envelope(body("hi"), el(ns.RECEIPTS, "request"))
    await off.receiver.on_message(message())
    assert s.receipts == []
    assert off.receipts == []
    assert len(s.events) == len(off.events) == 1


async def test_receipts_markers_and_chat_states_become_their_events() -> None:
    s = Setup()
    s.envelope(
        el(ns.RECEIPTS, "received", id="a"),
        el(ns.CHAT_MARKERS, "displayed", id="b"),
        el(ns.CHATSTATES, "composing"),
    )
    await s.receiver.on_message(message())
    assert s.events == [
        Receipt(f"{BOB}/phone", "a"),
        Displayed(f"{BOB}/phone", "b"),
        ChatState(f"{BOB}/phone", "composing"),
    ]


async def test_a_carbon_of_our_own_message_is_outgoing_and_answers_nothing() -> None:
    s = Setup()
    s.envelope(body("sent elsewhere"), el(ns.RECEIPTS, "request"), sender=ME, to=BOB)
    copy = message(frm=f"{ME}/laptop", to=BOB)
    await s.receiver.on_message(copy, outgoing=True)
    [event] = s.events
    assert isinstance(event, TextMessage)
    assert (event.outgoing, event.to, event.text) == (True, BOB, "sent elsewhere")
    assert s.receipts == []
    assert s.heard == []  # our own device: not a peer's client


FED = "alice@chat.example"
ALIAS = "gabc@hub.test"


async def test_a_federated_peer_writes_to_the_alias_and_our_copies_come_from_it() -> None:
    """Issue 15: a federated user knows this account by its alias only; its envelope is
    addressed to the alias (the phone-number address is refused), and a carbon of this
    account's own message to it was sealed from the alias."""
    s = Setup()
    s.aliases["chat.example"] = ALIAS
    s.envelope(body("to the alias"), sender=FED, to=ALIAS)
    await s.receiver.on_message(message(frm=f"{FED}/phone"))
    s.envelope(body("to the number"), sender=FED, to=ME)
    await s.receiver.on_message(message(frm=f"{FED}/phone"))
    s.envelope(body("sent elsewhere"), sender=ALIAS, to=FED)
    await s.receiver.on_message(message(frm=f"{ME}/laptop", to=FED), outgoing=True)
    s.envelope(body("copy naming the number"), sender=ME, to=FED)
    await s.receiver.on_message(message(frm=f"{ME}/laptop", to=FED), outgoing=True)
    kinds = [(type(e).__name__, getattr(e, "text", None)) for e in s.events]
    assert kinds == [
        ("TextMessage", "to the alias"),
        ("DecryptionFailed", None),
        ("TextMessage", "sent elsewhere"),
        ("DecryptionFailed", None),
    ]
    failed = s.events[1]
    assert isinstance(failed, DecryptionFailed)
    assert "not to us" in failed.reason


async def test_when_the_alias_is_unknown_the_message_is_still_decrypted_and_says_why() -> None:
    s = Setup()
    s.aliases["chat.example"] = ALIAS
    s.alias_error = ClientError("no alias for alice@chat.example: timeout")
    s.crypto.opened = Decrypted(b"legacy text", 9, LEGACY, flagged=False)
    await s.receiver.on_message(message(frm=f"{FED}/phone", namespace=LEGACY))
    s.envelope(body("to the alias"), sender=FED, to=ALIAS)
    await s.receiver.on_message(message(frm=f"{FED}/phone"))
    legacy, failed = s.events
    assert isinstance(legacy, TextMessage)
    assert legacy.text == "legacy text"
    assert isinstance(failed, DecryptionFailed)
    assert "timeout" in failed.reason
    assert s.crypto.senders == [FED, FED]  # both decrypted: the ratchet moved on


async def test_a_marker_from_a_federated_sender_is_read_only_when_it_is_federated() -> None:
    s = Setup()
    s.envelope(body("hi"), sender=FED, to=ME)
    msg = message(frm=f"{FED}/phone")
    SubElement(msg.xml, interop.MARKER, {"provider": "chatprov", "inbox": "separate"})
    await s.receiver.on_message(msg)  # not federated (no alias): a marker is not the hub's
    s.aliases["chat.example"] = ALIAS
    s.envelope(body("hi"), sender=FED, to=ALIAS)
    msg = message(frm=f"{FED}/phone")
    SubElement(msg.xml, interop.MARKER, {"provider": "chatprov", "inbox": "separate"})
    await s.receiver.on_message(msg)
    first, second = s.events
    assert isinstance(first, TextMessage)
    assert isinstance(second, TextMessage)
    assert first.interop is None
    assert second.interop is not None
    assert second.interop.provider == "chatprov"


async def test_what_cannot_be_read_is_decryption_failed() -> None:
    s = Setup()
    s.crypto.opened = Undecryptable("no session with that device")
    await s.receiver.on_message(message())
    s.envelope(body("for someone else"), to="eve@hub.test")  # SCE names another recipient
    await s.receiver.on_message(message())
    assert [type(e) for e in s.events] == [DecryptionFailed, DecryptionFailed]
    assert isinstance(s.events[0], DecryptionFailed)
    assert s.events[0].reason == "no session with that device"


async def test_legacy_text_groupchat_and_unencrypted_messages_take_their_ways() -> None:
    s = Setup()
    s.crypto.opened = Decrypted(b"old client", 9, LEGACY, flagged=False)
    await s.receiver.on_message(message(namespace=LEGACY))
    [event] = s.events
    assert isinstance(event, TextMessage)
    assert (event.text, event.namespace, event.flagged) == ("old client", LEGACY, False)
    await s.receiver.on_message(message(mtype="groupchat"))
    assert len(s.groupchat) == 1
    plain = stanza(Element(ns.qname(ns.CLIENT, "message"), {"from": BOB}))
    await s.receiver.on_message(plain)
    assert s.crypto.senders == [BOB]  # neither the groupchat nor the plain one was decrypted


async def test_a_bounce_is_message_refused() -> None:
    s = Setup()
    xml = Element(ns.qname(ns.CLIENT, "message"), {"from": BOB, "id": "m1", "type": "error"})
    error = SubElement(xml, ns.qname(ns.CLIENT, "error"), {"type": "cancel"})
    SubElement(error, f"{{{ns.STANZAS_ERR}}}service-unavailable")
    s.receiver.on_message_error(stanza(xml))
    assert s.events == [MessageRefused(BOB, "m1", "service-unavailable", "")]


async def test_a_message_read_once_is_not_decrypted_again() -> None:
    """OMEMO keys are used up by one decryption: a copy with the own archive's stanza id of a
    message handled before (the offline copy after a catch-up) is dropped before decrypting;
    a copy known by sender and id alone is decrypted, for the crypto to refuse a replay."""
    s = Setup()
    s.envelope(body("once"))
    first = message(message_id="dup")
    SubElement(first.xml, "{urn:xmpp:sid:0}stanza-id", {"by": ME, "id": "A1"})
    SubElement(first.xml, "{urn:xmpp:sid:0}stanza-id", {"by": "else@x.test", "id": "B2"})
    await s.receiver.on_message(first)
    # only the own archive's stanza id; and that this device read it
    assert s.handled == {"sid:A1", f"id:{BOB}:dup", f"read:{BOB}:dup"}
    again = message(message_id="other")
    SubElement(again.xml, "{urn:xmpp:sid:0}stanza-id", {"by": ME, "id": "A1"})
    await s.receiver.on_message(again)  # the same archived message: not decrypted
    assert s.crypto.senders == [BOB]
    assert [type(e) for e in s.events] == [TextMessage]
    await s.receiver.on_message(message(message_id="dup"))  # sender and id only: decrypted
    assert s.crypto.senders == [BOB, BOB]


async def test_a_legacy_twin_of_a_message_read_in_omemo2_is_not_decrypted() -> None:
    """A peer whose device may read legacy only gets the text twice, same id: OMEMO 2, then a
    legacy twin (client/peer_caps.py). The twin of a message read is left alone (its ratchet
    is the sender's other session); one not read yet (the OMEMO 2 one was not for this
    device) is decrypted."""
    s = Setup()
    s.envelope(body("once"))
    await s.receiver.on_message(message(message_id="t1"))
    s.crypto.opened = Decrypted(b"once", 7, LEGACY, flagged=False)
    await s.receiver.on_message(message(namespace=LEGACY, message_id="t1"))
    assert s.crypto.senders == [BOB]  # decrypted once
    assert [type(e) for e in s.events] == [TextMessage]
    s.crypto.opened = Undecryptable("not encrypted for this device")
    await s.receiver.on_message(message(message_id="t2"))
    s.crypto.opened = Decrypted(b"legacy", 7, LEGACY, flagged=False)
    await s.receiver.on_message(message(namespace=LEGACY, message_id="t2"))
    assert s.crypto.senders == [BOB, BOB, BOB]
    assert [type(e) for e in s.events] == [TextMessage, DecryptionFailed, TextMessage]


async def test_an_empty_omemo_message_not_for_this_device_is_no_failure() -> None:
    """python-omemo completes a session with an empty message to one device; another device
    of the account meets it in the archive, not encrypted for it: nothing was lost."""
    s = Setup()
    s.crypto.opened = Undecryptable("not encrypted for this device")
    empty = message(frm=f"{ME}/other", message_id="e1")
    encrypted = empty.xml.find(f"{{{OMEMO2}}}encrypted")
    encrypted.remove(encrypted.find(f"{{{OMEMO2}}}payload"))
    await s.receiver.on_message(empty, outgoing=True)
    assert s.events == []
    await s.receiver.on_message(message(message_id="e2"))  # with a payload: a failure
    assert [type(e) for e in s.events] == [DecryptionFailed]


async def test_one_stanza_with_both_versions_is_read_once_in_omemo2_unless_it_has_no_key_for_us() -> (
    None
):
    """Some clients (Converse.js) put both versions in one stanza: the SDK reads the OMEMO 2
    one; when it carries no key for this device (listed for legacy only), the legacy one."""
    s = Setup()
    s.envelope(body("both"))

    def both(for_omemo2: bool, mid: str) -> Any:
        stanza_ = message(message_id=mid)
        o2 = stanza_.xml.find(f"{{{OMEMO2}}}encrypted")
        header = SubElement(o2, f"{{{OMEMO2}}}header", {"sid": "1"})
        keys = SubElement(header, f"{{{OMEMO2}}}keys", {"jid": ME})
        SubElement(keys, f"{{{OMEMO2}}}key", {"rid": "7" if for_omemo2 else "8"}).text = "k"
        old = SubElement(stanza_.xml, f"{{{LEGACY}}}encrypted")
        SubElement(old, f"{{{LEGACY}}}payload").text = "AAAA"
        return stanza_

    await s.receiver.on_message(both(True, "d1"))
    assert s.crypto.elements == [f"{{{OMEMO2}}}encrypted"]
    s.crypto.opened = Decrypted(b"both", 7, LEGACY, flagged=False)
    await s.receiver.on_message(both(False, "d2"))
    assert s.crypto.elements == [f"{{{OMEMO2}}}encrypted", f"{{{LEGACY}}}encrypted"]
    assert [type(e) for e in s.events] == [TextMessage, TextMessage]
