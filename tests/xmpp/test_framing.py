"""The two framings as objects: what each writes, and what the parser makes of each."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from interlink.xmpp import ns
from interlink.xmpp.framing import STREAM_TAG, WS_CLOSE, WS_OPEN, Framing
from interlink.xmpp.parser import ElementReceived, StreamFooter, StreamHeader, StreamParser

TCP = Framing.TCP
WS = Framing.WEBSOCKET


def test_two_singletons() -> None:
    assert TCP is not WS
    assert (repr(TCP), repr(WS)) == ("Framing.TCP", "Framing.WEBSOCKET")
    assert (TCP.message_per_element, WS.message_per_element) == (False, True)
    assert (TCP.header_tag, WS.header_tag) == (STREAM_TAG, WS_OPEN)


@pytest.mark.parametrize(
    ("framing", "expected"),
    [
        (
            TCP,
            (
                "<?xml version='1.0'?><stream:stream xmlns=\"jabber:client\" "
                f'xmlns:stream="{ns.STREAM}" id="i1" from="a&amp;b" version="1.0" xml:lang="en">',
                "</stream:stream>",
                "<stream:features><x/></stream:features>",
                "jabber:client",
            ),
        ),
        (
            WS,
            (
                f'<open xmlns="{ns.FRAMING}" id="i1" from="a&amp;b" version="1.0" xml:lang="en"/>',
                f'<close xmlns="{ns.FRAMING}"/>',
                f'<stream:features xmlns:stream="{ns.STREAM}"><x/></stream:features>',
                None,
            ),
        ),
    ],
)
def test_what_each_framing_writes(
    framing: Framing, expected: tuple[str, str, str, str | None]
) -> None:
    header, footer, features, content_ns = expected
    assert framing.header(content_ns=ns.CLIENT, stream_id="i1", from_="a&b") == header
    assert framing.footer() == footer
    assert framing.stream_element("features", "<x/>") == features
    assert framing.content_ns(ns.CLIENT) == content_ns


def kinds(events: Sequence[object]) -> list[str]:
    return [type(ev).__name__ for ev in events]


def test_the_parser_reads_the_tcp_root_as_header_and_footer() -> None:
    parser = StreamParser(framing=TCP)
    events = parser.feed(
        TCP.header(content_ns=ns.CLIENT, stream_id="i", from_="hub.test").encode()
        + b"<presence/>"
        + TCP.footer().encode()
    )
    assert kinds(events) == ["StreamHeader", "ElementReceived", "StreamFooter"]
    header = events[0]
    assert isinstance(header, StreamHeader)
    assert header.tag == STREAM_TAG


def test_the_parser_reads_open_and_close_frames_as_header_and_footer() -> None:
    parser = StreamParser(framing=WS)
    opened = parser.feed_frame(
        WS.header(content_ns=ns.CLIENT, stream_id="i", from_="hub.test").encode()
    )
    presence = parser.feed_frame(b"<presence xmlns='jabber:client'/>")
    closed = parser.feed_frame(WS.footer().encode())
    assert isinstance(opened[0], StreamHeader)
    assert opened[0].tag == WS_OPEN
    assert isinstance(presence[0], ElementReceived)
    assert isinstance(closed[0], StreamFooter)


def test_open_and_close_mean_nothing_special_on_tcp() -> None:
    parser = StreamParser(framing=TCP)
    events = parser.feed(
        TCP.header(content_ns=ns.CLIENT, stream_id="i", from_="hub.test").encode()
        + WS.footer().encode()
    )
    assert kinds(events) == ["StreamHeader", "ElementReceived"]
    assert isinstance(events[1], ElementReceived)
    assert events[1].element.tag == WS_CLOSE
