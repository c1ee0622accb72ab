"""What this device knows of other accounts' OMEMO devices and clients, and when it looks again.

Device lists (XEP-0384) reach a client by PEP notification only from
contacts who share presence with it. So before encrypting to an account the client fetches its
lists unless it did less than ``max_age`` seconds ago, and again at once when no device of it
could be encrypted to (keys published since). The first look at an account also subscribes to
its lists' notifications (XEP-0060 §6.1) where its server lets us. Offline, what is known will
do until the next session, which starts over (:meth:`PeerDevices.forget`).

Which OMEMO versions an account's clients read comes from the features they advertise (caps of
their presences, disco#info of resources that wrote to us), cached for ``max_age`` too and
forgotten when one of its clients comes online or a new resource of it writes.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

import oldmemo.etree
import slixmpp
import twomemo.etree
from omemo.types import DeviceList
from slixmpp.plugins.xep_0030.stanza.info import DiscoInfo

from interlink.client.durable import CryptoGate
from interlink.client.errors import NotConnected
from interlink.client.events import ClientEvent, DeviceListChanged
from interlink.client.omemo_session import DEVICES_NODE, LEGACY, OMEMO2
from interlink.client.room_names import room_of
from interlink.client.xmpp_port import SlixmppPep, first_line
from interlink.errors import reason

log = logging.getLogger("interlink.client")


class DeviceListSource(Protocol):
    """python-omemo's device lists, behind the gate (this connection's ``DeviceCrypto``)."""

    @property
    def gate(self) -> CryptoGate: ...

    async def refresh_device_lists(self, bare: str) -> None: ...

    async def update_device_list(
        self, namespace: str, bare: str, device_list: DeviceList
    ) -> None: ...


class PeerDevices:
    """Device lists and client features of other accounts (see the module docstring).

    Ports: ``stream()`` the connected slixmpp stream and ``lists()`` this connection's device
    lists (both raise :class:`NotConnected` before ``connect()``), ``online()`` whether a
    session is up, ``spawn`` runs a coroutine in the client's background, ``emit`` hands an
    event to the application; ``clock`` is monotonic seconds."""

    def __init__(
        self,
        *,
        own: str,
        namespaces: list[str],
        max_age: float,
        timeout: float,
        clock: Callable[[], float],
        stream: Callable[[], slixmpp.ClientXMPP],
        lists: Callable[[], DeviceListSource],
        online: Callable[[], bool],
        spawn: Callable[[Coroutine[Any, Any, None]], None],
        emit: Callable[[ClientEvent], None],
    ) -> None:
        if max_age <= 0:
            raise ValueError("device_list_max_age must be positive")
        self._own = own
        self._namespaces = namespaces
        self._max_age = max_age
        self._timeout = timeout
        self._clock = clock
        self._stream = stream
        self._lists = lists
        self._online = online
        self._spawn = spawn
        self._emit = emit
        self._looked_up: dict[str, float] = {}  # bare -> when (clock) its lists were fetched
        self._resources: dict[str, set[str]] = {}  # bare -> full JIDs that wrote to us
        self._wrote_in: dict[str, str] = {}  # bare -> OMEMO namespace of its last message to us
        # bare -> (when, features of each visible client)
        self._advertised_at: dict[str, tuple[float, list[set[str]]]] = {}

    async def refresh(self, bare: str) -> None:
        """Fetch ``bare``'s device lists unless fetched less than ``max_age`` ago; subscribe to
        them the first time (for a peer who shares no presence, notifications come only so).
        Call inside ``gate.operation()``.

        Raises:
            NotConnected: before ``connect()``.
            omemo.SessionManagerException: python-omemo could not fetch them.
        """
        await self.look_up(bare, force=False)

    async def look_up(self, bare: str, *, force: bool) -> None:
        """:meth:`refresh`, or (``force``) fetch now whenever fetched before. Raises as it."""
        at = self._looked_up.get(bare)
        if not force and at is not None and self._clock() - at < self._max_age:
            return
        if at is not None and not self._online():  # offline: what is known will do until later
            return
        await self._lists().refresh_device_lists(bare)
        self._looked_up[bare] = self._clock()
        if at is None and bare != self._own and room_of(bare) is None:
            self._spawn(self._subscribe(bare))

    def fetched(self, bare: str) -> None:
        """``bare``'s lists were just fetched another way (this account's own, at login)."""
        self._looked_up[bare] = self._clock()

    def forget(self) -> None:
        """A new session: notifications may have been missed; look at everything afresh."""
        self._looked_up.clear()
        self._advertised_at.clear()

    def client_online(self, bare: str) -> None:
        """A client of ``bare`` came online: it may read another OMEMO version."""
        self._advertised_at.pop(bare, None)

    def heard_from(self, full: str) -> None:
        """``full`` (a full JID) wrote to us: a client not asked yet what it reads, perhaps."""
        bare = str(slixmpp.JID(full).bare)
        known = self._resources.setdefault(bare, set())
        if full not in known:
            known.add(full)
            self._advertised_at.pop(bare, None)

    def wrote_in(self, bare: str, namespace: str) -> None:
        """``bare``'s last message to us was in ``namespace`` (an OMEMO version)."""
        self._wrote_in[bare] = namespace

    def wrote_legacy(self, bare: str) -> bool:
        """Whether ``bare``'s last message to us was legacy OMEMO: its client reads it, whatever
        it advertises (poezio-omemo 0.9.1 advertises OMEMO 2 and reads legacy only)."""
        return self._wrote_in.get(bare) == LEGACY

    async def advertised(self, bare: str) -> list[set[str]]:
        """The features each client of ``bare`` that this device can see advertises (caps of
        its presences, or disco#info of resources that wrote to us); unanswered ones count as
        advertising nothing. Raises :class:`NotConnected` before ``connect()``."""
        xmpp = self._stream()
        cached = self._advertised_at.get(bare)
        if cached is not None and self._clock() - cached[0] < self._max_age:
            return cached[1]
        resources = set(self._resources.get(bare, ()))
        with contextlib.suppress(Exception):
            resources.update(f"{bare}/{r}" for r in xmpp.client_roster.presence(slixmpp.JID(bare)))
        disco: Any = xmpp.plugin["xep_0030"]
        found: list[set[str]] = []
        for full in sorted(resources):
            try:
                result = await disco.get_info(
                    jid=slixmpp.JID(full), cached=True, timeout=min(2.0, self._timeout)
                )
            except Exception as exc:  # gone, or not answering: it advertises nothing
                log.debug("no disco#info", extra={"jid": full, "error": first_line(exc)})
                continue
            info = result if isinstance(result, DiscoInfo) else result["disco_info"]
            found.append(set(info["features"]))
        self._advertised_at[bare] = (self._clock(), found)
        return found

    async def on_notification(self, stanza: Any) -> None:
        """A PEP notification (slixmpp's ``pubsub_publish``): device lists are handed to
        python-omemo and announced (:class:`DeviceListChanged`); other nodes, and lists
        before ``connect()`` is done, are not ours. A list that does not parse is logged and
        ignored."""
        items = stanza["pubsub_event"]["items"]
        node = items["node"]
        namespace = next((ns for ns, n in DEVICES_NODE.items() if n == node), None)
        if namespace is None or namespace not in self._namespaces:
            return
        try:
            lists = self._lists()
        except NotConnected:
            return
        peer = stanza["from"].bare
        for item in items:
            payload = item["payload"]
            if payload is None:
                continue
            try:
                if namespace == OMEMO2:
                    device_list = twomemo.etree.parse_device_list(payload)
                else:
                    device_list = oldmemo.etree.parse_device_list(payload)
                async with lists.gate.operation():
                    await lists.update_device_list(namespace, peer, device_list)
            except Exception as exc:
                log.info("ignored a bad device list", extra={"peer": peer, "error": reason(exc)})
                continue
            self._emit(DeviceListChanged(peer, namespace, tuple(sorted(device_list))))

    async def _subscribe(self, bare: str) -> None:
        """Ask for ``bare``'s device-list notifications (XEP-0060 §6.1) where its server lets
        us; a refusal (or no node yet) changes nothing: the list is fetched again when sending
        finds no device, when an unknown device writes, and after ``max_age``."""
        try:
            port = SlixmppPep(self._stream(), self._timeout)
        except NotConnected:
            return
        for namespace in self._namespaces:
            with contextlib.suppress(Exception):
                await port.subscribe(bare, DEVICES_NODE[namespace])
