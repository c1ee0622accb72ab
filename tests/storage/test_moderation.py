"""Moderation contract: disabling is a change recorded in the feed (once), a report is resolved
once, and the operator's look-ups (phone, enlisted accounts) answer in order."""

from __future__ import annotations

from dataclasses import replace

import pytest

from interlink.errors import AccountNotFoundError
from interlink.storage import Storage
from interlink.storage.moderation import ReportResolution
from tests.storage.kit import T0, account, jid
from tests.storage.test_enlistment import enlist, interop_account
from tests.storage.test_policy import report


async def test_disabling_and_enabling_is_recorded_once_in_the_change_feed(
    storage: Storage,
) -> None:
    alice = await account(storage, "alice")
    bob = await account(storage, "bob")
    start = await storage.changes.latest()
    repo = storage.moderation
    assert await repo.disabled_at(alice) is None
    assert await repo.set_disabled(alice, True, T0)
    assert not await repo.set_disabled(alice, True, T0 + 5)  # already: nothing changes
    assert await repo.disabled_at(alice) == T0
    assert await repo.disabled_accounts() == [alice]
    assert await repo.disabled_at(bob) is None
    assert await repo.set_disabled(alice, False, T0 + 10)
    assert not await repo.set_disabled(alice, False, T0 + 10)
    assert await repo.disabled_accounts() == []
    changes = [(kind, subject) for _, kind, subject in await storage.changes.since(start, 10)]
    assert changes == [("account-disabled", alice), ("account-enabled", alice)]
    with pytest.raises(AccountNotFoundError):
        await repo.set_disabled(jid("ghost"), True, T0)


async def test_accounts_in_jid_order_up_to_a_limit(storage: Storage) -> None:
    for local in ("carol", "alice", "bob"):
        await account(storage, local)
    assert await storage.moderation.accounts(2) == [jid("alice"), jid("bob")]
    assert await storage.moderation.accounts(10) == [jid("alice"), jid("bob"), jid("carol")]


async def test_a_removed_account_is_no_longer_disabled(storage: Storage) -> None:
    alice = await account(storage, "alice")
    await storage.moderation.set_disabled(alice, True, T0)
    await storage.accounts.delete(alice)
    assert await storage.moderation.disabled_accounts() == []


async def test_accounts_by_phone_number_across_services(storage: Storage) -> None:
    alice = await account(storage, "alice")
    other = "alice@other.test"
    await storage.accounts.create(other, (await storage.accounts.get_credentials(alice)), T0)  # type: ignore[arg-type]
    await storage.policy.set_phone(alice, "+4915112345678")
    await storage.policy.set_phone(other, "+4915112345678")
    assert await storage.moderation.accounts_with_phone("+4915112345678") == sorted([alice, other])
    assert await storage.moderation.accounts_with_phone("+4915100000000") == []


async def test_a_report_is_resolved_once(storage: Storage) -> None:
    alice = jid("alice")
    first = await storage.policy.add_report(report(alice))
    second = await storage.policy.add_report(report(alice))
    repo = storage.moderation
    assert await repo.unresolved_reports(10) == [second, first]
    done = await repo.resolve_report(first, "provider suspended the sender", "admin-api", T0)
    assert done == ReportResolution(first, "provider suspended the sender", "admin-api", T0)
    again = await repo.resolve_report(first, "something else", "console", T0 + 1)
    assert again == done  # the first resolution stays
    assert await repo.resolve_report(9999, "x", "admin-api", T0) is None
    assert await repo.resolutions([first, second, 9999]) == {first: done}
    assert await repo.resolutions([]) == {}
    assert await repo.unresolved_reports(10) == [second]
    assert await repo.unresolved_reports(0) == []
    assert await repo.resolved_reports(10) == [first]
    await repo.resolve_report(second, "done", "admin-api", T0)
    assert await repo.resolved_reports(1) == [second]


async def test_enlisted_accounts_newest_first_per_provider(storage: Storage) -> None:
    a = interop_account("a")
    b = replace(interop_account("b"), enlisted_at=T0 + 1)
    await enlist(storage, "j1", a)
    await enlist(storage, "j2", b)
    repo = storage.moderation
    assert [x.jid for x in await repo.enlisted(None, 10)] == [b.jid, a.jid]
    assert [x.jid for x in await repo.enlisted("examplechat", 1)] == [b.jid]
    assert await repo.enlisted("nobody", 10) == []
    assert (await repo.enlisted(None, 10))[1] == a
