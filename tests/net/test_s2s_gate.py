"""Which domains federate and which certificates authenticate them (net/s2s.py ProviderGate)."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import cast

import trustme
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from interlink.errors import StreamErrorCondition
from interlink.hub.addressing import Addressing, ProviderDirectory
from interlink.hub.hub import Hub
from interlink.hub.session import SessionRegistry
from interlink.interop.operator import OperatorState, access_of
from interlink.net.s2s import ProviderGate, S2SLimits, S2SService, ServiceDomains
from interlink.storage.providers import Provider, ProviderMode, ProviderStatus
from interlink.xmpp.s2s import PeerCertificate, S2SConfig, certs

HUB = "hub.test"


def der(leaf: trustme.LeafCert) -> bytes:
    pem = leaf.cert_chain_pems[0].bytes()
    return x509.load_pem_x509_certificate(pem).public_bytes(Encoding.DER)


def provider(pid: str, domain: str, **changes: object) -> Provider:
    fields: dict[str, object] = {
        "status": ProviderStatus.APPROVED,
        "jwks_url": "https://x.example/jwks",
        "services": (HUB,),
        "mode": ProviderMode.FEDERATED,
        "server_domains": (domain,),
    }
    fields.update(changes)
    return Provider(pid, pid, "https://x.example", **fields)  # type: ignore[arg-type]


def setup(*providers: Provider) -> tuple[ProviderGate, Addressing]:
    addressing = Addressing((HUB,), ProviderDirectory())
    operator = OperatorState(addressing, SessionRegistry())
    gate = ProviderGate(addressing)
    for p in providers:
        operator.provider_changed(p)
        gate.put(p)
    return gate, addressing


def test_admission_by_provider_state() -> None:
    gate, addressing = setup(
        provider("ok", "ok.example"),
        provider("susp", "susp.example", status=ProviderStatus.SUSPENDED),
        provider("pnp", "pnp.example", mode=ProviderMode.PLUG_AND_PLAY),
        provider("pending", "pending.example", status=ProviderStatus.PENDING),
    )
    assert gate.admit("ok.example") is None
    for domain in ("susp.example", "pnp.example", "pending.example"):
        refusal = gate.admit(domain)
        assert refusal is not None
        assert refusal.condition is StreamErrorCondition.POLICY_VIOLATION
    unknown = gate.admit("nobody.example")
    assert unknown is not None
    assert unknown.condition is StreamErrorCondition.NOT_AUTHORIZED
    hosts = ServiceDomains(addressing)
    assert hosts.serves(HUB)
    assert not hosts.serves(f"ok.interop.{HUB}")  # plug-and-play subdomains are not s2s hosts
    assert access_of(provider("ok", "ok.example")).federates


def test_certificates_by_pin_by_ca_and_by_trust() -> None:
    ca, other_ca = trustme.CA(), trustme.CA()
    leaf = der(ca.issue_cert("ca.example"))
    stranger = der(other_ca.issue_cert("ca.example"))
    pinned = der(other_ca.issue_cert("pin.example"))
    gate, _ = setup(
        provider("byca", "ca.example", s2s_ca=ca.cert_pem.bytes().decode()),
        provider("bypin", "pin.example", s2s_fingerprints=(certs.fingerprint(pinned),)),
        provider("bytrust", "trust.example"),
    )
    # a CA: issued by it, over a verified chain, naming the domain
    assert gate.certificate_ok("ca.example", PeerCertificate(leaf, chain_verified=True))
    assert not gate.certificate_ok("ca.example", PeerCertificate(leaf, chain_verified=False))
    assert not gate.certificate_ok("ca.example", PeerCertificate(stranger, chain_verified=True))
    # a pin: that certificate and no other, chain or not
    assert gate.certificate_ok("pin.example", PeerCertificate(pinned, chain_verified=False))
    other = der(other_ca.issue_cert("pin.example"))
    assert not gate.certificate_ok("pin.example", PeerCertificate(other, chain_verified=True))
    # neither: the system's trust (the TLS layer's verdict) and the name
    trusted = der(ca.issue_cert("trust.example"))
    assert gate.certificate_ok("trust.example", PeerCertificate(trusted, chain_verified=True))
    assert not gate.certificate_ok("trust.example", PeerCertificate(trusted, False))
    # the name must match, and no certificate is no proof
    assert not gate.certificate_ok("trust.example", PeerCertificate(leaf, chain_verified=True))
    assert not gate.certificate_ok("ca.example", PeerCertificate(None, chain_verified=True))
    assert not gate.certificate_ok("nobody.example", PeerCertificate(leaf, chain_verified=True))
    assert "BEGIN CERTIFICATE" in gate.trusted_cas()


def test_a_pinned_providers_certificate_seen_outbound_becomes_a_listener_anchor(
    tmp_path: Path,
) -> None:
    """Pinned without a CA (net/s2s.py module docstring): only a certificate that matches a
    pin and names the domain is kept as a trust anchor of the listener; a provider with a CA,
    another certificate, or a changed record keeps or drops nothing else."""
    ca = trustme.CA()
    hub = ca.issue_cert(HUB)
    hub.private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "hub.pem"))
    pinned_leaf = ca.issue_cert("pin.example")
    pinned = der(pinned_leaf)
    pin_provider = provider("bypin", "pin.example", s2s_fingerprints=(certs.fingerprint(pinned),))
    gate, addressing = setup(
        pin_provider,
        provider("byca", "ca.example", s2s_ca=ca.cert_pem.bytes().decode()),
    )
    config = S2SConfig(hosts=ServiceDomains(addressing), gate=gate, dialback_secret=b"k" * 32)
    service = S2SService(
        cast(Hub, None),
        config,
        gate,
        cert_file=str(tmp_path / "hub.pem"),
        key_file=str(tmp_path / "hub.pem"),
        limits=S2SLimits(),
    )
    assert service.pinned_unseen("pin.example")
    assert not service.pinned_unseen("ca.example")  # a CA: nothing to learn
    service.pinned_certificate_seen("bypin", "pin.example", der(ca.issue_cert("pin.example")))
    service.pinned_certificate_seen("bypin", "other.example", pinned)  # names another domain
    assert service.pinned_unseen("pin.example")
    before = service.server_tls()
    service.pinned_certificate_seen("bypin", "pin.example", pinned)
    assert not service.pinned_unseen("pin.example")
    after = service.server_tls()
    assert after is not before  # rebuilt with the anchor
    assert after.verify_flags & ssl.VERIFY_X509_PARTIAL_CHAIN
    # the leaf itself (not a CA, so get_ca_certs() leaves it out) is one more in the store
    assert after.cert_store_stats()["x509"] == before.cert_store_stats()["x509"] + 1
    service.provider_changed(pin_provider)  # its pins may have changed: seen again first
    assert service.pinned_unseen("pin.example")
