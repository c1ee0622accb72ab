"""Group commit: concurrent writers share one transaction; each still gets its own answer only
after its item is durable, a failed group fails every waiter in it and stores nothing, and
replay protection of token ids stays exact."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from interlink.storage.enlistment import InteropAccount
from interlink.storage.sqlite import SqliteStorage, open_sqlite
from interlink.storage.sqlite.group import GroupCommit

T0 = 1_000_000.0


class Recorder:
    """A ``write`` that records its groups, and fails a group holding ``poison``."""

    def __init__(self) -> None:
        self.groups: list[list[str]] = []
        self.stored: list[str] = []
        self.release = asyncio.Event()
        self.release.set()

    async def write(self, items: list[str]) -> list[str]:
        self.groups.append(list(items))
        await self.release.wait()
        if "poison" in items:
            raise sqlite3.OperationalError("disk I/O error")
        self.stored.extend(items)
        return [item.upper() for item in items]


async def test_concurrent_submits_share_one_write() -> None:
    rec = Recorder()
    group: GroupCommit[str, str] = GroupCommit(rec.write)
    results = await asyncio.gather(group.submit("a"), group.submit("b"), group.submit("c"))
    assert list(results) == ["A", "B", "C"]
    assert rec.groups == [["a", "b", "c"]]
    assert group.groups == 1


async def test_items_arriving_during_a_write_form_the_next_group() -> None:
    rec = Recorder()
    rec.release.clear()
    group: GroupCommit[str, str] = GroupCommit(rec.write)
    first = asyncio.ensure_future(group.submit("a"))
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert rec.groups == [["a"]]  # the write is under way, not yet committed
    later = [asyncio.ensure_future(group.submit(x)) for x in ("b", "c")]
    await asyncio.sleep(0)
    assert not first.done()  # no answer before the commit
    rec.release.set()
    assert await first == "A"
    assert [await f for f in later] == ["B", "C"]
    assert rec.groups == [["a"], ["b", "c"]]


async def test_a_failed_write_fails_every_waiter_in_its_group_only() -> None:
    rec = Recorder()
    group: GroupCommit[str, str] = GroupCommit(rec.write)
    outcomes = await asyncio.gather(
        group.submit("a"), group.submit("poison"), group.submit("b"), return_exceptions=True
    )
    assert all(isinstance(o, sqlite3.OperationalError) for o in outcomes)
    assert rec.stored == []
    assert await group.submit("c") == "C"  # the next group is tried afresh


async def test_groups_are_bounded() -> None:
    rec = Recorder()
    group: GroupCommit[str, str] = GroupCommit(rec.write, max_group=2)
    await asyncio.gather(*(group.submit(x) for x in "abcde"))
    assert rec.groups == [["a", "b"], ["c", "d"], ["e"]]


async def test_a_cancelled_waiter_does_not_disturb_the_others() -> None:
    rec = Recorder()
    rec.release.clear()
    group: GroupCommit[str, str] = GroupCommit(rec.write)
    a = asyncio.ensure_future(group.submit("a"))
    b = asyncio.ensure_future(group.submit("b"))
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    a.cancel()
    rec.release.set()
    assert await b == "B"
    assert a.cancelled()


# The token ids of logins, on SQLite.


async def _open(tmp_path: Path) -> SqliteStorage:
    return await open_sqlite(tmp_path / "hub.db")


async def _stored(path: Path) -> set[str]:
    """What another connection sees: only committed rows."""
    with sqlite3.connect(path) as other:
        return {str(r[0]) for r in other.execute("SELECT jti FROM seen_token_ids")}


async def test_concurrent_logins_share_one_commit_and_are_durable(tmp_path: Path) -> None:
    storage = await _open(tmp_path)
    try:
        repo = storage.enlistment
        results = await asyncio.gather(
            *(repo.remember_jti("examplechat", f"j{i}", T0 + 300, T0) for i in range(5))
        )
        assert results == [True] * 5
        assert repo.login_jti_commits == 1
        assert await _stored(tmp_path / "hub.db") == {f"j{i}" for i in range(5)}
        assert not storage.db.conn.in_transaction
    finally:
        await storage.close()


async def test_a_replay_inside_one_group_is_caught(tmp_path: Path) -> None:
    storage = await _open(tmp_path)
    try:
        repo = storage.enlistment
        results = await asyncio.gather(
            repo.remember_jti("examplechat", "same", T0 + 300, T0),
            repo.remember_jti("otherchat", "same", T0 + 300, T0),  # another issuer's id
            repo.remember_jti("examplechat", "same", T0 + 300, T0),
            repo.remember_jti("examplechat", "new", T0 + 300, T0),
        )
        assert list(results) == [True, True, False, True]
        assert repo.login_jti_commits == 1
        # ... and across groups.
        assert not await repo.remember_jti("examplechat", "new", T0 + 300, T0 + 1)
    finally:
        await storage.close()


async def test_a_failed_group_commit_stores_none_of_its_ids(tmp_path: Path) -> None:
    storage = await _open(tmp_path)
    try:
        repo = storage.enlistment
        await storage.db.conn.execute(
            "CREATE TEMP TRIGGER refuse BEFORE INSERT ON seen_token_ids "
            "WHEN NEW.jti = 'poison' BEGIN SELECT RAISE(ABORT, 'refused'); END"
        )
        outcomes = await asyncio.gather(
            repo.remember_jti("examplechat", "a", T0 + 300, T0),
            repo.remember_jti("examplechat", "poison", T0 + 300, T0),
            repo.remember_jti("examplechat", "b", T0 + 300, T0),
            return_exceptions=True,
        )
        assert all(isinstance(o, sqlite3.Error) for o in outcomes), outcomes
        assert await _stored(tmp_path / "hub.db") == set()
        await storage.db.conn.execute("DROP TRIGGER refuse")
        # Nothing of the failed group was kept: each id is still new.
        assert await repo.remember_jti("examplechat", "a", T0 + 300, T0)
        assert await repo.remember_jti("examplechat", "b", T0 + 300, T0)
    finally:
        await storage.close()


async def test_login_state_reads_token_id_and_account_at_once(tmp_path: Path) -> None:
    storage = await _open(tmp_path)
    try:
        repo = storage.enlistment
        assert await repo.login_state("examplechat", "j1", "x@examplechat.interop.hub") == (
            False,
            False,
        )
        await repo.remember_jti("examplechat", "j1", T0 + 300, T0)
        assert await repo.login_state("examplechat", "j1", "x@examplechat.interop.hub") == (
            True,
            False,
        )
        assert await repo.login_state("otherchat", "j1", "x@examplechat.interop.hub") == (
            False,
            False,
        )
    finally:
        await storage.close()


@pytest.mark.parametrize("count", [1, 300])
async def test_group_sizes_past_the_limit_still_answer_each(tmp_path: Path, count: int) -> None:
    storage = await _open(tmp_path)
    try:
        repo = storage.enlistment
        results = await asyncio.gather(
            *(repo.remember_jti("examplechat", f"j{i}", T0 + 300, T0) for i in range(count))
        )
        assert results == [True] * count
        assert len(await _stored(tmp_path / "hub.db")) == count
    finally:
        await storage.close()


# Enlistments, on SQLite.


def _account(subject: str, key: bytes = b"k" * 32) -> InteropAccount:
    return InteropAccount(
        jid=f"{subject}@examplechat.interop.hub.test",
        provider_id="examplechat",
        subject=subject,
        user_id=None,
        identity_key=key,
        enlisted_at=T0,
        updated_at=T0,
    )


async def _enlist(storage: SqliteStorage, jti: str, account: InteropAccount) -> str:
    return await storage.enlistment.commit_enlistment(
        issuer="examplechat",
        jti=jti,
        jti_expires_at=T0 + 300,
        account=account,
        new_key=True,
        now=T0,
    )


def _rows(path: Path, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(path) as other:
        return list(other.execute(sql))


async def test_concurrent_enlistments_share_one_commit(tmp_path: Path) -> None:
    storage = await _open(tmp_path)
    try:
        outcomes = await asyncio.gather(
            *(_enlist(storage, f"j{i}", _account(f"u{i}")) for i in range(4)),
            _enlist(storage, "j0", _account("intruder")),  # a replayed token id
        )
        assert list(outcomes) == ["ok", "ok", "ok", "ok", "replayed"]
        assert storage.enlistment.enlistment_commits == 1
        db = tmp_path / "hub.db"
        assert sorted(str(r[0]) for r in _rows(db, "SELECT subject FROM interop_accounts")) == [
            "u0",
            "u1",
            "u2",
            "u3",
        ]
        assert len(_rows(db, "SELECT jid FROM accounts")) == 4
        assert len(_rows(db, "SELECT jid FROM interop_key_history")) == 4
        assert not storage.db.conn.in_transaction
    finally:
        await storage.close()


async def test_a_group_gives_what_one_after_the_other_would(tmp_path: Path) -> None:
    """The same account twice in a group (a new key): the later one wins, both keys are in
    the history, in order."""
    storage = await _open(tmp_path)
    try:
        outcomes = await asyncio.gather(
            _enlist(storage, "j1", _account("u", b"1" * 32)),
            _enlist(storage, "j2", _account("u", b"2" * 32)),
        )
        assert list(outcomes) == ["ok", "ok"]
        account = await storage.enlistment.account(_account("u").jid)
        assert account is not None
        assert account.identity_key == b"2" * 32
        assert await storage.enlistment.key_history(account.jid) == [b"1" * 32, b"2" * 32]
    finally:
        await storage.close()


async def test_a_failed_enlistment_group_stores_nothing(tmp_path: Path) -> None:
    storage = await _open(tmp_path)
    try:
        await storage.db.conn.execute(
            "CREATE TEMP TRIGGER refuse BEFORE INSERT ON interop_accounts "
            "WHEN NEW.subject = 'poison' BEGIN SELECT RAISE(ABORT, 'refused'); END"
        )
        outcomes = await asyncio.gather(
            _enlist(storage, "j1", _account("u1")),
            _enlist(storage, "j2", _account("poison")),
            _enlist(storage, "j3", _account("u3")),
            return_exceptions=True,
        )
        assert all(isinstance(o, sqlite3.Error) for o in outcomes), outcomes
        db = tmp_path / "hub.db"
        for table in ("seen_token_ids", "accounts", "interop_accounts", "interop_key_history"):
            assert _rows(db, f"SELECT COUNT(*) FROM {table}") == [(0,)], table  # noqa: S608
        await storage.db.conn.execute("DROP TRIGGER refuse")
        assert await _enlist(storage, "j1", _account("u1")) == "ok"  # the id is still new
    finally:
        await storage.close()


async def test_the_key_history_is_read_and_deleted_by_index(tmp_path: Path) -> None:
    """Migration 0007: reading an account's key history, and the cascade when the account is
    deleted, use an index on jid instead of scanning the table."""
    storage = await open_sqlite(tmp_path / "hub.db")
    try:
        conn = storage.db.conn
        async with conn.execute(
            "EXPLAIN QUERY PLAN SELECT identity_key FROM interop_key_history WHERE jid = ?",
            ("a@x",),
        ) as cur:
            plan = " ".join(str(row[-1]) for row in await cur.fetchall())
        assert "USING INDEX interop_key_history_jid" in plan
    finally:
        await storage.close()
