"""Rooms (XEP-0045) in a cluster: each room lives on one node (its home, by rendezvous hashing
of its address); occupants who enter through other nodes get its messages and presence through
their nodes' inboxes, a session that ends leaves the rooms of other nodes, and a room whose home
moves tells its occupants to enter again (status 332)."""

from __future__ import annotations

import json

import pytest

from interlink.cluster.local import LocalCluster
from interlink.hub.nodes import home_of
from interlink.xmpp.ext import muc
from interlink.xmpp.stanza import Iq, IqType, Message, Presence, PresenceType
from tests.hub.test_groups_service import GROUPS, codes, error_of
from tests.hubkit import Client, ClusterKit, running_cluster


def room_on(node: str, nodes: set[str]) -> str:
    """A room address whose home is ``node``."""
    for n in range(100):
        room = f"room{n}@{GROUPS}"
        if home_of(room, nodes) == node:
            return room
    raise AssertionError("no such room")


async def send(ck: ClusterKit, client: Client, xml: str) -> list[Presence | Message | Iq]:
    await client.send(xml)
    await ck.settle()
    return [s for s in client.stanzas() if isinstance(s, Presence | Message | Iq)]


async def enter(
    ck: ClusterKit, client: Client, room: str, nick: str
) -> list[Presence | Message | Iq]:
    return await send(
        ck,
        client,
        f"<presence xmlns='jabber:client' to='{room}/{nick}'><x xmlns='{muc.NS}'/></presence>",
    )


async def create(ck: ClusterKit, owner: Client, room: str) -> None:
    got = await enter(ck, owner, room, "owner")
    assert 201 in codes([s for s in got if isinstance(s, Presence)][-1])
    (answer,) = await send(
        ck,
        owner,
        f"<iq xmlns='jabber:client' type='set' id='cfg' to='{room}'>"
        f"<query xmlns='{muc.NS_OWNER}'><x xmlns='jabber:x:data' type='submit'/></query></iq>",
    )
    assert isinstance(answer, Iq)
    assert answer.type is IqType.RESULT


async def invite(ck: ClusterKit, owner: Client, room: str, invitee: Client) -> None:
    """A mediated invitation (members-only rooms): it reaches the invitee on any node."""
    await send(
        ck,
        owner,
        f"<message xmlns='jabber:client' to='{room}' id='inv'><x xmlns='{muc.NS_USER}'>"
        f"<invite to='{invitee.session.jid.bare}'/></x></message>",
    )
    got = [s for s in invitee.stanzas() if isinstance(s, Message)]
    assert [str(s.from_) for s in got] == [room]


def said(stanzas: list[Presence | Message | Iq]) -> list[tuple[str, str]]:
    return [
        (str(s.from_), s.body or "")
        for s in stanzas
        if isinstance(s, Message) and s.body is not None
    ]


def seen(stanzas: list[Presence | Message | Iq]) -> list[tuple[str, str]]:
    return [(str(s.from_), str(s.type) or "available") for s in stanzas if isinstance(s, Presence)]


@pytest.mark.parametrize("home", ["n0", "n1"])
async def test_occupants_on_two_nodes_share_a_room(home: str) -> None:
    async with running_cluster() as ck:
        one, two = ck.kits
        room = room_on(home, {"n0", "n1"})
        for name in ("alice", "bob", "carol"):
            await one.account(name)
        alice = await one.connect("alice", "a")
        bob = await two.connect("bob", "b")
        carol = await two.connect("carol", "c")
        await ck.settle()
        for c in (alice, bob, carol):
            c.take()
        await create(ck, alice, room)
        await invite(ck, alice, room, bob)
        got = await enter(ck, bob, room, "bob")
        assert (f"{room}/owner", "available") in seen(got)  # bob sees alice, on the other node
        assert (f"{room}/bob", "available") in seen(got)  # and himself
        assert seen(alice.stanzas()) == [(f"{room}/bob", "available")]
        echo = await send(
            ck,
            alice,
            f"<message xmlns='jabber:client' type='groupchat' to='{room}'><body>hi</body></message>",
        )
        assert said(bob.stanzas()) == [(f"{room}/owner", "hi")]
        assert said(echo) == [(f"{room}/owner", "hi")]
        got = await send(
            ck,
            bob,
            f"<message xmlns='jabber:client' type='groupchat' to='{room}'><body>yo</body></message>",
        )
        assert said(got) == [(f"{room}/bob", "yo")]
        assert said(alice.stanzas()) == [(f"{room}/bob", "yo")]
        # not an occupant: refused, through whichever node
        (refused,) = await send(
            ck,
            carol,
            f"<message xmlns='jabber:client' type='groupchat' to='{room}'><body>x</body></message>",
        )
        assert error_of(refused) == "not-acceptable"
        # bob's session ends on his node: he leaves the room on its home
        await two.disconnect(bob)
        await ck.settle()
        assert seen(alice.stanzas()) == [(f"{room}/bob", "unavailable")]


async def test_a_room_whose_home_moves_tells_its_occupants_to_enter_again() -> None:
    async with running_cluster() as ck:
        one, two = ck.kits
        plane = one.hub.ctx.cluster
        assert isinstance(plane, LocalCluster)
        room = room_on("n0", {"n0", "n1"})
        while home_of(room, {"n0", "n1", "n2"}) != "n2":  # one that a third node would take
            room = "x" + room
        await one.account("alice")
        await one.account("bob")
        alice = await one.connect("alice", "a")
        bob = await two.connect("bob", "b")
        await ck.settle()
        await create(ck, alice, room)
        await invite(ck, alice, room, bob)
        await enter(ck, bob, room, "bob")
        alice.take()
        # a third node joins: the room is now n2's, so n0 lets its occupants go (332)
        third = LocalCluster("n2", plane.plane)
        await third.directory.heartbeat()
        for kit in ck.kits:
            assert kit.hub.node is not None
            await kit.hub.node.read_nodes()
        await ck.settle()
        for client in (alice, bob):
            (gone,) = [s for s in client.stanzas() if isinstance(s, Presence)]
            assert gone.type is PresenceType.UNAVAILABLE
            assert 332 in codes(gone)


async def test_a_bad_request_from_another_node_is_logged_not_raised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with running_cluster() as ck:
        one, _two = ck.kits
        node = one.hub.node
        assert node is not None
        await node.handle(
            json.dumps({"room": {"from": "bob@hub.test/b", "node": "n1"}}), from_inbox=True
        )
        assert "a request from another node failed" in caplog.text
        # the inbox goes on: a live stanza after it is delivered
        await one.account("alice")
        alice = await one.connect("alice", "a")
        alice.take()
        live = [["alice@hub.test/a", "<message xmlns='jabber:client' type='headline'/>"]]
        await node.handle(json.dumps({"live": live}), from_inbox=True)
        assert [el.get("type") for el in alice.take()] == ["headline"]
