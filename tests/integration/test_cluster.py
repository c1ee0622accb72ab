"""Two hub processes (here two hubs in one test process, each its own node) sharing one
PostgreSQL database and one Redis: messages cross nodes both ways, a message for a user who left
is stored offline and delivered on another node, and when a node stops answering (its lease
runs out) what was routed to it is stored offline by the survivor -- nothing is lost."""

from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from interlink.xmpp.jid import JID
from tests.integration.kit import DOMAIN, Xmpp, running_hub
from tests.servers import PostgresServer, RedisServer, postgres_available, redis_available

pytestmark = pytest.mark.skipif(
    not (postgres_available() and redis_available()),
    reason="PostgreSQL and redis-server are not installed (scripts/test installs them)",
)
TTL = 1.0


@pytest.fixture
def cluster_sections(
    postgres: PostgresServer, redis: RedisServer, tmp_path: Path
) -> dict[str, Any]:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    return {
        "storage": {"engine": "postgres", "dsn": postgres.database(), "pool_size": 4},
        "cluster": {
            "redis_url": redis.url,
            "node_ttl": TTL,
            "redis_prefix": f"{tmp_path.name[-20:]}:",
        },
    }


async def wait_for(check: Any, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def test_messages_cross_nodes_and_survive_a_dead_node(
    tmp_path: Path, cluster_sections: dict[str, Any]
) -> None:
    sections = dict(cluster_sections)

    def node(name: str) -> dict[str, Any]:
        return {**sections, "cluster": {**sections["cluster"], "node_id": name}}

    async with (
        running_hub(tmp_path / "a", accounts=("alice", "bob"), **node("a")) as (one, certs_one),
        running_hub(tmp_path / "b", accounts=(), **node("b")) as (two, certs_two),
    ):
        assert one.cluster is not None
        assert two.cluster is not None
        cluster = one.cluster
        alice = Xmpp(f"alice@{DOMAIN}/laptop", "pw", certs_one)
        bob = Xmpp(f"bob@{DOMAIN}/phone", "pw", certs_two)
        await alice.login(one.ports["c2s-starttls"])
        await bob.login(two.ports["c2s-starttls"])
        try:

            async def bob_is_on_b() -> bool:
                found = await cluster.directory.locate(f"bob@{DOMAIN}")
                return [(s.node, s.available) for s in found] == [("b", True)]

            await wait_for(bob_is_on_b)
            alice.send_chat(f"bob@{DOMAIN}", "hi bob")
            assert (await bob.next_message())["body"] == "hi bob"
            bob.send_chat(f"alice@{DOMAIN}/laptop", "hi alice")  # to a full JID on node a
            assert (await alice.next_message())["body"] == "hi alice"

            # bob leaves node b: the next message is stored, and delivered on node a
            await bob.close()

            async def bob_is_gone() -> bool:
                return not await cluster.directory.locate(f"bob@{DOMAIN}")

            await wait_for(bob_is_gone)
            alice.send_chat(f"bob@{DOMAIN}", "while you were away")
            await alice.ping_server()
            bob = Xmpp(f"bob@{DOMAIN}/phone", "pw", certs_one)
            await bob.login(one.ports["c2s-starttls"])
            assert (await bob.next_message())["body"] == "while you were away"
            await bob.close()

            # bob back on node b; then node b stops answering (frozen: no lease, no inbox)
            bob = Xmpp(f"bob@{DOMAIN}/phone", "pw", certs_two)
            await bob.login(two.ports["c2s-starttls"])
            await wait_for(bob_is_on_b)
            assert two.hub is not None
            assert two.hub.node is not None
            await two.hub.node.stop()
            for i in range(10):
                alice.send_chat(f"bob@{DOMAIN}", f"flood {i}")
            await alice.ping_server()  # all ten routed: to b's inbox, or stored

            async def all_stored() -> bool:
                assert one.storage is not None
                return await one.storage.offline.count(f"bob@{DOMAIN}") == 10

            await wait_for(all_stored, timeout=TTL * 6)
            assert await one.cluster.directory.locate(f"bob@{DOMAIN}") == []
            assert "b" not in await one.cluster.directory.live_nodes()
            assert one.hub is not None
            assert one.hub.node is not None
            # they went to b's inbox (its lease still held) and were taken from there
            assert one.hub.node.reclaimed == 10
            await bob.close()
            bob = Xmpp(f"bob@{DOMAIN}/phone", "pw", certs_one)
            await bob.login(one.ports["c2s-starttls"])
            got = [(await bob.next_message())["body"] for _ in range(10)]
            assert sorted(got) == sorted(f"flood {i}" for i in range(10))  # none lost, none twice
            await asyncio.sleep(0.2)
            assert bob.messages.empty()
        finally:
            await alice.close()
            await bob.close()


async def test_an_operator_change_reaches_the_other_node_at_once(
    tmp_path: Path, cluster_sections: dict[str, Any]
) -> None:
    """With a change-feed poll of 60 s, the other node still applies a provider's approval
    within moments: the approving node's notice (Redis pub/sub) makes it read the feed now."""
    import httpx

    from tests.integration.test_enlistment_api import enlistment_body, onboarding
    from tests.interop.enlistkit import ThirdParty

    token = "operator-token-" + "t" * 32
    sections: dict[str, Any] = {
        **cluster_sections,
        "admin": {"token": token, "change_feed_interval": 60.0},
    }

    def node(name: str) -> dict[str, Any]:
        return {**sections, "cluster": {**sections["cluster"], "node_id": name}}

    async with (
        running_hub(tmp_path / "a", **node("a")) as (one, certs_one),
        running_hub(tmp_path / "b", accounts=(), **node("b")) as (two, certs_two),
    ):
        party = ThirdParty()
        admin = {"Authorization": f"Bearer {token}"}
        async with (
            httpx.AsyncClient(
                base_url=f"https://127.0.0.1:{one.ports['http']}",
                verify=certs_one.client_context(),
                timeout=10,
            ) as http_one,
            httpx.AsyncClient(
                base_url=f"https://127.0.0.1:{two.ports['http']}",
                verify=certs_two.client_context(),
                timeout=10,
            ) as http_two,
        ):
            await asyncio.sleep(0.3)  # both subscribed to the notices
            created = await http_one.post(
                "/admin/v1/providers", json=onboarding(party), headers=admin
            )
            assert created.status_code == 201, created.text
            # node b refuses the pending provider's user (and keeps the record for 5 s)
            nonce = (await http_two.post("/v1/enlistments/challenge")).json()["challenge"]
            refused = await http_two.post("/v1/enlistments", json=enlistment_body(party, nonce))
            assert refused.status_code == 403
            approved = await http_one.post(
                f"/admin/v1/providers/{party.provider_id}/approve", headers=admin
            )
            assert approved.status_code == 200, approved.text
            # far below the 60 s poll and the 5 s the record is kept
            deadline = asyncio.get_running_loop().time() + 2.0
            while True:
                nonce = (await http_two.post("/v1/enlistments/challenge")).json()["challenge"]
                enlisted = await http_two.post(
                    "/v1/enlistments", json=enlistment_body(party, nonce)
                )
                if enlisted.status_code != 403:
                    break
                assert asyncio.get_running_loop().time() < deadline, "the notice did not arrive"
                await asyncio.sleep(0.05)
            assert enlisted.status_code == 201, enlisted.text


async def test_blocks_and_settings_changed_on_one_node_hold_on_the_other_at_once(
    tmp_path: Path, cluster_sections: dict[str, Any]
) -> None:
    """Block lists (and, for a while, interop settings) are kept in each node's memory for the
    routing path. alice blocks bob on node a; bob writes from node b, which decides on his
    message: b reads alice's list again on a's notice (the change-feed poll is 60 s here), so
    bob gets the refusal and alice nothing; after the unblock, bob reaches her again. Her
    settings changed on a are read again by b at once, not after its cache time."""
    from slixmpp import JID as SlixJID

    sections: dict[str, Any] = {**cluster_sections, "admin": {"change_feed_interval": 60.0}}

    def node(name: str) -> dict[str, Any]:
        return {**sections, "cluster": {**sections["cluster"], "node_id": name}}

    async with (
        running_hub(tmp_path / "a", accounts=("alice", "bob"), **node("a")) as (one, certs_one),
        running_hub(tmp_path / "b", accounts=(), **node("b")) as (two, certs_two),
    ):
        assert two.hub is not None
        on_b = two.hub.router.policy.blocks
        alice = Xmpp(f"alice@{DOMAIN}/laptop", "pw", certs_one)
        alice.client.register_plugin("xep_0191")
        bob = Xmpp(f"bob@{DOMAIN}/phone", "pw", certs_two)
        bounced: asyncio.Queue[Any] = asyncio.Queue()
        bob.client.add_event_handler("message_error", bounced.put_nowait)
        await alice.login(one.ports["c2s-starttls"])
        await bob.login(two.ports["c2s-starttls"])
        blocking: Any = alice.client.plugin["xep_0191"]
        alice_jid, bob_jid = JID.parse(f"alice@{DOMAIN}"), JID.parse(f"bob@{DOMAIN}")
        try:
            await asyncio.sleep(0.3)  # both subscribed to the notices
            await blocking.block([SlixJID(f"bob@{DOMAIN}")], timeout=10)

            async def b_knows() -> bool:
                return on_b.blocks(alice_jid, bob_jid)

            await wait_for(b_knows, timeout=2.0)  # far below the 60 s poll
            bob.send_chat(f"alice@{DOMAIN}", "can you hear me?")
            refused = await asyncio.wait_for(bounced.get(), 10)
            assert refused["error"]["condition"] == "service-unavailable"
            await blocking.unblock([SlixJID(f"bob@{DOMAIN}")], timeout=10)

            async def b_forgot() -> bool:
                return not on_b.blocks(alice_jid, bob_jid)

            await wait_for(b_forgot, timeout=2.0)
            bob.send_chat(f"alice@{DOMAIN}", "and now?")
            assert (await alice.next_message())["body"] == "and now?"  # nothing before it

            # her interop settings, cached by node b for the routing path, changed on node a
            policy_b = two.hub.router.policy
            assert not (await policy_b.settings(alice_jid)).enabled  # cached on b now
            iq: Any = alice.client.make_iq_set()
            iq.append(ET.Element("{urn:interlink:interop:0}settings", {"enabled": "true"}))
            await iq.send(timeout=10)

            async def b_reads_them_again() -> bool:
                return (await policy_b.settings(alice_jid)).enabled

            await wait_for(b_reads_them_again, timeout=2.0)  # not after b's 30 s cache
        finally:
            await alice.close()
            await bob.close()
