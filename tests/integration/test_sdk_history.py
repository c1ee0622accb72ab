"""The SDK reads its account's archive (XEP-0313) over a loopback hub: what this device read
before is not decrypted again (OMEMO keys are used up), what went to another device of the
account while this one was away is decrypted once, from the archive."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from interlink.client import (
    Archived,
    ClientError,
    DecryptionFailed,
    GroupMessage,
    InterlinkClient,
    RoomArchived,
    TextMessage,
)
from tests.integration.kit import DOMAIN, drain, next_text, running_hub, sdk_client

BOB = f"bob@{DOMAIN}"
ROOM = f"team@groups.{DOMAIN}"
ALICE = f"alice@{DOMAIN}"


async def history(client: InterlinkClient, **kwargs: object) -> list[Archived]:
    return [item async for item in client.history(**kwargs)]  # type: ignore[arg-type]


def texts(items: list[Archived]) -> list[str]:
    return [e.text for item in items for e in item.events if isinstance(e, TextMessage)]


async def test_a_restarted_device_reads_its_history_without_decrypting_twice(
    tmp_path: Path,
) -> None:
    async with running_hub(tmp_path) as (server, certs):
        port = server.ports["c2s-starttls"]
        alice = sdk_client(tmp_path, f"{ALICE}/phone", port, certs, "alice")
        bob = sdk_client(tmp_path, f"{BOB}/laptop", port, certs, "bob")
        await bob.connect()
        await alice.connect()
        try:
            await alice.send_text(BOB, "one")
            assert (await next_text(bob)).text == "one"
            reply_id = await bob.send_text(ALICE, "reply")
            assert (await next_text(alice)).text == "reply"
            await bob.close()
            await alice.send_text(BOB, "while away")
            await asyncio.sleep(0.3)
            bob = sdk_client(tmp_path, f"{BOB}/laptop", port, certs, "bob")  # same data dir
            await bob.connect()
            items = await history(bob, page_size=2)  # three pages
            live = await drain(bob)
            # with the texts, the encrypted receipts both ways (they are archived too)
            assert all(i.peer == ALICE for i in items)
            assert items[0].seen  # "one": read live by the first instance
            assert not items[0].events
            [reply] = [i for i in items if i.message_id == reply_id]
            assert reply.seen  # this device wrote it (and could not decrypt it)
            assert reply.outgoing
            every = [e for i in items for e in i.events] + live
            assert not [e for e in every if isinstance(e, DecryptionFailed)]
            # the offline copy and the archived one are the same message: shown once
            shown = [e.text for e in every if isinstance(e, TextMessage)]
            assert shown == ["while away"]
            assert all(i.archived_at is not None for i in items)
            assert len({i.archive_id for i in items}) == len(items) >= 3
            # read again, and after the last id: nothing decrypted, nothing new
            again = await history(bob)
            # one page now (a receipt sent meanwhile may have joined the archive)
            assert [i.archive_id for i in again[: len(items)]] == [i.archive_id for i in items]
            assert all(i.seen for i in again)
            assert not texts(again)
            assert await history(bob, after_id=again[-1].archive_id) == []
            assert len(await history(bob, limit=1)) == 1
            with pytest.raises(ClientError, match="item-not-found"):
                await history(bob, after_id="no-such-id")
            with pytest.raises(ValueError, match="page_size"):
                await history(bob, page_size=0)
        finally:
            await alice.close()
            await bob.close()


async def test_what_another_device_received_meanwhile_comes_from_the_archive(
    tmp_path: Path,
) -> None:
    async with running_hub(tmp_path) as (server, certs):
        port = server.ports["c2s-starttls"]
        laptop = sdk_client(tmp_path, f"{BOB}/laptop", port, certs, "laptop")
        await laptop.connect()  # publishes the laptop's device
        phone = sdk_client(tmp_path, f"{BOB}/phone", port, certs, "phone")
        await phone.connect()
        alice = sdk_client(tmp_path, f"{ALICE}/phone", port, certs, "alice")
        await alice.connect()
        try:
            await laptop.close()
            await alice.send_text(BOB, "to both devices")
            assert (await next_text(phone)).text == "to both devices"  # online: not queued
            await phone.send_text(ALICE, "from the phone")
            assert (await next_text(alice)).text == "from the phone"
            laptop = sdk_client(tmp_path, f"{BOB}/laptop", port, certs, "laptop")
            await laptop.connect()
            assert not [e for e in await drain(laptop) if isinstance(e, TextMessage)]
            items = await history(laptop, peer=ALICE)
            every = [e for i in items for e in i.events]
            assert not [e for e in every if isinstance(e, DecryptionFailed)]
            first, second = (e for e in every if isinstance(e, TextMessage))
            assert (first.text, first.outgoing, first.from_archive) == (
                "to both devices",
                False,
                True,
            )
            assert (second.text, second.outgoing, second.to) == ("from the phone", True, ALICE)
            # decrypted once: reading again decrypts nothing
            again = await history(laptop)
            assert all(i.seen for i in again)
            assert not [e for i in again for e in i.events]
        finally:
            await alice.close()
            await phone.close()
            await laptop.close()


async def room_history(client: InterlinkClient, **kwargs: object) -> list[RoomArchived]:
    return [item async for item in client.room_history(ROOM, **kwargs)]  # type: ignore[arg-type]


async def test_a_restarted_member_catches_up_from_the_rooms_archive_decrypting_once(
    tmp_path: Path,
) -> None:
    """What was said in a group while a member's device was away comes from the room's
    archive (XEP-0313 at the room's address), decrypted once: what it read live and what it
    read from the archive before are *seen*, not failures; no need to enter the room."""
    async with running_hub(tmp_path, accounts=("alice", "bob", "carol")) as (server, certs):
        port = server.ports["c2s-starttls"]
        alice = sdk_client(tmp_path, f"{ALICE}/phone", port, certs, "alice")
        bob = sdk_client(tmp_path, f"{BOB}/laptop", port, certs, "bob")
        await alice.connect()
        await bob.connect()
        try:
            await alice.create_group(ROOM, "alice", name="Team")
            await alice.add_group_member(ROOM, BOB)
            await bob.join_group(ROOM, "bob")
            await alice.send_group_text(ROOM, "live")
            live = await next_group(bob)
            assert live.text == "live"
            await bob.close()
            for text in ("while away 1", "while away 2"):
                await alice.send_group_text(ROOM, text)
            bob = sdk_client(tmp_path, f"{BOB}/laptop", port, certs, "bob")
            await bob.connect()  # not in the room: a member reads its archive all the same
            items = await room_history(bob)
            assert [i.nick for i in items] == ["alice", "alice", "alice"]
            # members appear under their room aliases (docs/protocol.md §17), the live one too
            assert live.sender != ALICE
            assert {i.sender for i in items} == {live.sender}
            every = [e for i in items for e in i.events]
            assert not [e for e in every if isinstance(e, DecryptionFailed)]
            got = [e for e in every if isinstance(e, GroupMessage)]
            assert [g.text for g in got] == ["while away 1", "while away 2"]
            assert all(g.room == ROOM and g.sender == live.sender for g in got)
            assert items[0].seen
            assert not items[0].events
            assert items[0].message_id == live.message_id
            again = await room_history(bob, after_id=items[0].archive_id)
            assert [i.archive_id for i in again] == [i.archive_id for i in items[1:]]
            assert all(i.seen and not i.events for i in again)  # once
            await alice.send_group_text(ROOM, "after the catch-up")
            assert (
                next(
                    e
                    for i in await room_history(bob, after_id=items[-1].archive_id)
                    for e in i.events
                    if isinstance(e, GroupMessage)
                ).text
                == "after the catch-up"
            )
            stranger = sdk_client(tmp_path, f"carol@{DOMAIN}/c", port, certs, "carol")
            await stranger.connect()
            try:
                with pytest.raises(ClientError, match="forbidden"):
                    await room_history(stranger)
            finally:
                await stranger.close()
        finally:
            await alice.close()
            await bob.close()


async def next_group(client: InterlinkClient, wait: float = 10.0) -> GroupMessage:
    while True:
        event = await client.next_event(wait)
        if isinstance(event, GroupMessage):
            return event
