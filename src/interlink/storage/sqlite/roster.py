"""SQLite: rosters and pending subscription requests (migration 0001). A roster item's groups are
a JSON list in one column."""

from __future__ import annotations

from interlink.storage.roster import PendingSubscription, RosterItem
from interlink.storage.rows.roster import roster_item_from_row, roster_item_params
from interlink.storage.sqlite.database import SqliteDatabase

_ITEMS = "SELECT contact, name, subscription, ask, groups FROM roster "


class SqliteRoster:
    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db

    async def items(self, owner: str) -> list[RosterItem]:
        rows = await self._db.fetch_all(_ITEMS + "WHERE owner = ? ORDER BY contact", (owner,))
        return [roster_item_from_row(r) for r in rows]

    async def get(self, owner: str, contact: str) -> RosterItem | None:
        row = await self._db.fetch_one(_ITEMS + "WHERE owner = ? AND contact = ?", (owner, contact))
        return None if row is None else roster_item_from_row(row)

    async def count(self, owner: str) -> int:
        row = await self._db.fetch_one("SELECT COUNT(*) FROM roster WHERE owner = ?", (owner,))
        return int(row[0]) if row else 0

    async def put(self, owner: str, item: RosterItem) -> None:
        async with self._db.transaction() as conn:
            await conn.execute(
                "INSERT OR REPLACE INTO roster (owner, contact, name, subscription, ask, groups) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                roster_item_params(owner, item),
            )

    async def remove(self, owner: str, contact: str) -> None:
        async with self._db.transaction() as conn:
            await conn.execute(
                "DELETE FROM roster WHERE owner = ? AND contact = ?", (owner, contact)
            )

    async def add_pending(
        self, owner: str, requester: str, stanza: str, now: float, *, cap: int | None = None
    ) -> bool:
        async with self._db.transaction() as conn:
            # One statement: the cap check and the write cannot be split by another writer.
            cur = await conn.execute(
                "INSERT OR REPLACE INTO pending_subscriptions"
                " (owner, requester, stanza, created_at)"
                " SELECT ?, ?, ?, ? WHERE"
                " (SELECT COUNT(*) FROM pending_subscriptions WHERE owner = ?) < ?"
                " OR EXISTS (SELECT 1 FROM pending_subscriptions"
                " WHERE owner = ? AND requester = ?)",
                (
                    owner,
                    requester,
                    stanza,
                    now,
                    owner,
                    (1 << 62) if cap is None else cap,
                    owner,
                    requester,
                ),
            )
            return cur.rowcount == 1

    async def remove_pending(self, owner: str, requester: str) -> bool:
        async with self._db.transaction() as conn:
            cur = await conn.execute(
                "DELETE FROM pending_subscriptions WHERE owner = ? AND requester = ?",
                (owner, requester),
            )
            return cur.rowcount > 0

    async def pending(self, owner: str) -> list[PendingSubscription]:
        rows = await self._db.fetch_all(
            "SELECT requester, stanza FROM pending_subscriptions WHERE owner = ? "
            "ORDER BY created_at",
            (owner,),
        )
        return [PendingSubscription(str(r[0]), str(r[1])) for r in rows]
