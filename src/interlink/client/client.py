"""``InterlinkClient``: connect, send and receive end-to-end encrypted text, as typed events."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Literal
from xml.etree.ElementTree import Element

import oldmemo
import omemo
import slixmpp
import twomemo
from omemo.types import DeviceInformation
from slixmpp.xmlstream.handler import Callback

from interlink.client import sce
from interlink.client.aliases import AliasUnknown, OwnAddresses, asking
from interlink.client.archive import HANDLED_KEEP, Archived, ArchiveReader
from interlink.client.connection import Connection
from interlink.client.consent import Consent, MessageRequest
from interlink.client.crypto import DeviceCrypto, fingerprint_of
from interlink.client.durable import MAX_BATCH, MAX_DELAY, CryptoGate, check_limits
from interlink.client.errors import ClientError, NotConnected
from interlink.client.events import (
    ClientEvent,
    DecryptionFailed,
    EncryptionProblem,
    FileMessage,
    GroupMessage,
    KeyChanged,
    NewDevice,
    TextMessage,
)
from interlink.client.groups import GroupRoom, Groups
from interlink.client.healing import SETTLE as REPAIR_SETTLE
from interlink.client.healing import SessionRepair, check_settle
from interlink.client.lifecycle import Backoff, Input, Keepalive
from interlink.client.media_transfer import MediaTransfer, Progress, Uploader
from interlink.client.oauthbearer import OAuthBearer
from interlink.client.omemo_session import (
    DEVICES_NODE,
    LEGACY,
    OMEMO2,
    Trust,
    serialize_message,
    session_manager_class,
)
from interlink.client.outbox import DEFAULT_LIMIT, OutboxFull, Outgoing
from interlink.client.peer_caps import text_order
from interlink.client.peer_devices import PeerDevices
from interlink.client.receive import CHAT_STATES, Receiver
from interlink.client.room_archive import RoomArchived, RoomArchiveReader
from interlink.client.store import SqliteOmemoStorage
from interlink.client.trust_calls import Verification
from interlink.client.xmpp_port import EncryptedMatcher, SlixmppPep, first_line
from interlink.xmpp import ns
from interlink.xmpp.ext import interop, mam
from interlink.xmpp.ext.interop import NO_PUSH, InteropSettings
from interlink.xmpp.xml import parse_fragment

log = logging.getLogger("interlink.client")
FALLBACK_BODY = "[This message is end-to-end encrypted with OMEMO; your client cannot read it.]"
_EME = "urn:xmpp:eme:0"
_HINTS = ns.HINTS  # XEP-0334
RECEIPTS = ns.RECEIPTS  # XEP-0184
MARKERS = ns.CHAT_MARKERS  # XEP-0333
CHATSTATES = ns.CHATSTATES  # XEP-0085


def _q(namespace: str, local: str) -> str:
    return "{" + namespace + "}" + local


class InterlinkClient:
    """One account on one device.

    ``data_dir`` keeps the device's keys and sessions (SQLite); the same directory on the next run
    is the same device.

    The client itself holds the connection, this device's OMEMO and the 1:1 send and receive
    paths; its other calls are its parts', built once here with the ports each needs:
    :class:`~interlink.client.consent.Consent` (settings, requests, blocking),
    :class:`~interlink.client.trust_calls.Verification` (fingerprints, verification),
    :class:`~interlink.client.groups.Groups` (rooms) and
    :class:`~interlink.client.media_transfer.MediaTransfer` (files).
    """

    def __init__(
        self,
        jid: str,
        password: str,
        *,
        data_dir: Path,
        host: str = "127.0.0.1",
        port: int = 5222,
        direct_tls: bool = False,
        ca_file: Path | None = None,
        manual_trust: bool = False,
        legacy: bool = True,
        omemo2: bool = True,
        auto_receipts: bool = True,
        timeout: float = 10.0,
        token_provider: Callable[[], Awaitable[str]] | None = None,
        http_url: str | None = None,
        uploader: Uploader | None = None,
        commit_batch: int = MAX_BATCH,
        commit_delay: float = MAX_DELAY,
        device_list_max_age: float = 600.0,
        speedups: bool = False,
        backoff: Backoff | None = None,
        keepalive: Keepalive | None = None,
        clock: Callable[[], float] = time.monotonic,
        outbox_limit: int = DEFAULT_LIMIT,
        session_repair_settle: float = REPAIR_SETTLE,
    ) -> None:
        """``token_provider``: for third-party users, a fresh provider token per login (SASL
        OAUTHBEARER) instead of the password. ``http_url``: the hub's HTTPS base URL, through
        whose media proxy a gatekeeper user fetches third-party media. ``uploader``: where files
        are uploaded (default: the hub's XEP-0363 service; third-party users pass their
        provider's, e.g. :class:`~interlink.client.media_transfer.KitUploader`).
        ``commit_batch``: at most this many crypto operations share one commit of the crypto
        state; ``commit_delay``: seconds a held-back stanza or event waits at most for one (see
        :mod:`interlink.client.durable`). ``backoff``: delays between reconnection attempts;
        ``keepalive``: when a quiet connection is pinged and when it counts as dead (see
        :mod:`interlink.client.lifecycle`); ``clock``: monotonic seconds for both.
        ``outbox_limit``: sent messages the hub has not acknowledged that are held at most (kept
        in ``data_dir`` and sent again after a restart); beyond, sending raises
        :class:`~interlink.client.outbox.OutboxFull`.
        ``session_repair_settle``: seconds during which a session with a peer device is not
        repaired twice, nor by this side after reading that device's key exchange when the
        peer's address sorts first (see :mod:`interlink.client.healing`).
        ``device_list_max_age``: seconds after which a peer's device lists are fetched again
        before sending to it (they are also fetched when no device of the peer can be
        encrypted to). ``speedups``: faster crypto by changing code of python-omemo, x3dh and
        python-doubleratchet, for the versions it was verified against only (other versions run
        unchanged); two of the changes apply to the whole process (see
        :func:`~interlink.client.omemo_session.session_manager_class`). Off by default."""
        self.jid = slixmpp.JID(jid)
        self.bare = self.jid.bare
        self._password = password
        self._data_dir = data_dir
        self._host = host
        self._port = port
        self._direct_tls = direct_tls
        self._ca_file = ca_file
        self._manual_trust = manual_trust
        check_settle(session_repair_settle)  # refused now, not at connect
        self._repair_settle = session_repair_settle
        self._clock = clock
        if not (legacy or omemo2):
            raise ValueError("enable at least one OMEMO version")
        self._legacy = legacy
        self._omemo2 = omemo2
        self._token_provider = token_provider
        self._timeout = timeout
        self._events: asyncio.Queue[ClientEvent] = asyncio.Queue()
        self._xmpp: slixmpp.ClientXMPP | None = None
        self._storage: SqliteOmemoStorage | None = None
        self._manager: omemo.SessionManager | None = None
        self._inbox: asyncio.Queue[tuple[Any, Any]] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None
        check_limits(commit_batch, commit_delay)  # refused now, not at connect
        self._commit_batch = commit_batch
        self._commit_delay = commit_delay
        self._gate: CryptoGate | None = None  # one python-omemo operation at a time
        self._background: set[asyncio.Task[None]] = set()
        self._history_grace = 0.5  # seconds for the hub's stored messages to start arriving
        self._caught_up = asyncio.Event()  # the backlog of this connect() is read
        self._speedups = speedups
        self._connection = Connection(
            backoff=backoff,
            keepalive=keepalive,
            clock=clock,
            notify=self._events.put_nowait,
            spawn=self._spawn,
            reconnect=self._reconnect,
            back_online=self._back_online,
            outbox_limit=outbox_limit,
            acknowledged=self._acknowledged,
        )
        self._crypto: DeviceCrypto | None = None  # this connection's OMEMO (connect())
        self._peers = PeerDevices(
            own=self.bare,
            namespaces=self._namespaces(),
            max_age=device_list_max_age,
            timeout=timeout,
            clock=clock,
            stream=self._stream,
            lists=self._device_crypto,
            online=lambda: self.online,
            spawn=self._spawn,
            emit=self._emit,
        )
        self._consent = Consent(stream=self._stream, timeout=timeout)
        self._addresses = OwnAddresses(own=self.bare, ask=asking(self._stream, timeout))
        self._verification = Verification(
            own=self.bare, crypto=self._device_crypto, refresh=self._peers.refresh
        )
        self._groups = Groups(
            own=self.bare,
            timeout=timeout,
            omemo2=omemo2,
            legacy=legacy,
            stream=self._stream,
            crypto=self._device_crypto,
            refresh=self._peers.refresh,
            emit=self._emit,
            block=self._consent.block,
        )
        self._receiver = Receiver(
            own=self.bare,
            seen_by=self._addresses.alias_for,
            legacy=legacy,
            auto_receipts=auto_receipts,
            crypto=self._device_crypto,
            heard_from=self._peers.heard_from,
            wrote_in=self._peers.wrote_in,
            group_message=self._groups.on_message,
            emit=self._emit,
            send_receipt=self.send_receipt,
            handled=self._handled,
            note_handled=self._note_handled,
        )
        self._archive = ArchiveReader(
            own=self.bare,
            timeout=timeout,
            stream=self._stream,
            handled=self._handled,
            commit=lambda: self.gate.commit_now(),
            device_id=lambda: self._device_crypto().device_id,
        )
        self._archive.attach(
            Receiver(  # the same receive path for archived messages: no receipts, no events
                own=self.bare,
                seen_by=self._addresses.alias_for,
                legacy=legacy,
                auto_receipts=False,
                crypto=self._device_crypto,
                heard_from=lambda _: None,
                wrote_in=self._peers.wrote_in,
                group_message=self._groups.on_message,
                emit=self._archive.collect,
                send_receipt=self.send_receipt,
                handled=self._handled,
                note_handled=self._note_handled,
            )
        )
        self._room_archive = RoomArchiveReader(
            own=self.bare,
            legacy=legacy,
            pages=self._archive,
            crypto=self._device_crypto,
            handled=self._handled,
            note_handled=self._note_handled,
            commit=lambda: self.gate.commit_now(),
        )
        self._media = MediaTransfer(
            own=self.jid,
            timeout=timeout,
            stream=self._stream,
            send=self._send,
            uploader=uploader,
            work_dir=data_dir / "media-tmp",
            ca_file=ca_file,
            http_url=http_url,
        )

    # -- lifecycle -----------------------------------------------------------------------------
    async def connect(self) -> None:
        """Log in, publish this device's keys (first run) and start receiving.

        Raises:
            ClientError: the hub could not be reached in ``timeout`` seconds, or refused the login
                ("authentication failed").
            OSError: the data directory or the key store could not be opened.
        """
        self._caught_up.clear()
        if self._token_provider is not None:
            xmpp = slixmpp.ClientXMPP(self.jid, "", sasl_mech=OAuthBearer.name)
            xmpp.credentials["access_token"] = await self._token_provider()
        else:
            xmpp = slixmpp.ClientXMPP(self.jid, self._password)
        self._xmpp = xmpp
        if self._ca_file is not None:
            xmpp.ca_certs = self._ca_file
        for plugin in (
            "xep_0030",
            "xep_0004",
            "xep_0060",
            "xep_0115",
            "xep_0163",
            "xep_0199",
            "xep_0280",
        ):
            xmpp.register_plugin(plugin)
        xmpp.register_plugin("xep_0198")  # XEP-0198: acks, resumption
        pep: Any = xmpp.plugin["xep_0163"]
        for namespace in self._namespaces():
            pep.add_interest(DEVICES_NODE[namespace])
        started = asyncio.Event()
        failed = asyncio.Event()
        xmpp.add_event_handler("session_start", lambda _: started.set())
        xmpp.add_event_handler("failed_all_auth", lambda _: failed.set())
        # slixmpp's "message" event only covers messages with a body; encrypted receipts and
        # chat states have none, so encrypted stanzas get a handler of their own.
        xmpp.register_handler(
            Callback(
                "interlink-omemo",
                EncryptedMatcher(self._namespaces()),
                self._spawn_for(self._receiver.on_message),
            )
        )
        xmpp.register_handler(  # XEP-0045 rooms (client/groups.py)
            Callback(
                "interlink-groups", self._groups.matcher, self._spawn_for(self._groups.on_room)
            )
        )
        xmpp.add_event_handler("pubsub_publish", self._spawn_for(self._peers.on_notification))
        # Carbons (XEP-0280): the plugin only passes copies that come from our own bare JID.
        receiver = self._receiver
        xmpp.add_event_handler("carbon_received", self._spawn_for(receiver.on_carbon_received))
        xmpp.add_event_handler("carbon_sent", self._spawn_for(receiver.on_carbon_sent))
        xmpp.add_event_handler("message_error", receiver.on_message_error)
        # a client that comes online may read another OMEMO version: ask again when sending
        xmpp.add_event_handler(
            "presence_available", lambda p: self._peers.client_online(p["from"].bare)
        )
        self._connection.watch(xmpp)
        xmpp.enable_direct_tls = self._direct_tls
        xmpp.enable_starttls = not self._direct_tls
        xmpp.enable_plaintext = False
        problems: list[str] = []
        refused = asyncio.Event()  # the first attempt failed: no need to wait for the timeout

        def problem(text: str) -> None:
            problems.append(text)
            refused.set()

        def unreachable(error: Any) -> None:
            problem(str(error))

        def bad_certificate(error: Any) -> None:
            problem(f"certificate: {error}")

        xmpp.add_event_handler("connection_failed", unreachable)
        xmpp.add_event_handler("ssl_invalid_chain", bad_certificate)
        if self._ca_file is not None and not self._ca_file.is_file():
            raise ClientError(f"the CA file {self._ca_file} does not exist")
        xmpp.connect(self._host, self._port)
        waiters = [
            asyncio.ensure_future(started.wait()),
            asyncio.ensure_future(failed.wait()),
            asyncio.ensure_future(refused.wait()),
        ]
        await asyncio.wait(waiters, timeout=self._timeout, return_when=asyncio.FIRST_COMPLETED)
        for w in waiters:
            w.cancel()
        xmpp.del_event_handler("connection_failed", unreachable)  # the first login's only
        xmpp.del_event_handler("ssl_invalid_chain", bad_certificate)
        if not started.is_set():
            self._connection.close()
            xmpp.cancel_connection_attempt()
            xmpp.abort()
            if failed.is_set():
                raise ClientError("authentication failed")
            tls = [p for p in problems if "certificate" in p.lower() or "ssl" in p.lower()]
            detail = f": {tls[-1]}" if tls else f": {problems[-1]}" if problems else ""
            raise ClientError(f"could not connect to {self._host}:{self._port}{detail}")
        self._data_dir.mkdir(parents=True, exist_ok=True)
        self._storage = await SqliteOmemoStorage.open(self._data_dir / "omemo.sqlite3")
        self._gate = CryptoGate(
            self._storage, max_batch=self._commit_batch, max_delay=self._commit_delay
        )
        backends: list[omemo.Backend] = []
        if self._omemo2:
            backends.append(twomemo.Twomemo(self._storage))
        if self._legacy:
            backends.append(oldmemo.Oldmemo(self._storage))
        manager_class = session_manager_class(
            SlixmppPep(xmpp, self._timeout, route=self._groups.protocol_route),
            storage=self._storage,
            manual_trust=self._manual_trust,
            on_key_change=self._key_changed,
            on_new_device=self._new_device,
            before_sending=self._gate.commit_now,
            speedups=self._speedups,
        )
        self._manager = await manager_class.create(
            backends, self._storage, self.bare, None, Trust.UNDECIDED.value
        )
        this, _ = await self._manager.get_own_device_information()
        self._crypto = DeviceCrypto(
            self._manager,
            self._storage,
            self._gate,
            own=self.bare,
            device_id=this.device_id,
            manual_trust=self._manual_trust,
            on_key_change=self._key_changed,
            on_new_device=self._new_device,
            repair=SessionRepair(self.bare, this.device_id, settle=self._repair_settle),
            clock=self._clock,
        )
        await self._manager.refresh_device_lists(self.bare)  # this account's other devices
        self._gate.commit_now()
        self._peers.fetched(self.bare)
        await self._held_from_store(xmpp, self._storage)
        carbons: Any = xmpp.plugin["xep_0280"]
        await carbons.enable(timeout=self._timeout)
        # XEP-0115: slixmpp hashed the caps when the PEP interests were added, before its plugins
        # added their features at session start; a stale ``ver`` makes peers that check it
        # (Gajim) discard this device's features. Hash them as they are now.
        caps: Any = xmpp.plugin["xep_0115"]
        await caps.update_caps(broadcast=False)
        xmpp.send_presence()
        self._connection.resend_held()  # what an earlier run accepted and the hub never had
        # Stored messages arrive right after the presence; python-omemo holds back the messages
        # that confirm new sessions until told the backlog is over (its history-sync mode).
        self._spawn(self._end_history_sync())
        self._spawn(self._connection.supervise())

    # -- connection lifecycle (interlink.client.connection, decisions in .lifecycle) ------------
    @property
    def online(self) -> bool:
        """Whether a session is up now (messages sent while not are held and sent later)."""
        return self._connection.online

    @property
    def unacknowledged(self) -> int:
        """How many sent messages the hub has not acknowledged yet (held ones included)."""
        return len(self._connection.outbox)

    @property
    def unacknowledged_ids(self) -> frozenset[str]:
        """The ids of the sent messages the hub has not acknowledged yet (held ones included,
        and those an earlier run left, once ``connect()`` loaded them)."""
        return self._connection.outbox.ids()

    async def _reconnect(self) -> None:
        xmpp = self._xmpp
        if xmpp is None:
            return
        if self._token_provider is not None:
            try:
                xmpp.credentials["access_token"] = await self._token_provider()
            except Exception as exc:
                self._connection.feed(Input.LOST, reason=f"no token: {first_line(exc)}")
                return
        xmpp.connect(self._host, self._port)

    async def _back_online(self, resumed: bool) -> None:
        """A later session is up (what waited is re-sent next). A new session announces
        presence and carbons again and looks at device lists afresh (their notifications may
        have been missed)."""
        xmpp = self._xmpp
        if xmpp is None or resumed:
            return
        self._peers.forget()
        xmpp.send_presence()
        carbons: Any = xmpp.plugin["xep_0280"]
        with contextlib.suppress(Exception):
            await carbons.enable(timeout=self._timeout)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _end_history_sync(self) -> None:
        await asyncio.sleep(self._history_grace)
        worker = self._worker
        while worker is not None and not worker.done():  # the offline backlog is being decrypted
            await asyncio.wait({worker})
            worker = self._worker
        async with self.gate.operation():
            await self.manager.after_history_sync()
        self._caught_up.set()

    async def caught_up(self) -> None:
        """Return once what the hub stored for this account while it was away has been read
        since the last ``connect()`` (the messages OMEMO holds back until then, such as the
        answers that confirm new sessions, have left). Bound the wait with ``asyncio.timeout``."""
        await self._caught_up.wait()

    async def close(self) -> None:
        """Stop receiving, save what finished operations hold back and disconnect. Raises
        nothing of its own; the client can ``connect()`` again."""
        self._connection.close()
        tasks = [*self._background, *([self._worker] if self._worker is not None else [])]
        tasks = [t for t in tasks if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        # An operation cancelled half-way undoes its writes when its task ends: wait for that,
        # so that what is committed next holds whole operations only.
        if tasks:
            await asyncio.wait(tasks, timeout=self._timeout)
        if self._gate is not None:  # release what finished operations hold back
            with contextlib.suppress(Exception):
                self._gate.commit_now()
            self._gate.close()
        if self._manager is not None:
            with contextlib.suppress(Exception):
                await self._manager.shutdown()
        if self._xmpp is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._xmpp.disconnect(wait=1), timeout=5)
        if self._storage is not None:
            await self._storage.close()

    def _namespaces(self) -> list[str]:
        return [ns for ns, on in ((OMEMO2, self._omemo2), (LEGACY, self._legacy)) if on]

    def _spawn_for(self, handler: Any) -> Any:
        """Queue incoming stanzas for one worker: ratchets must see messages one at a time and in
        the order they arrived (concurrent use corrupts session state)."""

        def enqueue(stanza: Any) -> None:
            self._inbox.put_nowait((handler, stanza))
            if self._worker is None or self._worker.done():
                self._worker = asyncio.get_running_loop().create_task(self._work())

        return enqueue

    async def _work(self) -> None:
        while not self._inbox.empty():
            handler, stanza = self._inbox.get_nowait()
            try:
                await handler(stanza)
            except Exception:  # one bad stanza must not stop the client
                log.exception("failed to handle an incoming stanza")

    # -- the own archive (client/archive.py) -----------------------------------------------------
    def history(
        self,
        peer: str | None = None,
        *,
        after_id: str | None = None,
        limit: int = 500,
        page_size: int = 50,
    ) -> AsyncIterator[Archived]:
        """This account's archived messages (XEP-0313) after the archive id ``after_id`` (from
        the oldest without), oldest first, at most ``limit``, fetched ``page_size`` at a time;
        only those with ``peer`` when given. Messages this device has not read yet are decrypted
        now (once: :class:`~interlink.client.archive.Archived` ``events``); the ones it read or
        sent are not decrypted again (``seen``). Raises :class:`ClientError` when the hub refuses
        or does not answer, ``ValueError`` for bad bounds, :class:`NotConnected` before
        ``connect()``."""
        return self._archive.read(peer, after_id=after_id, limit=limit, page_size=page_size)

    def room_history(
        self, room: str, *, after_id: str | None = None, limit: int = 500, page_size: int = 50
    ) -> AsyncIterator[RoomArchived]:
        """``room``'s archived messages (XEP-0313 at the room's address) after the archive id
        ``after_id``, oldest first, at most ``limit``; readable by its members whether or not
        this device is in the room now. Each is decrypted once (see
        :mod:`interlink.client.room_archive`). Raises :class:`ClientError` when the room refuses
        (``forbidden`` for a non-member) or does not answer, ``ValueError`` for bad bounds,
        :class:`NotConnected` before ``connect()``."""
        return self._room_archive.read(room, after_id=after_id, limit=limit, page_size=page_size)

    def _store(self) -> SqliteOmemoStorage:
        if self._storage is None:
            raise NotConnected
        return self._storage

    async def _handled(self, keys: list[str]) -> bool:
        return await self._store().handled(keys)

    async def _note_handled(self, keys: list[str]) -> None:
        await self._store().note_handled(keys, time.time(), HANDLED_KEEP)

    # -- events ----------------------------------------------------------------------------------
    async def next_event(self, wait: float | None = None) -> ClientEvent:
        """The next event, waiting at most ``wait`` seconds.

        Raises:
            TimeoutError: no event came in ``wait`` seconds.
        """
        return await asyncio.wait_for(self._events.get(), wait)

    async def events(self) -> AsyncIterator[ClientEvent]:
        """Every event, as it comes (an endless iterator; raises nothing)."""
        while True:
            yield await self._events.get()

    # -- sending -----------------------------------------------------------------------------------
    @property
    def manager(self) -> omemo.SessionManager:
        """python-omemo's session manager. Raises :class:`NotConnected` before ``connect()``."""
        if self._manager is None:
            raise NotConnected
        return self._manager

    @property
    def gate(self) -> CryptoGate:
        """The durability gate. Raises :class:`NotConnected` before ``connect()``."""
        if self._gate is None:
            raise NotConnected
        return self._gate

    def _stream(self) -> slixmpp.ClientXMPP:
        """The slixmpp stream (the parts' port to the connection). Raises :class:`NotConnected`
        before ``connect()``."""
        if self._xmpp is None:
            raise NotConnected
        return self._xmpp

    def _device_crypto(self) -> DeviceCrypto:
        """This connection's OMEMO (the parts' port to it). Raises :class:`NotConnected` before
        ``connect()``."""
        if self._crypto is None:
            raise NotConnected
        return self._crypto

    def _emit(self, event: ClientEvent) -> None:
        """Hand ``event`` to the app once the crypto state behind it is durable, in order."""
        if self._gate is None:
            self._events.put_nowait(event)
            return

        def not_saved(exc: BaseException) -> None:
            if isinstance(event, TextMessage | FileMessage):
                reason = f"the crypto state could not be saved: {first_line(exc)}"
                self._events.put_nowait(DecryptionFailed(event.sender, event.message_id, reason))

        self._gate.after(functools.partial(self._events.put_nowait, event), fail=not_saved)

    async def send_text(self, to: str, text: str) -> str:
        """Encrypt ``text`` for every device of ``to`` and this account's other devices; send it,
        asking for a delivery receipt and marking it displayable. Returns the message id.

        Raises:
            NotConnected: before ``connect()``.
            ClientError: no device of the peer could be encrypted to, or (``wait``) the stanza
                could not leave because the crypto state could not be saved or the stream failed.
        """
        body = Element(sce.BODY)
        body.text = text
        content = [body, Element(_q(RECEIPTS, "request")), Element(_q(MARKERS, "markable"))]
        return await self._send(to, content, legacy_text=text, store=True)

    # Receipts, markers and chat states carry the activity hint: the hub sees that a message is
    # one of them (not which, nor what it refers to), so that it can keep them from third
    # parties whose message request is not accepted, or whom the user shares no activity with.
    async def send_receipt(self, to: str, message_id: str, *, wait: bool = True) -> None:
        """Tell ``to`` that its message ``message_id`` arrived (XEP-0184). ``wait=False``: return
        before the receipt has left (it leaves with the next commit of the crypto state); the
        receive worker sends its automatic receipts so.

        Raises:
            NotConnected: before ``connect()``.
            ClientError: no device of the peer could be encrypted to, or (``wait``) the stanza
                could not leave because the crypto state could not be saved or the stream failed.
        """
        receipt = Element(_q(RECEIPTS, "received"), {"id": message_id})
        await self._send(to, [receipt], store=True, activity=True, wait=wait)

    async def send_displayed(self, to: str, message_id: str) -> None:
        """Tell ``to`` that its message ``message_id`` was shown (XEP-0333).

        Raises:
            NotConnected: before ``connect()``.
            ClientError: no device of the peer could be encrypted to, or (``wait``) the stanza
                could not leave because the crypto state could not be saved or the stream failed.
        """
        marker = Element(_q(MARKERS, "displayed"), {"id": message_id})
        await self._send(to, [marker], store=True, activity=True)

    async def send_chat_state(self, to: str, state: str) -> None:
        """Send a chat state (XEP-0085: active, composing, paused, inactive, gone), not stored.

        Raises:
            ValueError: ``state`` is not one of those.
            NotConnected: before ``connect()``.
            ClientError: no device of the peer could be encrypted to, or the stanza could not
                leave.
        """
        if state not in CHAT_STATES:
            raise ValueError(f"chat state must be one of {sorted(CHAT_STATES)}")
        await self._send(to, [Element(_q(CHATSTATES, state))], store=False, activity=True)

    async def _send(
        self,
        to: str,
        content: list[Element],
        *,
        legacy_text: str | None = None,
        store: bool,
        activity: bool = False,
        wait: bool = True,
    ) -> str:
        """Seal ``content`` in an SCE envelope (OMEMO 2) and send it encrypted. Legacy OMEMO can
        carry only a body: it is used for text, never for the rest. The stanza leaves once the
        state of the ratchet that encrypted it is durable; ``wait``: until then."""
        xmpp = self._xmpp
        if xmpp is None:
            raise NotConnected
        peer = slixmpp.JID(to).bare
        plaintext: dict[str, bytes] = {}
        order: list[str] = []
        if self._omemo2:
            # a federated peer knows this account by an alias: the envelope says the same
            try:
                sender = await self._addresses.seen_by(peer)
            except AliasUnknown as exc:
                raise ClientError(f"cannot encrypt to {peer}: {exc}") from exc
            plaintext[OMEMO2] = sce.seal(content, sender=sender, recipient=peer, now=time.time())
            order.append(OMEMO2)
        if self._legacy and legacy_text is not None:
            plaintext[LEGACY] = legacy_text.encode()
            order.append(LEGACY)
        if not order:
            raise ClientError("legacy OMEMO can only carry text")
        if len(order) > 1:  # a client of the peer may read legacy OMEMO only
            order = text_order(
                await self._peers.advertised(peer),
                order,
                wrote_legacy=self._peers.wrote_legacy(peer),
            )
        if store:  # refused before a ratchet moves for it
            self._connection.outbox.check_room()
        message_id = secrets.token_hex(8)
        try:
            crypto = self._device_crypto()
            async with crypto.gate.operation():
                # this device wrote it: the archive's copy is not for decrypting (it cannot)
                await self._note_handled([f"id:{self.bare}:{message_id}"])
                # Device lists of peers who share no presence arrive by no notification.
                await self._peers.refresh(peer)
                try:
                    encrypted = await crypto.encrypt_text(peer, plaintext, order)
                except omemo.NoEligibleDevices:  # keys published since the last look-up?
                    if not self.online:
                        raise
                    await self._peers.look_up(peer, force=True)
                    encrypted = await crypto.encrypt_text(peer, plaintext, order)
                # Queued for the wire before the next crypto operation may run, so stanzas
                # leave in the order they were encrypted. Otherwise a key exchange received
                # meanwhile would replace the session this one starts, and OMEMO's answer on
                # the new session would overtake it: the peer ends up on our session while we
                # are on its own, and cannot be read (seen with Gajim writing at the same time).
                entry = self._outgoing(
                    xmpp,
                    to,
                    peer,
                    message_id,
                    encrypted,
                    store=store,
                    activity=activity,
                    text=legacy_text is not None,
                )
                if store:  # kept until the hub acknowledges it; chat states are not worth a re-send
                    await self._keep(entry)
                sent = crypto.gate.after(functools.partial(self._connection.write, entry))
        except omemo.SessionManagerException as exc:
            reason = first_line(exc)
            self._emit(EncryptionProblem(peer, None, reason))
            raise ClientError(f"cannot encrypt to {peer}: {reason}") from exc
        for error in encrypted.errors:
            self._emit(
                EncryptionProblem(error.bare_jid, error.device_id, first_line(error.exception))
            )
        if wait:
            try:
                await sent
            except Exception as exc:  # the state was not saved, or the stream failed
                raise ClientError(f"not sent: {first_line(exc)}") from exc
        return message_id

    def _outgoing(
        self,
        xmpp: slixmpp.ClientXMPP,
        to: str,
        peer: str,
        message_id: str,
        encrypted: Any,
        *,
        store: bool,
        activity: bool,
        text: bool,
    ) -> Outgoing:
        """The stanzas of one encrypted message (a legacy twin after the first, if any)."""
        stanzas = [
            self._stanza(
                xmpp,
                to,
                message_id,
                messages,
                store=store,
                activity=activity,
                explain=explain,
                text=text,
            )
            for messages, explain in (
                # a legacy twin carries the fallback body and the EME hint for both: a client
                # shows a message that has either, even one it cannot read
                (encrypted.messages, not encrypted.twin),
                (encrypted.twin, True),
            )
            if messages
        ]
        if encrypted.twin:  # the first of the pair woke the peer's device already
            stanzas[-1].xml.append(Element(NO_PUSH))
        return Outgoing(peer, message_id, stanzas, report=text)

    def _stanza(
        self,
        xmpp: slixmpp.ClientXMPP,
        to: str,
        message_id: str,
        messages: list[Any],
        *,
        store: bool,
        activity: bool,
        explain: bool,
        text: bool,
    ) -> Any:
        """One ``<message/>`` carrying ``messages`` (OMEMO ``<encrypted/>`` elements), its id
        also as the XEP-0359 origin-id: the same after a re-send, whatever the transport.
        ``explain``: with the XEP-0380 hint, and for text the fallback body."""
        stanza = xmpp.make_message(mto=slixmpp.JID(to), mtype="chat")
        stanza["id"] = message_id
        for message in messages:
            stanza.xml.append(serialize_message(message))
        if explain:
            namespace = OMEMO2 if any(m.namespace == OMEMO2 for m in messages) else LEGACY
            stanza.xml.append(Element(f"{{{_EME}}}encryption", {"namespace": namespace}))
        if explain and text:
            stanza["body"] = FALLBACK_BODY
        stanza.xml.append(Element(f"{{{mam.SID}}}origin-id", {"id": message_id}))
        stanza.xml.append(Element(f"{{{_HINTS}}}{'store' if store else 'no-store'}"))
        if activity:
            stanza.xml.append(Element(interop.ACTIVITY))
        return stanza

    async def _keep(self, entry: Outgoing) -> None:
        """Hold ``entry`` until the hub acknowledges it, in memory and in the store (committed
        with the ratchet state that encrypted it, before it may leave: a restarted process
        sends it again). Call inside the ``gate.operation()`` that encrypted it. Raises
        :class:`OutboxFull`."""
        self._connection.hold(entry)
        try:
            await self._device_crypto().storage.outbox_add(
                entry.message_id,
                entry.peer,
                entry.report,
                [str(stanza) for stanza in entry.stanzas],
                time.time(),
            )
        except BaseException:
            self._connection.outbox.acknowledged(entry.message_id)
            raise

    def _acknowledged(self, entry: Outgoing) -> None:
        """The hub has ``entry``: the store forgets it (committed with the next commit)."""
        if self._crypto is not None:
            self._spawn(self._forget_sent(self._crypto, entry.message_id))

    @staticmethod
    async def _forget_sent(crypto: DeviceCrypto, message_id: str) -> None:
        with contextlib.suppress(Exception):  # kept, it is sent once more after a restart
            async with crypto.gate.operation():
                await crypto.storage.outbox_remove(message_id)

    async def _held_from_store(self, xmpp: slixmpp.ClientXMPP, storage: SqliteOmemoStorage) -> None:
        """Hold what an earlier run accepted and the hub never acknowledged (sent once the
        session is up, with its ids)."""
        for message_id, peer, report, texts in await storage.outbox_entries():
            stanzas = [self._message_from(xmpp, t) for t in texts]
            self._connection.outbox.restore(Outgoing(peer, message_id, stanzas, report=report))

    @staticmethod
    def _message_from(xmpp: slixmpp.ClientXMPP, text: str) -> Any:
        message: Any = slixmpp.Message
        return message(xmpp, xml=parse_fragment(text))

    # -- consent.Consent ---------------------------------------------------------------------------
    async def interop_settings(self) -> InteropSettings:
        """This gatekeeper user's third-party chat settings, as the hub keeps them. Raises: see
        :meth:`~interlink.client.consent.Consent.interop_settings`."""
        return await self._consent.interop_settings()

    async def set_interop_settings(
        self,
        *,
        enabled: bool | None = None,
        providers: Iterable[str] | Literal["all"] | None = None,
        inbox: str | None = None,
        discoverable: bool | None = None,
        share_activity: bool | None = None,
    ) -> InteropSettings:
        """Change the settings given (the others stay); returns them as the hub now has
        them. Raises: see :meth:`~interlink.client.consent.Consent.set_interop_settings`."""
        return await self._consent.set_interop_settings(
            enabled=enabled,
            providers=providers,
            inbox=inbox,
            discoverable=discoverable,
            share_activity=share_activity,
        )

    async def approved_providers(self) -> dict[str, str]:
        """The providers whose users can be reached: id -> display name. Raises: see
        :meth:`~interlink.client.consent.Consent.approved_providers`."""
        return await self._consent.approved_providers()

    async def message_requests(self) -> list[MessageRequest]:
        """The open message requests: third-party users who wrote and are not accepted yet. Raises:
        see :meth:`~interlink.client.consent.Consent.message_requests`."""
        return await self._consent.message_requests()

    async def accept_request(self, jid: str) -> None:
        """Accept ``jid``'s message request: replies, receipts and presence may go back. Raises: see
        :meth:`~interlink.client.consent.Consent.accept_request`."""
        return await self._consent.accept_request(jid)

    async def block(
        self,
        jid: str,
        *,
        report: str | None = None,
        text: str = "",
        attach: Sequence[TextMessage] = (),
    ) -> None:
        """Block ``jid`` (a user, or a provider's domain ``<provider>.interop.<hub>``); with
        ``report`` ("spam" or "abuse") also report it, attaching the chosen messages. Raises: see
        :meth:`~interlink.client.consent.Consent.block`."""
        return await self._consent.block(jid, report=report, text=text, attach=attach)

    async def unblock(self, *jids: str) -> None:
        """Unblock ``jids``; with none, unblock everyone. Raises: see
        :meth:`~interlink.client.consent.Consent.unblock`."""
        return await self._consent.unblock(*jids)

    async def blocklist(self) -> list[str]:
        """The JIDs and domains this account blocks (XEP-0191). Raises: see
        :meth:`~interlink.client.consent.Consent.blocklist`."""
        return await self._consent.blocklist()

    # -- trust_calls.Verification ------------------------------------------------------------------
    async def fingerprint(self) -> str:
        """This device's fingerprint, to show the user. Raises: see
        :meth:`~interlink.client.trust_calls.Verification.fingerprint`."""
        return await self._verification.fingerprint()

    async def peer_fingerprints(self, peer: str) -> dict[int, str]:
        """Device id → fingerprint of every known device of ``peer``. Raises: see
        :meth:`~interlink.client.trust_calls.Verification.peer_fingerprints`."""
        return await self._verification.peer_fingerprints(peer)

    async def safety_number(self, peer: str) -> str:
        """The 60-digit safety number of the conversation with ``peer`` (same on both
        sides). Raises: see :meth:`~interlink.client.trust_calls.Verification.safety_number`."""
        return await self._verification.safety_number(peer)

    async def verify(self, peer: str, fingerprint: str) -> int:
        """Mark the device of ``peer`` with this fingerprint as verified; returns its device id.
        Raises: see :meth:`~interlink.client.trust_calls.Verification.verify`."""
        return await self._verification.verify(peer, fingerprint)

    # -- groups.Groups -----------------------------------------------------------------------------
    def group(self, room: str) -> GroupRoom:
        """What this device knows of ``room``. Raises: see
        :meth:`~interlink.client.groups.Groups.room`."""
        return self._groups.room(room)

    async def create_group(
        self, room: str, nick: str, *, name: str = "", encrypted_only: bool = True
    ) -> GroupRoom:
        """Create ``room`` (``name@groups.<service>``) and enter it as its owner: members-only, non-
        anonymous, persistent, and (default) encrypted-only. Raises: see
        :meth:`~interlink.client.groups.Groups.create`."""
        return await self._groups.create(room, nick, name=name, encrypted_only=encrypted_only)

    async def join_group(self, room: str, nick: str) -> GroupRoom:
        """Enter ``room`` as ``nick`` (accepting an invitation is entering) and read its member
        list, the recipients of what this device sends there. Raises: see
        :meth:`~interlink.client.groups.Groups.join`."""
        return await self._groups.join(room, nick)

    async def leave_group(self, room: str, *, forget: bool = False) -> None:
        """Leave ``room``; ``forget``: also leave its member list (it stops being encrypted to this
        account), as when leaving a group for good. Raises: see
        :meth:`~interlink.client.groups.Groups.leave`."""
        return await self._groups.leave(room, forget=forget)

    async def invite_to_group(self, room: str, jid: str, reason: str = "") -> None:
        """Invite ``jid`` through the room (XEP-0045 §7.8.2); in a members-only room it becomes a
        member. Raises: see :meth:`~interlink.client.groups.Groups.invite`."""
        return await self._groups.invite(room, jid, reason)

    async def invite_directly(self, room: str, jid: str, reason: str = "") -> None:
        """Invite ``jid`` with a XEP-0249 direct invitation (a message to them naming the room).
        Raises: see :meth:`~interlink.client.groups.Groups.invite_directly`."""
        return await self._groups.invite_directly(room, jid, reason)

    async def decline_invitation(self, room: str, inviter: str, reason: str = "") -> None:
        """Decline an invitation (XEP-0045 §7.8.3): the pending membership is withdrawn. Raises: see
        :meth:`~interlink.client.groups.Groups.decline`."""
        return await self._groups.decline(room, inviter, reason)

    async def add_group_member(self, room: str, jid: str, affiliation: str = "member") -> None:
        """Make ``jid`` a member (or admin, owner) of ``room``. Raises: see
        :meth:`~interlink.client.groups.Groups.add_member`."""
        return await self._groups.add_member(room, jid, affiliation)

    async def remove_group_member(self, room: str, jid: str, *, ban: bool = False) -> None:
        """Take ``jid`` off the member list (``ban``: make it an outcast). Raises: see
        :meth:`~interlink.client.groups.Groups.remove_member`."""
        return await self._groups.remove_member(room, jid, ban=ban)

    async def send_group_text(self, room: str, text: str) -> str:
        """Encrypt ``text`` for every device of every member of ``room`` (and this account's other
        devices) and send it to the room. Raises: see
        :meth:`~interlink.client.groups.Groups.send_text`."""
        return await self._groups.send_text(room, text)

    async def report_group_member(
        self,
        room: str,
        member: str,
        *,
        report: str = "spam",
        text: str = "",
        attach: Sequence[GroupMessage] = (),
    ) -> None:
        """Block and report a member of ``room`` (a nick or a bare JID) as a 1:1 sender is reported
        (XEP-0377): the room is non-anonymous, so the report names the member's own address, and
        the hub forwards a third party's report to its provider with the chosen messages as this
        device decrypted them. Raises: see :meth:`~interlink.client.groups.Groups.report_member`."""
        return await self._groups.report_member(
            room, member, report=report, text=text, attach=attach
        )

    # -- media_transfer.MediaTransfer --------------------------------------------------------------
    async def send_file(
        self,
        to: str,
        path: Path,
        *,
        kind: str = "file",
        caption: str | None = None,
        media_type: str | None = None,
        duration: float | None = None,
        progress: Progress | None = None,
    ) -> str:
        """Encrypt ``path`` (AES-256-GCM, fresh key and IV), upload the ciphertext to this side's
        store with ``progress(done, total)`` calls, and send its URL, key and hashes end to end
        encrypted. Raises: see :meth:`~interlink.client.media_transfer.MediaTransfer.send_file`."""
        return await self._media.send_file(
            to,
            path,
            kind=kind,
            caption=caption,
            media_type=media_type,
            duration=duration,
            progress=progress,
        )

    async def download(
        self, event: FileMessage, dest_dir: Path, *, progress: Progress | None = None
    ) -> Path:
        """Fetch ``event``'s file (through the hub's media proxy when a third-party user sent it to
        this gatekeeper user), check both SHA-256 hashes and the GCM tag, decrypt it into
        ``dest_dir``; returns the file's path. Raises: see
        :meth:`~interlink.client.media_transfer.MediaTransfer.download`."""
        return await self._media.download(event, dest_dir, progress=progress)

    async def _key_changed(self, device: DeviceInformation) -> None:
        fingerprint = fingerprint_of(device.identity_key)
        self._emit(KeyChanged(device.bare_jid, device.device_id, fingerprint))

    async def _new_device(self, device: DeviceInformation) -> None:
        fingerprint = fingerprint_of(device.identity_key)
        self._emit(NewDevice(device.bare_jid, device.device_id, fingerprint))


__all__ = ["ClientError", "InterlinkClient", "OutboxFull"]
