"""Which peers may speak for a client: provider proxies registered at onboarding, and the check
of the PROXY v2 header one of them sends. Sans-I/O: peer addresses, header bytes and the wall
clock are passed in.

Theory of operation. A provider that runs a proxy (``interlink provider proxy``) registers, in
the hub's ``[proxies]`` configuration, the addresses its proxy connects from and the SHA-256
fingerprint of the proxy's Ed25519 public key. The proxy opens one connection to the hub's
direct-TLS port per client connection and writes, before the client's TLS bytes, a PROXY v2
header (:mod:`interlink.net.proxy_v2`) whose address block names the client, plus one TLV of type
:data:`AUTH_TLV` (0xE0, an application-specific type): its public key (32 bytes), the wall-clock
time in milliseconds (8 bytes, big-endian), a random nonce (16 bytes) and an Ed25519 signature
(64 bytes) over :data:`AUTH_CONTEXT`, the family byte and address block, the time and the nonce.

:meth:`ProxyRegistry.admit` accepts a header only when all of these hold, and otherwise raises
:class:`ProxyRefused` naming the first that does not: the peer's address is registered for some
provider; the header parses within the limits; it carries the auth TLV; the key's fingerprint is
one registered for *that* address; the signature verifies; the time is within ``max_skew`` of
ours; the nonce was not seen before (:class:`ReplayCache`: a header copied off the wire cannot be
sent again while its time is still acceptable). The address check alone would let anyone on a
shared network (a cloud provider's NAT) speak for clients; the key alone would let a stolen key
be used from anywhere. The signature binds the carried client address to the key, so a relay
cannot rewrite it in transit.

What the carried address is used for: the hub's per-source budgets (TLS handshakes, streams
before binding, the connection rate) and login throttling, as for a direct client, except that a
login from a carried address never makes an (account, address) pair trusted and never uses
one (:mod:`interlink.hub.auth_throttle`): a proxy could claim any address. It is never sent to
anyone (not to the provider's HTTP endpoints, not in pushes, not to contacts).

What a relayed stream may carry: only accounts of the proxy's own provider
(``<user>@<provider>.interop.<service>``); :class:`ProxiedClient` names that provider and the
stream driver refuses any other login on it.
"""

from __future__ import annotations

import base64
import hashlib
import heapq
import ipaddress
import secrets
import struct
from collections.abc import Iterable
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from interlink.net.proxy_v2 import (
    PP2_TYPE_MIN_CUSTOM,
    HeaderLimits,
    ProxyHeader,
    ProxyHeaderError,
    Tlv,
    decode,
)

AUTH_TLV = PP2_TYPE_MIN_CUSTOM
AUTH_CONTEXT = b"interlink proxy header v2\x00"
NONCE_BYTES = 16
AUTH_BYTES = 32 + 8 + NONCE_BYTES + 64
DEFAULT_MAX_SKEW = 120.0  # seconds between the proxy's clock and ours
DEFAULT_REPLAY_CACHE = 100_000  # nonces remembered at once


class ProxyRefused(ProxyHeaderError):
    """The peer may not speak for a client, or its header is wrong; the message is the log
    reason (never sent: the connection is closed)."""


def fingerprint(public_key: bytes) -> str:
    """``sha256:<hex>`` of a raw 32-byte Ed25519 public key (what onboarding registers)."""
    return "sha256:" + hashlib.sha256(public_key).hexdigest()


def public_key_bytes(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes_raw()


def sign(
    header: ProxyHeader, key: Ed25519PrivateKey, now: float, nonce: bytes | None = None
) -> ProxyHeader:
    """``header`` with the auth TLV appended (what a registered proxy sends); ``nonce``, 16
    bytes used once (fresh random ones when not given)."""
    nonce = secrets.token_bytes(NONCE_BYTES) if nonce is None else nonce
    if len(nonce) != NONCE_BYTES:
        raise ValueError(f"a proxy header nonce is {NONCE_BYTES} bytes")
    stamp = struct.pack("!Q", int(now * 1000))
    signature = key.sign(AUTH_CONTEXT + header.address_block() + stamp + nonce)
    auth = Tlv(AUTH_TLV, public_key_bytes(key) + stamp + nonce + signature)
    return ProxyHeader(header.source, header.destination, (*header.tlvs, auth))


@dataclass(frozen=True, slots=True)
class RegisteredProxy:
    """A provider's proxy: the networks it connects from and its key's fingerprint."""

    provider: str
    networks: tuple[str, ...]
    fingerprint: str

    def __post_init__(self) -> None:
        if not self.networks:
            raise ValueError(f"proxy of {self.provider}: at least one address is needed")
        for net in self.networks:
            ipaddress.ip_network(net, strict=False)  # ValueError when malformed
        digest = self.fingerprint.removeprefix("sha256:")
        if not self.fingerprint.startswith("sha256:") or len(digest) != 64:
            raise ValueError(f"proxy of {self.provider}: fingerprint must be sha256:<64 hex>")
        bytes.fromhex(digest)


@dataclass(frozen=True, slots=True)
class ProxiedClient:
    """A client connection relayed by a registered proxy: the client's address as the proxy saw
    it, and which provider's proxy relayed it."""

    address: str
    port: int
    provider: str


class ReplayCache:
    """The nonces of headers accepted lately, each kept until its header's time is out of the
    skew window (then a replay fails the time check anyway). Bounded: at ``size`` live nonces a
    new header is refused rather than an old nonce forgotten (forgetting would re-open it to
    replay); only registered proxies, whose signatures verified, can fill it."""

    def __init__(self, size: int = DEFAULT_REPLAY_CACHE) -> None:
        if size < 1:
            raise ValueError("the replay cache holds at least one nonce")
        self.size = size
        self._live: set[bytes] = set()
        self._expiry: list[tuple[float, bytes]] = []  # a heap: (forget at, nonce)

    def __len__(self) -> int:
        return len(self._live)

    def remember(self, nonce: bytes, until: float, now: float) -> str | None:
        """Remember ``nonce`` until ``until``; the refusal reason if it was seen or the cache
        is full, else ``None``."""
        while self._expiry and self._expiry[0][0] < now:
            self._live.discard(heapq.heappop(self._expiry)[1])
        if nonce in self._live:
            return "replayed (its nonce was seen before)"
        if len(self._live) >= self.size:
            return f"refused: {self.size} nonces are live (proxies.replay_cache_size)"
        self._live.add(nonce)
        heapq.heappush(self._expiry, (until, nonce))
        return None


class ProxyRegistry:
    """The registered proxies, and the check of their headers."""

    def __init__(
        self,
        proxies: Iterable[RegisteredProxy] = (),
        limits: HeaderLimits | None = None,
        max_skew: float = DEFAULT_MAX_SKEW,
        replay_cache_size: int = DEFAULT_REPLAY_CACHE,
    ) -> None:
        self.proxies = tuple(proxies)
        self.limits = limits or HeaderLimits()
        self.max_skew = max_skew
        self.replays = ReplayCache(replay_cache_size)
        self._nets = [
            (ipaddress.ip_network(n, strict=False), p) for p in self.proxies for n in p.networks
        ]

    def registered_at(self, address: str | None) -> tuple[RegisteredProxy, ...]:
        """The proxies registered for ``address`` (a peer address; ``None`` if unknown)."""
        try:
            ip = ipaddress.ip_address((address or "").split("%", 1)[0])
        except ValueError:
            return ()
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return tuple(p for net, p in self._nets if ip.version == net.version and ip in net)

    def admit(self, peer: str | None, data: bytes, now: float) -> ProxiedClient:
        """Check a complete header ``data`` sent by ``peer`` at wall-clock ``now``.

        Raises:
            ProxyRefused: the peer is not registered, or the header fails a check (the message
                says which).
        """
        candidates = self.registered_at(peer)
        if not candidates:
            raise ProxyRefused(f"PROXY header from {peer}, which is not a registered proxy")
        try:
            header = decode(data, self.limits)
        except ProxyHeaderError as exc:
            raise ProxyRefused(f"malformed PROXY header from {peer}: {exc}") from exc
        auth = header.tlv(AUTH_TLV)
        if auth is None or len(auth) != AUTH_BYTES:
            raise ProxyRefused(f"PROXY header from {peer} without a valid proxy signature TLV")
        key, stamp, nonce, signature = auth[:32], auth[32:40], auth[40:56], auth[56:]
        print_ = fingerprint(key)
        proxy = next((p for p in candidates if p.fingerprint == print_), None)
        if proxy is None:
            raise ProxyRefused(f"PROXY header from {peer} signed by an unregistered key {print_}")
        try:
            Ed25519PublicKey.from_public_bytes(key).verify(
                signature, AUTH_CONTEXT + header.address_block() + stamp + nonce
            )
        except InvalidSignature as exc:
            raise ProxyRefused(f"PROXY header from {peer}: the signature does not verify") from exc
        sent = struct.unpack("!Q", stamp)[0] / 1000
        if abs(sent - now) > self.max_skew:
            raise ProxyRefused(
                f"PROXY header from {peer} dated {sent - now:+.0f} s from now "
                f"(more than {self.max_skew:.0f} s)"
            )
        replayed = self.replays.remember(nonce, sent + self.max_skew, now)
        if replayed is not None:
            raise ProxyRefused(f"PROXY header from {peer} {replayed}")
        address, port = header.source
        return ProxiedClient(address, port, proxy.provider)


def load_private_key(text: str) -> Ed25519PrivateKey:
    """A proxy key from its stored form (base64url of the raw 32-byte seed).

    Raises:
        ValueError: not such a key.
    """
    raw = base64.urlsafe_b64decode(text.strip() + "=" * (-len(text.strip()) % 4))
    return Ed25519PrivateKey.from_private_bytes(raw)


def dump_private_key(key: Ed25519PrivateKey) -> str:
    return base64.urlsafe_b64encode(key.private_bytes_raw()).decode().rstrip("=")
