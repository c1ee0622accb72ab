"""Running the provider kit: storage, app, HTTP server (``interlink provider serve``)."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

import httpx
import uvicorn

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


def store_path(data_dir: Path) -> Path:
    return data_dir / "provider-kit.sqlite3"


async def serve_kit(settings: KitSettings) -> None:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    store = await KitStore.open(store_path(settings.data_dir))
    verify: ssl.SSLContext | bool = True
    if settings.hub_ca_file is not None:
        verify = ssl.create_default_context(cafile=str(settings.hub_ca_file))
    client = httpx.AsyncClient(verify=verify, timeout=5)
    try:
        app = build_kit_app(
            KitConfig(settings.provider_id, settings.hub_domain, settings.hub_url),
            store,
            await store.signing_seed(),
            client,
        )
        config = uvicorn.Config(
            app, host=settings.host, port=settings.port, log_config=None, lifespan="off"
        )
        await uvicorn.Server(config).serve()
    finally:
        await client.aclose()
        await store.close()
