"""Running the provider kit: storage, media host, app and HTTP server (``provider serve``)."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import ssl
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import uvicorn

from interlink.media import MediaLimits, MediaStore
from interlink.net.tls import write_self_signed
from interlink.provider.app import KitConfig, build_kit_app
from interlink.provider.store import KitStore
from interlink.tasks import cancel_and_wait


@dataclass(frozen=True, slots=True)
class KitSettings:
    data_dir: Path
    provider_id: str
    hub_domain: str
    hub_url: str
    host: str = "127.0.0.1"
    port: int = 8443
    hub_ca_file: Path | None = None  # to trust a hub with a development certificate
    public_url: str | None = None  # as users reach the kit; default https://{host}:{port}
    media_limits: MediaLimits = field(default_factory=MediaLimits)
    media_cleanup_interval: float = 600.0  # seconds between deletions of expired media
    # TLS: a certificate and key given, else one generated into data_dir/tls (self-signed, for
    # localhost, the loopback addresses and ``host``); ``plain_http`` behind a TLS proxy only.
    tls_cert: Path | None = None
    tls_key: Path | None = None
    plain_http: bool = False

    @property
    def base_url(self) -> str:
        scheme = "http" if self.plain_http else "https"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return self.public_url or f"{scheme}://{host}:{self.port}"


log = logging.getLogger("interlink.provider")


def kit_tls_files(settings: KitSettings) -> tuple[Path, Path] | None:
    """The certificate and key the kit serves with: given, or generated once (``None`` for
    plain HTTP). Raises ``ValueError`` when only one of the two is given."""
    if settings.plain_http:
        return None
    if settings.tls_cert is not None or settings.tls_key is not None:
        if settings.tls_cert is None or settings.tls_key is None:
            raise ValueError("--tls-cert and --tls-key go together")
        return settings.tls_cert, settings.tls_key
    cert = settings.data_dir / "tls" / "kit-cert.pem"
    key = settings.data_dir / "tls" / "kit-key.pem"
    if not (cert.exists() and key.exists()):
        names = [] if _is_address(settings.host) else [settings.host]
        write_self_signed(cert, key, settings.host, names)
        log.info("TLS certificate generated", extra={"cert": str(cert)})
    return cert, key


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


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


async def _announce(
    server: uvicorn.Server, settings: KitSettings, tls: tuple[Path, Path] | None
) -> None:
    """Once the socket listens: where, and what the kit serves there."""
    while not server.started:  # noqa: ASYNC110 (uvicorn has no event for it)
        await asyncio.sleep(0.05)
    port = settings.port
    for s in server.servers:
        for sock in s.sockets:
            port = sock.getsockname()[1]
    log.info(
        "listening",
        extra={
            "transport": "http" if tls is None else "https",
            "host": settings.host,
            "port": port,
            "url": settings.base_url,
            "cert": None if tls is None else str(tls[0]),
            "provider": settings.provider_id,
            "hub": settings.hub_url,
        },
    )
    log.info(
        "serving",
        extra={
            "jwks": f"{settings.base_url}/.well-known/jwks.json",
            "callback": settings.base_url,
            "media_host": settings.base_url.split("://", 1)[1],
        },
    )


async def serve_kit(settings: KitSettings) -> None:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    tls = kit_tls_files(settings)
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
            app,
            host=settings.host,
            port=settings.port,
            log_config=None,
            lifespan="off",
            ssl_certfile=None if tls is None else str(tls[0]),
            ssl_keyfile=None if tls is None else str(tls[1]),
        )
        server = uvicorn.Server(config)
        announce = asyncio.get_running_loop().create_task(_announce(server, settings, tls))
        try:
            await server.serve()
        finally:
            announce.cancel()
    finally:
        if cleanup is not None:
            await cancel_and_wait([cleanup])
        await client.aclose()
        await store.close()
