"""Errors of the media store, each with its HTTP status and problem type (RFC 9457) and, for the
ones a slot request can meet, its XEP-0363 §5 stanza error; and the media proxy's refusals.

The HTTP layer's one handler turns any of them into problem+json with ``status`` and
``urn:interlink:problem:{kind}``; the XMPP upload service turns a :class:`MediaError` into a
stanza error with ``condition``. ``detail`` is written for the person whose client shows it.
"""

from __future__ import annotations

from typing import ClassVar

from interlink.errors import HttpProblem, StanzaErrorCondition


class MediaError(HttpProblem):
    """Root of the media store's errors."""

    status = 400
    kind = "media-error"
    title = "media request refused"
    condition: ClassVar[StanzaErrorCondition] = StanzaErrorCondition.BAD_REQUEST


class BadSlotRequest(MediaError):
    """The filename or size of a slot request is not acceptable as such."""

    kind = "bad-slot-request"


class UploadNotAllowed(MediaError):
    """This requester may not upload here at all."""

    status = 403
    kind = "upload-not-allowed"
    condition = StanzaErrorCondition.NOT_ALLOWED


class FileTooLarge(MediaError):
    """The declared size is above the per-file limit (XEP-0363 §5 ``file-too-large``)."""

    status = 413
    kind = "file-too-large"
    condition = StanzaErrorCondition.NOT_ACCEPTABLE

    def __init__(self, size: int, max_size: int) -> None:
        super().__init__(f"File too large: {size} bytes; the maximum file size is {max_size} bytes")
        self.max_size = max_size


class ContentTypeRefused(MediaError):
    """The declared content type is malformed or refused by the content-type policy."""

    status = 415
    kind = "content-type-refused"
    condition = StanzaErrorCondition.NOT_ACCEPTABLE


class QuotaExceeded(MediaError):
    """The owner's stored and reserved bytes plus this file would pass the quota."""

    status = 413
    kind = "quota-exceeded"
    condition = StanzaErrorCondition.RESOURCE_CONSTRAINT


class TooManySlots(MediaError):
    """The owner has as many unused slots open as allowed; they expire after a few minutes."""

    status = 429
    kind = "too-many-slots"
    condition = StanzaErrorCondition.RESOURCE_CONSTRAINT


class UnknownMedia(MediaError):
    """No such slot or file (never existed, or cleaned up), or the URL's filename differs."""

    status = 404
    kind = "not-found"
    condition = StanzaErrorCondition.ITEM_NOT_FOUND


class SlotExpired(MediaError):
    """The slot's time for the PUT has passed; request a new slot."""

    status = 410
    kind = "slot-expired"


class MediaExpired(MediaError):
    """The file's retention has passed; it is gone (or about to be)."""

    status = 410
    kind = "media-expired"


class BadToken(MediaError):
    """The PUT's ``Authorization`` header is missing or does not carry the slot's token."""

    status = 403
    kind = "bad-token"


class SlotUsed(MediaError):
    """The slot has been uploaded to already, or an upload to it is in progress."""

    status = 409
    kind = "slot-used"


class SizeMismatch(MediaError):
    """The body is shorter than the size declared for the slot (or its Content-Length differs)."""

    kind = "size-mismatch"


class BodyTooLong(SizeMismatch):
    """The body is longer than the size declared for the slot."""

    status = 413


class ContentTypeMismatch(MediaError):
    """The PUT's Content-Type differs from the one declared for the slot."""

    status = 415
    kind = "content-type-mismatch"


class UploadTooSlow(MediaError):
    """An upload took longer than the store's per-upload time limit."""

    status = 408
    kind = "upload-timeout"


class MediaStorageFailure(MediaError):
    """The file could not be written (disk full, I/O error); nothing was recorded."""

    status = 507
    kind = "storage-failure"
    condition = StanzaErrorCondition.INTERNAL_SERVER_ERROR


class MediaProxyRefusal(HttpProblem):
    """Parent of the media proxy's refusals (``GET /v1/media-proxy``): never cached, and a 401
    names the bearer scheme to use."""

    title = "media proxy refused"

    def __init__(self, status: int, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.kind = kind

    def headers(self) -> dict[str, str]:
        headers = {"Cache-Control": "no-store"}
        if self.status == 401:
            headers["WWW-Authenticate"] = 'Bearer realm="media-proxy"'
        return headers
