"""HTTP side of the media store (XEP-0363 §4 PUT and GET), for the hub and the provider kit.

- ``PUT /media/{slot_id}/{filename}`` with ``Authorization: Bearer <token>`` (the header the slot
  names) and exactly the slot's size: 201, the body streamed to disk with bounded memory. The
  token is accepted only in the header, never in the query string, which access logs keep.
- ``GET`` and ``HEAD /media/{file_id}/{filename}``: the file, streamed; a single
  ``Range: bytes=…`` is honoured (206; 416 when unsatisfiable).

Responses never let a browser render a file: ``Content-Disposition: attachment``,
``X-Content-Type-Options: nosniff``, a restrictive ``Content-Security-Policy``, and
``Cache-Control: private``. Errors are the :class:`~interlink.media.errors.MediaError` raised,
which the app's one handler (:mod:`interlink.net.problems`) turns into RFC 9457 problem+json.
"""

from __future__ import annotations

import re
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse

from interlink.media.errors import MediaError
from interlink.media.store import MediaStore
from interlink.storage.media import MediaRecord

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def _bearer(value: str | None) -> str | None:
    scheme, _, token = (value or "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


def _content_length(value: str | None) -> int | None:
    if value is None:
        return None
    return int(value) if value.isdigit() else -1


def _file_headers(record: MediaRecord) -> dict[str, str]:
    ascii_name = "".join(
        c if 32 <= ord(c) < 127 and c not in '"\\' else "_" for c in record.filename
    )
    return {
        "Content-Disposition": (
            f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''"
            + quote(record.filename, safe="")
        ),
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'; sandbox",
        "Cache-Control": "private, max-age=86400",
        "Accept-Ranges": "bytes",
    }


def _byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """(start, length) of a single satisfiable range, ``None`` for the whole file; raises
    ``ValueError`` for an unsatisfiable one. Anything not a single ``bytes=`` range is ignored
    (RFC 9110 §14.2 lets a server ignore Range)."""
    if header is None:
        return None
    match = _RANGE.match(header.strip())
    if match is None or match.group(1) == match.group(2) == "":
        return None
    first, last = match.group(1), match.group(2)
    if first == "":
        suffix = int(last)
        if suffix == 0:
            raise ValueError("empty suffix range")
        start = max(size - suffix, 0)
        return start, size - start
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size or end < start:
        raise ValueError("range outside the file")
    return start, end - start + 1


def media_router(store: MediaStore) -> APIRouter:
    router = APIRouter(tags=["media"])

    @router.put("/media/{slot_id}/{filename}", status_code=201)
    async def put_media(slot_id: str, filename: str, request: Request) -> Response:
        length = _content_length(request.headers.get("content-length"))
        if length is not None and length < 0:
            raise MediaError("Content-Length is not a number")
        await store.upload(
            slot_id,
            filename,
            _bearer(request.headers.get("authorization")),
            request.stream(),
            content_type=request.headers.get("content-type"),
            content_length=length,
        )
        return Response(status_code=201)

    @router.api_route("/media/{file_id}/{filename}", methods=["GET", "HEAD"])
    async def get_media(file_id: str, filename: str, request: Request) -> Response:
        if request.method == "HEAD":
            record = await store.find_file(file_id, filename)
            headers = _file_headers(record)
            headers["Content-Length"] = str(record.size)
            return Response(headers=headers, media_type=record.content_type)
        download = await store.open_download(file_id, filename)
        record = download.record
        headers = _file_headers(record)
        try:
            span = _byte_range(request.headers.get("range"), record.size)
        except ValueError:
            download.close()
            headers["Content-Range"] = f"bytes */{record.size}"
            return Response(status_code=416, headers=headers)
        if span is None:
            headers["Content-Length"] = str(record.size)
            return StreamingResponse(
                download.chunks(), headers=headers, media_type=record.content_type
            )
        start, length = span
        headers["Content-Length"] = str(length)
        headers["Content-Range"] = f"bytes {start}-{start + length - 1}/{record.size}"
        return StreamingResponse(
            download.chunks(start, length),
            status_code=206,
            headers=headers,
            media_type=record.content_type,
        )

    return router
