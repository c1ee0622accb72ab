"""The SDK's connection lifecycle against a real hub: a hub restarted under connected clients,
a message sent during the outage that arrives exactly once, "sent" on the hub's XEP-0198 ack,
and an account removed under a client ending with one terminal event, not a retry loop."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TypeVar

import pytest

from interlink.client import (
    ClientError,
    ConnectionEnded,
    DecryptionFailed,
    Disconnected,
    InterlinkClient,
    Receipt,
    Reconnected,
    Sent,
    TextMessage,
)
from interlink.client.lifecycle import Backoff, Keepalive
from interlink.client.outbox import OutboxFull
from interlink.xmpp.jid import JID
from tests.integration.kit import (
    DOMAIN,
    TIMEOUT,
    Certs,
    drain,
    enlisted_client,
    make_certs,
    next_of,
    running_hub,
    sdk_client,
    started_hub,
)
from tests.ports import free_port

T = TypeVar("T")
FAST = Backoff(initial=0.2, maximum=0.5, jitter=0.5, max_attempts=50)


def client(tmp: Path, jid: str, port: int, certs: Certs, folder: str) -> InterlinkClient:
    return sdk_client(tmp, jid, port, certs, folder, backoff=FAST)


async def test_hub_restart_under_connected_clients_loses_nothing_and_duplicates_nothing(
    tmp_path: Path,
) -> None:
    certs = make_certs(tmp_path)
    port = free_port()
    server = await started_hub(tmp_path, certs, net={"c2s_port": port})
    alice = client(tmp_path, f"alice@{DOMAIN}/phone", port, certs, "alice")
    bob = client(tmp_path, f"bob@{DOMAIN}/laptop", port, certs, "bob")
    try:
        await alice.connect()
        await bob.connect()
        first = await alice.send_text(f"bob@{DOMAIN}", "before")
        assert (await next_of(alice, Sent)).message_id == first  # the hub's <a/>, not the write
        assert (await next_of(bob, TextMessage)).text == "before"
        assert (await next_of(alice, Receipt)).message_id == first

        await asyncio.wait_for(server.stop(), TIMEOUT)
        lost = await next_of(alice, Disconnected)
        assert "shutting down" in lost.reason or "system-shutdown" in lost.reason
        assert 0 < lost.retry_in <= FAST.maximum
        assert not alice.online
        during = await alice.send_text(f"bob@{DOMAIN}", "during the outage")
        assert alice.unacknowledged == 1  # held, not reported as sent
        await asyncio.sleep(0.6)  # a few failed attempts against the closed port

        server = await started_hub(tmp_path, certs, net={"c2s_port": port}, accounts=())
        back = await next_of(alice, Reconnected)
        assert back.resumed is False  # a new hub process: its sessions are new
        assert (await next_of(alice, Sent)).message_id == during
        await next_of(bob, Reconnected)
        got = await next_of(bob, TextMessage)
        assert got.text == "during the outage"
        assert got.message_id == during
        later = await drain(bob, 1.0)
        assert not [e for e in later if isinstance(e, TextMessage)]  # exactly once
        assert alice.unacknowledged == 0
        await alice.send_text(f"bob@{DOMAIN}", "after")
        assert (await next_of(bob, TextMessage)).text == "after"
    finally:
        await alice.close()
        await bob.close()
        await asyncio.wait_for(server.stop(), TIMEOUT)


async def test_account_removed_under_a_client_ends_it_with_one_terminal_event(
    tmp_path: Path,
) -> None:
    async with running_hub(tmp_path) as (server, certs):
        port = server.ports["c2s-starttls"]
        alice = client(tmp_path, f"alice@{DOMAIN}/phone", port, certs, "alice")
        await alice.connect()
        try:
            assert server.storage is not None
            assert server.hub is not None
            await server.storage.accounts.delete(f"alice@{DOMAIN}")
            server.hub.end_account_sessions(JID.parse(f"alice@{DOMAIN}"), "account removed")
            ended = await next_of(alice, ConnectionEnded)
            assert "not-authorized" in ended.reason or "refused" in ended.reason
            later = await drain(alice, 1.0)
            assert not [e for e in later if isinstance(e, Disconnected | Reconnected)]
            assert not alice.online
        finally:
            await alice.close()


async def test_sessions_ended_by_the_operator_come_back_and_disabled_ones_do_not(
    tmp_path: Path,
) -> None:
    """ "End sessions" (``reset``) is a lost connection to the SDK: it logs in again. Disabling
    the account (``not-authorized``) ends it for good."""
    async with running_hub(tmp_path) as (server, certs):
        port = server.ports["c2s-starttls"]
        alice = client(tmp_path, f"alice@{DOMAIN}/phone", port, certs, "alice")
        await alice.connect()
        try:
            assert server.operator is not None
            assert server.operator.end_sessions_only(f"alice@{DOMAIN}", "ended by the operator")
            lost = await next_of(alice, Disconnected)
            assert "reset" in lost.reason
            await next_of(alice, Reconnected)
            assert alice.online
            server.operator.account_disabled(f"alice@{DOMAIN}", True)
            ended = await next_of(alice, ConnectionEnded)
            assert "not-authorized" in ended.reason or "refused" in ended.reason
            later = await drain(alice, 1.0)
            assert not [e for e in later if isinstance(e, Disconnected | Reconnected)]
        finally:
            await alice.close()


async def test_a_silent_hub_is_noticed_by_the_keepalive(tmp_path: Path) -> None:
    """A connection whose pings go unanswered is declared dead and replaced."""
    async with running_hub(tmp_path) as (server, certs):
        port = server.ports["c2s-starttls"]
        alice = InterlinkClient(
            f"alice@{DOMAIN}/phone",
            "pw",
            data_dir=tmp_path / "alice",
            port=port,
            ca_file=certs.ca,
            backoff=FAST,
            keepalive=Keepalive(interval=0.3, timeout=0.3),
        )
        await alice.connect()
        try:
            xmpp = alice._xmpp
            assert xmpp is not None
            # Hear nothing from here on: a filter ahead of the client's own (slixmpp inserts at
            # ``order``; 0 would mean "append"; position 0 is stream management's counter).
            xmpp.add_filter("in", lambda stanza: None, order=1)
            lost = await next_of(alice, Disconnected)
            assert "no answer" in lost.reason
        finally:
            await alice.close()


async def test_a_suspended_provider_s_user_gets_one_terminal_event_not_a_retry_loop(
    tmp_path: Path,
) -> None:
    import httpx

    from tests.integration.kit import onboard_provider
    from tests.interop.enlistkit import ThirdParty

    token_name = "operator-token-for-tests-0123456789"
    async with running_hub(tmp_path, admin={"token": token_name}) as (server, certs):
        base = f"https://127.0.0.1:{server.ports['http']}"
        party = ThirdParty()
        await onboard_provider(base, certs.ca, token_name, party.provider_body())
        device = tmp_path / "third-party"
        port = server.ports["c2s-starttls"]
        user = await enlisted_client(party, device, base, port, certs, backoff=FAST)
        await user.connect()
        try:
            admin = {"Authorization": f"Bearer {token_name}"}
            async with httpx.AsyncClient(verify=str(certs.ca), timeout=10) as http:
                path = f"{base}/admin/v1/providers/{party.provider_id}/suspend"
                suspended = await http.post(path, headers=admin)
                assert suspended.status_code == 200, suspended.text
            ended = await next_of(user, ConnectionEnded)
            assert "refused the login" in ended.reason
            assert "suspended" in ended.reason  # why, in the hub's words
            later = await drain(user, 1.5)
            assert not [e for e in later if isinstance(e, Reconnected | ConnectionEnded)]
            assert not user.online
        finally:
            await user.close()


async def test_a_dropped_connection_resumes_its_session_and_sends_what_waited(
    tmp_path: Path,
) -> None:
    """The connection breaks without a goodbye (the hub parks the session, XEP-0198 §5): the
    client resumes it, and a message sent while it was down arrives once."""
    async with running_hub(tmp_path) as (server, certs):
        port = server.ports["c2s-starttls"]
        alice = client(tmp_path, f"alice@{DOMAIN}/phone", port, certs, "alice")
        bob = client(tmp_path, f"bob@{DOMAIN}/laptop", port, certs, "bob")
        await alice.connect()
        await bob.connect()
        try:
            await alice.send_text(f"bob@{DOMAIN}", "first")
            assert (await next_of(bob, TextMessage)).text == "first"
            xmpp = alice._xmpp
            assert xmpp is not None
            xmpp.abort()  # the network goes away under the client
            await next_of(alice, Disconnected)
            waited = await alice.send_text(f"bob@{DOMAIN}", "sent while down")
            back = await next_of(alice, Reconnected)
            assert back.resumed  # the same session: nothing was lost, nothing re-bound
            assert (await next_of(alice, Sent)).message_id == waited
            got = await next_of(bob, TextMessage)
            assert (got.text, got.message_id) == ("sent while down", waited)
            later = await drain(bob, 1.0)
            assert not [e for e in later if isinstance(e, TextMessage)]
        finally:
            await alice.close()
            await bob.close()


async def test_a_message_accepted_during_an_outage_survives_an_sdk_restart_and_arrives_once(
    tmp_path: Path,
) -> None:
    """send_text while the hub is down, then the SDK process "ends" (close) and a new client
    on the same data directory starts while the hub is still down; once the hub is back, the
    held message goes out with its id and arrives exactly once."""
    certs = make_certs(tmp_path)
    port = free_port()
    server = await started_hub(tmp_path, certs, net={"c2s_port": port})
    alice = client(tmp_path, f"alice@{DOMAIN}/phone", port, certs, "alice")
    bob = client(tmp_path, f"bob@{DOMAIN}/laptop", port, certs, "bob")
    try:
        await alice.connect()
        await bob.connect()
        await alice.send_text(f"bob@{DOMAIN}", "before")
        assert (await next_of(bob, TextMessage)).text == "before"
        await next_of(alice, Sent)

        await asyncio.wait_for(server.stop(), TIMEOUT)
        await next_of(alice, Disconnected)
        during = await alice.send_text(f"bob@{DOMAIN}", "accepted during the outage")
        assert alice.unacknowledged == 1
        await alice.close()  # the SDK process ends with the message unacknowledged

        alice = client(tmp_path, f"alice@{DOMAIN}/phone", port, certs, "alice")
        with pytest.raises(ClientError, match="could not connect"):
            await alice.connect()  # the hub is still down
        server = await started_hub(tmp_path, certs, net={"c2s_port": port}, accounts=())
        await alice.connect()
        assert (await next_of(alice, Sent)).message_id == during
        assert alice.unacknowledged == 0
        await next_of(bob, Reconnected)
        got = await next_of(bob, TextMessage)
        assert (got.text, got.message_id) == ("accepted during the outage", during)
        later = await drain(bob, 1.5)
        assert not [e for e in later if isinstance(e, TextMessage | DecryptionFailed)]

        await alice.close()  # and a third run sends nothing again: the ack was kept
        alice = client(tmp_path, f"alice@{DOMAIN}/phone", port, certs, "alice")
        await alice.connect()
        assert alice.unacknowledged == 0
        later = await drain(bob, 1.0)
        assert not [e for e in later if isinstance(e, TextMessage | DecryptionFailed)]
    finally:
        await alice.close()
        await bob.close()
        await asyncio.wait_for(server.stop(), TIMEOUT)


async def test_a_full_outbox_refuses_the_next_message_with_outbox_full(tmp_path: Path) -> None:
    certs = make_certs(tmp_path)
    port = free_port()
    server = await started_hub(tmp_path, certs, net={"c2s_port": port})
    alice = InterlinkClient(
        f"alice@{DOMAIN}/phone",
        "pw",
        data_dir=tmp_path / "alice",
        port=port,
        ca_file=certs.ca,
        backoff=FAST,
        outbox_limit=2,
    )
    bob = client(tmp_path, f"bob@{DOMAIN}/laptop", port, certs, "bob")
    try:
        await alice.connect()
        await bob.connect()
        await alice.send_text(f"bob@{DOMAIN}", "hello")
        assert (await next_of(bob, TextMessage)).text == "hello"
        await next_of(alice, Sent)
        await asyncio.wait_for(server.stop(), TIMEOUT)
        await next_of(alice, Disconnected)
        kept = [await alice.send_text(f"bob@{DOMAIN}", f"held {n}") for n in range(2)]
        with pytest.raises(OutboxFull, match="outbox_limit 2"):
            await alice.send_text(f"bob@{DOMAIN}", "one too many")
        assert alice.unacknowledged == 2
        server = await started_hub(tmp_path, certs, net={"c2s_port": port}, accounts=())
        assert {(await next_of(alice, Sent)).message_id for _ in kept} == set(kept)
        texts = [(await next_of(bob, TextMessage)).text for _ in kept]
        assert texts == ["held 0", "held 1"]
        await alice.send_text(f"bob@{DOMAIN}", "room again")
        assert (await next_of(bob, TextMessage)).text == "room again"
    finally:
        await alice.close()
        await bob.close()
        await asyncio.wait_for(server.stop(), TIMEOUT)
