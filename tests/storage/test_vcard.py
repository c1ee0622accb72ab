"""vCard contract (XEP-0054): one per account, replaced whole, removed with the account."""

from __future__ import annotations

from interlink.storage import Storage
from tests.storage.kit import T0, account, credentials

CARD = "<vCard xmlns='vcard-temp'><FN>Alice</FN></vCard>"


async def test_a_vcard_is_stored_per_account_and_replaced(storage: Storage) -> None:
    alice = await account(storage, "alice")
    bob = await account(storage, "bob")
    assert await storage.vcard.get(alice) is None
    await storage.vcard.put(alice, CARD)
    assert await storage.vcard.get(alice) == CARD
    await storage.vcard.put(alice, "<vCard xmlns='vcard-temp'/>")
    assert await storage.vcard.get(alice) == "<vCard xmlns='vcard-temp'/>"
    assert await storage.vcard.get(bob) is None


async def test_a_vcard_goes_with_its_account(storage: Storage) -> None:
    alice = await account(storage, "alice")
    await storage.vcard.put(alice, CARD)
    await storage.accounts.delete(alice)
    await storage.accounts.create(alice, credentials(), T0)
    assert await storage.vcard.get(alice) is None
