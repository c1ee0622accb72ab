"""The transition table itself: every (state, input) pair is handled by its entry or by a stated
rule, handlers stay inside their declared targets, and the documented diagram is the table's."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from interlink.errors import StanzaError, StanzaErrorCondition
from interlink.xmpp import ns
from interlink.xmpp.framing import Framing
from interlink.xmpp.jid import JID
from interlink.xmpp.stream import machine
from interlink.xmpp.stream.events import StreamClosed, StreamEvent
from interlink.xmpp.stream.machine import (
    PEER_INPUTS,
    SHELL_INPUTS,
    TRANSITIONS,
    UNEXPECTED,
    WAITING,
    Input,
    ServerStream,
    StreamState,
    Transition,
    mermaid,
)
from interlink.xmpp.stream.sm import SmConfig, StreamManagement
from tests.streamkit import CONFIG, CREDS, PASSWORD, b64

ARCHITECTURE = Path(__file__).parents[2] / "docs" / "architecture.md"
OPEN = f"<open xmlns='{ns.FRAMING}' to='hub.test' version='1.0'/>".encode()
PLAIN = (
    f"<auth xmlns='{ns.SASL}' mechanism='PLAIN'>{b64(chr(0) + 'alice' + chr(0) + PASSWORD)}</auth>"
)
BIND = (f"<iq xmlns='jabber:client' type='set' id='b'><bind xmlns='{ns.BIND}'/></iq>").encode()


def ws_stream(*, secure: bool = True) -> ServerStream:
    # WebSocket framing: every input is one frame, and <open/> can arrive in any state.
    return ServerStream(CONFIG, now=0, framing=Framing.WEBSOCKET, secure=secure)


def to_negotiating() -> ServerStream:
    s = ws_stream()
    s.receive_frame(OPEN)
    return s


def to_tls_starting() -> ServerStream:
    s = ws_stream(secure=False)
    s.receive_frame(OPEN)
    s.receive_frame(f"<starttls xmlns='{ns.TLS}'/>".encode())
    return s


def to_wait_credentials() -> ServerStream:
    s = to_negotiating()
    s.receive_frame(PLAIN.encode())
    return s


def to_sasl() -> ServerStream:
    s = to_negotiating()
    s.receive_frame(
        f"<auth xmlns='{ns.SASL}' mechanism='SCRAM-SHA-256'>{b64('n,,n=alice,r=abcdef')}</auth>".encode()
    )
    s.supply_credentials(CREDS)  # the server-first message is a challenge
    return s


def to_binding() -> ServerStream:
    s = to_wait_credentials()
    s.supply_credentials(CREDS)
    s.receive_frame(OPEN)
    s.receive_frame(BIND)
    return s


def to_resuming() -> ServerStream:
    s = to_wait_credentials()
    s.supply_credentials(CREDS)
    s.receive_frame(OPEN)
    s.receive_frame(b"<resume xmlns='urn:xmpp:sm:3' previd='x' h='0'/>")
    return s


def to_ready() -> ServerStream:
    s = to_binding()
    s.accept_bind(JID.parse("alice@hub.test/r"))
    return s


def to_closed() -> ServerStream:
    s = to_negotiating()
    s.close()
    return s


REACH: dict[StreamState, Callable[[], ServerStream]] = {
    StreamState.WAIT_HEADER: ws_stream,
    StreamState.NEGOTIATING: to_negotiating,
    StreamState.TLS_STARTING: to_tls_starting,
    StreamState.SASL: to_sasl,
    StreamState.WAIT_CREDENTIALS: to_wait_credentials,
    StreamState.BINDING: to_binding,
    StreamState.RESUMING: to_resuming,
    StreamState.READY: to_ready,
    StreamState.CLOSED: to_closed,
}

PEER_SAMPLES: dict[Input, bytes] = {
    Input.HEADER: OPEN,
    Input.FOOTER: f"<close xmlns='{ns.FRAMING}'/>".encode(),
    Input.STARTTLS: f"<starttls xmlns='{ns.TLS}'/>".encode(),
    Input.SASL_AUTH: PLAIN.encode(),
    Input.SASL_RESPONSE: f"<response xmlns='{ns.SASL}'>=</response>".encode(),
    Input.SASL_ABORT: f"<abort xmlns='{ns.SASL}'/>".encode(),
    Input.STANZA: b"<presence xmlns='jabber:client'/>",
    Input.OTHER: b"<foo xmlns='jabber:client'/>",
    Input.FOREIGN: b"<foo xmlns='urn:example:unknown'/>",
    Input.SM_ENABLE: b"<enable xmlns='urn:xmpp:sm:3'/>",
    Input.SM_REQUEST: b"<r xmlns='urn:xmpp:sm:3'/>",
    Input.SM_ACK: b"<a xmlns='urn:xmpp:sm:3' h='0'/>",
    Input.SM_RESUME: b"<resume xmlns='urn:xmpp:sm:3' previd='x' h='0'/>",
    Input.CSI_ACTIVE: b"<active xmlns='urn:xmpp:csi:0'/>",
    Input.CSI_INACTIVE: b"<inactive xmlns='urn:xmpp:csi:0'/>",
}

SHELL_CALLS: dict[Input, Callable[[ServerStream], list[StreamEvent] | None]] = {
    Input.TLS_ESTABLISHED: lambda s: s.tls_established(),
    Input.CREDENTIALS: lambda s: s.supply_credentials(CREDS),
    Input.BIND_ACCEPTED: lambda s: s.accept_bind(JID.parse("alice@hub.test/r")),
    Input.BIND_REFUSED: lambda s: s.refuse_bind(StanzaError(StanzaErrorCondition.CONFLICT, "")),
    Input.RESUME_ACCEPTED: lambda s: s.accept_resume(
        JID.parse("alice@hub.test/r"), StreamManagement(SmConfig())
    ),
    Input.RESUME_REFUSED: lambda s: s.refuse_resume(),
}

PAIRS = [(state, kind) for state in StreamState for kind in Input]


def test_the_samples_cover_every_state_and_input() -> None:
    assert set(REACH) == set(StreamState)
    assert set(PEER_SAMPLES) == PEER_INPUTS
    assert set(SHELL_CALLS) == SHELL_INPUTS
    assert set(Input) == PEER_INPUTS | SHELL_INPUTS
    for state, reach in REACH.items():
        assert reach().state is state


def test_every_unhandled_peer_input_has_a_defined_error() -> None:
    reading = set(StreamState) - WAITING - {StreamState.TLS_STARTING, StreamState.CLOSED}
    for state in reading:
        for kind in PEER_INPUTS:
            assert (state, kind) in TRANSITIONS or kind in UNEXPECTED, (state, kind)
    for state, kind in TRANSITIONS:
        assert state is not StreamState.CLOSED
        assert kind in SHELL_INPUTS or state in reading, (state, kind)  # reachable at all


def test_every_entry_declares_where_it_leads() -> None:
    for key, transition in TRANSITIONS.items():
        assert transition.targets, key
        assert len(set(transition.targets)) == len(transition.targets), key


@pytest.mark.parametrize(("state", "kind"), PAIRS, ids=[f"{s.name}-{k.name}" for s, k in PAIRS])
def test_each_pair_does_what_the_table_or_the_rules_say(state: StreamState, kind: Input) -> None:
    s = REACH[state]()
    s.frames_to_send()
    if kind in PEER_INPUTS:
        events = s.receive_frame(PEER_SAMPLES[kind])
    else:
        events = SHELL_CALLS[kind](s) or []
    transition = TRANSITIONS.get((state, kind))
    if transition is not None:
        assert s.state in (*transition.targets, StreamState.CLOSED)
        return
    if state is StreamState.CLOSED or kind in SHELL_INPUTS:
        # nothing happens: the stream is over, or the shell answered a question not asked
        assert (events, s.state, s.frames_to_send()) == ([], state, [])
    elif state is StreamState.TLS_STARTING or state in WAITING:
        # the TLS handshake is not XML; while the shell is asked, the peer's input waits
        assert (events, s.state) == ([], state)
    else:
        (closed,) = events
        assert isinstance(closed, StreamClosed)
        assert closed.error is not None
        assert closed.error.condition is UNEXPECTED[kind][0]
        assert s.closed


def test_a_handler_leaving_an_undeclared_state_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    key = (StreamState.WAIT_HEADER, Input.HEADER)
    wrong = {**TRANSITIONS, key: Transition(TRANSITIONS[key].handler, (StreamState.READY,))}
    monkeypatch.setattr(machine, "TRANSITIONS", wrong)
    with pytest.raises(AssertionError, match="WAIT_HEADER --HEADER--> NEGOTIATING"):
        ws_stream().receive_frame(OPEN)


def documented_diagram() -> str:
    text = ARCHITECTURE.read_text()
    section = text.split("### Stream states", 1)[1]
    match = re.search(r"```mermaid\n(.*?)```", section, re.DOTALL)
    assert match, "no mermaid block under '### Stream states'"
    return match.group(1)


def test_the_documented_diagram_is_the_table() -> None:
    assert documented_diagram() == mermaid(), (
        "docs/architecture.md is out of date; paste the output of "
        "`python -c 'from interlink.xmpp.stream import mermaid; print(mermaid(), end=\"\")'`"
    )


def test_the_diagram_has_an_edge_for_every_target() -> None:
    diagram = mermaid()
    for (state, kind), transition in TRANSITIONS.items():
        for target in transition.targets:
            assert f"{state.name} --> {target.name} : {kind.value}\n" in diagram
