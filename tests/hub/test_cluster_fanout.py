"""What reaches a session on another node of a cluster (two hubs on one in-process backplane
and one storage): presence broadcasts, probes and subscription notices, roster pushes, carbons
(XEP-0280) and PEP notifications (XEP-0163). Each node writes what it gets from the others only
to sessions that are still there and want it (carbons enabled, ``+notify``, the roster)."""

from __future__ import annotations

import asyncio
import json
from typing import Any
from xml.etree.ElementTree import Element

import pytest

from interlink.cluster import Located
from interlink.cluster.local import LocalBackplane, LocalCluster
from interlink.hub.nodes import Build, Fanout, LiveWriter, OrderedSender
from interlink.xmpp.jid import JID
from interlink.xmpp.stanza import Presence, parse_stanza
from tests.hub.test_carbons import copies, direct, enable
from tests.hub.test_pep import DEVICES, events, publish, with_caps
from tests.hub.test_presence_roster import roster_pushes
from tests.hubkit import Client, ClusterKit, running_cluster


def presences(elements: list[Element]) -> list[tuple[str, str]]:
    """(from, type) of each presence stanza."""
    out = []
    for el in elements:
        if el.tag == "{jabber:client}presence":
            p = parse_stanza(el)
            assert isinstance(p, Presence)
            out.append((str(p.from_), str(p.type) or "available"))
    return out


async def send(ck: ClusterKit, client: Client, xml: str) -> None:
    await client.send(xml)
    await ck.settle()


async def mutual(ck: ClusterKit, a: Client, b: Client) -> None:
    """``a`` and ``b`` (on any nodes) subscribe to each other's presence."""
    ja, jb = a.session.jid.bare, b.session.jid.bare
    await send(ck, a, f"<presence xmlns='jabber:client' to='{jb}' type='subscribe'/>")
    await send(ck, b, f"<presence xmlns='jabber:client' to='{ja}' type='subscribed'/>")
    await send(ck, b, f"<presence xmlns='jabber:client' to='{ja}' type='subscribe'/>")
    await send(ck, a, f"<presence xmlns='jabber:client' to='{jb}' type='subscribed'/>")


async def test_presence_subscriptions_and_roster_pushes_cross_nodes() -> None:
    async with running_cluster() as ck:
        one, two = ck.kits
        await one.account("alice")
        await one.account("bob")
        alice = await one.connect("alice", "laptop")
        bob = await two.connect("bob", "phone")
        alice2 = await two.connect("alice", "tablet")
        await ck.settle()
        for c in (alice, bob, alice2):
            c.take()
        await send(
            ck,
            alice,
            "<iq xmlns='jabber:client' type='get' id='r'><query xmlns='jabber:iq:roster'/></iq>",
        )
        await send(
            ck,
            alice2,
            "<iq xmlns='jabber:client' type='get' id='r'><query xmlns='jabber:iq:roster'/></iq>",
        )
        alice.take()
        alice2.take()
        # the request reaches bob on the other node at once (not only at his next login)
        await send(
            ck, alice, "<presence xmlns='jabber:client' to='bob@hub.test' type='subscribe'/>"
        )
        assert presences(bob.take()) == [("alice@hub.test", "subscribe")]
        # alice's roster push reaches her resource on node two as well
        assert roster_pushes(alice2.take()) == [("bob@hub.test", "none", "subscribe")]
        await send(
            ck, bob, "<presence xmlns='jabber:client' to='alice@hub.test' type='subscribed'/>"
        )
        got = alice.take()
        assert ("bob@hub.test", "subscribed") in presences(got)
        assert ("bob@hub.test/phone", "available") in presences(got)  # the first exchange
        got2 = alice2.take()
        assert ("bob@hub.test/phone", "available") in presences(got2)
        assert roster_pushes(got2) == [("bob@hub.test", "to", None)]
        # bob's broadcasts reach both of alice's resources, on both nodes
        await send(ck, bob, "<presence xmlns='jabber:client'><show>away</show></presence>")
        assert presences(alice.take()) == [("bob@hub.test/phone", "available")]
        assert presences(alice2.take()) == [("bob@hub.test/phone", "available")]
        # a new resource of alice on node one is told of bob (on node two) at login
        alice3 = await one.connect("alice", "desk")
        await ck.settle()
        seen = presences(alice3.take())
        assert ("bob@hub.test/phone", "available") in seen
        assert ("alice@hub.test/tablet", "available") in seen  # her own, on node two
        assert ("alice@hub.test/laptop", "available") in seen  # and on node one
        # ... and her own resource on node two sees the new one
        assert ("alice@hub.test/desk", "available") in presences(alice2.take())
        assert ("alice@hub.test/desk", "available") in presences(alice.take())
        await send(ck, bob, "<presence xmlns='jabber:client' type='unavailable'/>")
        assert presences(alice.take()) == [("bob@hub.test/phone", "unavailable")]
        assert presences(alice2.take()) == [("bob@hub.test/phone", "unavailable")]
        # alice has no subscription to carol's presence: carol's broadcast goes nowhere
        await one.account("carol")
        await two.connect("carol", "c")
        await ck.settle()
        assert presences(alice.take()) == []


async def test_directed_presence_to_a_session_on_another_node() -> None:
    async with running_cluster() as ck:
        one, two = ck.kits
        await one.account("alice")
        await one.account("bob")
        alice = await one.connect("alice", "a")
        bob = await two.connect("bob", "b")
        await ck.settle()
        bob.take()
        await send(ck, alice, "<presence xmlns='jabber:client' to='bob@hub.test/b'/>")
        assert presences(bob.take()) == [("alice@hub.test/a", "available")]
        await send(ck, alice, "<presence xmlns='jabber:client' type='unavailable'/>")
        assert presences(bob.take()) == [("alice@hub.test/a", "unavailable")]


CHAT = "<message xmlns='jabber:client' to='{to}' type='chat'><body>{body}</body></message>"


async def test_carbons_reach_resources_on_other_nodes() -> None:
    async with running_cluster(3) as ck:
        one, two, three = ck.kits
        await one.account("alice")
        await one.account("bob")
        a1 = await one.connect("alice", "a1", priority=1)
        a2 = await two.connect("alice", "a2")
        a3 = await two.connect("alice", "a3")  # carbons not enabled
        bob = await one.connect("bob", "b")
        await enable(a1)
        await enable(a2)
        await ck.settle()
        for c in (a1, a2, a3, bob):
            c.take()
        # delivered on node one: a received copy for a2 on node two
        await send(ck, bob, CHAT.format(to="alice@hub.test/a1", body="hi a1"))
        assert direct(a1.take()) == ["hi a1"]
        assert copies(a2.take()) == [("received", "bob@hub.test/b", "hi a1")]
        assert a3.take() == []
        # sent from node one: a sent copy for a2
        await send(ck, a1, CHAT.format(to="bob@hub.test", body="hi bob"))
        assert direct(bob.take()) == ["hi bob"]
        assert copies(a2.take()) == [("sent", "alice@hub.test/a1", "hi bob")]
        assert a3.take() == []
        # sent from node two to bob on node one: a1 gets the sent copy, bob the message
        await send(ck, a2, CHAT.format(to="bob@hub.test", body="from a2"))
        assert direct(bob.take()) == ["from a2"]
        assert copies(a1.take()) == [("sent", "alice@hub.test/a2", "from a2")]
        assert copies(a2.take()) == []
        # carol on node three writes to alice's bare JID: her best resource (a1) is on node
        # one, which delivers it and copies it to a2 on node two (once)
        await one.account("carol")
        carol = await three.connect("carol", "c")
        await ck.settle()
        a1.take()
        a2.take()
        await send(ck, carol, CHAT.format(to="alice@hub.test", body="to the best"))
        assert direct(a1.take()) == ["to the best"]
        assert copies(a2.take()) == [("received", "carol@hub.test/c", "to the best")]
        assert a3.take() == []
        # to a1's full JID from node three: node one takes it from its inbox, delivers it and
        # copies it to a2 (it parses the message only because there are copies to make)
        await send(ck, carol, CHAT.format(to="alice@hub.test/a1", body="to a1"))
        assert direct(a1.take()) == ["to a1"]
        assert copies(a2.take()) == [("received", "carol@hub.test/c", "to a1")]
        assert a3.take() == []
        # a2 turns carbons off: no more copies for it
        await enable(a2, False)
        await send(ck, bob, CHAT.format(to="alice@hub.test/a1", body="quiet"))
        assert direct(a1.take()) == ["quiet"]
        assert a2.take() == []


async def test_pep_notifications_reach_subscribers_on_other_nodes() -> None:
    async with running_cluster() as ck:
        one, two = ck.kits
        await one.account("alice")
        await one.account("bob")
        alice = await one.connect("alice", "a")
        bob = await two.connect("bob", "b")
        bob2 = await two.connect("bob", "b2")
        await ck.settle()
        await mutual(ck, alice, bob)
        await with_caps(two, bob, [DEVICES + "+notify"])
        await with_caps(two, bob2, [])  # this client does not want notifications
        await with_caps(one, alice, [])
        await ck.settle()
        for c in (alice, bob, bob2):
            c.take()
        await publish(
            alice,
            DEVICES,
            "current",
            "<devices xmlns='urn:xmpp:omemo:2'><device id='1'/></devices>",
        )
        await ck.settle()
        assert events(bob) == [("alice@hub.test", DEVICES, ["current"])]
        assert events(bob2) == []
        # bob's own publication reaches alice? She did not ask: nothing
        await publish(
            bob, DEVICES, "current", "<devices xmlns='urn:xmpp:omemo:2'><device id='2'/></devices>"
        )
        await ck.settle()
        assert events(alice) == []


async def test_a_message_to_a_resource_on_another_node_goes_there() -> None:
    """Not to the account's resource on the sender's node: the addressed one is elsewhere (it
    is delivered there, and copied back as a carbon)."""
    async with running_cluster() as ck:
        one, two = ck.kits
        await one.account("alice")
        await one.account("bob")
        laptop = await one.connect("alice", "laptop")
        tablet = await two.connect("alice", "tablet")
        bob = await two.connect("bob", "phone")
        await enable(tablet)
        await ck.settle()
        for c in (laptop, tablet, bob):
            c.take()
        await send(ck, bob, CHAT.format(to="alice@hub.test/laptop", body="for the laptop"))
        assert direct(laptop.take()) == ["for the laptop"]
        assert copies(tablet.take()) == [("received", "bob@hub.test/phone", "for the laptop")]
        # a resource that is nowhere: the account's best resource gets it (RFC 6121 §8.5.3.2.1)
        await send(ck, bob, CHAT.format(to="alice@hub.test/gone", body="for anyone"))
        assert direct(tablet.take()) == ["for anyone"]
        assert laptop.take() == []


async def test_a_cluster_that_does_not_answer_costs_only_what_crosses_nodes() -> None:
    """Redis down (the directory and inboxes raise): presence, carbons and messages between
    sessions of one node go on; nothing raises into the sender's stream."""
    async with running_cluster() as ck:
        one, _two = ck.kits
        await one.account("alice")
        await one.account("bob")
        alice = await one.connect("alice", "a")
        alice2 = await one.connect("alice", "a2")
        bob = await one.connect("bob", "b")
        await mutual(ck, alice, bob)
        await enable(alice2)
        for c in (alice, alice2, bob):
            c.take()

        async def down(*args: object, **kwargs: object) -> Any:
            raise ConnectionError("redis is down")

        cluster = one.hub.ctx.cluster
        cluster.directory.locate = down  # type: ignore[method-assign]
        cluster.bus.send = down  # type: ignore[method-assign]
        await send(ck, bob, "<presence xmlns='jabber:client'><show>away</show></presence>")
        assert presences(alice.take()) == [("bob@hub.test/b", "available")]
        await send(ck, bob, CHAT.format(to="alice@hub.test/a", body="still here"))
        assert direct(alice.take()) == ["still here"]
        assert copies(alice2.take()) == [("received", "bob@hub.test/b", "still here")]


async def test_the_fanout_keeps_order_and_drops_beyond_its_backlog() -> None:
    """Jobs go out in the order they were put, batched; with ``backlog`` jobs waiting the next
    one is dropped and counted (the boundary: ``backlog`` kept, one more dropped)."""
    plane = LocalBackplane()
    here, there = LocalCluster("here", plane), LocalCluster("there", plane)
    for c in (here, there):
        await c.directory.heartbeat()
    await there.directory.bind("bob@hub.test/b", available=True, priority=0)
    fanout = Fanout(here, backlog=3)
    bob = JID.parse("bob@hub.test")

    def stanza(n: int) -> Build:
        return lambda where: f"<message xmlns='jabber:client' id='{n}'/>"

    for n in range(4):  # queued before the background task runs: the 4th is one too many
        fanout.put(bob, None, stanza(n))
    assert fanout.dropped == 1
    await fanout.flush()
    entries = await there.bus.receive(0.1)
    sent = [xml for e in entries for _, xml in json.loads(e.payload)["live"]]
    assert sent == [f"<message xmlns='jabber:client' id='{n}'/>" for n in range(3)]
    assert len(entries) == 1  # one batch: one inbox entry for the node
    await fanout.close()


async def test_the_fanout_skips_an_account_this_node_knows_has_no_session_elsewhere() -> None:
    """Copies of every message of an account with no session on another node cost nothing:
    the node's fresh directory answer (``peek``) says so without I/O, so nothing is queued (and
    nothing dropped under a flood); an account with a session elsewhere is queued as before."""
    plane = LocalBackplane()
    here, there = LocalCluster("here", plane), LocalCluster("there", plane)
    for c in (here, there):
        await c.directory.heartbeat()
    await here.directory.bind("alice@hub.test/a", available=True, priority=0)
    await there.directory.bind("bob@hub.test/b", available=True, priority=0)
    fanout = Fanout(here, backlog=1)

    def copy(where: Located) -> str:
        return "<message xmlns='jabber:client'/>"

    assert not fanout.may_reach(JID.parse("alice@hub.test"))
    assert not fanout.may_reach(JID.parse("nobody@hub.test"))
    assert fanout.may_reach(JID.parse("bob@hub.test"))
    for _ in range(5):  # alice's sessions are all here: never queued, so never dropped
        fanout.put(JID.parse("alice@hub.test"), None, copy)
        fanout.put(JID.parse("nobody@hub.test"), None, copy)
    assert fanout.dropped == 0
    fanout.put(JID.parse("bob@hub.test"), None, copy)  # bob is on the other node
    fanout.put(JID.parse("bob@hub.test"), None, copy)  # past the backlog of one
    assert fanout.dropped == 1
    await fanout.flush()
    entries = await there.bus.receive(0.1)
    assert [len(json.loads(e.payload)["live"]) for e in entries] == [1]
    await fanout.close()


async def test_the_ordered_sender_keeps_order_batches_and_survives_a_failed_batch() -> None:
    """One queue shape for the live writer and the fanout: items go in the order put, each
    batch what gathered meanwhile; a batch that fails is logged and the next ones still go;
    with ``backlog`` items waiting one more is refused (the boundary)."""
    batches: list[list[int]] = []

    async def send(batch: list[int]) -> None:
        batches.append(batch)
        if batch[0] == 0:
            raise RuntimeError("the cluster failed")

    queue: OrderedSender[int] = OrderedSender(send, "test", backlog=2)
    assert queue.put(0)
    assert queue.put(1)
    assert not queue.put(2)  # two wait already
    await queue.flush()
    assert queue.put(3)
    await queue.flush()
    assert batches == [[0, 1], [3]]
    await queue.close()


async def test_the_live_writer_drops_and_counts_beyond_its_backlog() -> None:
    """A room's traffic for sessions on other nodes waits in a bounded queue: at the backlog
    one more is dropped and counted; what was queued goes, in order, in one inbox entry."""
    plane = LocalBackplane()
    here, there = LocalCluster("here", plane), LocalCluster("there", plane)
    for c in (here, there):
        await c.directory.heartbeat()
    writer = LiveWriter(here, backlog=2)
    bob = JID.parse("bob@hub.test/b")
    for n in range(3):  # queued before the background task runs: the 3rd is one too many
        writer.write("there", bob, f"<message xmlns='jabber:client' id='{n}'/>")
    assert writer.dropped == 1
    await writer.flush()
    entries = await there.bus.receive(0.1)
    sent = [xml for e in entries for _, xml in json.loads(e.payload)["live"]]
    assert sent == [f"<message xmlns='jabber:client' id='{n}'/>" for n in range(2)]
    await writer.close()


async def test_closing_the_ordered_sender_does_not_wait_for_ever_for_a_stuck_send(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def stuck(batch: list[int]) -> None:
        await asyncio.Event().wait()  # a Redis that no longer answers

    queue: OrderedSender[int] = OrderedSender(stuck, "test")
    assert queue.put(1)
    await asyncio.sleep(0)  # the batch is being sent
    assert queue.put(2)
    await asyncio.wait_for(queue.close(within=0.05), timeout=5)
    assert any("not sent before stopping" in r.getMessage() for r in caplog.records)
