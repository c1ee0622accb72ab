"""Running the provider kit: storage, media host, app and HTTP server (``provider serve``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import uvicorn

from interlink.media import MediaLimits, MediaStore
from interlink.provider.app import KitConfig, build_kit_app
from interlink.provider.store import KitStore


@dataclass(frozen=True, slots=True)
class KitSettings:
    data_dir: Path
    provider_id: str
    hub_domain: str
    hub_url: str
    host: str = "127.0.0.1"
    port: int = 8443
    hub_ca_file: Path | None = None  # to trust a hub with a development certificate
    public_url: str | None = None  # as users reach the kit; default http://{host}:{port}
    media_limits: MediaLimits = field(default_factory=MediaLimits)
    media_cleanup_interval: float = 600.0  # seconds between deletions of expired media

    @property
    def base_url(self) -> str:
        return self.public_url or f"http://{self.host}:{self.port}"


log = logging.getLogger("interlink.provider")


def store_path(data_dir: Path) -> Path:
    return data_dir / "provider-kit.sqlite3"


def media_path(data_dir: Path) -> Path:
    return data_dir / "media"


async def collect_media(media: MediaStore, interval: float) -> None:
    """Delete expired slots and files every ``interval`` seconds, for ever."""
    while True:
        try:
            deleted = await media.collect_expired(time.time())
            if deleted:
                log.info("expired media deleted", extra={"count": deleted})
        except Exception:
            log.exception("media clean-up failed")
        await asyncio.sleep(interval)


async def serve_kit(settings: KitSettings) -> None:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    store = await KitStore.open(store_path(settings.data_dir))
    verify: ssl.SSLContext | bool = True
    if settings.hub_ca_file is not None:
        verify = ssl.create_default_context(cafile=str(settings.hub_ca_file))
    client = httpx.AsyncClient(verify=verify, timeout=5)
    cleanup: asyncio.Task[None] | None = None
    try:
        media = MediaStore(
            await store.media_repository(),
            media_path(settings.data_dir),
            limits=settings.media_limits,
        )
        cleanup = asyncio.get_running_loop().create_task(
            collect_media(media, settings.media_cleanup_interval), name="media-cleanup"
        )
        app = build_kit_app(
            KitConfig(
                settings.provider_id, settings.hub_domain, settings.hub_url, settings.base_url
            ),
            store,
            await store.signing_seed(),
            client,
            media=media,
        )
        config = uvicorn.Config(
            app, host=settings.host, port=settings.port, log_config=None, lifespan="off"
        )
        await uvicorn.Server(config).serve()
    finally:
        if cleanup is not None:
            cleanup.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await cleanup
        await client.aclose()
        await store.close()
