"""Reading a room's message archive (XEP-0313 §5.1.2, the room's own address; paged with
XEP-0059): what was said in a group while this device was away.

The hub keeps one archive per room (the copy its occupants got, ``from`` the sender's room
JID) and, for a reader who may see members' addresses, adds the sender's bare JID in
``<x xmlns='…muc#user'><item jid/></x>``: what OMEMO needs to decrypt, even for a member who
has left. So reading does not need the room to be entered in this session.

Each message is decrypted once, as in :mod:`interlink.client.archive`: it is recorded as
handled under the room's stanza id (``room:<room>:<archive id>``), in the same transaction as
its ratchet update, and skipped on the next reading. A message this device decrypted live is
recognised by the replay memory before python-omemo sees it (its key material was recorded
then): it is *seen*, not a failure, and no ratchet moves for it. A message this device sent
itself is not encrypted for it (``written_by``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Protocol
from xml.etree.ElementTree import Element

import slixmpp

from interlink.client import sce
from interlink.client.archive import MAX_PAGE, ArchiveReader, written_by
from interlink.client.crypto import Decrypted, Undecryptable
from interlink.client.durable import CryptoGate
from interlink.client.events import ClientEvent, DecryptionFailed, GroupMessage
from interlink.client.omemo_session import LEGACY, OMEMO2, REPLAYED, holders_of_keys_for
from interlink.xmpp.ext import mam, muc

ROOM_KEY = "room:"  # the prefix of the handled-message keys from rooms' stanza ids


@dataclass(frozen=True, slots=True)
class RoomArchived:
    """One message of a room's archive. ``sender``: the member's bare JID (None when the room
    did not say); ``events``: what decrypting it now gave (a :class:`GroupMessage` or a
    :class:`DecryptionFailed`), empty when this device had read or sent it already (``seen``)
    or it carried nothing for the user."""

    room: str
    archive_id: str
    archived_at: float | None
    nick: str
    sender: str | None
    message_id: str | None
    seen: bool
    events: tuple[ClientEvent, ...] = ()


class Decrypting(Protocol):
    """What reading needs of this connection's OMEMO (:class:`DeviceCrypto`)."""

    @property
    def gate(self) -> CryptoGate: ...

    @property
    def device_id(self) -> int: ...

    async def decrypt(
        self, element: Element, sender: str, *, also: Iterable[str] = ()
    ) -> Decrypted | Undecryptable | None: ...


class RoomArchiveReader:
    """Pages rooms' archives (see the module docstring). Ports: ``pages`` the own archive's
    reader (its query paging), ``crypto()`` this connection's OMEMO (raises
    :class:`NotConnected` before ``connect()``), ``handled``/``note_handled`` the record of
    handled messages, ``commit()`` makes the crypto state durable."""

    def __init__(
        self,
        *,
        own: str,
        legacy: bool,
        pages: ArchiveReader,
        crypto: Callable[[], Decrypting],
        handled: Callable[[list[str]], Awaitable[bool]],
        note_handled: Callable[[list[str]], Awaitable[None]],
        commit: Callable[[], None],
    ) -> None:
        self._own = own
        self._legacy = legacy
        self._pages = pages
        self._crypto = crypto
        self._handled = handled
        self._note_handled = note_handled
        self._commit = commit
        self._lock = asyncio.Lock()

    async def read(
        self, room: str, *, after_id: str | None = None, limit: int = 500, page_size: int = 50
    ) -> AsyncIterator[RoomArchived]:
        """``room``'s archived messages after ``after_id`` (from the oldest without), oldest
        first, at most ``limit``, asked ``page_size`` at a time.

        Raises:
            ValueError: a ``limit`` below 1 or a ``page_size`` outside 1..:data:`MAX_PAGE`.
            ClientError: the room refused the query (``forbidden`` for a non-member,
                ``item-not-found`` for an unknown ``after_id``) or did not answer in time.
            NotConnected: before ``connect()``.
        """
        if limit < 1:
            raise ValueError("limit must be at least 1")
        if not 1 <= page_size <= MAX_PAGE:
            raise ValueError(f"page_size must be between 1 and {MAX_PAGE}")
        room = str(slixmpp.JID(room).bare)
        async with self._lock:
            given = 0
            after = after_id
            while given < limit:
                size = min(page_size, limit - given)
                results, complete, last = await self._pages.page(None, after, size, archive=room)
                for result in results[: limit - given]:
                    yield await self._one(room, result)
                    given += 1
                if complete or last is None or not results:
                    return
                after = last

    async def _one(self, room: str, result: mam.Result) -> RoomArchived:
        message = result.message
        frm = slixmpp.JID(message.get("from", ""))
        nick = frm.resource
        item = message.find(f"{muc.USER_X}/{muc.ITEM}")
        jid = None if item is None else item.get("jid")
        sender = str(slixmpp.JID(jid).bare) if jid else None
        message_id = message.get("id") or None
        base = RoomArchived(
            room, result.archive_id, result.stored_at, nick, sender, message_id, True
        )
        crypto = self._crypto()
        if str(frm.bare) != room or sender is None:
            return base  # not one of its members' messages, or the room hides who sent it
        if written_by(message, crypto.device_id):
            # this device's own (whatever address the room shows it by): not encrypted for it
            return base
        element = message.find(f"{{{OMEMO2}}}encrypted")
        if element is None and self._legacy:
            element = message.find(f"{{{LEGACY}}}encrypted")
        if element is None:
            return base  # nothing encrypted: a subject change, or a plain message
        keys = [f"{ROOM_KEY}{room}:{result.archive_id}"]
        async with crypto.gate.operation():
            if await self._handled(keys):
                return base
            # The room shows this account by its alias there (docs/protocol.md §17), which an
            # OMEMO 2 sender names as the holder of this device's keys; after a restart it is
            # not known until the room is entered again, so it is read off the keys themselves.
            opened = await crypto.decrypt(
                element, sender, also=holders_of_keys_for(element, crypto.device_id)
            )
            await self._note_handled(keys)
        self._commit()  # what is handed out is durable: the ratchets, the handled record
        if isinstance(opened, Undecryptable):
            if opened.reason == REPLAYED:
                return base  # decrypted live before: its key material is in the replay memory
            failed = DecryptionFailed(str(frm), message_id, opened.reason)
            return dataclasses.replace(base, seen=False, events=(failed,))
        event = None if opened is None else _event(room, nick, sender, message_id, opened, frm)
        return dataclasses.replace(base, seen=False, events=() if event is None else (event,))


def _event(
    room: str,
    nick: str,
    sender: str,
    message_id: str | None,
    opened: Decrypted,
    frm: slixmpp.JID,
) -> ClientEvent | None:
    """The event a decrypted room message gives, as the live path opens it (client/groups.py);
    None for one without text."""
    if opened.namespace != OMEMO2:
        text = opened.plaintext.decode("utf-8", errors="replace")
        return GroupMessage(room, nick, sender, text, message_id, opened.device_id, opened.flagged)
    try:
        envelope = sce.open_envelope(
            opened.plaintext, sender=sender, recipients={room}, now=time.time()
        )
    except sce.SceError as exc:
        return DecryptionFailed(str(frm), message_id, str(exc))
    if envelope.body is None:
        return None
    return GroupMessage(
        room,
        nick,
        sender,
        envelope.body,
        message_id,
        opened.device_id,
        opened.flagged,
        None,
        envelope.timestamp,
    )
