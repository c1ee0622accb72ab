"""Private XML storage contract (XEP-0049): one fragment per namespace, all-or-nothing budgets."""

from __future__ import annotations

from interlink.storage import Storage
from interlink.storage.private import PrivateFragment
from tests.storage.kit import T0, account, credentials

ROOMY = {"quota": 1 << 20, "max_fragments": 10}


def frag(ns: str, body: str = "") -> PrivateFragment:
    return PrivateFragment(ns, f"<p xmlns='{ns}'>{body}</p>")


async def test_fragments_are_stored_per_namespace_and_replaced(storage: Storage) -> None:
    alice = await account(storage, "alice")
    bob = await account(storage, "bob")
    assert await storage.private.get(alice, "a:b") is None
    assert await storage.private.put(alice, [frag("a:b", "1"), frag("c:d")], **ROOMY)
    assert await storage.private.put(alice, [frag("a:b", "2")], **ROOMY)
    assert await storage.private.get(alice, "a:b") == frag("a:b", "2").xml
    assert await storage.private.get(alice, "c:d") == frag("c:d").xml
    assert await storage.private.get(bob, "a:b") is None
    used = frag("a:b", "2").size + frag("c:d").size
    assert await storage.private.bytes_used(alice) == used
    assert await storage.private.bytes_used(bob) == 0


async def test_a_put_past_the_quota_stores_nothing(storage: Storage) -> None:
    alice = await account(storage, "alice")
    one = frag("a:b", "x" * 10)
    assert await storage.private.put(alice, [one], quota=one.size, max_fragments=10)
    bigger = frag("a:b", "x" * 11)
    assert not await storage.private.put(alice, [bigger], quota=one.size, max_fragments=10)
    both = [frag("c:d"), frag("a:b")]
    assert not await storage.private.put(alice, both, quota=one.size, max_fragments=10)
    assert await storage.private.get(alice, "a:b") == one.xml
    assert await storage.private.get(alice, "c:d") is None
    # replacing counts the new size, not both
    smaller = frag("a:b", "x" * 9)
    assert await storage.private.put(alice, [smaller], quota=one.size, max_fragments=10)
    assert await storage.private.bytes_used(alice) == smaller.size


async def test_a_put_past_the_count_stores_nothing(storage: Storage) -> None:
    alice = await account(storage, "alice")
    assert await storage.private.put(
        alice, [frag("a:1"), frag("a:2")], quota=1 << 20, max_fragments=2
    )
    assert await storage.private.put(alice, [frag("a:1", "new")], quota=1 << 20, max_fragments=2)
    assert not await storage.private.put(alice, [frag("a:3")], quota=1 << 20, max_fragments=2)
    assert await storage.private.get(alice, "a:3") is None


async def test_fragments_go_with_their_account(storage: Storage) -> None:
    alice = await account(storage, "alice")
    assert await storage.private.put(alice, [frag("a:b")], **ROOMY)
    await storage.accounts.delete(alice)
    await storage.accounts.create(alice, credentials(), T0)
    assert await storage.private.get(alice, "a:b") is None
