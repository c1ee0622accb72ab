"""``PeerDevices`` over fakes of its ports with a clock passed in: device lists are fetched
again only after ``max_age`` (or when forced), never while offline once known, the first look
subscribes, a new session starts over, and device-list notifications reach python-omemo."""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any
from xml.etree.ElementTree import Element

import pytest
import slixmpp
import twomemo.etree
from omemo.types import DeviceList

from interlink.client.durable import CryptoGate
from interlink.client.errors import NotConnected
from interlink.client.events import ClientEvent, DeviceListChanged
from interlink.client.omemo_session import DEVICES_NODE, LEGACY, OMEMO2
from interlink.client.peer_devices import PeerDevices
from tests.client.test_durable import FakeStorage

ME = "me@hub.test"
BOB = "bob@hub.test"


def no_stream() -> slixmpp.ClientXMPP:
    raise NotConnected  # subscribing is spawned, and the fake spawn runs nothing


class FakeLists:
    def __init__(self) -> None:
        self.gate = CryptoGate(FakeStorage([]))
        self.fetched: list[str] = []
        self.updated: list[tuple[str, str, DeviceList]] = []

    async def refresh_device_lists(self, bare: str) -> None:
        self.fetched.append(bare)

    async def update_device_list(self, namespace: str, bare: str, device_list: DeviceList) -> None:
        self.updated.append((namespace, bare, device_list))


class Setup:
    def __init__(self, *, connected: bool = True) -> None:
        self.now = 1000.0
        self.is_online = True
        self.connected = connected
        self.lists = FakeLists()
        self.spawned: list[str] = []
        self.events: list[ClientEvent] = []
        self.peers = PeerDevices(
            own=ME,
            namespaces=[OMEMO2],
            max_age=600.0,
            timeout=2.0,
            clock=lambda: self.now,
            stream=no_stream,
            lists=self._lists,
            online=lambda: self.is_online,
            spawn=self._spawn,
            emit=self.events.append,
        )

    def _lists(self) -> FakeLists:
        if not self.connected:
            raise NotConnected
        return self.lists

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        self.spawned.append(getattr(coro, "__qualname__", "?"))
        coro.close()


async def test_lists_are_fetched_again_only_after_max_age_or_when_forced() -> None:
    s = Setup()
    await s.peers.refresh(BOB)
    s.now += 599
    await s.peers.refresh(BOB)
    assert s.lists.fetched == [BOB]
    await s.peers.look_up(BOB, force=True)  # no device could be encrypted to
    s.now += 599
    await s.peers.refresh(BOB)
    assert s.lists.fetched == [BOB, BOB]
    s.now += 1
    await s.peers.refresh(BOB)
    assert s.lists.fetched == [BOB, BOB, BOB]
    assert s.spawned == ["PeerDevices._subscribe"]  # the first look only


async def test_offline_what_is_known_will_do_and_a_new_session_starts_over() -> None:
    s = Setup()
    await s.peers.refresh(BOB)
    s.is_online = False
    s.now += 10_000
    await s.peers.look_up(BOB, force=True)
    assert s.lists.fetched == [BOB]
    s.is_online = True
    await s.peers.refresh(BOB)
    assert s.lists.fetched == [BOB, BOB]
    s.peers.forget()  # a new session: notifications may have been missed
    await s.peers.refresh(BOB)
    assert s.lists.fetched == [BOB, BOB, BOB]


async def test_this_account_s_own_lists_are_not_subscribed_to() -> None:
    s = Setup()
    s.peers.fetched(ME)
    await s.peers.refresh(ME)
    assert s.lists.fetched == []
    s.now += 600
    await s.peers.refresh(ME)
    assert s.lists.fetched == [ME]
    assert s.spawned == []


def notification(node: str, payload: Element | None, sender: str = BOB) -> Any:
    item = {"payload": payload}

    class Items(list[dict[str, Element | None]]):
        def __getitem__(self, key: Any) -> Any:
            return node if key == "node" else super().__getitem__(key)

    return {"pubsub_event": {"items": Items([item])}, "from": slixmpp.JID(sender)}


async def test_a_device_list_notification_reaches_python_omemo_and_is_announced() -> None:
    s = Setup()
    payload = twomemo.etree.serialize_device_list({7: None, 3: None})
    await s.peers.on_notification(notification(DEVICES_NODE[OMEMO2], payload))
    assert s.lists.updated == [(OMEMO2, BOB, {7: None, 3: None})]
    assert s.events == [DeviceListChanged(BOB, OMEMO2, (3, 7))]
    # a list that does not parse, a version not enabled, another node: nothing happens
    await s.peers.on_notification(notification(DEVICES_NODE[OMEMO2], Element("{x}junk")))
    await s.peers.on_notification(notification(DEVICES_NODE[LEGACY], payload))
    await s.peers.on_notification(notification("urn:xmpp:avatar:metadata", payload))
    assert len(s.lists.updated) == 1
    assert len(s.events) == 1


async def test_before_connect_notifications_are_ignored_and_look_ups_refused() -> None:
    s = Setup(connected=False)
    payload = twomemo.etree.serialize_device_list({7: None})
    await s.peers.on_notification(notification(DEVICES_NODE[OMEMO2], payload))
    assert s.events == []
    with pytest.raises(NotConnected):
        await s.peers.refresh(BOB)


def test_max_age_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        PeerDevices(
            own=ME,
            namespaces=[OMEMO2],
            max_age=0,
            timeout=2.0,
            clock=lambda: 0.0,
            stream=no_stream,
            lists=FakeLists,
            online=lambda: True,
            spawn=lambda coro: coro.close(),
            emit=lambda event: None,
        )
