"""This device's OMEMO for one connection: python-omemo's session manager, its storage and the
durability gate, with the steps every receive path shares (precheck → decrypt → trust decision).

``InterlinkClient`` builds one :class:`DeviceCrypto` per ``connect()`` and hands it to its parts
(1:1 messages, groups, trust calls); none of them reaches python-omemo another way. Every call
that touches the crypto state runs inside ``gate.operation()``, which the caller holds (so a
send can refresh device lists and encrypt in one operation)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any
from xml.etree.ElementTree import Element

import omemo
from omemo.types import DeviceInformation, DeviceList

from interlink.client.durable import CryptoGate
from interlink.client.healing import SessionRepair, broken_session
from interlink.client.omemo_session import (
    LEGACY,
    OMEMO2,
    Trust,
    addressed_as,
    addressee,
    decide_trust,
    parse_message,
    precheck,
)
from interlink.client.peer_caps import needs_twin
from interlink.client.store import SqliteOmemoStorage
from interlink.client.xmpp_port import first_line

log = logging.getLogger(__name__)

DeviceHook = Callable[[DeviceInformation], Awaitable[None]]

WROTE_IN = "/interlink/wrote-in/{bare}/{device_id}"
"""Storage key of the OMEMO version a device last wrote to this one in (its proof of reading
that version), saved with the ratchet update of the message that showed it."""


@dataclass(frozen=True, slots=True)
class Decrypted:
    """What a device of ``sender`` sent, and whether the user should be warned about it
    (``flagged``: its key changed or is undecided)."""

    plaintext: bytes
    device_id: int
    namespace: str
    flagged: bool


@dataclass(frozen=True, slots=True)
class Encrypted:
    """Text encrypted for a peer: ``messages`` for one stanza and, when some device of the peer
    may read legacy OMEMO only, ``twin``: legacy messages for a second stanza with the same id
    (see :func:`~interlink.client.peer_caps.needs_twin`); ``errors`` per device."""

    messages: list[Any]
    twin: list[Any]
    errors: list[Any]


@dataclass(frozen=True, slots=True)
class Undecryptable:
    """Why a message could not be read (shown to the user as ``DecryptionFailed``)."""

    reason: str


def fingerprint_of(identity_key: bytes) -> str:
    """The fingerprint of an identity key as users compare it (groups of hex digits)."""
    return " ".join(omemo.SessionManager.format_identity_key(identity_key))


class DeviceCrypto:
    """The session manager, storage and gate of one connection (see the module docstring)."""

    def __init__(
        self,
        manager: omemo.SessionManager,
        storage: SqliteOmemoStorage,
        gate: CryptoGate,
        *,
        own: str,
        device_id: int,
        manual_trust: bool,
        on_key_change: DeviceHook,
        on_new_device: DeviceHook,
        repair: SessionRepair,
        clock: Callable[[], float],
    ) -> None:
        self.manager = manager
        self.storage = storage
        self.gate = gate
        self.own = own
        self.device_id = device_id
        self._manual_trust = manual_trust
        self._on_key_change = on_key_change
        self._on_new_device = on_new_device
        self._repair = repair
        self._clock = clock

    async def encrypt(
        self, recipients: Iterable[str], plaintext: dict[str, bytes], order: list[str]
    ) -> tuple[list[Any], list[Any]]:
        """python-omemo's encryption for every device of ``recipients`` and this account's
        other devices: (messages, per-device errors).

        Raises:
            omemo.NoEligibleDevices: some recipient has no device that can be encrypted to.
            omemo.SessionManagerException: python-omemo refused otherwise.
        """
        messages, errors = await self.manager.encrypt(frozenset(recipients), plaintext, order)
        return list(messages), list(errors)

    async def encrypt_text(
        self, peer: str, plaintext: dict[str, bytes], order: list[str]
    ) -> Encrypted:
        """:meth:`encrypt` for ``peer``, or (when a device of it in both device lists has not
        shown that it reads OMEMO 2) OMEMO 2 for the devices in its list and a legacy twin for
        every device in the legacy list. Each device's ratchet advances once per version it is
        sent; a receiver reads one twin and leaves the other (``client/receive.py``).

        Raises:
            omemo.NoEligibleDevices: ``peer`` has no device that can be encrypted to.
            omemo.SessionManagerException: python-omemo refused otherwise.
        """
        devices = []
        if LEGACY in plaintext and OMEMO2 in plaintext:
            for device in await self.manager.get_device_information(peer):
                active = frozenset(ns for ns, on in device.active if on)
                key = WROTE_IN.format(bare=device.bare_jid, device_id=device.device_id)
                wrote = (await self.storage.load(key)).maybe(None)
                devices.append((active, wrote if isinstance(wrote, str) else None))
        if not needs_twin(devices, order):
            messages, errors = await self.encrypt([peer], plaintext, order)
            return Encrypted(messages, [], errors)
        messages, errors = await self.encrypt([peer], {OMEMO2: plaintext[OMEMO2]}, [OMEMO2])
        twin, twin_errors = await self.encrypt([peer], {LEGACY: plaintext[LEGACY]}, [LEGACY])
        return Encrypted(messages, twin, errors + twin_errors)

    async def _repair_session(self, bare: str, device_id: int) -> str:
        """Start a new session with a device whose message the session could not read, if
        :class:`~interlink.client.healing.SessionRepair` says so (python-omemo's
        ``replace_sessions`` sends it the key exchange); what to add to the reason shown."""
        if not self._repair.should_repair(bare, device_id, self._clock()):
            return ""
        devices = await self.manager.get_device_information(bare)
        device = next((d for d in devices if d.device_id == device_id), None)
        if device is None:
            return ""
        try:
            failed = await self.manager.replace_sessions(device)
        except Exception as exc:  # the bundle could not be fetched, the stream failed...
            log.warning("could not start a new session with %s/%d: %s", bare, device_id, exc)
            return ""
        if failed:
            log.warning("could not start a new session with %s/%d: %s", bare, device_id, failed)
            return ""
        return " (a new session with that device was started)"

    async def refresh_device_lists(self, bare: str) -> None:
        """Fetch ``bare``'s device lists (python-omemo's own PEP look-up).

        Raises:
            omemo.SessionManagerException: python-omemo could not fetch them.
        """
        await self.manager.refresh_device_lists(bare)

    async def update_device_list(self, namespace: str, bare: str, device_list: DeviceList) -> None:
        """Take a device list that came by notification. Raises what python-omemo raises for a
        list it refuses."""
        await self.manager.update_device_list(namespace, bare, device_list)

    async def decrypt(
        self, element: Element, sender: str, *, also: Iterable[str] = ()
    ) -> Decrypted | Undecryptable | None:
        """Read an ``<encrypted/>`` element from ``sender`` (a bare JID) and decide how far its
        device is trusted. ``None``: a key-transport or empty message, nothing for the user.
        ``also``: other addresses this account is known by where the message came (its alias
        in a room, which OMEMO 2 senders name as the recipient of its keys).
        Raises nothing: whatever python-omemo raises becomes :class:`Undecryptable`."""
        own = addressee(element, (self.own, *also), self.device_id)
        problem = await precheck(
            element, sender, own_bare=own, device_id=self.device_id, storage=self.storage
        )
        if problem is not None:
            return Undecryptable(problem)
        if own != self.own:  # python-omemo looks for this account's keys under its own address
            element = addressed_as(element, own, self.own)
        try:
            message = await parse_message(element, sender, self.own, self.manager)
        except Exception as exc:  # python-omemo raises many kinds; none may break us
            return Undecryptable(first_line(exc))
        key_exchange = any(
            exchange is not None
            for key, exchange in message.keys
            if key.bare_jid == self.own and key.device_id == self.device_id
        )
        try:
            plaintext, device, _ = await self.manager.decrypt(message)
        except Exception as exc:  # python-omemo raises many kinds; none may break us
            reason = first_line(exc)
            if not key_exchange and broken_session(exc):
                reason += await self._repair_session(message.bare_jid, message.device_id)
            return Undecryptable(reason)
        if key_exchange:
            self._repair.key_exchange_read(device.bare_jid, device.device_id, self._clock())
        if plaintext is None:
            return None
        wrote_in = WROTE_IN.format(bare=device.bare_jid, device_id=device.device_id)
        await self.storage.store(wrote_in, message.namespace)
        level = await decide_trust(
            self.manager,
            device,
            storage=self.storage,
            manual_trust=self._manual_trust,
            on_key_change=self._on_key_change,
            on_new_device=self._on_new_device,
        )
        flagged = level in (Trust.CHANGED, Trust.UNDECIDED)
        return Decrypted(plaintext, device.device_id, message.namespace, flagged)
