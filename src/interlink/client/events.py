"""Typed events an application receives from :class:`~interlink.client.InterlinkClient`."""

from __future__ import annotations

from dataclasses import dataclass

from interlink.client.media import FileInfo
from interlink.xmpp.ext.interop import InteropMarker as InteropMarker  # the hub's, on events


@dataclass(frozen=True, slots=True)
class TextMessage:
    """A decrypted text message. ``flagged`` means the sender's key changed and was not verified."""

    sender: str  # full JID
    text: str
    message_id: str | None
    device_id: int
    namespace: str  # the OMEMO version it came with
    flagged: bool = False
    outgoing: bool = False  # a copy of what this account sent from another device (carbons)
    to: str | None = None  # for outgoing copies: the recipient
    interop: InteropMarker | None = None  # set when the sender is a third-party user
    # when it was sent, Unix seconds: the sender's time (SCE affix, OMEMO 2), else the time the
    # hub stored it for this device (XEP-0203 delay, for messages that waited); None when live
    sent_at: float | None = None
    from_archive: bool = False  # read from the hub's archive (InterlinkClient.history), not live


@dataclass(frozen=True, slots=True)
class FileMessage:
    """A file the sender shared (image, voice note, video or file): its metadata, already
    decrypted; ``InterlinkClient.download`` fetches, verifies and decrypts the file itself."""

    sender: str
    file: FileInfo
    message_id: str | None
    device_id: int
    flagged: bool = False
    outgoing: bool = False
    to: str | None = None
    interop: InteropMarker | None = None
    from_archive: bool = False  # read from the hub's archive (InterlinkClient.history), not live


@dataclass(frozen=True, slots=True)
class Receipt:
    """The peer's device received our message ``message_id`` (XEP-0184)."""

    sender: str
    message_id: str
    interop: InteropMarker | None = None


@dataclass(frozen=True, slots=True)
class Displayed:
    """The peer displayed our messages up to ``message_id`` (XEP-0333)."""

    sender: str
    message_id: str
    interop: InteropMarker | None = None


@dataclass(frozen=True, slots=True)
class ChatState:
    """The peer is ``active``, ``composing``, ``paused``, ``inactive`` or ``gone`` (XEP-0085)."""

    sender: str
    state: str
    interop: InteropMarker | None = None


@dataclass(frozen=True, slots=True)
class DecryptionFailed:
    """An encrypted message could not be read; the session state is unchanged."""

    sender: str
    message_id: str | None
    reason: str


@dataclass(frozen=True, slots=True)
class EncryptionProblem:
    """Sending to ``peer`` skipped a device (``device_id``) or failed entirely (``None``), e.g. its
    bundle was missing or its signature invalid."""

    peer: str
    device_id: int | None
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


@dataclass(frozen=True, slots=True)
class MessageRefused:
    """The hub (or the peer's server) refused a message this device sent: ``condition`` is the
    RFC 6120 stanza error condition (``service-unavailable`` for an unreachable address,
    ``policy-violation`` for a rule such as an unaccepted message request or a rate limit)."""

    peer: str
    message_id: str | None
    condition: str
    text: str


@dataclass(frozen=True, slots=True)
class GroupJoined:
    """This device is in the room ``room`` as ``nick``; ``members``: bare JID -> affiliation
    (owner, admin, member), the recipients of what it sends there."""

    room: str
    nick: str
    members: tuple[tuple[str, str], ...]
    created: bool = False  # the room was made by this join (XEP-0045 status 201)


@dataclass(frozen=True, slots=True)
class GroupMemberAdded:
    """``member`` (bare JID) is now an owner, admin or member of ``room``; from now on what this
    device sends there is encrypted to it too. ``interop``: its provider, for a third party."""

    room: str
    member: str
    affiliation: str
    interop: InteropMarker | None = None


@dataclass(frozen=True, slots=True)
class GroupMemberRemoved:
    """``member`` left the member list of ``room`` (removed, banned, declined or left): nothing
    this device sends there afterwards is encrypted to it. ``reason``: the XEP-0045 status
    (``kicked`` 307, ``banned`` 301, ``removed`` 321, ``left`` otherwise)."""

    room: str
    member: str
    reason: str


@dataclass(frozen=True, slots=True)
class Sent:
    """The hub acknowledged a message this device sent (XEP-0198 ``<a/>``): it is the hub's
    to deliver now. ``acknowledged`` is False when the stream offers no stream management:
    the message was written to the connection, which is all that can be known then."""

    peer: str
    message_id: str
    acknowledged: bool = True


@dataclass(frozen=True, slots=True)
class Disconnected:
    """The connection was lost; the client tries again in ``retry_in`` seconds. Messages sent
    meanwhile wait and leave after reconnecting."""

    reason: str
    retry_in: float


@dataclass(frozen=True, slots=True)
class Reconnected:
    """Online again: the old session resumed (XEP-0198; nothing was lost) or a new one began
    (what the hub had not acknowledged was sent again)."""

    resumed: bool


@dataclass(frozen=True, slots=True)
class ConnectionEnded:
    """Terminal: the hub will not have this account back (provider suspended, account removed,
    login refused, replaced by another session), or the attempts ran out. No retry follows."""

    reason: str


@dataclass(frozen=True, slots=True)
class NewDevice:
    """A known contact (or this account) has a device not seen before, with its own identity key;
    trusted on first use like the contact's first devices. Reported once per device."""

    peer: str  # bare JID
    device_id: int
    fingerprint: str


@dataclass(frozen=True, slots=True)
class GroupSubject:
    room: str
    subject: str
    by: str  # the nick that set it ("" for the room)


@dataclass(frozen=True, slots=True)
class GroupMessage:
    """A decrypted message in ``room`` from ``sender`` (its real bare JID) as ``nick``."""

    room: str
    nick: str
    sender: str
    text: str
    message_id: str | None
    device_id: int
    flagged: bool = False
    interop: InteropMarker | None = None  # set when the sender is a third-party user
    sent_at: float | None = None  # the sender's time (SCE affix, OMEMO 2 only), Unix seconds


@dataclass(frozen=True, slots=True)
class GroupInvitation:
    """An invitation to ``room`` from ``inviter`` (XEP-0045 mediated, or XEP-0249 direct).
    ``interop.request`` is set when it comes from a third party not accepted yet: a message
    request (accept by joining, decline, block or report)."""

    room: str
    inviter: str
    reason: str
    interop: InteropMarker | None = None


@dataclass(frozen=True, slots=True)
class GroupLeft:
    """This device is no longer in ``room`` (left, removed, banned, or the room was destroyed);
    ``reason`` as for :class:`GroupMemberRemoved` (``destroyed`` too)."""

    room: str
    reason: str


GroupEvent = (
    GroupJoined
    | GroupMemberAdded
    | GroupMemberRemoved
    | GroupSubject
    | GroupMessage
    | GroupInvitation
    | GroupLeft
)

ClientEvent = (
    TextMessage
    | FileMessage
    | MessageRefused
    | Receipt
    | Displayed
    | ChatState
    | DecryptionFailed
    | EncryptionProblem
    | KeyChanged
    | DeviceListChanged
    | GroupEvent
    | NewDevice
    | Sent
    | Disconnected
    | Reconnected
    | ConnectionEnded
)
