"""XEP-0114 external components, sans I/O: the handshake, the from rule, the deadline."""

from __future__ import annotations

import hashlib
from xml.etree.ElementTree import Element

from interlink.xmpp.jid import JID
from interlink.xmpp.parser import ElementReceived, StreamHeader, StreamParser
from interlink.xmpp.stanza import Iq, IqType
from interlink.xmpp.stream.component import (
    ComponentAuthenticated,
    ComponentClosed,
    ComponentConfig,
    ComponentStanza,
    ComponentState,
    ComponentStream,
)

CONFIG = ComponentConfig({"push.hub.test": "s3cret"}, handshake_timeout=10.0)
HEADER = (
    b"<stream:stream xmlns='jabber:component:accept' "
    b"xmlns:stream='http://etherx.jabber.org/streams' to='push.hub.test'>"
)
STREAMS = "{urn:ietf:params:xml:ns:xmpp-streams}"


def output(stream: ComponentStream, parser: StreamParser) -> list[Element]:
    return [
        ev.element for ev in parser.feed(stream.data_to_send()) if isinstance(ev, ElementReceived)
    ]


def opened() -> tuple[ComponentStream, StreamParser, str]:
    stream = ComponentStream(CONFIG, now=0.0)
    stream.receive_data(HEADER)
    parser = StreamParser()
    (header,) = [ev for ev in parser.feed(stream.data_to_send()) if isinstance(ev, StreamHeader)]
    assert header.attrs["id"] == stream.stream_id
    assert "version" not in header.attrs  # XEP-0114: no features follow
    return stream, parser, stream.stream_id


def handshake(stream_id: str, secret: str) -> bytes:
    digest = hashlib.sha1((stream_id + secret).encode()).hexdigest()  # noqa: S324
    return f"<handshake>{digest}</handshake>".encode()


def test_the_right_handshake_makes_the_stream_ready() -> None:
    stream, parser, sid = opened()
    assert stream.receive_data(handshake(sid, "s3cret")) == [
        ComponentAuthenticated("push.hub.test")
    ]
    (answer,) = output(stream, parser)
    assert answer.tag == "{jabber:component:accept}handshake"
    assert stream.state is ComponentState.READY
    assert stream.get_timer() is None


def test_a_wrong_secret_is_not_authorized() -> None:
    stream, parser, sid = opened()
    (closed,) = stream.receive_data(handshake(sid, "guess"))
    assert isinstance(closed, ComponentClosed)
    (error,) = output(stream, parser)
    assert error[0].tag == f"{STREAMS}not-authorized"
    assert stream.closed


def test_an_unknown_domain_is_host_unknown() -> None:
    stream = ComponentStream(CONFIG, now=0.0)
    (closed,) = stream.receive_data(HEADER.replace(b"push.hub.test", b"other.test"))
    assert isinstance(closed, ComponentClosed)
    assert closed.error is not None
    assert closed.error.condition == "host-unknown"


def test_stanzas_before_the_handshake_are_refused() -> None:
    stream, _, _ = opened()
    (closed,) = stream.receive_data(b"<iq type='get' id='1' from='push.hub.test'/>")
    assert isinstance(closed, ComponentClosed)
    assert closed.error is not None
    assert closed.error.condition == "not-authorized"


def test_stanzas_must_come_from_the_components_domain() -> None:
    stream, _, sid = opened()
    stream.receive_data(handshake(sid, "s3cret"))
    (ok,) = stream.receive_data(
        b"<iq type='result' id='p1' from='push.hub.test' to='alice@hub.test'/>"
    )
    assert isinstance(ok, ComponentStanza)
    assert ok.stanza == Iq(
        JID.parse("alice@hub.test"), JID.parse("push.hub.test"), "p1", None, (), IqType.RESULT
    )
    (sub,) = stream.receive_data(
        b"<message from='x@a.push.hub.test' to='alice@hub.test'><body>b</body></message>"
    )
    assert isinstance(sub, ComponentStanza)
    assert sub.stanza.find("{jabber:client}body") is not None  # the namespace is the hub's
    (forged,) = stream.receive_data(b"<message from='bob@hub.test' to='alice@hub.test'/>")
    assert isinstance(forged, ComponentClosed)
    assert forged.error is not None
    assert forged.error.condition == "invalid-from"


def test_the_handshake_deadline_at_its_boundary() -> None:
    stream, _, _ = opened()
    assert stream.get_timer() == 10.0
    assert stream.handle_timer(9.999) == []
    (closed,) = stream.handle_timer(10.0)
    assert isinstance(closed, ComponentClosed)
    assert closed.error is not None
    assert closed.error.condition == "connection-timeout"


def test_stanzas_to_the_component_are_in_its_namespace() -> None:
    stream, parser, sid = opened()
    stream.receive_data(handshake(sid, "s3cret"))
    output(stream, parser)
    stream.send_stanza(
        Iq(JID.parse("push.hub.test"), JID.parse("alice@hub.test"), "n1", None, (), IqType.SET)
    )
    (iq,) = output(stream, parser)
    assert iq.tag == "{jabber:component:accept}iq"
    assert (iq.get("to"), iq.get("from"), iq.get("type")) == (
        "push.hub.test",
        "alice@hub.test",
        "set",
    )
