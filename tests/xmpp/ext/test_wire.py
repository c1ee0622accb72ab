"""The shared wire formats of ``xmpp/ext/``: what one side builds, the other side reads back the
same, and the bytes stay what docs/protocol.md shows."""

from __future__ import annotations

from xml.etree.ElementTree import Element

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from interlink.errors import StanzaError, StanzaErrorCondition
from interlink.xmpp.ext import blocking, http_upload, interop, jid_attr, media_tokens, reporting
from interlink.xmpp.ext.interop import InboxMode, InteropMarker, InteropSettings, MessageRequest
from interlink.xmpp.xml import serialize

ids = st.text("abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=12)


# -- interop ---------------------------------------------------------------------------------------
@settings(max_examples=200, deadline=None)
@given(
    enabled=st.booleans(),
    providers=st.none() | st.frozensets(ids, max_size=4),
    inbox=st.sampled_from(list(InboxMode)),
    discoverable=st.booleans(),
    share_activity=st.booleans(),
)
def test_settings_read_back_what_the_hub_states(
    enabled: bool,
    providers: frozenset[str] | None,
    inbox: InboxMode,
    discoverable: bool,
    share_activity: bool,
) -> None:
    settings_ = InteropSettings(enabled, providers, inbox, discoverable, share_activity)
    assert interop.parse_settings(interop.settings_element(settings_)) == settings_


@settings(max_examples=200, deadline=None)
@given(
    start=st.builds(InteropSettings, st.booleans(), st.none() | st.frozensets(ids, max_size=3)),
    enabled=st.none() | st.booleans(),
    providers=st.none() | st.just("all") | st.lists(ids, max_size=3, unique=True),
    inbox=st.none() | st.sampled_from(["separate", "combined"]),
)
def test_a_partial_change_from_the_sdk_changes_only_what_it_names(
    start: InteropSettings,
    enabled: bool | None,
    providers: str | list[str] | None,
    inbox: str | None,
) -> None:
    change = interop.settings_change(enabled=enabled, providers=providers, inbox=inbox)
    got = interop.apply_settings(change, start, max_providers=8)
    assert got.enabled == (start.enabled if enabled is None else enabled)
    assert got.inbox == (start.inbox if inbox is None else inbox)
    if providers is None:
        assert got.providers == start.providers
    else:
        assert got.providers == (None if providers == "all" else frozenset(providers))
    assert (got.discoverable, got.share_activity) == (start.discoverable, start.share_activity)


def test_the_marker_bytes_and_its_reading() -> None:
    marker = InteropMarker("examplechat", "Example Chat", "bob", "separate", request=True)
    el = interop.marker_element(marker)
    assert serialize(el) == (
        '<interop xmlns="urn:interlink:interop:0" provider="examplechat"'
        ' provider-name="Example Chat" inbox="separate" user="bob" request="true"/>'
    )
    assert interop.parse_marker(el) == marker
    plain = InteropMarker("examplechat", "Example Chat", None, "combined")
    assert interop.parse_marker(interop.marker_element(plain)) == plain


def test_requests_and_providers_round_trip() -> None:
    marker = InteropMarker("examplechat", "Example Chat", None, "separate", request=True)
    pending = [
        MessageRequest("a@examplechat.interop.hub", 2, marker),
        MessageRequest("b@x", 0, None),
    ]
    assert interop.parse_requests(interop.requests_element(pending)) == pending
    assert interop.parse_requests(None) == []
    approved = {"examplechat": "Example Chat", "other": "Other"}
    assert interop.parse_providers(interop.providers_element(approved)) == approved
    assert str(jid_attr(interop.accept_element("a@b"), "<accept/>")) == "a@b"


def test_the_hints_are_in_our_own_namespaces() -> None:
    assert interop.ACTIVITY == "{urn:interlink:interop:0}activity"
    assert interop.NO_PUSH == "{urn:interlink:hints:0}no-push"


@pytest.mark.parametrize(
    ("value", "condition"),
    [("", StanzaErrorCondition.BAD_REQUEST), ("a@@b", StanzaErrorCondition.JID_MALFORMED)],
)
def test_a_jid_attribute_is_checked(value: str, condition: StanzaErrorCondition) -> None:
    with pytest.raises(StanzaError) as refused:
        jid_attr(Element("item", {"jid": value} if value else {}), "<item/>")
    assert refused.value.condition is condition


# -- blocking and reporting ------------------------------------------------------------------------
def test_blocklists_round_trip_sorted() -> None:
    el = blocking.blocklist_element(blocking.UNBLOCK, ["b@x", "a@x"])
    assert serialize(el) == (
        '<unblock xmlns="urn:xmpp:blocking"><item jid="a@x"/><item jid="b@x"/></unblock>'
    )
    assert blocking.parse_blocklist(el) == ["a@x", "b@x"]
    assert [str(j) for j, _ in blocking.block_items(el, allow_empty=False)] == ["a@x", "b@x"]
    with pytest.raises(StanzaError):
        blocking.block_items(Element(blocking.BLOCK), allow_empty=False)
    assert blocking.block_items(Element(blocking.UNBLOCK), allow_empty=True) == []


def test_a_report_the_sdk_builds_is_the_report_the_hub_reads() -> None:
    attached = (
        reporting.ForwardedMessage("m1", reporting.stamp(0), "buy now", "spam@x/r"),
        reporting.ForwardedMessage("m2", "", "again", "spam@x/r"),
    )
    report = reporting.SpamReport(reporting.reason_uri("spam"), "unsolicited", attached)
    item = Element(blocking.ITEM, {"jid": "spam@x"})
    item.append(reporting.report_element(report))
    assert reporting.parse_report(item, max_messages=5, max_text=100) == report
    assert attached[0].at == "1970-01-01T00:00:00Z"
    assert reporting.parse_report(Element(blocking.ITEM), max_messages=5, max_text=100) is None
    with pytest.raises(ValueError, match="spam"):
        reporting.reason_uri("other")


# -- media -----------------------------------------------------------------------------------------
def test_the_media_token_and_kind_round_trip() -> None:
    assert serialize(media_tokens.token_request()) == '<token xmlns="urn:interlink:media:0"/>'
    result = Element("{jabber:client}iq")
    result.append(media_tokens.token_element("v1.abc", 1795000000.9))
    assert result[0].get("expires") == "1795000000"
    assert media_tokens.parse_token(result) == "v1.abc"
    assert media_tokens.parse_token(Element("{jabber:client}iq")) is None
    for kind in media_tokens.KINDS:
        assert media_tokens.parse_kind([media_tokens.kind_element(kind)]) == kind
    assert media_tokens.parse_kind([media_tokens.kind_element("hologram")]) == "file"
    assert media_tokens.parse_kind([]) == "file"


def test_an_upload_slot_round_trips() -> None:
    asked = http_upload.SlotRequest("cat.jpg", 1234, "image/jpeg")
    assert http_upload.parse_request(http_upload.request_element(asked)) == asked
    with pytest.raises(StanzaError):
        http_upload.parse_request(Element(http_upload.REQUEST, {"size": "-1"}))
    slot = http_upload.Slot("https://h/put", {"Authorization": "Bearer t"}, "https://h/get")
    result = Element("{jabber:client}iq")
    result.append(http_upload.slot_element(slot))
    assert http_upload.parse_slot(result) == slot
    assert http_upload.parse_slot(Element("{jabber:client}iq")) is None
