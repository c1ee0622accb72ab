"""Media end to end (issue 6): a gatekeeper user and a third-party user exchange encrypted files
through the real hub (XEP-0363 upload, GET by unguessable URL) and the provider kit's media host,
gatekeeper users fetching third-party media only through the hub's media proxy; 100 MiB both
ways with bounded memory; and every refusal with a clear error."""

from __future__ import annotations

import asyncio
import hashlib
import os
import wave
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from interlink.app import HubServer
from interlink.client import FileMessage, InterlinkClient, KitUploader, MediaError
from interlink.media.model import MediaLimits
from interlink.media.store import MediaStore
from tests.integration.kit import DOMAIN, Certs, hub_with_kit

TOKEN = "operator-token-for-tests-0123456789"
MIB = 1024 * 1024


@dataclass
class World:
    server: HubServer
    certs: Certs
    alice: InterlinkClient  # gatekeeper user, opted in
    bob: InterlinkClient  # third-party user of "examplechat"
    bob_jid: str
    kit_url: str
    kit_media: MediaStore
    tmp: Path


@asynccontextmanager
async def world(
    tmp: Path, *, kit_limits: MediaLimits | None = None, **media: Any
) -> AsyncIterator[World]:
    async with hub_with_kit(
        tmp,
        features=("messaging", "media"),
        kit_media=kit_limits or MediaLimits(),
        media={"proxy_private_allowlist": ["127.0.0.1"], **media},
    ) as setup:
        bob_jid, token = await setup.enlist(tmp / "bob")
        port = setup.server.ports["c2s-starttls"]
        alice = InterlinkClient(
            f"alice@{DOMAIN}/phone",
            "pw",
            data_dir=tmp / "alice",
            port=port,
            ca_file=setup.certs.ca,
            http_url=setup.hub_url,
        )
        bob = InterlinkClient(
            f"{bob_jid}/app",
            "",
            data_dir=tmp / "bob",
            port=port,
            ca_file=setup.certs.ca,
            token_provider=token,
            uploader=KitUploader(setup.kit_url, "bob", "bob-secret"),
        )
        await alice.connect()
        await bob.connect()
        try:
            await alice.set_interop_settings(enabled=True)
            await alice.accept_request(bob_jid)  # pre-accepted: both may write
            yield World(
                setup.server, setup.certs, alice, bob, bob_jid, setup.kit_url, setup.kit_media, tmp
            )
        finally:
            await bob.close()
            await alice.close()


async def next_file(client: InterlinkClient) -> FileMessage:
    while True:
        event = await client.next_event(30)
        if isinstance(event, FileMessage):
            return event


def image(path: Path) -> Path:
    Image.new("RGB", (320, 200), (10, 120, 200)).save(path)
    return path


def voice_note(path: Path, seconds: int = 2) -> Path:
    with wave.open(str(path), "wb") as audio:
        audio.setnchannels(1)
        audio.setsampwidth(2)
        audio.setframerate(8000)
        audio.writeframes(os.urandom(2 * 8000 * seconds))
    return path


async def test_image_to_third_party_and_voice_note_back_through_the_proxy(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        photo = image(tmp_path / "photo.png")
        progress: list[tuple[int, int]] = []
        await w.alice.send_file(
            w.bob_jid,
            photo,
            kind="image",
            caption="the lake",
            progress=lambda done, total: progress.append((done, total)),
        )
        assert progress
        assert progress[-1][0] == progress[-1][1]
        got = await next_file(w.bob)
        assert got.file.kind == "image"
        assert (got.file.width, got.file.height, got.file.caption) == (320, 200, "the lake")
        assert got.file.media_type == "image/png"
        assert got.file.thumbnail is not None
        assert got.file.url.startswith(f"https://127.0.0.1:{w.server.ports['http']}/media/")
        saved = await w.bob.download(got, tmp_path / "bob-downloads")
        assert saved.read_bytes() == photo.read_bytes()

        note = voice_note(tmp_path / "note.wav")
        await w.bob.send_file(f"alice@{DOMAIN}", note, kind="voice")
        heard = await next_file(w.alice)
        assert heard.file.kind == "voice"
        assert heard.file.duration_ms == 2000
        assert heard.interop is not None
        assert heard.interop.provider == "examplechat"
        assert heard.file.url.startswith(w.kit_url)  # stored on the third party's side
        fetched: list[int] = []
        saved = await w.alice.download(
            heard, tmp_path / "alice-downloads", progress=lambda done, _: fetched.append(done)
        )
        assert saved.read_bytes() == note.read_bytes()
        assert fetched[-1] == heard.file.size + 16
        assert w.server.media_proxy is not None
        assert w.server.media_proxy.outcomes["fetched"] == 1  # through the hub, not directly


def rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


async def test_100_mib_both_ways_with_hashes_and_bounded_memory(tmp_path: Path) -> None:
    big = tmp_path / "big.bin"
    digest = hashlib.sha256()
    with big.open("wb") as out:
        for _ in range(100):
            chunk = os.urandom(MIB)
            digest.update(chunk)
            out.write(chunk)
    async with world(tmp_path) as w:
        peak = baseline = rss()
        stop = asyncio.Event()

        async def sample() -> None:
            nonlocal peak
            while not stop.is_set():
                peak = max(peak, rss())
                await asyncio.sleep(0.02)

        sampler = asyncio.create_task(sample())
        try:
            await w.alice.send_file(w.bob_jid, big)
            to_bob = await next_file(w.bob)
            got = await w.bob.download(to_bob, tmp_path / "bob-in")
            assert hashlib.sha256(got.read_bytes()).digest() == digest.digest()
            got.unlink()
            await w.bob.send_file(f"alice@{DOMAIN}", big)
            to_alice = await next_file(w.alice)
            got = await w.alice.download(to_alice, tmp_path / "alice-in")  # through the proxy
        finally:
            stop.set()
            await sampler
        sha = hashlib.sha256()
        with got.open("rb") as file:
            while chunk := file.read(MIB):
                sha.update(chunk)
        assert sha.digest() == digest.digest()
        # Sealing, upload, storage, proxying and opening all stream: the process (hub, kit and
        # both clients) never holds the file in memory.
        assert peak - baseline < 64 * MIB, f"RSS grew by {(peak - baseline) / MIB:.1f} MiB"


async def test_every_refusal_has_a_clear_error(tmp_path: Path) -> None:
    async with world(
        tmp_path,
        max_file_size=64 * 1024,
        quota_bytes=100 * 1024,
        kit_limits=MediaLimits(max_file_size=64 * 1024),
    ) as w:
        small = tmp_path / "small.bin"
        small.write_bytes(os.urandom(40 * 1024))
        over = tmp_path / "over.bin"
        over.write_bytes(os.urandom(64 * 1024))  # + 16 bytes of tag: one over the limit
        with pytest.raises(MediaError, match=r"too large|file-too-large|larger"):
            await w.alice.send_file(w.bob_jid, over)
        with pytest.raises(MediaError, match=r"too large|larger"):
            await w.bob.send_file(f"alice@{DOMAIN}", over)
        await w.alice.send_file(w.bob_jid, small)
        first = await next_file(w.bob)
        await w.alice.send_file(w.bob_jid, small)
        await next_file(w.bob)
        with pytest.raises(MediaError, match="Quota reached"):
            await w.alice.send_file(w.bob_jid, small)  # 3 x 40 KiB > 100 KiB

        # Hash mismatch: the message promises other bytes than the store has.
        lying = replace(first, file=replace(first.file, sha256=hashlib.sha256(b"x").digest()))
        with pytest.raises(MediaError, match="plaintext's SHA-256"):
            await w.bob.download(lying, tmp_path / "d")
        # Tampered ciphertext on the server's disk: the ciphertext hash catches it.
        assert w.server.media is not None
        file_id = first.file.url.split("/media/", 1)[1].split("/", 1)[0]
        stored = next(p for p in (tmp_path / "data" / "media").rglob(file_id))
        raw = bytearray(stored.read_bytes())
        raw[100] ^= 0xFF
        stored.write_bytes(bytes(raw))
        with pytest.raises(MediaError, match="ciphertext's SHA-256"):
            await w.bob.download(first, tmp_path / "d")
        # Expired URL: past retention the hub forgets the file.
        await w.server.media.collect_expired(w.server.clock() + 31 * 86400)
        with pytest.raises(MediaError, match=r"download refused \((404|410)\)"):
            await w.bob.download(first, tmp_path / "d")
        assert not list((tmp_path / "d").glob("*"))  # nothing half-written is left


async def test_the_proxy_refuses_what_the_rules_forbid(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        note = voice_note(tmp_path / "note.wav", seconds=1)
        await w.bob.send_file(f"alice@{DOMAIN}", note, kind="voice")
        heard = await next_file(w.alice)

        async def through_proxy(url: str) -> str:
            forged = replace(heard, file=replace(heard.file, url=url))
            with pytest.raises(MediaError) as refused:
                await w.alice.download(forged, tmp_path / "x")
            return str(refused.value)

        port = int(w.kit_url.rsplit(":", 1)[1])
        # The hub's own HTTP port is loopback too, but not on the provider's allowlist.
        assert "403" in await through_proxy(f"https://127.0.0.1:{w.server.ports['http']}/healthz")
        assert "403" in await through_proxy("https://169.254.169.254/latest/meta-data/")
        assert "403" in await through_proxy("https://media.elsewhere.example/x")
        assert "403" in await through_proxy(f"https://localhost:{port}/x")  # resolves to loopback
        assert w.server.media_proxy is not None
        assert w.server.media_proxy.outcomes["fetched"] == 0
