"""XEP-0363 slot requests over XMPP: the slot, the §5 errors, and the disco#info announcement."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from xml.etree.ElementTree import Element

import pytest

from interlink.errors import StanzaError, StanzaErrorCondition
from interlink.media import MediaLimits
from interlink.media.upload import (
    NS,
    UploadService,
    anyone,
    disco_features,
    disco_form,
    disco_identity,
)
from interlink.xmpp import ns
from interlink.xmpp.forms import read_form
from interlink.xmpp.jid import JID
from interlink.xmpp.stanza import Iq, IqType, Stanza, parse_stanza, to_xml
from interlink.xmpp.xml import parse_fragment
from tests.media.mediakit import body, media_kit

BASE = "https://hub.test:5443"
HUB = JID.parse("hub.test")
ALICE = JID.parse("alice@hub.test/phone")
STANZAS = ns.STANZAS_ERR


@dataclass
class FakeSession:
    jid: JID
    sent: list[Stanza] = field(default_factory=list)

    def deliver(self, stanza: Stanza) -> None:
        # Through the wire format and back, as a client would read it.
        self.sent.append(parse_stanza(parse_fragment(to_xml(stanza, None))))


def request(filename: str = "a.jpg", size: str = "1000", ctype: str | None = None) -> Iq:
    attrs = {"filename": filename, "size": size}
    if ctype is not None:
        attrs["content-type"] = ctype
    return Iq(HUB, ALICE, "r1", None, (Element(ns.qname(NS, "request"), attrs),), IqType.GET)


def q(local: str) -> str:
    return ns.qname(NS, local)


def only_error(session: FakeSession) -> Element:
    (reply,) = session.sent
    assert reply.type is IqType.ERROR
    assert reply.to == ALICE
    assert reply.id == "r1"
    (error,) = reply.payload
    return error


async def test_slot_granted(tmp_path: Path) -> None:
    async with media_kit(tmp_path) as kit:
        service = UploadService(kit.store, BASE + "/", may_upload=anyone)
        session = FakeSession(ALICE)
        await service.handle_iq(session, request("très joli.jpg", "1000", "image/jpeg"))
        (reply,) = session.sent
        assert reply.type is IqType.RESULT
        assert reply.to == ALICE
        assert reply.from_ == HUB
        (slot,) = reply.payload
        assert slot.tag == q("slot")
        put = slot.find(q("put"))
        get = slot.find(q("get"))
        assert put is not None
        assert get is not None
        put_url = put.get("url", "")
        get_url = get.get("url", "")
        assert put_url.startswith(BASE + "/media/")
        assert get_url.startswith(BASE + "/media/")
        assert put_url.endswith("/tr%C3%A8s%20joli.jpg")
        assert put_url != get_url
        (header,) = put.findall(q("header"))
        assert header.get("name") == "Authorization"
        assert (header.text or "").startswith("Bearer ")
        usage = await kit.store.usage("alice@hub.test")  # the bare JID owns the slot
        assert usage.bytes == 1000
        assert usage.open_slots == 1
        # The token in the header uploads to the PUT URL.
        slot_id = put_url.split("/")[-2]

        record = await kit.store.upload(
            slot_id,
            "très joli.jpg",
            (header.text or "").removeprefix("Bearer "),
            body(b"x" * 1000),
            content_type="image/jpeg",
        )
        assert get_url.split("/")[-2] == record.file_id


async def test_file_too_large(tmp_path: Path) -> None:
    async with media_kit(tmp_path, MediaLimits(max_file_size=20000)) as kit:
        service = UploadService(kit.store, BASE, may_upload=anyone)
        session = FakeSession(ALICE)
        await service.handle_iq(session, request(size="20001"))
        error = only_error(session)
        assert error.get("type") == "modify"
        assert error.find(ns.qname(STANZAS, "not-acceptable")) is not None
        text = error.findtext(ns.qname(STANZAS, "text")) or ""
        assert "20000" in text
        assert error.findtext(f"{q('file-too-large')}/{q('max-file-size')}") == "20000"
        # At the limit it is granted.
        session.sent.clear()
        await service.handle_iq(session, request(size="20000"))
        assert session.sent[0].type is IqType.RESULT


async def test_refused_content_type(tmp_path: Path) -> None:
    async with media_kit(tmp_path) as kit:
        session = FakeSession(ALICE)
        await UploadService(kit.store, BASE, may_upload=anyone).handle_iq(
            session, request(ctype="text/html")
        )
        error = only_error(session)
        assert error.find(ns.qname(STANZAS, "not-acceptable")) is not None
        assert error.find(q("file-too-large")) is None
        assert "text/html" in (error.findtext(ns.qname(STANZAS, "text")) or "")


@pytest.mark.parametrize(
    ("limits", "first", "text"),
    [
        (MediaLimits(quota_bytes=1500, max_file_size=1000), "1000", "Quota"),
        (MediaLimits(max_open_slots=1), "1", "slots are open"),
    ],
)
async def test_quota_and_open_slots_are_resource_constraint(
    tmp_path: Path, limits: MediaLimits, first: str, text: str
) -> None:
    async with media_kit(tmp_path, limits) as kit:
        service = UploadService(kit.store, BASE, may_upload=anyone)
        session = FakeSession(ALICE)
        await service.handle_iq(session, request(size=first))
        session.sent.clear()
        await service.handle_iq(session, request(size="501"))
        error = only_error(session)
        assert error.get("type") == "wait"
        assert error.find(ns.qname(STANZAS, "resource-constraint")) is not None
        assert text in (error.findtext(ns.qname(STANZAS, "text")) or "")


async def test_not_allowed_for_others(tmp_path: Path) -> None:
    async with media_kit(tmp_path) as kit:
        service = UploadService(kit.store, BASE, may_upload=lambda jid: jid.domain == "hub.test")
        stranger = FakeSession(JID.parse("x@examplechat.interop.hub.test/a"))
        iq = request()
        await service.handle_iq(stranger, Iq(HUB, stranger.jid, "r1", None, iq.payload, iq.type))
        (reply,) = stranger.sent
        (error,) = reply.payload
        assert error.get("type") == "cancel"
        assert error.find(ns.qname(STANZAS, "not-allowed")) is not None
        assert (await kit.store.usage(str(stranger.jid.bare))).open_slots == 0


@pytest.mark.parametrize(
    "iq",
    [
        request(size="ten"),
        request(size="-1"),
        request(size=""),
        request(size="1" * 21),
        Iq(HUB, ALICE, "r1", None, (Element(ns.qname(NS, "other")),), IqType.GET),
        Iq(HUB, ALICE, "r1", None, request().payload, IqType.SET),
    ],
)
async def test_malformed_requests_raise_bad_request(tmp_path: Path, iq: Iq) -> None:
    async with media_kit(tmp_path) as kit:
        session = FakeSession(ALICE)
        with pytest.raises(StanzaError) as exc:
            await UploadService(kit.store, BASE, may_upload=anyone).handle_iq(session, iq)
        assert exc.value.condition is StanzaErrorCondition.BAD_REQUEST
        assert session.sent == []


async def test_bad_filename_is_bad_request(tmp_path: Path) -> None:
    async with media_kit(tmp_path) as kit:
        session = FakeSession(ALICE)
        await UploadService(kit.store, BASE, may_upload=anyone).handle_iq(
            session, request(filename="../x")
        )
        error = only_error(session)
        assert error.find(ns.qname(STANZAS, "bad-request")) is not None


async def test_disco_announcement(tmp_path: Path) -> None:
    assert disco_features() == ("urn:xmpp:http:upload:0",)
    identity = disco_identity()
    assert (identity.get("category"), identity.get("type")) == ("store", "file")
    form = disco_form(1234)
    assert form.get("type") == "result"
    assert read_form(form) == {"FORM_TYPE": [NS], "max-file-size": ["1234"]}
    async with media_kit(tmp_path, MediaLimits(max_file_size=99)) as kit:
        extension = UploadService(kit.store, BASE, may_upload=anyone).disco_extension()
        assert read_form(extension)["max-file-size"] == ["99"]
