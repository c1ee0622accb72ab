"""``InterlinkClient``'s trust calls: fingerprints, safety numbers, verification (the client
delegates to :class:`Verification`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import slixmpp
from omemo.storage import StorageException

from interlink.client import trust
from interlink.client.crypto import DeviceCrypto, fingerprint_of
from interlink.client.errors import ClientError
from interlink.client.omemo_session import Trust
from interlink.client.xmpp_port import first_line


class Verification:
    """Fingerprints, safety numbers and verification of peers' devices. Built once per client
    with the ports it needs: ``own`` this account's bare JID, ``crypto()`` this connection's
    OMEMO (raises :class:`NotConnected` before ``connect()``), ``refresh(bare)`` device lists
    fresh enough to show."""

    def __init__(
        self,
        *,
        own: str,
        crypto: Callable[[], DeviceCrypto],
        refresh: Callable[[str], Awaitable[None]],
    ) -> None:
        self._own = own
        self._crypto = crypto
        self._refresh = refresh

    async def fingerprint(self) -> str:
        """This device's fingerprint, to show the user. Raises :class:`NotConnected` before
        ``connect()``."""
        this, _ = await self._crypto().manager.get_own_device_information()
        return fingerprint_of(this.identity_key)

    async def peer_fingerprints(self, peer: str) -> dict[int, str]:
        """Device id → fingerprint of every known device of ``peer``. Raises
        :class:`NotConnected` before ``connect()``."""
        bare = slixmpp.JID(peer).bare
        crypto = self._crypto()
        async with crypto.gate.operation():
            await self._refresh(bare)
            devices = await crypto.manager.get_device_information(bare)
        return {d.device_id: fingerprint_of(d.identity_key) for d in devices}

    async def safety_number(self, peer: str) -> str:
        """The 60-digit safety number of the conversation with ``peer`` (same on both sides).
        Raises :class:`NotConnected` before ``connect()``."""
        bare = slixmpp.JID(peer).bare
        crypto = self._crypto()
        async with crypto.gate.operation():
            await self._refresh(bare)
            this, others = await crypto.manager.get_own_device_information()
            peer_devices = await crypto.manager.get_device_information(bare)
        own_keys = [this.identity_key, *(d.identity_key for d in others)]
        return trust.safety_number(
            self._own, own_keys, bare, [d.identity_key for d in peer_devices]
        )

    async def verify(self, peer: str, fingerprint: str) -> int:
        """Mark the device of ``peer`` with this fingerprint as verified; returns its device id.
        Messages from it are no longer flagged.

        Raises:
            NotConnected: before ``connect()``.
            ClientError: no device of ``peer`` has this fingerprint, or the trust could not be
                saved.
        """
        bare = slixmpp.JID(peer).bare
        wanted = trust.normalise_fingerprint(fingerprint)
        crypto = self._crypto()
        async with crypto.gate.operation():
            verified = None
            for device in await crypto.manager.get_device_information(bare):
                if trust.normalise_fingerprint(fingerprint_of(device.identity_key)) == wanted:
                    await crypto.manager.set_trust(bare, device.identity_key, Trust.VERIFIED.value)
                    verified = device.device_id
                    break
        if verified is not None:
            try:
                await crypto.gate.durable()
            except StorageException as exc:
                raise ClientError(f"not saved: {first_line(exc)}") from exc
            return verified
        raise ClientError(f"no device of {bare} has the fingerprint {fingerprint}")
