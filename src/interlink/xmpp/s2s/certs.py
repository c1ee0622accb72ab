"""Which domain a server certificate stands for (RFC 6125 §6 as profiled by RFC 6120 §13.7.1.2
and XEP-0178 §3): dNSName (with a left-most ``*`` label), SRVName ``_xmpp-server.<domain>`` and
id-on-xmppAddr; the subject's common name only when there is no subjectAltName.

Pure functions over DER bytes; the TLS layer says whether the chain was trusted, a provider's
record (pinned SHA-256 fingerprints, a CA) says whether that trust is enough for its domains.
"""

from __future__ import annotations

import hashlib

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID, ObjectIdentifier

XMPP_ADDR = ObjectIdentifier("1.3.6.1.5.5.7.8.5")  # id-on-xmppAddr, RFC 6120 §13.7.1.4
SRV_NAME = ObjectIdentifier("1.3.6.1.5.5.7.8.7")  # id-on-dnsSRV, RFC 4985


def fingerprint(der: bytes) -> str:
    """The SHA-256 fingerprint of a DER certificate, lower-case hex without separators."""
    return hashlib.sha256(der).hexdigest()


def normalize_fingerprint(text: str) -> str:
    """Accepts ``AB:CD:…`` or ``abcd…``; raises ValueError unless it is 32 bytes of hex."""
    cleaned = text.strip().replace(":", "").lower()
    if len(cleaned) != 64 or any(c not in "0123456789abcdef" for c in cleaned):
        raise ValueError(f"not a SHA-256 fingerprint: {text!r}")
    return cleaned


def _der_utf8(value: bytes) -> str | None:
    # an otherName value is DER: UTF8String (0x0c) or IA5String (0x16), short form length
    if len(value) >= 2 and value[0] in (0x0C, 0x16) and value[1] < 0x80:
        return value[2 : 2 + value[1]].decode("utf-8", "replace")
    return None


def identities(der: bytes) -> tuple[set[str], set[str]]:
    """``(exact, wildcard_parents)``: the domains a certificate names exactly, and the parents
    ``example.com`` of its ``*.example.com`` names. Raises ValueError for bytes that are not a
    certificate."""
    cert = x509.load_der_x509_certificate(der)
    exact: set[str] = set()
    wild: set[str] = set()
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        for attr in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME):
            exact.add(str(attr.value).lower().rstrip("."))
        return exact, wild
    for name in san.get_values_for_type(x509.DNSName):
        name = name.lower().rstrip(".")
        if name.startswith("*.") and name.count(".") >= 2:
            wild.add(name[2:])
        else:
            exact.add(name)
    for other in san.get_values_for_type(x509.OtherName):
        text = _der_utf8(other.value)
        if text is None:
            continue
        if other.type_id == XMPP_ADDR and "@" not in text and "/" not in text:
            exact.add(text.lower())
        elif other.type_id == SRV_NAME and text.lower().startswith("_xmpp-server."):
            exact.add(text.lower()[len("_xmpp-server.") :])
    return exact, wild


def names_domain(der: bytes, domain: str) -> bool:
    """Whether the certificate ``der`` stands for ``domain`` (never raises: garbage is no)."""
    try:
        exact, wild = identities(der)
    except ValueError:
        return False
    domain = domain.lower().rstrip(".")
    if domain in exact:
        return True
    head, dot, parent = domain.partition(".")
    return bool(dot and head and parent in wild)


def issued_by(der: bytes, ca_pem: bytes) -> bool:
    """Whether ``der`` is signed directly by one of the certificates in ``ca_pem``."""
    try:
        cert = x509.load_der_x509_certificate(der)
        cas = x509.load_pem_x509_certificates(ca_pem)
    except ValueError:
        return False
    for ca in cas:
        try:
            cert.verify_directly_issued_by(ca)
        except (InvalidSignature, ValueError, TypeError):  # not its issuer, or another key type
            continue
        return True
    return False


def pem_to_der(pem: bytes) -> bytes:
    return x509.load_pem_x509_certificate(pem).public_bytes(Encoding.DER)


__all__ = [
    "fingerprint",
    "identities",
    "issued_by",
    "names_domain",
    "normalize_fingerprint",
    "pem_to_der",
]
