"""The SDK's ``Groups`` over in-memory fakes of its ports (the stream's stanza factories, this
connection's OMEMO, device-list refresh, events): the fan-out of a group message to every
member, members without devices reported and left out, a removal taking effect before the next
message, and the receive path (occupant → sender, decrypt, trust flag, own copies skipped)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from typing import Any
from xml.etree.ElementTree import Element, SubElement

import omemo
import pytest
import slixmpp

from interlink.client.consent import ConsentError
from interlink.client.crypto import Decrypted, Undecryptable
from interlink.client.durable import CryptoGate
from interlink.client.errors import ClientError, NotConnected
from interlink.client.events import (
    ClientEvent,
    DecryptionFailed,
    EncryptionProblem,
    GroupJoined,
    GroupMemberRemoved,
    GroupMessage,
    TextMessage,
)
from interlink.client.groups import FALLBACK_BODY, Groups, RoomStream
from interlink.client.omemo_session import LEGACY, OMEMO2
from interlink.xmpp import ns
from interlink.xmpp.ext import muc
from tests.client.test_durable import FakeStorage

ROOM = "team@groups.hub.test"
ME = "me@hub.test"
BOB = "bob@hub.test"
CAROL = "carol@hub.test"


class Incoming:
    """A stanza as slixmpp hands it over (``.xml``)."""

    def __init__(self, xml: Element) -> None:
        self.xml = xml


class Outgoing:
    def __init__(self, xml: Element, sent: list[Element]) -> None:
        self.xml = xml
        self._sent = sent

    def __setitem__(self, key: str, value: str) -> None:
        if key == "body":
            SubElement(self.xml, ns.qname(ns.CLIENT, "body")).text = value
        else:
            self.xml.set(key, value)

    def send(self) -> None:
        self._sent.append(self.xml)


class Iq(Outgoing):
    def __init__(self, xml: Element, sent: list[Element], lists: dict[str, list[str]]) -> None:
        super().__init__(xml, sent)
        self._lists = lists

    async def send(self, timeout: float) -> Incoming:  # type: ignore[override]
        self._sent.append(self.xml)
        result = Element(ns.qname(ns.CLIENT, "iq"), {"type": "result"})
        query = self.xml.find(muc.ADMIN_QUERY)
        item = None if query is None else query.find(muc.ADMIN_ITEM)
        if self.xml.get("type") == "get" and item is not None:
            answer = SubElement(result, muc.ADMIN_QUERY)
            for jid in self._lists.get(item.get("affiliation", ""), []):
                SubElement(answer, muc.ADMIN_ITEM, {"jid": jid})
        return Incoming(result)


def own_presence(nick: str = "me") -> Incoming:
    presence = Element(ns.qname(ns.CLIENT, "presence"), {"from": f"{ROOM}/{nick}"})
    x = SubElement(presence, muc.USER_X)
    SubElement(x, muc.ITEM, {"jid": f"{ME}/phone", "affiliation": "owner", "role": "moderator"})
    SubElement(x, muc.STATUS, {"code": "110"})
    return Incoming(presence)


def occupant(nick: str, jid: str) -> Incoming:
    presence = Element(ns.qname(ns.CLIENT, "presence"), {"from": f"{ROOM}/{nick}"})
    x = SubElement(presence, muc.USER_X)
    SubElement(x, muc.ITEM, {"jid": f"{jid}/laptop", "affiliation": "member", "role": "x"})
    return Incoming(presence)


def group_message(nick: str, message_id: str, namespace: str = LEGACY) -> Incoming:
    message = Element(
        ns.qname(ns.CLIENT, "message"),
        {"from": f"{ROOM}/{nick}", "type": "groupchat", "id": message_id},
    )
    SubElement(message, f"{{{namespace}}}encrypted")
    return Incoming(message)


class FakeStream:
    """slixmpp's stanza factories; a join is answered with this account's own presence."""

    def __init__(self, lists: dict[str, list[str]]) -> None:
        self.sent: list[Element] = []
        self.lists = lists
        self.answer: list[Groups] = []

    def _stanza(self, tag: str, to: slixmpp.JID, kind: Any) -> Element:
        attributes = {"to": str(to)} | ({"type": str(kind)} if kind else {})
        return Element(ns.qname(ns.CLIENT, tag), attributes)

    def make_presence(self, *, pto: slixmpp.JID, ptype: Any = None) -> Any:
        stanza = Outgoing(self._stanza("presence", pto, ptype), self.sent)
        if ptype is None and self.answer:
            groups = self.answer[0]
            asyncio.get_running_loop().call_soon(
                lambda: asyncio.ensure_future(groups.on_room(own_presence()))
            )
        return stanza

    def make_message(self, mto: slixmpp.JID, *, mtype: Any = None) -> Any:
        return Outgoing(self._stanza("message", mto, mtype), self.sent)

    def make_iq(self, *, ito: slixmpp.JID, itype: Any) -> Any:
        return Iq(self._stanza("iq", ito, itype), self.sent, self.lists)


class FakeCrypto:
    """This connection's OMEMO: accounts in ``without_devices`` cannot be encrypted to."""

    def __init__(self) -> None:
        self.gate = CryptoGate(FakeStorage([]))
        self.without_devices: set[str] = set()
        self.encrypted_to: list[frozenset[str]] = []
        self.opened: Decrypted | Undecryptable | None = None
        self.decrypted_from: list[str] = []

    async def encrypt(
        self, recipients: Iterable[str], plaintext: dict[str, bytes], order: list[str]
    ) -> tuple[list[Any], list[Any]]:
        wanted = frozenset(recipients)
        self.encrypted_to.append(wanted)
        missing = wanted & self.without_devices
        if missing:
            raise omemo.NoEligibleDevices(frozenset(missing))
        return [], []

    async def decrypt(
        self, element: Element, sender: str, *, also: Iterable[str] = ()
    ) -> Decrypted | Undecryptable | None:
        self.decrypted_from.append(sender)
        return self.opened


class Setup:
    def __init__(self, *, connected: bool = True) -> None:
        self.stream = FakeStream({"owner": [ME], "member": [BOB, CAROL]})
        self.crypto = FakeCrypto()
        self.events: list[ClientEvent] = []
        self.refreshed: list[str] = []
        self.blocked: list[tuple[str, str | None, list[TextMessage]]] = []
        self.connected = connected
        self.groups = Groups(
            own=ME,
            timeout=2.0,
            omemo2=False,
            legacy=True,
            stream=self._stream,
            crypto=self._crypto,
            refresh=self._refresh,
            emit=self.events.append,
            block=self._block,
        )
        self.stream.answer.append(self.groups)

    def _stream(self) -> RoomStream:
        if not self.connected:
            raise NotConnected
        return self.stream

    def _crypto(self) -> FakeCrypto:
        if not self.connected:
            raise NotConnected
        return self.crypto

    async def _refresh(self, bare: str) -> None:
        self.refreshed.append(bare)

    async def _block(
        self, jid: str, *, report: str | None, text: str, attach: Sequence[TextMessage]
    ) -> None:
        self.blocked.append((jid, report, list(attach)))

    def messages(self) -> list[Element]:
        return [s for s in self.stream.sent if s.tag == ns.qname(ns.CLIENT, "message")]


async def test_joining_reads_the_member_list_and_refreshes_every_member_s_devices() -> None:
    s = Setup()
    state = await s.groups.join(ROOM, "me")
    assert state.joined
    assert state.recipients() == {BOB, CAROL}
    assert set(s.refreshed) == {BOB, CAROL}
    joined = [e for e in s.events if isinstance(e, GroupJoined)]
    assert joined == [GroupJoined(ROOM, "me", ((BOB, "member"), (CAROL, "member"), (ME, "owner")))]


async def test_a_message_goes_to_every_member_and_one_without_devices_is_reported() -> None:
    s = Setup()
    await s.groups.join(ROOM, "me")
    s.crypto.without_devices = {CAROL}
    message_id = await s.groups.send_text(ROOM, "hello")
    assert s.crypto.encrypted_to == [frozenset({BOB, CAROL}), frozenset({BOB})]
    assert EncryptionProblem(CAROL, None, "no device to encrypt to") in s.events
    [sent] = s.messages()
    assert (sent.get("to"), sent.get("type"), sent.get("id")) == (ROOM, "groupchat", message_id)
    assert sent.findtext(ns.qname(ns.CLIENT, "body")) == FALLBACK_BODY
    assert sent.find(f"{{{ns.HINTS}}}store") is not None
    # the room's copy of our own message is not for this device: no event, nothing decrypted
    before = len(s.events)
    await s.groups.on_message(group_message("me", message_id))
    assert s.crypto.decrypted_from == []
    assert len(s.events) == before


async def test_when_no_member_can_be_encrypted_to_nothing_is_sent() -> None:
    s = Setup()
    await s.groups.join(ROOM, "me")
    s.crypto.without_devices = {BOB, CAROL}
    with pytest.raises(ClientError, match="no member"):
        await s.groups.send_text(ROOM, "hello")
    assert s.messages() == []


async def test_a_member_removed_by_the_room_gets_nothing_sealed_afterwards() -> None:
    s = Setup()
    await s.groups.join(ROOM, "me")
    notice = Element(ns.qname(ns.CLIENT, "message"), {"from": ROOM})
    x = SubElement(notice, muc.USER_X)
    SubElement(x, muc.ITEM, {"jid": CAROL, "affiliation": "none"})
    await s.groups.on_room(Incoming(notice))
    assert GroupMemberRemoved(ROOM, CAROL, "removed") in s.events
    await s.groups.send_text(ROOM, "after")
    assert s.crypto.encrypted_to == [frozenset({BOB})]


async def test_a_group_message_is_decrypted_from_the_occupant_s_real_jid_with_its_flag() -> None:
    s = Setup()
    await s.groups.join(ROOM, "me")
    await s.groups.on_room(occupant("bobby", BOB))
    s.crypto.opened = Decrypted(b"hi all", 7, LEGACY, flagged=True)
    await s.groups.on_message(group_message("bobby", "m1"))
    assert s.crypto.decrypted_from == [BOB]
    s.crypto.opened = Undecryptable("no session")
    await s.groups.on_message(group_message("bobby", "m2", OMEMO2))
    assert s.events[-2:] == [
        GroupMessage(ROOM, "bobby", BOB, "hi all", "m1", 7, True),
        DecryptionFailed(f"{ROOM}/bobby", "m2", "no session"),
    ]


async def test_a_message_from_an_unknown_occupant_is_not_decrypted() -> None:
    s = Setup()
    await s.groups.join(ROOM, "me")
    await s.groups.on_message(group_message("stranger", "m1"))
    assert s.crypto.decrypted_from == []
    assert s.events[-1] == DecryptionFailed(f"{ROOM}/stranger", "m1", "unknown occupant")


async def test_a_report_names_the_member_s_real_jid_through_the_block_port() -> None:
    s = Setup()
    await s.groups.join(ROOM, "me")
    await s.groups.on_room(occupant("bobby", BOB))
    copy = GroupMessage(ROOM, "bobby", BOB, "spam!", "m1", 7, sent_at=1.0)
    await s.groups.report_member(ROOM, "bobby", attach=[copy])
    [(jid, report, attach)] = s.blocked
    assert (jid, report) == (BOB, "spam")
    assert attach == [TextMessage(f"{ROOM}/bobby", "spam!", "m1", 7, OMEMO2, sent_at=1.0)]
    with pytest.raises(ClientError):
        await s.groups.report_member(ROOM, "nobody")


async def test_a_refused_join_forgets_the_room() -> None:
    s = Setup()
    s.stream.answer.clear()  # the room answers with an error instead
    join = asyncio.ensure_future(s.groups.join(ROOM, "me"))
    await asyncio.sleep(0)
    error = Element(ns.qname(ns.CLIENT, "presence"), {"from": f"{ROOM}/me", "type": "error"})
    SubElement(SubElement(error, ns.qname(ns.CLIENT, "error")), f"{{{ns.STANZAS_ERR}}}forbidden")
    await s.groups.on_room(Incoming(error))
    with pytest.raises(ConsentError) as refused:
        await join
    assert refused.value.condition == "forbidden"
    with pytest.raises(ClientError):
        s.groups.room(ROOM)


async def test_before_connect_the_calls_raise_not_connected() -> None:
    s = Setup(connected=False)
    with pytest.raises(NotConnected):
        await s.groups.join(ROOM, "me")
    with pytest.raises(NotConnected):
        await s.groups.invite(ROOM, BOB)
    assert s.stream.sent == []
