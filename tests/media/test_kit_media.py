"""The provider kit as its users' media host: slots for kit users (password checked, quota per
user), the same PUT/GET routes as the hub's, metadata in the kit's own database through the hub's
repository class, and the kit's serve loop running it."""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from interlink.media import MediaLimits, MediaStore
from interlink.provider.app import KitConfig, build_kit_app
from interlink.provider.serve import KitSettings, kit_tls_files, media_path, serve_kit, store_path
from interlink.provider.store import KitStore
from tests.media.mediakit import Clock

PUBLIC = "https://media.examplechat.test:8443"


@asynccontextmanager
async def kit_app(
    tmp: Path, limits: MediaLimits | None = None
) -> AsyncIterator[tuple[KitStore, MediaStore, Clock, httpx.AsyncClient]]:
    store = await KitStore.open(tmp / "kit.sqlite3")
    clock = Clock()
    media = MediaStore(await store.media_repository(), tmp / "media", limits=limits, clock=clock)
    hub = httpx.AsyncClient()
    app = build_kit_app(
        KitConfig("examplechat", "hub.test", "https://hub.test", PUBLIC),
        store,
        await store.signing_seed(),
        hub,
        clock,
        media=media,
    )
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url=PUBLIC) as client:
            await store.add_user("bob", "bob-secret")
            await store.add_user("carol", "carol-secret")
            yield store, media, clock, client
    finally:
        await hub.aclose()
        await store.close()


def slot_request(user: str = "bob", size: int = 5, **extra: Any) -> dict[str, Any]:
    return {"username": user, "password": f"{user}-secret", "filename": "v.ogg", "size": size} | (
        extra
    )


async def test_slot_put_get(tmp_path: Path) -> None:
    async with kit_app(tmp_path) as (_store, _media, _clock, client):
        response = await client.post("/v1/media/slots", json=slot_request(content_type="audio/ogg"))
        assert response.status_code == 201, response.text
        slot = response.json()
        assert slot["put_url"].startswith(PUBLIC + "/media/")
        assert slot["get_url"].startswith(PUBLIC + "/media/")
        assert slot["put_headers"]["Authorization"].startswith("Bearer ")
        put = await client.put(
            slot["put_url"],
            content=b"voice",
            headers={**slot["put_headers"], "Content-Type": "audio/ogg"},
        )
        assert put.status_code == 201, put.text
        got = await client.get(slot["get_url"])
        assert got.status_code == 200
        assert got.content == b"voice"
        assert got.headers["content-type"] == "audio/ogg"
        assert got.headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize(
    "body",
    [
        slot_request() | {"password": "wrong"},
        slot_request() | {"username": "nobody", "password": "nobody-secret"},
    ],
)
async def test_slot_needs_the_users_password(tmp_path: Path, body: dict[str, Any]) -> None:
    async with kit_app(tmp_path) as (_store, _media, _clock, client):
        response = await client.post("/v1/media/slots", json=body)
        assert response.status_code == 401
        assert response.headers["content-type"] == "application/problem+json"


async def test_inactive_user_gets_no_slot(tmp_path: Path) -> None:
    async with kit_app(tmp_path) as (store, _media, _clock, client):
        await store.set_active("bob", False)
        assert (await client.post("/v1/media/slots", json=slot_request())).status_code == 401


async def test_limits_and_quota_per_kit_user(tmp_path: Path) -> None:
    limits = MediaLimits(max_file_size=100, quota_bytes=150)
    async with kit_app(tmp_path, limits) as (_store, _media, _clock, client):
        too_big = await client.post("/v1/media/slots", json=slot_request(size=101))
        assert too_big.status_code == 413
        assert too_big.json()["type"] == "urn:interlink:problem:file-too-large"
        assert (
            await client.post("/v1/media/slots", json=slot_request(size=100))
        ).status_code == 201
        assert (await client.post("/v1/media/slots", json=slot_request(size=50))).status_code == 201
        over = await client.post("/v1/media/slots", json=slot_request(size=1))
        assert over.status_code == 413
        assert over.json()["type"] == "urn:interlink:problem:quota-exceeded"
        # Carol's quota is her own.
        carol = await client.post("/v1/media/slots", json=slot_request("carol", size=100))
        assert carol.status_code == 201
        html = await client.post("/v1/media/slots", json=slot_request(content_type="text/html"))
        assert html.status_code == 415


async def test_expired_slot_and_file_on_the_kit(tmp_path: Path) -> None:
    limits = MediaLimits(put_expiry=300, retention=3600, quota_bytes=10, max_file_size=10)
    async with kit_app(tmp_path, limits) as (_store, media, clock, client):
        late = (await client.post("/v1/media/slots", json=slot_request(size=5))).json()
        kept = (await client.post("/v1/media/slots", json=slot_request(size=5))).json()
        put = await client.put(kept["put_url"], content=b"12345", headers=kept["put_headers"])
        assert put.status_code == 201
        clock.now += 300
        expired = await client.put(late["put_url"], content=b"12345", headers=late["put_headers"])
        assert expired.status_code == 410
        clock.now += 3600
        assert (await client.get(kept["get_url"])).status_code == 410
        assert await media.collect_expired(clock.now) == 2
        assert (await client.get(kept["get_url"])).status_code == 404
        again = await client.post("/v1/media/slots", json=slot_request(size=10))
        assert again.status_code == 201  # the quota is free again


async def test_kit_media_metadata_survives_reopen(tmp_path: Path) -> None:
    async with kit_app(tmp_path) as (_store, _media, _clock, client):
        slot = (await client.post("/v1/media/slots", json=slot_request())).json()
        await client.put(slot["put_url"], content=b"voice", headers=slot["put_headers"])
    store = await KitStore.open(tmp_path / "kit.sqlite3")
    try:
        media = MediaStore(await store.media_repository(), tmp_path / "media", clock=Clock())
        file_id, name = slot["get_url"].split("/")[-2:]
        download = await media.open_download(file_id, name)
        assert b"".join([c async for c in download.chunks()]) == b"voice"
        assert (await store.check_password("bob", "bob-secret")) is not None
    finally:
        await store.close()


def test_media_host_needs_public_url(tmp_path: Path) -> None:
    async def build() -> None:
        store = await KitStore.open(tmp_path / "kit.sqlite3")
        try:
            media = MediaStore(await store.media_repository(), tmp_path / "media")
            async with httpx.AsyncClient() as hub:
                with pytest.raises(ValueError, match="public_url"):
                    build_kit_app(
                        KitConfig("examplechat", "hub.test", "https://hub.test"),
                        store,
                        await store.signing_seed(),
                        hub,
                        media=media,
                    )
        finally:
            await store.close()

    asyncio.run(build())


async def test_serve_kit_hosts_media(tmp_path: Path) -> None:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    data = tmp_path / "kit"
    data.mkdir()
    store = await KitStore.open(store_path(data))
    await store.add_user("bob", "bob-secret")
    await store.close()
    settings = KitSettings(data, "examplechat", "hub.test", "https://hub.test", port=port)
    tls = kit_tls_files(settings)  # the certificate the kit generates and serves with
    assert tls is not None
    task = asyncio.create_task(serve_kit(settings))
    base = f"https://127.0.0.1:{port}"
    verify = ssl.create_default_context(cafile=str(tls[0]))
    try:
        async with httpx.AsyncClient(base_url=base, timeout=5, verify=verify) as client:
            for _ in range(200):
                try:
                    response = await client.post("/v1/media/slots", json=slot_request())
                except httpx.TransportError:
                    await asyncio.sleep(0.02)
                    continue
                break
            else:  # pragma: no cover
                pytest.fail("the kit did not start")
            assert response.status_code == 201, response.text
            slot = response.json()
            assert slot["put_url"].startswith(base + "/media/")
            put = await client.put(slot["put_url"], content=b"voice", headers=slot["put_headers"])
            assert put.status_code == 201
            assert (await client.get(slot["get_url"])).content == b"voice"
        assert any(media_path(data).joinpath("files").iterdir())
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
