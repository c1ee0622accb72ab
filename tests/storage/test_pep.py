"""PEP contract: node configuration, items kept newest-last within max_items, subscriptions."""

from __future__ import annotations

from interlink.storage import Storage
from interlink.storage.pep import AccessModel, PepItem, PepNode, PepNodeConfig
from tests.storage.kit import T0, account, jid

NODE = "urn:xmpp:avatar:metadata"


def item(n: int) -> PepItem:
    return PepItem(f"i{n}", f"<p n='{n}'/>", T0 + n)


async def test_nodes_are_created_and_reconfigured(storage: Storage) -> None:
    alice = await account(storage, "alice")
    assert await storage.pep.node(alice, NODE) is None
    await storage.pep.configure(alice, NODE, PepNodeConfig(), T0)
    await storage.pep.configure(alice, "a-first", PepNodeConfig(AccessModel.OPEN, 3, False), T0)
    assert await storage.pep.node(alice, NODE) == PepNodeConfig(AccessModel.PRESENCE, 1, True)
    open_node = PepNodeConfig(AccessModel.OPEN, 3, False)
    nodes = await storage.pep.nodes(alice)
    assert nodes == [PepNode("a-first", open_node), PepNode(NODE, PepNodeConfig())]
    assert nodes[0].name == "a-first"
    assert await storage.pep.node_count(alice) == 2
    await storage.pep.configure(alice, NODE, PepNodeConfig(AccessModel.WHITELIST, 5, True), T0)
    config = await storage.pep.node(alice, NODE)
    assert config is not None
    assert config.access_model is AccessModel.WHITELIST
    assert config.max_items == 5


async def test_publishing_keeps_the_newest_max_items(storage: Storage) -> None:
    alice = await account(storage, "alice")
    await storage.pep.configure(alice, NODE, PepNodeConfig(max_items=2), T0)
    for n in range(4):
        await storage.pep.publish(alice, NODE, item(n))
    assert await storage.pep.items(alice, NODE) == [item(2), item(3)]
    assert await storage.pep.items(alice, NODE, newest=1) == [item(3)]


async def test_republishing_an_id_replaces_it_as_the_newest(storage: Storage) -> None:
    alice = await account(storage, "alice")
    await storage.pep.configure(alice, NODE, PepNodeConfig(max_items=3), T0)
    for n in range(3):
        await storage.pep.publish(alice, NODE, item(n))
    again = PepItem("i0", "<p n='again'/>", T0 + 9)
    await storage.pep.publish(alice, NODE, again)
    assert await storage.pep.items(alice, NODE) == [item(1), item(2), again]


async def test_lowering_max_items_trims_the_oldest(storage: Storage) -> None:
    alice = await account(storage, "alice")
    await storage.pep.configure(alice, NODE, PepNodeConfig(max_items=5), T0)
    for n in range(4):
        await storage.pep.publish(alice, NODE, item(n))
    await storage.pep.configure(alice, NODE, PepNodeConfig(max_items=1), T0)
    assert await storage.pep.items(alice, NODE) == [item(3)]


async def test_items_by_id_and_retraction(storage: Storage) -> None:
    alice = await account(storage, "alice")
    await storage.pep.configure(alice, NODE, PepNodeConfig(max_items=10), T0)
    for n in range(4):
        await storage.pep.publish(alice, NODE, item(n))
    assert await storage.pep.items(alice, NODE, ids=["i3", "i1", "nope"]) == [item(1), item(3)]
    assert await storage.pep.retract(alice, NODE, "i1")
    assert not await storage.pep.retract(alice, NODE, "i1")
    assert await storage.pep.items(alice, NODE) == [item(0), item(2), item(3)]


async def test_subscriptions_and_node_deletion(storage: Storage) -> None:
    alice = await account(storage, "alice")
    await storage.pep.configure(alice, NODE, PepNodeConfig(), T0)
    await storage.pep.publish(alice, NODE, item(1))
    await storage.pep.subscribe(alice, NODE, jid("carol"))
    await storage.pep.subscribe(alice, NODE, jid("bob"))
    await storage.pep.subscribe(alice, NODE, jid("bob"))  # once is enough
    assert await storage.pep.subscribers(alice, NODE) == [jid("bob"), jid("carol")]
    assert await storage.pep.unsubscribe(alice, NODE, jid("carol"))
    assert not await storage.pep.unsubscribe(alice, NODE, jid("carol"))
    assert await storage.pep.subscribers(alice, NODE) == [jid("bob")]

    assert await storage.pep.delete_node(alice, NODE)
    assert not await storage.pep.delete_node(alice, NODE)
    assert await storage.pep.node(alice, NODE) is None
    assert await storage.pep.items(alice, NODE) == []
    assert await storage.pep.subscribers(alice, NODE) == []
    assert await storage.pep.node_count(alice) == 0


async def test_bytes_used_counts_utf8_payload_bytes_per_owner(storage: Storage) -> None:
    alice = await account(storage, "alice")
    bob = await account(storage, "bob")
    assert await storage.pep.bytes_used(alice) == 0
    await storage.pep.configure(alice, NODE, PepNodeConfig(max_items=2), T0)
    await storage.pep.configure(alice, "other", PepNodeConfig(max_items=2), T0)
    await storage.pep.configure(bob, NODE, PepNodeConfig(), T0)
    await storage.pep.publish(alice, NODE, PepItem("a", "<p>é</p>", T0))  # 9 bytes, 8 chars
    await storage.pep.publish(alice, "other", PepItem("b", "<q/>", T0))
    await storage.pep.publish(bob, NODE, PepItem("c", "<bob/>", T0))
    assert await storage.pep.bytes_used(alice) == 13
    await storage.pep.publish(alice, NODE, PepItem("a", "<p/>", T0))  # replaced
    assert await storage.pep.bytes_used(alice) == 8
    await storage.pep.retract(alice, "other", "b")
    assert await storage.pep.bytes_used(alice) == 4
    await storage.pep.delete_node(alice, NODE)
    assert await storage.pep.bytes_used(alice) == 0
    assert await storage.pep.bytes_used(bob) == 6


async def test_publish_within_quota_boundary(storage: Storage) -> None:
    """The quota holds what is stored after the publish: a replacement or a trim makes room,
    and a refused publish stores nothing."""
    alice = await account(storage, "alice")
    await storage.pep.configure(alice, NODE, PepNodeConfig(max_items=2), T0)
    ten = "<p>" + "x" * 3 + "</p>"  # 10 bytes
    assert await storage.pep.publish(alice, NODE, PepItem("a", ten, T0), quota=20)
    assert await storage.pep.publish(alice, NODE, PepItem("b", ten, T0 + 1), quota=20)  # at 20
    eleven = "<p>" + "x" * 4 + "</p>"
    assert not await storage.pep.publish(alice, NODE, PepItem("b", eleven, T0 + 2), quota=20)
    assert await storage.pep.items(alice, NODE) == [
        PepItem("a", ten, T0),
        PepItem("b", ten, T0 + 1),
    ]
    assert await storage.pep.bytes_used(alice) == 20
    # a third item trims the oldest (max_items=2): 10 + 10 fits again
    assert await storage.pep.publish(alice, NODE, PepItem("c", ten, T0 + 3), quota=20)
    assert [i.id for i in await storage.pep.items(alice, NODE)] == ["b", "c"]
    assert await storage.pep.publish(alice, NODE, PepItem("c", "<p/>", T0 + 4), quota=14)
    assert await storage.pep.bytes_used(alice) == 14


async def test_subscriptions_are_capped_per_subscribing_account(storage: Storage) -> None:
    alice = await account(storage, "alice")
    await storage.pep.configure(alice, "n1", PepNodeConfig(), T0)
    await storage.pep.configure(alice, "n2", PepNodeConfig(), T0)
    await storage.pep.configure(alice, "n3", PepNodeConfig(), T0)
    bob = jid("bob")
    assert await storage.pep.subscribe(alice, "n1", bob, cap=2)
    assert await storage.pep.subscribe(alice, "n2", bob + "/phone", cap=2)  # same account
    assert await storage.pep.subscription_count(bob) == 2
    assert not await storage.pep.subscribe(alice, "n3", bob + "/laptop", cap=2)
    assert await storage.pep.subscribe(alice, "n1", bob, cap=2)  # already there: kept
    assert await storage.pep.subscribers(alice, "n3") == []
    # another account with a name that starts the same is counted apart
    assert await storage.pep.subscribe(alice, "n3", jid("bobby"), cap=2)
    assert await storage.pep.subscription_count(bob) == 2
    await storage.pep.unsubscribe(alice, "n1", bob)
    assert await storage.pep.subscribe(alice, "n3", bob + "/laptop", cap=2)
