"""The server-role stream state machine: negotiation tables, SASL, binding, errors."""

from __future__ import annotations

import gc
import weakref

import pytest
from scramp import ScramClient

from interlink.errors import SaslCondition, StanzaError, StanzaErrorCondition, StreamErrorCondition
from interlink.xmpp.framing import Framing
from interlink.xmpp.jid import JID
from interlink.xmpp.parser import XmlLimits
from interlink.xmpp.stanza import Message
from interlink.xmpp.stream import (
    Authenticated,
    AuthenticationFailed,
    BindRequested,
    CredentialsRequested,
    ServerStream,
    SingleDomain,
    StanzaReceived,
    StreamClosed,
    StreamConfig,
    StreamState,
    TlsStartRequested,
)
from tests.streamkit import CONFIG, DOMAIN, HOSTS, OPEN, PASSWORD, SASL, Harness, b64

STREAMS = "urn:ietf:params:xml:ns:xmpp-streams"
WS_OPEN = b"<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='hub.test' version='1.0'/>"


def stream_error(h: Harness) -> str:
    errors = [el for el in h.received if el.tag == "{http://etherx.jabber.org/streams}error"]
    assert errors, h.tags()
    assert h.footer
    conditions = [c.tag.rsplit("}", 1)[1] for c in errors[-1] if c.tag != f"{{{STREAMS}}}text"]
    return conditions[0]


def features(h: Harness) -> list[str]:
    feats = h.last()
    assert feats.tag == "{http://etherx.jabber.org/streams}features"
    return [child.tag for child in feats]


def test_initial_features_require_starttls_only() -> None:
    h = Harness()
    h.send(OPEN)
    assert features(h) == ["{urn:ietf:params:xml:ns:xmpp-tls}starttls"]
    assert h.last()[0][0].tag == "{urn:ietf:params:xml:ns:xmpp-tls}required"


def test_full_negotiation_with_scram_sha_256() -> None:
    h = Harness()
    h.send(OPEN)
    assert isinstance(
        h.send(b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")[0], TlsStartRequested
    )
    assert h.tags()[-1] == "proceed"
    assert h.stream.state is StreamState.TLS_STARTING
    # Bytes after <starttls/> are the TLS handshake, never parsed as XML.
    assert h.send(b"\x16\x03\x01garbage") == []
    h.stream.tls_established()
    h.restart_parser_for_output()
    h.send(OPEN)
    mechanisms = [m.text for m in h.last()[0]]
    assert mechanisms == ["SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN"]
    client = ScramClient(["SCRAM-SHA-256"], "alice", PASSWORD)
    events = h.send(
        f"<auth xmlns='{SASL}' mechanism='SCRAM-SHA-256'>{b64(client.get_client_first())}</auth>".encode()
    )
    assert events[0] == CredentialsRequested("SCRAM-SHA-256", "alice")
    challenge = h.last()
    assert challenge.tag == f"{{{SASL}}}challenge"
    import base64

    client.set_server_first(base64.b64decode(challenge.text or "").decode())
    events = h.send(
        f"<response xmlns='{SASL}'>{b64(client.get_client_final())}</response>".encode()
    )
    assert events == [Authenticated("alice")]
    success = h.last()
    assert success.tag == f"{{{SASL}}}success"
    client.set_server_final(base64.b64decode(success.text or "").decode())  # verifies the server
    h.restart_parser_for_output()
    h.send(OPEN)
    assert features(h) == [
        "{urn:ietf:params:xml:ns:xmpp-bind}bind",
        "{urn:ietf:params:xml:ns:xmpp-session}session",
        "{urn:xmpp:sm:3}sm",
        "{urn:xmpp:csi:0}csi",
    ]
    events = h.send(b"<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>")
    assert events == [BindRequested(None)]
    bind_ns = "{urn:ietf:params:xml:ns:xmpp-bind}"
    assert h.last().findtext(f"{bind_ns}bind/{bind_ns}jid") == "alice@hub.test/generated"
    assert h.stream.get_timer() is None


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-1", "SCRAM-SHA-256"])
def test_scram_wrong_password_and_unknown_user_look_alike(mechanism: str) -> None:
    import base64

    for user in ("alice", "mallory"):
        h = Harness(secure=True)
        h.send(OPEN)
        client = ScramClient([mechanism], user, "wrong password")
        h.send(
            f"<auth xmlns='{SASL}' mechanism='{mechanism}'>{b64(client.get_client_first())}</auth>".encode()
        )
        assert h.last().tag == f"{{{SASL}}}challenge"
        client.set_server_first(base64.b64decode(h.last().text or "").decode())
        events = h.send(
            f"<response xmlns='{SASL}'>{b64(client.get_client_final())}</response>".encode()
        )
        assert events == [
            AuthenticationFailed(SaslCondition.NOT_AUTHORIZED, "authentication failed")
        ]
        assert h.last().tag == f"{{{SASL}}}failure"
        assert h.last()[0].tag == f"{{{SASL}}}not-authorized"
        assert h.stream.state is StreamState.NEGOTIATING


def test_unknown_user_salt_is_stable() -> None:
    import base64

    salts = []
    for _ in range(2):
        h = Harness(secure=True)
        h.send(OPEN)
        client = ScramClient(["SCRAM-SHA-256"], "nobody", "x")
        h.send(
            f"<auth xmlns='{SASL}' mechanism='SCRAM-SHA-256'>{b64(client.get_client_first())}</auth>".encode()
        )
        first = base64.b64decode(h.last().text or "").decode()
        salts.append(next(p for p in first.split(",") if p.startswith("s=")))
    assert salts[0] == salts[1]


def auth_plain(h: Harness, user: str, password: str) -> None:
    h.send(
        f"<auth xmlns='{SASL}' mechanism='PLAIN'>{b64(chr(0) + user + chr(0) + password)}</auth>".encode()
    )


def test_plain_inside_tls() -> None:
    h = Harness(secure=True)
    h.send(OPEN)
    auth_plain(h, "alice", PASSWORD)
    assert h.events[-1] == Authenticated("alice")
    assert h.last().tag == f"{{{SASL}}}success"


@pytest.mark.parametrize(
    ("auth", "condition"),
    [
        (f"<auth xmlns='{SASL}' mechanism='DIGEST-MD5'/>", "invalid-mechanism"),
        (f"<auth xmlns='{SASL}' mechanism='X-UNKNOWN'>AAAA</auth>", "invalid-mechanism"),
        (f"<auth xmlns='{SASL}' mechanism='PLAIN'>!!notbase64!!</auth>", "incorrect-encoding"),
        (f"<auth xmlns='{SASL}' mechanism='PLAIN'>{b64('no-nuls')}</auth>", "malformed-request"),
        (
            f"<auth xmlns='{SASL}' mechanism='PLAIN'>{b64(chr(0) + 'alice' + chr(0) + 'bad')}</auth>",
            "not-authorized",
        ),
        (
            f"<auth xmlns='{SASL}' mechanism='PLAIN'>{b64('bob' + chr(0) + 'alice' + chr(0) + PASSWORD)}</auth>",
            "invalid-authzid",
        ),
        (
            f"<auth xmlns='{SASL}' mechanism='SCRAM-SHA-256'>{b64('p=tls-unique,,n=alice,r=abc')}</auth>",
            "malformed-request",
        ),
        (
            f"<auth xmlns='{SASL}' mechanism='SCRAM-SHA-256'>{b64('n,,x=alice,r=abc')}</auth>",
            "malformed-request",
        ),
    ],
)
def test_sasl_failures(auth: str, condition: str) -> None:
    h = Harness(secure=True)
    h.send(OPEN)
    h.send(auth.encode())
    failure = h.last()
    assert failure.tag == f"{{{SASL}}}failure"
    assert failure[0].tag == f"{{{SASL}}}{condition}"
    assert not h.stream.closed
    auth_plain(h, "alice", PASSWORD)  # the client may try again
    assert h.events[-1] == Authenticated("alice")


def test_abort() -> None:
    h = Harness(secure=True)
    h.send(OPEN)
    h.send(
        f"<auth xmlns='{SASL}' mechanism='SCRAM-SHA-256'>{b64('n,,n=alice,r=abcdef')}</auth>".encode()
    )
    h.send(f"<abort xmlns='{SASL}'/>".encode())
    assert h.last()[0].tag == f"{{{SASL}}}aborted"


def test_too_many_failures_end_the_stream() -> None:
    h = Harness(secure=True, config=StreamConfig(hosts=HOSTS, max_auth_failures=2))
    h.send(OPEN)
    auth_plain(h, "alice", "bad1")
    assert not h.stream.closed
    auth_plain(h, "alice", "bad2")
    assert h.stream.closed
    assert stream_error(h) == "policy-violation"


def test_plain_is_not_offered_nor_accepted_without_tls() -> None:
    h = Harness(config=StreamConfig(hosts=HOSTS, tls_required=False))
    h.send(OPEN)
    feats = h.last()
    mechanisms = [m.text for f in feats for m in f if f.tag == f"{{{SASL}}}mechanisms"]
    assert mechanisms == ["SCRAM-SHA-256", "SCRAM-SHA-1"]
    auth_plain(h, "alice", PASSWORD)
    assert h.last()[0].tag == f"{{{SASL}}}encryption-required"


def test_auth_before_starttls_when_required() -> None:
    h = Harness()
    h.send(OPEN)
    auth_plain(h, "alice", PASSWORD)
    assert stream_error(h) == "policy-violation"


@pytest.mark.parametrize(
    "stanza",
    [
        b"<message to='bob@hub.test'><body>hi</body></message>",
        b"<presence/>",
        b"<iq type='get' id='1'><ping xmlns='urn:xmpp:ping'/></iq>",
    ],
)
def test_stanza_before_authentication(stanza: bytes) -> None:
    h = Harness(secure=True)
    h.send(OPEN)
    h.send(stanza)
    assert stream_error(h) == "not-authorized"
    assert isinstance(h.events[-1], StreamClosed)


def test_stanza_after_auth_before_bind() -> None:
    h = Harness(secure=True)
    h.send(OPEN)
    auth_plain(h, "alice", PASSWORD)
    h.restart_parser_for_output()
    h.send(OPEN)
    h.send(b"<message to='bob@hub.test'><body>hi</body></message>")
    assert stream_error(h) == "not-authorized"


def test_stanzas_after_bind_get_stamped_from() -> None:
    h = Harness()
    h.to_bound("phone")
    events = h.send(b"<message to='bob@hub.test' type='chat' id='m1'><body>hi</body></message>")
    assert len(events) == 1
    assert isinstance(events[0], StanzaReceived)
    msg = events[0].stanza
    assert isinstance(msg, Message)
    assert msg.from_ == JID.parse("alice@hub.test/phone")
    assert msg.body == "hi"


@pytest.mark.parametrize("claimed", ["alice@hub.test/phone", "alice@hub.test", "ALICE@hub.test"])
def test_own_from_is_accepted(claimed: str) -> None:
    h = Harness()
    h.to_bound("phone")
    events = h.send(
        f"<message from='{claimed}' to='bob@hub.test'><body>x</body></message>".encode()
    )
    assert isinstance(events[0], StanzaReceived)
    assert events[0].stanza.from_ == JID.parse("alice@hub.test/phone")


@pytest.mark.parametrize(
    "claimed", ["bob@hub.test", "alice@hub.test/other", "hub.test", "not a jid@@"]
)
def test_spoofed_from_ends_the_stream(claimed: str) -> None:
    h = Harness()
    h.to_bound("phone")
    events = h.send(
        f"<message from='{claimed}' to='bob@hub.test'><body>x</body></message>".encode()
    )
    assert not any(isinstance(e, StanzaReceived) for e in events)
    assert stream_error(h) == "invalid-from"


def test_malformed_to_gets_a_stanza_error_and_the_stream_lives() -> None:
    h = Harness()
    h.to_bound()
    h.send(b"<message to='@@bad' id='x1'><body>x</body></message>")
    err = h.last()
    assert err.get("type") == "error"
    assert err.get("id") == "x1"
    assert err[0][0].tag == "{urn:ietf:params:xml:ns:xmpp-stanzas}jid-malformed"
    assert not h.stream.closed
    events = h.send(b"<message to='bob@hub.test'><body>x</body></message>")
    assert isinstance(events[0], StanzaReceived)


def test_iq_without_id_is_bad_request() -> None:
    h = Harness()
    h.to_bound()
    h.send(b"<iq type='get'><ping xmlns='urn:xmpp:ping'/></iq>")
    assert h.last()[0][0].tag == "{urn:ietf:params:xml:ns:xmpp-stanzas}bad-request"


def test_bind_conflict_refused() -> None:
    h = Harness(bind_error=StanzaError(StanzaErrorCondition.CONFLICT, "in use"))
    h.to_bound("phone")
    reply = h.last()
    assert reply.get("type") == "error"
    assert reply[0][0].tag == "{urn:ietf:params:xml:ns:xmpp-stanzas}conflict"
    assert h.stream.state is StreamState.NEGOTIATING  # the client may bind another resource


def test_session_iq_is_answered_for_old_clients() -> None:
    h = Harness()
    h.to_bound()
    h.send(b"<iq type='set' id='s1'><session xmlns='urn:ietf:params:xml:ns:xmpp-session'/></iq>")
    assert h.last().get("type") == "result"
    assert h.last().get("id") == "s1"


@pytest.mark.parametrize(
    ("header", "condition"),
    [
        (OPEN.replace(b"hub.test", b"other.example"), "host-unknown"),
        (OPEN.replace(b"version='1.0'", b"version='2.0'"), "unsupported-version"),
        (OPEN.replace(b"version='1.0'", b""), "unsupported-version"),
        (OPEN.replace(b"http://etherx.jabber.org/streams", b"urn:wrong"), "invalid-namespace"),
    ],
)
def test_bad_stream_headers(header: bytes, condition: str) -> None:
    h = Harness()
    h.send(header)
    assert stream_error(h) == condition


def test_unknown_top_level_namespace() -> None:
    h = Harness()
    h.to_bound()
    h.send(b"<message xmlns='jabber:server'/>")
    assert stream_error(h) == "invalid-namespace"


def test_unknown_element_in_client_namespace() -> None:
    h = Harness()
    h.to_bound()
    h.send(b"<foo/>")
    assert stream_error(h) == "unsupported-stanza-type"


def test_restricted_xml_reaches_the_peer_as_a_stream_error() -> None:
    h = Harness()
    h.send(OPEN + b"<!-- nope -->")
    assert stream_error(h) == "restricted-xml"
    assert h.stream.closed


def test_error_before_header_sends_a_header_first() -> None:
    h = Harness()
    h.send(b"<!DOCTYPE x>")
    assert stream_error(h) == "restricted-xml"


def test_auth_timeout_uses_the_time_passed_in() -> None:
    h = Harness(now=100.0)
    h.send(OPEN)
    assert h.stream.get_timer() == 100.0 + CONFIG.auth_timeout
    assert h.timer(129.9) == []
    events = h.timer(130.0)
    assert isinstance(events[-1], StreamClosed)
    assert stream_error(h) == "connection-timeout"


def test_peer_close_is_answered() -> None:
    h = Harness()
    h.to_bound()
    events = h.send(b"</stream:stream>")
    assert events == [StreamClosed(None, by_peer=True)]
    assert h.footer


def test_server_close_with_error_text() -> None:
    from interlink.errors import StreamError

    h = Harness()
    h.to_bound()
    h.stream.close(StreamError(StreamErrorCondition.SYSTEM_SHUTDOWN, "bye"))
    h._drain_output()
    assert stream_error(h) == "system-shutdown"


# A client waits for <success/> before it restarts the stream (RFC 6120 §6.4.6), so the script is
# two steps; every byte boundary inside and between them is tried.
PLAIN_STEPS = (
    OPEN
    + f"<auth xmlns='{SASL}' mechanism='PLAIN'>{b64(chr(0) + 'alice' + chr(0) + PASSWORD)}</auth>".encode(),
    OPEN
    + b"<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>r1</resource></bind></iq>"
    + b"<presence><priority>1</priority></presence>"
    + "<message to='bob@hub.test' type='chat'><body>h\u00e9 &amp; \u2603</body></message>".encode()
    + b"</stream:stream>",
)


def run_script(cut: int | None, *, hibernate: bool = False) -> list[str]:
    h = Harness(secure=True)
    offset = 0
    for step in PLAIN_STEPS:
        pieces = [step]
        if cut is not None and offset < cut < offset + len(step):
            pieces = [step[: cut - offset], step[cut - offset :]]
        for piece in pieces:
            h.send(piece)
            if hibernate:
                h.stream.hibernate()  # an idle sweep may strike between any two reads
        offset += len(step)
    out = []
    for ev in h.events:
        if isinstance(ev, StanzaReceived):
            body = getattr(ev.stanza, "body", None)
            out.append(f"stanza {type(ev.stanza).__name__} {ev.stanza.from_} {body}")
        else:
            out.append(repr(ev))
    return out


def test_negotiation_split_at_every_byte_boundary() -> None:
    expected = run_script(None)
    assert expected == [
        "CredentialsRequested(mechanism='PLAIN', username='alice')",
        "Authenticated(username='alice')",
        "BindRequested(resource='r1')",
        "stanza Presence alice@hub.test/r1 None",
        "stanza Message alice@hub.test/r1 hé & ☃",
        "StreamClosed(error=None, by_peer=True)",
    ]
    for cut in range(1, sum(map(len, PLAIN_STEPS))):
        assert run_script(cut) == expected, cut
        assert run_script(cut, hibernate=True) == expected, cut


def test_input_pipelined_behind_a_bind_request_waits_for_the_binding() -> None:
    from interlink.xmpp.stream import ServerStream
    from tests.streamkit import CREDS

    s = ServerStream(CONFIG, now=0, secure=True)
    s.receive_data(OPEN)
    s.receive_data(
        f"<auth xmlns='{SASL}' mechanism='PLAIN'>{b64(chr(0) + 'alice' + chr(0) + PASSWORD)}</auth>".encode()
    )
    s.supply_credentials(CREDS)
    s.receive_data(OPEN)
    events = s.receive_data(
        b"<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq><presence/>"
    )
    assert events == [BindRequested(None)]
    more = s.accept_bind(JID.parse("alice@hub.test/x"))
    assert len(more) == 1
    assert isinstance(more[0], StanzaReceived)
    assert more[0].stanza.from_ == JID.parse("alice@hub.test/x")


def test_websocket_framing_negotiation() -> None:
    s = ServerStream(CONFIG, now=0, framing=Framing.WEBSOCKET, secure=True)
    s.receive_frame(
        b"<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='hub.test' version='1.0'/>"
    )
    frames = s.frames_to_send()
    assert frames[0].startswith('<open xmlns="urn:ietf:params:xml:ns:xmpp-framing"')
    assert frames[1].startswith('<stream:features xmlns:stream="http://etherx.jabber.org/streams">')
    events = s.receive_frame(
        f"<auth xmlns='{SASL}' mechanism='PLAIN'>{b64(chr(0) + 'alice' + chr(0) + PASSWORD)}</auth>".encode()
    )
    assert events == [CredentialsRequested("PLAIN", "alice")]
    from tests.streamkit import CREDS

    assert s.supply_credentials(CREDS) == [Authenticated("alice")]
    s.frames_to_send()
    s.receive_frame(
        b"<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='hub.test' version='1.0'/>"
    )
    s.receive_frame(
        b"<iq xmlns='jabber:client' type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>"
    )
    s.accept_bind(JID.parse("alice@hub.test/ws"))
    frames = s.frames_to_send()
    assert frames[-1].startswith('<iq xmlns="jabber:client" type="result" id="b">')
    s.close()
    assert s.frames_to_send() == ['<close xmlns="urn:ietf:params:xml:ns:xmpp-framing"/>']


def ws_bound_stream() -> ServerStream:
    from tests.streamkit import CREDS

    s = ServerStream(CONFIG, now=0, framing=Framing.WEBSOCKET, secure=True)
    s.receive_frame(WS_OPEN)
    s.receive_frame(
        f"<auth xmlns='{SASL}' mechanism='PLAIN'>{b64(chr(0) + 'alice' + chr(0) + PASSWORD)}</auth>".encode()
    )
    s.supply_credentials(CREDS)
    s.receive_frame(WS_OPEN)
    s.receive_frame(
        b"<iq xmlns='jabber:client' type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>"
    )
    s.accept_bind(JID.parse("alice@hub.test/ws"))
    s.frames_to_send()
    return s


WS_PRESENCE = b"<presence xmlns='jabber:client'/>"
WS_MESSAGE = b"<message xmlns='jabber:client' to='bob@hub.test'><body>x</body></message>"


def test_websocket_one_stanza_per_frame_is_served() -> None:
    s = ws_bound_stream()
    events = [*s.receive_frame(WS_PRESENCE), *s.receive_frame(WS_MESSAGE)]
    assert [type(ev) for ev in events] == [StanzaReceived, StanzaReceived]
    assert not s.closed


@pytest.mark.parametrize(
    "frame",
    [WS_PRESENCE + WS_MESSAGE, WS_MESSAGE + b"\n" + WS_MESSAGE],
)
def test_websocket_two_stanzas_in_one_frame_end_the_stream(frame: bytes) -> None:
    s = ws_bound_stream()
    events = s.receive_frame(frame)
    assert len(events) == 1  # neither stanza is routed
    closed = events[0]
    assert isinstance(closed, StreamClosed)
    assert closed.error is not None
    assert closed.error.condition is StreamErrorCondition.BAD_FORMAT
    assert "one top-level element" in closed.error.text
    frames = s.frames_to_send()
    assert frames[0].startswith('<stream:error xmlns:stream="http://etherx.jabber.org/streams">')
    assert "<bad-format " in frames[0]
    assert frames[-1] == '<close xmlns="urn:ietf:params:xml:ns:xmpp-framing"/>'


def test_scram_challenge_has_the_same_shape_for_known_and_unknown_users() -> None:
    import base64

    shapes = []
    for user in ("alice", "nobody"):
        h = Harness(secure=True)
        h.send(OPEN)
        client = ScramClient(["SCRAM-SHA-256"], user, "x")
        h.send(
            f"<auth xmlns='{SASL}' mechanism='SCRAM-SHA-256'>{b64(client.get_client_first())}</auth>".encode()
        )
        fields = dict(
            part.split("=", 1) for part in base64.b64decode(h.last().text or "").decode().split(",")
        )
        shapes.append((len(base64.b64decode(fields["s"])), fields["i"], len(fields["r"])))
    assert shapes[0] == shapes[1]


@pytest.mark.parametrize("user", ["alice", "nobody"])
def test_plain_with_a_control_character_is_malformed_for_everyone(user: str) -> None:
    h = Harness(secure=True)
    h.send(OPEN)
    auth_plain(h, user, "pass\u0007word")
    assert h.last()[0].tag == f"{{{SASL}}}malformed-request"
    assert not h.stream.closed


def test_error_after_a_restart_sends_a_fresh_header() -> None:
    h = Harness(secure=True)
    h.send(OPEN)
    auth_plain(h, "alice", PASSWORD)
    h.send(OPEN.replace(b"hub.test", b"elsewhere.example"))
    # The output parser was restarted after <success/>: it needs a new header to parse the error.
    assert stream_error(h) == "host-unknown"


def test_session_iq_is_only_session_establishment_when_it_is_one() -> None:
    h = Harness()
    h.to_bound()
    events = h.send(
        b"<iq type='get' id='g' to='bob@hub.test/x'><session xmlns='urn:ietf:params:xml:ns:xmpp-session'/></iq>"
    )
    assert len(events) == 1
    assert isinstance(events[0], StanzaReceived)  # routed like any iq, not swallowed


OB_CONFIG = StreamConfig(
    hosts=SingleDomain(DOMAIN, subdomain_suffixes=(f".interop.{DOMAIN}",)), oauthbearer=True
)


def oauthbearer(token: str, authzid: str = "") -> bytes:
    gs2 = f"n,a={authzid}," if authzid else "n,,"
    return f"<auth xmlns='{SASL}' mechanism='OAUTHBEARER'>{b64(gs2 + chr(1) + 'auth=Bearer ' + token + chr(1) + chr(1))}</auth>".encode()


def test_oauthbearer_offered_only_inside_tls_and_when_enabled() -> None:
    h = Harness(secure=True, config=OB_CONFIG)
    h.send(OPEN)
    assert "OAUTHBEARER" in [m.text for m in h.last()[0]]
    h = Harness(secure=True)
    h.send(OPEN)
    assert "OAUTHBEARER" not in [m.text for m in h.last()[0]]
    h = Harness(config=StreamConfig(hosts=HOSTS, oauthbearer=True, tls_required=False))
    h.send(OPEN)
    h.send(oauthbearer("t"))
    assert h.last()[0].tag == f"{{{SASL}}}encryption-required"


def test_oauthbearer_success_and_refusals() -> None:
    from interlink.xmpp.stream import ServerStream, TokenCheckRequested

    jid = f"opaque@examplechat.interop.{DOMAIN}"
    for result, temporary, authzid, expected in [
        (jid, False, "", "success"),
        (jid, False, jid, "success"),
        (jid, False, "someone@else", "invalid-authzid"),
        (None, False, "", "not-authorized"),
        (None, True, "", "temporary-auth-failure"),
    ]:
        s = ServerStream(OB_CONFIG, now=0, secure=True)
        s.receive_data(OPEN)
        events = s.receive_data(oauthbearer("tok.en.x", authzid))
        assert events == [TokenCheckRequested("tok.en.x", authzid)]
        s.data_to_send()
        s.supply_token_result(result, text="why", temporary=temporary)
        out = s.data_to_send().decode()
        assert expected in out, (expected, out)


@pytest.mark.parametrize(
    "raw",
    [
        "n,,auth=Bearer x",
        "x,,\x01auth=Bearer x\x01\x01",
        "n,,\x01auth=Basic x\x01\x01",
        "n,,\x01\x01",
        "n,b=1,\x01auth=Bearer x\x01\x01",
    ],
)
def test_malformed_oauthbearer(raw: str) -> None:
    h = Harness(secure=True, config=OB_CONFIG)
    h.send(OPEN)
    h.send(f"<auth xmlns='{SASL}' mechanism='OAUTHBEARER'>{b64(raw)}</auth>".encode())
    assert h.last()[0].tag == f"{{{SASL}}}malformed-request"


def test_interop_subdomains_are_served_when_configured() -> None:
    h = Harness(config=OB_CONFIG)
    h.send(OPEN.replace(b"hub.test", b"examplechat.interop.hub.test"))
    assert h.received[0].tag == "{http://etherx.jabber.org/streams}features"
    h = Harness()
    h.send(OPEN.replace(b"hub.test", b"examplechat.interop.hub.test"))
    assert stream_error(h) == "host-unknown"
    h = Harness(config=OB_CONFIG)
    h.send(OPEN.replace(b"hub.test", b"user@examplechat.interop.hub.test"))
    assert stream_error(h) == "host-unknown"


# -- the parse budget before and after authentication (RFC 6120 §13.12) -------------------------
PHASED = StreamConfig(
    hosts=HOSTS,
    decoy_secret=b"k" * 32,
    limits=XmlLimits(max_stanza_bytes=64 * 1024, max_elements=1000),
    pre_auth_limits=XmlLimits(max_stanza_bytes=2048, max_elements=20),
)


def padded_auth(size: int) -> bytes:
    """A PLAIN ``<auth/>`` whose counted size (start tag to end tag) is exactly ``size``."""
    head = f"<auth xmlns='{SASL}' mechanism='PLAIN'>".encode()
    token = b64(chr(0) + "alice" + chr(0) + PASSWORD).encode()
    pad = b" " * (size - len(head) - len(token))  # base64 text may be surrounded by whitespace
    return head + pad + token + b"</auth>"


def many_elements(n: int) -> bytes:
    return b"<message to='bob@hub.test'>" + b"<a b=''/>" * (n - 1) + b"</message>"


def test_pre_auth_stanza_size_boundary() -> None:
    h = Harness(config=PHASED, secure=True)
    h.send(OPEN)
    h.send(padded_auth(2048))
    assert h.events[-1] == Authenticated("alice")
    h = Harness(config=PHASED, secure=True)
    h.send(OPEN)
    h.send(padded_auth(2049))
    assert stream_error(h) == "policy-violation"
    assert "2048 bytes" in (h.last()[-1].text or "")


def test_pre_auth_element_count_boundary() -> None:
    h = Harness(config=PHASED, secure=True)
    h.send(OPEN)
    h.send(many_elements(20))
    assert stream_error(h) == "not-authorized"  # parsed, then refused as a stanza before login
    h = Harness(config=PHASED, secure=True)
    h.send(OPEN)
    h.send(many_elements(21))
    assert stream_error(h) == "policy-violation"
    assert "more than 20 elements" in (h.last()[-1].text or "")


def test_pre_auth_limits_survive_the_starttls_restart() -> None:
    h = Harness(config=PHASED)
    h.send(OPEN)
    h.send(b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
    h.stream.tls_established()
    h.restart_parser_for_output()
    h.send(OPEN)
    h.send(many_elements(21))
    assert stream_error(h) == "policy-violation"


def test_the_budget_grows_when_sasl_succeeds() -> None:
    h = Harness(config=PHASED, secure=True)
    h.send(OPEN)
    auth_plain(h, "alice", PASSWORD)
    h.restart_parser_for_output()
    h.send(OPEN)
    # Far over the pre-authentication budget, inside the authenticated one: parsed, and refused
    # only because no resource is bound yet.
    h.send(many_elements(500) + b"<x>" + b"y" * 8000 + b"</x>")
    assert stream_error(h) == "not-authorized"


def test_post_auth_element_count_boundary() -> None:
    h = Harness(config=PHASED)
    h.to_bound()
    events = h.send(many_elements(1000))
    assert isinstance(events[-1], StanzaReceived)
    h.send(many_elements(1001))
    assert stream_error(h) == "policy-violation"


def test_the_amplification_pattern_is_cut_short_before_login() -> None:
    """The finding: 28,000 ``<a b=''/>`` (252 KiB) in an unclosed ``<message>``."""
    h = Harness()
    h.send(OPEN)
    h.send(b"<message>")
    for _ in range(28):
        h.send(b"<a b=''/>" * 1000)
        if h.stream.closed:
            break
    assert stream_error(h) == "policy-violation"
    assert h.stream._parser.hibernating  # expat and the partial tree are gone already


def test_a_post_login_header_with_thousands_of_namespaces_is_refused() -> None:
    h = Harness(secure=True)
    h.send(OPEN)
    auth_plain(h, "alice", PASSWORD)
    h.restart_parser_for_output()
    decls = "".join(f" xmlns:p{i}='urn:example:{i}'" for i in range(9000))
    h.send(OPEN.replace(b" to=", decls.encode() + b" to="))
    assert stream_error(h) == "policy-violation"
    assert "namespace declarations on the stream header" in (h.last()[-1].text or "")


def test_closing_releases_the_parser() -> None:
    h = Harness()
    h.to_bound()
    h.send(b"<message><body>unfinished")
    h.stream.close()
    assert h.stream._parser.hibernating


@pytest.mark.parametrize(
    "attack",
    [
        OPEN + b"<message>" + b"<a b=''/>" * 200,  # a parse limit
        OPEN + b"<message to='bob@hub.test'/>",  # a handler's stream error
    ],
)
def test_a_failed_stream_is_freed_by_reference_counting_alone(attack: bytes) -> None:
    """No cycle (parser and expat, or an error's traceback and our frames) may keep a dead stream
    and what it parsed until the cyclic collector runs: with many objects alive it runs rarely,
    and the finding saw ~10 MB per closed connection stay."""
    gc.collect()
    gc.disable()
    try:
        stream = ServerStream(CONFIG, now=0.0)
        events = stream.receive_data(attack)
        assert isinstance(events[-1], StreamClosed)
        alive = weakref.ref(stream)
        del stream, events
        assert alive() is None
    finally:
        gc.enable()
