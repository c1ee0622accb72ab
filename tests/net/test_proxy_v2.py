"""PROXY v2: byte tables against the specification, the limits at their boundary, and the
signed header a registered proxy sends."""

from __future__ import annotations

import contextlib
import struct

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from interlink.net.proxied import (
    AUTH_TLV,
    ProxyRefused,
    ProxyRegistry,
    RegisteredProxy,
    ReplayCache,
    fingerprint,
    public_key_bytes,
    sign,
)
from interlink.net.proxy_v2 import (
    SIGNATURE,
    HeaderLimits,
    ProxyHeader,
    ProxyHeaderError,
    Tlv,
    decode,
    encode,
    header_length,
    starts_like_header,
)

LIMITS = HeaderLimits()
NOW = 1_800_000_000.0

# The spec's example layout (§2.2): TCP over IPv4, 192.0.2.1:56324 → 198.51.100.7:5223.
IPV4 = (
    SIGNATURE
    + bytes([0x21, 0x11])
    + struct.pack("!H", 12)
    + bytes([192, 0, 2, 1, 198, 51, 100, 7])
    + struct.pack("!HH", 56324, 5223)
)


def test_ipv4_header_bytes_match_the_specification() -> None:
    header = ProxyHeader(("192.0.2.1", 56324), ("198.51.100.7", 5223))
    assert encode(header) == IPV4
    assert decode(IPV4, LIMITS) == header
    assert header_length(IPV4[:16], LIMITS) == 28


def test_ipv6_header_and_tlvs_round_trip() -> None:
    header = ProxyHeader(
        ("2001:db8::1", 40000), ("2001:db8::2", 5223), (Tlv(0x04, b"\0" * 3), Tlv(0xE5, b"x"))
    )
    data = encode(header)
    assert data[13] == 0x21
    assert len(data) == 16 + 36 + 6 + 4
    assert decode(data, LIMITS) == header


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda d: d[:12] + bytes([0x11]) + d[13:], "version 1"),
        (lambda d: d[:12] + bytes([0x20]) + d[13:], "LOCAL"),
        (lambda d: d[:13] + bytes([0x12]) + d[14:], "TCP"),
        (lambda d: d[:13] + bytes([0x31]) + d[14:], "family 3"),
        (lambda d: d[:14] + struct.pack("!H", 8) + d[16:24], "truncated"),
        (lambda d: d[:14] + struct.pack("!H", 14) + d[16:] + b"\xe0\x00", "TLV is truncated"),
        (lambda d: d[:14] + struct.pack("!H", 15) + d[16:] + b"\xe0\x00\x05", "past the header"),
        (lambda d: b"X" + d[1:], "signature"),
    ],
)
def test_malformed_headers_are_refused(mutate: object, reason: str) -> None:
    data = mutate(IPV4)  # type: ignore[operator]
    with pytest.raises(ProxyHeaderError, match=reason):
        decode(data, LIMITS)


def test_header_size_limit_at_its_boundary() -> None:
    limits = HeaderLimits(max_header_bytes=100, max_tlvs=8, max_tlv_bytes=256)
    base = ProxyHeader(("192.0.2.1", 1), ("192.0.2.2", 2))
    fits = encode(ProxyHeader(base.source, base.destination, (Tlv(0x04, b"\0" * 69),)))
    assert len(fits) == 100
    assert decode(fits, limits).tlvs[0].value == b"\0" * 69
    over = encode(ProxyHeader(base.source, base.destination, (Tlv(0x04, b"\0" * 70),)))
    with pytest.raises(ProxyHeaderError, match="101 bytes exceeds the limit of 100"):
        header_length(over[:16], limits)


def test_tlv_count_and_size_limits_at_their_boundary() -> None:
    limits = HeaderLimits(max_tlvs=2, max_tlv_bytes=10)
    src, dst = ("192.0.2.1", 1), ("192.0.2.2", 2)
    assert len(decode(encode(ProxyHeader(src, dst, (Tlv(4, b""), Tlv(4, b"")))), limits).tlvs) == 2
    with pytest.raises(ProxyHeaderError, match="more than 2 TLVs"):
        decode(encode(ProxyHeader(src, dst, (Tlv(4, b""),) * 3)), limits)
    assert decode(encode(ProxyHeader(src, dst, (Tlv(4, b"a" * 10),))), limits)
    with pytest.raises(ProxyHeaderError, match="TLV of 11 bytes exceeds 10"):
        decode(encode(ProxyHeader(src, dst, (Tlv(4, b"a" * 11),))), limits)


def test_limits_cannot_be_set_below_an_ipv6_header() -> None:
    with pytest.raises(ValueError, match="at least 52"):
        HeaderLimits(max_header_bytes=51)
    HeaderLimits(max_header_bytes=52)


def test_signature_prefix_detection() -> None:
    assert starts_like_header(IPV4) is True
    assert starts_like_header(SIGNATURE[:5]) is None
    assert starts_like_header(b"\x16\x03\x01") is False  # a TLS ClientHello
    assert starts_like_header(b"\r\n\r\nX") is False


@given(st.binary(max_size=600))
def test_decode_never_fails_other_than_cleanly(data: bytes) -> None:
    with contextlib.suppress(ProxyHeaderError):
        decode(SIGNATURE + data, LIMITS)


# -- the registry: who may speak for a client -------------------------------------------------
KEY = Ed25519PrivateKey.generate()
PRINT = fingerprint(public_key_bytes(KEY))
REGISTRY = ProxyRegistry([RegisteredProxy("examplechat", ("198.51.100.0/24",), PRINT)])
CLIENT = ProxyHeader(("192.0.2.1", 40000), ("198.51.100.7", 5223))


def test_a_registered_proxy_speaks_for_its_client() -> None:
    client = REGISTRY.admit("198.51.100.7", encode(sign(CLIENT, KEY, NOW)), NOW)
    assert (client.address, client.port, client.provider) == ("192.0.2.1", 40000, "examplechat")


def test_an_unregistered_peer_is_refused_whatever_it_signs() -> None:
    with pytest.raises(ProxyRefused, match="not a registered proxy"):
        REGISTRY.admit("203.0.113.9", encode(sign(CLIENT, KEY, NOW)), NOW)


def test_another_key_from_a_registered_address_is_refused() -> None:
    other = Ed25519PrivateKey.generate()
    with pytest.raises(ProxyRefused, match="unregistered key"):
        REGISTRY.admit("198.51.100.7", encode(sign(CLIENT, other, NOW)), NOW)


def test_an_unsigned_or_rewritten_header_is_refused() -> None:
    with pytest.raises(ProxyRefused, match="without a valid proxy signature"):
        REGISTRY.admit("198.51.100.7", encode(CLIENT), NOW)
    signed = sign(CLIENT, KEY, NOW)
    rewritten = ProxyHeader(("192.0.2.99", 40000), CLIENT.destination, signed.tlvs)
    with pytest.raises(ProxyRefused, match="does not verify"):
        REGISTRY.admit("198.51.100.7", encode(rewritten), NOW)


def test_clock_skew_at_its_boundary() -> None:
    registry = ProxyRegistry(REGISTRY.proxies, max_skew=60)
    registry.admit("198.51.100.7", encode(sign(CLIENT, KEY, NOW - 60)), NOW)
    with pytest.raises(ProxyRefused, match="more than 60 s"):
        registry.admit("198.51.100.7", encode(sign(CLIENT, KEY, NOW - 61)), NOW)


def test_a_malformed_header_from_a_registered_proxy_is_refused() -> None:
    data = encode(sign(CLIENT, KEY, NOW))
    with pytest.raises(ProxyRefused, match="malformed"):
        REGISTRY.admit("198.51.100.7", data[:-1], NOW)


def test_auth_tlv_is_an_application_type() -> None:
    assert 0xE0 <= AUTH_TLV <= 0xEF
    assert len(sign(CLIENT, KEY, NOW).tlv(AUTH_TLV) or b"") == 120


def test_a_replayed_header_is_refused_until_its_time_is_out_of_the_window() -> None:
    registry = ProxyRegistry(REGISTRY.proxies, max_skew=60)
    data = encode(sign(CLIENT, KEY, NOW))
    registry.admit("198.51.100.7", data, NOW)
    with pytest.raises(ProxyRefused, match="replayed"):
        registry.admit("198.51.100.7", data, NOW + 60)  # still within the skew: the nonce
    with pytest.raises(ProxyRefused, match="more than 60 s"):
        registry.admit("198.51.100.7", data, NOW + 61)  # then the time check
    # a new nonce over the same address block is a new header; the old nonce is forgotten
    registry.admit("198.51.100.7", encode(sign(CLIENT, KEY, NOW + 61)), NOW + 61)
    assert len(registry.replays) == 1


def test_a_rewritten_nonce_does_not_verify() -> None:
    signed = sign(CLIENT, KEY, NOW, nonce=bytes(16))
    auth = signed.tlv(AUTH_TLV) or b""
    forged = auth[:40] + bytes([1]) + auth[41:]
    header = ProxyHeader(CLIENT.source, CLIENT.destination, (Tlv(AUTH_TLV, forged),))
    with pytest.raises(ProxyRefused, match="does not verify"):
        ProxyRegistry(REGISTRY.proxies).admit("198.51.100.7", encode(header), NOW)
    with pytest.raises(ValueError, match="16 bytes"):
        sign(CLIENT, KEY, NOW, nonce=b"short")


def test_replay_cache_size_at_its_boundary() -> None:
    """Full of live nonces, a new header is refused (forgetting one would re-open it)."""
    registry = ProxyRegistry(REGISTRY.proxies, max_skew=10, replay_cache_size=2)
    registry.admit("198.51.100.7", encode(sign(CLIENT, KEY, NOW)), NOW)
    registry.admit("198.51.100.7", encode(sign(CLIENT, KEY, NOW + 1)), NOW)
    with pytest.raises(ProxyRefused, match="replay_cache_size"):
        registry.admit("198.51.100.7", encode(sign(CLIENT, KEY, NOW)), NOW)
    # once the first header's time is out of the window, its place is free
    registry.admit("198.51.100.7", encode(sign(CLIENT, KEY, NOW + 11)), NOW + 11)
    with pytest.raises(ValueError, match="at least one"):
        ReplayCache(0)
