"""Message archive contract (XEP-0313): arrival order, filters, RSM pages, quota, retention,
preferences, and the archive leaving with its account."""

from __future__ import annotations

import pytest

from interlink.storage import Storage
from interlink.storage.archive import ArchiveEntry, ArchiveFilter
from interlink.xmpp.ext.mam import Default, Prefs
from tests.storage.kit import T0, account, credentials, jid

BIG = 1_000_000


def entry(owner: str, n: int, peer: str = "bob@hub.test", resource: str = "") -> ArchiveEntry:
    return ArchiveEntry(owner, f"id{n}", peer, resource, T0 + n, f"<message id='m{n}'/>")


async def fill(storage: Storage, owner: str, n: int, peer: str = "bob@hub.test") -> None:
    await storage.archive.append([entry(owner, i, peer) for i in range(n)], BIG)


def ids(page: object) -> list[str]:
    return [m.id for m in page.messages]  # type: ignore[attr-defined]


async def test_entries_are_kept_per_owner_in_arrival_order(storage: Storage) -> None:
    alice = await account(storage, "alice")
    bob = await account(storage, "bob")
    await storage.archive.append([entry(alice, 1), entry(bob, 1, peer=alice)], BIG)
    await storage.archive.append([entry(alice, 0)], BIG)  # later, though stamped earlier
    page = await storage.archive.page(alice, ArchiveFilter(), after=None, before=None, limit=10)
    assert page is not None
    assert ids(page) == ["id1", "id0"]
    assert (page.count, page.first_index, page.complete) == (2, 0, True)
    assert page.messages[0].stanza == "<message id='m1'/>"
    assert page.messages[0].at == T0 + 1
    assert await storage.archive.count(alice) == 2
    assert await storage.archive.count(bob) == 1


async def test_entries_of_non_accounts_and_repeated_ids_are_skipped(storage: Storage) -> None:
    alice = await account(storage, "alice")
    await storage.archive.append([entry(alice, 1), entry(jid("nobody"), 1)], BIG)
    await storage.archive.append([entry(alice, 1)], BIG)
    assert await storage.archive.count(alice) == 1
    assert await storage.archive.count(jid("nobody")) == 0


async def test_forward_pages_walk_the_whole_archive(storage: Storage) -> None:
    alice = await account(storage, "alice")
    await fill(storage, alice, 25)
    seen: list[str] = []
    after: str | None = None
    indexes = []
    while True:
        page = await storage.archive.page(
            alice, ArchiveFilter(), after=after, before=None, limit=10
        )
        assert page is not None
        assert page.count == 25
        indexes.append(page.first_index)
        seen += ids(page)
        if page.complete:
            break
        after = page.messages[-1].id
    assert seen == [f"id{i}" for i in range(25)]
    assert indexes == [0, 10, 20]


async def test_backward_pages_start_from_the_last(storage: Storage) -> None:
    alice = await account(storage, "alice")
    await fill(storage, alice, 25)
    page = await storage.archive.page(alice, ArchiveFilter(), after=None, before="", limit=10)
    assert page is not None
    assert ids(page) == [f"id{i}" for i in range(15, 25)]
    assert (page.first_index, page.complete) == (15, False)
    page = await storage.archive.page(alice, ArchiveFilter(), after=None, before="id5", limit=10)
    assert page is not None
    assert ids(page) == [f"id{i}" for i in range(5)]
    assert (page.first_index, page.complete) == (0, True)


async def test_an_exact_last_page_is_complete_and_max_zero_counts(storage: Storage) -> None:
    alice = await account(storage, "alice")
    await fill(storage, alice, 10)
    page = await storage.archive.page(alice, ArchiveFilter(), after=None, before=None, limit=10)
    assert page is not None
    assert page.complete
    assert len(page.messages) == 10
    page = await storage.archive.page(alice, ArchiveFilter(), after=None, before=None, limit=0)
    assert page is not None
    assert (ids(page), page.count, page.first_index, page.complete) == ([], 10, None, False)
    page = await storage.archive.page(alice, ArchiveFilter(), after="id9", before=None, limit=5)
    assert page is not None
    assert (ids(page), page.count, page.complete) == ([], 10, True)


async def test_unknown_ids_answer_none(storage: Storage) -> None:
    alice = await account(storage, "alice")
    bob = await account(storage, "bob")
    await fill(storage, alice, 3)
    await fill(storage, bob, 3)
    everything = ArchiveFilter()
    assert await storage.archive.page(alice, everything, after="x", before=None, limit=5) is None
    assert await storage.archive.page(alice, everything, after=None, before="x", limit=5) is None
    unknown_after = ArchiveFilter(after_id="x")
    assert (
        await storage.archive.page(alice, unknown_after, after=None, before=None, limit=5) is None
    )
    # an id of another archive is not one of this archive
    await storage.archive.append([ArchiveEntry(bob, "bobs", alice, "", T0, "<m/>")], BIG)
    assert await storage.archive.page(alice, everything, after="bobs", before=None, limit=5) is None


async def test_filters(storage: Storage) -> None:
    alice = await account(storage, "alice")
    carol = "carol@hub.test"
    await storage.archive.append(
        [
            entry(alice, 0),
            entry(alice, 1, carol, "phone"),
            entry(alice, 2, carol, "laptop"),
            entry(alice, 3),
            entry(alice, 4, carol, "phone"),
        ],
        BIG,
    )

    async def matching(where: ArchiveFilter) -> list[str]:
        page = await storage.archive.page(alice, where, after=None, before=None, limit=50)
        assert page is not None
        return ids(page)

    assert await matching(ArchiveFilter(peer=carol)) == ["id1", "id2", "id4"]
    assert await matching(ArchiveFilter(peer=carol, peer_resource="phone")) == ["id1", "id4"]
    assert await matching(ArchiveFilter(start=T0 + 1, end=T0 + 3)) == ["id1", "id2", "id3"]
    assert await matching(ArchiveFilter(after_id="id1", before_id="id4")) == ["id2", "id3"]
    assert await matching(ArchiveFilter(ids=("id3", "id0", "nope"))) == ["id0", "id3"]
    page = await storage.archive.page(
        alice, ArchiveFilter(peer=carol), after="id1", before=None, limit=1
    )
    assert page is not None
    assert (ids(page), page.count, page.first_index, page.complete) == (["id2"], 3, 1, False)


async def test_the_quota_drops_the_oldest_at_the_boundary(storage: Storage) -> None:
    alice = await account(storage, "alice")
    bob = await account(storage, "bob")
    await storage.archive.append([entry(alice, i) for i in range(5)], 5)
    await storage.archive.append([entry(bob, 0, alice)], 5)
    assert await storage.archive.count(alice) == 5  # exactly at the quota: nothing dropped
    await storage.archive.append([entry(alice, 5), entry(alice, 6)], 5)
    page = await storage.archive.page(alice, ArchiveFilter(), after=None, before=None, limit=10)
    assert page is not None
    assert ids(page) == ["id2", "id3", "id4", "id5", "id6"]
    assert await storage.archive.count(alice) == 5
    assert await storage.archive.count(bob) == 1  # other archives untouched


async def test_prune_removes_what_is_older_than_the_cutoff(storage: Storage) -> None:
    alice = await account(storage, "alice")
    await fill(storage, alice, 10)
    assert await storage.archive.prune(T0 + 4) == 4  # at < cutoff
    page = await storage.archive.page(alice, ArchiveFilter(), after=None, before=None, limit=50)
    assert page is not None
    assert ids(page)[0] == "id4"
    assert await storage.archive.count(alice) == 6
    assert await storage.archive.prune(T0 + 4) == 0


async def test_edges(storage: Storage) -> None:
    alice = await account(storage, "alice")
    assert await storage.archive.edges(alice) is None
    await fill(storage, alice, 3)
    edges = await storage.archive.edges(alice)
    assert edges is not None
    assert (edges[0].id, edges[1].id) == ("id0", "id2")
    assert edges[1].at == T0 + 2


async def test_prefs_are_stored_and_replaced(storage: Storage) -> None:
    alice = await account(storage, "alice")
    bob = await account(storage, "bob")
    assert await storage.archive.get_prefs(alice) is None
    prefs = Prefs(Default.ROSTER, ("x@y",), ("z@y", "w@y"))
    await storage.archive.set_prefs(alice, prefs)
    assert await storage.archive.get_prefs(alice) == prefs
    await storage.archive.set_prefs(alice, Prefs(Default.NEVER))
    await storage.archive.set_prefs(bob, Prefs(Default.ALWAYS))
    assert await storage.archive.all_prefs() == {
        alice: Prefs(Default.NEVER),
        bob: Prefs(Default.ALWAYS),
    }


async def test_the_archive_goes_with_its_account(storage: Storage) -> None:
    alice = await account(storage, "alice")
    await fill(storage, alice, 3)
    await storage.archive.set_prefs(alice, Prefs(Default.NEVER))
    await storage.accounts.delete(alice)
    await storage.accounts.create(alice, credentials(), T0)
    assert await storage.archive.count(alice) == 0
    assert await storage.archive.get_prefs(alice) is None
    assert await storage.archive.edges(alice) is None
    await fill(storage, alice, 2)  # the counter starts again from zero
    assert await storage.archive.count(alice) == 2


@pytest.mark.parametrize("writers", [1, 20])
async def test_concurrent_appends_all_land(storage: Storage, writers: int) -> None:
    import asyncio

    alice = await account(storage, "alice")
    await asyncio.gather(
        *(
            storage.archive.append(
                [ArchiveEntry(alice, f"w{w}", "b@hub.test", "", T0, "<m/>")], BIG
            )
            for w in range(writers)
        )
    )
    assert await storage.archive.count(alice) == writers
