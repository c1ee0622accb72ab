"""Typed events an application receives from :class:`~interlink.client.InterlinkClient`."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class TextMessage:
    """A decrypted text message. ``flagged`` means the sender's key changed and was not verified."""

    sender: str  # full JID
    text: str
    message_id: str | None
    device_id: int
    namespace: str  # the OMEMO version it came with
    flagged: bool = False


@dataclass(frozen=True, slots=True)
class DecryptionFailed:
    """An encrypted message could not be read; the session state is unchanged."""

    sender: str
    message_id: str | None
    reason: str


@dataclass(frozen=True, slots=True)
class KeyChanged:
    """A known contact shows an identity key not seen before."""

    peer: str  # bare JID
    device_id: int
    fingerprint: str


@dataclass(frozen=True, slots=True)
class DeviceListChanged:
    peer: str
    namespace: str
    device_ids: tuple[int, ...]


ClientEvent = TextMessage | DecryptionFailed | KeyChanged | DeviceListChanged
