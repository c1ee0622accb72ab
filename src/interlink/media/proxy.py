"""The hub's media proxy (DESIGN Flow 5; issue 6 §4): gatekeeper clients fetch third-party media
through the hub, so the third party never learns their addresses.

Theory of operation. A fetch names a URL and the provider whose user sent it. The proxy fetches it
only when all of these hold, checked again on every redirect hop:

1. the provider exists and is ``approved``;
2. the URL is absolute ``https`` without credentials or fragment, and its host (and port, when it is
   not the scheme's default) is exactly one of the provider's ``media_hosts``;
3. the host resolves (once per hop) and *every* address it resolves to is public
   (:mod:`interlink.media.addresses`), unless the operator allowlisted it explicitly;
4. the connection goes to that checked address and no other: the network backend handed to
   httpcore is pinned to it, while the Host header, TLS SNI and certificate verification still use
   the host name — a DNS answer that changes between check and connect (rebinding) is never used;
5. redirects are followed by hand, at most ``max_redirects`` times.

``http`` is accepted only when ``allow_http_loopback`` is set and the target is an explicitly
allowlisted loopback address (tests and the demo). The request carries a fixed, minimal header set,
never anything of the client's (address, cookies, credentials); nothing of the upstream response but
the body, its length and a sanitized media type comes back. Size is capped from Content-Length
before streaming and again while streaming; a total time budget and an idle-read timeout bound
every fetch; the body is streamed in chunks of at most 64 KiB, never held whole.

Outcomes are counted by reason in :attr:`MediaProxy.outcomes` for metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpcore
import httpx

from interlink.interop.providers import ProviderError
from interlink.media.addresses import (
    AddressAllowlist,
    AddressClass,
    IPAddress,
    parse_address,
    refusal,
)
from interlink.media.errors import MediaProxyRefusal
from interlink.media.model import MAX_MEDIA_BYTES
from interlink.storage.providers import Provider, ProviderStatus

MiB = 1024 * 1024
USER_AGENT = b"Interlink-media-proxy"
MAX_URL_LENGTH = 4096
_REDIRECTS = frozenset((301, 302, 303, 307, 308))
_DEFAULT_PORTS = {"https": 443, "http": 80}
# Media types passed on as they are; anything else becomes application/octet-stream.
SAFE_TYPES = frozenset(
    (
        "application/octet-stream",
        "image/jpeg",
        "image/png",
        "image/gif",
        "image/webp",
        "audio/ogg",
        "audio/mpeg",
        "audio/mp4",
        "audio/aac",
        "video/mp4",
        "video/webm",
    )
)

Resolver = Callable[[str, int], Awaitable[Sequence[IPAddress]]]
ProviderLookup = Callable[[str], Awaitable[Provider | None]]


class Outcome(StrEnum):
    """How a fetch ended; the value is the metrics label and the problem type."""

    FETCHED = "fetched"
    BAD_URL = "bad-url"
    PROVIDER_UNKNOWN = "provider-unknown"
    PROVIDER_NOT_APPROVED = "provider-not-approved"
    HOST_NOT_ALLOWED = "host-not-allowed"
    ADDRESS_REFUSED = "address-refused"
    REDIRECT_REFUSED = "redirect-refused"
    TOO_MANY_REDIRECTS = "too-many-redirects"
    TOO_LARGE = "too-large"
    UNRESOLVABLE = "unresolvable"
    UPSTREAM_NOT_FOUND = "upstream-not-found"
    UPSTREAM_ERROR = "upstream-error"
    TIMEOUT = "timeout"
    CLIENT_GONE = "client-gone"


_STATUS = {
    Outcome.BAD_URL: 400,
    Outcome.PROVIDER_UNKNOWN: 403,
    Outcome.PROVIDER_NOT_APPROVED: 403,
    Outcome.HOST_NOT_ALLOWED: 403,
    Outcome.ADDRESS_REFUSED: 403,
    Outcome.REDIRECT_REFUSED: 403,
    Outcome.TOO_MANY_REDIRECTS: 502,
    Outcome.TOO_LARGE: 413,
    Outcome.UNRESOLVABLE: 502,
    Outcome.UPSTREAM_NOT_FOUND: 404,
    Outcome.UPSTREAM_ERROR: 502,
    Outcome.TIMEOUT: 504,
    Outcome.CLIENT_GONE: 499,
}
# Refusals of a redirect target are reported as a refused redirect, naming the reason.
_HOP_REFUSALS = frozenset(
    (Outcome.BAD_URL, Outcome.HOST_NOT_ALLOWED, Outcome.ADDRESS_REFUSED, Outcome.UNRESOLVABLE)
)


class MediaProxyError(MediaProxyRefusal):
    """A fetch was refused or failed. ``outcome`` says why; ``status`` is its HTTP mapping
    (RFC 9457 problem type ``urn:interlink:problem:<outcome>``)."""

    def __init__(self, outcome: Outcome, detail: str) -> None:
        super().__init__(_STATUS[outcome], str(outcome), detail)
        self.outcome = outcome

    def __str__(self) -> str:
        return f"{self.outcome}: {self.detail}"


GATHER = 256 * 1024  # bytes passed on at once to the client (see MediaStream.chunks)


@dataclass(frozen=True, slots=True)
class ProxyLimits:
    max_bytes: int = MAX_MEDIA_BYTES
    total_timeout: float = 120.0
    connect_timeout: float = 10.0
    idle_timeout: float = 30.0
    max_redirects: int = 3


@dataclass(frozen=True, slots=True)
class _Target:
    """One hop's URL, parsed and normalised."""

    url: str
    scheme: str
    host: str  # lower case, no trailing dot, IPv6 without brackets
    port: int
    target: str  # path and query

    @property
    def default_port(self) -> bool:
        return self.port == _DEFAULT_PORTS[self.scheme]

    @property
    def authority(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.default_port else f"{host}:{self.port}"


def parse_target(url: str) -> _Target:
    """Parse a media URL; raises :class:`MediaProxyError` (``bad-url``) saying what is wrong."""
    if len(url) > MAX_URL_LENGTH:
        raise MediaProxyError(Outcome.BAD_URL, f"the URL is over {MAX_URL_LENGTH} characters")
    if not url.isascii() or any(c.isspace() or ord(c) < 0x20 or c == "\x7f" for c in url):
        raise MediaProxyError(
            Outcome.BAD_URL, "the URL must be ASCII without spaces (use the xn-- form of names)"
        )
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise MediaProxyError(Outcome.BAD_URL, f"the URL does not parse: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        raise MediaProxyError(Outcome.BAD_URL, "the URL must be an absolute https URL")
    if parts.username is not None or parts.password is not None:
        raise MediaProxyError(Outcome.BAD_URL, "the URL must not carry credentials")
    if parts.fragment or url.endswith("#"):
        # An aesgcm:// URL carries the file key in its fragment: it must never reach the hub.
        raise MediaProxyError(Outcome.BAD_URL, "remove the fragment (it carries the key) first")
    host = parts.hostname.rstrip(".")
    if not host:
        raise MediaProxyError(Outcome.BAD_URL, "the URL has no host")
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    return _Target(url, scheme, host, port or _DEFAULT_PORTS[scheme], target)


def host_allowed(target: _Target, media_hosts: Iterable[str]) -> bool:
    """Whether ``target``'s host and port match an entry of a provider's ``media_hosts``.

    Host names match exactly, case-insensitively (no suffix or wildcard matching). An entry
    without a port allows only the scheme's default port; ``host:port`` (``[v6]:port``) allows
    exactly that port.
    """
    for raw in media_hosts:
        entry = raw.strip().lower()
        port: int | None = None
        if entry.startswith("["):
            host, _, rest = entry[1:].partition("]")
            if rest.startswith(":") and rest[1:].isdigit():
                port = int(rest[1:])
        elif entry.count(":") == 1:
            host, _, port_text = entry.partition(":")
            if not port_text.isdigit():
                continue
            port = int(port_text)
        else:
            host = entry
        if host.rstrip(".") != target.host:
            continue
        if (port is None and target.default_port) or port == target.port:
            return True
    return False


def sanitize_media_type(value: str | None) -> str:
    media_type = (value or "").split(";", 1)[0].strip().lower()
    return media_type if media_type in SAFE_TYPES else "application/octet-stream"


async def resolve_with_getaddrinfo(host: str, port: int) -> list[IPAddress]:
    """The default resolver: every address ``getaddrinfo`` gives for a TCP connection."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses: list[IPAddress] = []
    for _family, _type, _proto, _name, sockaddr in infos:
        address = parse_address(str(sockaddr[0]))
        if address is not None and address not in addresses:
            addresses.append(address)
    return addresses


class _PinnedBackend(httpcore.AsyncNetworkBackend):
    """Connects the one origin it was made for to the one address that was checked for it.

    httpcore still does TLS with ``server_hostname`` set to the URL's host, so SNI and certificate
    verification are for the name, while the TCP connection can only go to ``address``.
    """

    def __init__(
        self, host: str, port: int, address: IPAddress, inner: httpcore.AsyncNetworkBackend
    ) -> None:
        self._host = host
        self._port = port
        self._address = address
        self._inner = inner

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's signature)
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        if host != self._host or port != self._port:
            raise httpcore.ConnectError(f"{host}:{port} is not the pinned origin")
        return await self._inner.connect_tcp(
            str(self._address),
            port,
            timeout=timeout,
            local_address=local_address,
            socket_options=socket_options,
        )

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's signature)
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("the media proxy connects over TCP only")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class MediaStream:
    """An upstream response being streamed: read :meth:`chunks` once, then it is closed.

    Iterating raises :class:`MediaProxyError` when the body grows past the size cap (``too-large``),
    the time budget or the idle timeout runs out (``timeout``) or the upstream fails
    (``upstream-error``); the client then sees an aborted, not a complete, response.
    """

    def __init__(
        self,
        *,
        url: str,
        content_length: int | None,
        content_type: str,
        response: httpcore.Response,
        connection: httpcore.AsyncHTTPConnection,
        limits: ProxyLimits,
        deadline: float,
        clock: Callable[[], float],
        count: Callable[[Outcome], None],
    ) -> None:
        self.status = 200
        self.url = url
        self.content_length = content_length
        self.content_type = content_type
        self._response = response
        self._connection = connection
        self._limits = limits
        self._deadline = deadline
        self._clock = clock
        self._count = count
        self._closed = False
        self._finished = False

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body in pieces of about ``GATHER`` bytes: over TLS the upstream hands over one
        16 KiB record at a time, and every piece passed on costs the sending side the same
        Python work whatever its size (measured: 16 % of the proxy's time over TLS)."""
        received = 0
        upstream = self._response.aiter_stream()
        pending: list[bytes] = []
        pending_bytes = 0
        try:
            while True:
                remaining = self._deadline - self._clock()
                if remaining <= 0:
                    raise MediaProxyError(Outcome.TIMEOUT, "the media took too long to fetch")
                try:
                    async with asyncio.timeout(remaining):
                        chunk = await anext(upstream)
                except StopAsyncIteration:
                    break
                except (TimeoutError, httpcore.TimeoutException):
                    raise MediaProxyError(
                        Outcome.TIMEOUT, "the media host stopped sending or was too slow"
                    ) from None
                except (httpcore.NetworkError, httpcore.ProtocolError) as exc:
                    raise MediaProxyError(
                        Outcome.UPSTREAM_ERROR, f"the media host's response broke off: {exc}"
                    ) from None
                received += len(chunk)
                if received > self._limits.max_bytes:
                    raise MediaProxyError(
                        Outcome.TOO_LARGE, f"the media is over {self._limits.max_bytes} bytes"
                    )
                pending.append(chunk)
                pending_bytes += len(chunk)
                if pending_bytes >= GATHER:
                    yield b"".join(pending)
                    pending.clear()
                    pending_bytes = 0
            if pending:
                yield b"".join(pending)
            self._finished = True
            self._count(Outcome.FETCHED)
        except MediaProxyError as exc:
            self._finished = True
            self._count(exc.outcome)
            raise
        finally:
            await self.aclose()

    async def aclose(self) -> None:
        """Close the upstream connection (idempotent). A stream closed before its end was read
        counts as ``client-gone``."""
        if self._closed:
            return
        self._closed = True
        if not self._finished:
            self._count(Outcome.CLIENT_GONE)
        with contextlib.suppress(Exception):
            await self._response.aclose()
        with contextlib.suppress(Exception):
            await self._connection.aclose()


class MediaProxy:
    """Fetches third-party media under the rules in this module's docstring.

    ``providers`` returns the provider with that id, or ``None`` / raises
    :class:`~interlink.interop.providers.ProviderError` when there is none (e.g.
    ``ProviderRegistry.get``). ``private_allowlist`` names non-public hosts, addresses or networks
    that may be fetched anyway (tests, the demo). ``resolver`` and ``network_backend`` are ports for
    tests; ``clock`` is monotonic seconds.
    """

    def __init__(
        self,
        providers: ProviderLookup,
        *,
        limits: ProxyLimits | None = None,
        private_allowlist: Iterable[str] = (),
        allow_http_loopback: bool = False,
        clock: Callable[[], float] = time.monotonic,
        resolver: Resolver = resolve_with_getaddrinfo,
        ssl_context: ssl.SSLContext | None = None,
        network_backend: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        self._providers = providers
        self.limits = limits or ProxyLimits()
        self._allowlist = AddressAllowlist.parse(private_allowlist)
        self._allow_http_loopback = allow_http_loopback
        self._clock = clock
        self._resolver = resolver
        self._ssl_context = ssl_context or httpx.create_ssl_context()
        self._backend = network_backend or httpcore.AnyIOBackend()
        self.outcomes: Counter[str] = Counter()

    def _count(self, outcome: Outcome) -> None:
        self.outcomes[str(outcome)] += 1

    async def fetch(self, url: str, provider_id: str, service: str) -> MediaStream:
        """Start fetching ``url``, sent by a user of ``provider_id``, for a user of the
        gatekeeper ``service`` (the provider must be onboarded to it): the response headers
        have been received and checked; read the body with :meth:`MediaStream.chunks`.

        Raises :class:`MediaProxyError` for every refusal and upstream failure.
        """
        try:
            return await self._fetch(url, provider_id, service)
        except MediaProxyError as exc:
            self._count(exc.outcome)
            raise

    async def _fetch(self, url: str, provider_id: str, service: str) -> MediaStream:
        deadline = self._clock() + self.limits.total_timeout
        provider = await self._provider(provider_id, service)
        target = parse_target(url)
        for hop in range(self.limits.max_redirects + 1):
            try:
                address = await self._check(target, provider, deadline)
            except MediaProxyError as exc:
                if hop == 0 or exc.outcome not in _HOP_REFUSALS:
                    raise
                raise MediaProxyError(
                    Outcome.REDIRECT_REFUSED, f"redirect to {target.url} refused: {exc.detail}"
                ) from None
            connection, response = await self._request(target, address, deadline)
            if response.status in _REDIRECTS:
                location = _header(response, b"location")
                await _close(connection, response)
                if location is None:
                    raise MediaProxyError(Outcome.UPSTREAM_ERROR, "a redirect without Location")
                if hop == self.limits.max_redirects:
                    raise MediaProxyError(
                        Outcome.TOO_MANY_REDIRECTS,
                        f"more than {self.limits.max_redirects} redirects",
                    )
                try:
                    target = parse_target(urljoin(target.url, location))
                except MediaProxyError as exc:
                    raise MediaProxyError(
                        Outcome.REDIRECT_REFUSED, f"redirect refused: {exc.detail}"
                    ) from None
                continue
            return await self._accept(target, connection, response, deadline)
        raise AssertionError("unreachable: the loop returns or raises")

    async def _provider(self, provider_id: str, service: str) -> Provider:
        try:
            provider = await self._providers(provider_id)
        except ProviderError:
            provider = None
        if provider is None:
            raise MediaProxyError(Outcome.PROVIDER_UNKNOWN, f"no provider '{provider_id[:64]}'")
        if provider.status is not ProviderStatus.APPROVED:
            raise MediaProxyError(
                Outcome.PROVIDER_NOT_APPROVED, f"provider '{provider.id}' is {provider.status}"
            )
        if service not in provider.services:
            raise MediaProxyError(
                Outcome.PROVIDER_NOT_APPROVED,
                f"provider '{provider.id}' is not onboarded to {service}",
            )
        return provider

    async def _check(self, target: _Target, provider: Provider, deadline: float) -> IPAddress:
        """Apply rules 2 and 3 to one hop; the address to connect to."""
        if target.scheme == "http" and not self._allow_http_loopback:
            raise MediaProxyError(Outcome.BAD_URL, "the URL must use https")
        if not host_allowed(target, provider.media_hosts):
            raise MediaProxyError(
                Outcome.HOST_NOT_ALLOWED,
                f"{target.authority} is not a media host of provider '{provider.id}'",
            )
        addresses = await self._resolve(target, deadline)
        for address in addresses:
            reason = refusal(target.host, address, self._allowlist)
            if reason is not None:
                raise MediaProxyError(
                    Outcome.ADDRESS_REFUSED,
                    f"{target.host} resolves to {address}, a {reason} address",
                )
        if target.scheme == "http" and not all(
            a.is_loopback and self._allowlist.allows(target.host, a) for a in addresses
        ):
            raise MediaProxyError(Outcome.BAD_URL, "the URL must use https")
        return addresses[0]

    async def _resolve(self, target: _Target, deadline: float) -> Sequence[IPAddress]:
        literal = parse_address(target.host)
        if literal is not None:
            return [literal]
        timeout = min(self.limits.connect_timeout, deadline - self._clock())
        try:
            async with asyncio.timeout(max(timeout, 0)):
                addresses = await self._resolver(target.host, target.port)
        except TimeoutError:
            raise MediaProxyError(Outcome.TIMEOUT, f"resolving {target.host} timed out") from None
        except OSError as exc:
            raise MediaProxyError(
                Outcome.UNRESOLVABLE, f"{target.host} does not resolve: {exc}"
            ) from None
        if not addresses:
            raise MediaProxyError(Outcome.UNRESOLVABLE, f"{target.host} has no address")
        return addresses

    async def _request(
        self, target: _Target, address: IPAddress, deadline: float
    ) -> tuple[httpcore.AsyncHTTPConnection, httpcore.Response]:
        remaining = deadline - self._clock()
        if remaining <= 0:
            raise MediaProxyError(Outcome.TIMEOUT, "the media took too long to fetch")
        scheme = target.scheme.encode("ascii")
        host = target.host.encode("ascii")
        connection = httpcore.AsyncHTTPConnection(
            httpcore.Origin(scheme, host, target.port),
            ssl_context=self._ssl_context if target.scheme == "https" else None,
            network_backend=_PinnedBackend(target.host, target.port, address, self._backend),
        )
        request = httpcore.Request(
            b"GET",
            httpcore.URL(scheme=scheme, host=host, port=target.port, target=target.target),
            headers=[
                (b"Host", target.authority.encode("ascii")),
                (b"User-Agent", USER_AGENT),
                (b"Accept", b"*/*"),
                (b"Accept-Encoding", b"identity"),  # relay the stored bytes, not a recoding
            ],
            extensions={
                "timeout": {
                    "connect": min(self.limits.connect_timeout, remaining),
                    "read": self.limits.idle_timeout,
                    "write": self.limits.idle_timeout,
                    "pool": self.limits.connect_timeout,
                }
            },
        )
        try:
            async with asyncio.timeout(remaining):
                response = await connection.handle_async_request(request)
        except (TimeoutError, httpcore.TimeoutException):
            await connection.aclose()
            raise MediaProxyError(
                Outcome.TIMEOUT, f"{target.authority} did not answer in time"
            ) from None
        except (httpcore.NetworkError, httpcore.ProtocolError) as exc:
            await connection.aclose()
            raise MediaProxyError(
                Outcome.UPSTREAM_ERROR, f"could not fetch from {target.authority}: {exc}"
            ) from None
        except BaseException:
            await connection.aclose()
            raise
        return connection, response

    async def _accept(
        self,
        target: _Target,
        connection: httpcore.AsyncHTTPConnection,
        response: httpcore.Response,
        deadline: float,
    ) -> MediaStream:
        try:
            if response.status in (404, 410):
                raise MediaProxyError(
                    Outcome.UPSTREAM_NOT_FOUND, f"the media host has no such file ({target.url})"
                )
            if response.status != 200:
                raise MediaProxyError(
                    Outcome.UPSTREAM_ERROR, f"the media host answered {response.status}"
                )
            encoding = _header(response, b"content-encoding")
            if encoding not in (None, "identity"):
                raise MediaProxyError(
                    Outcome.UPSTREAM_ERROR, f"the media host sent a {encoding}-encoded body"
                )
            length = _content_length(response)
            if length is not None and length > self.limits.max_bytes:
                raise MediaProxyError(
                    Outcome.TOO_LARGE,
                    f"the media is {length} bytes; the limit is {self.limits.max_bytes}",
                )
        except MediaProxyError:
            await _close(connection, response)
            raise
        return MediaStream(
            url=target.url,
            content_length=length,
            content_type=sanitize_media_type(_header(response, b"content-type")),
            response=response,
            connection=connection,
            limits=self.limits,
            deadline=deadline,
            clock=self._clock,
            count=self._count,
        )


def _header(response: httpcore.Response, name: bytes) -> str | None:
    for key, value in response.headers:
        if key.lower() == name:
            return value.decode("latin-1").strip()
    return None


def _content_length(response: httpcore.Response) -> int | None:
    value = _header(response, b"content-length")
    if value is None or _header(response, b"transfer-encoding") is not None:
        return None
    try:
        return int(value)
    except ValueError:
        return None  # h11 already refuses a malformed one; never trust it for the cap


async def _close(connection: httpcore.AsyncHTTPConnection, response: httpcore.Response) -> None:
    with contextlib.suppress(Exception):
        await response.aclose()
    with contextlib.suppress(Exception):
        await connection.aclose()


__all__ = [
    "AddressClass",
    "MediaProxy",
    "MediaProxyError",
    "MediaStream",
    "Outcome",
    "ProxyLimits",
    "host_allowed",
    "parse_target",
    "resolve_with_getaddrinfo",
    "sanitize_media_type",
]
