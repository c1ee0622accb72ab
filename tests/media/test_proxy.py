"""The hub's media proxy (issue 6 §4): address rules, tokens, and fetches from real upstream servers
on 127.0.0.1. Names like ``media.example`` reach loopback through an injected resolver; a spy
network backend shows where connections really go."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import ipaddress
import ssl
import tracemalloc
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpcore
import httpx
import pytest
import trustme
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.responses import StreamingResponse as RawStreamingResponse
from starlette.routing import Route

from interlink.interop.providers import ProviderNotFound
from interlink.media.addresses import AddressAllowlist, AddressClass, IPAddress, classify
from interlink.media.proxy import (
    MediaProxy,
    MediaProxyError,
    Outcome,
    ProxyLimits,
    host_allowed,
    parse_target,
    sanitize_media_type,
)
from interlink.media.tokens import MediaTokenError, MediaTokens, load_or_create_secret
from interlink.net.media_proxy_api import media_proxy_router
from interlink.net.problems import install_problem_handler
from interlink.storage.providers import Provider, ProviderStatus
from tests.integration.kit import serving

pytestmark = pytest.mark.timeout(60)

HUB = "hub.test"
SECRET = b"s" * 32
CHUNK = b"0123456789abcdef" * 4096  # 64 KiB
MiB = 1024 * 1024

# --- address classification ----------------------------------------------------------------------

ADDRESSES: list[tuple[str, AddressClass | None]] = [
    ("93.184.216.34", None),
    ("8.8.8.8", None),
    ("2606:4700:4700::1111", None),
    ("127.0.0.1", AddressClass.LOOPBACK),
    ("127.255.0.9", AddressClass.LOOPBACK),
    ("::1", AddressClass.LOOPBACK),
    ("10.0.0.1", AddressClass.PRIVATE),
    ("172.16.5.4", AddressClass.PRIVATE),
    ("192.168.1.1", AddressClass.PRIVATE),
    ("fd00::1", AddressClass.PRIVATE),
    ("fec0::1", AddressClass.PRIVATE),
    ("169.254.169.254", AddressClass.LINK_LOCAL),
    ("169.254.0.1", AddressClass.LINK_LOCAL),
    ("fe80::1", AddressClass.LINK_LOCAL),
    ("224.0.0.1", AddressClass.MULTICAST),
    ("ff02::1", AddressClass.MULTICAST),
    ("0.0.0.0", AddressClass.UNSPECIFIED),  # noqa: S104
    ("::", AddressClass.UNSPECIFIED),
    ("100.64.0.1", AddressClass.SHARED),
    ("100.127.255.254", AddressClass.SHARED),
    (
        "240.0.0.1",
        AddressClass.PRIVATE,
    ),  # Python files 240/4 under "private" too; refused either way
    ("255.255.255.255", AddressClass.PRIVATE),
    ("192.0.2.7", AddressClass.PRIVATE),  # documentation
    ("::ffff:127.0.0.1", AddressClass.LOOPBACK),
    ("::ffff:10.1.2.3", AddressClass.PRIVATE),
    ("::ffff:169.254.169.254", AddressClass.LINK_LOCAL),
    ("::ffff:100.64.0.1", AddressClass.SHARED),
    ("::ffff:8.8.8.8", None),
    ("64:ff9b::7f00:1", AddressClass.LOOPBACK),  # NAT64 of 127.0.0.1
    ("64:ff9b::a9fe:a9fe", AddressClass.LINK_LOCAL),  # NAT64 of 169.254.169.254
    ("64:ff9b::808:808", None),  # NAT64 of 8.8.8.8
    ("2002:7f00:1::", AddressClass.LOOPBACK),  # 6to4 of 127.0.0.1
    ("2002:a00:1::", AddressClass.PRIVATE),  # 6to4 of 10.0.0.1
    ("::127.0.0.1", AddressClass.RESERVED),  # deprecated IPv4-compatible
    ("2001:db8::1", AddressClass.PRIVATE),  # documentation
]


@pytest.mark.parametrize(("text", "expected"), ADDRESSES)
def test_address_classification(text: str, expected: AddressClass | None) -> None:
    assert classify(ipaddress.ip_address(text)) == expected


def test_allowlist_names_addresses_and_networks() -> None:
    allow = AddressAllowlist.parse(["Media.Example.", "127.0.0.1", "10.1.0.0/16", "[::1]"])
    lo, ten, other = (ipaddress.ip_address(a) for a in ("127.0.0.1", "10.1.2.3", "10.2.0.1"))
    assert allow.allows("media.example", other)
    assert allow.allows("x.example", lo)
    assert allow.allows("x.example", ipaddress.ip_address("::ffff:127.0.0.1"))
    assert allow.allows("x.example", ipaddress.ip_address("::1"))
    assert allow.allows("x.example", ten)
    assert not allow.allows("x.example", other)
    assert not allow.allows("x.example", ipaddress.ip_address("127.0.0.2"))
    assert not AddressAllowlist().allows("localhost", lo)


# --- URLs and media hosts --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "hosts", "allowed"),
    [
        ("https://media.example/f", ["media.example"], True),
        ("https://MEDIA.example./f", ["media.example"], True),
        ("https://media.example:443/f", ["media.example"], True),
        ("https://media.example:8443/f", ["media.example"], False),
        ("https://media.example:8443/f", ["media.example:8443"], True),
        ("https://media.example/f", ["media.example:8443"], False),
        ("https://evil.media.example/f", ["media.example"], False),
        ("https://media.example.evil/f", ["media.example"], False),
        ("https://xmedia.example/f", ["media.example"], False),
        ("http://127.0.0.1:8080/f", ["127.0.0.1:8080"], True),
        ("http://127.0.0.1/f", ["127.0.0.1"], True),
        ("http://[::1]:8080/f", ["[::1]:8080"], True),
        ("http://[::1]:8080/f", ["::1"], False),
        ("https://media.example/f", [], False),
    ],
)
def test_host_allowlist_is_exact(url: str, hosts: list[str], allowed: bool) -> None:
    assert host_allowed(parse_target(url), hosts) is allowed


@pytest.mark.parametrize(
    "url",
    [
        "ftp://media.example/f",
        "file:///etc/passwd",
        "/relative/path",
        "https:///nohost",
        "https://user:pw@media.example/f",
        "https://media.example/f#key",
        "https://media.example/f#",
        "https://médïa.example/f",
        "https://media.example/f g",
        "https://media.example:99999/f",
        "https://media.example/" + "a" * 5000,
    ],
)
def test_bad_urls_are_refused(url: str) -> None:
    with pytest.raises(MediaProxyError) as caught:
        parse_target(url)
    assert caught.value.outcome is Outcome.BAD_URL
    assert caught.value.status == 400


def test_media_types_are_sanitized() -> None:
    assert sanitize_media_type("image/png; charset=x") == "image/png"
    assert sanitize_media_type("text/html") == "application/octet-stream"
    assert sanitize_media_type("image/svg+xml") == "application/octet-stream"
    assert sanitize_media_type(None) == "application/octet-stream"


# --- tokens -------------------------------------------------------------------------------------


def test_tokens_round_trip_and_expire() -> None:
    tokens = MediaTokens(SECRET, lifetime=600)
    token = tokens.issue("+15551234567@hub.test", now=1000.0)
    assert token.startswith("v1.")
    assert tokens.verify(token, now=1599.0) == "+15551234567@hub.test"
    with pytest.raises(MediaTokenError, match="expired"):
        tokens.verify(token, now=1600.0)


@pytest.mark.parametrize(
    "mangle",
    [
        lambda t: t[:-2] + ("AA" if not t.endswith("AA") else "BB"),  # MAC
        lambda t: "v1." + "ZXZlQGh1Yi50ZXN0" + t[t.index(".", 3) :],  # another JID
        lambda t: t.rsplit(".", 2)[0] + ".99999999999." + t.rsplit(".", 1)[1],  # expiry
        lambda t: "v2" + t[2:],
        lambda t: t.replace(".", "", 1),
        lambda t: t + "é",
        lambda t: "",
        lambda t: t + "A" * 3000,
    ],
)
def test_tampered_tokens_are_refused(mangle: Callable[[str], str]) -> None:
    tokens = MediaTokens(SECRET)
    token = tokens.issue("alice@hub.test", now=0.0)
    with pytest.raises(MediaTokenError):
        tokens.verify(mangle(token), now=1.0)


def test_tokens_of_another_secret_are_refused() -> None:
    token = MediaTokens(b"x" * 32).issue("alice@hub.test", now=0.0)
    with pytest.raises(MediaTokenError, match="signature"):
        MediaTokens(SECRET).verify(token, now=1.0)


def test_token_secret_is_created_once(tmp_path: Path) -> None:
    path = tmp_path / "media-proxy.key"
    first = load_or_create_secret(path)
    assert len(first) == 32
    assert path.stat().st_mode & 0o777 == 0o600
    assert load_or_create_secret(path) == first
    with pytest.raises(ValueError, match="32 bytes"):
        MediaTokens(b"short")


# --- upstream servers on 127.0.0.1 ---------------------------------------------------------------


@dataclass
class Upstream:
    base: str
    port: int
    seen: list[dict[str, Any]] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)


def _body(size: int) -> bytes:
    return (CHUNK * (size // len(CHUNK) + 1))[:size]


def upstream_app(up: Upstream) -> Starlette:
    async def chunks(size: int) -> AsyncIterator[bytes]:
        view = memoryview(CHUNK)
        while size > 0:
            n = min(size, len(CHUNK))
            yield bytes(view[:n]) if n < len(CHUNK) else CHUNK
            size -= n

    async def file(request: Request) -> Response:
        size = int(request.query_params.get("size", "1000"))
        headers = {"Content-Length": str(size), "Set-Cookie": "upstream=1", "X-Secret": "yes"}
        media_type = request.query_params.get("type", "image/png")
        return RawStreamingResponse(chunks(size), headers=headers, media_type=media_type)

    async def chunked(request: Request) -> Response:
        return RawStreamingResponse(chunks(int(request.query_params["size"])))

    async def echo(request: Request) -> Response:
        record = {
            "headers": [(k.decode(), v.decode()) for k, v in request.headers.raw],
            "client": request.client.host if request.client else None,
        }
        up.seen.append(record)
        return JSONResponse(record)

    async def redirect(request: Request) -> Response:
        return RedirectResponse(request.query_params["to"], status_code=302)

    async def loop(request: Request) -> Response:
        n = int(request.query_params.get("n", "0"))
        return RedirectResponse(f"/loop?n={n + 1}", status_code=307)

    async def stall_headers(request: Request) -> Response:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(up.release.wait(), 10)
        return PlainTextResponse("late")

    async def stall_body(request: Request) -> Response:
        async def body() -> AsyncIterator[bytes]:
            yield CHUNK
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(up.release.wait(), 10)

        return RawStreamingResponse(body())

    async def gzip(request: Request) -> Response:
        return Response(b"\x1f\x8b", headers={"Content-Encoding": "gzip"})

    async def status(request: Request) -> Response:
        return PlainTextResponse("no", status_code=int(request.path_params["code"]))

    return Starlette(
        routes=[
            Route("/file", file),
            Route("/chunked", chunked),
            Route("/echo", echo),
            Route("/redirect", redirect),
            Route("/loop", loop),
            Route("/stall-headers", stall_headers),
            Route("/stall-body", stall_body),
            Route("/gzip", gzip),
            Route("/status/{code:int}", status),
        ]
    )


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    up = Upstream("", 0)
    async with serving(upstream_app(up)) as base:
        up.base = base
        up.port = int(base.rsplit(":", 1)[1])
        try:
            yield up
        finally:
            up.release.set()


class SpyBackend(httpcore.AsyncNetworkBackend):
    """The real backend, recording every (host, port) a connection is made to."""

    def __init__(self) -> None:
        self.inner = httpcore.AnyIOBackend()
        self.connects: list[tuple[str, int]] = []

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore.AsyncNetworkStream:
        self.connects.append((host, port))
        return await self.inner.connect_tcp(
            host, port, timeout, local_address=local_address, socket_options=socket_options
        )

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


class FakeResolver:
    """Maps names to address lists; a list of lists is answered in turn (DNS rebinding)."""

    def __init__(self, table: dict[str, list[list[str]]]) -> None:
        self.table = table
        self.calls: list[str] = []

    async def __call__(self, host: str, port: int) -> Sequence[IPAddress]:
        self.calls.append(host)
        answers = self.table.get(host)
        if not answers:
            raise OSError(f"no such name {host}")
        answer = answers.pop(0) if len(answers) > 1 else answers[0]
        return [ipaddress.ip_address(a) for a in answer]


def providers_for(port: int, *extra_hosts: str) -> Callable[[str], Any]:
    hosts = (f"127.0.0.1:{port}", f"media.example:{port}", *extra_hosts)
    known = {
        "good": Provider("good", "Good", "https://good.example", ProviderStatus.APPROVED),
        "pending": Provider("pending", "Pending", "https://p.example", ProviderStatus.PENDING),
        "suspended": Provider("suspended", "S", "https://s.example", ProviderStatus.SUSPENDED),
    }
    known = {
        k: Provider(**{**_fields(v), "media_hosts": hosts, "services": (HUB,)})
        for k, v in known.items()
    }

    async def lookup(provider_id: str) -> Provider:
        if provider_id not in known:
            raise ProviderNotFound(f"no provider '{provider_id}'")
        return known[provider_id]

    return lookup


def _fields(p: Provider) -> dict[str, Any]:
    return {name: getattr(p, name) for name in Provider.__dataclass_fields__}


def make_proxy(
    up: Upstream,
    *,
    allow: Sequence[str] = ("127.0.0.1",),
    resolver: FakeResolver | None = None,
    backend: SpyBackend | None = None,
    limits: ProxyLimits | None = None,
    extra_hosts: Sequence[str] = (),
    clock: Callable[[], float] | None = None,
) -> MediaProxy:
    kwargs: dict[str, Any] = {}
    if clock is not None:
        kwargs["clock"] = clock
    return MediaProxy(
        providers_for(up.port, *extra_hosts),
        limits=limits,
        private_allowlist=allow,
        allow_http_loopback=True,
        resolver=resolver or FakeResolver({"media.example": [["127.0.0.1"]]}),
        network_backend=backend,
        **kwargs,
    )


async def read_all(proxy: MediaProxy, url: str, provider: str = "good") -> bytes:
    stream = await proxy.fetch(url, provider, HUB)
    return b"".join([chunk async for chunk in stream.chunks()])


async def drain(chunks: AsyncIterator[bytes], sizes: list[int]) -> None:
    async for chunk in chunks:
        sizes.append(len(chunk))


async def refused(proxy: MediaProxy, url: str, provider: str = "good") -> MediaProxyError:
    with pytest.raises(MediaProxyError) as caught:
        await read_all(proxy, url, provider)
    return caught.value


# --- fetching -------------------------------------------------------------------------------------


async def test_fetch_from_an_allowlisted_loopback_host(upstream: Upstream) -> None:
    proxy = make_proxy(upstream)
    stream = await proxy.fetch(f"{upstream.base}/file?size=200000", "good", HUB)
    assert (stream.status, stream.content_length, stream.content_type) == (
        200,
        200000,
        "image/png",
    )
    body = b"".join([c async for c in stream.chunks()])
    assert body == _body(200000)
    assert proxy.outcomes["fetched"] == 1


async def test_unsafe_media_type_becomes_octet_stream(upstream: Upstream) -> None:
    stream = await make_proxy(upstream).fetch(
        f"{upstream.base}/file?size=5&type=text/html", "good", HUB
    )
    assert stream.content_type == "application/octet-stream"
    await stream.aclose()


async def test_loopback_is_refused_unless_allowlisted(upstream: Upstream) -> None:
    backend = SpyBackend()
    proxy = make_proxy(upstream, allow=(), backend=backend)
    error = await refused(proxy, f"{upstream.base}/file")
    assert (error.outcome, error.status) == (Outcome.ADDRESS_REFUSED, 403)
    assert "loopback" in error.detail
    assert backend.connects == []


async def test_host_off_the_allowlist_is_refused(upstream: Upstream) -> None:
    resolver = FakeResolver({"other.example": [["127.0.0.1"]]})
    proxy = make_proxy(upstream, resolver=resolver)
    for url in (
        f"http://other.example:{upstream.port}/file",
        f"http://127.0.0.1:{upstream.port + 1}/file",  # right host, other port
        "http://127.0.0.1/file",
    ):
        error = await refused(proxy, url)
        assert (error.outcome, error.status) == (Outcome.HOST_NOT_ALLOWED, 403)
    assert resolver.calls == []
    assert proxy.outcomes["host-not-allowed"] == 3


@pytest.mark.parametrize(
    ("provider", "outcome"),
    [
        ("pending", Outcome.PROVIDER_NOT_APPROVED),
        ("suspended", Outcome.PROVIDER_NOT_APPROVED),
        ("nobody", Outcome.PROVIDER_UNKNOWN),
    ],
)
async def test_provider_must_be_approved(
    upstream: Upstream, provider: str, outcome: Outcome
) -> None:
    backend = SpyBackend()
    error = await refused(make_proxy(upstream, backend=backend), f"{upstream.base}/file", provider)
    assert (error.outcome, error.status) == (outcome, 403)
    assert backend.connects == []


async def test_the_provider_must_be_onboarded_to_the_requesters_service(upstream: Upstream) -> None:
    backend = SpyBackend()
    proxy = make_proxy(upstream, backend=backend)
    with pytest.raises(MediaProxyError) as error:
        await proxy.fetch(f"{upstream.base}/file", "good", "other.test")
    assert (error.value.outcome, error.value.status) == (Outcome.PROVIDER_NOT_APPROVED, 403)
    assert "not onboarded to other.test" in error.value.detail
    assert backend.connects == []


async def test_https_is_required_without_the_loopback_flag(upstream: Upstream) -> None:
    proxy = MediaProxy(providers_for(upstream.port), private_allowlist=["127.0.0.1"])
    error = await refused(proxy, f"{upstream.base}/file")
    assert error.outcome is Outcome.BAD_URL
    assert "https" in error.detail


async def test_http_needs_a_loopback_target_even_with_the_flag(upstream: Upstream) -> None:
    # 10.0.0.1 is allowlisted as a private address, but plain http is for loopback only.
    resolver = FakeResolver({"media.example": [["10.0.0.1"]]})
    proxy = make_proxy(upstream, allow=("127.0.0.1", "10.0.0.1"), resolver=resolver)
    error = await refused(proxy, f"http://media.example:{upstream.port}/file")
    assert error.outcome is Outcome.BAD_URL


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        (["127.0.0.1"], "loopback"),
        (["10.0.0.1"], "private"),
        (["169.254.169.254"], "link-local"),
        (["100.64.1.1"], "shared"),
        (["::ffff:127.0.0.1"], "loopback"),
        (["93.184.216.34", "127.0.0.1"], "loopback"),  # any bad address refuses the host
    ],
)
async def test_names_resolving_to_internal_addresses_are_refused(
    upstream: Upstream, answer: list[str], reason: str
) -> None:
    backend = SpyBackend()
    resolver = FakeResolver({"media.example": [answer]})
    proxy = make_proxy(upstream, allow=(), resolver=resolver, backend=backend)
    error = await refused(proxy, f"http://media.example:{upstream.port}/file")
    assert (error.outcome, error.status) == (Outcome.ADDRESS_REFUSED, 403)
    assert reason in error.detail
    assert backend.connects == []


async def test_unresolvable_name(upstream: Upstream) -> None:
    proxy = make_proxy(upstream, resolver=FakeResolver({}))
    error = await refused(proxy, f"http://media.example:{upstream.port}/file")
    assert (error.outcome, error.status) == (Outcome.UNRESOLVABLE, 502)


async def test_dns_rebinding_uses_the_checked_address(upstream: Upstream) -> None:
    # First answer: the allowlisted 127.0.0.1 (the upstream listens there only). Any later answer
    # would be 127.0.0.2, not allowlisted; the proxy must neither ask again nor connect there.
    backend = SpyBackend()
    resolver = FakeResolver({"media.example": [["127.0.0.1"], ["127.0.0.2"]]})
    proxy = make_proxy(upstream, resolver=resolver, backend=backend)
    url = f"http://media.example:{upstream.port}/echo"
    body = await read_all(proxy, url)
    assert resolver.calls == ["media.example"]
    assert backend.connects == [("127.0.0.1", upstream.port)]
    assert b'"client":"127.0.0.1"' in body.replace(b" ", b"")
    assert ["host", f"media.example:{upstream.port}"] in [
        list(h) for h in upstream.seen[0]["headers"]
    ]
    # the next fetch resolves anew and is refused: 127.0.0.2 is not allowlisted
    error = await refused(proxy, url)
    assert error.outcome is Outcome.ADDRESS_REFUSED
    assert backend.connects == [("127.0.0.1", upstream.port)]


async def test_redirect_within_the_allowlist_is_followed(upstream: Upstream) -> None:
    proxy = make_proxy(upstream)
    body = await read_all(proxy, f"{upstream.base}/redirect?to=/file%3Fsize%3D10")
    assert body == _body(10)


async def test_redirect_to_loopback_that_is_not_allowlisted(upstream: Upstream) -> None:
    # The media host is media.example (allowlisted by name); 127.0.0.1 is a media host entry too,
    # but the address is not allowlisted.
    backend = SpyBackend()
    proxy = make_proxy(upstream, allow=("media.example",), backend=backend)
    to = f"http://127.0.0.1:{upstream.port}/file"
    error = await refused(proxy, f"http://media.example:{upstream.port}/redirect?to={to}")
    assert (error.outcome, error.status) == (Outcome.REDIRECT_REFUSED, 403)
    assert "loopback" in error.detail
    assert backend.connects == [("127.0.0.1", upstream.port)]  # only the first hop


async def test_redirect_to_the_metadata_address_never_connects(upstream: Upstream) -> None:
    backend = SpyBackend()
    resolver = FakeResolver(
        {"media.example": [["127.0.0.1"]], "metadata.example": [["169.254.169.254"]]}
    )
    proxy = make_proxy(
        upstream,
        resolver=resolver,
        backend=backend,
        extra_hosts=("169.254.169.254", "metadata.example"),  # a misconfigured provider
    )
    for to in ("http://169.254.169.254/latest/meta-data/", "http://metadata.example/latest/"):
        error = await refused(proxy, f"{upstream.base}/redirect?to={to}")
        assert (error.outcome, error.status) == (Outcome.REDIRECT_REFUSED, 403)
        assert "link-local" in error.detail
    assert all(address == "127.0.0.1" for address, _ in backend.connects)


async def test_redirect_off_the_allowlist_is_refused(upstream: Upstream) -> None:
    backend = SpyBackend()
    resolver = FakeResolver({"evil.example": [["93.184.216.34"]]})
    proxy = make_proxy(upstream, resolver=resolver, backend=backend)
    for to in ("https://evil.example/f", f"http://127.0.0.1:{upstream.port + 1}/f", "ftp://x/y"):
        error = await refused(proxy, f"{upstream.base}/redirect?to={to}")
        assert (error.outcome, error.status) == (Outcome.REDIRECT_REFUSED, 403)
    assert resolver.calls == []
    assert len(backend.connects) == 3


async def test_redirects_are_capped(upstream: Upstream) -> None:
    backend = SpyBackend()
    proxy = make_proxy(upstream, backend=backend, limits=ProxyLimits(max_redirects=2))
    error = await refused(proxy, f"{upstream.base}/loop")
    assert error.outcome is Outcome.TOO_MANY_REDIRECTS
    assert len(backend.connects) == 3


async def test_over_size_by_content_length(upstream: Upstream) -> None:
    proxy = make_proxy(upstream, limits=ProxyLimits(max_bytes=1000))
    assert len(await read_all(proxy, f"{upstream.base}/file?size=1000")) == 1000
    error = await refused(proxy, f"{upstream.base}/file?size=1001")
    assert (error.outcome, error.status) == (Outcome.TOO_LARGE, 413)


async def test_over_size_while_streaming(upstream: Upstream) -> None:
    proxy = make_proxy(upstream, limits=ProxyLimits(max_bytes=100_000))
    assert len(await read_all(proxy, f"{upstream.base}/chunked?size=100000")) == 100_000
    stream = await proxy.fetch(f"{upstream.base}/chunked?size=300000", "good", HUB)
    assert stream.content_length is None
    received: list[int] = []
    with pytest.raises(MediaProxyError) as caught:
        await drain(stream.chunks(), received)
    assert caught.value.outcome is Outcome.TOO_LARGE
    assert sum(received) <= 100_000
    assert proxy.outcomes["too-large"] == 1


async def test_idle_timeouts(upstream: Upstream) -> None:
    proxy = make_proxy(upstream, limits=ProxyLimits(idle_timeout=0.2))
    error = await refused(proxy, f"{upstream.base}/stall-headers")
    assert (error.outcome, error.status) == (Outcome.TIMEOUT, 504)
    stream = await proxy.fetch(f"{upstream.base}/stall-body", "good", HUB)
    with pytest.raises(MediaProxyError) as caught:
        await drain(stream.chunks(), [])
    assert caught.value.outcome is Outcome.TIMEOUT


async def test_total_time_budget(upstream: Upstream) -> None:
    now = [1000.0]
    proxy = make_proxy(upstream, clock=lambda: now[0], limits=ProxyLimits(total_timeout=120))
    stream = await proxy.fetch(f"{upstream.base}/file?size=300000", "good", HUB)
    chunks = stream.chunks()
    await anext(chunks)
    now[0] += 121
    with pytest.raises(MediaProxyError) as caught:
        await anext(chunks)
    assert caught.value.outcome is Outcome.TIMEOUT


@pytest.mark.parametrize(
    ("path", "outcome", "status"),
    [
        ("/status/404", Outcome.UPSTREAM_NOT_FOUND, 404),
        ("/status/410", Outcome.UPSTREAM_NOT_FOUND, 404),
        ("/status/500", Outcome.UPSTREAM_ERROR, 502),
        ("/status/206", Outcome.UPSTREAM_ERROR, 502),
        ("/gzip", Outcome.UPSTREAM_ERROR, 502),
    ],
)
async def test_upstream_failures(
    upstream: Upstream, path: str, outcome: Outcome, status: int
) -> None:
    error = await refused(make_proxy(upstream), f"{upstream.base}{path}")
    assert (error.outcome, error.status) == (outcome, status)


async def test_connection_refused_is_an_upstream_error(upstream: Upstream) -> None:
    proxy = make_proxy(upstream, extra_hosts=("127.0.0.1:1",))
    error = await refused(proxy, "http://127.0.0.1:1/file")
    assert (error.outcome, error.status) == (Outcome.UPSTREAM_ERROR, 502)


# --- TLS: the connection is pinned to the checked address, TLS is for the name ---------------------


@contextlib.asynccontextmanager
async def tls_upstream(certs_for: str, ca: trustme.CA) -> AsyncIterator[tuple[int, list[str]]]:
    seen: list[str] = []
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(certs_for).configure_cert(context)

    def on_sni(_sock: Any, name: str | None, _ctx: Any) -> None:
        seen.append(f"sni={name}")

    context.sni_callback = on_sni

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(Exception):
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            seen.extend(line.decode() for line in head.split(b"\r\n") if line)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello")
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=context)
    try:
        yield server.sockets[0].getsockname()[1], seen
    finally:
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize(("cert_name", "ok"), [("media.example", True), ("other.example", False)])
async def test_tls_verifies_the_name_on_the_pinned_address(cert_name: str, ok: bool) -> None:
    ca = trustme.CA()
    client = ssl.create_default_context()
    ca.configure_trust(client)
    async with tls_upstream(cert_name, ca) as (port, seen):
        backend = SpyBackend()
        proxy = MediaProxy(
            providers_for(port),
            private_allowlist=["127.0.0.1"],
            resolver=FakeResolver({"media.example": [["127.0.0.1"]]}),
            ssl_context=client,
            network_backend=backend,
        )
        url = f"https://media.example:{port}/f"
        if ok:
            assert await read_all(proxy, url) == b"hello"
            assert "sni=media.example" in seen
            assert f"Host: media.example:{port}" in seen
        else:
            error = await refused(proxy, url)
            assert error.outcome is Outcome.UPSTREAM_ERROR
            assert "certificate" in error.detail.lower()
        assert backend.connects == [("127.0.0.1", port)]


# --- the HTTP endpoint ----------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def proxy_endpoint(proxy: MediaProxy) -> AsyncIterator[tuple[httpx.AsyncClient, MediaTokens]]:
    tokens = MediaTokens(SECRET)
    app = FastAPI()
    install_problem_handler(app)  # what the hub's and the kit's apps do
    app.include_router(
        media_proxy_router(proxy, tokens, lambda jid: jid.domain == HUB, clock=lambda: 1000.0)
    )
    async with serving(app) as base, httpx.AsyncClient(base_url=base, timeout=20) as client:
        yield client, tokens


async def download(
    client: httpx.AsyncClient, params: dict[str, str], headers: dict[str, str], out: list[int]
) -> None:
    """GET through the proxy; ``out`` gets the status, then each chunk's size."""
    async with client.stream("GET", "/v1/media-proxy", params=params, headers=headers) as response:
        out.append(response.status_code)
        await drain(response.aiter_raw(), out)


def bearer(tokens: MediaTokens, jid: str = "+15551234567@hub.test") -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens.issue(jid, now=1000.0)}"}


async def test_endpoint_streams_with_safe_headers_and_forwards_nothing(upstream: Upstream) -> None:
    async with proxy_endpoint(make_proxy(upstream)) as (client, tokens):
        headers = {
            **bearer(tokens),
            "Cookie": "session=abc",
            "X-Forwarded-For": "203.0.113.9",
            "User-Agent": "client/1.0",
            "Referer": "https://hub.test/",
        }
        params = {"url": f"{upstream.base}/echo", "provider": "good"}
        response = await client.get("/v1/media-proxy", params=params, headers=headers)
        assert response.status_code == 200
        received = {name.lower(): value for name, value in upstream.seen[0]["headers"]}
        assert received == {
            "host": f"127.0.0.1:{upstream.port}",
            "user-agent": "Interlink-media-proxy",
            "accept": "*/*",
            "accept-encoding": "identity",
        }
        params = {"url": f"{upstream.base}/file?size=70000", "provider": "good"}
        response = await client.get("/v1/media-proxy", params=params, headers=headers)
        assert response.status_code == 200
        assert response.content == _body(70000)
        assert response.headers["content-type"] == "application/octet-stream"
        assert response.headers["content-length"] == "70000"
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["cache-control"] == "no-store"
        assert "set-cookie" not in response.headers
        assert "x-secret" not in response.headers


@pytest.mark.parametrize(
    ("headers", "status", "kind"),
    [
        ({}, 401, "media-token-missing"),
        ({"Authorization": "Basic eDp5"}, 401, "media-token-missing"),
        ({"Authorization": "Bearer v1.nope"}, 401, "media-token-invalid"),
        (None, 403, "not-a-gatekeeper-account"),
    ],
)
async def test_endpoint_authenticates(
    upstream: Upstream, headers: dict[str, str] | None, status: int, kind: str
) -> None:
    async with proxy_endpoint(make_proxy(upstream)) as (client, tokens):
        if headers is None:  # a third-party user's token
            headers = bearer(tokens, "abc@good.interop.hub.test")
        params = {"url": f"{upstream.base}/echo", "provider": "good"}
        response = await client.get("/v1/media-proxy", params=params, headers=headers)
        assert response.status_code == status
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["type"] == f"urn:interlink:problem:{kind}"
        assert upstream.seen == []


async def test_endpoint_maps_refusals_to_problems(upstream: Upstream) -> None:
    proxy = make_proxy(upstream, limits=ProxyLimits(max_bytes=1000))
    cases = [
        ({"provider": "good"}, 400, "bad-url"),
        ({"url": "https://user:pw@x.example/", "provider": "good"}, 400, "bad-url"),
        ({"url": "https://evil.example/f", "provider": "good"}, 403, "host-not-allowed"),
        ({"url": f"{upstream.base}/file", "provider": "pending"}, 403, "provider-not-approved"),
        (
            {"url": f"{upstream.base}/redirect?to=http://127.0.0.1/", "provider": "good"},
            403,
            "redirect-refused",
        ),
        ({"url": f"{upstream.base}/status/404", "provider": "good"}, 404, "upstream-not-found"),
        ({"url": f"{upstream.base}/file?size=1001", "provider": "good"}, 413, "too-large"),
        ({"url": f"{upstream.base}/status/503", "provider": "good"}, 502, "upstream-error"),
    ]
    async with proxy_endpoint(proxy) as (client, tokens):
        for params, status, kind in cases:
            response = await client.get("/v1/media-proxy", params=params, headers=bearer(tokens))
            assert response.status_code == status, params
            assert response.headers["content-type"] == "application/problem+json"
            problem = response.json()
            assert problem["type"] == f"urn:interlink:problem:{kind}"
            assert problem["status"] == status
            assert problem["detail"]


async def test_endpoint_aborts_a_stream_that_grows_too_large(upstream: Upstream) -> None:
    proxy = make_proxy(upstream, limits=ProxyLimits(max_bytes=100_000))
    async with proxy_endpoint(proxy) as (client, tokens):
        params = {"url": f"{upstream.base}/chunked?size=1000000", "provider": "good"}
        received: list[int] = []
        with pytest.raises(httpx.RemoteProtocolError):
            await download(client, params, bearer(tokens), received)
        assert received[0] == 200
        assert sum(received[1:]) <= 100_000
    assert proxy.outcomes["too-large"] == 1


async def test_100_mib_streams_through_with_bounded_memory(upstream: Upstream) -> None:
    size = 100 * MiB
    proxy = make_proxy(upstream)
    async with proxy_endpoint(proxy) as (client, tokens):
        params = {"url": f"{upstream.base}/file?size={size}", "provider": "good"}
        gc.collect()
        tracemalloc.start()
        try:
            base, _ = tracemalloc.get_traced_memory()
            received = 0
            async with client.stream(
                "GET", "/v1/media-proxy", params=params, headers=bearer(tokens)
            ) as response:
                assert response.status_code == 200
                assert response.headers["content-length"] == str(size)
                async for chunk in response.aiter_raw():
                    received += len(chunk)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert received == size
    # Upstream server, proxy and client all run in this process: the peak covers all three.
    assert peak - base < 32 * MiB, f"peak Python allocations grew by {(peak - base) / MiB:.1f} MiB"
    assert proxy.outcomes["fetched"] == 1
