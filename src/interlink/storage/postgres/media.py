"""PostgreSQL: the media store's slots and files (migration 0006). A reservation checks the
owner's quota and open slots, then inserts, holding the owner's lock (``media:<owner>``)
meanwhile, so concurrent reservations (on any node) cannot both pass one check."""

from __future__ import annotations

from interlink.storage.media import MediaRecord, Usage
from interlink.storage.postgres.database import PostgresDatabase, Row, fetch_one, lock
from interlink.storage.rows.media import record_params

_SELECT = (
    "SELECT slot_id, file_id, owner, filename, size, content_type, token_hash, created_at, "
    "put_expires_at, stored_at, expires_at FROM media "
)
_INSERT = (
    "INSERT INTO media (slot_id, file_id, owner, filename, size, content_type, token_hash, "
    "created_at, put_expires_at, stored_at, expires_at) "
    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
)
# Live: an open slot whose PUT time has not passed, or a stored file within its retention.
_USAGE = (
    "SELECT COALESCE(SUM(size), 0), "
    "COALESCE(SUM(CASE WHEN stored_at IS NULL THEN 1 ELSE 0 END), 0) FROM media "
    "WHERE owner = %s AND ((stored_at IS NULL AND put_expires_at > %s) OR expires_at > %s)"
)
_EXPIRED = (
    _SELECT
    + "WHERE stored_at IS NULL AND put_expires_at <= %s UNION ALL "
    + _SELECT
    + "WHERE stored_at IS NOT NULL AND expires_at <= %s LIMIT %s"
)
_BY_SLOT = _SELECT + "WHERE slot_id = %s"
_BY_FILE = _SELECT + "WHERE file_id = %s"
_BY_OWNER = _SELECT + "WHERE owner = %s"


def _record_from_row(row: Row) -> MediaRecord:
    return MediaRecord(
        slot_id=str(row[0]),
        file_id=str(row[1]),
        owner=str(row[2]),
        filename=str(row[3]),
        size=int(row[4]),
        content_type=str(row[5]),
        token_hash=bytes(row[6]),
        created_at=float(row[7]),
        put_expires_at=float(row[8]),
        stored_at=None if row[9] is None else float(row[9]),
        expires_at=None if row[10] is None else float(row[10]),
    )


def _usage(row: Row | None) -> Usage:
    assert row is not None
    return Usage(int(row[0]), int(row[1]))


class PostgresMedia:
    def __init__(self, db: PostgresDatabase) -> None:
        self._db = db

    async def reserve(
        self, record: MediaRecord, *, quota_bytes: int, max_open_slots: int, now: float
    ) -> Usage | None:
        async with self._db.transaction() as conn:
            await lock(conn, "media:" + record.owner)
            usage = _usage(await fetch_one(conn, _USAGE, (record.owner, now, now)))
            if usage.bytes + record.size > quota_bytes or usage.open_slots + 1 > max_open_slots:
                return usage
            await conn.execute(_INSERT, record_params(record))
            return None

    async def usage(self, owner: str, now: float) -> Usage:
        return _usage(await self._db.fetch_one(_USAGE, (owner, now, now)))

    async def by_slot(self, slot_id: str) -> MediaRecord | None:
        row = await self._db.fetch_one(_BY_SLOT, (slot_id,))
        return None if row is None else _record_from_row(row)

    async def by_file(self, file_id: str) -> MediaRecord | None:
        row = await self._db.fetch_one(_BY_FILE, (file_id,))
        return None if row is None else _record_from_row(row)

    async def mark_stored(self, slot_id: str, stored_at: float, expires_at: float) -> bool:
        async with self._db.transaction() as conn:
            cur = await conn.execute(
                "UPDATE media SET stored_at = %s, expires_at = %s "
                "WHERE slot_id = %s AND stored_at IS NULL",
                (stored_at, expires_at, slot_id),
            )
            return cur.rowcount == 1

    async def expired(self, now: float, limit: int) -> list[MediaRecord]:
        return [_record_from_row(r) for r in await self._db.fetch_all(_EXPIRED, (now, now, limit))]

    async def owned_by(self, owner: str) -> list[MediaRecord]:
        return [_record_from_row(r) for r in await self._db.fetch_all(_BY_OWNER, (owner,))]

    async def delete(self, slot_ids: list[str]) -> None:
        async with self._db.transaction() as conn:
            await conn.execute("DELETE FROM media WHERE slot_id = ANY(%s)", (slot_ids,))
