"""Server-to-server XMPP over TCP: the listener, the connector and the links between them.

Theory of operation
-------------------
A thin asyncio shell around the sans-I/O streams of :mod:`interlink.xmpp.s2s`:

- :class:`S2SService` is the hub's :class:`~interlink.hub.federation.FederationPort` (stanzas
  to federated users) and operator state's
  :class:`~interlink.interop.operator.FederationLinks` (provider records; suspension closes a
  provider's links at once). It keeps one outbound link per (our service domain, their server
  domain), opened on the first stanza, and every inbound link.
- :class:`ProviderGate` is the streams' :class:`~interlink.xmpp.s2s.PeerGate`: only server
  domains of approved providers in federated mode are admitted, and a certificate authenticates
  a domain when it names it (XEP-0178 §3) and, as the provider's record asks, matches a pinned
  SHA-256 fingerprint, or was issued by its CA over a chain the TLS layer verified, or (neither
  given) chains to the system's trust store.
- Where a provider's server is: its record's ``s2s_address`` (``host:port``, for private links
  and tests), else the SRV records ``_xmpp-server._tcp.<domain>`` (RFC 6120 §3.2.1, by priority,
  then weight), else ``<domain>:5269`` (§3.2.2).
- Inbound stanzas are handled strictly in order per link (a queue and one task per link), each
  through :meth:`~interlink.hub.hub.Hub.route_federated`.

TLS: the listener asks for the peer's certificate (``CERT_OPTIONAL``) against the system's trust
store plus every provider's CA; a peer presenting a certificate that does not verify fails the
handshake. Outbound, a provider with pinned fingerprints and no CA is reached without chain
verification (the pin decides); otherwise the chain must verify (its CA, or the system's).

Pinned fingerprints without a CA, inbound: Python's TLS layer cannot ask for a certificate
without verifying it, and the hub holds only the pin, not the certificate. So the certificate
that a pinned provider's server presented on one of the hub's own outbound handshakes, when it
names the domain and matches a pin, becomes a trust anchor of the listener (partial-chain
verification: that very certificate, nothing it issued). When such a server connects first,
the hub opens a short outbound TLS handshake to it before answering its STARTTLS, to see it.
The pin still decides afterwards (:meth:`ProviderGate.certificate_ok`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import cast

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from interlink.errors import (
    StanzaError,
    StanzaErrorCondition,
    StreamError,
    StreamErrorCondition,
    reason,
)
from interlink.hub.addressing import Addressing
from interlink.hub.hub import Hub
from interlink.storage.providers import Provider
from interlink.xmpp.s2s import (
    DialbackVerifyAnswered,
    DialbackVerifyRequested,
    InboundStream,
    OutboundStream,
    PeerAuthenticated,
    PeerCertificate,
    Ready,
    S2SConfig,
    S2SEvent,
    StanzaReceived,
    StreamClosed,
    TlsStartRequested,
    certs,
)
from interlink.xmpp.stanza import Stanza

log = logging.getLogger("interlink.s2s")

DEFAULT_PORT = 5269  # RFC 6120 §3.2.2 fallback


@dataclass(frozen=True, slots=True)
class S2SLimits:
    connect_timeout: float = 10.0
    tls_handshake_timeout: float = 10.0
    max_links: int = 256  # inbound and outbound links at once


@dataclass
class ProviderCounters:
    """Per provider, for ``/metrics``."""

    connections: Counter[str] = field(default_factory=Counter)  # by direction
    stanzas: Counter[str] = field(default_factory=Counter)  # by direction
    bytes: Counter[str] = field(default_factory=Counter)  # by direction
    methods: Counter[str] = field(default_factory=Counter)  # "<direction>:<auth method>"
    refusals: int = 0


class ServiceDomains:
    """What an s2s stream may be addressed to: the gatekeeper service domains and their group
    services (whose rooms have federated members, issue 18); never their plug-and-play
    subdomains (they belong to other providers' users, never to a federated server)."""

    def __init__(self, addressing: Addressing) -> None:
        self._addressing = addressing

    @property
    def default(self) -> str:
        return self._addressing.default

    def serves(self, domain: str) -> bool:
        addressing = self._addressing
        return addressing.is_home_domain(domain) or addressing.is_groups_domain(domain)


class ProviderGate:
    """Which domains may federate, and whether a certificate proves one (see the module doc)."""

    def __init__(self, addressing: Addressing) -> None:
        self._directory = addressing.providers
        self._records: dict[str, Provider] = {}

    def put(self, provider: Provider) -> None:
        self._records[provider.id] = provider

    def remove(self, provider_id: str) -> None:
        self._records.pop(provider_id, None)

    def record(self, provider_id: str) -> Provider | None:
        return self._records.get(provider_id)

    def owner(self, domain: str) -> str | None:
        return self._directory.server_domain_owner(domain)

    def admit(self, domain: str) -> StreamError | None:
        owner = self._directory.server_domain_owner(domain)
        if owner is None:
            return StreamError(
                StreamErrorCondition.NOT_AUTHORIZED, f"{domain} is not onboarded to this hub"
            )
        if self._directory.federated(domain) is None:
            return StreamError(
                StreamErrorCondition.POLICY_VIOLATION,
                f"the provider of {domain} is suspended, pending or not in federated mode",
            )
        return None

    def certificate_ok(self, domain: str, cert: PeerCertificate) -> bool:
        owner = self._directory.server_domain_owner(domain)
        provider = None if owner is None else self._records.get(owner)
        der = cert.der
        if provider is None or der is None or not certs.names_domain(der, domain):
            return False
        if provider.s2s_fingerprints:
            return certs.fingerprint(der) in provider.s2s_fingerprints
        if provider.s2s_ca is not None:
            return cert.chain_verified and certs.issued_by(der, provider.s2s_ca.encode())
        return cert.chain_verified

    def trusted_cas(self) -> str:
        return "".join(p.s2s_ca for p in self._records.values() if p.s2s_ca)


Resolver = Callable[[str], Awaitable[list[tuple[str, int]]]]


async def srv_targets(domain: str) -> list[tuple[str, int]]:
    """RFC 6120 §3.2: the SRV targets of ``domain`` in order, else ``domain:5269``."""
    import dns.asyncresolver
    import dns.exception
    import dns.resolver

    try:
        answer = await dns.asyncresolver.resolve(f"_xmpp-server._tcp.{domain}", "SRV")
    except (dns.exception.DNSException, OSError):
        return [(domain, DEFAULT_PORT)]
    records = sorted(answer, key=lambda r: (r.priority, -r.weight))
    targets = [(str(r.target).rstrip("."), int(r.port)) for r in records]
    if targets == [("", 0)] or any(t == "" for t, _ in targets):
        return []  # "." : the service is decidedly not available (§3.2.1)
    return targets


class _Link(asyncio.Protocol):
    """One TCP connection carrying one s2s stream (either direction)."""

    stream: InboundStream | OutboundStream

    def __init__(self, service: S2SService) -> None:
        self.service = service
        self.transport: asyncio.Transport | None = None
        self.provider_id: str | None = None
        self.remote_domain = "?"
        self._timer: asyncio.TimerHandle | None = None
        self._tls_busy = False
        self._backlog: list[bytes] = []
        self.closed = asyncio.Event()

    direction = "?"

    # -- output ---------------------------------------------------------------------------------
    def flush(self) -> None:
        if self.transport is None or self.transport.is_closing():
            return  # kept in the stream until there is a connection to write to
        data = self.stream.data_to_send()
        if data:
            self.transport.write(data)
            self.service.count_bytes(self.provider_id, self.direction + "-out", len(data))
            self.service.wire_tap(self, data)

    def _arm_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        deadline = self.stream.get_timer()
        if deadline is not None:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self.handle(self.stream.handle_timer(asyncio.get_running_loop().time()))

    # -- asyncio.Protocol -----------------------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        if self._tls_busy:
            self._backlog.append(data)
            return
        self.service.count_bytes(self.provider_id, self.direction + "-in", len(data))
        self.handle(self.stream.receive_data(data))

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self.transport = None
        self.service.forget(self)
        self.closed.set()

    # -- events ---------------------------------------------------------------------------------
    def handle(self, events: list[S2SEvent]) -> None:
        for event in events:
            self.on_event(event)
        self.flush()
        self._arm_timer()

    def on_event(self, event: S2SEvent) -> None:
        if isinstance(event, TlsStartRequested):
            self.flush()
            self._tls_busy = True
            asyncio.get_running_loop().create_task(self._start_tls())
        elif isinstance(event, StreamClosed):
            if event.error is not None and not event.remote:
                self.service.refused(self.provider_id)
            log.info(
                "s2s stream closed",
                extra={
                    "remote_domain": self.remote_domain,
                    "direction": self.direction,
                    "error": None if event.error is None else str(event.error.condition),
                    "by_peer": event.remote,
                },
            )
            self.flush()
            self._close_transport()

    def _close_transport(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    async def _start_tls(self) -> None:
        raise NotImplementedError

    def _tls_done(self, certificate: PeerCertificate) -> None:
        self._tls_busy = False
        self.handle(self.stream.tls_established(certificate))
        backlog, self._backlog = self._backlog, []
        for data in backlog:
            self.data_received(data)

    def close(self, error: StreamError | None) -> None:
        self.handle(self.stream.close(error))


def _peer_certificate(transport: asyncio.BaseTransport, *, verified: bool) -> PeerCertificate:
    ssl_object = cast(ssl.SSLObject | None, transport.get_extra_info("ssl_object"))
    der = None if ssl_object is None else ssl_object.getpeercert(binary_form=True)
    return PeerCertificate(der, chain_verified=verified and der is not None)


class InboundLink(_Link):
    direction = "in"

    def __init__(self, service: S2SService) -> None:
        super().__init__(service)
        self.stream: InboundStream = InboundStream(
            service.config, now=asyncio.get_running_loop().time()
        )
        self._queue: asyncio.Queue[Stanza | None] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        if not self.service.admit_link(self):
            self.close(StreamError(StreamErrorCondition.RESOURCE_CONSTRAINT, "too many links"))
            return
        self._arm_timer()

    async def _start_tls(self) -> None:
        assert self.transport is not None
        loop = asyncio.get_running_loop()
        peer = self.stream.peer_domain
        if peer is not None and self.service.pinned_unseen(peer):
            self.transport.pause_reading()  # its ClientHello waits in the socket meanwhile
            await self.service.see_pinned_certificate(self.stream.local_domain, peer)
            if self.transport is None or self.transport.is_closing():
                return  # the peer went away meanwhile
        try:
            new = await loop.start_tls(
                self.transport,
                self,
                self.service.server_tls(),
                server_side=True,
                ssl_handshake_timeout=self.service.limits.tls_handshake_timeout,
            )
        except (OSError, ssl.SSLError, ConnectionError, TimeoutError) as exc:
            log.info("s2s TLS handshake failed", extra={"error": reason(exc)})
            self._close_transport()
            return
        if new is None:
            return
        self.transport = new
        self._tls_done(_peer_certificate(new, verified=True))

    def on_event(self, event: S2SEvent) -> None:
        stream = self.stream
        if stream.peer_domain is not None and self.provider_id is None:
            self.remote_domain = stream.peer_domain
        if isinstance(event, StanzaReceived):
            self.service.count_stanza(self.provider_id, "in")
            self._queue.put_nowait(event.stanza)
            if self._worker is None:
                self._worker = asyncio.get_running_loop().create_task(self._work())
        elif isinstance(event, PeerAuthenticated):
            self.remote_domain = event.domain
            self.provider_id = self.service.gate.owner(event.domain)
            self.service.connected(self, event.method.value)
        elif isinstance(event, DialbackVerifyRequested):
            asyncio.get_running_loop().create_task(self._verify(event))
        else:
            super().on_event(event)

    async def _verify(self, event: DialbackVerifyRequested) -> None:
        valid = await self.service.verify_dialback(event)
        self.handle(self.stream.dialback_verified(event.originating, event.receiving, valid))

    async def _work(self) -> None:
        hub = self.service.hub
        while True:
            stanza = await self._queue.get()
            if stanza is None or self.provider_id is None:
                return
            try:
                await hub.route_federated(self.provider_id, stanza)
            except Exception:
                log.exception("routing a federated stanza failed")

    def connection_lost(self, exc: Exception | None) -> None:
        self._queue.put_nowait(None)
        super().connection_lost(exc)


class OutboundLink(_Link):
    direction = "out"

    def __init__(
        self, service: S2SService, provider_id: str, local: str, remote: str, *, verify_only: bool
    ) -> None:
        super().__init__(service)
        self.provider_id = provider_id
        self.local = local
        self.remote_domain = remote
        self.stream: OutboundStream = OutboundStream(
            service.config,
            local=local,
            remote=remote,
            now=asyncio.get_running_loop().time(),
            verify_only=verify_only,
        )
        self.ready = asyncio.Event()
        self.tls_seen = asyncio.Event()  # the TLS handshake is done (or the link is gone)
        self.verified: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        #: queued before the stream was ready: bounced to their senders if it never is
        self.unsent: list[Stanza] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.flush()  # our stream header
        self._arm_timer()

    async def _start_tls(self) -> None:
        assert self.transport is not None
        loop = asyncio.get_running_loop()
        ctx = self.service.client_tls(self.provider_id)
        try:
            new = await loop.start_tls(
                self.transport,
                self,
                ctx,
                server_side=False,
                server_hostname=self.remote_domain,
                ssl_handshake_timeout=self.service.limits.tls_handshake_timeout,
            )
        except (OSError, ssl.SSLError, ConnectionError, TimeoutError) as exc:
            log.info(
                "s2s TLS handshake failed",
                extra={"remote_domain": self.remote_domain, "error": reason(exc)},
            )
            self.service.refused(self.provider_id)
            self._close_transport()
            return
        if new is None:
            return
        self.transport = new
        verified = ctx.verify_mode == ssl.CERT_REQUIRED
        certificate = _peer_certificate(new, verified=verified)
        if certificate.der is not None:
            self.service.pinned_certificate_seen(
                self.provider_id, self.remote_domain, certificate.der
            )
        self.tls_seen.set()
        self._tls_done(certificate)

    def on_event(self, event: S2SEvent) -> None:
        if isinstance(event, Ready):
            self.ready.set()
            self.unsent.clear()  # written now
        elif isinstance(event, PeerAuthenticated):
            self.service.connected(self, event.method.value)
        elif isinstance(event, DialbackVerifyAnswered):
            if not self.verified.done():
                self.verified.set_result(event.valid)
        else:
            super().on_event(event)

    def send(self, stanza: Stanza) -> None:
        if not self.ready.is_set():
            self.unsent.append(stanza)
        self.handle(self.stream.send_stanza(stanza))
        self.service.count_stanza(self.provider_id, "out")

    def handle(self, events: list[S2SEvent]) -> None:
        super().handle(events)
        if self.stream.closed and self.unsent:
            unsent, self.unsent = self.unsent, []
            self.service.bounce(unsent, f"{self.remote_domain} could not be reached")

    def connection_lost(self, exc: Exception | None) -> None:
        self.tls_seen.set()
        if not self.verified.done():
            self.verified.set_result(False)
        if self.unsent:
            unsent, self.unsent = self.unsent, []
            self.service.bounce(unsent, f"the link to {self.remote_domain} was lost")
        super().connection_lost(exc)


class S2SService:
    """The hub's s2s links; see the module docstring."""

    def __init__(
        self,
        hub: Hub,
        config: S2SConfig,
        gate: ProviderGate,
        *,
        cert_file: str,
        key_file: str,
        limits: S2SLimits,
        resolve: Resolver | None = None,
    ) -> None:
        self.hub = hub
        self.config = config
        self.gate = gate
        self.limits = limits
        self._cert_file = cert_file
        self._key_file = key_file
        self._resolve = resolve
        self._server_tls: ssl.SSLContext | None = None
        self._client_tls: dict[str, ssl.SSLContext] = {}
        self.inbound: set[InboundLink] = set()
        self.outbound: dict[tuple[str, str], OutboundLink] = {}
        self._connecting: dict[tuple[str, str], asyncio.Task[None]] = {}
        self.counters: dict[str, ProviderCounters] = {}
        #: provider -> certificates (DER) its servers showed on our handshakes that match a pin
        #: (for providers pinned without a CA: the listener's trust anchors; module docstring)
        self._pinned_seen: dict[str, set[bytes]] = {}
        self.unattributed_refusals = 0
        #: Test hook: every byte written or read on an s2s link, as (link, bytes).
        self.taps: list[Callable[[_Link, bytes], None]] = []

    # -- TLS ------------------------------------------------------------------------------------
    def server_tls(self) -> ssl.SSLContext:
        if self._server_tls is None:
            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ctx.minimum_version = ssl.TLSVersion.TLSv1_2
            ctx.load_cert_chain(self._cert_file, self._key_file)
            ctx.verify_mode = ssl.CERT_OPTIONAL
            ctx.load_default_certs(ssl.Purpose.CLIENT_AUTH)
            cas = self.gate.trusted_cas()
            if cas:
                ctx.load_verify_locations(cadata=cas)
            pinned = [der for ders in self._pinned_seen.values() for der in ders]
            for der in pinned:
                ctx.load_verify_locations(cadata=der)
            if pinned:
                ctx.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN  # the leaf itself trusted
            self._server_tls = ctx
        return self._server_tls

    def client_tls(self, provider_id: str | None) -> ssl.SSLContext:
        key = provider_id or ""
        ctx = self._client_tls.get(key)
        if ctx is not None:
            return ctx
        provider = None if provider_id is None else self.gate.record(provider_id)
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.check_hostname = False  # names are checked as XEP-0178 says (certs.names_domain)
        if provider is not None and provider.s2s_fingerprints and provider.s2s_ca is None:
            ctx.verify_mode = ssl.CERT_NONE  # the pin decides
        elif provider is not None and provider.s2s_ca is not None:
            ctx.load_verify_locations(cadata=provider.s2s_ca)
        ctx.load_cert_chain(self._cert_file, self._key_file)  # for SASL EXTERNAL
        self._client_tls[key] = ctx
        return ctx

    # -- pinned fingerprints without a CA (module docstring) -------------------------------
    def _pinned_only(self, provider_id: str | None) -> Provider | None:
        provider = None if provider_id is None else self.gate.record(provider_id)
        if provider is None or not provider.s2s_fingerprints or provider.s2s_ca is not None:
            return None
        return provider

    def pinned_certificate_seen(self, provider_id: str | None, domain: str, der: bytes) -> None:
        """An outbound handshake with ``domain`` showed ``der``: a trust anchor of the
        listener if its provider is pinned without a CA and it names ``domain`` and matches."""
        provider = self._pinned_only(provider_id)
        if provider is None or provider_id is None:
            return
        if certs.fingerprint(der) not in provider.s2s_fingerprints:
            return
        if not certs.names_domain(der, domain):
            return
        seen = self._pinned_seen.setdefault(provider_id, set())
        if der not in seen:
            seen.add(der)
            self._server_tls = None

    def pinned_unseen(self, domain: str) -> bool:
        """Whether ``domain``'s provider is pinned without a CA and none of its certificates
        was seen yet."""
        owner = self.gate.owner(domain)
        return (
            owner is not None
            and self._pinned_only(owner) is not None
            and not self._pinned_seen.get(owner)
        )

    async def see_pinned_certificate(self, local: str, domain: str) -> None:
        """Before answering the STARTTLS of ``domain``'s server: if its provider is pinned
        without a CA and none of its certificates was seen yet, open a TLS handshake to it
        (bounded by ``auth_timeout``) to see one. Any failure leaves the handshake to fail."""
        owner = self.gate.owner(domain)
        if owner is None or not self.pinned_unseen(domain):
            return
        link = OutboundLink(self, owner, local, domain, verify_only=True)
        try:
            if await self._open(link):
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(link.tls_seen.wait(), timeout=self.config.auth_timeout)
        finally:
            link.close(None)

    # -- operator state (FederationLinks) -------------------------------------------------------
    def provider_changed(self, provider: Provider) -> None:
        self.gate.put(provider)
        self._pinned_seen.pop(provider.id, None)  # its pins may have changed
        self._client_tls.pop(provider.id, None)
        self._server_tls = None  # its CA may have changed

    def provider_removed(self, provider_id: str) -> None:
        self.gate.remove(provider_id)
        self._pinned_seen.pop(provider_id, None)
        self._client_tls.pop(provider_id, None)
        self._server_tls = None

    def close_provider(self, provider_id: str, reason: str) -> int:
        error = StreamError(StreamErrorCondition.POLICY_VIOLATION, reason)
        links: list[_Link] = [
            link for link in self.inbound if self._provider_of_link(link) == provider_id
        ]
        links += [link for link in self.outbound.values() if link.provider_id == provider_id]
        for link in links:
            link.close(error)
        for key in [k for k, link in self.outbound.items() if link.provider_id == provider_id]:
            self.outbound.pop(key, None)
        for key in [k for k in self._connecting if self._owner(k[1]) == provider_id]:
            self._connecting.pop(key).cancel()
        self.hub.federation.provider_closed(provider_id)  # its users leave their rooms
        return len(links)

    def _provider_of_link(self, link: InboundLink) -> str | None:
        if link.provider_id is not None:
            return link.provider_id
        peer = link.stream.peer_domain
        return None if peer is None else self.gate.owner(peer)

    def _owner(self, domain: str) -> str | None:
        return self.gate.owner(domain)

    # -- FederationPort -------------------------------------------------------------------------
    def send(self, provider_id: str, stanza: Stanza) -> None:
        assert stanza.from_ is not None
        assert stanza.to is not None
        key = (stanza.from_.domain, stanza.to.domain)
        link = self.outbound.get(key)
        if link is None or link.stream.closed:
            if len(self.inbound) + len(self.outbound) >= self.limits.max_links:
                raise StanzaError(
                    StanzaErrorCondition.RESOURCE_CONSTRAINT, "too many server-to-server links"
                )
            link = OutboundLink(self, provider_id, key[0], key[1], verify_only=False)
            self.outbound[key] = link
            self._connecting[key] = asyncio.get_running_loop().create_task(self._connect(link, key))
        try:
            link.send(stanza)
        except ValueError as exc:
            raise StanzaError(StanzaErrorCondition.REMOTE_SERVER_NOT_FOUND, str(exc)) from None

    async def _targets(self, provider_id: str | None, domain: str) -> list[tuple[str, int]]:
        provider = None if provider_id is None else self.gate.record(provider_id)
        if provider is not None and provider.s2s_address:
            host, _, port = provider.s2s_address.rpartition(":")
            return [(host.strip("[]"), int(port))]
        if self._resolve is not None:
            return await self._resolve(domain)
        return await srv_targets(domain)

    async def _open(self, link: OutboundLink) -> bool:
        loop = asyncio.get_running_loop()
        for host, port in await self._targets(link.provider_id, link.remote_domain):
            try:
                await asyncio.wait_for(
                    loop.create_connection(lambda: link, host, port),
                    timeout=self.limits.connect_timeout,
                )
            except (OSError, TimeoutError) as exc:
                log.info(
                    "s2s connection failed",
                    extra={"remote_domain": link.remote_domain, "host": host, "error": reason(exc)},
                )
                continue
            return True
        return False

    async def _connect(self, link: OutboundLink, key: tuple[str, str]) -> None:
        try:
            if not await self._open(link):
                self.refused(link.provider_id)
                link.handle(
                    link.stream.close(
                        StreamError(
                            StreamErrorCondition.REMOTE_CONNECTION_FAILED,
                            f"{link.remote_domain} could not be reached",
                            local=True,
                        )
                    )
                )
                if self.outbound.get(key) is link:
                    del self.outbound[key]
        finally:
            self._connecting.pop(key, None)

    async def verify_dialback(self, request: DialbackVerifyRequested) -> bool:
        """XEP-0220 §2.3: ask ``request.originating``'s authoritative server."""
        owner = self.gate.owner(request.originating)
        link = OutboundLink(
            self, owner or "", request.receiving, request.originating, verify_only=True
        )
        link.provider_id = owner
        link.stream.request_verify(
            request.receiving, request.originating, request.stream_id, request.key
        )
        if not await self._open(link):
            return False
        try:
            return await asyncio.wait_for(link.verified, timeout=self.config.auth_timeout)
        except TimeoutError:
            return False
        finally:
            link.close(None)

    def bounce(self, stanzas: list[Stanza], why: str) -> None:
        """Stanzas that never left: their senders get ``remote-server-timeout`` (RFC 6120
        §8.3.3.15) instead of silence."""
        for stanza in stanzas:
            self.hub.federation.bounce(stanza, why)

    # -- bookkeeping ----------------------------------------------------------------------------
    def admit_link(self, link: InboundLink) -> bool:
        if len(self.inbound) + len(self.outbound) >= self.limits.max_links:
            self.unattributed_refusals += 1
            return False
        self.inbound.add(link)
        return True

    def forget(self, link: _Link) -> None:
        if isinstance(link, InboundLink):
            self.inbound.discard(link)
        elif isinstance(link, OutboundLink):
            key = (link.local, link.remote_domain)
            if self.outbound.get(key) is link:
                del self.outbound[key]

    def _counters(self, provider_id: str | None) -> ProviderCounters | None:
        if provider_id is None:
            return None
        counters = self.counters.get(provider_id)
        if counters is None:
            counters = self.counters[provider_id] = ProviderCounters()
        return counters

    def connected(self, link: _Link, method: str) -> None:
        counters = self._counters(link.provider_id)
        if counters is not None:
            counters.connections[link.direction] += 1
            counters.methods[f"{link.direction}:{method}"] += 1
        log.info(
            "s2s stream authenticated",
            extra={
                "remote_domain": link.remote_domain,
                "direction": link.direction,
                "method": method,
                "provider": link.provider_id,
            },
        )

    def refused(self, provider_id: str | None) -> None:
        counters = self._counters(provider_id)
        if counters is None:
            self.unattributed_refusals += 1
        else:
            counters.refusals += 1

    def count_stanza(self, provider_id: str | None, direction: str) -> None:
        counters = self._counters(provider_id)
        if counters is not None:
            counters.stanzas[direction] += 1

    def count_bytes(self, provider_id: str | None, direction: str, size: int) -> None:
        counters = self._counters(provider_id)
        if counters is not None:
            counters.bytes[direction.split("-")[1]] += size

    def wire_tap(self, link: _Link, data: bytes) -> None:
        for tap in self.taps:
            tap(link, data)

    def links_of(self, provider_id: str) -> int:
        """Open s2s streams with ``provider_id``'s servers (a closed one may still be
        flushing its last bytes)."""
        inbound = sum(
            1
            for link in self.inbound
            if not link.stream.closed and self._provider_of_link(link) == provider_id
        )
        return inbound + sum(
            1
            for out in self.outbound.values()
            if not out.stream.closed and out.provider_id == provider_id
        )

    async def close(self) -> None:
        error = StreamError(StreamErrorCondition.SYSTEM_SHUTDOWN, "the server is shutting down")
        for task in list(self._connecting.values()):
            task.cancel()
        links: list[_Link] = [*self.inbound, *self.outbound.values()]
        for link in links:
            link.close(error)
        for link in links:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(link.closed.wait(), timeout=2)


class S2SCollector(Collector):
    """``/metrics`` for federation, per provider: open links, connections authenticated,
    stanzas and bytes (by direction), refusals (``provider=""``: a domain nobody onboarded)."""

    def __init__(self, service: S2SService) -> None:
        self._service = service

    def collect(self) -> Iterator[Metric]:
        service = self._service
        links = GaugeMetricFamily(
            "interlink_s2s_links", "Open server-to-server streams", labels=["provider"]
        )
        connections = CounterMetricFamily(
            "interlink_s2s_connections",
            "Server-to-server streams authenticated",
            labels=["provider", "direction"],
        )
        stanzas = CounterMetricFamily(
            "interlink_s2s_stanzas", "Stanzas over s2s", labels=["provider", "direction"]
        )
        sizes = CounterMetricFamily(
            "interlink_s2s_bytes", "Bytes over s2s", labels=["provider", "direction"]
        )
        refusals = CounterMetricFamily(
            "interlink_s2s_refusals",
            "Server-to-server streams refused or failed",
            labels=["provider"],
        )
        auth = CounterMetricFamily(
            "interlink_s2s_authentications",
            "Server-to-server streams authenticated, by method (sasl-external, dialback)",
            labels=["provider", "direction", "method"],
        )
        refused_stanzas = CounterMetricFamily(
            "interlink_s2s_stanza_refusals",
            "Stanzas refused at the federation boundary, by provider and reason",
            labels=["provider", "reason"],
        )
        for provider_id, counters in sorted(service.counters.items()):
            links.add_metric([provider_id], service.links_of(provider_id))
            for direction in ("in", "out"):
                connections.add_metric([provider_id, direction], counters.connections[direction])
                stanzas.add_metric([provider_id, direction], counters.stanzas[direction])
                sizes.add_metric([provider_id, direction], counters.bytes[direction])
            refusals.add_metric([provider_id], counters.refusals)
            for key, count in sorted(counters.methods.items()):
                direction, _, method = key.partition(":")
                auth.add_metric([provider_id, direction, method], count)
        refusals.add_metric([""], service.unattributed_refusals)
        for (provider_id, why), count in sorted(service.hub.federation.refusals.items()):
            refused_stanzas.add_metric([provider_id, why], count)
        yield from (links, connections, stanzas, sizes, refusals, auth, refused_stanzas)


async def start_s2s_listener(service: S2SService, sock: socket.socket) -> asyncio.Server:
    """Serve s2s (STARTTLS) on ``sock``, bound already by the composition root."""
    loop = asyncio.get_running_loop()
    return await loop.create_server(lambda: InboundLink(service), sock=sock, backlog=256)


__all__ = [
    "DEFAULT_PORT",
    "InboundLink",
    "OutboundLink",
    "ProviderCounters",
    "ProviderGate",
    "S2SCollector",
    "S2SLimits",
    "S2SService",
    "ServiceDomains",
    "srv_targets",
    "start_s2s_listener",
]
