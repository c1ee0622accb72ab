"""Key discovery that keeps up, and trust that does not cry wolf, with the SDK over a real hub:
keys published after the first look-up, one namespace's device list refused, a contact with
two devices at first contact, and a contact's new device."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, TypeVar

import pytest

from interlink.client import (
    ClientError,
    KeyChanged,
    NewDevice,
    TextMessage,
)
from interlink.client.omemo_session import DEVICES_NODE, LEGACY, OMEMO2
from tests.integration.kit import DOMAIN, drain, next_of, running_hub, sdk_client

T = TypeVar("T")
BOB = f"bob@{DOMAIN}"
ALICE = f"alice@{DOMAIN}"
PUBSUB = "http://jabber.org/protocol/pubsub"


async def test_keys_published_after_the_first_look_up_are_found_in_the_same_session(
    tmp_path: Path,
) -> None:
    async with running_hub(tmp_path) as (server, certs):
        port = server.ports["c2s-starttls"]
        alice = sdk_client(tmp_path, f"{ALICE}/phone", port, certs, "alice")
        bob = sdk_client(tmp_path, f"{BOB}/laptop", port, certs, "bob")
        await alice.connect()
        try:
            with pytest.raises(ClientError, match="NoEligibleDevices"):
                await alice.send_text(BOB, "anyone there?")  # Bob has no keys yet
            assert await alice.peer_fingerprints(BOB) == {}
            await bob.connect()  # publishes; Alice shares no presence with Bob: no notification
            await alice.send_text(BOB, "now you are")
            got = await next_of(bob, TextMessage)
            assert got.text == "now you are"
            assert len(await alice.peer_fingerprints(BOB)) == 1
        finally:
            await alice.close()
            await bob.close()


async def test_a_forbidden_device_list_in_one_namespace_leaves_the_other_usable(
    tmp_path: Path,
) -> None:
    async with running_hub(tmp_path) as (server, certs):
        port = server.ports["c2s-starttls"]
        alice = sdk_client(tmp_path, f"{ALICE}/phone", port, certs, "alice")
        bob = sdk_client(tmp_path, f"{BOB}/laptop", port, certs, "bob")
        await bob.connect()
        await alice.connect()
        refused: list[str] = []

        def forbid_legacy_list(stanza: Any) -> Any:
            """Answer Bob's legacy device list as Prosody answers a node it will not show."""
            items = stanza.xml.find(f"{{{PUBSUB}}}pubsub/{{{PUBSUB}}}items")
            if (
                items is not None
                and items.get("node") == DEVICES_NODE[LEGACY]
                and stanza.xml.get("from") == BOB
            ):
                for child in list(stanza.xml):
                    stanza.xml.remove(child)
                stanza["type"] = "error"
                stanza["error"]["type"] = "auth"
                stanza["error"]["condition"] = "forbidden"
                refused.append(stanza["id"])
            return stanza

        try:
            assert alice._xmpp is not None
            alice._xmpp.add_filter("in", forbid_legacy_list)
            await alice.send_text(BOB, "over OMEMO 2")
            assert refused  # the refusal was seen, and did not stop the look-up
            got = await next_of(bob, TextMessage)
            assert got.text == "over OMEMO 2"
            assert got.namespace == OMEMO2
        finally:
            await alice.close()
            await bob.close()


async def test_a_contact_with_two_devices_at_first_contact_raises_no_alarm(
    tmp_path: Path,
) -> None:
    async with running_hub(tmp_path) as (server, certs):
        port = server.ports["c2s-starttls"]
        alice = sdk_client(tmp_path, f"{ALICE}/phone", port, certs, "alice")
        laptop = sdk_client(tmp_path, f"{BOB}/laptop", port, certs, "bob-laptop")
        phone = sdk_client(tmp_path, f"{BOB}/phone", port, certs, "bob-phone")
        for c in (laptop, phone, alice):
            await c.connect()
        try:
            await alice.send_text(BOB, "hello both")
            assert (await next_of(laptop, TextMessage)).text == "hello both"
            assert (await next_of(phone, TextMessage)).text == "hello both"
            await laptop.send_text(ALICE, "from the laptop")
            await phone.send_text(ALICE, "from the phone")
            events = await drain(alice, 2.0)
            texts = [e for e in events if isinstance(e, TextMessage)]
            assert sorted(t.text for t in texts) == ["from the laptop", "from the phone"]
            assert not any(t.flagged for t in texts)
            assert not [e for e in events if isinstance(e, KeyChanged | NewDevice)]
        finally:
            for c in (alice, laptop, phone):
                await c.close()


async def test_a_new_device_of_a_known_contact_is_announced_once_and_not_flagged(
    tmp_path: Path,
) -> None:
    async with running_hub(tmp_path) as (server, certs):
        port = server.ports["c2s-starttls"]
        alice = sdk_client(tmp_path, f"{ALICE}/phone", port, certs, "alice")
        laptop = sdk_client(tmp_path, f"{BOB}/laptop", port, certs, "bob-laptop")
        for c in (laptop, alice):
            await c.connect()
        tablet = sdk_client(tmp_path, f"{BOB}/tablet", port, certs, "bob-tablet")
        try:
            await alice.send_text(BOB, "hi")
            await next_of(laptop, TextMessage)
            await tablet.connect()
            await tablet.send_text(ALICE, "new tablet")
            await tablet.send_text(ALICE, "still the tablet")
            events = await drain(alice, 2.0)
            texts = [e for e in events if isinstance(e, TextMessage)]
            assert [t.text for t in texts] == ["new tablet", "still the tablet"]
            assert not any(t.flagged for t in texts)
            news = [e for e in events if isinstance(e, NewDevice)]
            assert len(news) == 1
            assert news[0].peer == BOB
            assert news[0].fingerprint == await tablet.fingerprint()
            assert not [e for e in events if isinstance(e, KeyChanged)]
        finally:
            for c in (alice, laptop, tablet):
                await c.close()


async def test_a_peer_without_shared_presence_is_followed_by_subscription(
    tmp_path: Path,
) -> None:
    """After the first look-up the SDK subscribes to the peer's device lists (XEP-0060 §6.1):
    a device the peer adds later is announced by the hub's notification, with no new look-up
    and no presence subscription between the two."""
    from interlink.client import DeviceListChanged

    async with running_hub(tmp_path) as (server, certs):
        port = server.ports["c2s-starttls"]
        alice = sdk_client(tmp_path, f"{ALICE}/phone", port, certs, "alice")
        laptop = sdk_client(tmp_path, f"{BOB}/laptop", port, certs, "bob-laptop")
        await laptop.connect()
        await alice.connect()
        phone = sdk_client(tmp_path, f"{BOB}/phone", port, certs, "bob-phone")
        try:
            await alice.send_text(BOB, "hi")
            await next_of(laptop, TextMessage)
            assert server.storage is not None
            for _ in range(100):  # the subscriptions are made in the background
                subscribers = await server.storage.pep.subscribers(BOB, DEVICES_NODE[OMEMO2])
                if subscribers:
                    break
                await asyncio.sleep(0.05)
            assert subscribers == [ALICE]
            await phone.connect()  # publishes a device list with both of Bob's devices
            while True:
                changed = await next_of(alice, DeviceListChanged)
                if changed.peer == BOB and len(changed.device_ids) == 2:
                    break
        finally:
            for c in (alice, laptop, phone):
                await c.close()
