"""The embedded SQLite engine (WAL, numbered migrations, durable commits): one module per
concern, named as in :mod:`interlink.storage`, holding its SQL and row mappers."""

from __future__ import annotations

from interlink.storage.sqlite.database import SqliteDatabase
from interlink.storage.sqlite.engine import SqliteStorage, open_sqlite
from interlink.storage.sqlite.migrate import SqliteMigrations

__all__ = ["SqliteDatabase", "SqliteMigrations", "SqliteStorage", "open_sqlite"]
