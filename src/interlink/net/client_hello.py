"""The server name a TLS client asks for, read from its ClientHello without terminating TLS
(RFC 8446 §4.1.2, RFC 6066 §3). Sans-I/O: bytes in, a name out.

Theory of operation. A blind relay must choose where to connect before anything but the client's
first flight has arrived. That flight is one or more TLS records of content type handshake (22,
RFC 8446 §5.1) carrying one ClientHello handshake message (type 1, §4). :func:`parse` takes the
bytes received so far and returns ``None`` while the ClientHello is incomplete, or the
:class:`ClientHello` it found: the ``server_name`` extension's ``host_name`` (lower-cased), or
``None`` when the client sent none. Anything else (not a handshake record, a malformed length, a
ClientHello larger than ``max_bytes``) raises :class:`NotClientHello`. Nothing is decrypted or
kept: the relay forwards the same bytes unchanged.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from interlink.errors import InterlinkError

HANDSHAKE = 22  # RFC 8446 §5.1 ContentType.handshake
CLIENT_HELLO = 1  # §4 HandshakeType.client_hello
SERVER_NAME = 0  # RFC 6066 §3 ExtensionType.server_name
HOST_NAME = 0  # NameType.host_name
MAX_RECORD = 16384 + 256  # §5.2: a TLSPlaintext fragment is at most 2^14 bytes (+ slack)
DEFAULT_MAX_BYTES = 16 * 1024


class NotClientHello(InterlinkError):
    """The bytes are not the start of a TLS ClientHello within the limits."""


@dataclass(frozen=True, slots=True)
class ClientHello:
    server_name: str | None


def parse(data: bytes, max_bytes: int = DEFAULT_MAX_BYTES) -> ClientHello | None:
    """The ClientHello in ``data``, or ``None`` if more bytes are needed.

    Raises:
        NotClientHello: see the module docstring.
    """
    message = b""
    at = 0
    while True:
        if len(data) - at < 5:
            _check_room(data, max_bytes)
            return None
        ctype, _version, length = struct.unpack("!BHH", data[at : at + 5])
        if ctype != HANDSHAKE:
            raise NotClientHello(f"TLS record type {ctype}, not a handshake")
        if length == 0 or length > MAX_RECORD:
            raise NotClientHello(f"TLS record of {length} bytes")
        if len(data) - at - 5 < length:
            _check_room(data, max_bytes)
            return None
        message += data[at + 5 : at + 5 + length]
        at += 5 + length
        if len(message) >= 4:
            if message[0] != CLIENT_HELLO:
                raise NotClientHello(f"handshake type {message[0]}, not a ClientHello")
            size = int.from_bytes(message[1:4], "big")
            if size > max_bytes:
                raise NotClientHello(f"ClientHello of {size} bytes exceeds {max_bytes}")
            if len(message) - 4 >= size:
                return ClientHello(_server_name(message[4 : 4 + size]))


def _check_room(data: bytes, max_bytes: int) -> None:
    if len(data) > max_bytes + 5 * (max_bytes // 16384 + 2):
        raise NotClientHello(f"no complete ClientHello in {len(data)} bytes")


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.at = data, 0

    def take(self, n: int) -> bytes:
        if self.at + n > len(self.data):
            raise NotClientHello("ClientHello truncated")
        out = self.data[self.at : self.at + n]
        self.at += n
        return out

    def vector(self, width: int) -> bytes:
        return self.take(int.from_bytes(self.take(width), "big"))


def _server_name(body: bytes) -> str | None:
    r = _Reader(body)
    r.take(2 + 32)  # legacy_version, random
    r.vector(1)  # legacy_session_id
    r.vector(2)  # cipher_suites
    r.vector(1)  # legacy_compression_methods
    if r.at == len(body):
        return None  # no extensions at all
    extensions = _Reader(r.vector(2))
    while extensions.at < len(extensions.data):
        ext_type = int.from_bytes(extensions.take(2), "big")
        ext = extensions.vector(2)
        if ext_type != SERVER_NAME:
            continue
        names = _Reader(_Reader(ext).vector(2))
        while names.at < len(names.data):
            name_type = names.take(1)[0]
            name = names.vector(2)
            if name_type == HOST_NAME:
                try:
                    return name.decode("ascii").lower()
                except UnicodeDecodeError as exc:
                    raise NotClientHello("server name is not ASCII") from exc
        return None
    return None
