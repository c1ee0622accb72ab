"""PROXY protocol version 2 (HAProxy, "The PROXY protocol", versions 1 & 2, §2.2): a strict,
sans-I/O encoder and decoder of the binary header a relay sends before the relayed bytes, so the
receiver learns the original client's address.

Theory of operation. A header is 16 fixed bytes (§2.2): the 12-byte signature, the version and
command byte, the address family and transport byte, and the big-endian length of what follows:
the address block (§2.2: 12 bytes for TCP over IPv4, 36 for TCP over IPv6) and then
type-length-value vectors (TLVs, §2.2.7). :func:`header_length` tells, from the first 16 bytes,
how many bytes the whole header takes, so an I/O shell reads exactly that much and not one byte
of the TLS stream behind it; :func:`decode` parses a complete header; :func:`encode` builds one.

Strictness, because a header decides whose budgets a connection spends: only version 2, only the
PROXY command (LOCAL, a relay's own health check, has no client to carry), only TCP over IPv4 or
IPv6, a length within :class:`HeaderLimits` (far below the protocol's 64 KiB), TLVs that tile the
rest exactly, at most ``max_tlvs`` of them, no value over ``max_tlv_bytes``. Unknown TLV types are
kept and ignored by the caller (§2.2.7: receivers must ignore unknown types). Every violation is a
:class:`ProxyHeaderError` naming it; the caller closes the connection.

Why not a library: the PyPI ``proxy-protocol`` package (0.11, last released 2024-04, one
maintainer) is built around its own asyncio server and has no limits on TLVs; the hub needs a
pure parser it can bound and feed from its own accept loop. The format is 16 bytes and a table.
"""

from __future__ import annotations

import enum
import ipaddress
import struct
from dataclasses import dataclass

from interlink.errors import InterlinkError

SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"  # §2.2: 0D 0A 0D 0A 00 0D 0A 51 55 49 54 0A
FIXED_BYTES = 16  # signature, version/command, family/transport, length
VERSION = 0x2
_INET_BLOCK = 12  # §2.2: src addr 4, dst addr 4, src port 2, dst port 2
_INET6_BLOCK = 36  # src addr 16, dst addr 16, src port 2, dst port 2
PP2_TYPE_NOOP = 0x04  # §2.2.7 padding
PP2_TYPE_MIN_CUSTOM = 0xE0  # §2.2.8: 0xE0-0xEF are for application-specific data


class ProxyHeaderError(InterlinkError):
    """A PROXY v2 header is malformed or outside the limits; the connection is closed (there is
    no wire answer: the peer is a relay, and the bytes behind the header are someone's TLS)."""


class Command(enum.IntEnum):
    LOCAL = 0x0
    PROXY = 0x1


class Family(enum.IntEnum):
    INET = 0x1
    INET6 = 0x2


@dataclass(frozen=True, slots=True)
class HeaderLimits:
    """``max_header_bytes``: the whole header, fixed part included (at least an IPv6 block);
    ``max_tlvs``: how many TLVs; ``max_tlv_bytes``: one TLV's value."""

    max_header_bytes: int = 512
    max_tlvs: int = 8
    max_tlv_bytes: int = 256

    def __post_init__(self) -> None:
        if self.max_header_bytes < FIXED_BYTES + _INET6_BLOCK:
            raise ValueError(f"max_header_bytes must be at least {FIXED_BYTES + _INET6_BLOCK}")
        if self.max_header_bytes > FIXED_BYTES + 0xFFFF:
            raise ValueError("max_header_bytes cannot exceed the protocol's 16 + 65535 bytes")
        if self.max_tlvs < 0 or self.max_tlv_bytes < 0:
            raise ValueError("TLV limits cannot be negative")


@dataclass(frozen=True, slots=True)
class Tlv:
    type: int
    value: bytes

    def __post_init__(self) -> None:
        if not 0 <= self.type <= 0xFF:
            raise ValueError("a TLV type is one byte")
        if len(self.value) > 0xFFFF:
            raise ValueError("a TLV value is at most 65535 bytes")


@dataclass(frozen=True, slots=True)
class ProxyHeader:
    """A PROXY command: the client's address and port as the relay saw them (``source``), the
    address the client connected to (``destination``), and the TLVs in order."""

    source: tuple[str, int]
    destination: tuple[str, int]
    tlvs: tuple[Tlv, ...] = ()

    @property
    def family(self) -> Family:
        return Family.INET6 if ":" in self.source[0] else Family.INET

    def address_block(self) -> bytes:
        """The family byte and the address block, as encoded (what a signature covers)."""
        (src, sport), (dst, dport) = self.source, self.destination
        if self.family is Family.INET:
            a, b = ipaddress.IPv4Address(src), ipaddress.IPv4Address(dst)
        else:
            a, b = ipaddress.IPv6Address(src), ipaddress.IPv6Address(dst)  # type: ignore[assignment]
        if a.version != b.version:
            raise ProxyHeaderError("source and destination are of different address families")
        return (
            bytes([(self.family << 4) | 0x1])
            + a.packed
            + b.packed
            + struct.pack("!HH", sport, dport)
        )

    def tlv(self, type_: int) -> bytes | None:
        """The value of the first TLV of ``type_``, if any."""
        return next((t.value for t in self.tlvs if t.type == type_), None)


def encode(header: ProxyHeader) -> bytes:
    """The header's bytes.

    Raises:
        ProxyHeaderError: the addresses are not of one family, or the TLVs do not fit 64 KiB.
    """
    try:
        block = header.address_block()
    except (ValueError, struct.error) as exc:
        raise ProxyHeaderError(f"cannot encode the addresses: {exc}") from exc
    tlvs = b"".join(struct.pack("!BH", t.type, len(t.value)) + t.value for t in header.tlvs)
    length = len(block) - 1 + len(tlvs)
    if length > 0xFFFF:
        raise ProxyHeaderError("the header's TLVs exceed the protocol's 65535 bytes")
    return (
        SIGNATURE
        + bytes([(VERSION << 4) | Command.PROXY, block[0]])
        + struct.pack("!H", length)
        + block[1:]
        + tlvs
    )


def starts_like_header(data: bytes) -> bool | None:
    """``True`` if ``data`` begins with the signature, ``False`` if it cannot be a header,
    ``None`` if it is a proper prefix of the signature (read more to know)."""
    n = min(len(data), len(SIGNATURE))
    if data[:n] != SIGNATURE[:n]:
        return False
    return True if n == len(SIGNATURE) else None


def header_length(fixed: bytes, limits: HeaderLimits) -> int:
    """The whole header's length from its first 16 bytes.

    Raises:
        ProxyHeaderError: not a v2 signature, or the length exceeds ``limits``.
    """
    if len(fixed) < FIXED_BYTES:
        raise ProxyHeaderError("a PROXY v2 header has at least 16 bytes")
    if fixed[:12] != SIGNATURE:
        raise ProxyHeaderError("not a PROXY v2 signature")
    total = FIXED_BYTES + int.from_bytes(fixed[14:16], "big")
    if total > limits.max_header_bytes:
        raise ProxyHeaderError(
            f"PROXY header of {total} bytes exceeds the limit of {limits.max_header_bytes}"
        )
    return total


def decode(data: bytes, limits: HeaderLimits) -> ProxyHeader:
    """Parse one complete header (exactly :func:`header_length` bytes).

    Raises:
        ProxyHeaderError: anything the module docstring lists as refused.
    """
    total = header_length(data[:FIXED_BYTES], limits)
    if len(data) != total:
        raise ProxyHeaderError(f"expected {total} header bytes, got {len(data)}")
    version, command = data[12] >> 4, data[12] & 0x0F
    if version != VERSION:
        raise ProxyHeaderError(f"PROXY protocol version {version} (only 2 is accepted)")
    if command != Command.PROXY:
        raise ProxyHeaderError("only the PROXY command is accepted (LOCAL carries no client)")
    family, transport = data[13] >> 4, data[13] & 0x0F
    if transport != 0x1:
        raise ProxyHeaderError("only TCP (STREAM) is accepted")
    body = data[FIXED_BYTES:]
    if family == Family.INET:
        size, width, cls = _INET_BLOCK, 4, ipaddress.IPv4Address
    elif family == Family.INET6:
        size, width, cls = _INET6_BLOCK, 16, ipaddress.IPv6Address  # type: ignore[assignment]
    else:
        raise ProxyHeaderError(f"address family {family} is not accepted (IPv4 and IPv6 only)")
    if len(body) < size:
        raise ProxyHeaderError("the address block is truncated")
    src = str(cls(body[:width]))
    dst = str(cls(body[width : 2 * width]))
    sport, dport = struct.unpack("!HH", body[2 * width : size])
    return ProxyHeader((src, sport), (dst, dport), _tlvs(body[size:], limits))


def _tlvs(data: bytes, limits: HeaderLimits) -> tuple[Tlv, ...]:
    out: list[Tlv] = []
    at = 0
    while at < len(data):
        if len(out) >= limits.max_tlvs:
            raise ProxyHeaderError(f"more than {limits.max_tlvs} TLVs")
        if len(data) - at < 3:
            raise ProxyHeaderError("a TLV is truncated")
        type_, length = struct.unpack("!BH", data[at : at + 3])
        if length > limits.max_tlv_bytes:
            raise ProxyHeaderError(f"a TLV of {length} bytes exceeds {limits.max_tlv_bytes}")
        if at + 3 + length > len(data):
            raise ProxyHeaderError("a TLV runs past the header's end")
        out.append(Tlv(type_, data[at + 3 : at + 3 + length]))
        at += 3 + length
    return tuple(out)
