"""KeyedLock: exclusion per key, several keys without deadlock, nothing kept afterwards."""

from __future__ import annotations

import asyncio

from interlink.hub.context import KeyedLock
from interlink.xmpp.jid import JID

A, B = JID.parse("a@hub.test"), JID.parse("b@hub.test")


async def test_same_key_excludes_and_other_keys_do_not() -> None:
    locks = KeyedLock()
    log: list[str] = []

    async def work(name: str, key: JID) -> None:
        async with locks.hold(key):
            log.append(f"{name} in")
            await asyncio.sleep(0.01)
            log.append(f"{name} out")

    await asyncio.gather(work("1", A), work("2", A), work("3", B))
    assert log.index("1 out") < log.index("2 in")
    assert log.index("3 in") < log.index("1 out")
    assert len(locks) == 0


async def test_hold_all_in_opposite_orders_does_not_deadlock() -> None:
    locks = KeyedLock()
    inside = 0
    most = 0

    async def both(first: JID, second: JID) -> None:
        nonlocal inside, most
        async with locks.hold_all(first, second):
            inside += 1
            most = max(most, inside)
            await asyncio.sleep(0.005)
            inside -= 1

    await asyncio.wait_for(
        asyncio.gather(*(both(A, B) if i % 2 else both(B, A) for i in range(20))), 5
    )
    assert most == 1
    assert len(locks) == 0
