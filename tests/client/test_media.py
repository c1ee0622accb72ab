"""The SDK's media sealing and description without a network: AES-256-GCM round trips, every
refused download (tampered ciphertext, wrong hashes, short file), the aesgcm:// form, the XML
in both directions with hostile variants, image and WAV description."""

from __future__ import annotations

import hashlib
import io
import wave
from dataclasses import replace
from pathlib import Path
from xml.etree.ElementTree import Element

import pytest
from PIL import Image

from interlink.client import media
from interlink.client.media import FileInfo, MediaError


def sealed_pair(tmp_path: Path, data: bytes) -> tuple[Path, media.Sealed]:
    src = tmp_path / "plain.bin"
    src.write_bytes(data)
    out = tmp_path / "sealed.bin"
    return out, media.seal_file(src, out)


@pytest.mark.parametrize("size", [0, 1, media.CHUNK - 1, media.CHUNK, 3 * media.CHUNK + 7])
def test_seal_and_open_round_trip(tmp_path: Path, size: int) -> None:
    data = bytes(range(256)) * (size // 256) + bytes(size % 256)
    sealed_path, sealed = sealed_pair(tmp_path, data)
    assert sealed.size == size
    assert sealed_path.stat().st_size == size + media.TAG == sealed.ciphertext_size
    assert sealed.plaintext_sha256 == hashlib.sha256(data).digest()
    assert sealed.ciphertext_sha256 == hashlib.sha256(sealed_path.read_bytes()).digest()
    out = tmp_path / "out.bin"
    media.open_file(
        sealed_path,
        out,
        key=sealed.key,
        iv=sealed.iv,
        ciphertext_sha256=sealed.ciphertext_sha256,
        sha256=sealed.plaintext_sha256,
    )
    assert out.read_bytes() == data


def test_fresh_key_and_iv_each_time(tmp_path: Path) -> None:
    _, a = sealed_pair(tmp_path, b"same")
    _, b = sealed_pair(tmp_path, b"same")
    assert (a.key, a.iv) != (b.key, b.iv)
    assert len(a.key) == 32
    assert len(a.iv) == 12


def test_tampered_ciphertext_is_refused_and_nothing_is_left(tmp_path: Path) -> None:
    sealed_path, sealed = sealed_pair(tmp_path, b"x" * 1000)
    raw = bytearray(sealed_path.read_bytes())
    raw[10] ^= 1
    sealed_path.write_bytes(bytes(raw))
    out = tmp_path / "out.bin"
    # Even with a matching ciphertext hash (the sender lies), the GCM tag catches it.
    with pytest.raises(MediaError, match="GCM tag"):
        media.open_file(
            sealed_path,
            out,
            key=sealed.key,
            iv=sealed.iv,
            ciphertext_sha256=hashlib.sha256(bytes(raw)).digest(),
            sha256=sealed.plaintext_sha256,
        )
    assert not out.exists()
    with pytest.raises(MediaError, match="ciphertext's SHA-256"):
        media.open_file(
            sealed_path,
            out,
            key=sealed.key,
            iv=sealed.iv,
            ciphertext_sha256=sealed.ciphertext_sha256,
            sha256=sealed.plaintext_sha256,
        )


def test_plaintext_hash_mismatch_is_refused(tmp_path: Path) -> None:
    sealed_path, sealed = sealed_pair(tmp_path, b"hello")
    out = tmp_path / "out.bin"
    with pytest.raises(MediaError, match="plaintext's SHA-256"):
        media.open_file(
            sealed_path,
            out,
            key=sealed.key,
            iv=sealed.iv,
            ciphertext_sha256=sealed.ciphertext_sha256,
            sha256=hashlib.sha256(b"other").digest(),
        )
    assert not out.exists()


def test_short_download_is_refused(tmp_path: Path) -> None:
    short = tmp_path / "short.bin"
    short.write_bytes(b"123")
    with pytest.raises(MediaError, match="shorter"):
        media.open_file(
            short, tmp_path / "o", key=bytes(32), iv=bytes(12), ciphertext_sha256=b"", sha256=b""
        )


def test_aesgcm_url_round_trip_and_refusals() -> None:
    key, iv = bytes(range(32)), bytes(range(12))
    url = media.aesgcm_url("https://hub.example:5280/media/abc/photo.jpg", key, iv)
    assert url.startswith("aesgcm://hub.example:5280/media/abc/photo.jpg#")
    assert media.parse_aesgcm(url) == ("https://hub.example:5280/media/abc/photo.jpg", key, iv)
    for bad in ("https://x/y#00", "aesgcm://x/y#zz", "aesgcm://x/y#" + "00" * 20):
        with pytest.raises(MediaError):
            media.parse_aesgcm(bad)


def info() -> FileInfo:
    return FileInfo(
        kind="image",
        name="cat.jpg",
        media_type="image/jpeg",
        size=1234,
        url="https://hub.example/media/abc/cat.jpg",
        key=bytes(32),
        iv=bytes(12),
        sha256=b"p" * 32,
        ciphertext_sha256=b"c" * 32,
        caption="a cat",
        width=640,
        height=480,
        thumbnail=b"\xff\xd8thumb",
        thumbnail_type="image/jpeg",
    )


def test_file_elements_round_trip_and_legacy_body() -> None:
    elements = media.file_elements(info())
    assert elements[0].tag == "{jabber:client}body"
    assert elements[0].text == media.aesgcm_url(info().url, bytes(32), bytes(12))
    assert media.parse_file(elements) == info()
    voice = replace(
        info(),
        kind="voice",
        width=None,
        height=None,
        duration_ms=3500,
        thumbnail=None,
        thumbnail_type=None,
        caption=None,
    )
    assert media.parse_file(media.file_elements(voice)) == voice
    assert media.parse_file([Element("{jabber:client}body")]) is None


def _mutate(path: str, attr: str | None, value: str) -> list[Element]:
    elements = media.file_elements(info())
    target = elements[1].find(path)
    assert target is not None
    if attr is None:
        target.text = value
    else:
        target.set(attr, value)
    return elements


E = "{urn:xmpp:sfs:0}sources/{urn:xmpp:esfs:0}encrypted"
URL = f"{E}/{{urn:xmpp:sfs:0}}sources/{{http://jabber.org/protocol/url-data}}url-data"
SIZE = "{urn:xmpp:file:metadata:0}file/{urn:xmpp:file:metadata:0}size"


@pytest.mark.parametrize(
    ("path", "attr", "value", "match"),
    [
        (E, "cipher", "urn:xmpp:ciphers:aes-128-cbc", "AES-256-GCM"),
        (f"{E}/{{urn:xmpp:esfs:0}}key", None, "AAAA", "32 bytes"),
        (f"{E}/{{urn:xmpp:esfs:0}}iv", None, "not base64!", "not base64"),
        (URL, "target", "ftp://hub.example/x", "https"),
        (URL, "target", "file:///etc/passwd", "https"),
        (SIZE, None, "-1", "negative"),
        (SIZE, None, "x", "number"),
    ],
)
def test_parse_file_refuses_malformed_descriptions(
    path: str, attr: str | None, value: str, match: str
) -> None:
    with pytest.raises(MediaError, match=match):
        media.parse_file(_mutate(path, attr, value))


def test_parse_file_keeps_only_the_base_name() -> None:
    name = "{urn:xmpp:file:metadata:0}file/{urn:xmpp:file:metadata:0}name"
    parsed = media.parse_file(_mutate(name, None, "../../etc/passwd"))
    assert parsed is not None
    assert parsed.name == "passwd"


def test_describe_image_gives_dimensions_and_a_small_thumbnail(tmp_path: Path) -> None:
    path = tmp_path / "photo.png"
    Image.new("RGB", (800, 600), (200, 30, 30)).save(path)
    described = media.describe(path, "image", media_type=None, duration=None)
    assert (described.media_type, described.width, described.height) == ("image/png", 800, 600)
    assert described.thumbnail is not None
    assert described.thumbnail_type == "image/jpeg"
    assert len(described.thumbnail) <= media.MAX_THUMBNAIL_BYTES
    with Image.open(io.BytesIO(described.thumbnail)) as thumb:
        assert max(thumb.size) <= media.THUMBNAIL_EDGE
    not_image = tmp_path / "x.png"
    not_image.write_bytes(b"not an image")
    with pytest.raises(MediaError, match="not an image"):
        media.describe(not_image, "image", media_type=None, duration=None)


def test_describe_voice_reads_wav_duration_or_takes_it_given(tmp_path: Path) -> None:
    path = tmp_path / "note.wav"
    with wave.open(str(path), "wb") as audio:
        audio.setnchannels(1)
        audio.setsampwidth(2)
        audio.setframerate(8000)
        audio.writeframes(bytes(2 * 8000 * 2))  # 2 s
    assert media.describe(path, "voice", media_type=None, duration=None).duration_ms == 2000
    given = media.describe(path, "voice", media_type="audio/ogg", duration=1.25)
    assert (given.media_type, given.duration_ms) == ("audio/ogg", 1250)
