"""The strict OMEMO 2 parser against twomemo's schema-validating one (the reference): everything
the reference refuses is refused, and whatever both accept gives the same message."""

from __future__ import annotations

import base64
import random
from collections import Counter
from typing import Any
from xml.etree.ElementTree import Element, SubElement

import omemo
import pytest
import twomemo.etree
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twomemo.twomemo import EncryptedKeyMaterialImpl, KeyExchangeImpl
from twomemo.twomemo_pb2 import OMEMOAuthenticatedMessage, OMEMOKeyExchange, OMEMOMessage

from interlink.client.omemo2_parse import MalformedEncrypted, parse_encrypted

NS = "{urn:xmpp:omemo:2}"
XSI = "{http://www.w3.org/2001/XMLSchema-instance}"
SENDER = "alice@hub.test"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def authenticated(n: int) -> bytes:
    message = OMEMOMessage(n=n, pn=3, dh_pub=b"\x05" * 32, ciphertext=b"\x10" * 48)
    outer = OMEMOAuthenticatedMessage(mac=b"\x07" * 16, message=message.SerializeToString())
    return bytes(outer.SerializeToString())


def key_exchange(n: int) -> bytes:
    return bytes(
        OMEMOKeyExchange(
            pk_id=42,
            spk_id=7,
            ik=b"\x01" * 32,
            ek=b"\x02" * 32,
            message=OMEMOAuthenticatedMessage.FromString(authenticated(n)),
        ).SerializeToString()
    )


AUTH = b64(authenticated(1))
KEX = b64(key_exchange(2))


def reference(element: Element) -> omemo.Message | None:
    try:
        return twomemo.etree.parse_message(element, SENDER)
    except Exception:  # xmlschema's errors, ValueError, TypeError: all mean "refused"
        return None


def ours(element: Element) -> omemo.Message | None:
    try:
        return parse_encrypted(element, SENDER)
    except MalformedEncrypted:
        return None


def summary(message: omemo.Message) -> tuple[Any, ...]:
    """What decryption uses of a message, comparable across parsers."""
    keys: Counter[tuple[Any, ...]] = Counter()
    for material, kex in message.keys:
        assert isinstance(material, EncryptedKeyMaterialImpl)
        exchange = None
        if kex is not None:
            assert isinstance(kex, KeyExchangeImpl)
            exchange = (kex.header, kex.signed_pre_key_id, kex.pre_key_id)
        keys[(material.bare_jid, material.device_id, material.encrypted_message, exchange)] += 1
    content = message.content
    assert isinstance(content, twomemo.twomemo.ContentImpl)
    return (message.namespace, message.bare_jid, message.device_id, content.ciphertext, keys)


def element(
    tag: str, attrib: dict[str, str] | None = None, text: str | None = None, *children: Element
) -> Element:
    el = Element(tag, attrib or {})
    el.text = text
    el.extend(children)
    return el


def message(
    *,
    sid: str | None = "7",
    keys: list[Element] | None = None,
    payload: str | None = "AAECAw==",
) -> Element:
    if keys is None:
        keys = [element(NS + "keys", {"jid": "bob@hub.test"}, None, key())]
    header_attrib = {} if sid is None else {"sid": sid}
    root = element(NS + "encrypted", {}, None, element(NS + "header", header_attrib, None, *keys))
    if payload is not None:
        SubElement(root, NS + "payload").text = payload
    return root


def key(rid: str = "1", text: str | None = AUTH, kex: str | None = None) -> Element:
    attrib = {"rid": rid}
    if kex is not None:
        attrib["kex"] = kex
    return element(NS + "key", attrib, text)


# -- tables -------------------------------------------------------------------------------------
ACCEPTED = {
    "plain": message(),
    "no payload (an empty OMEMO message)": message(payload=None),
    "key exchange": message(keys=[element(NS + "keys", {"jid": "b@h"}, None, key(kex="true"))]),
    "kex=1": message(keys=[element(NS + "keys", {"jid": "b@h"}, None, key(text=KEX, kex="1"))]),
    "kex=false": message(keys=[element(NS + "keys", {"jid": "b@h"}, None, key(kex="false"))]),
    "several recipients and devices": message(
        keys=[
            element(NS + "keys", {"jid": "b@h"}, None, key("1"), key("2", KEX, "true")),
            element(NS + "keys", {"jid": "a@h"}, None, key("4294967295")),
        ]
    ),
    "whitespace between elements": element(
        NS + "encrypted",
        {},
        "\n  ",
        element(NS + "payload", {}, "AAECAw=="),
        element(
            NS + "header",
            {"sid": "0"},
            "\n\t",
            element(NS + "keys", {"jid": "b@h"}, "\r\n", key()),
        ),
    ),
}
ACCEPTED["kex=1"][0][0][0].text = KEX
ACCEPTED["key exchange"][0][0][0].text = KEX


@pytest.mark.parametrize("name", sorted(ACCEPTED))
def test_what_both_accept_parses_the_same(name: str) -> None:
    el = ACCEPTED[name]
    mine, theirs = ours(el), reference(el)
    assert mine is not None
    assert theirs is not None
    assert summary(mine) == summary(theirs)


REFUSED_BY_BOTH = {
    "wrong namespace": element("{urn:xmpp:omemo:1}encrypted", {}, None, *message()),
    "no header": element(NS + "encrypted", {}, None, element(NS + "payload", {}, "AAAA")),
    "two headers": element(NS + "encrypted", {}, None, *message(), *message()),
    "header without keys": message(keys=[]),
    "keys without key": message(keys=[element(NS + "keys", {"jid": "b@h"})]),
    "keys without jid": message(keys=[element(NS + "keys", {}, None, key())]),
    "key without rid": message(
        keys=[element(NS + "keys", {"jid": "b@h"}, None, element(NS + "key", {}, AUTH))]
    ),
    "rid too large": message(keys=[element(NS + "keys", {"jid": "b@h"}, None, key("4294967296"))]),
    "negative rid": message(keys=[element(NS + "keys", {"jid": "b@h"}, None, key("-1"))]),
    "kex=yes": message(keys=[element(NS + "keys", {"jid": "b@h"}, None, key(kex="yes"))]),
    "text in encrypted": element(NS + "encrypted", {}, "hello", *message()),
    "unknown child": element(NS + "encrypted", {}, None, *message(), element(NS + "extra")),
    "not base64": message(payload="not base64!"),
    "padding bits not zero": message(payload="QR=="),
    "padding too short": message(payload="QQ="),
    "padding bits not zero, one =": message(payload="QUJ="),
    "empty key": message(keys=[element(NS + "keys", {"jid": "b@h"}, None, key(text=None))]),
    "no sid": message(sid=None),
    "key is not a protobuf": message(
        keys=[element(NS + "keys", {"jid": "b@h"}, None, key(text=b64(b"\xff" * 9)))]
    ),
    "attribute on encrypted": element(NS + "encrypted", {"id": "1"}, None, *message()),
}


@pytest.mark.parametrize("name", sorted(REFUSED_BY_BOTH))
def test_what_the_schema_refuses_is_refused(name: str) -> None:
    el = REFUSED_BY_BOTH[name]
    assert reference(el) is None
    assert ours(el) is None


# The schema accepts these, but no implementation sends them; refusing is the safe side.
STRICTER = {
    "sid with a plus sign": message(sid="+7"),
    "sid with spaces": message(sid=" 7 "),
    "base64 with a space": message(payload="AAEC Aw=="),
    "base64 with a line break": message(payload="AAEC\nAw=="),
    "base64 with a tab": message(payload="AAEC\tAw=="),
    "empty payload (parsed XML gives None, which both refuse)": message(payload=""),
    "kex with spaces": message(keys=[element(NS + "keys", {"jid": "b@h"}, None, key(kex=" true"))]),
}


@pytest.mark.parametrize("name", sorted(STRICTER))
def test_lenient_forms_of_the_schema_are_refused(name: str) -> None:
    assert reference(STRICTER[name]) is not None  # else it belongs in REFUSED_BY_BOTH
    assert ours(STRICTER[name]) is None


# -- property: random trees from pools of valid and invalid pieces --------------------------------
# Each slot takes a valid piece most of the time (one in ~25 is a bad one), so that many trees are
# one or two changes away from a valid message: that is where a hand-written check would slip.
# Hypothesis supplies the seeds; the trees come from random.Random, because hypothesis's own
# choices (and its st.randoms()) favour the rare branches: 5 of 2,000 trees were valid.
SPACE = ([None, "", "\n  ", " \t\r\n"], ["x", "\x0b", "\u00a0", "\u3000", "\x00", "\x85"])
INTS: tuple[list[str], list[str | None]] = (
    ["1", "2", "7", "0", "4294967295"],
    ["4294967296", "007", " 5", "5 ", "+5", "-1", ""],
)
INTS[1].extend(["a", "\u0663", "\uff11", "1" * 11, "0" * 12 + "1", "1_000", None])
B64 = ([AUTH, KEX], [None, "", " ", "QQ==", "QR==", "QQ=", "QQ", "AAA", "AAAA", "AAEC Aw=="])
B64[1].extend(
    ["QUJ=", "AAECAx==", AUTH + "\n", " " + AUTH, AUTH[:-4], AUTH + "=", "A===", "!!!!", "AAECAw=="]
)
B64[1].extend([b64(b"\xff" * 9), b64(authenticated(5))[:-1] + "=", AUTH.replace("A", "\u0410")])
KEXES = ([None], ["true", "1", "false", "0", " true", "TRUE", "yes", ""])
JIDS = (["bob@hub.test", "b@h", "\u00e9@h"], ["", " ", None])
EXTRA_ATTRIBUTES = ["id", "sid", "rid", "jid", "kex", XSI + "type", XSI + "nil", "{x}y"]
EXTRA_ATTRIBUTES += ["{http://www.w3.org/XML/1998/namespace}lang"]
EXTRA_VALUES = ["1", "true", "", "xs:string", "en"]


class Trees:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def rarely(self, rate: float = 0.04) -> bool:
        return self.rng.random() < rate

    def pick(self, pool: tuple[list[Any], list[Any]], rate: float = 0.04) -> Any:
        return self.rng.choice(pool[1] if self.rarely(rate) else pool[0])

    def tag(self, valid: str, *others: str) -> str:
        return self.rng.choice(others) if self.rarely() else valid

    def attributes(self, **base: str | None) -> dict[str, str]:
        attrib = {name: value for name, value in base.items() if value is not None}
        if self.rarely():
            attrib[self.rng.choice(EXTRA_ATTRIBUTES)] = self.rng.choice(EXTRA_VALUES)
        return attrib

    def texts(self, el: Element) -> Element:
        el.text, el.tail = self.pick(SPACE), self.pick(SPACE)
        return el

    def leaf(self, tag: str, attrib: dict[str, str], text: str | None) -> Element:
        el = Element(tag, attrib)
        el.text, el.tail = text, self.pick(SPACE)
        if self.rarely():
            SubElement(el, NS + "key", {"rid": "1"}).text = AUTH
        return el

    def key(self) -> Element:
        kex = self.pick(KEXES)
        text = self.pick(B64, 0.5) if self.rarely(0.1) else (KEX if kex in ("true", "1") else AUTH)
        tag = self.tag(NS + "key", "key", NS + "keys", NS + "payload")
        return self.leaf(tag, self.attributes(rid=self.pick(INTS), kex=kex), text)

    def keys(self) -> Element:
        tag = self.tag(NS + "keys", NS + "key", "{urn:xmpp:omemo:1}keys")
        el = self.texts(Element(tag, self.attributes(jid=self.pick(JIDS))))
        el.extend(self.key() for _ in range(self.count()))
        return el

    def count(self) -> int:
        return self.rng.choice([0, 1, 1, 1, 2, 2, 3]) if self.rarely() else self.rng.choice([1, 2])

    def header(self) -> Element:
        tag = self.tag(NS + "header", "header", NS + "keys")
        el = self.texts(Element(tag, self.attributes(sid=self.pick(INTS))))
        el.extend(self.keys() for _ in range(self.count()))
        return el

    def payload(self) -> Element:
        return self.leaf(
            self.tag(NS + "payload", "payload"), self.attributes(), self.pick(B64, 0.3)
        )

    def encrypted(self) -> Element:
        tag = self.tag(NS + "encrypted", "encrypted", "{urn:xmpp:omemo:1}encrypted")
        root = Element(tag, self.attributes())
        root.text = self.pick(SPACE)
        parts = [self.header] + ([self.payload] if self.rng.random() < 0.7 else [])
        if self.rarely():
            parts.append(self.rng.choice([self.header, self.payload, lambda: Element(NS + "x")]))
        if self.rarely():
            parts.pop(0)
        self.rng.shuffle(parts)
        root.extend(part() for part in parts)
        return root


encrypted_elements = st.integers(0, 2**64).map(lambda seed: Trees(random.Random(seed)).encrypted())


@settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(encrypted_elements)
def test_never_accepts_what_twomemo_refuses(el: Element) -> None:
    mine = ours(el)  # any exception other than MalformedEncrypted fails the test
    if mine is None:
        return
    theirs = reference(el)
    assert theirs is not None, "accepted what twomemo's schema-validating parser refuses"
    assert summary(mine) == summary(theirs)


def test_the_generator_reaches_both_sides() -> None:
    """The property above is not vacuous: the random trees are often valid, and often not."""
    trees = Trees(random.Random(1))
    outcomes = Counter(ours(trees.encrypted()) is not None for _ in range(500))
    assert outcomes[True] >= 100
    assert outcomes[False] >= 100
