"""The restricted, incremental XML stream parser: split invariance, restricted XML, limits."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from interlink.errors import StreamErrorCondition
from interlink.xmpp.parser import (
    ElementReceived,
    Framing,
    ParseFailed,
    ParserEvent,
    StreamFooter,
    StreamHeader,
    StreamParser,
    XmlLimits,
)
from interlink.xmpp.xml import serialize

HEADER = (
    b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
    b"xmlns:stream='http://etherx.jabber.org/streams' to='hub.test' version='1.0'>"
)
STANZAS = (
    b"<message to='a@hub.test' type='chat' id='1'><body>h\xc3\xa9llo &amp; &lt;3</body>"
    b"<x xmlns='urn:example'><y a='1' b=\"2\"/></x></message>"
    b"  \n<presence><priority>5</priority></presence>"
    b"<iq type='get' id='p'><ping xmlns='urn:xmpp:ping'/></iq>"
    b"<message><body><![CDATA[<not a tag>]]></body></message>"
)
FOOTER = b"</stream:stream>"
DOCUMENT = HEADER + STANZAS + FOOTER


def describe(events: list[ParserEvent]) -> list[str]:
    out = []
    for ev in events:
        if isinstance(ev, StreamHeader):
            out.append(f"header {ev.tag} {sorted(ev.attrs.items())}")
        elif isinstance(ev, ElementReceived):
            out.append("element " + serialize(ev.element, "jabber:client"))
        elif isinstance(ev, StreamFooter):
            out.append("footer")
        else:
            out.append(f"error {ev.error.condition}")
    return out


def feed_in_pieces(data: bytes, cuts: list[int], limits: XmlLimits | None = None) -> list[str]:
    parser = StreamParser(limits)
    events: list[ParserEvent] = []
    start = 0
    for cut in [*sorted(cuts), len(data)]:
        events.extend(parser.feed(data[start:cut]))
        start = cut
    return describe(events)


def test_whole_document_events() -> None:
    events = feed_in_pieces(DOCUMENT, [])
    assert events[0].startswith("header {http://etherx.jabber.org/streams}stream")
    assert events[1] == (
        'element <message to="a@hub.test" type="chat" id="1"><body>héllo &amp; &lt;3</body>'
        '<x xmlns="urn:example"><y a="1" b="2"/></x></message>'
    )
    assert events[2] == "element <presence><priority>5</priority></presence>"
    assert events[3] == 'element <iq type="get" id="p"><ping xmlns="urn:xmpp:ping"/></iq>'
    assert events[4] == "element <message><body>&lt;not a tag&gt;</body></message>"
    assert events[5:] == ["footer"]


def test_every_single_split_point_gives_the_same_events() -> None:
    expected = feed_in_pieces(DOCUMENT, [])
    for cut in range(1, len(DOCUMENT)):
        assert feed_in_pieces(DOCUMENT, [cut]) == expected, cut


def test_byte_at_a_time_gives_the_same_events() -> None:
    assert feed_in_pieces(DOCUMENT, list(range(1, len(DOCUMENT)))) == feed_in_pieces(DOCUMENT, [])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=len(DOCUMENT) - 1), max_size=20))
def test_any_split_gives_the_same_events(cuts: list[int]) -> None:
    assert feed_in_pieces(DOCUMENT, cuts) == feed_in_pieces(DOCUMENT, [])


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_crash(garbage: bytes) -> None:
    parser = StreamParser()
    events = parser.feed(HEADER) + parser.feed(garbage)
    for ev in events:
        assert isinstance(ev, StreamHeader | ElementReceived | StreamFooter | ParseFailed)


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=200))
def test_text_round_trips_through_escape(text: str) -> None:
    from interlink.xmpp.xml import element

    legal = "".join(
        c for c in text if c in "\t\n" or (" " <= c <= "\ud7ff") or ("\ue000" <= c <= "\ufffd")
    )
    el = element(
        "{jabber:client}message", {"id": legal}, [element("{jabber:client}body", text=legal)]
    )
    parser = StreamParser()
    events = parser.feed(HEADER + serialize(el, "jabber:client").encode())
    received = [e for e in events if isinstance(e, ElementReceived)]
    assert len(received) == 1, events
    assert received[0].element.get("id") == legal.replace("\r", "\n")
    assert (received[0].element[0].text or "") == legal.replace("\r", "\n")


BILLION_LAUGHS = (
    b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    b'<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">'
    b'<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>'
    b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>"
    b"<message><body>&lol3;</body></message>"
)


@pytest.mark.parametrize(
    ("name", "data", "condition"),
    [
        ("billion laughs", BILLION_LAUGHS, StreamErrorCondition.RESTRICTED_XML),
        (
            "external entity",
            b'<?xml version="1.0"?><!DOCTYPE foo [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
            + HEADER[21:]
            + b"<message><body>&xxe;</body></message>",
            StreamErrorCondition.RESTRICTED_XML,
        ),
        (
            "internal DTD subset",
            b"<!DOCTYPE stream:stream [<!ELEMENT message ANY>]>" + HEADER[21:],
            StreamErrorCondition.RESTRICTED_XML,
        ),
        ("comment", HEADER + b"<!-- hi -->", StreamErrorCondition.RESTRICTED_XML),
        (
            "comment in stanza",
            HEADER + b"<message><!-- x --></message>",
            StreamErrorCondition.RESTRICTED_XML,
        ),
        (
            "processing instruction",
            HEADER + b"<?php echo 1; ?>",
            StreamErrorCondition.RESTRICTED_XML,
        ),
        (
            "undeclared entity",
            HEADER + b"<message><body>&nbsp;</body></message>",
            StreamErrorCondition.RESTRICTED_XML,
        ),
        (
            "invalid UTF-8",
            HEADER + b"<message><body>\xff\xfe</body></message>",
            StreamErrorCondition.NOT_WELL_FORMED,
        ),
        (
            "overlong UTF-8",
            HEADER + b"<message><body>\xc0\xaf</body></message>",
            StreamErrorCondition.NOT_WELL_FORMED,
        ),
        (
            "NUL byte",
            HEADER + b"<message><body>\x00</body></message>",
            StreamErrorCondition.NOT_WELL_FORMED,
        ),
        (
            "control character",
            HEADER + b"<message><body>\x01</body></message>",
            StreamErrorCondition.NOT_WELL_FORMED,
        ),
        (
            "character reference to NUL",
            HEADER + b"<message><body>&#0;</body></message>",
            StreamErrorCondition.NOT_WELL_FORMED,
        ),
        (
            "mismatched tags",
            HEADER + b"<message><body></message>",
            StreamErrorCondition.NOT_WELL_FORMED,
        ),
        ("unbound prefix", HEADER + b"<foo:message/>", StreamErrorCondition.NOT_WELL_FORMED),
        ("text between stanzas", HEADER + b"hello", StreamErrorCondition.BAD_FORMAT),
        (
            "non-UTF-8 declaration",
            b"<?xml version='1.0' encoding='ISO-8859-1'?>" + HEADER[21:],
            StreamErrorCondition.UNSUPPORTED_ENCODING,
        ),
        ("XML 1.1", b"<?xml version='1.1'?>" + HEADER[21:], StreamErrorCondition.NOT_WELL_FORMED),
    ],
)
def test_hostile_input_gives_the_right_error(
    name: str, data: bytes, condition: StreamErrorCondition
) -> None:
    for pieces in ([data], [data[i : i + 7] for i in range(0, len(data), 7)]):
        parser = StreamParser()
        events: list[ParserEvent] = []
        for piece in pieces:
            events.extend(parser.feed(piece))
        failures = [e for e in events if isinstance(e, ParseFailed)]
        assert len(failures) == 1, (name, events)
        assert failures[0].error.condition in (condition, StreamErrorCondition.UNSUPPORTED_VERSION)
        if condition is not StreamErrorCondition.NOT_WELL_FORMED:
            assert failures[0].error.condition is condition
        assert events[-1] is failures[0]
        assert parser.failed
        assert parser.feed(b"<message/>") == []


def test_events_before_the_error_are_kept() -> None:
    parser = StreamParser()
    events = parser.feed(HEADER + b"<message id='ok'/><!-- bad -->")
    assert [type(e) for e in events] == [StreamHeader, ElementReceived, ParseFailed]


def stanza_of_size(size: int) -> bytes:
    start, end = b"<message><body>", b"</body></message>"
    return start + b"a" * (size - len(start) - len(end)) + end


@pytest.mark.parametrize("limit", [1024, 4096])
def test_stanza_size_limit_boundary(limit: int) -> None:
    limits = XmlLimits(max_stanza_bytes=limit)
    # The size counted runs from the start tag to the start of the end tag.
    fits = stanza_of_size(limit + len(b"</message>"))
    parser = StreamParser(limits)
    events = parser.feed(HEADER + fits)
    assert isinstance(events[-1], ElementReceived)
    assert events[-1].size == limit
    parser = StreamParser(limits)
    events = parser.feed(HEADER + stanza_of_size(limit + len(b"</message>") + 1))
    assert isinstance(events[-1], ParseFailed)
    assert events[-1].error.condition is StreamErrorCondition.POLICY_VIOLATION


def test_default_stanza_limit_rejects_300_kib_even_unterminated() -> None:
    parser = StreamParser()
    parser.feed(HEADER + b"<message><body>")
    events: list[ParserEvent] = []
    chunk = b"a" * 16384
    for _ in range(300 * 1024 // len(chunk)):
        events.extend(parser.feed(chunk))
        if events:
            break
    assert len(events) == 1
    assert isinstance(events[0], ParseFailed)
    assert events[0].error.condition is StreamErrorCondition.POLICY_VIOLATION


def test_huge_start_tag_is_bounded_too() -> None:
    parser = StreamParser(XmlLimits(max_stanza_bytes=2048))
    events = parser.feed(HEADER + b"<message a='" + b"x" * 4096)
    assert isinstance(events[-1], ParseFailed)
    assert events[-1].error.condition is StreamErrorCondition.POLICY_VIOLATION


def nested(depth: int) -> bytes:
    return b"<message>" + b"<a>" * (depth - 1) + b"</a>" * (depth - 1) + b"</message>"


def test_depth_limit_boundary() -> None:
    limits = XmlLimits(max_depth=8)
    # Depth counts inside a stanza, the stanza element itself being level 1.
    ok = StreamParser(limits).feed(HEADER + nested(8))
    assert isinstance(ok[-1], ElementReceived)
    bad = StreamParser(limits).feed(HEADER + nested(9))
    assert isinstance(bad[-1], ParseFailed)
    assert bad[-1].error.condition is StreamErrorCondition.POLICY_VIOLATION


def test_ten_thousand_deep_nesting() -> None:
    events = StreamParser().feed(HEADER + b"<message>" + b"<a>" * 10_000)
    assert isinstance(events[-1], ParseFailed)
    assert events[-1].error.condition is StreamErrorCondition.POLICY_VIOLATION


def test_attribute_count_boundary() -> None:
    limits = XmlLimits(max_attributes=5)

    def with_attrs(n: int) -> bytes:
        return b"<message " + b" ".join(b"a%d='1'" % i for i in range(n)) + b"/>"

    assert isinstance(StreamParser(limits).feed(HEADER + with_attrs(5))[-1], ElementReceived)
    bad = StreamParser(limits).feed(HEADER + with_attrs(6))[-1]
    assert isinstance(bad, ParseFailed)
    assert bad.error.condition is StreamErrorCondition.POLICY_VIOLATION


def test_name_length_boundary() -> None:
    limits = XmlLimits(max_name_length=16)
    ok = StreamParser(limits).feed(HEADER + b"<message><" + b"n" * 16 + b"/></message>")
    assert isinstance(ok[-1], ElementReceived)
    bad = StreamParser(limits).feed(HEADER + b"<message><" + b"n" * 17 + b"/></message>")[-1]
    assert isinstance(bad, ParseFailed)
    assert bad.error.condition is StreamErrorCondition.POLICY_VIOLATION


def test_limits_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_depth"):
        XmlLimits(max_depth=0)


def test_websocket_frames() -> None:
    parser = StreamParser(framing=Framing.WEBSOCKET)
    events = parser.feed_frame(
        b"<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='hub.test' version='1.0'/>"
    )
    assert isinstance(events[0], StreamHeader)
    assert events[0].attrs["to"] == "hub.test"
    events = parser.feed_frame(
        b"<message xmlns='jabber:client' to='a@hub.test'><body>x</body></message>"
    )
    assert isinstance(events[0], ElementReceived)
    assert events[0].element.tag == "{jabber:client}message"
    assert isinstance(
        parser.feed_frame(b"<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>")[0], StreamFooter
    )


def test_websocket_frame_must_be_one_complete_element() -> None:
    parser = StreamParser(framing=Framing.WEBSOCKET)
    events = parser.feed_frame(b"<message xmlns='jabber:client'><body>")
    assert isinstance(events[-1], ParseFailed)
    assert events[-1].error.condition is StreamErrorCondition.NOT_WELL_FORMED


WS_MESSAGE = b"<message xmlns='jabber:client' to='a@hub.test'><body>x</body></message>"
WS_OPEN = b"<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='hub.test' version='1.0'/>"


@pytest.mark.parametrize(
    ("frames", "kinds"),
    [
        # one top-level element per frame (RFC 7395 §3.3.3), whitespace around it allowed
        ([WS_OPEN, WS_MESSAGE, b" \n" + WS_MESSAGE + b"\n"], ["header", "element", "element"]),
        ([b"<presence xmlns='jabber:client'/>"], ["element"]),
        # two in one frame fail whole: neither element is reported
        ([WS_MESSAGE + WS_MESSAGE], ["bad-format"]),
        ([WS_MESSAGE + b" " + b"<presence xmlns='jabber:client'/>"], ["bad-format"]),
        ([WS_OPEN + WS_MESSAGE], ["bad-format"]),
        (
            [WS_OPEN, WS_MESSAGE + b"<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>"],
            ["header", "bad-format"],
        ),
        # an unfinished element is not well-formed
        ([WS_MESSAGE + b"<presence xmlns='jabber:client'>"], ["element", "not-well-formed"]),
    ],
)
def test_websocket_one_element_per_frame(frames: list[bytes], kinds: list[str]) -> None:
    parser = StreamParser(framing=Framing.WEBSOCKET)
    seen: list[str] = []
    for frame in frames:
        for ev in parser.feed_frame(frame):
            if isinstance(ev, ParseFailed):
                seen.append(str(ev.error.condition))
                if ev.error.condition is StreamErrorCondition.BAD_FORMAT:
                    assert "RFC 7395" in ev.error.text
            else:
                seen.append("header" if isinstance(ev, StreamHeader) else "element")
    assert seen == kinds


def test_websocket_elements_may_share_a_feed_outside_frames() -> None:
    """feed() (used for stored fragments) has no frame to count; only feed_frame() does."""
    events = StreamParser(framing=Framing.WEBSOCKET).feed(WS_MESSAGE + WS_MESSAGE)
    assert [type(ev) for ev in events] == [ElementReceived, ElementReceived]


def feed_hibernating(data: bytes, cuts: list[int]) -> tuple[list[str], int]:
    """Like feed_in_pieces, but try to hibernate the parser after every piece."""
    parser = StreamParser()
    events: list[ParserEvent] = []
    start = 0
    slept = 0
    for cut in [*sorted(cuts), len(data)]:
        events.extend(parser.feed(data[start:cut]))
        start = cut
        if parser.hibernate():
            slept += 1
            assert parser.hibernating
    return describe(events), slept


def test_hibernation_between_any_two_pieces_changes_nothing() -> None:
    expected = feed_in_pieces(DOCUMENT, [])
    total_slept = 0
    for cut in range(1, len(DOCUMENT)):
        events, slept = feed_hibernating(DOCUMENT, [cut])
        assert events == expected, cut
        total_slept += slept
    assert total_slept > 0  # it did hibernate where the boundary was clean
    events, _ = feed_hibernating(DOCUMENT, list(range(1, len(DOCUMENT), 3)))
    assert events == expected


@pytest.mark.parametrize(
    ("tail", "can_sleep"),
    [
        (b"<message><body>x</body></message>", True),
        (b"<message><body>x</body></message>  \n", True),
        (b"<presence a='&gt;'/>", True),
        (b"<message><body>x</body></message><mess", False),
        (b"<message><body>x</body></message><message id='>", False),
        (b"<message><body>x</body>", False),
        (b"<presence/><presence type='>'", False),
    ],
)
def test_hibernation_only_at_a_clean_boundary(tail: bytes, can_sleep: bool) -> None:
    parser = StreamParser()
    parser.feed(HEADER)
    parser.feed(tail)
    assert parser.hibernate() is can_sleep
    # Whatever happened, the stream goes on correctly.
    rest = b"" if can_sleep else b"'/>" if tail.endswith(b"'") else b""
    events = parser.feed(rest + b"<iq type='get' id='z'/>" if can_sleep else b"")
    if can_sleep:
        assert describe(events) == ['element <iq type="get" id="z"/>']


def test_hibernated_parser_keeps_root_namespace_prefixes() -> None:
    parser = StreamParser()
    parser.feed(HEADER)
    parser.feed(b"<presence/>")
    assert parser.hibernate()
    events = parser.feed(b"<stream:error><x/></stream:error></stream:stream>")
    assert describe(events) == [
        'element <error xmlns="http://etherx.jabber.org/streams"><x xmlns="jabber:client"/></error>',
        "footer",
    ]


def test_hibernated_parser_still_enforces_limits_and_restrictions() -> None:
    parser = StreamParser(XmlLimits(max_depth=3))
    parser.feed(HEADER + b"<presence/>")
    assert parser.hibernate()
    bad = parser.feed(b"<message><a><b><c/></b></a></message>")[-1]
    assert isinstance(bad, ParseFailed)
    assert bad.error.condition is StreamErrorCondition.POLICY_VIOLATION
    parser = StreamParser()
    parser.feed(HEADER + b"<presence/>")
    assert parser.hibernate()
    bad = parser.feed(b"<!-- sneaky -->")[-1]
    assert isinstance(bad, ParseFailed)
    assert bad.error.condition is StreamErrorCondition.RESTRICTED_XML


def test_whitespace_keepalives_do_not_count_against_the_stanza_limit() -> None:
    parser = StreamParser(XmlLimits(max_stanza_bytes=1024))
    events = parser.feed(HEADER + b"<presence/>")
    for _ in range(5000):
        events.extend(parser.feed(b" "))
    events.extend(parser.feed(stanza_of_size(1024 + len(b"</message>"))))
    assert not any(isinstance(e, ParseFailed) for e in events)
    assert isinstance(events[-1], ElementReceived)


def failure(events: list[ParserEvent]) -> str:
    last = events[-1]
    assert isinstance(last, ParseFailed), events
    assert last.error.condition is StreamErrorCondition.POLICY_VIOLATION
    return last.error.text or ""


def test_element_count_boundary() -> None:
    limits = XmlLimits(max_elements=10)

    def with_children(n: int) -> bytes:  # the stanza element itself counts
        return b"<message>" + b"<a b=''/>" * (n - 1) + b"</message>"

    ok = StreamParser(limits).feed(HEADER + with_children(10))
    assert isinstance(ok[-1], ElementReceived)
    assert "more than 10 elements" in failure(StreamParser(limits).feed(HEADER + with_children(11)))
    # Nested or flat, open or closed: the count is of start tags, checked as they arrive.
    assert "elements" in failure(StreamParser(limits).feed(HEADER + b"<message>" + b"<a>" * 10))
    # Each stanza has its own count.
    parser = StreamParser(limits)
    events = parser.feed(HEADER + with_children(10) * 5)
    assert [type(e) for e in events] == [StreamHeader] + [ElementReceived] * 5


def test_namespace_declarations_per_stanza_boundary() -> None:
    limits = XmlLimits(max_namespace_declarations=4)

    def declaring(n: int) -> bytes:
        decls = b"".join(b" xmlns:p%d='urn:p%d'" % (i, i) for i in range(n - 1))
        return b"<message" + decls + b"><x xmlns='urn:x'/></message>"

    ok = StreamParser(limits).feed(HEADER + declaring(4) * 3)
    assert [type(e) for e in ok] == [StreamHeader] + [ElementReceived] * 3
    text = failure(StreamParser(limits).feed(HEADER + declaring(5)))
    assert "more than 4 namespace declarations in one stanza" in text


def header_with(attributes: int = 0, namespaces: int = 0) -> bytes:
    attrs = b"".join(b" a%d='1'" % i for i in range(attributes))
    decls = b"".join(b" xmlns:p%d='urn:p%d'" % (i, i) for i in range(namespaces))
    return (
        b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'"
        + (attrs + decls + b">")
    )


def test_header_attribute_boundary() -> None:
    limits = XmlLimits(max_header_attributes=6)
    ok = StreamParser(limits).feed(header_with(attributes=6))
    assert [type(e) for e in ok] == [StreamHeader]
    text = failure(StreamParser(limits).feed(header_with(attributes=7)))
    assert "more than 6 attributes on the stream header" in text


def test_header_namespace_boundary() -> None:
    limits = XmlLimits(max_header_namespaces=5)  # the two of every header, and three more
    ok = StreamParser(limits).feed(header_with(namespaces=3) + b"<message/>")
    assert [type(e) for e in ok] == [StreamHeader, ElementReceived]
    text = failure(StreamParser(limits).feed(header_with(namespaces=4)))
    assert "more than 5 namespace declarations on the stream header" in text


def test_thousands_of_header_namespaces_are_refused_by_default() -> None:
    text = failure(StreamParser().feed(header_with(namespaces=9000)))
    assert "namespace declarations on the stream header" in text


def test_header_namespaces_do_not_count_against_the_first_stanza() -> None:
    limits = XmlLimits(max_header_namespaces=16, max_namespace_declarations=1)
    events = StreamParser(limits).feed(header_with(namespaces=10) + b"<m xmlns='urn:x'/>")
    assert [type(e) for e in events] == [StreamHeader, ElementReceived]


def test_a_failed_parser_lets_go_of_expat_and_the_partial_tree() -> None:
    parser = StreamParser(XmlLimits(max_elements=50))
    events = parser.feed(HEADER + b"<message>" + b"<a b=''/>" * 100)
    assert isinstance(events[-1], ParseFailed)
    assert parser.hibernating  # no expat parser any more
    assert parser.feed(b"<more/>") == []


def test_release_frees_a_parser_holding_an_open_stanza() -> None:
    parser = StreamParser()
    parser.feed(HEADER + b"<message>" + b"<a b=''/>" * 100)
    parser.release()
    assert parser.failed
    assert parser.hibernating
    assert parser.feed(b"</message>") == []


@pytest.mark.parametrize(
    "name",
    [
        "max_elements",
        "max_namespace_declarations",
        "max_header_attributes",
        "max_header_namespaces",
    ],
)
def test_new_limits_must_be_positive(name: str) -> None:
    with pytest.raises(ValueError, match=name):
        XmlLimits(**{name: 0})


def test_expat_is_renewed_so_new_names_cannot_grow_one_stream_for_ever() -> None:
    parser = StreamParser()
    parser.feed(HEADER)
    renewals = 0
    for i in range(400):  # 60 new attribute names and 60 new prefixes in every stanza
        attrs = b" ".join(b"a%d_%d=''" % (i, j) for j in range(60))
        decls = b" ".join(b"xmlns:p%d_%d='u'" % (i, j) for j in range(60))
        events = parser.feed(b"<message " + attrs + b" " + decls + b"/>")
        assert [type(e) for e in events] == [ElementReceived]
        renewals += parser.hibernating
    assert renewals >= 1


def test_renewing_at_every_clean_boundary_changes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    import interlink.xmpp.parser as module

    expected = feed_in_pieces(DOCUMENT, [])
    monkeypatch.setattr(module, "RENEW_AFTER_BYTES", 0)
    for cut in range(1, len(DOCUMENT)):
        assert feed_in_pieces(DOCUMENT, [cut]) == expected, cut
    assert feed_in_pieces(DOCUMENT, list(range(1, len(DOCUMENT), 3))) == expected


def test_invented_names_cannot_crowd_real_ones_out_of_the_name_cache() -> None:
    import interlink.xmpp.parser as module

    parser = StreamParser()
    parser.feed(HEADER)
    for i in range(module._NAMES_KEPT // 50 + 1):
        attrs = b" ".join(b"x%d_%d=''" % (i, j) for j in range(50))
        parser.feed(b"<junk " + attrs + b"/>")
    assert len(module._NAMES) <= module._NAMES_KEPT
    parser.feed(b"<message><body-of-a-real-client/></message>")
    assert "jabber:client}body-of-a-real-client" in module._NAMES
