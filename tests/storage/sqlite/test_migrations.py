"""The SQLite migration runner: numbered files, PRAGMA user_version, each migration applied with
its version in one transaction; and opening storage by engine name."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from interlink.errors import StorageError
from interlink.storage import StorageConfig, open_storage
from interlink.storage.migrations import Migration, pending_after
from interlink.storage.sqlite import SqliteMigrations, open_sqlite
from interlink.storage.sqlite.database import connect
from interlink.storage.sqlite.migrate import sqlite_migrations


def test_the_shipped_migrations_are_numbered_without_gaps() -> None:
    shipped = sqlite_migrations()
    assert [m.number for m in shipped] == list(range(1, len(shipped) + 1))
    assert shipped[0].name == "initial"
    assert "CREATE TABLE accounts" in shipped[0].sql


async def test_a_database_part_way_is_brought_up_to_date(tmp_path: Path) -> None:
    shipped = sqlite_migrations()
    db = await connect(tmp_path / "hub.db")
    try:
        older = SqliteMigrations(db, shipped[:3])
        assert await older.current_version() == 0
        assert [m.number for m in await older.apply()] == [1, 2, 3]
        runner = SqliteMigrations(db)
        assert await runner.current_version() == 3
        assert [m.number for m in await runner.pending()] == list(range(4, len(shipped) + 1))
        await runner.apply()
        assert await runner.current_version() == len(shipped)
        assert await runner.pending() == []
    finally:
        await db.close()
    with sqlite3.connect(tmp_path / "hub.db") as other:
        assert other.execute("PRAGMA user_version").fetchone() == (len(shipped),)


async def test_a_failed_migration_leaves_the_previous_version(tmp_path: Path) -> None:
    broken = [
        Migration(1, "first", "CREATE TABLE a (x INTEGER);"),
        Migration(2, "broken", "CREATE TABLE b (x INTEGER); INSERT INTO nowhere VALUES (1);"),
    ]
    db = await connect(tmp_path / "hub.db")
    try:
        runner = SqliteMigrations(db, broken)
        with pytest.raises(sqlite3.OperationalError):
            await runner.apply()
        assert not db.conn.in_transaction
        assert await runner.current_version() == 1
    finally:
        await db.close()
    with sqlite3.connect(tmp_path / "hub.db") as other:
        tables = {r[0] for r in other.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert "a" in tables
    assert "b" not in tables


async def test_a_database_newer_than_this_interlink_is_refused(tmp_path: Path) -> None:
    with sqlite3.connect(tmp_path / "hub.db") as other:
        other.execute("PRAGMA user_version=999")
    with pytest.raises(StorageError, match="newer than this Interlink"):
        await open_sqlite(tmp_path / "hub.db")


def test_pending_after_checks_the_version() -> None:
    migrations = [Migration(1, "a", ""), Migration(2, "b", "")]
    assert pending_after(migrations, 0) == migrations
    assert pending_after(migrations, 2) == []
    with pytest.raises(StorageError):
        pending_after(migrations, 3)


async def test_open_storage_picks_the_engine_by_name(tmp_path: Path) -> None:
    storage = await open_storage(StorageConfig(engine="sqlite", sqlite_path=tmp_path / "h.db"))
    try:
        assert await storage.migrations.pending() == []
    finally:
        await storage.close()
    with pytest.raises(StorageError, match="unknown storage engine 'oracle'"):
        await open_storage(StorageConfig(engine="oracle"))
    with pytest.raises(StorageError, match="synchronous"):
        await open_storage(StorageConfig(sqlite_synchronous="SOMETIMES"))
