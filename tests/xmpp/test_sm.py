"""XEP-0198 stream management, sans I/O: the counters and queue, and the stream's rows for it."""

from __future__ import annotations

from dataclasses import replace

import pytest

from interlink.errors import StreamError, StreamErrorCondition
from interlink.xmpp.jid import JID
from interlink.xmpp.stream import (
    AckReceived,
    AckRequested,
    ResumeRefused,
    ResumeRequested,
    SmEnabled,
    StanzaReceived,
    StreamState,
)
from interlink.xmpp.stream.sm import HELD_INPUT_ALLOWANCE, WRAP, SmConfig, StreamManagement
from tests.streamkit import CONFIG, Harness

SM = "{urn:xmpp:sm:3}"
ENABLE = b"<enable xmlns='urn:xmpp:sm:3'/>"
R = b"<r xmlns='urn:xmpp:sm:3'/>"
BIND = b"<iq type='set' id='b2'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>"
MSG = b"<message to='bob@hub.test' type='chat'><body>hi</body></message>"


def a(h: int) -> bytes:
    return f"<a xmlns='urn:xmpp:sm:3' h='{h}'/>".encode()


def ready(config: SmConfig | None = None) -> Harness:
    h = Harness(config=replace(CONFIG, sm=config or SmConfig()))
    h.to_bound()
    h.received.clear()
    return h


# -- the core ---------------------------------------------------------------------------------
def test_outbound_queue_until_acknowledged() -> None:
    sm = StreamManagement(SmConfig(request_every=3))
    assert [sm.record_sent(f"<m{i}/>") for i in range(4)] == [False, False, True, False]
    assert sm.ack("2") == 2
    assert list(sm.queue) == ["<m2/>", "<m3/>"]
    assert sm.ack("2") == 0  # the same ack again changes nothing
    assert sm.ack("4") == 2
    assert not sm.queue


@pytest.mark.parametrize(
    ("h", "error"),
    [
        ("3", StreamErrorCondition.UNDEFINED_CONDITION),  # more than was sent
        (None, StreamErrorCondition.BAD_FORMAT),
        ("-1", StreamErrorCondition.BAD_FORMAT),
        ("x", StreamErrorCondition.BAD_FORMAT),
        (str(WRAP), StreamErrorCondition.BAD_FORMAT),
    ],
)
def test_bad_acks(h: str | None, error: StreamErrorCondition) -> None:
    sm = StreamManagement(SmConfig())
    sm.record_sent("<m/>")
    sm.record_sent("<m/>")
    with pytest.raises(StreamError) as exc:
        sm.ack(h)
    assert exc.value.condition is error


def test_h_wraps_at_2_to_the_32() -> None:
    sm = StreamManagement(SmConfig(max_unacked=10))
    sm.sent = sm.acked = WRAP - 2  # as after 2**32 - 2 stanzas
    for i in range(4):
        sm.record_sent(f"<m{i}/>")
    assert sm.ack("1") == 3  # 2**32 - 2 + 3 wraps to 1
    assert list(sm.queue) == ["<m3/>"]
    assert sm.acked == WRAP + 1
    sm.handled = WRAP + 4
    assert sm.ack_xml() == '<a xmlns="urn:xmpp:sm:3" h="4"/>'


def test_the_queue_limit_and_one_below_it() -> None:
    sm = StreamManagement(SmConfig(max_unacked=2))
    sm.record_sent("<m/>")
    sm.record_sent("<m/>")  # at the limit: fine
    with pytest.raises(StreamError) as exc:
        sm.record_sent("<m/>")
    assert exc.value.condition is StreamErrorCondition.POLICY_VIOLATION
    assert "too many unacknowledged stanzas (2)" in exc.value.text


def test_while_input_is_held_the_limit_doubles_and_comes_back_when_reading_resumes() -> None:
    sm = StreamManagement(SmConfig(max_unacked=2))
    for _ in range(2 * HELD_INPUT_ALLOWANCE):  # 4: up to twice the limit while held
        sm.record_sent("<m/>", input_held=True)
    with pytest.raises(StreamError):  # the hard bound even while held
        sm.record_sent("<m/>", input_held=True)
    assert len(sm.queue) == 4
    with pytest.raises(StreamError):  # reading again: the plain limit, at once
        sm.record_sent("<m/>")
    sm.ack("3")  # the client's acks, read at last
    sm.record_sent("<m/>")  # 2 unacknowledged: at the limit, fine


def test_unacked_is_taken_once_with_the_stored_flag() -> None:
    sm = StreamManagement(SmConfig())
    sm.record_sent("<a/>", stored=True)
    sm.record_sent("<b/>")
    assert [(u.xml, u.stored) for u in sm.unacked()] == [("<a/>", True), ("<b/>", False)]
    assert sm.unacked() == []


# -- the stream -------------------------------------------------------------------------------
def test_enable_then_acks_both_ways() -> None:
    h = ready(SmConfig(request_every=2))
    assert h.send(ENABLE) == [SmEnabled()]
    assert h.last().tag == f"{SM}enabled"
    assert h.last().get("id") is None  # resumption is not offered
    events = h.send(MSG + R)
    assert isinstance(events[0], StanzaReceived)
    assert events[0].counted
    assert events[1] == AckRequested()
    assert h.last().tag == f"{SM}enabled"  # no <a/> before the shell says the stanza is handled
    assert h.stream.sm is not None
    h.stream.sm.stanza_handled()
    h.stream.send_ack()
    h._drain_output()
    assert (h.last().tag, h.last().get("h")) == (f"{SM}a", "1")
    h.stream.send_xml("<message xmlns='jabber:client'><body>1</body></message>")
    h.stream.send_xml("<message xmlns='jabber:client'><body>2</body></message>")
    h._drain_output()
    assert h.last().tag == f"{SM}r"  # the server asks after request_every stanzas
    assert h.send(a(1)) == [AckReceived(1)]
    assert h.send(a(1)) == []
    assert h.send(a(2)) == [AckReceived(2)]
    assert not h.stream.closed


def test_stanzas_the_stream_answers_itself_count_at_once() -> None:
    h = ready()
    h.send(ENABLE)
    h.send(b"<iq type='set' id='s'><session xmlns='urn:ietf:params:xml:ns:xmpp-session'/></iq>")
    assert h.stream.sm is not None
    assert (h.stream.sm.handled, h.stream.sm.sent) == (1, 1)


def test_a_stanza_before_enable_is_not_counted() -> None:
    h = ready()
    events = h.send(MSG + ENABLE)
    assert isinstance(events[0], StanzaReceived)
    assert not events[0].counted


def test_enable_twice_and_r_without_enable_fail_softly() -> None:
    h = ready()
    h.send(R)
    assert h.last().tag == f"{SM}failed"
    assert h.last()[0].tag.endswith("unexpected-request")
    h.send(ENABLE)
    h.send(ENABLE)
    assert h.last().tag == f"{SM}failed"
    assert not h.stream.closed


def test_enable_when_not_offered() -> None:
    h = Harness(config=replace(CONFIG, sm=None))
    h.to_bound()
    h.send(ENABLE)
    assert h.last().tag == f"{SM}failed"


def test_an_ack_for_more_than_was_sent_ends_the_stream() -> None:
    h = ready()
    h.send(ENABLE)
    h.stream.send_xml("<message xmlns='jabber:client'/>")
    h.send(a(1))  # exactly what was sent: fine
    assert not h.stream.closed
    h.send(a(2))
    assert h.stream.closed
    (error,) = [el for el in h.received if el.tag.endswith("error")]
    # XEP-0198 §4: undefined-condition with the application-specific condition and the text
    assert error[0].tag == "{urn:ietf:params:xml:ns:xmpp-streams}undefined-condition"
    assert error[1].tag == f"{SM}handled-count-too-high"
    assert (error[1].get("h"), error[1].get("send-count")) == ("2", "1")
    assert error[2].text == "You acknowledged 2 stanzas, but I only sent you 1 so far."


def test_r_by_time_after_the_first_unrequested_stanza() -> None:
    h = ready(SmConfig(request_every=100, request_after=5.0))
    h.send(ENABLE)
    assert h.stream.get_timer() is None  # nothing sent, nothing to ask about
    h.stream.send_xml("<message xmlns='jabber:client'/>", now=10.0)
    h.stream.send_xml("<message xmlns='jabber:client'/>", now=12.0)
    assert h.stream.get_timer() == 15.0  # from the first stanza not yet asked about
    h.stream.handle_timer(14.999)
    h._drain_output()
    assert h.last().tag == "{jabber:client}message"  # not yet
    h.stream.handle_timer(15.0)
    h._drain_output()
    assert h.last().tag == f"{SM}r"  # at the boundary
    assert h.stream.get_timer() is None
    h.stream.send_xml("<message xmlns='jabber:client'/>", now=16.0)
    assert h.stream.get_timer() == 21.0  # the next stanza arms it again


def test_r_by_count_leaves_the_timer_which_then_asks_only_if_needed() -> None:
    h = ready(SmConfig(request_every=2, request_after=5.0))
    h.send(ENABLE)
    h.stream.send_xml("<message xmlns='jabber:client'/>", now=1.0)
    assert h.stream.get_timer() == 6.0
    h.stream.send_xml("<message xmlns='jabber:client'/>", now=2.0)  # the count asks: <r/>
    assert h.stream.get_timer() == 6.0  # not moved (no timer churn under load)
    h._drain_output()
    assert h.last().tag == f"{SM}r"
    h.received.clear()
    h.stream.handle_timer(6.0)  # everything was asked about already: no second <r/>
    h._drain_output()
    assert h.received == []
    assert h.stream.get_timer() is None
    h.stream.send_xml("<message xmlns='jabber:client'/>", now=7.0)
    h.stream.send_xml("<message xmlns='jabber:client'/>", now=8.0)
    h.stream.send_xml("<message xmlns='jabber:client'/>", now=9.0)  # one not asked about
    h.stream.handle_timer(12.0)
    h._drain_output()
    assert h.last().tag == f"{SM}r"
    off = ready(SmConfig(request_after=0.0))
    off.send(ENABLE)
    off.stream.send_xml("<message xmlns='jabber:client'/>", now=1.0)
    assert off.stream.get_timer() is None


def test_past_the_unacked_limit_the_stream_closes() -> None:
    h = ready(SmConfig(max_unacked=2))
    h.send(ENABLE)
    assert h.stream.send_xml("<message xmlns='jabber:client'/>") == []
    assert h.stream.send_xml("<message xmlns='jabber:client'/>") == []
    (_closed,) = h.stream.send_xml("<message xmlns='jabber:client'/>")
    assert h.stream.closed
    # once closed, what is still routed to the session is kept to be stored, in order
    h.stream.send_xml("<message xmlns='jabber:client'><body>late</body></message>")
    assert h.stream.sm is not None
    assert len(h.stream.sm.unacked()) == 3


def test_the_stream_allows_for_input_the_shell_holds() -> None:
    h = ready(SmConfig(max_unacked=2, request_every=100))
    h.send(ENABLE)
    h.stream.hold_input(True)  # the shell awaits storage for one of the client's stanzas
    for _ in range(4):
        assert h.stream.send_xml("<message xmlns='jabber:client'/>") == []
    assert not h.stream.closed
    h.stream.hold_input(False)
    (_closed,) = h.stream.send_xml("<message xmlns='jabber:client'/>")
    assert h.stream.closed


def test_resume_refused_then_bind() -> None:
    h = Harness()
    h.to_authenticated()
    events = h.send(b"<resume xmlns='urn:xmpp:sm:3' previd='gone' h='3'/>" + BIND)
    assert events == [ResumeRequested("gone", 3)]  # the pipelined bind waits for the answer
    assert h.stream.state is StreamState.RESUMING
    events = h._answer(h.stream.refuse_resume())
    assert events[0] == ResumeRefused("gone", 3)  # the shell settles what the client has
    assert h.received[-2].tag == f"{SM}failed"
    assert h.received[-2][0].tag.endswith("item-not-found")
    assert h.stream.jid is not None  # then the pipelined bind


def test_resume_accepted_resends_what_the_client_lacks_with_the_same_numbers() -> None:
    old = ready()
    old.send(b"<enable xmlns='urn:xmpp:sm:3' resume='true'/>")
    enabled = old.last()
    assert enabled.get("resume") == "true"
    assert enabled.get("max") == "300"
    previd = enabled.get("id") or ""
    old.send(MSG)
    state = old.stream.sm
    assert state is not None
    state.stanza_handled()
    for n in range(3):
        old.stream.send_xml(f"<message xmlns='jabber:client'><body>{n}</body></message>")
    h = Harness()
    h.to_authenticated()
    h.send(f"<resume xmlns='urn:xmpp:sm:3' previd='{previd}' h='1'/>".encode())
    h._answer(h.stream.accept_resume(JID.parse("alice@hub.test/phone"), state))
    resumed, *resent, request = h.received[-4:]
    assert (resumed.tag, resumed.get("previd"), resumed.get("h")) == (f"{SM}resumed", previd, "1")
    assert [el.findtext("{jabber:client}body") for el in resent] == ["1", "2"]
    assert request.tag == f"{SM}r"
    assert h.stream.state is StreamState.READY
    assert h.send(a(3)) == [AckReceived(3)]


def test_resume_with_an_h_above_what_was_sent_ends_the_stream() -> None:
    state = StreamManagement(SmConfig(), "id")
    h = Harness()
    h.to_authenticated()
    h.send(b"<resume xmlns='urn:xmpp:sm:3' previd='id' h='2'/>")
    h._answer(h.stream.accept_resume(JID.parse("alice@hub.test/phone"), state))
    assert h.stream.closed


def test_resume_before_authentication_just_fails() -> None:
    h = Harness()
    h.send(
        b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' "
        b"to='hub.test' version='1.0'>"
    )
    assert h.send(b"<resume xmlns='urn:xmpp:sm:3' previd='x' h='0'/>") == []
    assert h.last().tag == f"{SM}failed"


def test_no_second_r_while_one_is_unanswered() -> None:
    h = ready(SmConfig(request_every=2))
    h.send(ENABLE)
    for i in range(2):
        h.stream.send_xml(f"<message xmlns='jabber:client'><body>{i}</body></message>")
    h._drain_output()
    assert h.last().tag == f"{SM}r"
    for i in range(2, 6):  # four more: the <r/> is still unanswered, so no other
        h.stream.send_xml(f"<message xmlns='jabber:client'><body>{i}</body></message>")
    h._drain_output()
    assert [el.tag for el in h.received].count(f"{SM}r") == 1
    h.send(a(2))  # the answer: the stanzas sent meanwhile are asked about at once
    assert h.last().tag == f"{SM}r"
    h.received.clear()
    h.send(a(6))
    assert h.received == []  # nothing unasked left
