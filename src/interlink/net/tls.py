"""TLS contexts (TLS 1.2 or newer only) and the self-signed development certificate."""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import os
import ssl
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from interlink.errors import ConfigError
from interlink.xmpp.addressing import interop_suffix


def server_context(cert_file: Path, key_file: Path) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE
    ctx.set_alpn_protocols(["xmpp-client", "http/1.1"])
    try:
        ctx.load_cert_chain(cert_file, key_file)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cannot load TLS certificate {cert_file} / {key_file}: {exc}") from exc
    return ctx


def _dns_names(domains: Sequence[str]) -> list[str]:
    names: list[str] = []
    for domain in domains:
        # the service, its subdomains, and its third-party users' per-provider subdomains
        names += [domain, f"*.{domain}", "*" + interop_suffix(domain)]
    return names


def _covers(cert_file: Path, names: list[str]) -> bool:
    try:
        cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except (OSError, ValueError, x509.ExtensionNotFound):
        return False
    return set(names) <= set(san.value.get_values_for_type(x509.DNSName))


def ensure_self_signed(data_dir: Path, domains: Sequence[str]) -> tuple[Path, Path]:
    """Return ``(cert, key)`` in ``data_dir``, generating a self-signed pair on first use (and
    again when the hub serves a domain the existing one does not name).

    The certificate names each service domain, its subdomains (interop addresses live there),
    ``localhost`` and the loopback addresses; it is for development, not for production.
    """
    cert_file = data_dir / "tls" / "dev-cert.pem"
    key_file = data_dir / "tls" / "dev-key.pem"
    names = _dns_names(domains)
    if cert_file.exists() and key_file.exists() and _covers(cert_file, names):
        return cert_file, key_file
    write_self_signed(cert_file, key_file, domains[0], names)
    return cert_file, key_file


def write_self_signed(
    cert_file: Path, key_file: Path, common_name: str, dns_names: Sequence[str]
) -> None:
    """A self-signed certificate for ``dns_names``, ``localhost`` and the loopback addresses
    (and ``common_name`` when it is an IP address), its key written with mode 0600. For
    development and tests: a client trusts it by loading ``cert_file`` as its CA."""
    cert_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    addresses = {"127.0.0.1", "::1"}
    with contextlib.suppress(ValueError):
        addresses.add(str(ipaddress.ip_address(common_name)))
    san = x509.SubjectAlternativeName(
        [
            *(x509.DNSName(n) for n in dict.fromkeys([*dns_names, "localhost"])),
            *(x509.IPAddress(ipaddress.ip_address(a)) for a in sorted(addresses)),
        ]
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=825))
        .add_extension(san, critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
