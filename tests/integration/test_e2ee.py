"""End-to-end encryption through the hub with the SDK: OMEMO 2 with SCE, and the hub never sees
what people write."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from pathlib import Path

import pytest
from omemo.storage import StorageException

from interlink.client import (
    ClientError,
    DecryptionFailed,
    InterlinkClient,
    Sent,
    TextMessage,
)
from interlink.client.client import FALLBACK_BODY
from interlink.hub.context import HubSettings
from tests.integration.kit import DOMAIN, next_text, record_routed, running_hub, sdk_client

OMEMO2 = "urn:xmpp:omemo:2"
OMEMO2_ENCRYPTED = f'encrypted xmlns="{OMEMO2}"'
LEGACY_ENCRYPTED = 'encrypted xmlns="eu.siacs.conversations.axolotl"'


async def test_two_sdk_users_exchange_encrypted_text_and_the_hub_sees_no_plaintext(
    tmp_path: Path,
) -> None:
    async with running_hub(tmp_path) as (server, certs):
        routed = record_routed(server)
        port = server.ports["c2s-starttls"]
        alice = InterlinkClient(
            f"alice@{DOMAIN}/phone", "pw", data_dir=tmp_path / "alice", port=port, ca_file=certs.ca
        )
        bob = InterlinkClient(
            f"bob@{DOMAIN}/laptop", "pw", data_dir=tmp_path / "bob", port=port, ca_file=certs.ca
        )
        await alice.connect()
        await bob.connect()
        try:
            secrets_said = ["the eagle lands at noon", "réponse: 42 ☃", "third message"]
            await alice.send_text(f"bob@{DOMAIN}", secrets_said[0])
            got = await next_text(bob)
            assert got.text == secrets_said[0]
            assert got.sender == f"alice@{DOMAIN}/phone"
            assert got.namespace == "urn:xmpp:omemo:2"
            assert not got.flagged
            await bob.send_text(f"alice@{DOMAIN}", secrets_said[1])
            assert (await next_text(alice)).text == secrets_said[1]
            await alice.send_text(f"bob@{DOMAIN}", secrets_said[2])
            assert (await next_text(bob)).text == secrets_said[2]
            everything = "\n".join(routed)
            assert (
                "urn:xmpp:omemo:2}encrypted" in everything
                or 'encrypted xmlns="urn:xmpp:omemo:2"' in everything
            )
            for text in secrets_said:
                assert text not in everything
                assert text.encode().hex() not in everything
            bodies = [line for line in routed if "<body>" in line]
            assert bodies
            assert all(FALLBACK_BODY in line for line in bodies)
        finally:
            await alice.close()
            await bob.close()


async def test_offline_recipient_decrypts_after_reconnecting_with_its_saved_keys(
    tmp_path: Path,
) -> None:
    async with running_hub(tmp_path) as (server, certs):
        port = server.ports["c2s-starttls"]
        alice = InterlinkClient(
            f"alice@{DOMAIN}/phone", "pw", data_dir=tmp_path / "alice", port=port, ca_file=certs.ca
        )
        bob = InterlinkClient(
            f"bob@{DOMAIN}/laptop", "pw", data_dir=tmp_path / "bob", port=port, ca_file=certs.ca
        )
        await bob.connect()  # publishes Bob's keys
        await bob.close()
        await alice.connect()
        try:
            await alice.send_text(f"bob@{DOMAIN}", "while you were away")
            await asyncio.sleep(0.3)
            bob = InterlinkClient(
                f"bob@{DOMAIN}/laptop", "pw", data_dir=tmp_path / "bob", port=port, ca_file=certs.ca
            )
            await bob.connect()  # same data dir: same device, same keys
            assert (await next_text(bob)).text == "while you were away"
        finally:
            await alice.close()
            await bob.close()


async def test_a_burst_shares_commits_and_a_backlog_arrives_complete_and_in_order(
    tmp_path: Path,
) -> None:
    """40 sends at once share commits of the sender's crypto state; the offline recipient gets
    all 40, in order, after reconnecting, and what it was shown is durable."""
    async with running_hub(tmp_path) as (server, certs):
        port = server.ports["c2s-starttls"]
        alice = sdk_client(tmp_path, f"alice@{DOMAIN}/phone", port, certs, "alice")
        bob = sdk_client(tmp_path, f"bob@{DOMAIN}/laptop", port, certs, "bob")
        await bob.connect()
        await bob.close()
        await alice.connect()
        try:
            before = alice.gate.commits
            texts = [f"message {i}" for i in range(40)]
            await asyncio.gather(*(alice.send_text(f"bob@{DOMAIN}", t) for t in texts))
            assert 1 <= alice.gate.commits - before < 10
            await asyncio.sleep(0.3)
            bob = sdk_client(
                tmp_path, f"bob@{DOMAIN}/laptop", port, certs, "bob"
            )  # the same device
            await bob.connect()
            got = [(await next_text(bob)).text for _ in texts]
            assert got == texts
            # the app saw them, so they are on disk: another connection reads every replay record
            with contextlib.closing(sqlite3.connect(tmp_path / "bob" / "omemo.sqlite3")) as db:
                assert db.execute("SELECT count(*) FROM seen_keys").fetchone()[0] >= len(texts)
        finally:
            await alice.close()
            await bob.close()


async def test_a_message_whose_state_cannot_be_saved_is_not_sent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If the ratchet state cannot be committed, the stanza never leaves and the app gets a
    clear error; the state rolls back, so the next message (same message key, since the failed
    one never left) reaches the peer normally."""
    async with running_hub(tmp_path) as (server, certs):
        port = server.ports["c2s-starttls"]
        alice = sdk_client(tmp_path, f"alice@{DOMAIN}/phone", port, certs, "alice")
        bob = sdk_client(tmp_path, f"bob@{DOMAIN}/laptop", port, certs, "bob")
        await alice.connect()
        await bob.connect()
        try:
            await alice.send_text(f"bob@{DOMAIN}", "first")
            assert (await next_text(bob)).text == "first"
            storage = alice._storage
            assert storage is not None

            def full_disk() -> None:  # what SqliteOmemoStorage.commit does when COMMIT fails
                storage.rollback()
                raise StorageException("cannot save the crypto state: database or disk is full")

            with monkeypatch.context() as patch:
                patch.setattr(storage, "commit", full_disk)
                with pytest.raises(ClientError, match=r"not sent: .*disk is full"):
                    await alice.send_text(f"bob@{DOMAIN}", "lost in the crash")
            await alice.send_text(f"bob@{DOMAIN}", "second")
            got = await next_text(bob)
            assert got.text == "second"  # "lost in the crash" never arrived
            assert not got.flagged
        finally:
            await alice.close()
            await bob.close()


async def test_two_devices_of_one_account_both_decrypt(tmp_path: Path) -> None:
    async with running_hub(tmp_path) as (server, certs):
        port = server.ports["c2s-starttls"]
        phone = sdk_client(tmp_path, f"alice@{DOMAIN}/phone", port, certs, "alice-phone")
        laptop = sdk_client(tmp_path, f"alice@{DOMAIN}/laptop", port, certs, "alice-laptop")
        bob = sdk_client(tmp_path, f"bob@{DOMAIN}/b", port, certs, "bob")
        for c in (phone, laptop, bob):
            await c.connect()
        try:
            await bob.send_text(f"alice@{DOMAIN}", "to both of you")
            assert (await next_text(phone)).text == "to both of you"
            assert (await next_text(laptop)).text == "to both of you"
            # Two devices' OMEMO 2 and legacy bundles (100 prekeys each) and device lists fit
            # the default PEP quota many times over.
            assert server.storage is not None
            used = await server.storage.pep.bytes_used(f"alice@{DOMAIN}")
            nodes = await server.storage.pep.nodes(f"alice@{DOMAIN}")
            assert any(n.name.startswith("eu.siacs.conversations.axolotl") for n in nodes)
            assert any(n.name.startswith("urn:xmpp:omemo:2") for n in nodes)
            assert 20_000 < used < HubSettings().pep_quota_bytes // 16, used
        finally:
            for c in (phone, laptop, bob):
                await c.close()


async def test_safety_numbers_match_and_a_reinstall_is_one_new_device_that_changes_them(
    tmp_path: Path,
) -> None:
    """A reinstall is a new device (a new id and identity key): announced once, not a key
    change (that is a known device's key replaced: tests/client/test_trust_decisions.py)."""
    from interlink.client import KeyChanged, NewDevice

    async with running_hub(tmp_path) as (server, certs):
        port = server.ports["c2s-starttls"]
        alice = sdk_client(tmp_path, f"alice@{DOMAIN}/phone", port, certs, "alice")
        bob = sdk_client(tmp_path, f"bob@{DOMAIN}/b", port, certs, "bob")
        await alice.connect()
        await bob.connect()
        try:
            await alice.send_text(f"bob@{DOMAIN}", "hello")
            assert (await next_text(bob)).text == "hello"
            a_number = await alice.safety_number(f"bob@{DOMAIN}")
            b_number = await bob.safety_number(f"alice@{DOMAIN}")
            assert a_number == b_number
            assert len(a_number.replace(" ", "")) == 60
            assert a_number.replace(" ", "").isdigit()
            # Alice reinstalls: a new device with a new identity key.
            await alice.close()
            alice = sdk_client(tmp_path, f"alice@{DOMAIN}/phone", port, certs, "alice-reinstalled")
            await alice.connect()
            await alice.send_text(f"bob@{DOMAIN}", "it is me, new phone")
            changed = None
            text = None
            for _ in range(10):
                event = await bob.next_event(10)
                assert not isinstance(event, KeyChanged)
                if isinstance(event, NewDevice):
                    assert changed is None  # once
                    changed = event
                elif isinstance(event, TextMessage):
                    text = event
                    break
            assert changed is not None
            assert changed.peer == f"alice@{DOMAIN}"
            assert text is not None
            assert text.text == "it is me, new phone"
            assert not text.flagged
            assert await bob.safety_number(f"alice@{DOMAIN}") != b_number
            # Bob compares fingerprints out of band and verifies the new device.
            new_fingerprint = await alice.fingerprint()
            assert changed.fingerprint == new_fingerprint
            await bob.verify(f"alice@{DOMAIN}", new_fingerprint.upper())
            await alice.send_text(f"bob@{DOMAIN}", "verified now")
            after = await next_text(bob)
            assert after.text == "verified now"
            assert not after.flagged
        finally:
            await alice.close()
            await bob.close()


async def test_receipts_markers_and_chat_states_round_trip_encrypted(tmp_path: Path) -> None:
    from interlink.client import ChatState, Displayed, Receipt

    async with running_hub(tmp_path) as (server, certs):
        routed = record_routed(server)
        port = server.ports["c2s-starttls"]
        alice = sdk_client(tmp_path, f"alice@{DOMAIN}/phone", port, certs, "alice")
        bob = sdk_client(tmp_path, f"bob@{DOMAIN}/b", port, certs, "bob")
        await alice.connect()
        await bob.connect()

        async def next_of(client: InterlinkClient, kind: type) -> object:
            for _ in range(10):
                event = await client.next_event(10)
                if isinstance(event, kind):
                    return event
            raise AssertionError(f"no {kind.__name__}")

        try:
            await bob.send_chat_state(f"alice@{DOMAIN}", "composing")
            state = await next_of(alice, ChatState)
            assert isinstance(state, ChatState)
            assert state.state == "composing"
            sent_id = await bob.send_text(f"alice@{DOMAIN}", "did you get this?")
            got = await next_text(alice)
            assert got.message_id == sent_id
            receipt = await next_of(bob, Receipt)  # sent automatically by Alice's client
            assert isinstance(receipt, Receipt)
            assert receipt.message_id == sent_id
            await alice.send_displayed(f"bob@{DOMAIN}", sent_id)
            displayed = await next_of(bob, Displayed)
            assert isinstance(displayed, Displayed)
            assert displayed.message_id == sent_id
            everything = "\n".join(routed)
            assert "composing" not in everything  # chat states travel encrypted
            assert "urn:xmpp:receipts" not in everything
            assert "chat-markers" not in everything
        finally:
            await alice.close()
            await bob.close()


async def test_carbons_let_a_second_device_read_and_see_what_the_first_sent(
    tmp_path: Path,
) -> None:
    async with running_hub(tmp_path) as (server, certs):
        port = server.ports["c2s-starttls"]
        phone = sdk_client(tmp_path, f"alice@{DOMAIN}/phone", port, certs, "alice-phone")
        laptop = sdk_client(tmp_path, f"alice@{DOMAIN}/laptop", port, certs, "alice-laptop")
        bob = sdk_client(tmp_path, f"bob@{DOMAIN}/b", port, certs, "bob")
        for c in (phone, laptop, bob):
            await c.connect()
        try:
            await phone.send_text(f"bob@{DOMAIN}", "sent from the phone")
            assert (await next_text(bob)).text == "sent from the phone"
            copy = await next_text(laptop)
            assert copy.text == "sent from the phone"
            assert copy.outgoing
            assert copy.to == f"bob@{DOMAIN}"
            # A message to the phone's full JID reaches the laptop as a received carbon.
            await bob.send_text(f"alice@{DOMAIN}/phone", "only to your phone")
            assert (await next_text(phone)).text == "only to your phone"
            seen = await next_text(laptop)
            assert seen.text == "only to your phone"
            assert not seen.outgoing
            assert seen.sender == f"bob@{DOMAIN}/b"
        finally:
            for c in (phone, laptop, bob):
                await c.close()


async def test_a_legacy_only_peer_is_reached_with_legacy_omemo(tmp_path: Path) -> None:
    async with running_hub(tmp_path) as (server, certs):
        routed = record_routed(server)
        port = server.ports["c2s-starttls"]
        alice = sdk_client(tmp_path, f"alice@{DOMAIN}/phone", port, certs, "alice")
        old = InterlinkClient(
            f"bob@{DOMAIN}/old",
            "pw",
            data_dir=tmp_path / "old",
            port=port,
            ca_file=certs.ca,
            omemo2=False,
        )
        await alice.connect()
        await old.connect()
        try:
            await alice.send_text(f"bob@{DOMAIN}", "hello old friend")
            got = await next_text(old)
            assert got.text == "hello old friend"
            assert got.namespace == "eu.siacs.conversations.axolotl"
            await old.send_text(f"alice@{DOMAIN}", "still here")
            back = await next_text(alice)
            assert back.text == "still here"
            assert back.namespace == "eu.siacs.conversations.axolotl"
            everything = "\n".join(routed)
            assert "hello old friend" not in everything
            assert "still here" not in everything
        finally:
            await alice.close()
            await old.close()


async def test_a_used_one_time_prekey_is_replaced_in_the_published_bundle(tmp_path: Path) -> None:
    from interlink.xmpp.xml import parse_fragment

    async with running_hub(tmp_path) as (server, certs):
        assert server.storage is not None
        port = server.ports["c2s-starttls"]
        alice = sdk_client(tmp_path, f"alice@{DOMAIN}/phone", port, certs, "alice")
        bob = sdk_client(tmp_path, f"bob@{DOMAIN}/b", port, certs, "bob")
        await alice.connect()
        await bob.connect()
        try:
            this, _ = await alice.manager.get_own_device_information()

            async def published_prekeys() -> set[str]:
                assert server.storage is not None
                (item,) = await server.storage.pep.items(
                    f"alice@{DOMAIN}", "urn:xmpp:omemo:2:bundles", ids=[str(this.device_id)]
                )
                bundle = parse_fragment(item.payload)
                return {pk.get("id") or "" for pk in bundle.iter("{urn:xmpp:omemo:2}pk")}

            before = await published_prekeys()
            assert len(before) == 100
            await bob.send_text(f"alice@{DOMAIN}", "uses one of your prekeys")
            assert (await next_text(alice)).text == "uses one of your prekeys"
            after = await published_prekeys()
            assert len(after) == 100  # refilled (python-omemo's refill threshold is 99)
            assert len(before - after) == 1  # the used one is gone for good
        finally:
            await alice.close()
            await bob.close()


async def test_a_first_text_to_devices_in_both_lists_goes_as_twins_read_once(
    tmp_path: Path,
) -> None:
    """Bob's device is in both device lists and has not written to Alice: her first text goes
    as an OMEMO 2 stanza and a legacy twin with the same id (for clients that read legacy only);
    Bob's SDK reads the OMEMO 2 one, once. After Bob wrote in OMEMO 2, one stanza suffices."""
    async with running_hub(tmp_path) as (server, certs):
        port = server.ports["c2s-starttls"]
        alice = sdk_client(tmp_path, f"alice@{DOMAIN}/a", port, certs, "alice")
        bob = sdk_client(tmp_path, f"bob@{DOMAIN}/b", port, certs, "bob")
        await alice.connect()
        await bob.connect()
        try:
            routed = record_routed(server)
            first = await alice.send_text(f"bob@{DOMAIN}", "first")
            got = await next_text(bob)
            assert (got.text, got.namespace, got.message_id) == ("first", OMEMO2, first)
            ours = [x for x in routed if f'id="{first}"' in x and x.startswith("<message")]
            assert len(ours) == 2
            assert OMEMO2_ENCRYPTED in ours[0]
            assert LEGACY_ENCRYPTED not in ours[0]
            assert FALLBACK_BODY not in ours[0]  # one fallback for the pair, on the twin
            assert LEGACY_ENCRYPTED in ours[1]
            assert FALLBACK_BODY in ours[1]
            assert f'origin-id xmlns="urn:xmpp:sid:0" id="{first}"' in ours[1]
            late = []
            with contextlib.suppress(TimeoutError):  # the twin: no second text, no failure
                while True:
                    late.append(await bob.next_event(0.7))
            assert not [e for e in late if isinstance(e, TextMessage | DecryptionFailed)]
            sent = []
            with contextlib.suppress(TimeoutError):
                while True:
                    sent.append(await alice.next_event(0.7))
            assert [e.message_id for e in sent if isinstance(e, Sent)] == [first]  # once, both
            assert alice.unacknowledged == 0
            await bob.send_text(f"alice@{DOMAIN}", "reply")
            assert (await next_text(alice)).namespace == OMEMO2
            routed.clear()
            second = await alice.send_text(f"bob@{DOMAIN}", "second")
            assert (await next_text(bob)).text == "second"
            ours = [x for x in routed if f'id="{second}"' in x and x.startswith("<message")]
            assert len(ours) == 1  # Bob's device wrote OMEMO 2: it reads it
            assert LEGACY_ENCRYPTED not in ours[0]
        finally:
            await alice.close()
            await bob.close()
