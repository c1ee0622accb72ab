"""Transparent TCP taps for the metadata ledger: what actually crossed a socket.

A :class:`Tap` is a loopback relay owned by the test. The code under test is pointed at the
tap's port instead of its peer's (a route, a URL, a DNS answer); the tap connects on to the real
peer and records every byte in each direction, per connection (:class:`Flow`). Nothing in the
code under test knows it is there.

What a party *holding a TLS key* reads from those bytes is recovered with the session secrets
that party's TLS library logs (the NSS key log format, ``SSLContext.keylog_filename`` or the
``SSLKEYLOGFILE`` variable that :func:`ssl.create_default_context` honours):
:func:`tls_plaintext` decrypts TLS 1.3 records from a tapped flow. Without the secrets the
records stay what a network observer sees: sizes, timing and the ClientHello.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import ssl
import struct
from dataclasses import dataclass, field
from pathlib import Path

import trustme
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand

CHUNK = 64 * 1024


@dataclass
class Flow:
    """One tapped connection: ``up`` from the side that connected, ``down`` back to it."""

    up: bytearray = field(default_factory=bytearray)
    down: bytearray = field(default_factory=bytearray)


class Tap:
    """Listens on 127.0.0.1 and relays each connection to ``host:port``, recording both ways.
    ``same_source``: connect on from the address the connection came from (a peer that checks
    its client's address sees the real one)."""

    def __init__(self, host: str, port: int, *, same_source: bool = False) -> None:
        self.host = host
        self.port = port
        self.same_source = same_source
        self.flows: list[Flow] = []
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def port_bound(self) -> int:
        """The port the tap listens on."""
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port_bound}"

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.close()
        if self._server is not None:
            await self._server.wait_closed()

    def wire(self) -> bytes:
        """Every byte seen, both directions of every connection."""
        return b"\n".join(bytes(f.up) + b"\n" + bytes(f.down) for f in self.flows)

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        flow = Flow()
        self.flows.append(flow)
        self._writers.add(writer)
        try:
            source = (writer.get_extra_info("peername")[0], 0) if self.same_source else None
            up_reader, up_writer = await asyncio.open_connection(
                self.host, self.port, local_addr=source
            )
        except OSError:
            writer.close()
            return
        self._writers.add(up_writer)
        try:
            await asyncio.gather(
                _pipe(reader, up_writer, flow.up), _pipe(up_reader, writer, flow.down)
            )
        finally:
            for w in (writer, up_writer):
                self._writers.discard(w)
                w.close()
                with contextlib.suppress(Exception):
                    await w.wait_closed()


async def _pipe(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, record: bytearray
) -> None:
    try:
        while data := await reader.read(CHUNK):
            record += data
            writer.write(data)
            await writer.drain()
    except (OSError, ConnectionError):
        pass
    finally:
        with contextlib.suppress(OSError, RuntimeError):
            if writer.can_write_eof():
                writer.write_eof()
            else:
                writer.close()


# -- HTTP/1.1 requests ---------------------------------------------------------------------------
_REQUEST_LINE = re.compile(rb"(GET|HEAD|POST|PUT|DELETE|PATCH) (\S+) HTTP/1\.[01]\r\n")
_CONTENT_LENGTH = re.compile(rb"(?i)\r\ncontent-length: *(\d+)")


def http_requests(data: bytes) -> list[tuple[str, bytes]]:
    """The requests in a client-to-server HTTP/1.1 byte stream, as (path, raw request), each
    delimited by its headers and ``Content-Length`` (the hub's client sends no chunked bodies);
    a request the connection cut short is the rest of the stream.

    Raises:
        ValueError: the stream is not a sequence of such requests.
    """
    out, i = [], 0
    while i < len(data):
        line = _REQUEST_LINE.match(data, i)
        if line is None:
            raise ValueError(f"not an HTTP/1.1 request at {i}: {data[i : i + 40]!r}")
        end = data.find(b"\r\n\r\n", i)
        length = None if end < 0 else _CONTENT_LENGTH.search(data, i, end + 2)
        stop = len(data) if end < 0 else end + 4 + (int(length[1]) if length else 0)
        out.append((line[2].decode(errors="replace").split("?", 1)[0], data[i:stop]))
        i = stop
    return out


# -- TLS 1.3 ---------------------------------------------------------------------------------------
_SUITES: dict[int, tuple[type[AESGCM] | type[ChaCha20Poly1305], int, hashes.HashAlgorithm]] = {
    # cipher suite -> (AEAD, key length, hash)
    0x1301: (AESGCM, 16, hashes.SHA256()),
    0x1302: (AESGCM, 32, hashes.SHA384()),
    0x1303: (ChaCha20Poly1305, 32, hashes.SHA256()),
}
_HANDSHAKE, _APPLICATION_DATA = 22, 23


class NotDecrypted(Exception):
    """The flow holds no TLS 1.3 session the key log has secrets for."""


def keylog_secrets(text: str) -> dict[bytes, dict[str, bytes]]:
    """client random -> {label: secret} from an NSS key log."""
    out: dict[bytes, dict[str, bytes]] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 3 and not line.startswith("#"):
            out.setdefault(bytes.fromhex(parts[1]), {})[parts[0]] = bytes.fromhex(parts[2])
    return out


def _expand_label(secret: bytes, label: str, length: int, algorithm: hashes.HashAlgorithm) -> bytes:
    full = b"tls13 " + label.encode()
    info = struct.pack("!HB", length, len(full)) + full + b"\x00"
    return HKDFExpand(algorithm, length, info).derive(secret)


def _records(data: bytes) -> list[tuple[int, bytes, bytes]]:
    """(content type, header, fragment) of each complete record."""
    out, i = [], 0
    while i + 5 <= len(data):
        kind, _version, length = struct.unpack("!BHH", data[i : i + 5])
        if i + 5 + length > len(data):
            break
        out.append((kind, data[i : i + 5], data[i + 5 : i + 5 + length]))
        i += 5 + length
    return out


_HELLO = re.compile(rb"\x16\x03[\x01\x03]..[\x01\x02]", re.DOTALL)


def only_tls(data: bytes) -> bool:
    """Whether ``data`` is nothing but whole TLS records (handshake, alert, change_cipher_spec,
    application data): what a network observer of it reads is record sizes."""
    records = _records(data)
    return (
        bool(records)
        and all(20 <= kind <= 23 for kind, _h, _f in records)
        and sum(5 + len(f) for _k, _h, f in records) == len(data)
    )


def _tls_start(data: bytes) -> int:
    """Where TLS begins in a direction: the first hello record (after a STARTTLS exchange's XML,
    which cannot hold the control character 0x16; after a PROXY header, whose random bytes could,
    but hardly followed by a hello's version and type)."""
    found = _HELLO.search(data)
    return -1 if found is None else found.start()


class _Direction:
    def __init__(self, secrets: list[bytes], suite: int) -> None:
        self.aead, self.key_length, self.hash = _SUITES[suite]
        self.secrets = secrets
        self.epoch = 0
        self.seq = 0
        self._keys()

    def _keys(self) -> None:
        secret = self.secrets[self.epoch]
        self.cipher: AESGCM | ChaCha20Poly1305 = self.aead(
            _expand_label(secret, "key", self.key_length, self.hash)
        )
        self.iv = _expand_label(secret, "iv", 12, self.hash)

    def open(self, header: bytes, fragment: bytes) -> tuple[int, bytes]:
        while True:
            nonce = bytes(a ^ b for a, b in zip(self.iv, self.seq.to_bytes(12, "big"), strict=True))
            try:
                inner = self.cipher.decrypt(nonce, fragment, header)
            except InvalidTag:
                if self.epoch + 1 >= len(self.secrets):
                    raise NotDecrypted("a record no logged secret opens") from None
                self.epoch, self.seq = self.epoch + 1, 0  # handshake keys -> application keys
                self._keys()
                continue
            self.seq += 1
            inner = inner.rstrip(b"\x00")
            return inner[-1], inner[:-1]


def tls_plaintext(flow: Flow, keylog: str) -> tuple[bytes, bytes]:
    """What a holder of the session's secrets reads in ``flow``: per direction (up, down), the
    clear bytes before TLS (a STARTTLS preamble) followed by the decrypted application data.

    Raises:
        NotDecrypted: no TLS 1.3 session of this flow is in ``keylog``.
    """
    up_start, down_start = _tls_start(bytes(flow.up)), _tls_start(bytes(flow.down))
    if up_start < 0 or down_start < 0:
        raise NotDecrypted("no TLS handshake in the flow")
    up_records = _records(bytes(flow.up[up_start:]))
    down_records = _records(bytes(flow.down[down_start:]))
    if not up_records or not down_records:
        raise NotDecrypted("no complete hello")
    client_hello, server_hello = up_records[0][2], down_records[0][2]
    client_random = client_hello[6:38]
    session_id_length = server_hello[38]
    suite = struct.unpack("!H", server_hello[39 + session_id_length : 41 + session_id_length])[0]
    secrets = keylog_secrets(keylog).get(client_random)
    if secrets is None or suite not in _SUITES:
        raise NotDecrypted(f"no secrets for this session (suite {suite:#06x})")
    try:
        client = _Direction(
            [secrets["CLIENT_HANDSHAKE_TRAFFIC_SECRET"], secrets["CLIENT_TRAFFIC_SECRET_0"]],
            suite,
        )
        server = _Direction(
            [secrets["SERVER_HANDSHAKE_TRAFFIC_SECRET"], secrets["SERVER_TRAFFIC_SECRET_0"]],
            suite,
        )
    except KeyError as exc:
        raise NotDecrypted(f"the key log lacks {exc}") from None
    out = []
    for start, raw, records, direction in (
        (up_start, flow.up, up_records, client),
        (down_start, flow.down, down_records, server),
    ):
        clear = bytearray(raw[:start])
        for kind, header, fragment in records:
            if kind != _APPLICATION_DATA:
                continue  # hellos, change_cipher_spec, plaintext alerts
            inner_kind, data = direction.open(header, fragment)
            if inner_kind == _APPLICATION_DATA:
                clear += data
        out.append(bytes(clear))
    return out[0], out[1]


async def tls_flow(preamble: bytes, payload: bytes, keylog: Path) -> Flow:
    """One STARTTLS session through a :class:`Tap`, as an s2s stream has: ``preamble`` in clear,
    then ``payload`` inside TLS, to a server whose session secrets go to ``keylog``. The tapped
    flow (a test of what the taps and :func:`tls_plaintext` make of such a stream)."""
    ca = trustme.CA()
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("peer.example").configure_cert(server_tls)
    server_tls.keylog_filename = str(keylog)
    client_tls = ssl.create_default_context()
    ca.configure_trust(client_tls)
    done = asyncio.Event()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"<starttls/>")
        writer.write(b"<proceed/>")
        await writer.drain()
        await writer.start_tls(server_tls)
        await reader.readexactly(len(payload))
        writer.write(b"ok")
        await writer.drain()
        writer.close()
        done.set()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    tap = Tap("127.0.0.1", server.sockets[0].getsockname()[1])
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", await tap.start())
        writer.write(preamble + b"<starttls/>")
        await reader.readexactly(len(b"<proceed/>"))
        await writer.start_tls(client_tls, server_hostname="peer.example")
        writer.write(payload)
        assert await reader.read() == b"ok"
        await asyncio.wait_for(done.wait(), 10)
        writer.close()
    finally:
        await tap.close()
        server.close()
    [flow] = tap.flows
    return flow
