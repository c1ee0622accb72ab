"""PostgreSQL: offline message queues (migration 0001; sizes, 0009; sent marks, 0011).

A store checks the queue's count and bytes, then inserts: it holds the queue's lock
(``offline:<owner>``) meanwhile, so concurrent stores for one owner (from any node) are
serialised as on SQLite, and a queue's ids are in the order its messages were committed."""

from __future__ import annotations

from collections.abc import Sequence

from interlink.storage.offline import OfflineMessage, OfflineTotals, SentMark
from interlink.storage.postgres.database import PostgresDatabase, lock


class PostgresOffline:
    def __init__(self, db: PostgresDatabase) -> None:
        self._db = db

    async def store(
        self,
        owner: str,
        stanza: str,
        now: float,
        cap: int,
        sent: SentMark | None = None,
        *,
        max_bytes: int | None = None,
    ) -> bool:
        size = len(stanza.encode())
        budget = (1 << 62) if max_bytes is None else max_bytes - size  # for the rest
        stream, seq = sent if sent is not None else (None, None)
        async with self._db.transaction() as conn:
            await lock(conn, "offline:" + owner)
            cur = await conn.execute(
                "INSERT INTO offline_messages (owner, stanza, stored_at, size, sent_on, sent_seq) "
                "SELECT %s, %s, %s, %s, %s, %s FROM (SELECT COUNT(*) AS n, "
                "COALESCE(SUM(size), 0) AS b FROM offline_messages WHERE owner = %s) q "
                "WHERE n < %s AND b <= %s",
                (owner, stanza, now, size, stream, seq, owner, cap, budget),
            )
            return cur.rowcount == 1

    async def mark_sent(self, owner: str, marks: Sequence[tuple[int, SentMark]]) -> None:
        async with self._db.transaction() as conn, conn.cursor() as cur:
            await cur.executemany(
                "UPDATE offline_messages SET sent_on = %s, sent_seq = %s "
                "WHERE owner = %s AND id = %s",
                [(mark.stream, mark.seq, owner, msg_id) for msg_id, mark in marks],
            )

    async def delete_received(self, owner: str, stream: str, h: int) -> int:
        async with self._db.transaction() as conn:
            cur = await conn.execute(
                "DELETE FROM offline_messages WHERE owner = %s AND sent_on = %s AND sent_seq <= %s",
                (owner, stream, h),
            )
            return cur.rowcount

    async def fetch(self, owner: str, limit: int) -> Sequence[OfflineMessage]:
        rows = await self._db.fetch_all(
            "SELECT id, stanza, stored_at FROM offline_messages WHERE owner = %s "
            "ORDER BY id LIMIT %s",
            (owner, limit),
        )
        return [OfflineMessage(int(r[0]), str(r[1]), float(r[2])) for r in rows]

    async def delete(self, owner: str, up_to_id: int) -> None:
        async with self._db.transaction() as conn:
            await conn.execute(
                "DELETE FROM offline_messages WHERE owner = %s AND id <= %s", (owner, up_to_id)
            )

    async def count(self, owner: str) -> int:
        row = await self._db.fetch_one(
            "SELECT COUNT(*) FROM offline_messages WHERE owner = %s", (owner,)
        )
        return int(row[0]) if row else 0

    async def bytes_queued(self, owner: str) -> int:
        row = await self._db.fetch_one(
            "SELECT COALESCE(SUM(size), 0) FROM offline_messages WHERE owner = %s", (owner,)
        )
        return int(row[0]) if row else 0

    async def totals(self) -> OfflineTotals:
        row = await self._db.fetch_one(
            "SELECT COALESCE(SUM(n), 0), COUNT(*), COALESCE(MAX(n), 0) "
            "FROM (SELECT COUNT(*) AS n FROM offline_messages GROUP BY owner) q"
        )
        if row is None:
            return OfflineTotals(0, 0, 0)
        return OfflineTotals(int(row[0]), int(row[1]), int(row[2]))
