"""PostgreSQL: PEP nodes, items and subscriptions (migration 0002; sizes, subscriber index:
0009). Items keep a per-node ``seq`` so "newest" is their publication order, and replacing an
item by id makes it the newest. A publish holds its owner's lock (``pep:<owner>``): the next
``seq`` and the quota (a sum over all the owner's nodes) are read and written by one writer at
a time, as on SQLite; a capped subscription holds the subscriber's."""

from __future__ import annotations

from collections.abc import Sequence

from interlink.storage.pep import PepItem, PepNode, PepNodeConfig
from interlink.storage.postgres.database import (
    Connection,
    PostgresDatabase,
    Row,
    fetch_one,
    lock,
)
from interlink.storage.rows.pep import config_from_row, item_from_row


class _OverQuota(Exception):
    """Inside :meth:`PostgresPep.publish`: undo the write, the quota would be exceeded."""


_BYTES_USED = "SELECT COALESCE(SUM(size), 0) FROM pep_items WHERE owner = %s"
_SUBSCRIPTION_COUNT = (
    # the bare JID itself, and its full JIDs: every string from "account/" up to "account0"
    # ('0' follows '/'; the database's collation is C), so the subscriber index answers
    "SELECT COUNT(*) FROM pep_subscriptions WHERE subscriber = %s "
    "OR (subscriber >= %s AND subscriber < %s)"
)


class PostgresPep:
    def __init__(self, db: PostgresDatabase) -> None:
        self._db = db

    async def node(self, owner: str, node: str) -> PepNodeConfig | None:
        row = await self._db.fetch_one(
            "SELECT access_model, max_items, persist_items FROM pep_nodes "
            "WHERE owner = %s AND node = %s",
            (owner, node),
        )
        return None if row is None else config_from_row(row)

    async def nodes(self, owner: str) -> list[PepNode]:
        rows = await self._db.fetch_all(
            "SELECT node, access_model, max_items, persist_items FROM pep_nodes "
            "WHERE owner = %s ORDER BY node",
            (owner,),
        )
        return [PepNode(str(r[0]), config_from_row(r[1:])) for r in rows]

    async def node_count(self, owner: str) -> int:
        row = await self._db.fetch_one("SELECT COUNT(*) FROM pep_nodes WHERE owner = %s", (owner,))
        return int(row[0]) if row else 0

    async def configure(self, owner: str, node: str, config: PepNodeConfig, now: float) -> None:
        async with self._db.transaction() as conn:
            await lock(conn, "pep:" + owner)
            await conn.execute(
                "INSERT INTO pep_nodes (owner, node, access_model, max_items, persist_items, "
                "created_at) VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (owner, node) DO UPDATE "
                "SET access_model = excluded.access_model, max_items = excluded.max_items, "
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
                await lock(conn, "pep:" + owner)
                row = await fetch_one(
                    conn,
                    "SELECT max_items, COALESCE((SELECT MAX(seq) FROM pep_items "
                    "WHERE owner = %s AND node = %s), 0) FROM pep_nodes "
                    "WHERE owner = %s AND node = %s",
                    (owner, node, owner, node),
                )
                assert row is not None, "publish to a node that does not exist"
                max_items, seq = int(row[0]), int(row[1])
                await conn.execute(
                    "INSERT INTO pep_items (owner, node, item_id, payload, published_at, seq, "
                    "size) VALUES (%s, %s, %s, %s, %s, %s, %s) "
                    "ON CONFLICT (owner, node, item_id) DO UPDATE SET payload = excluded.payload, "
                    "published_at = excluded.published_at, seq = excluded.seq, "
                    "size = excluded.size",
                    (owner, node, item.id, item.payload, item.published_at, seq + 1, item.size),
                )
                await _trim(conn, owner, node, max_items)
                if quota is not None:
                    used = await fetch_one(conn, _BYTES_USED, (owner,))
                    if used is not None and int(used[0]) > quota:
                        raise _OverQuota  # rolls the transaction back
        except _OverQuota:
            return False
        return True

    async def bytes_used(self, owner: str) -> int:
        row = await self._db.fetch_one(_BYTES_USED, (owner,))
        return int(row[0]) if row else 0

    async def retract(self, owner: str, node: str, item_id: str) -> bool:
        async with self._db.transaction() as conn:
            cur = await conn.execute(
                "DELETE FROM pep_items WHERE owner = %s AND node = %s AND item_id = %s",
                (owner, node, item_id),
            )
            return cur.rowcount > 0

    async def items(
        self, owner: str, node: str, *, ids: Sequence[str] = (), newest: int | None = None
    ) -> list[PepItem]:
        if ids:
            sql = (
                "SELECT item_id, payload, published_at FROM pep_items WHERE owner = %s AND "
                "node = %s AND item_id = ANY(%s) ORDER BY seq"
            )
            params: Row = (owner, node, list(ids))
        else:
            # LIMIT NULL is no limit
            sql = (
                "SELECT item_id, payload, published_at FROM (SELECT * FROM pep_items "
                "WHERE owner = %s AND node = %s ORDER BY seq DESC LIMIT %s) q ORDER BY seq"
            )
            params = (owner, node, newest)
        return [item_from_row(r) for r in await self._db.fetch_all(sql, params)]

    async def delete_node(self, owner: str, node: str) -> bool:
        async with self._db.transaction() as conn:
            cur = await conn.execute(
                "DELETE FROM pep_nodes WHERE owner = %s AND node = %s", (owner, node)
            )
            return cur.rowcount > 0

    async def subscribe(
        self, owner: str, node: str, subscriber: str, *, cap: int | None = None
    ) -> bool:
        account = subscriber.split("/", 1)[0]
        async with self._db.transaction() as conn:
            if cap is not None:
                await lock(conn, "pep-subscriber:" + account)
                exists = await fetch_one(
                    conn,
                    "SELECT 1 FROM pep_subscriptions WHERE owner = %s AND node = %s "
                    "AND subscriber = %s",
                    (owner, node, subscriber),
                )
                if exists is None:
                    row = await fetch_one(
                        conn, _SUBSCRIPTION_COUNT, (account, account + "/", account + "0")
                    )
                    if row is not None and int(row[0]) >= cap:
                        return False
            await conn.execute(
                "INSERT INTO pep_subscriptions (owner, node, subscriber) VALUES (%s, %s, %s) "
                "ON CONFLICT DO NOTHING",
                (owner, node, subscriber),
            )
            return True

    async def subscription_count(self, account: str) -> int:
        row = await self._db.fetch_one(_SUBSCRIPTION_COUNT, (account, account + "/", account + "0"))
        return int(row[0]) if row else 0

    async def unsubscribe(self, owner: str, node: str, subscriber: str) -> bool:
        async with self._db.transaction() as conn:
            cur = await conn.execute(
                "DELETE FROM pep_subscriptions WHERE owner = %s AND node = %s AND subscriber = %s",
                (owner, node, subscriber),
            )
            return cur.rowcount > 0

    async def subscribers(self, owner: str, node: str) -> list[str]:
        rows = await self._db.fetch_all(
            "SELECT subscriber FROM pep_subscriptions WHERE owner = %s AND node = %s "
            "ORDER BY subscriber",
            (owner, node),
        )
        return [str(r[0]) for r in rows]


async def _trim(conn: Connection, owner: str, node: str, keep: int) -> None:
    """Inside a transaction: keep only the node's newest ``keep`` items."""
    await conn.execute(
        "DELETE FROM pep_items WHERE owner = %s AND node = %s AND seq NOT IN "
        "(SELECT seq FROM pep_items WHERE owner = %s AND node = %s ORDER BY seq DESC LIMIT %s)",
        (owner, node, owner, node, keep),
    )
