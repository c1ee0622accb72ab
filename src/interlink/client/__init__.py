"""The Interlink SDK: an async client for both sides of the interop boundary.

``InterlinkClient`` connects through slixmpp, encrypts every message with the Signal Protocol as
OMEMO (python-omemo: ``urn:xmpp:omemo:2`` with Stanza Content Encryption by default, the legacy
``eu.siacs.conversations.axolotl`` towards peers that only have it) and yields typed events.
"""

from __future__ import annotations

from interlink.client.client import InterlinkClient
from interlink.client.consent import ConsentError, MessageRequest
from interlink.client.errors import ClientError
from interlink.client.events import (
    ChatState,
    ClientEvent,
    DecryptionFailed,
    DeviceListChanged,
    Displayed,
    EncryptionProblem,
    FileMessage,
    InteropMarker,
    KeyChanged,
    MessageRefused,
    Receipt,
    TextMessage,
)
from interlink.client.media import FileInfo, MediaError
from interlink.client.media_transfer import KitUploader

__all__ = [
    "ChatState",
    "ClientError",
    "ClientEvent",
    "ConsentError",
    "DecryptionFailed",
    "DeviceListChanged",
    "Displayed",
    "EncryptionProblem",
    "FileInfo",
    "FileMessage",
    "InterlinkClient",
    "InteropMarker",
    "KeyChanged",
    "KitUploader",
    "MediaError",
    "MessageRefused",
    "MessageRequest",
    "Receipt",
    "TextMessage",
]
