"""XEP-0313 / XEP-0059 / XEP-0359 wire code: query parsing (tables of good and bad input),
result-set elements, preferences, what is worth archiving, forged stanza-ids."""

from __future__ import annotations

from xml.etree.ElementTree import Element

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from interlink.errors import StanzaError, StanzaErrorCondition
from interlink.xmpp.ext import mam, rsm
from interlink.xmpp.jid import JID
from interlink.xmpp.stanza import Message, MessageType, parse_stanza, to_xml
from interlink.xmpp.xml import parse_fragment, serialize

MAM = mam.NS
RSM = rsm.NS
T = 1_276_128_000.0  # 2010-06-10T00:00:00Z


def field(var: str, *values: str) -> str:
    return f"<field var='{var}'>" + "".join(f"<value>{v}</value>" for v in values) + "</field>"


def query(*fields: str, rsm_: str = "", attrs: str = "", form_type: str = MAM) -> Element:
    form = ""
    if fields or form_type != MAM:
        form = (
            "<x xmlns='jabber:x:data' type='submit'>"
            + field("FORM_TYPE", form_type)
            + "".join(fields)
            + "</x>"
        )
    page = f"<set xmlns='{RSM}'>{rsm_}</set>" if rsm_ else ""
    return parse_fragment(f"<query xmlns='{MAM}' {attrs}>{form}{page}</query>")


def condition(exc: pytest.ExceptionInfo[StanzaError]) -> StanzaErrorCondition:
    return exc.value.condition


# -- queries -------------------------------------------------------------------------------------
def test_an_empty_query_asks_for_the_default_page() -> None:
    assert mam.parse_query(query(), max_ids=10) == mam.ArchiveQuery()


@pytest.mark.parametrize(
    ("el", "expected"),
    [
        (query(attrs="queryid='f27'"), mam.ArchiveQuery(query_id="f27")),
        (
            query(field("with", "juliet@capulet.lit")),
            mam.ArchiveQuery(with_=JID.parse("juliet@capulet.lit")),
        ),
        (
            query(field("with", "juliet@capulet.lit/balcony")),
            mam.ArchiveQuery(with_=JID.parse("juliet@capulet.lit/balcony")),
        ),
        (
            query(field("start", "2010-06-10T00:00:00Z"), field("end", "2010-06-10T00:00:01.5Z")),
            mam.ArchiveQuery(start=T, end=T + 1.5),
        ),
        (
            query(field("start", "2010-06-10T02:00:00+02:00")),
            mam.ArchiveQuery(start=T),
        ),
        (
            query(field("after-id", "a"), field("before-id", "b"), field("ids", "x", "y")),
            mam.ArchiveQuery(after_id="a", before_id="b", ids=("x", "y")),
        ),
        (
            query(rsm_="<max>10</max><after>09af3</after>"),
            mam.ArchiveQuery(page=rsm.PageRequest(10, "09af3")),
        ),
        (query(rsm_="<max>0</max><before/>"), mam.ArchiveQuery(page=rsm.PageRequest(0, None, ""))),
        (query(rsm_="<before>x</before>"), mam.ArchiveQuery(page=rsm.PageRequest(None, None, "x"))),
        (
            parse_fragment(f"<query xmlns='{MAM}'><flip-page/></query>"),
            mam.ArchiveQuery(flip=True),
        ),
    ],
)
def test_queries_parse(el: Element, expected: mam.ArchiveQuery) -> None:
    assert mam.parse_query(el, max_ids=10) == expected


@pytest.mark.parametrize(
    ("el", "expected"),
    [
        (query(form_type="urn:xmpp:mam:1"), StanzaErrorCondition.BAD_REQUEST),
        (query(field("colour", "red")), StanzaErrorCondition.BAD_REQUEST),
        (query(field("with", "@@")), StanzaErrorCondition.BAD_REQUEST),
        (query(field("with", "a@b", "c@d")), StanzaErrorCondition.BAD_REQUEST),
        (query(field("with")), StanzaErrorCondition.BAD_REQUEST),
        (query(field("start", "yesterday")), StanzaErrorCondition.BAD_REQUEST),
        (query(field("start", "2010-06-10T00:00:00")), StanzaErrorCondition.BAD_REQUEST),
        (
            query(field("start", "2010-06-11T00:00:00Z"), field("end", "2010-06-10T00:00:00Z")),
            StanzaErrorCondition.BAD_REQUEST,
        ),
        (query(field("ids")), StanzaErrorCondition.BAD_REQUEST),
        (query(rsm_="<max>-1</max>"), StanzaErrorCondition.BAD_REQUEST),
        (query(rsm_="<max>ten</max>"), StanzaErrorCondition.BAD_REQUEST),
        (query(rsm_="<max>١</max>"), StanzaErrorCondition.BAD_REQUEST),  # not ASCII digits
        (query(rsm_="<after/>"), StanzaErrorCondition.BAD_REQUEST),
        (query(rsm_="<after>a</after><before>b</before>"), StanzaErrorCondition.BAD_REQUEST),
        (query(rsm_="<last/>"), StanzaErrorCondition.BAD_REQUEST),
        (query(rsm_="<index>3</index>"), StanzaErrorCondition.FEATURE_NOT_IMPLEMENTED),
        (query(attrs="node='x'"), StanzaErrorCondition.FEATURE_NOT_IMPLEMENTED),
    ],
)
def test_malformed_queries_are_refused(el: Element, expected: StanzaErrorCondition) -> None:
    with pytest.raises(StanzaError) as exc:
        mam.parse_query(el, max_ids=10)
    assert condition(exc) is expected


def test_ids_are_capped_at_the_boundary() -> None:
    ids = [f"id{i}" for i in range(4)]
    assert mam.parse_query(query(field("ids", *ids)), max_ids=4).ids == tuple(ids)
    with pytest.raises(StanzaError) as exc:
        mam.parse_query(query(field("ids", *ids, "id4")), max_ids=4)
    assert condition(exc) is StanzaErrorCondition.NOT_ACCEPTABLE
    assert "at most 4" in (exc.value.text or "")


def test_the_form_fields_answer_lists_every_field() -> None:
    got = mam.query_fields()
    x = got.find("{jabber:x:data}x")
    assert x is not None
    vars_ = [f.get("var") for f in x]
    assert vars_ == ["FORM_TYPE", *mam.FIELDS]


# -- result sets ---------------------------------------------------------------------------------
def test_result_set_elements() -> None:
    full = serialize(rsm.element(rsm.PageResult(count=30, first="a", first_index=20, last="b")))
    assert full == (
        f'<set xmlns="{RSM}"><first index="20">a</first><last>b</last><count>30</count></set>'
    )
    assert serialize(rsm.element(rsm.PageResult(count=0))) == (
        f'<set xmlns="{RSM}"><count>0</count></set>'
    )
    fin = mam.fin(True, rsm.PageResult(count=0))
    assert fin.get("complete") == "true"
    assert mam.fin(False, rsm.PageResult(count=0)).get("complete") is None


def test_a_result_message_forwards_the_archived_stanza_with_its_stamp() -> None:
    archived = (
        '<message xmlns="jabber:client" from="b@h/x" to="a@h" type="chat"><body>c</body></message>'
    )
    xml = mam.result_xml(JID.parse("a@h/r"), JID.parse("a@h"), "q1", "id1", T + 0.25, archived)
    message = parse_stanza(parse_fragment(xml))
    assert isinstance(message, Message)
    assert str(message.to) == "a@h/r"
    assert str(message.from_) == "a@h"
    result = message.find(f"{{{MAM}}}result")
    assert result is not None
    assert (result.get("queryid"), result.get("id")) == ("q1", "id1")
    delay = result.find(f"{{{mam.FORWARD}}}forwarded/{{urn:xmpp:delay}}delay")
    assert delay is not None
    assert delay.get("stamp") == "2010-06-10T00:00:00.250Z"
    inner = result.find(f"{{{mam.FORWARD}}}forwarded/{{jabber:client}}message")
    assert inner is not None
    assert inner.findtext("{jabber:client}body") == "c"
    assert "queryid" not in mam.result_xml(JID.parse("a@h"), JID.parse("a@h"), None, "i", T, "<m/>")


@settings(max_examples=100, deadline=None)
@given(at=st.floats(min_value=0, max_value=4e9, allow_nan=False))
def test_stamps_read_back_to_the_millisecond(at: float) -> None:
    assert mam.parse_time(mam.stamp(at)) == pytest.approx(at, abs=0.001)


# -- what is archived ----------------------------------------------------------------------------
def msg(body: str, type_: str = "chat") -> Message:
    stanza = parse_stanza(
        parse_fragment(f"<message xmlns='jabber:client' to='b@h' type='{type_}'>{body}</message>")
    )
    assert isinstance(stanza, Message)
    return stanza


@pytest.mark.parametrize(
    ("payload", "type_", "archived"),
    [
        ("<body>hi</body>", "chat", True),
        ("<body>hi</body>", "normal", True),
        ("<encrypted xmlns='urn:xmpp:omemo:2'/>", "chat", True),
        ("<encrypted xmlns='eu.siacs.conversations.axolotl'/>", "chat", True),
        ("<active xmlns='http://jabber.org/protocol/chatstates'/>", "chat", False),
        ("<received xmlns='urn:xmpp:receipts' id='x'/>", "chat", False),
        (
            "<received xmlns='urn:xmpp:receipts' id='x'/><store xmlns='urn:xmpp:hints'/>",
            "chat",
            True,
        ),
        ("<body>hi</body><no-store xmlns='urn:xmpp:hints'/>", "chat", False),
        ("<body>hi</body><no-permanent-store xmlns='urn:xmpp:hints'/>", "chat", False),
        ("<body>hi</body>", "headline", False),
        ("<body>hi</body>", "groupchat", False),
        ("<body>hi</body>", "error", False),
    ],
)
def test_what_is_worth_archiving(payload: str, type_: str, archived: bool) -> None:
    assert mam.worth_archiving(msg(payload, type_)) is archived


@pytest.mark.parametrize(
    ("payload", "type_", "archived"),
    [
        ("<body>hi</body>", "groupchat", True),
        ("<encrypted xmlns='urn:xmpp:omemo:2'/>", "groupchat", True),
        ("<encrypted xmlns='eu.siacs.conversations.axolotl'/>", "groupchat", True),
        ("<subject>plans</subject>", "groupchat", True),
        ("<subject/>", "groupchat", True),  # clearing the subject is a change too
        ("<composing xmlns='http://jabber.org/protocol/chatstates'/>", "groupchat", False),
        ("<store xmlns='urn:xmpp:hints'/>", "groupchat", True),
        ("<body>hi</body><no-store xmlns='urn:xmpp:hints'/>", "groupchat", False),
        ("<body>hi</body>", "chat", False),  # a private message in a room (§5.1.2)
        ("<body>hi</body>", "normal", False),
    ],
)
def test_what_a_room_archives(payload: str, type_: str, archived: bool) -> None:
    assert mam.worth_archiving_in_room(msg(payload, type_)) is archived


def test_forged_stanza_ids_are_removed_and_others_kept() -> None:
    def ours(by: str) -> bool:
        return by.endswith("hub.test")

    original = msg(
        f"<body>x</body><stanza-id xmlns='{mam.SID}' by='alice@hub.test' id='forged'/>"
        f"<stanza-id xmlns='{mam.SID}' by='room@muc.elsewhere' id='kept'/>"
        f"<origin-id xmlns='{mam.SID}' id='origin'/>"
    )
    cleaned = mam.without_forged_ids(original, ours)
    assert [(c.tag, c.get("id")) for c in cleaned.payload] == [
        ("{jabber:client}body", None),
        (mam.STANZA_ID, "kept"),
        (mam.ORIGIN_ID, "origin"),
    ]
    plain = msg("<body>x</body>")
    assert mam.without_forged_ids(plain, ours) is plain
    stamped = parse_stanza(parse_fragment(mam.stamped(to_xml(plain, None), "b&c@h", "id9")))
    assert isinstance(stamped, Message)
    assert stamped.payload[-1].tag == mam.STANZA_ID
    assert stamped.payload[-1].attrib == {"by": "b&c@h", "id": "id9"}
    assert [serialize(c) for c in stamped.payload[:-1]] == [serialize(c) for c in plain.payload]
    assert stamped.type is MessageType.CHAT


# -- preferences ---------------------------------------------------------------------------------
def test_prefs_parse_and_build_back() -> None:
    el = parse_fragment(
        f"<prefs xmlns='{MAM}' default='roster'><always><jid>romeo@montague.lit/x</jid>"
        "</always><never><jid>montague@montague.lit</jid><jid>romeo@montague.lit</jid>"
        "</never></prefs>"
    )
    prefs = mam.parse_prefs(el, max_jids=10)
    assert prefs == mam.Prefs(
        mam.Default.ROSTER, ("romeo@montague.lit",), ("montague@montague.lit",)
    )
    again = mam.parse_prefs(parse_fragment(serialize(mam.prefs_element(prefs))), max_jids=10)
    assert again == prefs


@pytest.mark.parametrize(
    ("xml", "expected"),
    [
        (f"<prefs xmlns='{MAM}'/>", StanzaErrorCondition.BAD_REQUEST),
        (f"<prefs xmlns='{MAM}' default='sometimes'/>", StanzaErrorCondition.BAD_REQUEST),
        (
            f"<prefs xmlns='{MAM}' default='always'><never><jid>@x</jid></never></prefs>",
            StanzaErrorCondition.BAD_REQUEST,
        ),
        (
            f"<prefs xmlns='{MAM}' default='always'><never><jid>a@x</jid><jid>b@x</jid>"
            "<jid>c@x</jid></never></prefs>",
            StanzaErrorCondition.NOT_ACCEPTABLE,
        ),
    ],
)
def test_bad_prefs_are_refused(xml: str, expected: StanzaErrorCondition) -> None:
    with pytest.raises(StanzaError) as exc:
        mam.parse_prefs(parse_fragment(xml), max_jids=2)
    assert condition(exc) is expected


def test_prefs_at_the_jid_limit_are_accepted() -> None:
    xml = f"<prefs xmlns='{MAM}' default='never'><always><jid>a@x</jid><jid>b@x</jid></always></prefs>"
    assert mam.parse_prefs(parse_fragment(xml), max_jids=2).always == ("a@x", "b@x")


def test_metadata() -> None:
    assert list(mam.metadata_element(None, None)) == []
    el = mam.metadata_element(mam.Edge("a", T), mam.Edge("b", T + 1))
    assert [(c.tag, c.get("id"), c.get("timestamp")) for c in el] == [
        (f"{{{MAM}}}start", "a", "2010-06-10T00:00:00.000Z"),
        (f"{{{MAM}}}end", "b", "2010-06-10T00:00:01.000Z"),
    ]


# -- the querying side -----------------------------------------------------------------------


def test_a_client_query_parses_back_as_the_hub_reads_it() -> None:
    query = mam.query_element("q7", with_="bob@hub.test", after="A1", max_items=20)
    parsed = mam.parse_query(query, max_ids=10)
    assert parsed.query_id == "q7"
    assert str(parsed.with_) == "bob@hub.test"
    assert (parsed.page.max, parsed.page.after, parsed.page.before) == (20, "A1", None)
    plain = mam.parse_query(mam.query_element("q8"), max_ids=10)
    assert (plain.with_, plain.page.after, plain.page.max) == (None, None, 50)


def test_a_result_message_is_read_for_its_own_query_only() -> None:
    inner = '<message xmlns="jabber:client" from="bob@hub.test/x" to="me@hub.test" id="m1"/>'
    xml = mam.result_xml(
        JID.parse("me@hub.test/t"), JID.parse("me@hub.test"), "q1", "A1", 1_700_000_000.5, inner
    )
    element = parse_fragment(xml)
    result = mam.parse_result(element, "q1")
    assert result is not None
    assert (result.archive_id, result.stored_at) == ("A1", 1_700_000_000.5)
    assert result.message.get("id") == "m1"
    assert mam.parse_result(element, "q2") is None  # another query's
    bad_stamp = parse_fragment(xml.replace('stamp="', 'stamp="x'))
    found = mam.parse_result(bad_stamp, "q1")
    assert found is not None
    assert found.stored_at is None
    assert mam.parse_result(parse_fragment('<message xmlns="jabber:client"/>'), "q1") is None


def test_fin_tells_whether_to_ask_again_and_after_what() -> None:
    done = mam.fin(True, rsm.PageResult(3, "A1", 0, "A3"))
    assert mam.parse_fin(done) == (True, "A3")
    more = mam.fin(False, rsm.PageResult(9, "A1", 0, "A3"))
    assert mam.parse_fin(more) == (False, "A3")
    assert mam.parse_fin(mam.fin(False, rsm.PageResult(0))) == (False, None)
    assert mam.parse_fin(None) == (True, None)
