"""Trust on first use, new devices and key changes, decided by ``decide_trust`` against an
in-memory stand-in for python-omemo's device information and a real SQLite store."""

from __future__ import annotations

from pathlib import Path

import pytest
from omemo.types import DeviceInformation

from interlink.client.omemo_session import Trust, decide_trust
from interlink.client.store import SqliteOmemoStorage

BOB = "bob@h.test"


class Devices:
    """What python-omemo answers about devices: trust by (account, identity key)."""

    def __init__(self) -> None:
        self.keys: dict[int, bytes] = {}
        self.trust: dict[bytes, str] = {}

    def show(self, device_id: int, key: bytes) -> DeviceInformation:
        self.keys[device_id] = key
        return self.info(device_id)

    def info(self, device_id: int) -> DeviceInformation:
        key = self.keys[device_id]
        level = self.trust.get(key, Trust.UNDECIDED.value)
        return DeviceInformation(frozenset(), frozenset(), BOB, device_id, key, level, None)

    async def get_device_information(self, bare: str) -> frozenset[DeviceInformation]:
        return frozenset(self.info(d) for d in self.keys)

    async def set_trust(self, bare: str, identity_key: bytes, level: str) -> None:
        self.trust[identity_key] = level


class Seen:
    def __init__(self) -> None:
        self.changed: list[int] = []
        self.new: list[int] = []

    async def key_changed(self, device: DeviceInformation) -> None:
        self.changed.append(device.device_id)

    async def new_device(self, device: DeviceInformation) -> None:
        self.new.append(device.device_id)


async def decide(
    devices: Devices,
    device: DeviceInformation,
    storage: SqliteOmemoStorage,
    seen: Seen,
    *,
    manual: bool = False,
) -> Trust:
    return await decide_trust(
        devices,  # type: ignore[arg-type]
        device,
        storage=storage,
        manual_trust=manual,
        on_key_change=seen.key_changed,
        on_new_device=seen.new_device,
    )


@pytest.fixture
async def storage(tmp_path: Path) -> SqliteOmemoStorage:
    return await SqliteOmemoStorage.open(tmp_path / "s.sqlite3")


async def test_all_devices_at_first_contact_are_trusted_silently(
    storage: SqliteOmemoStorage,
) -> None:
    devices, seen = Devices(), Seen()
    phone = devices.show(1, b"k1" * 16)
    devices.show(2, b"k2" * 16)
    assert await decide(devices, phone, storage, seen) is Trust.BLINDLY_TRUSTED
    # the laptop, seen at the same first contact, is covered too: no event, no flag
    assert devices.info(2).trust_level_name == Trust.BLINDLY_TRUSTED.value
    assert await decide(devices, devices.info(2), storage, seen) is Trust.BLINDLY_TRUSTED
    assert seen.changed == []
    assert seen.new == []
    await storage.close()


async def test_a_later_device_of_a_known_contact_is_a_new_device_once(
    storage: SqliteOmemoStorage,
) -> None:
    devices, seen = Devices(), Seen()
    await decide(devices, devices.show(1, b"k1" * 16), storage, seen)
    tablet = devices.show(3, b"k3" * 16)
    assert await decide(devices, tablet, storage, seen) is Trust.BLINDLY_TRUSTED
    assert await decide(devices, devices.info(3), storage, seen) is Trust.BLINDLY_TRUSTED
    assert seen.new == [3]
    assert seen.changed == []
    await storage.close()


async def test_a_replaced_identity_key_on_a_known_device_is_a_key_change(
    storage: SqliteOmemoStorage,
) -> None:
    devices, seen = Devices(), Seen()
    await decide(devices, devices.show(1, b"k1" * 16), storage, seen)
    swapped = devices.show(1, b"evil" * 8)
    assert await decide(devices, swapped, storage, seen) is Trust.CHANGED
    assert seen.changed == [1]
    assert seen.new == []
    await storage.close()


async def test_under_manual_trust_a_key_change_stays_undecided(
    storage: SqliteOmemoStorage,
) -> None:
    devices, seen = Devices(), Seen()
    await decide(devices, devices.show(1, b"k1" * 16), storage, seen, manual=True)
    swapped = devices.show(1, b"evil" * 8)
    assert await decide(devices, swapped, storage, seen, manual=True) is Trust.UNDECIDED
    assert devices.info(1).trust_level_name == Trust.UNDECIDED.value
    await storage.close()


async def test_devices_trusted_before_identities_were_remembered_are_remembered_on_sight(
    storage: SqliteOmemoStorage,
) -> None:
    devices, seen = Devices(), Seen()
    key = b"k1" * 16
    devices.show(1, key)
    devices.trust[key] = Trust.VERIFIED.value  # decided by an older SDK
    assert await decide(devices, devices.info(1), storage, seen) is Trust.VERIFIED
    assert await decide(devices, devices.show(1, b"evil" * 8), storage, seen) is Trust.CHANGED
    assert seen.changed == [1]
    await storage.close()
