"""The embedded SQLite engine (WAL, numbered migrations, durable commits)."""

from __future__ import annotations

from interlink.storage.sqlite.engine import SqliteStorage, open_sqlite

__all__ = ["SqliteStorage", "open_sqlite"]
