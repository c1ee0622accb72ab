"""``parse_fragment`` reuses one restricted parser per thread: what one fragment is can never
change how the next one is read."""

from __future__ import annotations

import threading
from xml.etree.ElementTree import Element

import pytest

from interlink.xmpp import xml
from interlink.xmpp.parser import ElementReceived, Framing, StreamParser
from interlink.xmpp.xml import parse_fragment, serialize


def fresh(text: str) -> Element:
    """What a parser of its own makes of ``text``."""
    events = StreamParser(framing=Framing.WEBSOCKET).feed_frame(text.encode())
    assert len(events) == 1
    assert isinstance(events[0], ElementReceived)
    return events[0].element


FRAGMENTS = [
    "<x:a xmlns:x='urn:one'><x:b/></x:a>",
    "<a/>",  # no namespace of its own: urn:one must not leak into it
    "<b xmlns='urn:two'><c>t &amp; u</c></b>",
    "<c/>",
    "<envelope xmlns='urn:xmpp:sce:1'><content><body xmlns='jabber:client'>hi</body></content>"
    "<rpad>xx</rpad></envelope>",
    "<y:d xmlns:y='urn:three' y:attr='v'/>",
    "<d attr='plain'/>",
]


def test_a_reused_parser_reads_each_fragment_as_a_parser_of_its_own_would() -> None:
    for _ in range(3):
        for text in FRAGMENTS:
            assert serialize(parse_fragment(text)) == serialize(fresh(text))


@pytest.mark.parametrize(
    "bad",
    [
        "<a>",  # unclosed
        "<a/><b/>",  # two elements
        "<!DOCTYPE a><a/>",  # restricted XML
        "<a>&custom;</a>",  # undefined entity
        "</interlink-websocket-frames>",  # closing the parser's own root
        "</interlink-websocket-frames><interlink-websocket-frames>",
        "",
        "   ",
    ],
)
def test_a_bad_fragment_is_refused_and_the_next_is_read_normally(bad: str) -> None:
    parse_fragment("<warm/>")
    with pytest.raises(ValueError, match="not one well-formed element"):
        parse_fragment(bad)
    for text in FRAGMENTS:
        assert serialize(parse_fragment(text)) == serialize(fresh(text))


def test_trailing_input_after_the_element_does_not_reach_the_next_fragment() -> None:
    assert parse_fragment("<a/><").tag == "a"  # as a parser of its own reads it
    assert parse_fragment("<b/>").tag == "b"
    assert parse_fragment("<a/><c").tag == "a"
    assert parse_fragment("<envelope xmlns='urn:x'/>").tag == "{urn:x}envelope"
    parse_fragment("<warm/>")
    assert getattr(xml._fragments, "parser", None) is not None  # reused while clean


def test_each_thread_has_its_own_parser() -> None:
    results: list[str] = []

    def work() -> None:
        for text in FRAGMENTS * 20:
            results.append(serialize(parse_fragment(text)))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count(serialize(fresh(FRAGMENTS[1]))) == 80
    assert len(results) == 4 * 20 * len(FRAGMENTS)
