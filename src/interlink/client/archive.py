"""Reading this account's own message archive (XEP-0313, ``urn:xmpp:mam:2``, paged with
XEP-0059): what arrived while this device was away, or went to another device of the account.

OMEMO messages can be decrypted once (their ratchet keys are used up), so this device records
every message it handled — decrypted live, decrypted from the archive, or sent itself — by its
keys (:func:`message_keys`: the archive's stanza id, XEP-0359, and sender with message id), in the
same transaction as the ratchet update. The archive reader decrypts only what is recorded under
none of its keys, through the same receive path as live messages (no receipts sent for them);
the live path skips a message whose archive stanza id is recorded (the offline copy of one read
from the archive already) and decrypts the rest, so that a replay with a known sender and id
is still refused as one (:class:`DecryptionFailed`), never dropped silently — except a legacy
copy of a message this device read (the legacy twin of an OMEMO 2 message,
:func:`~interlink.client.peer_caps.needs_twin`): its text was shown already.
"""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Protocol
from xml.etree.ElementTree import Element, SubElement

import slixmpp
from slixmpp.exceptions import IqError, IqTimeout
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher.base import MatcherBase

from interlink.client.errors import ClientError
from interlink.client.events import ClientEvent, FileMessage, TextMessage
from interlink.xmpp.ext import mam

MAX_PAGE = 250  # what one query asks for at most (the hub clamps to its own maximum)
HANDLED_KEEP = 400 * 86400.0  # seconds a handled message's record is kept (beyond retention)


ARCHIVE_KEY = "sid:"  # the prefix of the keys from the own archive's stanza ids


def message_keys(message: Element, own: str) -> list[str]:
    """The keys a message is recorded under: each stanza id this account's archive gave it
    (``by`` the own bare JID) and, with an id, its sender's bare JID with that id."""
    keys = [
        ARCHIVE_KEY + el.get("id", "")
        for el in message.findall(mam.STANZA_ID)
        if el.get("by") == own and el.get("id")
    ]
    message_id = message.get("id")
    if message_id:
        sender = slixmpp.JID(message.get("from") or own).bare
        keys.append(f"id:{sender}:{message_id}")
    return keys


_HEADERS = tuple(f"{{{n}}}encrypted/{{{n}}}header" for n in (mam.OMEMO, mam.OMEMO_LEGACY))


def written_by(message: Element, device_id: int) -> bool:
    """Whether the OMEMO header of ``message`` names ``device_id`` as its sending device."""
    for path in _HEADERS:
        header = message.find(path)
        if header is not None and header.get("sid") == str(device_id):
            return True
    return False


@dataclass(frozen=True, slots=True)
class Archived:
    """One message of the archive. ``events``: what decrypting it now gave (a
    :class:`TextMessage` or :class:`FileMessage` with ``from_archive`` set, or a
    :class:`DecryptionFailed`); empty when this device had handled it already (``seen``) or
    it carried nothing for the user."""

    archive_id: str
    archived_at: float | None  # when the hub stored it (Unix seconds)
    outgoing: bool  # sent by this account (from any of its devices)
    peer: str  # the other party's bare JID
    message_id: str | None
    seen: bool
    events: tuple[ClientEvent, ...] = ()


class Receiving(Protocol):
    """The receive path (:class:`~interlink.client.receive.Receiver`) built for the archive."""

    async def on_message(self, stanza: Any, *, outgoing: bool = False) -> None: ...


class _Results(MatcherBase):
    def __init__(self, query_id: str) -> None:
        super().__init__(query_id)
        self._query_id = query_id

    def match(self, xml: Any) -> bool:
        element = xml.xml
        return bool(element.tag == "{jabber:client}message") and (
            mam.parse_result(element, self._query_id) is not None
        )


class ArchiveReader:
    """Pages the own archive (see the module docstring). Ports: ``stream()`` the connection,
    ``receiver`` a receive path whose events go to :meth:`collect`, ``handled(keys)`` whether
    this device handled a message already, ``commit()`` makes the crypto state durable,
    ``device_id()`` this device's OMEMO id (what it wrote itself is not for it to decrypt)."""

    def __init__(
        self,
        *,
        own: str,
        timeout: float,
        stream: Callable[[], slixmpp.ClientXMPP],
        handled: Callable[[list[str]], Any],
        commit: Callable[[], None],
        device_id: Callable[[], int],
    ) -> None:
        self._own = own
        self._timeout = timeout
        self._stream = stream
        self._handled = handled
        self._commit = commit
        self._device_id = device_id
        self._receiver: Receiving | None = None
        self._collected: list[ClientEvent] = []
        self._lock = asyncio.Lock()  # one reading at a time: events are collected per message

    def attach(self, receiver: Receiving) -> None:
        self._receiver = receiver

    def collect(self, event: ClientEvent) -> None:
        """The archive's receive path hands its events here."""
        if isinstance(event, TextMessage | FileMessage):
            event = dataclasses.replace(event, from_archive=True)
        self._collected.append(event)

    async def read(
        self,
        peer: str | None = None,
        *,
        after_id: str | None = None,
        limit: int = 500,
        page_size: int = 50,
    ) -> AsyncIterator[Archived]:
        """The archived messages after ``after_id`` (from the oldest without), oldest first, at
        most ``limit``, asked ``page_size`` at a time; only those with ``peer`` if given.

        Raises:
            ValueError: a ``limit`` below 1 or a ``page_size`` outside 1..:data:`MAX_PAGE`.
            ClientError: the hub refused the query (e.g. ``item-not-found`` for an unknown
                ``after_id``) or did not answer in ``timeout`` seconds.
            NotConnected: before ``connect()``.
        """
        if limit < 1:
            raise ValueError("limit must be at least 1")
        if not 1 <= page_size <= MAX_PAGE:
            raise ValueError(f"page_size must be between 1 and {MAX_PAGE}")
        async with self._lock:
            given = 0
            after = after_id
            while given < limit:
                results, complete, last = await self.page(
                    peer, after, min(page_size, limit - given)
                )
                for result in results[: limit - given]:
                    yield await self._one(result)
                    given += 1
                if complete or last is None or not results:
                    return
                after = last

    async def page(
        self, peer: str | None, after: str | None, size: int, *, archive: str | None = None
    ) -> tuple[list[mam.Result], bool, str | None]:
        """One page of an archive: this account's, or (``archive``) a room's, whose results
        must come from the room's own address (§5.1.2). Returns (results, complete, last id).
        Raises as :meth:`read`."""
        xmpp = self._stream()
        query_id = secrets.token_hex(8)
        results: list[mam.Result] = []

        def on_result(stanza: Any) -> None:
            if archive is not None and stanza.xml.get("from") != archive:
                return  # another query's, or forged: a room's results come from the room
            result = mam.parse_result(stanza.xml, query_id)
            if result is not None:
                results.append(result)

        name = f"interlink-archive-{query_id}"
        xmpp.register_handler(Callback(name, _Results(query_id), on_result))
        try:
            iq: Any = xmpp.make_iq_set(ito=slixmpp.JID(archive) if archive else None)
            iq.xml.append(mam.query_element(query_id, with_=peer, after=after, max_items=size))
            answer = await iq.send(timeout=self._timeout)
        except IqError as exc:
            detail = f"{exc.condition} {exc.text}".strip()
            raise ClientError(f"the archive refused the query: {detail}") from None
        except IqTimeout:
            raise ClientError("the archive did not answer in time") from None
        finally:
            xmpp.remove_handler(name)
        complete, last = mam.parse_fin(answer.xml.find(mam.FIN))
        return results, complete, last

    async def _one(self, result: mam.Result) -> Archived:
        message = result.message
        if not any(
            el.get("by") == self._own and el.get("id") == result.archive_id
            for el in message.findall(mam.STANZA_ID)
        ):  # the archive id is one of its keys (the sender's copy carries no stanza id)
            SubElement(message, mam.STANZA_ID, {"by": self._own, "id": result.archive_id})
        make: Any = slixmpp.Message
        stanza = make(xml=message)
        outgoing = stanza["from"].bare == self._own
        peer = stanza["to"].bare if outgoing else stanza["from"].bare
        message_id = stanza["id"] or None
        base = Archived(result.archive_id, result.stored_at, outgoing, peer, message_id, True)
        if outgoing and written_by(message, self._device_id()):
            return base  # this device's own (python-omemo's too): not encrypted for it
        if await self._handled(message_keys(message, self._own)):
            return base
        if self._receiver is None:
            raise ClientError("no receive path for the archive")
        self._collected = []
        await self._receiver.on_message(stanza, outgoing=outgoing)
        self._commit()  # what is handed out is durable: the ratchets, the handled record
        events = tuple(self._collected)
        self._collected = []
        return dataclasses.replace(base, seen=False, events=events)
