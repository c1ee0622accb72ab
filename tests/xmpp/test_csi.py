"""XEP-0352 client state indication, sans I/O: what an inactive stream holds, what it drops as
superseded, what goes at once, the flush on <active/> and at the limit, and stream management
counting only what was written."""

from __future__ import annotations

from dataclasses import replace

from interlink.xmpp.stream.csi import ClientStateFilter, CsiConfig
from interlink.xmpp.stream.sm import SmConfig
from tests.streamkit import CONFIG, Harness

C = "xmlns='jabber:client'"
STATE = "<{s} xmlns='http://jabber.org/protocol/chatstates'/>"


def presence(sender: str, show: str = "") -> str:
    inner = f"<show>{show}</show>" if show else ""
    return f"<presence {C} from='{sender}'>{inner}</presence>"


def chat_state(sender: str, state: str) -> str:
    return f"<message {C} type='chat' from='{sender}'>{STATE.format(s=state)}</message>"


def chat(sender: str, body: str) -> str:
    return f"<message {C} type='chat' from='{sender}'><body>{body}</body></message>"


def inactive(max_held: int = 100) -> ClientStateFilter:
    f = ClientStateFilter(CsiConfig(max_held=max_held))
    assert f.set_active(False) == []
    return f


def test_an_active_client_gets_everything_at_once() -> None:
    f = ClientStateFilter(CsiConfig())
    assert f.outgoing(presence("a@x/1")) == [(presence("a@x/1"), False)]


def test_presence_is_held_latest_per_sender_and_flushed_on_active() -> None:
    f = inactive()
    for xml in (presence("a@x/1", "away"), presence("b@x/1"), presence("a@x/1", "dnd")):
        assert f.outgoing(xml) == []
    sub = f"<presence {C} from='c@x' type='subscribe'/>"
    assert f.outgoing(sub) == []
    assert f.held == 3
    assert [x for x, _ in f.set_active(True)] == [
        presence("b@x/1"),
        presence("a@x/1", "dnd"),  # the latest from a@x/1 only
        sub,
    ]
    assert f.held == 0


def test_superseded_chat_states_are_dropped_and_a_message_flushes_first() -> None:
    f = inactive()
    assert f.outgoing(chat_state("a@x/1", "composing")) == []
    assert f.outgoing(chat_state("a@x/2", "paused")) == []  # same bare JID: supersedes
    assert f.outgoing(presence("b@x/1")) == []
    sent = f.outgoing(chat("a@x/1", "hi"))
    assert [x for x, _ in sent] == [
        chat_state("a@x/2", "paused"),
        presence("b@x/1"),
        chat("a@x/1", "hi"),
    ]
    assert f.held == 0


def test_encrypted_messages_iqs_and_stored_stanzas_go_at_once() -> None:
    f = inactive()
    omemo = f"<message {C} from='a@x/1'><encrypted xmlns='urn:xmpp:omemo:2'/></message>"
    assert f.outgoing(omemo) == [(omemo, False)]
    assert f.outgoing(presence("b@x/1")) == []
    iq = f"<iq {C} type='result' id='1'/>"
    assert f.outgoing(iq) == [(iq, False)]  # past what is held, which stays held
    assert f.held == 1
    receipt = f"<message {C} from='a@x/1'><received xmlns='urn:xmpp:receipts' id='m'/></message>"
    assert f.outgoing(receipt, stored=True) == [(presence("b@x/1"), False), (receipt, True)]
    assert f.outgoing(receipt) == []  # the same live: held, in order


def test_the_held_limit_at_its_boundary() -> None:
    f = inactive(max_held=3)
    for i in range(3):
        assert f.outgoing(presence(f"c{i}@x/1")) == []  # up to the limit: held
    sent = f.outgoing(presence("c3@x/1"))  # one more: everything goes
    assert [x for x, _ in sent] == [presence(f"c{i}@x/1") for i in range(4)]
    assert f.held == 0
    # a replacement does not grow the queue
    for _ in range(5):
        assert f.outgoing(presence("c0@x/1")) == []
    assert f.held == 1


# -- on the stream ----------------------------------------------------------------------------
def ready() -> Harness:
    h = Harness(config=replace(CONFIG, sm=SmConfig(request_every=1000)))
    h.to_bound()
    h.send(b"<enable xmlns='urn:xmpp:sm:3'/>")
    h.received.clear()
    return h


def test_held_stanzas_are_not_counted_sent_until_they_leave() -> None:
    h = ready()
    h.send(b"<inactive xmlns='urn:xmpp:csi:0'/>")
    assert h.stream.sm is not None
    h.stream.send_xml(presence("b@hub.test/1"))
    h.stream.send_xml(chat_state("b@hub.test/1", "composing"))
    h._drain_output()
    assert h.received == []
    assert h.stream.sm.sent == 0  # held: not sent, so not in the unacknowledged queue
    h.send(b"<active xmlns='urn:xmpp:csi:0'/>")
    assert [el.tag for el in h.received] == ["{jabber:client}presence", "{jabber:client}message"]
    assert h.stream.sm.sent == 2
    h.send(b"<a xmlns='urn:xmpp:sm:3' h='2'/>")
    assert not h.stream.closed


def test_what_is_held_when_the_stream_closes_joins_the_unacknowledged() -> None:
    h = ready()
    h.send(b"<inactive xmlns='urn:xmpp:csi:0'/>")
    receipt = f"<message {C} from='b@hub.test/1'><received xmlns='urn:xmpp:receipts'/></message>"
    h.stream.send_xml(receipt)
    h.stream.close()
    assert h.stream.sm is not None
    assert [u.xml for u in h.stream.sm.unacked()] == [receipt]


def test_csi_when_not_offered_is_a_stream_error() -> None:
    h = Harness(config=replace(CONFIG, csi=None))
    h.to_bound()
    h.send(b"<inactive xmlns='urn:xmpp:csi:0'/>")
    assert h.stream.closed
