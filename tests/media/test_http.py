"""The media routes over HTTP: through httpx's ASGI transport for statuses and headers, and over
a real uvicorn socket for a streamed upload and download."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from interlink.media import MediaLimits, Slot, SlotUrls, slot_urls
from interlink.net.media_api import media_router
from interlink.net.problems import install_problem_handler
from tests.media.mediakit import MediaKit, media_kit

BASE = "https://media.test"
OWNER = "alice@hub.test"


@asynccontextmanager
async def http(
    tmp: Path, limits: MediaLimits | None = None
) -> AsyncIterator[tuple[MediaKit, httpx.AsyncClient]]:
    async with media_kit(tmp, limits) as kit:
        app = FastAPI()
        install_problem_handler(app)  # what the hub's and the kit's apps do
        app.include_router(media_router(kit.store))
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
            yield kit, client


async def slot(
    kit: MediaKit, size: int, name: str = "photo 1.jpg", ctype: str | None = None
) -> tuple[Slot, SlotUrls]:
    granted = await kit.store.request_slot(OWNER, name, size, ctype)
    return granted, slot_urls(BASE, granted)


def assert_problem(response: httpx.Response, status: int, kind: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["type"] == f"urn:interlink:problem:{kind}"
    assert problem["status"] == status
    assert problem["detail"]


async def test_put_then_get_and_head(tmp_path: Path) -> None:
    async with http(tmp_path) as (kit, client):
        granted, urls = await slot(kit, 5)
        assert urls.put_url == f"{BASE}/media/{granted.record.slot_id}/photo%201.jpg"
        assert urls.get_url == f"{BASE}/media/{granted.record.file_id}/photo%201.jpg"
        put = await client.put(urls.put_url, content=b"hello", headers=urls.put_headers)
        assert put.status_code == 201, put.text

        got = await client.get(urls.get_url)
        assert got.status_code == 200
        assert got.content == b"hello"
        headers = got.headers
        assert headers["content-length"] == "5"
        assert headers["content-type"] == "application/octet-stream"
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["content-disposition"].startswith("attachment;")
        assert "filename*=UTF-8''photo%201.jpg" in headers["content-disposition"]
        assert headers["cache-control"].startswith("private")
        assert "sandbox" in headers["content-security-policy"]

        head = await client.head(urls.get_url)
        assert head.status_code == 200
        assert head.content == b""
        assert head.headers["content-length"] == "5"
        assert head.headers["x-content-type-options"] == "nosniff"


async def test_declared_type_is_served(tmp_path: Path) -> None:
    async with http(tmp_path) as (kit, client):
        _, urls = await slot(kit, 1, "a.png", "image/png")
        headers = {**urls.put_headers, "Content-Type": "image/png"}
        assert (await client.put(urls.put_url, content=b"x", headers=headers)).status_code == 201
        got = await client.get(urls.get_url)
        assert got.headers["content-type"] == "image/png"


async def test_ranges(tmp_path: Path) -> None:
    async with http(tmp_path) as (kit, client):
        _, urls = await slot(kit, 10)
        await client.put(urls.put_url, content=b"0123456789", headers=urls.put_headers)
        for header, status, content, content_range in [
            ("bytes=2-4", 206, b"234", "bytes 2-4/10"),
            ("bytes=7-", 206, b"789", "bytes 7-9/10"),
            ("bytes=-2", 206, b"89", "bytes 8-9/10"),
            ("bytes=5-100", 206, b"56789", "bytes 5-9/10"),
            ("bytes=0-1,4-5", 200, b"0123456789", None),  # several ranges: ignored
        ]:
            got = await client.get(urls.get_url, headers={"Range": header})
            assert got.status_code == status, header
            assert got.content == content, header
            assert got.headers.get("content-range") == content_range
            assert got.headers["content-length"] == str(len(content))
        unsatisfiable = await client.get(urls.get_url, headers={"Range": "bytes=10-"})
        assert unsatisfiable.status_code == 416
        assert unsatisfiable.headers["content-range"] == "bytes */10"


@pytest.mark.parametrize(
    ("headers", "status", "kind"),
    [
        ({}, 403, "bad-token"),
        ({"Authorization": "Bearer wrong"}, 403, "bad-token"),
        ({"Authorization": "Basic abc"}, 403, "bad-token"),
    ],
)
async def test_put_token_refusals(
    tmp_path: Path, headers: dict[str, str], status: int, kind: str
) -> None:
    async with http(tmp_path) as (kit, client):
        _, urls = await slot(kit, 1)
        assert_problem(await client.put(urls.put_url, content=b"x", headers=headers), status, kind)


async def test_put_refusals(tmp_path: Path) -> None:
    async with http(tmp_path, MediaLimits(put_expiry=300)) as (kit, client):
        _, urls = await slot(kit, 3)
        auth = urls.put_headers
        too_long = await client.put(urls.put_url, content=b"xxxx", headers=auth)
        assert_problem(too_long, 413, "size-mismatch")
        too_short = await client.put(urls.put_url, content=b"xx", headers=auth)
        assert_problem(too_short, 400, "size-mismatch")

        async def chunked() -> AsyncIterator[bytes]:  # no Content-Length: counted as it comes
            yield b"xx"
            yield b"xx"

        streamed = await client.put(urls.put_url, content=chunked(), headers=auth)
        assert_problem(streamed, 413, "size-mismatch")
        wrong_type = await client.put(
            urls.put_url, content=b"xxx", headers={**auth, "Content-Type": "text/html"}
        )
        assert_problem(wrong_type, 415, "content-type-mismatch")
        other_name = urls.put_url.rsplit("/", 1)[0] + "/other.jpg"
        assert_problem(await client.put(other_name, content=b"xxx", headers=auth), 404, "not-found")
        unknown = f"{BASE}/media/nope/photo%201.jpg"
        assert_problem(await client.put(unknown, content=b"xxx", headers=auth), 404, "not-found")

        assert (await client.put(urls.put_url, content=b"xxx", headers=auth)).status_code == 201
        used = await client.put(urls.put_url, content=b"xxx", headers=auth)
        assert_problem(used, 409, "slot-used")

        _, late = await slot(kit, 1)
        kit.clock.now += 300
        expired = await client.put(late.put_url, content=b"x", headers=late.put_headers)
        assert_problem(expired, 410, "slot-expired")


async def test_get_refusals(tmp_path: Path) -> None:
    async with http(tmp_path, MediaLimits(retention=3600)) as (kit, client):
        granted, urls = await slot(kit, 1)
        # Not uploaded yet: nothing to get, and the PUT URL is no GET URL.
        assert_problem(await client.get(urls.get_url), 404, "not-found")
        await client.put(urls.put_url, content=b"x", headers=urls.put_headers)
        assert_problem(await client.get(urls.put_url), 404, "not-found")
        other_name = urls.get_url.rsplit("/", 1)[0] + "/other.jpg"
        assert_problem(await client.get(other_name), 404, "not-found")
        assert (await client.head(f"{BASE}/media/nope/x")).status_code == 404
        kit.clock.now += 3600
        assert_problem(await client.get(urls.get_url), 410, "media-expired")
        assert (await client.head(urls.get_url)).status_code == 410
        await kit.store.collect_expired(kit.clock.now)
        assert_problem(await client.get(urls.get_url), 404, "not-found")
        assert granted.record.file_id in urls.get_url


async def test_real_socket_streamed_upload_and_download(tmp_path: Path) -> None:
    from tests.integration.kit import serving

    size = 8 * 1024 * 1024 + 17
    chunk = bytes(range(256)) * 256

    def pieces() -> Iterator[bytes]:
        left = size
        while left:
            piece = chunk[: min(left, len(chunk))]
            left -= len(piece)
            yield piece

    async def generated() -> AsyncIterator[bytes]:
        for piece in pieces():
            yield piece

    expected = hashlib.sha256()
    for piece in pieces():
        expected.update(piece)
    digest = hashlib.sha256()

    async with media_kit(tmp_path, MediaLimits(max_file_size=size, quota_bytes=2 * size)) as kit:
        app = FastAPI()
        install_problem_handler(app)  # what the hub's and the kit's apps do
        app.include_router(media_router(kit.store))
        async with serving(app) as base, httpx.AsyncClient(timeout=30) as client:
            granted = await kit.store.request_slot(OWNER, "big.bin", size, None)
            urls = slot_urls(base, granted)
            put = await client.put(
                urls.put_url,
                content=generated(),
                headers={**urls.put_headers, "Content-Length": str(size)},
            )
            assert put.status_code == 201, put.text
            received = 0
            async with client.stream("GET", urls.get_url) as response:
                assert response.status_code == 200
                assert response.headers["content-length"] == str(size)
                async for piece in response.aiter_raw():
                    received += len(piece)
                    digest.update(piece)
            assert received == size
            assert digest.digest() == expected.digest()
            head = await client.head(urls.get_url)
            assert head.status_code == 200
            assert head.headers["content-length"] == str(size)
            # The slot's token over a real socket: refused without it, before any body is read.
            again = await kit.store.request_slot(OWNER, "b.bin", 4, None)
            refused = await client.put(slot_urls(base, again).put_url, content=b"abcd")
            assert refused.status_code == 403
