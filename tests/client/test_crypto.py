"""``DeviceCrypto``, the OMEMO port the SDK's parts share, over two real python-omemo accounts
whose PEP is a dict: what one encrypts the other reads with its device and trust flag; what
cannot be read becomes a reason, never an exception."""

from __future__ import annotations

import time
from pathlib import Path
from xml.etree.ElementTree import Element

import omemo
import pytest
from omemo.types import DeviceInformation

from interlink.client.crypto import Decrypted, DeviceCrypto, Undecryptable, fingerprint_of
from interlink.client.durable import CryptoGate
from interlink.client.healing import SessionRepair
from interlink.client.omemo_session import OMEMO2, serialize_message
from interlink.client.store import SqliteOmemoStorage
from tests.client.test_omemo_session import account

ALICE = "alice@h.test"
BOB = "bob@h.test"


async def crypto_of(
    manager: omemo.SessionManager, storage: SqliteOmemoStorage, own: str, seen: list[str]
) -> DeviceCrypto:
    this, _ = await manager.get_own_device_information()

    async def new_device(device: DeviceInformation) -> None:
        seen.append(f"new {device.bare_jid}")

    async def key_change(device: DeviceInformation) -> None:
        seen.append(f"changed {device.bare_jid}")

    return DeviceCrypto(
        manager,
        storage,
        CryptoGate(storage),
        own=own,
        device_id=this.device_id,
        manual_trust=False,
        on_key_change=key_change,
        on_new_device=new_device,
        repair=SessionRepair(own, this.device_id),
        clock=time.monotonic,
    )


async def test_what_one_device_encrypts_the_other_decrypts_with_its_device_and_trust(
    tmp_path: Path,
) -> None:
    items: dict[tuple[str, str, str], Element] = {}
    alice_manager, alice_storage = await account(items, ALICE, tmp_path)
    bob_manager, bob_storage = await account(items, BOB, tmp_path)
    seen: list[str] = []
    try:
        alice = await crypto_of(alice_manager, alice_storage, ALICE, seen)
        bob = await crypto_of(bob_manager, bob_storage, BOB, seen)
        async with alice.gate.operation():
            await alice_manager.refresh_device_lists(BOB)
            messages, errors = await alice.encrypt([BOB], {OMEMO2: b"hi"}, [OMEMO2])
        assert errors == []
        (message,) = messages
        element = serialize_message(message)
        async with bob.gate.operation():
            opened = await bob.decrypt(element, ALICE)
        # first contact: trusted blindly and silently, so not flagged
        assert opened == Decrypted(b"hi", alice.device_id, OMEMO2, flagged=False)
        assert seen == []
        async with bob.gate.operation():
            again = await bob.decrypt(element, ALICE)  # a replay
        assert isinstance(again, Undecryptable)
        assert again.reason
        this, _ = await bob_manager.get_own_device_information()
        fingerprint = fingerprint_of(this.identity_key)
        assert len(fingerprint.replace(" ", "")) == 64
        assert " " in fingerprint
    finally:
        for manager, storage in ((alice_manager, alice_storage), (bob_manager, bob_storage)):
            await manager.shutdown()
            await storage.close()


async def test_an_element_nobody_can_read_is_a_reason_not_an_exception(tmp_path: Path) -> None:
    items: dict[tuple[str, str, str], Element] = {}
    bob_manager, bob_storage = await account(items, BOB, tmp_path)
    try:
        bob = await crypto_of(bob_manager, bob_storage, BOB, [])
        garbage = Element(f"{{{OMEMO2}}}encrypted")
        async with bob.gate.operation():
            opened = await bob.decrypt(garbage, ALICE)
        assert isinstance(opened, Undecryptable)
        assert opened.reason
    finally:
        await bob_manager.shutdown()
        await bob_storage.close()


async def test_encrypting_to_an_account_without_devices_names_it(tmp_path: Path) -> None:
    items: dict[tuple[str, str, str], Element] = {}
    alice_manager, alice_storage = await account(items, ALICE, tmp_path)
    try:
        alice = await crypto_of(alice_manager, alice_storage, ALICE, [])
        async with alice.gate.operation():
            with pytest.raises(omemo.NoEligibleDevices) as refused:
                await alice.encrypt(["nobody@h.test"], {OMEMO2: b"hi"}, [OMEMO2])
        assert refused.value.bare_jids == frozenset({"nobody@h.test"})
    finally:
        await alice_manager.shutdown()
        await alice_storage.close()
