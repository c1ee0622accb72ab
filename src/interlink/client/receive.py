"""The SDK's 1:1 receive path: an encrypted message (sent to this account, or a carbon copy of
one this account sent from another device, XEP-0280) → decrypt and the trust decision
(:meth:`~interlink.client.crypto.DeviceCrypto.decrypt`) → the SCE envelope (XEP-0420, OMEMO 2)
→ typed events, with an automatic receipt (XEP-0184) when one is asked for and the sender may
have it. Groupchat messages go to the groups' receive path instead.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol
from xml.etree.ElementTree import Element

from interlink.client import media, sce
from interlink.client.archive import ARCHIVE_KEY, message_keys
from interlink.client.consent import marker_of
from interlink.client.crypto import Decrypted, Undecryptable
from interlink.client.durable import CryptoGate
from interlink.client.errors import ClientError
from interlink.client.events import (
    ChatState,
    ClientEvent,
    DecryptionFailed,
    Displayed,
    FileMessage,
    InteropMarker,
    MessageRefused,
    Receipt,
    TextMessage,
)
from interlink.client.omemo_session import LEGACY, OMEMO2, keys_for
from interlink.xmpp import ns
from interlink.xmpp.ext import muc
from interlink.xmpp.ext.delay import delayed_at

CHAT_STATES = frozenset(("active", "composing", "paused", "inactive", "gone"))  # XEP-0085
READ_KEY = "read:"  # handled-message key of a message this device decrypted: sender and id
TWIN_OF = f"{{{OMEMO2}}}encrypted"  # what a legacy twin stands beside


class Decrypting(Protocol):
    """What receiving needs of this connection's OMEMO (:class:`DeviceCrypto`)."""

    @property
    def gate(self) -> CryptoGate: ...

    @property
    def device_id(self) -> int: ...

    async def decrypt(self, element: Element, sender: str) -> Decrypted | Undecryptable | None: ...


class SendReceipt(Protocol):
    """The client's receipt call (``InterlinkClient.send_receipt``)."""

    async def __call__(self, to: str, message_id: str, *, wait: bool) -> None: ...


class Receiver:
    """The receive path (see the module docstring). Ports: ``crypto()`` this connection's OMEMO
    (raises :class:`NotConnected` before ``connect()``), ``heard_from(full_jid)`` tells what
    the client knows of peers' clients that one wrote, ``wrote_in(bare, namespace)`` which OMEMO
    version a peer's last message to us came in, ``group_message`` the groups' receive
    path, ``emit`` hands an event to the application (once the crypto state behind it is
    durable), ``seen_by(peer)`` the alias a federated peer knows this account by (``None``
    for any other peer; :mod:`interlink.client.aliases`), ``send_receipt`` the receipt call,
    ``handled(keys)`` whether this device read a message already and ``note_handled(keys)``
    records that it did (client/archive.py)."""

    def __init__(
        self,
        *,
        own: str,
        seen_by: Callable[[str], Awaitable[str | None]],
        legacy: bool,
        auto_receipts: bool,
        crypto: Callable[[], Decrypting],
        heard_from: Callable[[str], None],
        wrote_in: Callable[[str, str], None],
        group_message: Callable[[Any], Awaitable[None]],
        emit: Callable[[ClientEvent], None],
        send_receipt: SendReceipt,
        handled: Callable[[list[str]], Awaitable[bool]],
        note_handled: Callable[[list[str]], Awaitable[None]],
    ) -> None:
        self._own = own
        self._seen_by = seen_by
        self._legacy = legacy
        self._auto_receipts = auto_receipts
        self._crypto = crypto
        self._heard_from = heard_from
        self._wrote_in = wrote_in
        self._group_message = group_message
        self._emit = emit
        self._send_receipt = send_receipt
        self._handled = handled
        self._note_handled = note_handled

    def on_message_error(self, stanza: Any) -> None:
        """A message bounced (an error stanza): the application learns who refused and why."""
        error = stanza["error"]
        refused = MessageRefused(
            stanza["from"].bare, stanza["id"] or None, error["condition"], error["text"]
        )
        self._emit(refused)

    async def on_carbon_received(self, wrapper: Any) -> None:
        """A copy of a message another device of this account received (XEP-0280)."""
        await self.on_message(wrapper["carbon_received"])

    async def on_carbon_sent(self, wrapper: Any) -> None:
        """A copy of a message another device of this account sent (XEP-0280)."""
        await self.on_message(wrapper["carbon_sent"], outgoing=True)

    async def on_message(self, stanza: Any, *, outgoing: bool = False) -> None:
        """An encrypted message (``outgoing``: this account's own, copied); raises nothing of
        its own: what cannot be read becomes :class:`DecryptionFailed`. Raises
        :class:`NotConnected` before ``connect()``."""
        if stanza["type"] == "groupchat" or stanza.xml.find(muc.USER_X) is not None:
            await self._group_message(stanza)  # rooms and their private messages: groups.py
            return
        crypto = self._crypto()
        element = stanza.xml.find(f"{{{OMEMO2}}}encrypted")
        legacy = stanza.xml.find(f"{{{LEGACY}}}encrypted") if self._legacy else None
        if element is None or (
            legacy is not None and not keys_for(element, self._own, crypto.device_id)
        ):  # both versions in one stanza: OMEMO 2 first, unless it has nothing for us
            element = legacy
        if element is None:
            return
        sender = stanza["from"]
        message_id = stanza["id"] or None
        if not outgoing and sender.resource:
            self._heard_from(str(sender))
        to = stanza["to"].bare if outgoing else None
        alias_problem = ""
        try:
            # a federated peer knows this account by an alias (issue 15): the envelope from it
            # is addressed to that alias, and this account's own envelopes to it come from it
            alias = await self._seen_by(to if to else sender.bare)
        except ClientError as exc:
            # decrypted all the same (the ratchet must move on); only an OMEMO 2 envelope
            # needs the alias, and says so if it was needed
            alias, alias_problem = None, f" ({exc})"
        marker = marker_of(stanza.xml, sender.bare, self._own, federated=alias is not None)
        keys = message_keys(stanza.xml, self._own)
        async with crypto.gate.operation():
            # The hub's stanza id names one archived message: a copy of one read already (the
            # offline copy after a catch-up from the archive) is not decrypted twice. A copy
            # with a known sender and id alone is decrypted (and refused as a replay) instead.
            if await self._handled([k for k in keys if k.startswith(ARCHIVE_KEY)]):
                return
            # A legacy twin (client/peer_caps.py) of a message this device read in OMEMO 2 is
            # left unread: its text was shown, and its ratchet is the sender's other session.
            read = [f"{READ_KEY}{sender.bare}:{message_id}"] if message_id else []
            if element.tag != TWIN_OF and read and await self._handled(read):
                return
            opened = await crypto.decrypt(element, sender.bare)
            await self._note_handled(keys + (read if isinstance(opened, Decrypted) else []))
        if isinstance(opened, Undecryptable):
            if element.find(f"{{{element.tag[1 : element.tag.index('}')]}}}payload") is None:
                # an empty OMEMO message (python-omemo completing a session with one device,
                # e.g. seen in the archive by another device): nothing for the user was lost
                return
            self._emit(DecryptionFailed(str(sender), message_id, opened.reason))
            return
        if opened is None:
            return  # a key-transport or empty message: nothing for the user
        plaintext, device_id, flagged = opened.plaintext, opened.device_id, opened.flagged
        namespace = opened.namespace
        if not outgoing:
            self._wrote_in(str(sender.bare), namespace)
        stored_at = delayed_at(stanza.xml)  # XEP-0203: when the hub stored it for us
        if namespace != OMEMO2:
            text = plaintext.decode("utf-8", errors="replace")
            self._emit(
                TextMessage(
                    str(sender),
                    text,
                    message_id,
                    device_id,
                    namespace,
                    flagged,
                    outgoing,
                    to,
                    marker,
                    stored_at,
                )
            )
            return
        try:
            envelope = sce.open_envelope(
                plaintext,
                sender=(alias or sender.bare) if to else sender.bare,
                recipients={to} if to else {alias or self._own},
                now=time.time(),
            )
        except sce.SceError as exc:
            self._emit(DecryptionFailed(str(sender), message_id, f"{exc}{alias_problem}"))
            return
        await self._content_events(
            str(sender), message_id, envelope, device_id, flagged, to, marker, stored_at
        )

    async def _content_events(
        self,
        sender: str,
        message_id: str | None,
        envelope: sce.Envelope,
        device: int,
        flagged: bool,
        to: str | None = None,
        marker: InteropMarker | None = None,
        stored_at: float | None = None,
    ) -> None:
        """Turn what an envelope carries into events (and an automatic receipt if asked).
        ``to`` is set for copies of this account's own messages (carbons). The envelope's own
        time (SCE) is the send time; ``stored_at`` (the hub's delay stamp) is for what has none."""
        tags = {el.tag for el in envelope.content}
        text = envelope.body
        try:
            shared = media.parse_file(envelope.content)
        except media.MediaError as exc:
            self._emit(DecryptionFailed(sender, message_id, f"bad file: {exc}"))
            return
        outgoing = to is not None
        if shared is not None:
            event: ClientEvent = FileMessage(
                sender, shared, message_id, device, flagged, outgoing, to, marker
            )
        elif text is not None:
            event = TextMessage(
                sender,
                text,
                message_id,
                device,
                OMEMO2,
                flagged,
                outgoing,
                to,
                marker,
                envelope.timestamp,
            )
        if shared is not None or text is not None:
            self._emit(event)
            wants_receipt = ns.qname(ns.RECEIPTS, "request") in tags
            request = marker is not None and marker.request  # nothing goes back until accepted
            if self._auto_receipts and message_id and wants_receipt and to is None and not request:
                await self._send_receipt(sender, message_id, wait=False)
        if to is not None:
            return  # our own receipts, markers and states need no events
        for el in envelope.content:
            if el.tag == ns.qname(ns.RECEIPTS, "received") and el.get("id"):
                self._emit(Receipt(sender, el.get("id", ""), marker))
            elif el.tag == ns.qname(ns.CHAT_MARKERS, "displayed") and el.get("id"):
                self._emit(Displayed(sender, el.get("id", ""), marker))
            elif el.tag.startswith("{" + ns.CHATSTATES + "}"):
                state = el.tag.rsplit("}", 1)[1]
                if state in CHAT_STATES:
                    self._emit(ChatState(sender, state, marker))
