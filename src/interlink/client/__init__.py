"""The Interlink SDK: an async client for both sides of the interop boundary.

``InterlinkClient`` connects through slixmpp, encrypts every message with the Signal Protocol as
OMEMO (python-omemo: ``urn:xmpp:omemo:2`` with Stanza Content Encryption by default, the legacy
``eu.siacs.conversations.axolotl`` towards peers that only have it) and yields typed events.

Every error the SDK raises on purpose is a :class:`ClientError` (see
:mod:`interlink.client.errors` for the hierarchy).
"""

from __future__ import annotations

from interlink.client.archive import Archived
from interlink.client.client import InterlinkClient
from interlink.client.consent import ConsentError, MessageRequest
from interlink.client.enlist import EnlistmentFailed
from interlink.client.errors import ClientError, NotConnected
from interlink.client.events import (
    ChatState,
    ClientEvent,
    ConnectionEnded,
    DecryptionFailed,
    DeviceListChanged,
    Disconnected,
    Displayed,
    EncryptionProblem,
    FileMessage,
    GroupEvent,
    GroupInvitation,
    GroupJoined,
    GroupLeft,
    GroupMemberAdded,
    GroupMemberRemoved,
    GroupMessage,
    GroupSubject,
    InteropMarker,
    KeyChanged,
    MessageRefused,
    NewDevice,
    Receipt,
    Reconnected,
    Sent,
    TextMessage,
)
from interlink.client.lifecycle import Backoff, Keepalive
from interlink.client.media import FileInfo, MediaError
from interlink.client.media_transfer import KitUploader
from interlink.client.omemo2_parse import MalformedEncrypted
from interlink.client.outbox import OutboxFull
from interlink.client.room_archive import RoomArchived
from interlink.client.sce import SceError

__all__ = [
    "Archived",
    "Backoff",
    "ChatState",
    "ClientError",
    "ClientEvent",
    "ConnectionEnded",
    "ConsentError",
    "DecryptionFailed",
    "DeviceListChanged",
    "Disconnected",
    "Displayed",
    "EncryptionProblem",
    "EnlistmentFailed",
    "FileInfo",
    "FileMessage",
    "GroupEvent",
    "GroupInvitation",
    "GroupJoined",
    "GroupLeft",
    "GroupMemberAdded",
    "GroupMemberRemoved",
    "GroupMessage",
    "GroupSubject",
    "InterlinkClient",
    "InteropMarker",
    "Keepalive",
    "KeyChanged",
    "KitUploader",
    "MalformedEncrypted",
    "MediaError",
    "MessageRefused",
    "MessageRequest",
    "NewDevice",
    "NotConnected",
    "OutboxFull",
    "Receipt",
    "Reconnected",
    "RoomArchived",
    "SceError",
    "Sent",
    "TextMessage",
]
