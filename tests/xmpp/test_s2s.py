"""The server-to-server stream machines, paired in memory (no sockets, no clock)."""

from __future__ import annotations

import datetime
import hashlib
import hmac
from dataclasses import dataclass, field

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from interlink.errors import StreamError, StreamErrorCondition
from interlink.xmpp import ns
from interlink.xmpp.jid import JID
from interlink.xmpp.s2s import (
    AuthMethod,
    DialbackVerifyAnswered,
    DialbackVerifyRequested,
    InboundStream,
    OutboundStream,
    PeerAuthenticated,
    PeerCertificate,
    Ready,
    S2SConfig,
    S2SEvent,
    S2SState,
    StanzaReceived,
    StreamClosed,
    TlsStartRequested,
    certs,
    dialback,
)
from interlink.xmpp.stanza import Message
from interlink.xmpp.stream import SingleDomain

HUB = "hub.test"
PEER = "chat.example"
SECRET_HUB = b"hub-secret"
SECRET_PEER = b"peer-secret"


@dataclass
class FakeGate:
    """chat.example is onboarded; bad.example is suspended; a certificate is good for a domain
    when its DER is ``b"cert:" + domain`` and its chain verified."""

    active: set[str] = field(default_factory=lambda: {PEER, HUB})
    suspended: set[str] = field(default_factory=lambda: {"bad.example"})

    def admit(self, domain: str) -> StreamError | None:
        if domain in self.active:
            return None
        if domain in self.suspended:
            return StreamError(StreamErrorCondition.POLICY_VIOLATION, f"{domain} is suspended")
        return StreamError(StreamErrorCondition.NOT_AUTHORIZED, f"{domain} is not onboarded")

    def certificate_ok(self, domain: str, cert: PeerCertificate) -> bool:
        return cert.chain_verified and cert.der == b"cert:" + domain.encode()


def config(host: str, secret: bytes) -> S2SConfig:
    return S2SConfig(hosts=SingleDomain(host), gate=FakeGate(), dialback_secret=secret)


def good(domain: str) -> PeerCertificate:
    return PeerCertificate(b"cert:" + domain.encode(), chain_verified=True)


UNTRUSTED = PeerCertificate(b"self-signed", chain_verified=False)


@dataclass
class Pair:
    out: OutboundStream
    inn: InboundStream
    out_events: list[S2SEvent] = field(default_factory=list)
    in_events: list[S2SEvent] = field(default_factory=list)
    out_cert: PeerCertificate = field(default_factory=lambda: good(HUB))  # what `out` sees
    in_cert: PeerCertificate = field(default_factory=lambda: good(PEER))  # what `inn` sees
    wire: list[bytes] = field(default_factory=list)

    def pump(self) -> None:
        """Carry bytes both ways until nothing moves; upgrade to TLS when both ask."""
        for _ in range(50):
            moved = False
            data = self.out.data_to_send()
            if data:
                self.wire.append(data)
                self.in_events += self.inn.receive_data(data)
                moved = True
            data = self.inn.data_to_send()
            if data:
                self.wire.append(data)
                self.out_events += self.out.receive_data(data)
                moved = True
            if self.out.state is S2SState.TLS_STARTING and self.inn.state is S2SState.TLS_STARTING:
                self.in_events += self.inn.tls_established(self.in_cert)
                self.out_events += self.out.tls_established(self.out_cert)
                moved = True
            if not moved:
                return
        raise AssertionError("the streams never settled")


def pair(*, peer: str = PEER, **kwargs: object) -> Pair:
    out = OutboundStream(
        config(peer, SECRET_PEER),
        local=peer,
        remote=HUB,
        now=0.0,
        **kwargs,  # type: ignore[arg-type]
    )
    inn = InboundStream(config(HUB, SECRET_HUB), now=0.0)
    return Pair(out, inn)


def closed_with(events: list[S2SEvent]) -> StreamErrorCondition | None:
    for event in events:
        if isinstance(event, StreamClosed):
            return None if event.error is None else event.error.condition
    raise AssertionError(f"not closed: {events}")


def message(frm: str, to: str, body: str = "hi") -> Message:
    from xml.etree.ElementTree import Element

    el = Element(ns.qname(ns.CLIENT, "body"))
    el.text = body
    return Message(JID.parse(to), JID.parse(frm), "m1", None, (el,))


# -- SASL EXTERNAL (XEP-0178) ---------------------------------------------------------------------


def test_external_then_stanzas_flow() -> None:
    p = pair()
    p.out.send_stanza(message(f"alice@{PEER}/x", f"bob@{HUB}"))  # queued until ready
    p.pump()
    assert TlsStartRequested() in p.out_events
    assert TlsStartRequested() in p.in_events
    assert PeerAuthenticated(PEER, AuthMethod.SASL_EXTERNAL) in p.in_events
    assert PeerAuthenticated(HUB, AuthMethod.SASL_EXTERNAL) in p.out_events
    assert Ready(HUB) in p.out_events
    received = [e for e in p.in_events if isinstance(e, StanzaReceived)]
    assert len(received) == 1
    stanza = received[0].stanza
    assert isinstance(stanza, Message)
    assert stanza.from_ == JID.parse(f"alice@{PEER}/x")
    assert stanza.to == JID.parse(f"bob@{HUB}")
    assert stanza.body == "hi"  # read in jabber:client, like every other stanza in the hub
    assert p.inn.state is S2SState.READY
    assert p.out.state is S2SState.READY
    assert b"<message " in b"".join(p.wire)
    assert b"jabber:client" not in b"".join(p.wire)


def test_external_not_offered_for_untrusted_certificate_so_dialback_runs() -> None:
    p = pair()
    p.in_cert = UNTRUSTED
    p.pump()
    verify = [e for e in p.in_events if isinstance(e, DialbackVerifyRequested)]
    assert len(verify) == 1
    assert b"EXTERNAL" not in b"".join(p.wire)
    request = verify[0]
    assert (request.originating, request.receiving) == (PEER, HUB)
    # the hub asks the peer's authoritative server on a stream of its own
    auth = InboundStream(config(PEER, SECRET_PEER), now=0.0)
    checker = OutboundStream(
        config(HUB, SECRET_HUB), local=HUB, remote=PEER, now=0.0, verify_only=True
    )
    checker.request_verify(request.receiving, request.originating, request.stream_id, request.key)
    v = Pair(checker, auth, out_cert=good(PEER), in_cert=good(HUB))
    v.pump()
    answers = [e for e in v.out_events if isinstance(e, DialbackVerifyAnswered)]
    assert answers == [DialbackVerifyAnswered(PEER, HUB, request.stream_id, True)]
    assert checker.closed
    p.in_events += p.inn.dialback_verified(PEER, HUB, True)
    p.pump()
    assert PeerAuthenticated(PEER, AuthMethod.DIALBACK) in p.in_events
    assert Ready(HUB) in p.out_events
    p.out.send_stanza(message(f"alice@{PEER}/x", f"bob@{HUB}"))
    p.pump()
    assert any(isinstance(e, StanzaReceived) for e in p.in_events)


def test_dialback_with_a_certificate_good_for_the_domain_needs_no_round_trip() -> None:
    p = pair(have_certificate=False)  # e.g. a server that never uses EXTERNAL
    p.pump()
    assert PeerAuthenticated(PEER, AuthMethod.DIALBACK) in p.in_events  # XEP-0344 §2.3
    assert not any(isinstance(e, DialbackVerifyRequested) for e in p.in_events)
    assert Ready(HUB) in p.out_events


def test_invalid_dialback_key_ends_the_stream() -> None:
    p = pair()
    p.in_cert = UNTRUSTED
    p.pump()
    p.in_events += p.inn.dialback_verified(PEER, HUB, False)
    p.pump()
    assert closed_with(p.in_events) is StreamErrorCondition.NOT_AUTHORIZED
    assert closed_with(p.out_events) is StreamErrorCondition.NOT_AUTHORIZED
    assert not any(isinstance(e, Ready) for e in p.out_events)


def test_authoritative_side_answers_by_key() -> None:
    auth = InboundStream(config(PEER, SECRET_PEER), now=0.0)
    auth.tls_direct(good(HUB))
    auth.receive_data(
        b"<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' "
        b"xmlns:db='jabber:server:dialback' from='hub.test' to='chat.example' version='1.0'>"
    )
    right = dialback.key(SECRET_PEER, HUB, PEER, "abc")
    auth.data_to_send()
    auth.receive_data(
        f"<db:verify from='{HUB}' to='{PEER}' id='abc'>{right}</db:verify>"
        f"<db:verify from='{HUB}' to='{PEER}' id='abd'>{right}</db:verify>".encode()
    )
    out = auth.data_to_send().decode()
    assert 'id="abc" type="valid"' in out
    assert 'id="abd" type="invalid"' in out


def test_dialback_key_is_xep_0185() -> None:
    # XEP-0185 §2: HMAC-SHA256 keyed with the hex SHA-256 of the secret, over the three inputs
    secret, args = b"s3cr3t", ("example.net", "example.org", "D60000229F")
    k = dialback.key(secret, *args)
    assert len(k) == 64
    assert int(k, 16) >= 0
    assert (
        k
        == hmac.new(
            hashlib.sha256(secret).hexdigest().encode(),
            b"example.net example.org D60000229F",
            hashlib.sha256,
        ).hexdigest()
    )
    assert k != dialback.key(secret, "example.org", "example.net", "D60000229F")
    assert k != dialback.key(b"other", *args)
    assert dialback.key_matches(secret, *args, f" {k}\n")


# -- refusals (RFC 6120 §4.9.3) --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("peer", "condition"),
    [
        ("unknown.example", StreamErrorCondition.NOT_AUTHORIZED),
        ("bad.example", StreamErrorCondition.POLICY_VIOLATION),
    ],
)
def test_domains_not_onboarded_are_refused_at_the_header(
    peer: str, condition: StreamErrorCondition
) -> None:
    p = pair(peer=peer)
    p.pump()
    assert closed_with(p.in_events) is condition
    assert closed_with(p.out_events) is condition  # the peer's error, as the peer sees it
    assert f"<{condition} ".encode() in b"".join(p.wire)


def test_unknown_to_is_host_unknown() -> None:
    inn = InboundStream(config(HUB, SECRET_HUB), now=0.0)
    events = inn.receive_data(
        b"<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' "
        b"from='chat.example' to='other.test' version='1.0'>"
    )
    assert closed_with(events) is StreamErrorCondition.HOST_UNKNOWN


def test_no_starttls_offered_is_refused_by_us() -> None:
    out = OutboundStream(config(PEER, SECRET_PEER), local=PEER, remote=HUB, now=0.0)
    out.data_to_send()
    events = out.receive_data(
        b"<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' "
        b"id='x1' from='hub.test' version='1.0'><stream:features/>"
    )
    assert closed_with(events) is StreamErrorCondition.POLICY_VIOLATION


def test_dialback_before_tls_is_refused() -> None:
    inn = InboundStream(config(HUB, SECRET_HUB), now=0.0)
    inn.receive_data(
        b"<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' "
        b"xmlns:db='jabber:server:dialback' from='chat.example' to='hub.test' version='1.0'>"
    )
    events = inn.receive_data(b"<db:result from='chat.example' to='hub.test'>k</db:result>")
    assert closed_with(events) is StreamErrorCondition.POLICY_VIOLATION


def test_peer_certificate_not_good_for_the_hub_is_refused_by_the_originator() -> None:
    p = pair()
    p.out_cert = UNTRUSTED
    p.pump()
    assert closed_with(p.out_events) is StreamErrorCondition.POLICY_VIOLATION


def test_stanza_with_a_forged_from_is_invalid_from() -> None:
    p = pair()
    p.pump()
    events = p.inn.receive_data(
        b"<message from='mallory@evil.example' to='bob@hub.test'><body>x</body></message>"
    )
    assert closed_with(events) is StreamErrorCondition.INVALID_FROM


def test_stanza_to_a_domain_not_authenticated_is_host_unknown() -> None:
    p = pair()
    p.pump()
    events = p.inn.receive_data(
        b"<message from='alice@chat.example' to='bob@elsewhere.test'><body>x</body></message>"
    )
    assert closed_with(events) is StreamErrorCondition.HOST_UNKNOWN


def test_stanza_before_authentication_is_not_authorized() -> None:
    p = pair()
    p.in_cert = UNTRUSTED
    p.pump()  # waiting for dialback verification
    events = p.inn.receive_data(b"<message from='alice@chat.example' to='bob@hub.test'/>")
    assert closed_with(events) is StreamErrorCondition.NOT_AUTHORIZED


def test_client_namespace_on_a_server_stream_is_invalid_namespace() -> None:
    p = pair()
    p.pump()
    events = p.inn.receive_data(
        b"<message xmlns='jabber:client' from='alice@chat.example' to='bob@hub.test'/>"
    )
    assert closed_with(events) is StreamErrorCondition.INVALID_NAMESPACE


def test_peer_stream_error_is_reported_as_remote() -> None:
    p = pair()
    p.pump()
    events = p.out.receive_data(
        b"<stream:error><system-shutdown xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"
        b"</stream:error>"
    )
    assert isinstance(events[0], StreamClosed)
    assert events[0].remote
    assert events[0].error is not None
    assert events[0].error.condition is StreamErrorCondition.SYSTEM_SHUTDOWN


def test_authentication_deadline() -> None:
    inn = InboundStream(S2SConfig(SingleDomain(HUB), FakeGate(), b"s", auth_timeout=5), now=100.0)
    assert inn.get_timer() == 105.0
    assert inn.handle_timer(104.9) == []
    assert closed_with(inn.handle_timer(105.0)) is StreamErrorCondition.CONNECTION_TIMEOUT
    assert inn.get_timer() is None


def test_authenticated_stream_has_no_deadline() -> None:
    p = pair()
    p.pump()
    assert p.inn.get_timer() is None
    assert p.out.get_timer() is None


def test_pending_queue_is_bounded() -> None:
    cfg = S2SConfig(SingleDomain(PEER), FakeGate(), b"s", max_pending_stanzas=2)
    out = OutboundStream(cfg, local=PEER, remote=HUB, now=0.0)
    msg = message(f"alice@{PEER}", f"bob@{HUB}")
    assert out.send_stanza(msg) == []
    assert out.send_stanza(msg) == []
    assert closed_with(out.send_stanza(msg)) is StreamErrorCondition.RESOURCE_CONSTRAINT


def test_send_stanza_checks_the_domains() -> None:
    out = OutboundStream(config(PEER, SECRET_PEER), local=PEER, remote=HUB, now=0.0)
    with pytest.raises(ValueError, match="must come from"):
        out.send_stanza(message(f"alice@{HUB}", f"bob@{HUB}"))
    with pytest.raises(ValueError, match="carries stanzas to"):
        out.send_stanza(message(f"alice@{PEER}", "bob@else.test"))


def test_close_sends_the_error_and_the_footer() -> None:
    p = pair()
    p.pump()
    events = p.inn.close(StreamError(StreamErrorCondition.POLICY_VIOLATION, "provider suspended"))
    assert closed_with(events) is StreamErrorCondition.POLICY_VIOLATION
    out = p.inn.data_to_send()
    assert b"<policy-violation " in out
    assert out.endswith(b"</stream:stream>")
    assert p.inn.close() == []


# -- certificates (XEP-0178 §3) --------------------------------------------------------------------


def make_cert(names: list[str], issuer_key: ec.EllipticCurvePrivateKey | None = None) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test CA")]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), False)
        .sign(issuer_key or key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.DER)


def test_certificate_names() -> None:
    der = make_cert(["chat.example", "*.muc.example"])
    assert certs.names_domain(der, "chat.example")
    assert certs.names_domain(der, "CHAT.example.")
    assert certs.names_domain(der, "rooms.muc.example")
    assert not certs.names_domain(der, "muc.example")
    assert not certs.names_domain(der, "a.b.muc.example")
    assert not certs.names_domain(der, "evil.example")
    assert not certs.names_domain(b"garbage", "chat.example")


def test_fingerprints_and_issuers() -> None:
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test CA")]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test CA")]))
        .public_key(ca_key.public_key())
        .serial_number(1)
        .not_valid_before(datetime.datetime.now(datetime.UTC))
        .not_valid_after(datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=1))
        .sign(ca_key, hashes.SHA256())
    )
    ca_pem = ca_cert.public_bytes(serialization.Encoding.PEM)
    signed = make_cert(["chat.example"], ca_key)
    assert certs.issued_by(signed, ca_pem)
    assert not certs.issued_by(make_cert(["chat.example"]), ca_pem)
    fp = certs.fingerprint(signed)
    colons = ":".join(fp[i : i + 2] for i in range(0, 64, 2)).upper()
    assert certs.normalize_fingerprint(colons) == fp
    with pytest.raises(ValueError, match="SHA-256"):
        certs.normalize_fingerprint("abcd")
