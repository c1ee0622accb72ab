"""SQLite: PEP nodes, items and subscriptions (migration 0002; sizes, subscriber index: 0009).
Items keep a per-node ``seq`` so "newest" is their publication order, and replacing an item by id
makes it the newest. Each item's payload size is stored beside it, so an account's usage is one
sum."""

from __future__ import annotations

import json
from collections.abc import Sequence

import aiosqlite

from interlink.storage.pep import PepItem, PepNode, PepNodeConfig
from interlink.storage.rows.pep import config_from_row, item_from_row
from interlink.storage.sqlite.database import Row, SqliteDatabase


class _OverQuota(Exception):
    """Inside :meth:`SqlitePep.publish`: undo the write, the quota would be exceeded."""


class SqlitePep:
    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db

    async def node(self, owner: str, node: str) -> PepNodeConfig | None:
        row = await self._db.fetch_one(
            "SELECT access_model, max_items, persist_items FROM pep_nodes "
            "WHERE owner = ? AND node = ?",
            (owner, node),
        )
        return None if row is None else config_from_row(row)

    async def nodes(self, owner: str) -> list[PepNode]:
        rows = await self._db.fetch_all(
            "SELECT node, access_model, max_items, persist_items FROM pep_nodes "
            "WHERE owner = ? ORDER BY node",
            (owner,),
        )
        return [PepNode(str(r[0]), config_from_row(r[1:])) for r in rows]

    async def node_count(self, owner: str) -> int:
        row = await self._db.fetch_one("SELECT COUNT(*) FROM pep_nodes WHERE owner = ?", (owner,))
        return int(row[0]) if row else 0

    async def configure(self, owner: str, node: str, config: PepNodeConfig, now: float) -> None:
        async with self._db.transaction() as conn:
            await conn.execute(
                "INSERT INTO pep_nodes (owner, node, access_model, max_items, persist_items, "
                "created_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (owner, node) DO UPDATE SET "
                "access_model = excluded.access_model, max_items = excluded.max_items, "
                "persist_items = excluded.persist_items",
                (
                    owner,
                    node,
                    str(config.access_model),
                    config.max_items,
                    int(config.persist_items),
                    now,
                ),
            )
            await _trim(conn, owner, node, config.max_items)

    async def publish(
        self, owner: str, node: str, item: PepItem, *, quota: int | None = None
    ) -> bool:
        try:
            async with self._db.transaction() as conn:
                row = await self._db.fetch_one(
                    "SELECT max_items, COALESCE((SELECT MAX(seq) FROM pep_items "
                    "WHERE owner = ? AND node = ?), 0) FROM pep_nodes WHERE owner = ? AND node = ?",
                    (owner, node, owner, node),
                )
                assert row is not None, "publish to a node that does not exist"
                max_items, seq = int(row[0]), int(row[1])
                await conn.execute(
                    "INSERT OR REPLACE INTO pep_items (owner, node, item_id, payload, "
                    "published_at, seq, size) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (owner, node, item.id, item.payload, item.published_at, seq + 1, item.size),
                )
                await _trim(conn, owner, node, max_items)
                if quota is not None and await self.bytes_used(owner) > quota:
                    raise _OverQuota  # rolls the transaction back
        except _OverQuota:
            return False
        return True

    async def bytes_used(self, owner: str) -> int:
        row = await self._db.fetch_one(
            "SELECT COALESCE(SUM(size), 0) FROM pep_items WHERE owner = ?", (owner,)
        )
        return int(row[0]) if row else 0

    async def retract(self, owner: str, node: str, item_id: str) -> bool:
        async with self._db.transaction() as conn:
            cur = await conn.execute(
                "DELETE FROM pep_items WHERE owner = ? AND node = ? AND item_id = ?",
                (owner, node, item_id),
            )
            return cur.rowcount > 0

    async def items(
        self, owner: str, node: str, *, ids: Sequence[str] = (), newest: int | None = None
    ) -> list[PepItem]:
        if ids:
            sql = (
                "SELECT item_id, payload, published_at FROM pep_items WHERE owner = ? AND "
                "node = ? AND item_id IN (SELECT value FROM json_each(?)) ORDER BY seq"
            )
            params: Row = (owner, node, json.dumps(list(ids)))
        else:
            sql = (
                "SELECT item_id, payload, published_at FROM (SELECT * FROM pep_items "
                "WHERE owner = ? AND node = ? ORDER BY seq DESC LIMIT ?) ORDER BY seq"
            )
            params = (owner, node, -1 if newest is None else newest)
        return [item_from_row(r) for r in await self._db.fetch_all(sql, params)]

    async def delete_node(self, owner: str, node: str) -> bool:
        async with self._db.transaction() as conn:
            cur = await conn.execute(
                "DELETE FROM pep_nodes WHERE owner = ? AND node = ?", (owner, node)
            )
            return cur.rowcount > 0

    async def subscribe(
        self, owner: str, node: str, subscriber: str, *, cap: int | None = None
    ) -> bool:
        async with self._db.transaction() as conn:
            if cap is not None:
                exists = await self._db.fetch_one(
                    "SELECT 1 FROM pep_subscriptions WHERE owner = ? AND node = ? "
                    "AND subscriber = ?",
                    (owner, node, subscriber),
                )
                if exists is None:
                    count = await self.subscription_count(subscriber.split("/", 1)[0])
                    if count >= cap:
                        return False
            await conn.execute(
                "INSERT OR IGNORE INTO pep_subscriptions (owner, node, subscriber) "
                "VALUES (?, ?, ?)",
                (owner, node, subscriber),
            )
            return True

    async def subscription_count(self, account: str) -> int:
        # the bare JID itself, and its full JIDs: every string from "account/" up to "account0"
        # ('0' follows '/'), so the subscriber index answers
        row = await self._db.fetch_one(
            "SELECT COUNT(*) FROM pep_subscriptions WHERE subscriber = ? "
            "OR (subscriber >= ? AND subscriber < ?)",
            (account, account + "/", account + "0"),
        )
        return int(row[0]) if row else 0

    async def unsubscribe(self, owner: str, node: str, subscriber: str) -> bool:
        async with self._db.transaction() as conn:
            cur = await conn.execute(
                "DELETE FROM pep_subscriptions WHERE owner = ? AND node = ? AND subscriber = ?",
                (owner, node, subscriber),
            )
            return cur.rowcount > 0

    async def subscribers(self, owner: str, node: str) -> list[str]:
        rows = await self._db.fetch_all(
            "SELECT subscriber FROM pep_subscriptions WHERE owner = ? AND node = ? "
            "ORDER BY subscriber",
            (owner, node),
        )
        return [str(r[0]) for r in rows]


async def _trim(conn: aiosqlite.Connection, owner: str, node: str, keep: int) -> None:
    """Inside a transaction: keep only the node's newest ``keep`` items."""
    await conn.execute(
        "DELETE FROM pep_items WHERE owner = ? AND node = ? AND seq NOT IN "
        "(SELECT seq FROM pep_items WHERE owner = ? AND node = ? ORDER BY seq DESC LIMIT ?)",
        (owner, node, owner, node, keep),
    )
