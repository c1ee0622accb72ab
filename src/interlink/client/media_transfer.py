"""Moving encrypted media: upload slots on the sender's own side (the hub's XEP-0363 service for
gatekeeper users, the provider's media host for third-party users), streamed uploads and
downloads with progress callbacks, and the hub's media proxy, through which gatekeeper users
fetch third-party media."""

from __future__ import annotations

import asyncio
import secrets
import ssl
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlencode
from xml.etree.ElementTree import Element

import httpx
import slixmpp
from slixmpp.exceptions import IqError, IqTimeout

from interlink.client.errors import ClientError
from interlink.client.events import FileMessage
from interlink.client.media import (
    CHUNK,
    KINDS,
    TAG,
    FileInfo,
    MediaError,
    aesgcm_url,
    describe,
    file_elements,
    open_file,
    seal_file,
)
from interlink.xmpp import ns
from interlink.xmpp.addressing import interop_provider
from interlink.xmpp.ext import http_upload, media_tokens
from interlink.xmpp.ext.http_upload import Slot as Slot  # what an Uploader returns

Progress = Callable[[int, int], None]  # (bytes done, bytes in all)
MAX_DOWNLOAD = 100 * 1024 * 1024 + 4096  # what the hub and its proxy allow by default


class Uploader(Protocol):
    async def slot(self, name: str, size: int, content_type: str) -> Slot: ...


def tls(ca_file: Path | None) -> ssl.SSLContext | bool:
    return True if ca_file is None else ssl.create_default_context(cafile=str(ca_file))


def _iq_error(exc: IqError) -> MediaError:
    error = exc.iq["error"]
    text = error["text"] or error["condition"]
    return MediaError(f"the hub refused: {text}")


class XmppUploader:
    """Slots from an XEP-0363 service (the hub, for gatekeeper users)."""

    def __init__(self, xmpp: slixmpp.ClientXMPP, service: str, wait: float) -> None:
        self._xmpp = xmpp
        self._service = service
        self._wait = wait

    async def slot(self, name: str, size: int, content_type: str) -> Slot:
        iq: Any = self._xmpp.make_iq(ito=self._service, itype="get")
        iq.xml.append(
            http_upload.request_element(http_upload.SlotRequest(name, size, content_type))
        )
        try:
            result = await iq.send(timeout=self._wait)
        except IqError as exc:
            raise _iq_error(exc) from None
        except IqTimeout:
            raise MediaError("the upload service did not answer") from None
        slot = http_upload.parse_slot(result.xml)
        if slot is None:
            raise MediaError("the upload service sent no slot")
        return slot


class KitUploader:
    """Slots from a provider kit's media host (third-party users), with the kit's own login."""

    def __init__(
        self, kit_url: str, username: str, password: str, *, ca_file: Path | None = None
    ) -> None:
        self._url = kit_url.rstrip("/")
        self._login = {"username": username, "password": password}
        self._verify = tls(ca_file)

    async def slot(self, name: str, size: int, content_type: str) -> Slot:
        body = {**self._login, "filename": name, "size": size, "content_type": content_type}
        async with httpx.AsyncClient(verify=self._verify, timeout=10) as http:
            answer = await http.post(f"{self._url}/v1/media/slots", json=body)
        if answer.status_code not in (200, 201):
            detail = answer.json().get("detail", answer.text) if answer.content else ""
            raise MediaError(f"the media host refused ({answer.status_code}): {detail}")
        data = answer.json()
        return Slot(data["put_url"], dict(data.get("put_headers", {})), data["get_url"])


async def _chunks(path: Path, total: int, progress: Progress | None) -> AsyncIterator[bytes]:
    done = 0
    with path.open("rb") as file:
        while chunk := file.read(CHUNK):
            done += len(chunk)
            yield chunk
            if progress is not None:
                progress(done, total)


async def upload(
    path: Path, size: int, slot: Slot, *, verify: ssl.SSLContext | bool, progress: Progress | None
) -> None:
    """PUT the ``size`` bytes of ``path`` to ``slot``, streamed."""
    headers = {
        **slot.put_headers,
        "Content-Type": "application/octet-stream",
        "Content-Length": str(size),
    }
    async with httpx.AsyncClient(verify=verify, timeout=httpx.Timeout(30, read=120)) as http:
        answer = await http.put(
            slot.put_url, content=_chunks(path, size, progress), headers=headers
        )
    if answer.status_code not in (200, 201, 204):
        raise MediaError(f"upload refused ({answer.status_code}): {answer.text[:200]}")


async def download(
    url: str,
    dest: Path,
    *,
    headers: dict[str, str],
    verify: ssl.SSLContext | bool,
    max_bytes: int,
    progress: Progress | None,
) -> None:
    """Stream ``url`` into ``dest``; refuses more than ``max_bytes`` (the size announced)."""
    async with (
        httpx.AsyncClient(verify=verify, timeout=httpx.Timeout(30, read=120)) as http,
        http.stream("GET", url, headers=headers) as answer,
    ):
        if answer.status_code != 200:
            body = (await answer.aread())[:300].decode(errors="replace")
            raise MediaError(f"download refused ({answer.status_code}): {body}")
        try:
            total = int(answer.headers.get("content-length", max_bytes))
        except ValueError:
            raise MediaError("the download's Content-Length is not a number") from None
        if total > max_bytes:
            raise MediaError(f"the download is larger ({total} bytes) than announced")
        done = 0
        with dest.open("wb") as out:
            async for chunk in answer.aiter_bytes(CHUNK):
                done += len(chunk)
                if done > max_bytes:
                    raise MediaError("the download is larger than announced")
                out.write(chunk)
                if progress is not None:
                    progress(done, total)


async def proxy_token(xmpp: slixmpp.ClientXMPP, hub: str, wait: float) -> str:
    """A short-lived token for the hub's media proxy (``urn:interlink:media:0``)."""
    iq: Any = xmpp.make_iq(ito=hub, itype="get")
    iq.xml.append(media_tokens.token_request())
    try:
        result = await iq.send(timeout=wait)
    except IqError as exc:
        raise _iq_error(exc) from None
    except IqTimeout:
        raise MediaError("the hub did not answer the media token request") from None
    token = media_tokens.parse_token(result.xml)
    if token is None:
        raise MediaError("the hub sent no media token")
    return token


def _ours(domain: str, own_domain: str) -> bool:
    """This account's service domain, one under it (its rooms, its plug-and-play users), or
    (for a plug-and-play user) the service it is on: hosted by this account's hub."""
    return (
        domain == own_domain
        or domain.endswith("." + own_domain)
        or own_domain.endswith("." + domain)
    )


def proxied(hub_http: str, url: str, provider: str) -> str:
    return f"{hub_http.rstrip('/')}/v1/media-proxy?{urlencode({'url': url, 'provider': provider})}"


async def prepare(
    path: Path,
    kind: str,
    *,
    caption: str | None,
    media_type: str | None,
    duration: float | None,
    uploader: Uploader,
    work_dir: Path,
    verify: ssl.SSLContext | bool,
    progress: Progress | None,
) -> FileInfo:
    """Describe, seal and upload ``path``; returns what the message will say about it."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}")
    described = await asyncio.to_thread(
        describe, path, kind, media_type=media_type, duration=duration
    )
    await asyncio.to_thread(work_dir.mkdir, parents=True, exist_ok=True)
    sealed_path = work_dir / f"upload-{secrets.token_hex(8)}"
    try:
        sealed = await asyncio.to_thread(seal_file, path, sealed_path)
        slot = await uploader.slot(path.name, sealed.ciphertext_size, "application/octet-stream")
        await upload(sealed_path, sealed.ciphertext_size, slot, verify=verify, progress=progress)
    finally:
        await asyncio.to_thread(sealed_path.unlink, missing_ok=True)
    return FileInfo(
        kind=kind,
        name=path.name,
        media_type=described.media_type,
        size=sealed.size,
        url=slot.get_url,
        key=sealed.key,
        iv=sealed.iv,
        sha256=sealed.plaintext_sha256,
        ciphertext_sha256=sealed.ciphertext_sha256,
        caption=caption,
        width=described.width,
        height=described.height,
        duration_ms=described.duration_ms,
        thumbnail=described.thumbnail,
        thumbnail_type=described.thumbnail_type,
    )


async def fetch(
    info: FileInfo,
    dest_dir: Path,
    *,
    via_proxy: tuple[str, str, str] | None,
    verify: ssl.SSLContext | bool,
    progress: Progress | None,
    max_bytes: int = MAX_DOWNLOAD,
) -> Path:
    """Download, verify and decrypt ``info``'s file into ``dest_dir``; returns its path.
    ``via_proxy`` is (hub HTTP base URL, proxy token, the sender's provider id). A file whose
    announced size is over ``max_bytes`` is refused before anything is fetched."""
    if info.size + TAG > max_bytes:
        raise MediaError(f"the file is announced as {info.size} bytes, over {max_bytes}")
    await asyncio.to_thread(dest_dir.mkdir, parents=True, exist_ok=True)
    sealed_path = dest_dir / f".download-{secrets.token_hex(8)}"
    target = dest_dir / f"{secrets.token_hex(4)}-{info.name}"
    url, headers = info.url, {}
    if via_proxy is not None:
        hub_http, token, provider = via_proxy
        url = proxied(hub_http, info.url, provider)
        headers = {"Authorization": f"Bearer {token}"}
    try:
        await download(
            url,
            sealed_path,
            headers=headers,
            verify=verify,
            max_bytes=info.size + TAG,
            progress=progress,
        )
        await asyncio.to_thread(
            open_file,
            sealed_path,
            target,
            key=info.key,
            iv=info.iv,
            ciphertext_sha256=info.ciphertext_sha256,
            sha256=info.sha256,
        )
    finally:
        await asyncio.to_thread(sealed_path.unlink, missing_ok=True)
    return target


class SendContent(Protocol):
    """Seal content elements for ``to`` and send them end to end encrypted (``InterlinkClient``'s
    1:1 send path); ``legacy_text`` is what legacy OMEMO carries instead. Returns the message
    id."""

    async def __call__(
        self, to: str, content: list[Element], *, legacy_text: str | None, store: bool
    ) -> str: ...


class MediaTransfer:
    """``InterlinkClient``'s file calls. Built once per client with the ports it needs:
    ``stream()`` the connected slixmpp stream (raises :class:`NotConnected` before
    ``connect()``) and ``send`` the encrypted 1:1 send path; ``uploader`` where files go
    (default: the hub's XEP-0363 service), ``work_dir`` for sealed files on their way out,
    ``http_url`` the hub's media proxy for third parties' files."""

    def __init__(
        self,
        *,
        own: slixmpp.JID,
        timeout: float,
        stream: Callable[[], slixmpp.ClientXMPP],
        send: SendContent,
        uploader: Uploader | None,
        work_dir: Path,
        ca_file: Path | None,
        http_url: str | None,
    ) -> None:
        self._own = own
        self._timeout = timeout
        self._stream = stream
        self._send = send
        self._uploader = uploader
        self._work_dir = work_dir
        self._ca_file = ca_file
        self._http_url = http_url

    async def send_file(
        self,
        to: str,
        path: Path,
        *,
        kind: str = "file",
        caption: str | None = None,
        media_type: str | None = None,
        duration: float | None = None,
        progress: Progress | None = None,
    ) -> str:
        """Encrypt ``path`` (AES-256-GCM, fresh key and IV), upload the ciphertext to this side's
        store with ``progress(done, total)`` calls, and send its URL, key and hashes end to end
        encrypted. ``kind``: image, voice, video or file. Returns the message id.

        Raises:
            ValueError: ``kind`` is not one of those.
            NotConnected: before ``connect()``.
            MediaError: the file could not be read (or, for an image, decoded), the upload
                service refused a slot or did not answer, or the upload was refused.
            ClientError: the message could not be encrypted or sent (see ``send_text``).
            OSError: the file or the work directory could not be read or written.
            httpx.HTTPError: the upload got no answer.
        """
        xmpp = self._stream()
        uploader = self._uploader or XmppUploader(xmpp, self._own.domain, self._timeout)
        info = await prepare(
            path,
            kind,
            caption=caption,
            media_type=media_type,
            duration=duration,
            uploader=uploader,
            work_dir=self._work_dir,
            verify=tls(self._ca_file),
            progress=progress,
        )
        content = [
            *file_elements(info),
            Element(ns.qname(ns.RECEIPTS, "request")),
            Element(ns.qname(ns.CHAT_MARKERS, "markable")),
        ]
        legacy = aesgcm_url(info.url, info.key, info.iv)
        return await self._send(to, content, legacy_text=legacy, store=True)

    async def download(
        self, event: FileMessage, dest_dir: Path, *, progress: Progress | None = None
    ) -> Path:
        """Fetch ``event``'s file (through the hub's media proxy when a third-party user sent
        it to this gatekeeper user, plug-and-play or federated), check both SHA-256 hashes and
        the GCM tag, decrypt it into ``dest_dir``; returns the file's path.

        Raises:
            NotConnected: before ``connect()``.
            ClientError: the file is a third party's and no ``http_url`` (media proxy) was given,
                or a federated user's without the hub's marker naming its provider.
            MediaError: naming the failed check: the size announced is over the limit, the hub
                gave no proxy token, the download was refused or longer than announced, a hash
                or the GCM tag does not verify. Nothing is kept then.
            OSError: ``dest_dir`` could not be written.
            httpx.HTTPError: the download got no answer or broke off.
        """
        xmpp = self._stream()
        via = None
        own_domain = self._own.domain
        sender_domain = slixmpp.JID(event.sender).domain
        provider = interop_provider(sender_domain, own_domain)
        if provider is None and not event.outgoing and not _ours(sender_domain, own_domain):
            # a federated provider's user (issue 15): its provider is what the hub's marker
            # names (only the hub writes one); fetching its upload host directly would show it
            # this user's address
            if event.interop is None:
                raise ClientError("media from a federated user needs the hub's interop marker")
            provider = event.interop.provider
        if provider is not None and not event.outgoing:
            if self._http_url is None:
                raise ClientError("media from third parties needs http_url (the media proxy)")
            token = await proxy_token(xmpp, own_domain, self._timeout)
            via = (self._http_url, token, provider)
        return await fetch(
            event.file,
            dest_dir,
            via_proxy=via,
            verify=tls(self._ca_file),
            progress=progress,
        )
