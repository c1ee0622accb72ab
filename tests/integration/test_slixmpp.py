"""slixmpp, an independent client library, against the hub over loopback TLS."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from slixmpp import JID

from tests.integration.kit import DOMAIN, Xmpp, running_hub


async def test_starttls_and_direct_tls_exchange_messages_both_ways(tmp_path: Path) -> None:
    async with running_hub(tmp_path) as (server, certs):
        alice = Xmpp(f"alice@{DOMAIN}/laptop", "pw", certs)
        bob = Xmpp(f"bob@{DOMAIN}/phone", "pw", certs)
        await alice.login(server.ports["c2s-starttls"])
        await bob.login(server.ports["c2s-direct-tls"], direct_tls=True)
        try:
            assert alice.client.is_connected()
            alice.send_chat(f"bob@{DOMAIN}", "hi bob <&>")
            msg = await bob.next_message()
            assert msg["body"] == "hi bob <&>"
            assert str(msg["from"]) == f"alice@{DOMAIN}/laptop"
            bob.send_chat(f"alice@{DOMAIN}/laptop", "hi alice ☃")
            reply = await alice.next_message()
            assert reply["body"] == "hi alice ☃"
            assert str(reply["from"]) == f"bob@{DOMAIN}/phone"
            pong = await alice.ping_server()
            assert pong >= 0
            info = await alice.client.plugin["xep_0030"].get_info(jid=JID(DOMAIN), timeout=5)
            assert "urn:xmpp:ping" in info["disco_info"]["features"]
        finally:
            await alice.close()
            await bob.close()


async def test_wrong_password_fails(tmp_path: Path) -> None:
    async with running_hub(tmp_path) as (server, certs):
        mallory = Xmpp(f"alice@{DOMAIN}/x", "not the password", certs)
        try:
            await mallory.login(server.ports["c2s-starttls"])
        except AssertionError:
            pass
        else:
            raise AssertionError("a wrong password logged in")
        finally:
            await mallory.close()


async def test_offline_messages_arrive_in_order_after_reconnecting(tmp_path: Path) -> None:
    async with running_hub(tmp_path) as (server, certs):
        alice = Xmpp(f"alice@{DOMAIN}/laptop", "pw", certs)
        await alice.login(server.ports["c2s-starttls"])
        bob = Xmpp(f"bob@{DOMAIN}/phone", "pw", certs)
        await bob.login(server.ports["c2s-direct-tls"], direct_tls=True)
        await bob.close()
        await asyncio.sleep(0.1)
        try:
            for i in range(30):
                alice.send_chat(f"bob@{DOMAIN}", f"msg {i}")
            # The ping answer comes after all 30 messages were handled, so all are stored.
            await alice.ping_server()
            bob = Xmpp(f"bob@{DOMAIN}/phone", "pw", certs)
            await bob.login(server.ports["c2s-starttls"])
            got = [(await bob.next_message())["body"] for _ in range(30)]
            assert got == [f"msg {i}" for i in range(30)]
            assert bob.messages.empty()
        finally:
            await alice.close()
            await bob.close()


async def test_roster_and_subscriptions(tmp_path: Path) -> None:
    async with running_hub(tmp_path) as (server, certs):
        alice = Xmpp(f"alice@{DOMAIN}/laptop", "pw", certs)
        bob = Xmpp(f"bob@{DOMAIN}/phone", "pw", certs)
        # Bob approves every request he gets (slixmpp's auto_authorize), and asks back.
        bob.client.auto_authorize = True
        bob.client.auto_subscribe = True
        alice.client.auto_authorize = True
        await alice.login(server.ports["c2s-starttls"])
        await bob.login(server.ports["c2s-starttls"])
        try:
            await alice.client.get_roster()
            await bob.client.get_roster()
            alice.client.update_roster(JID(f"bob@{DOMAIN}"), name="Bob", groups=["Friends"])
            alice.client.send_presence_subscription(pto=f"bob@{DOMAIN}")
            for _ in range(100):
                a_item = alice.client.client_roster[f"bob@{DOMAIN}"]
                b_item = bob.client.client_roster[f"alice@{DOMAIN}"]
                if a_item["subscription"] == "both" and b_item["subscription"] == "both":
                    break
                await asyncio.sleep(0.05)
            assert alice.client.client_roster[f"bob@{DOMAIN}"]["subscription"] == "both"
            assert alice.client.client_roster[f"bob@{DOMAIN}"]["name"] == "Bob"
            assert bob.client.client_roster[f"alice@{DOMAIN}"]["subscription"] == "both"
            # Presence now flows: Alice sees Bob go away.
            bob.client.send_presence(pshow="away")
            for _ in range(100):
                res = alice.client.client_roster[f"bob@{DOMAIN}"].resources
                if res.get("phone", {}).get("show") == "away":
                    break
                await asyncio.sleep(0.05)
            assert alice.client.client_roster[f"bob@{DOMAIN}"].resources["phone"]["show"] == "away"
            # The roster is durable: a new session of Alice gets it back.
            alice2 = Xmpp(f"alice@{DOMAIN}/tablet", "pw", certs)
            await alice2.login(server.ports["c2s-direct-tls"], direct_tls=True)
            try:
                await alice2.client.get_roster()
                item = alice2.client.client_roster[f"bob@{DOMAIN}"]
                assert item["subscription"] == "both"
                assert item["groups"] == ["Friends"]
            finally:
                await alice2.close()
            # Removing the contact cancels both directions.
            alice.client.del_roster_item(f"bob@{DOMAIN}")  # type: ignore[no-untyped-call]
            for _ in range(100):
                if bob.client.client_roster[f"alice@{DOMAIN}"]["subscription"] == "none":
                    break
                await asyncio.sleep(0.05)
            assert bob.client.client_roster[f"alice@{DOMAIN}"]["subscription"] == "none"
        finally:
            await alice.close()
            await bob.close()


async def test_carbons_with_slixmpp(tmp_path: Path) -> None:
    async with running_hub(tmp_path) as (server, certs):
        phone = Xmpp(f"alice@{DOMAIN}/phone", "pw", certs)
        laptop = Xmpp(f"alice@{DOMAIN}/laptop", "pw", certs)
        bob = Xmpp(f"bob@{DOMAIN}/b", "pw", certs)
        received: asyncio.Queue[Any] = asyncio.Queue()
        sent: asyncio.Queue[Any] = asyncio.Queue()
        laptop.client.register_plugin("xep_0280")
        laptop.client.add_event_handler("carbon_received", received.put_nowait)
        laptop.client.add_event_handler("carbon_sent", sent.put_nowait)
        for x in (phone, laptop, bob):
            await x.login(server.ports["c2s-starttls"])
        try:
            carbons: Any = laptop.client.plugin["xep_0280"]
            await carbons.enable(timeout=5)
            bob.send_chat(f"alice@{DOMAIN}/phone", "to the phone")
            assert (await phone.next_message())["body"] == "to the phone"
            copy = await asyncio.wait_for(received.get(), 5)
            assert copy["carbon_received"]["body"] == "to the phone"
            phone.send_chat(f"bob@{DOMAIN}", "from the phone")
            assert (await bob.next_message())["body"] == "from the phone"
            copy = await asyncio.wait_for(sent.get(), 5)
            assert copy["carbon_sent"]["body"] == "from the phone"
        finally:
            for x in (phone, laptop, bob):
                await x.close()
