"""Encrypted media for the SDK (DESIGN Flow 5): files are sealed with AES-256-GCM under a fresh
key and IV, the ciphertext is uploaded to the sender's own side, and the URL, key, IV and both
SHA-256 hashes travel inside the end-to-end encrypted message.

On the wire, inside the SCE envelope (OMEMO 2), the message carries:

- ``<body>aesgcm://host/path#<iv hex><key hex></body>``, the XEP-0454 form that legacy OMEMO
  clients understand (it is also what the legacy body carries);
- ``<file-sharing xmlns='urn:xmpp:sfs:0'>`` (XEP-0447) with the file's metadata (XEP-0446: type,
  name, size, image dimensions or duration, caption, the plaintext's SHA-256, a small thumbnail
  per XEP-0264 as a data: URI) and an XEP-0448 ``<encrypted/>`` source with key, IV, the
  ciphertext's SHA-256 and the https URL;
- ``<media xmlns='urn:interlink:media:0' kind='image|voice|video|file'/>``
  (:mod:`interlink.xmpp.ext.media_tokens`).

The ciphertext is ``AES-256-GCM(plaintext) || tag`` (16 bytes), as XEP-0454 has it. Sealing and
opening stream in chunks, so memory stays bounded whatever the file size.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import os
import secrets
import wave
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit
from xml.etree.ElementTree import Element, SubElement

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from interlink.client.errors import ClientError
from interlink.xmpp.ext import media_tokens
from interlink.xmpp.ext.media_tokens import KINDS as KINDS

CHUNK = 256 * 1024
TAG = 16
SFS = "urn:xmpp:sfs:0"
METADATA = "urn:xmpp:file:metadata:0"
HASHES = "urn:xmpp:hashes:2"
THUMBS = "urn:xmpp:thumbs:1"
ESFS = "urn:xmpp:esfs:0"
URL_DATA = "http://jabber.org/protocol/url-data"
CIPHER = "urn:xmpp:ciphers:aes-256-gcm-nopadding:0"
THUMBNAIL_EDGE = 64  # pixels of the longer side
MAX_THUMBNAIL_BYTES = 8 * 1024
_TYPES = {
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".ogg": "audio/ogg",
    ".opus": "audio/ogg",
    ".m4a": "audio/mp4",
    ".mp3": "audio/mpeg",
    ".wav": "audio/wav",
    ".mp4": "video/mp4",
    ".webm": "video/webm",
    ".pdf": "application/pdf",
    ".txt": "text/plain",
}


class MediaError(ClientError):
    """A file could not be sent or received: say which check failed."""


def _q(namespace: str, local: str) -> str:
    return f"{{{namespace}}}{local}"


@dataclass(frozen=True, slots=True)
class Sealed:
    key: bytes
    iv: bytes
    plaintext_sha256: bytes
    ciphertext_sha256: bytes
    size: int  # of the plaintext
    ciphertext_size: int


def seal_file(src: Path, dst: Path) -> Sealed:
    """Encrypt ``src`` into ``dst`` (ciphertext || tag) with a fresh key and IV."""
    key, iv = secrets.token_bytes(32), secrets.token_bytes(12)
    encryptor = Cipher(algorithms.AES(key), modes.GCM(iv)).encryptor()
    plain_hash, cipher_hash = hashlib.sha256(), hashlib.sha256()
    size = 0
    with src.open("rb") as inp, dst.open("wb") as out:
        while chunk := inp.read(CHUNK):
            size += len(chunk)
            plain_hash.update(chunk)
            data = encryptor.update(chunk)
            cipher_hash.update(data)
            out.write(data)
        tail = encryptor.finalize() + encryptor.tag
        cipher_hash.update(tail)
        out.write(tail)
    return Sealed(key, iv, plain_hash.digest(), cipher_hash.digest(), size, size + TAG)


def open_file(
    src: Path, dst: Path, *, key: bytes, iv: bytes, ciphertext_sha256: bytes, sha256: bytes
) -> None:
    """Check ``src``'s hash, decrypt it into ``dst`` and check the plaintext's hash and the GCM
    tag. On any failure ``dst`` is removed and :class:`MediaError` says which check failed."""
    total = src.stat().st_size
    if total < TAG:
        raise MediaError("the download is shorter than a GCM tag")
    digest = hashlib.sha256()
    with src.open("rb") as inp:
        while chunk := inp.read(CHUNK):
            digest.update(chunk)
    if not secrets.compare_digest(digest.digest(), ciphertext_sha256):
        raise MediaError("the ciphertext's SHA-256 does not match: the file was changed")
    plain = hashlib.sha256()
    try:
        with src.open("rb") as inp, dst.open("wb") as out:
            inp.seek(total - TAG)
            tag = inp.read(TAG)
            inp.seek(0)
            decryptor = Cipher(algorithms.AES(key), modes.GCM(iv, tag)).decryptor()
            left = total - TAG
            while left:
                chunk = inp.read(min(CHUNK, left))
                left -= len(chunk)
                data = decryptor.update(chunk)
                plain.update(data)
                out.write(data)
            decryptor.finalize()
        if not secrets.compare_digest(plain.digest(), sha256):
            raise MediaError("the plaintext's SHA-256 does not match")
    except InvalidTag:
        dst.unlink(missing_ok=True)
        raise MediaError("the GCM tag does not verify: the file was tampered with") from None
    except BaseException:
        dst.unlink(missing_ok=True)
        raise


def aesgcm_url(https_url: str, key: bytes, iv: bytes) -> str:
    """The XEP-0454 form: scheme aesgcm, IV and key in hex in the fragment."""
    parts = urlsplit(https_url)
    return urlunsplit(("aesgcm", parts.netloc, parts.path, parts.query, (iv + key).hex()))


def parse_aesgcm(url: str) -> tuple[str, bytes, bytes]:
    """``(https URL, key, iv)`` from an ``aesgcm://`` URL (12- or 16-byte IV)."""
    parts = urlsplit(url)
    if parts.scheme != "aesgcm":
        raise MediaError("not an aesgcm:// URL")
    try:
        secret = bytes.fromhex(parts.fragment)
    except ValueError:
        raise MediaError("the aesgcm:// fragment is not hex") from None
    if len(secret) not in (44, 48):
        raise MediaError("the aesgcm:// fragment must hold an IV and a 32-byte key")
    iv, key = secret[:-32], secret[-32:]
    return urlunsplit(("https", parts.netloc, parts.path, parts.query, "")), key, iv


@dataclass(frozen=True, slots=True)
class FileInfo:
    """What a media message says about its file."""

    kind: str
    name: str
    media_type: str
    size: int
    url: str  # https (or http) URL of the ciphertext
    key: bytes
    iv: bytes
    sha256: bytes
    ciphertext_sha256: bytes
    caption: str | None = None
    width: int | None = None
    height: int | None = None
    duration_ms: int | None = None
    thumbnail: bytes | None = None  # image bytes (thumbnail_type)
    thumbnail_type: str | None = None


@dataclass(frozen=True, slots=True)
class Described:
    media_type: str
    width: int | None = None
    height: int | None = None
    duration_ms: int | None = None
    thumbnail: bytes | None = None
    thumbnail_type: str | None = None


def describe(path: Path, kind: str, *, media_type: str | None, duration: float | None) -> Described:
    """Media type, image dimensions and thumbnail (Pillow), or duration: given, or read from a
    WAV file; otherwise unknown."""
    guessed = media_type or _TYPES.get(path.suffix.lower(), "application/octet-stream")
    duration_ms = None if duration is None else round(duration * 1000)
    if kind == "image":
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(path) as image:
                width, height = image.size
                fmt = (image.format or "").lower()
                image.thumbnail((THUMBNAIL_EDGE, THUMBNAIL_EDGE))
                buffer = io.BytesIO()
                image.convert("RGB").save(buffer, "JPEG", quality=60)
        except (UnidentifiedImageError, OSError) as exc:
            raise MediaError(f"not an image Pillow can read: {exc}") from None
        thumb = buffer.getvalue()
        if media_type is None and fmt in ("jpeg", "png", "gif", "webp"):
            guessed = f"image/{fmt}"
        if len(thumb) > MAX_THUMBNAIL_BYTES:
            return Described(guessed, width, height)
        return Described(guessed, width, height, None, thumb, "image/jpeg")
    if duration_ms is None and path.suffix.lower() == ".wav":
        try:
            with wave.open(str(path), "rb") as audio:
                duration_ms = round(audio.getnframes() * 1000 / audio.getframerate())
        except (wave.Error, EOFError, ZeroDivisionError):
            duration_ms = None
    return Described(guessed, duration_ms=duration_ms)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _text(parent: Element, tag: str, value: object | None) -> None:
    if value is not None:
        SubElement(parent, tag).text = str(value)


def file_elements(info: FileInfo) -> list[Element]:
    """What goes into the encrypted envelope for ``info`` (see the module docstring)."""
    body = Element(_q("jabber:client", "body"))
    body.text = aesgcm_url(info.url, info.key, info.iv)
    sharing = Element(_q(SFS, "file-sharing"), {"disposition": "inline"})
    meta = SubElement(sharing, _q(METADATA, "file"))
    _text(meta, _q(METADATA, "media-type"), info.media_type)
    _text(meta, _q(METADATA, "name"), info.name)
    _text(meta, _q(METADATA, "size"), info.size)
    _text(meta, _q(METADATA, "width"), info.width)
    _text(meta, _q(METADATA, "height"), info.height)
    _text(meta, _q(METADATA, "length"), info.duration_ms)
    _text(meta, _q(METADATA, "desc"), info.caption)
    SubElement(meta, _q(HASHES, "hash"), {"algo": "sha-256"}).text = _b64(info.sha256)
    if info.thumbnail is not None and info.thumbnail_type is not None:
        uri = f"data:{info.thumbnail_type};base64,{_b64(info.thumbnail)}"
        SubElement(meta, _q(THUMBS, "thumbnail"), {"uri": uri, "media-type": info.thumbnail_type})
    sources = SubElement(sharing, _q(SFS, "sources"))
    encrypted = SubElement(sources, _q(ESFS, "encrypted"), {"cipher": CIPHER})
    SubElement(encrypted, _q(ESFS, "key")).text = _b64(info.key)
    SubElement(encrypted, _q(ESFS, "iv")).text = _b64(info.iv)
    hash_el = SubElement(encrypted, _q(HASHES, "hash"), {"algo": "sha-256"})
    hash_el.text = _b64(info.ciphertext_sha256)
    inner = SubElement(encrypted, _q(SFS, "sources"))
    SubElement(inner, _q(URL_DATA, "url-data"), {"target": info.url})
    return [body, sharing, media_tokens.kind_element(info.kind)]


def _int(el: Element | None) -> int | None:
    if el is None or el.text is None:
        return None
    try:
        value = int(el.text)
    except ValueError:
        raise MediaError(f"<{el.tag}> is not a number") from None
    if value < 0:
        raise MediaError(f"<{el.tag}> is negative")
    return value


def _unb64(text: str | None, what: str) -> bytes:
    try:
        return base64.b64decode(text or "", validate=True)
    except (binascii.Error, ValueError):
        raise MediaError(f"{what} is not base64") from None


def parse_file(content: Sequence[Element]) -> FileInfo | None:
    """The file a decrypted envelope describes, ``None`` if it describes none; raises
    :class:`MediaError` for a malformed description (it came from the peer: check everything)."""
    sharing = next((el for el in content if el.tag == _q(SFS, "file-sharing")), None)
    if sharing is None:
        return None
    meta = sharing.find(_q(METADATA, "file"))
    encrypted = sharing.find(f"{_q(SFS, 'sources')}/{_q(ESFS, 'encrypted')}")
    if meta is None or encrypted is None or encrypted.get("cipher") != CIPHER:
        raise MediaError("a file-sharing element needs metadata and an AES-256-GCM source")
    url_el = encrypted.find(f"{_q(SFS, 'sources')}/{_q(URL_DATA, 'url-data')}")
    url = "" if url_el is None else url_el.get("target", "")
    if urlsplit(url).scheme not in ("https", "http"):
        # http only leaks what the hub's proxy would see anyway: the content is sealed and both
        # hashes and the GCM tag are checked. Where http may be fetched is the proxy's rule.
        raise MediaError("the file's source must be an https (or http) URL")
    key = _unb64(encrypted.findtext(_q(ESFS, "key")), "the key")
    iv = _unb64(encrypted.findtext(_q(ESFS, "iv")), "the IV")
    if len(key) != 32 or len(iv) not in (12, 16):
        raise MediaError("the key must be 32 bytes and the IV 12 or 16")
    cipher_hash = encrypted.find(_q(HASHES, "hash"))
    plain_hash = meta.find(_q(HASHES, "hash"))
    if cipher_hash is None or plain_hash is None:
        raise MediaError("both SHA-256 hashes are required")
    if "sha-256" not in (cipher_hash.get("algo"), plain_hash.get("algo")):
        raise MediaError("the hashes must be SHA-256")
    size = _int(meta.find(_q(METADATA, "size")))
    if size is None:
        raise MediaError("the file's size is required")
    thumbnail = thumbnail_type = None
    thumb = meta.find(_q(THUMBS, "thumbnail"))
    if thumb is not None:
        head, _, data = thumb.get("uri", "").partition(",")
        if head.startswith("data:") and head.endswith(";base64"):
            thumbnail = _unb64(data, "the thumbnail")[:MAX_THUMBNAIL_BYTES]
            thumbnail_type = head[5:-7] or None
    name = os.path.basename(meta.findtext(_q(METADATA, "name")) or "file")
    return FileInfo(
        kind=media_tokens.parse_kind(content),
        name=name or "file",
        media_type=meta.findtext(_q(METADATA, "media-type")) or "application/octet-stream",
        size=size,
        url=url,
        key=key,
        iv=iv,
        sha256=_unb64(plain_hash.text, "the plaintext hash"),
        ciphertext_sha256=_unb64(cipher_hash.text, "the ciphertext hash"),
        caption=meta.findtext(_q(METADATA, "desc")),
        width=_int(meta.find(_q(METADATA, "width"))),
        height=_int(meta.find(_q(METADATA, "height"))),
        duration_ms=_int(meta.find(_q(METADATA, "length"))),
        thumbnail=thumbnail,
        thumbnail_type=thumbnail_type,
    )
