"""``InterlinkClient``'s trust calls: fingerprints, safety numbers, verification."""

from __future__ import annotations

import omemo
import slixmpp
from omemo.storage import StorageException

from interlink.client import trust
from interlink.client.durable import CryptoGate
from interlink.client.errors import ClientError
from interlink.client.omemo_session import Trust
from interlink.client.xmpp_port import first_line


class TrustCalls:
    """A mixin: it needs the session manager, the gate and the device-list refresh."""

    bare: str

    @property
    def manager(self) -> omemo.SessionManager:
        raise NotImplementedError

    @property
    def gate(self) -> CryptoGate:
        raise NotImplementedError

    async def _refresh(self, bare: str) -> None:
        raise NotImplementedError

    @staticmethod
    def _fingerprint(identity_key: bytes) -> str:
        return " ".join(omemo.SessionManager.format_identity_key(identity_key))

    async def fingerprint(self) -> str:
        """This device's fingerprint, to show the user. Raises :class:`NotConnected` before
        ``connect()``."""
        this, _ = await self.manager.get_own_device_information()
        return self._fingerprint(this.identity_key)

    async def peer_fingerprints(self, peer: str) -> dict[int, str]:
        """Device id → fingerprint of every known device of ``peer``. Raises
        :class:`NotConnected` before ``connect()``."""
        bare = slixmpp.JID(peer).bare
        async with self.gate.operation():
            await self._refresh(bare)
            devices = await self.manager.get_device_information(bare)
        return {d.device_id: self._fingerprint(d.identity_key) for d in devices}

    async def safety_number(self, peer: str) -> str:
        """The 60-digit safety number of the conversation with ``peer`` (same on both sides).
        Raises :class:`NotConnected` before ``connect()``."""
        bare = slixmpp.JID(peer).bare
        async with self.gate.operation():
            await self._refresh(bare)
            this, others = await self.manager.get_own_device_information()
            peer_devices = await self.manager.get_device_information(bare)
        own_keys = [this.identity_key, *(d.identity_key for d in others)]
        return trust.safety_number(
            self.bare, own_keys, bare, [d.identity_key for d in peer_devices]
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
        async with self.gate.operation():
            verified = None
            for device in await self.manager.get_device_information(bare):
                if trust.normalise_fingerprint(self._fingerprint(device.identity_key)) == wanted:
                    await self.manager.set_trust(bare, device.identity_key, Trust.VERIFIED.value)
                    verified = device.device_id
                    break
        if verified is not None:
            try:
                await self.gate.durable()
            except StorageException as exc:
                raise ClientError(f"not saved: {first_line(exc)}") from exc
            return verified
        raise ClientError(f"no device of {bare} has the fingerprint {fingerprint}")
