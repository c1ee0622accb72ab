"""SQLite: the media store's slots and files (migration 0006).

The hub gets its table from migration ``0006_media.sql``; the provider kit, whose database has no
numbered migrations, runs the same file through :func:`create_media_tables`. Every write runs in
:meth:`SqliteDatabase.transaction`, which commits (durably with ``synchronous=FULL``) before the
caller continues; the kit gives the repository its own autocommit connection for that reason.
"""

from __future__ import annotations

from importlib import resources
from typing import TYPE_CHECKING

from interlink.storage.media import MediaRecord, Usage
from interlink.storage.rows.media import record_params
from interlink.storage.sqlite.database import Row, SqliteDatabase

if TYPE_CHECKING:
    import aiosqlite


MEDIA_MIGRATION = "0006_media.sql"

_SELECT = (
    "SELECT slot_id, file_id, owner, filename, size, content_type, token_hash, created_at, "
    "put_expires_at, stored_at, expires_at FROM media "
)
_INSERT = (
    "INSERT INTO media (slot_id, file_id, owner, filename, size, content_type, token_hash, "
    "created_at, put_expires_at, stored_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
# Live: an open slot whose PUT time has not passed, or a stored file within its retention.
_USAGE = (
    "SELECT COALESCE(SUM(size), 0), "
    "COALESCE(SUM(CASE WHEN stored_at IS NULL THEN 1 ELSE 0 END), 0) FROM media "
    "WHERE owner = ? AND ((stored_at IS NULL AND put_expires_at > ?) OR expires_at > ?)"
)
_EXPIRED = (
    _SELECT
    + "WHERE stored_at IS NULL AND put_expires_at <= ? UNION ALL "
    + _SELECT
    + "WHERE stored_at IS NOT NULL AND expires_at <= ? LIMIT ?"
)
_BY_SLOT = _SELECT + "WHERE slot_id = ?"
_BY_FILE = _SELECT + "WHERE file_id = ?"
_BY_OWNER = _SELECT + "WHERE owner = ?"


def media_schema() -> str:
    """The DDL of the media table (the hub's migration file, idempotent)."""
    folder = resources.files("interlink.storage.sqlite") / "migrations"
    return (folder / MEDIA_MIGRATION).read_text(encoding="utf-8")


async def create_media_tables(conn: aiosqlite.Connection) -> None:
    """Create the media table on a database without numbered migrations (the provider kit)."""
    await conn.executescript(media_schema())


def _record_from_row(row: Row) -> MediaRecord:
    return MediaRecord(
        slot_id=str(row[0]),
        file_id=str(row[1]),
        owner=str(row[2]),
        filename=str(row[3]),
        size=int(str(row[4])),
        content_type=str(row[5]),
        token_hash=bytes(row[6]) if isinstance(row[6], bytes | bytearray | memoryview) else b"",
        created_at=float(str(row[7])),
        put_expires_at=float(str(row[8])),
        stored_at=None if row[9] is None else float(str(row[9])),
        expires_at=None if row[10] is None else float(str(row[10])),
    )


class SqliteMedia:
    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db

    async def reserve(
        self, record: MediaRecord, *, quota_bytes: int, max_open_slots: int, now: float
    ) -> Usage | None:
        async with self._db.transaction() as conn:
            row = await self._db.fetch_one(_USAGE, (record.owner, now, now))
            assert row is not None
            usage = Usage(int(row[0]), int(row[1]))
            if usage.bytes + record.size > quota_bytes or usage.open_slots + 1 > max_open_slots:
                return usage
            await conn.execute(_INSERT, record_params(record))
            return None

    async def usage(self, owner: str, now: float) -> Usage:
        row = await self._db.fetch_one(_USAGE, (owner, now, now))
        assert row is not None
        return Usage(int(row[0]), int(row[1]))

    async def by_slot(self, slot_id: str) -> MediaRecord | None:
        row = await self._db.fetch_one(_BY_SLOT, (slot_id,))
        return None if row is None else _record_from_row(row)

    async def by_file(self, file_id: str) -> MediaRecord | None:
        row = await self._db.fetch_one(_BY_FILE, (file_id,))
        return None if row is None else _record_from_row(row)

    async def mark_stored(self, slot_id: str, stored_at: float, expires_at: float) -> bool:
        async with self._db.transaction() as conn:
            cur = await conn.execute(
                "UPDATE media SET stored_at = ?, expires_at = ? "
                "WHERE slot_id = ? AND stored_at IS NULL",
                (stored_at, expires_at, slot_id),
            )
            return cur.rowcount == 1

    async def expired(self, now: float, limit: int) -> list[MediaRecord]:
        return [_record_from_row(r) for r in await self._db.fetch_all(_EXPIRED, (now, now, limit))]

    async def owned_by(self, owner: str) -> list[MediaRecord]:
        return [_record_from_row(r) for r in await self._db.fetch_all(_BY_OWNER, (owner,))]

    async def delete(self, slot_ids: list[str]) -> None:
        async with self._db.transaction() as conn:
            await conn.executemany("DELETE FROM media WHERE slot_id = ?", [(s,) for s in slot_ids])
