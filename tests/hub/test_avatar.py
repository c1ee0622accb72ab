"""XEP-0153 vCard-based avatars: the hash of the stored photo on every available presence of
the account, the client's value replaced only when wrong or absent, an empty ``<photo/>`` without
a photo, and presence again when the vCard's photo changes."""

from __future__ import annotations

import base64
import hashlib
from xml.etree.ElementTree import Element

from interlink.xmpp.ext import vcard as wire
from interlink.xmpp.stanza import Presence
from interlink.xmpp.xml import parse_fragment
from tests.hub.test_pep import iq
from tests.hub.test_vcard import vcard
from tests.hubkit import DOMAIN, Client, running_hub

UPDATE = "vcard-temp:x:update"
PNG = b"\x89PNG\r\n\x1a\n-an-image"
DIGEST = hashlib.sha1(PNG).hexdigest()  # noqa: S324 (the hash XEP-0153 names)
PHOTO = f"<PHOTO><TYPE>image/png</TYPE><BINVAL>{base64.b64encode(PNG).decode()}</BINVAL></PHOTO>"


def photos(client: Client, sender: str) -> list[str | None]:
    """The photo hash of each presence ``client`` got from ``sender`` (None: no x element)."""
    out: list[str | None] = []
    for s in client.stanzas():
        if isinstance(s, Presence) and str(s.from_) == sender:
            x = s.find(f"{{{UPDATE}}}x")
            out.append(None if x is None else (x.findtext(f"{{{UPDATE}}}photo") or ""))
    return out


def test_the_hash_is_of_the_decoded_binval() -> None:
    card = parse_fragment(vcard(PHOTO.replace("<BINVAL>", "<BINVAL>\n  ")))
    assert wire.photo_hash(card) == DIGEST
    assert wire.photo_hash(parse_fragment(vcard("<FN>x</FN>"))) == ""
    assert wire.photo_hash(parse_fragment(vcard("<PHOTO><BINVAL>!!</BINVAL></PHOTO>"))) == ""
    ext = "<PHOTO><EXTVAL>https://example.org/a.png</EXTVAL></PHOTO>"
    assert wire.photo_hash(parse_fragment(vcard(ext))) == ""


def test_a_correct_client_value_is_kept_and_anything_else_replaced() -> None:
    right = (wire.update_element(DIGEST),)
    assert wire.with_update(right, DIGEST) is right
    status = Element("{jabber:client}status")
    for given in (
        (status,),  # absent
        (status, wire.update_element("00" * 20)),  # wrong
        (Element(f"{{{UPDATE}}}x"),),  # "not ready" (no photo element)
        (wire.update_element(DIGEST), wire.update_element(DIGEST)),  # two
    ):
        out = wire.with_update(given, DIGEST)
        updates = [el for el in out if el.tag == f"{{{UPDATE}}}x"]
        assert len(updates) == 1
        assert updates[0].findtext(f"{{{UPDATE}}}photo") == DIGEST
    empty = wire.with_update((status,), "")[-1]
    photo = empty.find(f"{{{UPDATE}}}photo")
    assert photo is not None
    assert photo.text is None  # <photo/>: no avatar


async def test_presence_carries_the_hash_and_follows_vcard_changes() -> None:
    async with running_hub() as kit:
        await kit.account("alice")
        await kit.account("bob")
        alice = await kit.connect("alice", "a", available=False)
        bob = await kit.connect("bob", "b")
        await bob.send(f"<presence xmlns='jabber:client' to='alice@{DOMAIN}' type='subscribe'/>")
        await alice.send(f"<presence xmlns='jabber:client' to='bob@{DOMAIN}' type='subscribed'/>")
        await iq(alice, vcard("<FN>Alice</FN>" + PHOTO))
        bob.take()
        # the client claims a stale hash: the hub's value goes out instead
        await alice.send(
            f"<presence xmlns='jabber:client'><x xmlns='{UPDATE}'><photo>{'ab' * 20}</photo></x>"
            "</presence>"
        )
        assert photos(bob, f"alice@{DOMAIN}/a") == [DIGEST]
        assert photos(alice, f"alice@{DOMAIN}/a") == [DIGEST]  # its own presence, too
        # the photo is removed: presence again, with <photo/>
        await iq(alice, vcard("<FN>Alice</FN>"))
        assert photos(bob, f"alice@{DOMAIN}/a") == [""]
        # a vCard change that keeps the photo (and its hash) sends nothing
        await iq(alice, vcard("<FN>Alice Liddell</FN>"))
        assert photos(bob, f"alice@{DOMAIN}/a") == []
        # a new session of the account loads the hash from the stored vCard
        await iq(alice, vcard(PHOTO))
        bob.take()
        await kit.connect("alice", "c")
        assert photos(bob, f"alice@{DOMAIN}/c") == [DIGEST]


async def test_an_account_without_vcard_advertises_no_avatar() -> None:
    async with running_hub() as kit:
        await kit.account("alice")
        alice = await kit.connect("alice", "a")
        assert photos(alice, f"alice@{DOMAIN}/a") == [""]
