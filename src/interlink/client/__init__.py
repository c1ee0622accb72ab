"""The Interlink SDK: an async client for both sides of the interop boundary.

``InterlinkClient`` connects through slixmpp, encrypts every message with the Signal Protocol as
OMEMO (python-omemo: ``urn:xmpp:omemo:2`` with Stanza Content Encryption by default, the legacy
``eu.siacs.conversations.axolotl`` towards peers that only have it) and yields typed events.
"""

from __future__ import annotations

from interlink.client.client import InterlinkClient
from interlink.client.consent import ConsentError, MessageRequest
from interlink.client.events import (
    ChatState,
    ClientEvent,
    DecryptionFailed,
    DeviceListChanged,
    Displayed,
    EncryptionProblem,
    InteropMarker,
    KeyChanged,
    MessageRefused,
    Receipt,
    TextMessage,
)

__all__ = [
    "ChatState",
    "ClientEvent",
    "ConsentError",
    "DecryptionFailed",
    "DeviceListChanged",
    "Displayed",
    "EncryptionProblem",
    "InterlinkClient",
    "InteropMarker",
    "KeyChanged",
    "MessageRefused",
    "MessageRequest",
    "Receipt",
    "TextMessage",
]
