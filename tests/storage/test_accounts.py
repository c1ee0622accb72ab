"""Accounts contract: creation, credentials, deletion and what deletion takes with it."""

from __future__ import annotations

import pytest

from interlink.errors import AccountExistsError, AccountNotFoundError
from interlink.storage import Storage
from interlink.storage.offline import OfflineTotals
from interlink.storage.pep import PepNodeConfig
from interlink.storage.roster import RosterItem
from tests.storage.kit import T0, account, credentials, jid


async def test_a_created_account_exists_with_its_credentials(storage: Storage) -> None:
    assert not await storage.accounts.exists(jid("alice"))
    assert await storage.accounts.get_credentials(jid("alice")) is None
    await storage.accounts.create(jid("alice"), credentials(b"a"), T0)
    assert await storage.accounts.exists(jid("alice"))
    assert await storage.accounts.get_credentials(jid("alice")) == credentials(b"a")


async def test_an_account_is_created_once(storage: Storage) -> None:
    await account(storage, "alice")
    with pytest.raises(AccountExistsError):
        await storage.accounts.create(jid("alice"), credentials(b"b"), T0)
    assert await storage.accounts.get_credentials(jid("alice")) == credentials(b"a")


async def test_credentials_are_replaced_for_existing_accounts_only(storage: Storage) -> None:
    await account(storage, "alice")
    await storage.accounts.set_credentials(jid("alice"), credentials(b"z"))
    assert await storage.accounts.get_credentials(jid("alice")) == credentials(b"z")
    with pytest.raises(AccountNotFoundError):
        await storage.accounts.set_credentials(jid("ghost"), credentials(b"z"))
    assert not await storage.accounts.exists(jid("ghost"))


async def test_accounts_are_listed_in_jid_order(storage: Storage) -> None:
    for local in ("carol", "alice", "bob"):
        await account(storage, local)
    assert await storage.accounts.list_jids() == [jid("alice"), jid("bob"), jid("carol")]


async def test_deleting_an_account_takes_what_is_stored_for_it(storage: Storage) -> None:
    alice = await account(storage, "alice")
    bob = await account(storage, "bob")
    await storage.roster.put(alice, RosterItem(bob))
    await storage.roster.put(bob, RosterItem(alice))
    await storage.offline.store(alice, "<message/>", T0, 10)
    await storage.pep.configure(alice, "urn:x", PepNodeConfig(), T0)

    await storage.accounts.delete(alice)

    assert not await storage.accounts.exists(alice)
    assert await storage.accounts.get_credentials(alice) is None
    assert await storage.roster.items(alice) == []
    assert await storage.offline.totals() == OfflineTotals(0, 0, 0)
    assert await storage.pep.node(alice, "urn:x") is None
    # Others' roster entries pointing at the account are the others' data.
    assert await storage.roster.items(bob) == [RosterItem(alice)]
    with pytest.raises(AccountNotFoundError):
        await storage.accounts.delete(alice)
