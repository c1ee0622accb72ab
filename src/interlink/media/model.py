"""The media store's limits and slots. Pure data, no I/O; the records kept and their repository
are in :mod:`interlink.storage.media`.

A *slot* is reserved by a slot request (XEP-0363 §4) and holds its declared size against the
owner's quota from that moment. Within ``put_expires_at`` its owner's client PUTs exactly that
many bytes with the slot's token; the file is then *stored* until ``expires_at`` (the retention),
readable by anyone holding its GET URL. Expired slots and files are deleted by the store's
clean-up, which releases their quota; the quota counts neither of them any more from the moment
they expire, cleaned up or not.

Two unguessable ids per record: ``slot_id`` in the PUT URL and ``file_id`` in the GET URL, so the
URL shared with recipients names nothing that can be written to. Only a SHA-256 of the PUT token
is kept: the database alone does not let anyone upload.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

from interlink.storage.media import MediaRecord

DEFAULT_CONTENT_TYPE = "application/octet-stream"
MIB = 1024 * 1024

# 100 MiB of media plus what encryption adds (the 16-byte GCM tag), with room to spare: a
# 100 MiB file must fit once sealed.
MAX_MEDIA_BYTES = 100 * MIB + 4096


@dataclass(frozen=True, slots=True)
class MediaLimits:
    max_file_size: int = MAX_MEDIA_BYTES  # per file (advertised as XEP-0363 max-file-size)
    quota_bytes: int = 1024 * MIB  # per owner: stored files plus open slots
    max_open_slots: int = 16  # per owner: slots requested and not yet uploaded to
    put_expiry: float = 300.0  # seconds from the slot request to the start of the PUT
    retention: float = 30 * 86400.0  # seconds a stored file is kept
    upload_time_limit: float = 3600.0  # seconds one PUT may take once started
    max_filename_bytes: int = 255  # UTF-8

    def __post_init__(self) -> None:
        for name in ("max_file_size", "quota_bytes", "max_open_slots", "max_filename_bytes"):
            if getattr(self, name) < 1:
                raise ValueError(f"media {name} must be at least 1")
        for name in ("put_expiry", "retention", "upload_time_limit"):
            if getattr(self, name) <= 0:
                raise ValueError(f"media {name} must be positive")


@dataclass(frozen=True, slots=True)
class Slot:
    """A granted slot, as the requester is told of it. ``token`` exists only here."""

    record: MediaRecord
    token: str


@dataclass(frozen=True, slots=True)
class SlotUrls:
    put_url: str
    put_headers: dict[str, str]
    get_url: str


def slot_urls(base_url: str, slot: Slot) -> SlotUrls:
    """The XEP-0363 PUT and GET URLs of ``slot`` under ``base_url`` (``https://host:port``),
    served by :func:`interlink.net.media_api.media_router`."""
    base = base_url.rstrip("/")
    name = quote(slot.record.filename, safe="")
    return SlotUrls(
        put_url=f"{base}/media/{slot.record.slot_id}/{name}",
        put_headers={"Authorization": f"Bearer {slot.token}"},
        get_url=f"{base}/media/{slot.record.file_id}/{name}",
    )
