"""slixmpp-omemo (python-omemo's reference XMPP integration) as an independent OMEMO client in the
integration tests: :class:`PeerOmemo` configured as its documentation shows, given to a slixmpp
client by :func:`peer_omemo`, and what such a peer does in several tests (reads what it receives,
announces legacy OMEMO only, encrypts)."""

from __future__ import annotations

import asyncio
import sys
from typing import Any, ClassVar, Literal

import slixmpp
from omemo.storage import Just, Maybe, Nothing, Storage
from omemo.types import DeviceInformation, JSONType
from slixmpp.plugins import register_plugin
from slixmpp_omemo import XEP_0384

from tests.integration.kit import TIMEOUT, Xmpp

OMEMO2_DEVICES = "urn:xmpp:omemo:2:devices"


class MemoryStorage(Storage):
    def __init__(self) -> None:
        super().__init__()
        self._data: dict[str, JSONType] = {}

    async def _load(self, key: str) -> Maybe[JSONType]:
        return Just(self._data[key]) if key in self._data else Nothing()

    async def _store(self, key: str, value: JSONType) -> None:
        self._data[key] = value

    async def _delete(self, key: str) -> None:
        self._data.pop(key, None)


class PeerOmemo(XEP_0384):
    """slixmpp-omemo configured as its documentation shows: blind trust before verification."""

    name = "xep_0384"
    default_config: ClassVar[dict[str, str]] = {
        "fallback_message": "This message is OMEMO encrypted."
    }
    _store: ClassVar[MemoryStorage] = MemoryStorage()

    @property
    def storage(self) -> Storage:
        return self._store

    @property
    def _btbv_enabled(self) -> bool:
        return True

    async def _devices_blindly_trusted(
        self, blindly_trusted: frozenset[DeviceInformation], identifier: str | None
    ) -> None:
        return None

    async def _prompt_manual_trust(
        self, manually_trusted: frozenset[DeviceInformation], identifier: str | None
    ) -> None:
        return None


register_plugin(PeerOmemo)


def peer_omemo(client: Xmpp) -> Any:
    """Give ``client`` slixmpp-omemo (:class:`PeerOmemo`, with a fresh key store: one such peer
    per test); its OMEMO plugin. Its keys are published when the test first asks for its
    session manager, after login."""
    PeerOmemo._store = MemoryStorage()
    client.client.register_plugin("xep_0384", module=sys.modules[__name__])
    plugins: Any = client.client.plugin  # typed by the names slixmpp itself ships
    return plugins["xep_0384"]


def decrypted_bodies(client: Xmpp, omemo_plugin: Any, event: str = "message") -> asyncio.Queue[str]:
    """What slixmpp-omemo reads of the encrypted messages ``client`` receives from now on, as
    slixmpp reports them by ``event`` (``groupchat_message`` for a room's, with the MUC plugin
    registered): each one's decrypted body, or ``unreadable: <error>`` for one it could not
    decrypt, so that a failing test names why."""
    read: asyncio.Queue[str] = asyncio.Queue()

    async def on_message(msg: Any) -> None:
        if omemo_plugin.is_encrypted(msg):
            try:
                decrypted, _device = await omemo_plugin.decrypt_message(msg)
            except Exception as exc:  # what it could not read, named in the failure
                read.put_nowait(f"unreadable: {type(exc).__name__}: {exc}")
                return
            read.put_nowait(decrypted["body"])

    client.client.add_event_handler(event, on_message)
    return read


async def announce_legacy_only(
    client: Xmpp, omemo_plugin: Any, own: slixmpp.JID, *, options: Any = None
) -> None:
    """slixmpp-omemo announces OMEMO 2 devices it cannot serve (it has no SCE): announce none,
    readably (a missing node is "forbidden" to a stranger on Prosody, not "item-not-found"),
    with the publish ``options`` if any, and keep it from announcing itself again when it sees
    the list change. What is left is a legacy-only peer."""
    client.client.del_event_handler(
        "twomemo_device_list_publish", omemo_plugin._on_device_list_update
    )
    pubsub: Any = client.client.plugin["xep_0060"]
    await pubsub.publish(
        own,
        OMEMO2_DEVICES,
        id="current",
        payload=slixmpp.ET.fromstring("<devices xmlns='urn:xmpp:omemo:2'/>"),
        options=options,
        timeout=TIMEOUT,
    )


async def send_encrypted(
    client: Xmpp,
    omemo_plugin: Any,
    to: str,
    body: str,
    *,
    mtype: Literal["chat", "groupchat"] = "chat",
    recipient: str = "",
    held: bool = False,
) -> list[Any]:
    """slixmpp-omemo sends ``body`` to ``to`` encrypted (a ``groupchat`` to a room: for its
    member ``recipient``), after fetching the recipient's device lists afresh; the messages it
    sent, or with ``held`` made but not sent (the test sends them when it chooses)."""
    recipient = recipient or to
    manager = await omemo_plugin.get_session_manager()
    await manager.refresh_device_lists(recipient)
    stanza = client.client.make_message(mto=slixmpp.JID(to), mtype=mtype)
    stanza["body"] = body
    encrypted, errors = await omemo_plugin.encrypt_message(stanza, slixmpp.JID(recipient))
    assert encrypted is not None, f"nothing to send to {recipient}: {errors}"
    messages = list(encrypted.values()) if isinstance(encrypted, dict) else [encrypted]
    if not held:
        for message in messages:
            message.send()
    return messages
