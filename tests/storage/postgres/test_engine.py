"""The PostgreSQL engine itself: its migrations (numbered, transactional, once across nodes
starting together), the database it accepts, durable commits, and concurrent writers on several
nodes getting the answers SQLite's one writer would give."""

from __future__ import annotations

import asyncio

import psycopg
import pytest

from interlink.errors import StorageBusyError, StorageError
from interlink.storage import StorageConfig, open_storage
from interlink.storage.enlistment import CommitOutcome, InteropAccount
from interlink.storage.migrations import Migration
from interlink.storage.pep import AccessModel, PepItem, PepNodeConfig
from interlink.storage.postgres.database import connect
from interlink.storage.postgres.engine import PostgresStorage, open_postgres
from interlink.storage.postgres.migrate import PostgresMigrations, postgres_migrations
from interlink.storage.sqlite.migrate import sqlite_migrations
from tests.servers import PostgresServer
from tests.storage.kit import T0, account, credentials


def test_each_sqlite_migration_has_its_postgres_twin() -> None:
    assert [(m.number, m.name) for m in postgres_migrations()] == [
        (m.number, m.name) for m in sqlite_migrations()
    ]


async def test_a_database_part_way_is_brought_up_to_date(pg_dsn: str) -> None:
    shipped = postgres_migrations()
    db = await connect(pg_dsn, pool_size=1)
    try:
        assert [m.number for m in await PostgresMigrations(db, shipped[:3]).apply()] == [1, 2, 3]
        runner = PostgresMigrations(db)
        assert await runner.current_version() == 3
        assert [m.number for m in await runner.apply()] == list(range(4, len(shipped) + 1))
        assert await runner.current_version() == len(shipped)
    finally:
        await db.close()


async def test_a_failed_migration_leaves_the_previous_version(pg_dsn: str) -> None:
    broken = [
        Migration(1, "first", "CREATE TABLE a (x INTEGER);"),
        Migration(2, "broken", "CREATE TABLE b (x INTEGER); INSERT INTO nowhere VALUES (1);"),
    ]
    db = await connect(pg_dsn, pool_size=1)
    try:
        runner = PostgresMigrations(db, broken)
        with pytest.raises(psycopg.errors.UndefinedTable):
            await runner.apply()
        assert await runner.current_version() == 1
        row = await db.fetch_one("SELECT to_regclass('a') IS NOT NULL, to_regclass('b') IS NULL")
        assert row == (True, True)
    finally:
        await db.close()


async def test_nodes_starting_together_apply_each_migration_once(pg_dsn: str) -> None:
    opened = await asyncio.gather(*(open_postgres(pg_dsn, pool_size=1) for _ in range(4)))
    try:
        assert {await s.migrations.current_version() for s in opened} == {
            len(postgres_migrations())
        }
    finally:
        for storage in opened:
            await storage.close()


async def test_a_database_newer_than_this_interlink_is_refused(
    pg: PostgresStorage, pg_dsn: str
) -> None:
    async with pg.db.transaction() as conn:
        await conn.execute("UPDATE interlink_schema SET version = 999")
    with pytest.raises(StorageError, match="newer than this Interlink"):
        await open_storage(StorageConfig(engine="postgres", postgres_dsn=pg_dsn))


async def test_a_database_without_the_c_collation_is_refused(postgres: PostgresServer) -> None:
    with psycopg.connect(postgres.admin_dsn, autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS t_collation")
        conn.execute(
            "CREATE DATABASE t_collation TEMPLATE template0 ENCODING 'UTF8' "
            "LC_COLLATE 'C.UTF-8' LC_CTYPE 'C.UTF-8'"
        )
    try:
        with pytest.raises(StorageError, match="needs UTF8 and C"):
            await open_postgres(postgres.dsn("t_collation"))
    finally:
        postgres.drop(postgres.dsn("t_collation"))


async def test_an_unreachable_server_or_a_missing_dsn_is_a_storage_error() -> None:
    with pytest.raises(StorageError, match="cannot connect to PostgreSQL"):
        await connect("host=127.0.0.1 port=1 connect_timeout=1", wait=1.0)
    with pytest.raises(StorageError, match=r"needs storage\.dsn"):
        await open_storage(StorageConfig(engine="postgres"))


async def test_no_free_connection_in_time_is_a_busy_storage_error(pg_dsn: str) -> None:
    """Every connection busy past the pool's wait: StorageBusyError (the request fails; the
    router answers resource-constraint), and the pool works again once one is free."""
    db = await connect(pg_dsn, pool_size=1, wait=0.2)
    try:
        async with db.connection():
            with pytest.raises(StorageBusyError, match="no database connection free in time"):
                await db.fetch_all("SELECT 1")
        assert await db.fetch_all("SELECT 1") == [(1,)]
    finally:
        await db.close()


async def test_commits_are_synchronous_whatever_the_server_default(
    postgres: PostgresServer, pg_dsn: str
) -> None:
    name = psycopg.conninfo.conninfo_to_dict(pg_dsn)["dbname"]
    with psycopg.connect(postgres.admin_dsn, autocommit=True) as conn:
        conn.execute(f"ALTER DATABASE {name} SET synchronous_commit = off")
    storage = await open_postgres(pg_dsn, pool_size=2)
    try:
        assert await storage.db.fetch_one("SHOW synchronous_commit") == ("on",)
    finally:
        await storage.close()


async def test_a_stored_message_is_committed_when_the_call_returns(
    pg: PostgresStorage, pg_dsn: str
) -> None:
    owner = await account(pg, "alice")
    assert await pg.offline.store(owner, "<message/>", T0, cap=10)
    # another connection, outside the hub, sees it at once: it was committed, not pending
    async with await psycopg.AsyncConnection.connect(pg_dsn) as other:
        cur = await other.execute(
            "SELECT count(*) FROM offline_messages WHERE owner = %s", (owner,)
        )
        assert await cur.fetchone() == (1,)


async def test_concurrent_stores_on_two_nodes_respect_the_offline_cap(
    pg: PostgresStorage, pg_other_node: PostgresStorage
) -> None:
    owner = await account(pg, "alice")
    results = await asyncio.gather(
        *(
            (pg if i % 2 else pg_other_node).offline.store(owner, f"<m{i}/>", T0, cap=5)
            for i in range(24)
        )
    )
    assert sum(results) == 5
    assert await pg.offline.count(owner) == 5
    ids = [m.id for m in await pg.offline.fetch(owner, 10)]
    assert ids == sorted(ids)


async def test_concurrent_publishes_on_two_nodes_respect_the_pep_quota(
    pg: PostgresStorage, pg_other_node: PostgresStorage
) -> None:
    owner = await account(pg, "alice")
    config = PepNodeConfig(AccessModel.PRESENCE, 100, True)
    for node in ("n1", "n2"):
        await pg.pep.configure(owner, node, config, T0)
    payload = "x" * 100
    results = await asyncio.gather(
        *(
            (pg if i % 2 else pg_other_node).pep.publish(
                owner, f"n{1 + i % 2}", PepItem(f"i{i}", payload, T0), quota=1000
            )
            for i in range(30)
        )
    )
    assert sum(results) == 10
    assert await pg.pep.bytes_used(owner) == 1000
    seqs = await pg.db.fetch_all(
        "SELECT node, array_agg(seq ORDER BY seq) FROM pep_items GROUP BY node"
    )
    for _, numbers in seqs:
        assert numbers == list(range(1, len(numbers) + 1))  # one writer at a time per owner


async def test_a_token_id_claimed_on_two_nodes_at_once_enlists_once(
    pg: PostgresStorage, pg_other_node: PostgresStorage
) -> None:
    def enlist(node: PostgresStorage, jid: str) -> asyncio.Future[CommitOutcome]:
        a = InteropAccount(jid, "prov", "subject-1", None, b"k" * 32, T0, T0)
        return asyncio.ensure_future(
            node.enlistment.commit_enlistment(
                issuer="https://prov",
                jti="jti-1",
                jti_expires_at=T0 + 60,
                account=a,
                new_key=True,
                now=T0,
            )
        )

    outcomes = await asyncio.gather(
        *(enlist(pg if i % 2 else pg_other_node, f"u{i}@interop.hub.test") for i in range(6))
    )
    assert sorted(outcomes) == sorted([CommitOutcome.OK] + [CommitOutcome.REPLAYED] * 5)
    assert await pg.db.fetch_one("SELECT count(*) FROM interop_accounts") == (1,)


async def test_one_subject_enlisted_under_two_jids_at_once_keeps_the_last(
    pg: PostgresStorage, pg_other_node: PostgresStorage
) -> None:
    """SQLite's INSERT OR REPLACE removes the row in the way on either unique key; here the
    same, also when the two enlistments race on two nodes."""

    async def enlist(node: PostgresStorage, i: int) -> CommitOutcome:
        a = InteropAccount(f"u{i}@interop.hub.test", "prov", "same", None, b"k" * 32, T0, T0)
        return await node.enlistment.commit_enlistment(
            issuer="https://prov",
            jti=f"jti-{i}",
            jti_expires_at=T0 + 60,
            account=a,
            new_key=False,
            now=T0,
        )

    outcomes = await asyncio.gather(*(enlist(pg if i % 2 else pg_other_node, i) for i in range(8)))
    assert outcomes == [CommitOutcome.OK] * 8
    assert await pg.db.fetch_one("SELECT count(*) FROM interop_accounts") == (1,)


async def test_credentials_are_replaced_not_duplicated(pg: PostgresStorage) -> None:
    jid = await account(pg, "alice")
    await pg.accounts.set_credentials(jid, credentials(b"b"))
    assert await pg.accounts.get_credentials(jid) == credentials(b"b")
    assert await pg.db.fetch_one("SELECT count(*) FROM credentials") == (2,)


async def test_concurrent_logins_share_a_commit_and_a_replay_is_seen_across_nodes(
    pg: PostgresStorage, pg_other_node: PostgresStorage
) -> None:
    fresh = await asyncio.gather(
        *(pg.enlistment.remember_jti("https://p", f"j{i % 20}", T0 + 60, T0) for i in range(40))
    )
    assert sum(fresh) == 20  # each id once; its repeat in the same group is a replay
    assert pg.enlistment.login_jti_commits < 40
    assert not await pg_other_node.enlistment.remember_jti("https://p", "j3", T0 + 60, T0)
    assert await pg_other_node.enlistment.remember_jti("https://p", "new", T0 + 60, T0)
