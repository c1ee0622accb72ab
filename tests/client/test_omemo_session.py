"""The SDK's SessionManager subclass: its device-information cache never serves stale trust or
devices, and decryption leaves the replay record committed."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from xml.etree.ElementTree import Element

import omemo
import twomemo
from omemo.types import DeviceInformation

from interlink.client.omemo_session import OMEMO2, Trust, parse_message, session_manager_class
from interlink.client.store import SqliteOmemoStorage


class DictPep:
    """PEP in a dict shared by all accounts (no server)."""

    def __init__(self, items: dict[tuple[str, str, str], Element], owner: str) -> None:
        self._items = items
        self._owner = owner

    async def publish(self, node: str, item_id: str, payload: Element, *, max_items: str) -> None:
        if max_items == "1":
            for key in [k for k in self._items if k[:2] == (self._owner, node)]:
                del self._items[key]
        self._items[(self._owner, node, item_id)] = payload

    async def retract(self, node: str, item_id: str) -> None:
        self._items.pop((self._owner, node, item_id), None)

    async def fetch(self, owner: str, node: str, item_id: str | None) -> Element | None:
        if item_id is None:
            found = [v for k, v in self._items.items() if k[:2] == (owner, node)]
            return found[-1] if found else None
        return self._items.get((owner, node, item_id))

    async def send_encrypted(self, to: str, encrypted: Element) -> None:
        pass


async def _no_key_change(device: DeviceInformation) -> None:
    raise AssertionError("unexpected key change")


async def account(
    items: dict[tuple[str, str, str], Element], jid: str, path: Path
) -> tuple[omemo.SessionManager, SqliteOmemoStorage]:
    storage = await SqliteOmemoStorage.open(path / f"{jid}.sqlite3")
    cls = session_manager_class(
        DictPep(items, jid), storage=storage, manual_trust=False, on_key_change=_no_key_change
    )
    manager = await cls.create([twomemo.Twomemo(storage)], storage, jid, None, "UNDECIDED")
    return manager, storage


async def test_trust_and_device_changes_are_seen_at_once(tmp_path: Path) -> None:
    items: dict[tuple[str, str, str], Element] = {}
    alice, alice_storage = await account(items, "alice@h.test", tmp_path)
    bob, bob_storage = await account(items, "bob@h.test", tmp_path)
    try:
        await alice.refresh_device_lists("bob@h.test")
        (device,) = await alice.get_device_information("bob@h.test")
        assert device.trust_level_name == "UNDECIDED"
        assert await alice.get_device_information("bob@h.test") == {device}  # cached
        await alice.set_trust("bob@h.test", device.identity_key, Trust.VERIFIED.value)
        (device,) = await alice.get_device_information("bob@h.test")
        assert device.trust_level_name == Trust.VERIFIED.value
        # bob's second device appears in his list: alice sees it after the update
        (tmp_path / "second").mkdir()
        bob2, bob2_storage = await account(items, "bob@h.test", tmp_path / "second")
        try:
            await alice.refresh_device_lists("bob@h.test")
            devices = await alice.get_device_information("bob@h.test")
            assert len(devices) == 2
        finally:
            await bob2.shutdown()
            await bob2_storage.close()
    finally:
        for manager, storage in ((alice, alice_storage), (bob, bob_storage)):
            await manager.shutdown()
            await storage.close()


async def test_the_replay_record_commits_with_the_session(tmp_path: Path) -> None:
    items: dict[tuple[str, str, str], Element] = {}
    alice, alice_storage = await account(items, "alice@h.test", tmp_path)
    bob, bob_storage = await account(items, "bob@h.test", tmp_path)
    try:
        await alice.refresh_device_lists("bob@h.test")
        messages, errors = await alice.encrypt(frozenset(["bob@h.test"]), {OMEMO2: b"hi"})
        assert not errors
        (message,) = messages
        element = twomemo.etree.serialize_message(message)
        assert await bob_storage.first_sight(b"x" * 32, 1000.0, 100.0)
        parsed = await parse_message(element, "alice@h.test", "bob@h.test", bob)
        plaintext, _, _ = await bob.decrypt(parsed)
        assert plaintext == b"hi"
        other = sqlite3.connect(tmp_path / "bob@h.test.sqlite3")
        try:
            assert other.execute("SELECT count(*) FROM seen_keys").fetchone() == (0,)
            bob_storage.commit()  # one commit: the record with the session that used the key
            assert other.execute("SELECT count(*) FROM seen_keys").fetchone() == (1,)
        finally:
            other.close()
    finally:
        for manager, storage in ((alice, alice_storage), (bob, bob_storage)):
            await manager.shutdown()
            await storage.close()


async def test_no_library_code_is_changed_unless_the_speedups_are_asked_for(
    tmp_path: Path,
) -> None:
    import x3dh.pre_key_pair

    from interlink.client import prekey_memo, ratchet_memo

    before = x3dh.pre_key_pair.PreKeyPair.__dict__["pub"]
    storage = await SqliteOmemoStorage.open(tmp_path / "s.sqlite3")
    try:
        plain = session_manager_class(
            DictPep({}, "a@h.test"),
            storage=storage,
            manual_trust=False,
            on_key_change=_no_key_change,
        )
        assert x3dh.pre_key_pair.PreKeyPair.__dict__["pub"] is before
        assert "_SessionManager__get_device_information" not in vars(plain)
        fast = session_manager_class(
            DictPep({}, "a@h.test"),
            storage=storage,
            manual_trust=False,
            on_key_change=_no_key_change,
            speedups=True,
        )
        assert "_SessionManager__get_device_information" in vars(fast)
        assert x3dh.pre_key_pair.PreKeyPair.__dict__["pub"] is not before
    finally:
        prekey_memo.uninstall()
        ratchet_memo.uninstall()
        await storage.close()
