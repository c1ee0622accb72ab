"""The client-to-server role on its own, the seam for other roles, and hosted domains."""

from __future__ import annotations

from dataclasses import dataclass
from xml.etree.ElementTree import Element

import pytest

from interlink.errors import (
    SaslCondition,
    SaslFailure,
    StanzaError,
    StanzaErrorCondition,
    StreamError,
    StreamErrorCondition,
)
from interlink.xmpp import ns
from interlink.xmpp.jid import JID
from interlink.xmpp.sasl import SaslExchange
from interlink.xmpp.stanza import STANZA_TAGS, Message, Stanza
from interlink.xmpp.stream import (
    Authenticated,
    BindRequested,
    ClientRole,
    HostedDomains,
    ServerStream,
    SingleDomain,
    StreamClosed,
    StreamConfig,
    StreamRole,
)
from interlink.xmpp.xml import parse_fragment
from tests.streamkit import CONFIG, CREDS, DOMAIN, HOSTS, OPEN, PASSWORD, SASL, b64

ALICE = JID.parse(f"alice@{DOMAIN}/phone")


def feature_names(xml: str) -> list[str]:
    root = parse_fragment(f"<f xmlns='urn:test'>{xml}</f>")
    names = []
    for child in root:
        local = child.tag.rsplit("}", 1)[1]
        names.append(local)
        names.extend(m.text or "" for m in child if local == "mechanisms")
    return names


@pytest.mark.parametrize(
    ("config", "secure", "authenticated", "expected"),
    [
        (CONFIG, False, False, ["starttls"]),
        (CONFIG, True, False, ["mechanisms", "SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN"]),
        (
            StreamConfig(hosts=HOSTS, oauthbearer=True),
            True,
            False,
            ["mechanisms", "SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN", "OAUTHBEARER"],
        ),
        (
            StreamConfig(hosts=HOSTS, tls_required=False, oauthbearer=True),
            False,
            False,
            ["starttls", "mechanisms", "SCRAM-SHA-256", "SCRAM-SHA-1"],
        ),
        (
            StreamConfig(hosts=HOSTS, starttls_available=False, tls_required=False),
            False,
            False,
            ["mechanisms", "SCRAM-SHA-256", "SCRAM-SHA-1"],
        ),
        (CONFIG, True, True, ["bind", "session", "sm", "csi"]),
        (StreamConfig(hosts=HOSTS, sm=None), True, True, ["bind", "session", "csi"]),
        (StreamConfig(hosts=HOSTS, sm=None, csi=None), True, True, ["bind", "session"]),
    ],
)
def test_client_features(
    config: StreamConfig, secure: bool, authenticated: bool, expected: list[str]
) -> None:
    role = ClientRole(config)
    assert feature_names(role.features(secure=secure, authenticated=authenticated)) == expected


@pytest.mark.parametrize(
    ("mechanism", "secure", "condition"),
    [
        ("SCRAM-SHA-256", False, None),
        ("PLAIN", True, None),
        ("PLAIN", False, SaslCondition.ENCRYPTION_REQUIRED),
        ("OAUTHBEARER", True, SaslCondition.INVALID_MECHANISM),  # not enabled in CONFIG
        ("DIGEST-MD5", True, SaslCondition.INVALID_MECHANISM),
    ],
)
def test_client_sasl_mechanisms(
    mechanism: str, secure: bool, condition: SaslCondition | None
) -> None:
    role = ClientRole(CONFIG)
    if condition is None:
        assert role.start_sasl(mechanism, secure=secure).mechanism == mechanism
    else:
        with pytest.raises(SaslFailure) as failure:
            role.start_sasl(mechanism, secure=secure)
        assert failure.value.condition is condition


def element(xml: str) -> Element:
    return parse_fragment(xml)


BIND_NS = ns.BIND


@pytest.mark.parametrize(
    ("xml", "expected"),
    [
        (
            f"<iq xmlns='jabber:client' type='set' id='b'><bind xmlns='{BIND_NS}'/></iq>",
            BindRequested(None),
        ),
        (
            f"<iq xmlns='jabber:client' type='set' id='b'><bind xmlns='{BIND_NS}'>"
            "<resource> web </resource></bind></iq>",
            BindRequested("web"),
        ),
        ("<presence xmlns='jabber:client'/>", "stanzas are not accepted before binding"),
        (
            f"<iq xmlns='jabber:client' type='get' id='b'><bind xmlns='{BIND_NS}'/></iq>",
            "bind a resource before sending stanzas",
        ),
        (
            f"<iq xmlns='jabber:client' type='set'><bind xmlns='{BIND_NS}'/></iq>",
            "bind a resource before sending stanzas",
        ),
        (
            "<iq xmlns='jabber:client' type='set' id='b'><ping xmlns='urn:xmpp:ping'/></iq>",
            "bind a resource before sending stanzas",
        ),
    ],
)
def test_client_bind_requests(xml: str, expected: BindRequested | str) -> None:
    role = ClientRole(CONFIG)
    if isinstance(expected, BindRequested):
        assert role.bind_request(element(xml)) == expected
        assert 'id="b"' in role.bind_result(ALICE, ns.CLIENT)
        assert f"<jid>{ALICE}</jid>" in role.bind_result(ALICE, ns.CLIENT)
    else:
        with pytest.raises(StreamError) as err:
            role.bind_request(element(xml))
        assert err.value.condition is StreamErrorCondition.NOT_AUTHORIZED
        assert err.value.text == expected


def test_client_bind_answers_declare_the_namespace_only_without_a_root() -> None:
    role = ClientRole(CONFIG)
    role.bind_request(
        element(f"<iq xmlns='jabber:client' type='set' id='b'><bind xmlns='{BIND_NS}'/></iq>")
    )
    conflict = StanzaError(StanzaErrorCondition.CONFLICT, "")
    assert role.bind_result(ALICE, ns.CLIENT).startswith('<iq type="result" id="b">')
    assert role.bind_result(ALICE, None).startswith('<iq xmlns="jabber:client" type="result"')
    assert role.bind_error(conflict, ns.CLIENT).startswith('<iq type="error" id="b">')
    assert role.bind_error(conflict, None).startswith('<iq xmlns="jabber:client" type="error"')


def accept(xml: str, *, host: str = DOMAIN) -> Stanza | str:
    return ClientRole(CONFIG).accept_stanza(
        element(xml), address=ALICE, host=host, content_ns=ns.CLIENT
    )


@pytest.mark.parametrize(
    ("claimed", "accepted"),
    [
        (None, True),
        (str(ALICE), True),
        (str(ALICE.bare), True),
        ("ALICE@hub.test/phone", True),
        ("alice@hub.test/laptop", False),
        ("bob@hub.test", False),
        (DOMAIN, False),
        ("@@", False),
    ],
)
def test_client_from_is_checked_and_stamped(claimed: str | None, accepted: bool) -> None:
    attr = f" from='{claimed}'" if claimed else ""
    xml = f"<message xmlns='jabber:client'{attr} to='bob@hub.test'><body>x</body></message>"
    if accepted:
        stanza = accept(xml)
        assert isinstance(stanza, Message)
        assert stanza.from_ == ALICE
    else:
        with pytest.raises(StreamError) as err:
            accept(xml)
        assert err.value.condition is StreamErrorCondition.INVALID_FROM


@pytest.mark.parametrize(
    ("to", "answered_here"),
    [(None, True), (DOMAIN, True), ("x.interop.hub.test", True), ("bob@hub.test", False)],
)
def test_client_session_iq_is_answered_for_the_stream_domain(
    to: str | None, answered_here: bool
) -> None:
    attr = f" to='{to}'" if to else ""
    xml = f"<iq xmlns='jabber:client' type='set' id='s'{attr}><session xmlns='{ns.SESSION}'/></iq>"
    result = accept(xml, host="x.interop.hub.test")
    if answered_here:
        assert result == '<iq type="result" id="s"/>'
    else:
        assert not isinstance(result, str)


def test_client_broken_stanzas_get_an_error_reply_unless_they_are_errors() -> None:
    reply = accept("<message xmlns='jabber:client' to='@@' id='m'><body>x</body></message>")
    assert isinstance(reply, str)
    assert "jid-malformed" in reply
    assert accept("<message xmlns='jabber:client' to='@@' type='error'/>") == ""


# -- the seam: the machine runs any StreamRole --------------------------------------------------


class NoBindingRole:
    """Offers one made-up feature and no mechanism; refuses every request to become ready."""

    content_ns = ns.CLIENT
    stanza_tags = STANZA_TAGS

    def features(self, *, secure: bool, authenticated: bool) -> str:
        return "<example xmlns='urn:example:feature'/>"

    def start_sasl(self, mechanism: str, *, secure: bool) -> SaslExchange:
        raise SaslFailure(SaslCondition.INVALID_MECHANISM, "none here")

    def bind_request(self, element: Element) -> BindRequested:
        raise StreamError(StreamErrorCondition.NOT_AUTHORIZED, "no binding here")

    def bind_result(self, address: JID, content_ns: str | None) -> str:
        raise AssertionError("never asked")

    def bind_error(self, error: StanzaError, content_ns: str | None) -> str:
        raise AssertionError("never asked")

    def accept_stanza(
        self, element: Element, address: JID, host: str, content_ns: str | None
    ) -> Stanza | str:
        raise AssertionError("never asked")


def test_the_machine_asks_its_role() -> None:
    role: StreamRole = NoBindingRole()
    s = ServerStream(CONFIG, now=0, secure=True, role=role)
    s.receive_data(OPEN)
    assert b"<stream:features><example xmlns='urn:example:feature'/></stream:features>" in (
        s.data_to_send()
    )
    s.receive_data(f"<auth xmlns='{SASL}' mechanism='PLAIN'>AA==</auth>".encode())
    assert b"<invalid-mechanism/>" in s.data_to_send()


def test_the_default_role_is_client_to_server() -> None:
    assert isinstance(ServerStream(CONFIG, now=0).role, ClientRole)


# -- hosted domains -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Gatekeepers:
    """Several hosted domains, as the hub will have."""

    default: str
    domains: frozenset[str]

    def serves(self, domain: str) -> bool:
        return domain in self.domains


@pytest.mark.parametrize(
    ("domain", "served"),
    [
        ("hub.test", True),
        ("wa.interop.hub.test", True),
        ("a.b.interop.hub.test", True),
        (".interop.hub.test", False),
        ("interop.hub.test", False),
        ("hub.test.evil", False),
        ("other.test", False),
    ],
)
def test_single_domain(domain: str, served: bool) -> None:
    hosts: HostedDomains = SingleDomain("hub.test", subdomain_suffixes=(".interop.hub.test",))
    assert hosts.serves(domain) is served


def header(to: str | None) -> bytes:
    return OPEN.replace(b"to='hub.test' ", f"to='{to}' ".encode() if to else b"")


GATEKEEPERS = StreamConfig(
    hosts=Gatekeepers("a.test", frozenset({"a.test", "b.test"})), decoy_secret=b"k" * 32
)


@pytest.mark.parametrize(
    ("to", "host"), [(None, "a.test"), ("a.test", "a.test"), ("b.test", "b.test")]
)
def test_the_stream_answers_for_the_domain_asked_for(to: str | None, host: str) -> None:
    s = ServerStream(GATEKEEPERS, now=0, secure=True)
    s.receive_data(header(to))
    assert s.host == host
    assert f'from="{host}"'.encode() in s.data_to_send()


@pytest.mark.parametrize("to", ["c.test", "alice@b.test", "b.test/r", "@@"])
def test_a_domain_not_served_is_host_unknown(to: str) -> None:
    s = ServerStream(GATEKEEPERS, now=0, secure=True)
    (closed,) = s.receive_data(header(to))
    assert isinstance(closed, StreamClosed)
    assert closed.error is not None
    assert closed.error.condition is StreamErrorCondition.HOST_UNKNOWN
    assert s.host == "a.test"


def authenticated_on(to: str) -> ServerStream:
    s = ServerStream(GATEKEEPERS, now=0, secure=True)
    s.receive_data(header(to))
    s.receive_data(
        f"<auth xmlns='{SASL}' mechanism='PLAIN'>{b64(chr(0) + 'alice' + chr(0) + PASSWORD)}</auth>".encode()
    )
    assert s.supply_credentials(CREDS) == [Authenticated("alice")]
    return s


@pytest.mark.parametrize("to", [None, "b.test"])
def test_the_host_stays_once_authenticated(to: str | None) -> None:
    s = authenticated_on("b.test")
    s.receive_data(header(to))
    assert not s.closed
    assert s.host == "b.test"


def test_authenticated_streams_cannot_move_to_another_domain() -> None:
    s = authenticated_on("b.test")
    (closed,) = s.receive_data(header("a.test"))
    assert isinstance(closed, StreamClosed)
    assert closed.error is not None
    assert closed.error.condition is StreamErrorCondition.HOST_UNKNOWN
    assert s.host == "b.test"
