"""python-omemo's SessionManager, bound to a connection through a small port.

python-omemo asks for its XMPP interactions as static hooks (upload and download bundles and
device lists, send key-transport messages) and a trust policy. :func:`session_manager_class`
builds a subclass whose hooks call a :class:`PepPort`, so the crypto core never sees slixmpp.

Trust: trust on first use. Every device an account shows at first contact (no device of it
trusted yet) is trusted blindly, silently. A device that appears later for an account already
trusted is a *new device*: reported once (:class:`~interlink.client.events.NewDevice`) and
trusted blindly too — people add phones. A *key change* is a known device (the same device id)
showing an identity key other than the one first seen for it, which is what a substituted key
looks like: it is reported (:class:`~interlink.client.events.KeyChanged`) and, under the default
policy, accepted but flagged until the user verifies it; under the manual policy it stays
undecided and messages to that device fail until it is verified. The identity key first seen
for each device is remembered in the storage (:data:`SEEN_IDENTITY`).
"""

from __future__ import annotations

import base64
import enum
import hashlib
import importlib.metadata
import time
from collections.abc import Awaitable, Callable, Sequence
from copy import deepcopy as copy_element
from typing import Any, Protocol
from xml.etree.ElementTree import Element

import oldmemo
import oldmemo.etree
import omemo
import twomemo
import twomemo.etree
from omemo.types import DeviceInformation, DeviceList
from omemo.types import TrustLevel as CoreTrust

from interlink.client import prekey_memo, ratchet_memo
from interlink.client.omemo2_parse import ENCRYPTED, parse_encrypted
from interlink.client.store import SqliteOmemoStorage

OMEMO2 = twomemo.twomemo.NAMESPACE
REPLAY_WINDOW = 90 * 86400  # seconds a message's key material is remembered
REPLAYED = "replayed message: this key material was received before"
LEGACY = oldmemo.oldmemo.NAMESPACE
DEVICES_NODE = {OMEMO2: "urn:xmpp:omemo:2:devices", LEGACY: f"{LEGACY}.devicelist"}


def bundle_node(namespace: str, device_id: int) -> tuple[str, str]:
    """(node, item id) of a device's bundle."""
    if namespace == OMEMO2:
        return "urn:xmpp:omemo:2:bundles", str(device_id)
    return f"{LEGACY}.bundles:{device_id}", "current"


class Trust(enum.Enum):
    VERIFIED = "VERIFIED"
    BLINDLY_TRUSTED = "BLINDLY_TRUSTED"  # first use
    CHANGED = "CHANGED"  # a key change accepted but not verified: messages are flagged
    UNDECIDED = "UNDECIDED"
    DISTRUSTED = "DISTRUSTED"


SEEN_IDENTITY = "/interlink/seen-identity/{bare}/{device_id}"
"""Storage key of the identity key (base64) first seen for a device (not under python-omemo's
own keys, so it outlives python-omemo's view of the device)."""


async def _nothing(device: DeviceInformation) -> None:
    return None


class PepPort(Protocol):
    """What the session manager needs from the connection."""

    async def publish(
        self, node: str, item_id: str, payload: Element, *, max_items: str
    ) -> None: ...

    async def retract(self, node: str, item_id: str) -> None: ...

    async def fetch(self, owner: str, node: str, item_id: str | None) -> Element | None:
        """The payload of one item (the newest when ``item_id`` is None), or None."""

    async def send_encrypted(self, to: str, encrypted: Element) -> None: ...


def session_manager_class(
    port: PepPort,
    *,
    storage: omemo.Storage,
    manual_trust: bool,
    on_key_change: Callable[[DeviceInformation], Awaitable[None]],
    before_sending: Callable[[], None] = lambda: None,
    on_new_device: Callable[[DeviceInformation], Awaitable[None]] = _nothing,
    speedups: bool = False,
) -> type[omemo.SessionManager]:
    """A SessionManager subclass whose hooks go through ``port``. ``before_sending`` runs
    before python-omemo publishes or sends anything by itself (keys, device lists, session
    healing messages); the SDK commits the crypto state there through its gate, so nothing
    leaves that the state on disk does not account for, and what was encrypted before (held
    back for that commit) leaves first.

    ``speedups`` (off by default) changes code of the libraries below, for the versions it was
    verified against only (:data:`VERIFIED_OMEMO`, :mod:`~interlink.client.prekey_memo`,
    :mod:`~interlink.client.ratchet_memo`); other versions run unchanged. Two of the three are
    process-wide: every user of x3dh and python-doubleratchet in the process gets them."""
    fast_device_info = False
    if speedups:
        prekey_memo.install()  # ~50 ms less per new session (see the module)
        ratchet_memo.install()  # ~10 % less per message (see the module)
        fast_device_info = _installed_version("OMEMO") in VERIFIED_OMEMO

    class InterlinkSessionManager(omemo.SessionManager):
        def __init__(self) -> None:
            super().__init__()
            self._device_info: dict[str, tuple[int, frozenset[DeviceInformation]]] = {}

        async def _cached_device_information(
            self, bare_jid: str
        ) -> tuple[frozenset[DeviceInformation], frozenset[omemo.Bundle]]:
            """python-omemo rebuilds every recipient's device information from ~7 storage reads
            per device on each encrypt and decrypt (~15 % of an encryption). It is built only
            from values under ``store.DEVICE_KEYS``, so it is cached until one of them changes
            (``SqliteOmemoStorage.device_generation``). Results that needed a bundle download
            are not cached: python-omemo uses the downloaded bundles right away."""
            build = super()._SessionManager__get_device_information  # type: ignore[misc]
            if not isinstance(storage, SqliteOmemoStorage):
                result: tuple[frozenset[DeviceInformation], frozenset[omemo.Bundle]]
                result = await build(bare_jid)
                return result
            generation = storage.device_generation
            cached = self._device_info.get(bare_jid)
            if cached is not None and cached[0] == generation:
                return cached[1], frozenset()
            result = await build(bare_jid)
            devices, bundles = result
            if not bundles and storage.device_generation == generation:
                self._device_info[bare_jid] = (generation, devices)
            return result

        @staticmethod
        async def _upload_bundle(bundle: omemo.Bundle) -> None:
            if isinstance(bundle, twomemo.twomemo.BundleImpl):
                payload = twomemo.etree.serialize_bundle(bundle)
            elif isinstance(bundle, oldmemo.oldmemo.BundleImpl):
                payload = oldmemo.etree.serialize_bundle(bundle)
            else:
                raise omemo.UnknownNamespace(f"no bundle format for {bundle.namespace}")
            node, item = bundle_node(bundle.namespace, bundle.device_id)
            try:
                before_sending()
                await port.publish(node, item, payload, max_items="max")
            except Exception as exc:
                raise omemo.BundleUploadFailed(str(exc)) from exc

        @staticmethod
        async def _download_bundle(namespace: str, bare_jid: str, device_id: int) -> omemo.Bundle:
            node, item = bundle_node(namespace, device_id)
            try:
                payload = await port.fetch(bare_jid, node, item)
            except Exception as exc:
                raise omemo.BundleDownloadFailed(str(exc)) from exc
            if payload is None:
                raise omemo.BundleNotFound(f"no bundle for {bare_jid} device {device_id}")
            try:
                if namespace == OMEMO2:
                    return twomemo.etree.parse_bundle(payload, bare_jid, device_id)
                return oldmemo.etree.parse_bundle(payload, bare_jid, device_id)
            except Exception as exc:
                raise omemo.BundleDownloadFailed(f"invalid bundle: {exc}") from exc

        @staticmethod
        async def _delete_bundle(namespace: str, device_id: int) -> None:
            node, item = bundle_node(namespace, device_id)
            try:
                before_sending()
                await port.retract(node, item)
            except Exception as exc:
                raise omemo.BundleDeletionFailed(str(exc)) from exc

        @staticmethod
        async def _upload_device_list(namespace: str, device_list: DeviceList) -> None:
            if namespace == OMEMO2:
                payload = twomemo.etree.serialize_device_list(device_list)
            else:
                payload = oldmemo.etree.serialize_device_list(device_list)
            try:
                before_sending()
                await port.publish(DEVICES_NODE[namespace], "current", payload, max_items="1")
            except Exception as exc:
                raise omemo.DeviceListUploadFailed(str(exc)) from exc

        @staticmethod
        async def _download_device_list(namespace: str, bare_jid: str) -> DeviceList:
            try:
                payload = await port.fetch(bare_jid, DEVICES_NODE[namespace], None)
            except Exception as exc:
                raise omemo.DeviceListDownloadFailed(str(exc)) from exc
            if payload is None:
                return {}
            try:
                if namespace == OMEMO2:
                    return twomemo.etree.parse_device_list(payload)
                return oldmemo.etree.parse_device_list(payload)
            except Exception as exc:
                raise omemo.DeviceListDownloadFailed(f"invalid device list: {exc}") from exc

        async def _evaluate_custom_trust_level(self, device: DeviceInformation) -> CoreTrust:
            try:
                trust = Trust(device.trust_level_name)
            except ValueError as exc:
                raise omemo.UnknownTrustLevel(device.trust_level_name) from exc
            if trust in (Trust.VERIFIED, Trust.BLINDLY_TRUSTED, Trust.CHANGED):
                return CoreTrust.TRUSTED
            if trust is Trust.DISTRUSTED:
                return CoreTrust.DISTRUSTED
            return CoreTrust.UNDECIDED

        async def _make_trust_decision(
            self, undecided: frozenset[DeviceInformation], identifier: str | None
        ) -> None:
            # Decided together: at first contact, all of an account's devices are first seen.
            first = {
                bare: await first_contact(self, bare) for bare in {d.bare_jid for d in undecided}
            }
            for device in sorted(undecided, key=lambda d: (d.bare_jid, d.device_id)):
                await decide_trust(
                    self,
                    device,
                    storage=storage,
                    manual_trust=manual_trust,
                    on_key_change=on_key_change,
                    on_new_device=on_new_device,
                    first=first[device.bare_jid],
                )

        @staticmethod
        async def _send_message(message: omemo.Message, bare_jid: str) -> None:
            element = serialize_message(message)
            try:
                before_sending()
                await port.send_encrypted(bare_jid, element)
            except Exception as exc:
                raise omemo.MessageSendingFailed(str(exc)) from exc

    if not fast_device_info:
        return InterlinkSessionManager

    class FasterSessionManager(InterlinkSessionManager):
        # python-omemo's private method, overridden only for VERIFIED_OMEMO
        _SessionManager__get_device_information = InterlinkSessionManager._cached_device_information

    return FasterSessionManager


VERIFIED_OMEMO = frozenset(("2.1.0",))
"""python-omemo versions whose private ``__get_device_information`` the device-information cache
was checked against (its signature, and that it reads only ``store.DEVICE_KEYS``)."""


def _installed_version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


_TRUSTING = (Trust.VERIFIED.value, Trust.BLINDLY_TRUSTED.value, Trust.CHANGED.value)


async def first_contact(manager: omemo.SessionManager, bare: str) -> bool:
    """Whether no device of ``bare`` is trusted yet (then all it shows is trusted blindly)."""
    known = await manager.get_device_information(bare)
    return not any(d.trust_level_name in _TRUSTING for d in known)


async def _seen_identity(storage: omemo.Storage, device: DeviceInformation) -> bytes | None:
    key = SEEN_IDENTITY.format(bare=device.bare_jid, device_id=device.device_id)
    seen = (await storage.load(key)).maybe(None)
    return base64.b64decode(seen) if isinstance(seen, str) else None


async def _remember_identity(storage: omemo.Storage, device: DeviceInformation) -> None:
    key = SEEN_IDENTITY.format(bare=device.bare_jid, device_id=device.device_id)
    await storage.store(key, base64.b64encode(device.identity_key).decode())


async def decide_trust(
    manager: omemo.SessionManager,
    device: DeviceInformation,
    *,
    storage: omemo.Storage,
    manual_trust: bool,
    on_key_change: Callable[[DeviceInformation], Awaitable[None]],
    on_new_device: Callable[[DeviceInformation], Awaitable[None]] = _nothing,
    first: bool | None = None,
) -> Trust:
    """The trust level of ``device`` (met while sending or receiving), deciding it for an
    undecided one (see the module docstring). ``first``: whether this is the first contact with
    the account (computed when None). ``storage`` remembers each device's first identity key
    (the session manager's own storage)."""
    seen = await _seen_identity(storage, device)
    if device.trust_level_name != Trust.UNDECIDED.value:
        if seen is None:  # decided before identities were remembered
            await _remember_identity(storage, device)
        return Trust(device.trust_level_name)
    if seen is not None and seen != device.identity_key:
        await on_key_change(device)
        level = Trust.UNDECIDED if manual_trust else Trust.CHANGED
    else:
        level = Trust.BLINDLY_TRUSTED
        if first is None:
            first = await first_contact(manager, device.bare_jid)
        if seen is None and not first:
            await on_new_device(device)
        if first:  # trust on first use covers every device the account shows now
            for other in await manager.get_device_information(device.bare_jid):
                undecided = other.trust_level_name == Trust.UNDECIDED.value
                if (
                    undecided
                    and other.device_id != device.device_id
                    and await _seen_identity(storage, other) is None
                ):
                    await manager.set_trust(other.bare_jid, other.identity_key, level.value)
                    await _remember_identity(storage, other)
    if level is not Trust.UNDECIDED:
        await manager.set_trust(device.bare_jid, device.identity_key, level.value)
    if seen is None:
        await _remember_identity(storage, device)
    return level


def serialize_message(message: omemo.Message) -> Element:
    if message.namespace == OMEMO2:
        return twomemo.etree.serialize_message(message)
    if message.namespace == LEGACY:
        return oldmemo.etree.serialize_message(message)
    raise omemo.UnknownNamespace(message.namespace)


async def parse_message(
    element: Element, sender: str, own: str, manager: omemo.SessionManager
) -> omemo.Message:
    """The message in an incoming ``<encrypted/>``. OMEMO 2 goes through the strict parser of
    :mod:`interlink.client.omemo2_parse` instead of twomemo's schema validation (0.5-1 ms)."""
    if element.tag == ENCRYPTED:
        return parse_encrypted(element, sender)
    result: Any = await oldmemo.etree.parse_message(element, sender, own, manager)
    return result  # type: ignore[no-any-return]


def addressee(element: Element, identities: Sequence[str], device_id: int) -> str:
    """Which of this account's addresses an ``<encrypted/>`` element holds this device's key
    under (OMEMO 2 groups keys by the recipient's address, XEP-0384 §4.4: in a room, the address
    the room shows); the first of ``identities`` when none or for legacy OMEMO."""
    namespace = element.tag[1 : element.tag.index("}")] if element.tag.startswith("{") else ""
    header = element.find(f"{{{namespace}}}header")
    if namespace == OMEMO2 and header is not None:
        rid = str(device_id)
        for keys in header.findall(f"{{{namespace}}}keys"):
            jid = keys.get("jid")
            if (
                jid is not None
                and jid in identities
                and any(k.get("rid") == rid for k in keys.findall(f"{{{namespace}}}key"))
            ):
                return jid
    return identities[0]


def holders_of_keys_for(element: Element, device_id: int) -> tuple[str, ...]:
    """The addresses an OMEMO 2 ``<encrypted/>`` element files a key for ``device_id`` under
    (this account's, or its alias in a room); none for legacy OMEMO (keys carry no address)."""
    header = element.find(f"{{{OMEMO2}}}header")
    if header is None:
        return ()
    rid = str(device_id)
    return tuple(
        jid
        for keys in header.findall(f"{{{OMEMO2}}}keys")
        if (jid := keys.get("jid")) is not None
        and any(k.get("rid") == rid for k in keys.findall(f"{{{OMEMO2}}}key"))
    )


def addressed_as(element: Element, alias: str, own: str) -> Element:
    """A copy of an OMEMO 2 ``<encrypted/>`` element whose keys for ``alias`` (this account as
    a room shows it) are filed under ``own``, the address python-omemo knows it by."""
    copy = copy_element(element)
    header = copy.find(f"{{{OMEMO2}}}header")
    for keys in () if header is None else header.findall(f"{{{OMEMO2}}}keys"):
        if keys.get("jid") == alias:
            keys.set("jid", own)
    return copy


def keys_for(element: Element, own_bare: str, device_id: int) -> list[Element]:
    """The ``<key/>`` elements of an ``<encrypted/>`` element for this device."""
    namespace = element.tag[1 : element.tag.index("}")]
    header = element.find(f"{{{namespace}}}header")
    if header is None:
        return []
    own = str(device_id)
    if namespace == OMEMO2:
        return [
            k
            for keys in header.findall(f"{{{namespace}}}keys")
            if keys.get("jid") == own_bare
            for k in keys.findall(f"{{{namespace}}}key")
            if k.get("rid") == own
        ]
    return [k for k in header.findall(f"{{{namespace}}}key") if k.get("rid") == own]


async def precheck(
    element: Element,
    sender: str,
    *,
    own_bare: str,
    device_id: int,
    storage: SqliteOmemoStorage,
    now: float | None = None,
) -> str | None:
    """Refuse, before python-omemo sees them, messages that would disturb session state without
    being readable: ones with no key for this device, and replays (the same key material again,
    whatever the payload). Returns the reason, or None."""
    namespace = element.tag[1 : element.tag.index("}")]
    header = element.find(f"{{{namespace}}}header")
    if header is None:
        return "malformed: no header"
    ours = keys_for(element, own_bare, device_id)
    if not ours:
        return "not encrypted for this device"
    digest = hashlib.sha256(
        "\0".join([namespace, sender, header.get("sid", ""), ours[0].text or ""]).encode()
    ).digest()
    when = time.time() if now is None else now
    if not await storage.first_sight(digest, when, REPLAY_WINDOW):
        return REPLAYED
    return None
