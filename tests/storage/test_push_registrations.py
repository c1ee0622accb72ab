"""Push registration contract (XEP-0357): one per (account, app server, node), a per-account
limit that stores nothing past it, removal of one node or of a whole app server."""

from __future__ import annotations

from interlink.storage import Storage
from interlink.storage.push_registrations import PushRegistration
from tests.storage.kit import T0, account, credentials


def reg(owner: str, service: str, node: str, options: str = "", at: float = T0) -> PushRegistration:
    return PushRegistration(owner, service, node, options, at)


async def test_registrations_are_kept_per_account_and_replaced(storage: Storage) -> None:
    repo = storage.push_registrations
    alice = await account(storage, "alice")
    bob = await account(storage, "bob")
    assert await repo.for_account(alice) == []
    assert await repo.register(reg(alice, "push.app.test", "n1"), max_per_account=5)
    assert await repo.register(reg(alice, "push.app.test", "n2", at=T0 + 1), max_per_account=5)
    form = "<x xmlns='jabber:x:data' type='submit'/>"
    assert await repo.register(reg(alice, "push.app.test", "n1", form), max_per_account=5)
    assert [(r.node, r.publish_options) for r in await repo.for_account(alice)] == [
        ("n1", form),
        ("n2", ""),
    ]
    assert await repo.for_account(bob) == []


async def test_the_per_account_limit_at_its_boundary(storage: Storage) -> None:
    repo = storage.push_registrations
    alice = await account(storage, "alice")
    assert await repo.register(reg(alice, "a.test", "1"), max_per_account=2)
    assert await repo.register(reg(alice, "a.test", "2"), max_per_account=2)  # at the limit
    assert not await repo.register(reg(alice, "a.test", "3"), max_per_account=2)
    assert await repo.register(reg(alice, "a.test", "2", "<x/>"), max_per_account=2)  # replaces
    assert [r.node for r in await repo.for_account(alice)] == ["1", "2"]


async def test_unregister_one_node_or_a_whole_app_server(storage: Storage) -> None:
    repo = storage.push_registrations
    alice = await account(storage, "alice")
    for service, node in (("a.test", "1"), ("a.test", "2"), ("b.test", "1")):
        assert await repo.register(reg(alice, service, node), max_per_account=10)
    assert await repo.unregister(alice, "a.test", "9") == 0
    assert await repo.unregister(alice, "a.test", "1") == 1
    assert await repo.unregister(alice, "a.test") == 1
    assert [(r.service, r.node) for r in await repo.for_account(alice)] == [("b.test", "1")]


async def test_registrations_go_with_their_account(storage: Storage) -> None:
    repo = storage.push_registrations
    alice = await account(storage, "alice")
    assert await repo.register(reg(alice, "a.test", "1"), max_per_account=10)
    await storage.accounts.delete(alice)
    await storage.accounts.create(alice, credentials(), T0)
    assert await repo.for_account(alice) == []
