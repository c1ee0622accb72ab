"""SQLite repositories (the enlistment, media and policy ones have modules of their own); all SQL
of the engine lives in these modules and in ``migrations/``."""

from __future__ import annotations

import json
import secrets
import sqlite3
from collections.abc import Sequence
from typing import TYPE_CHECKING

from interlink.errors import AccountExistsError, AccountNotFoundError
from interlink.storage.offline import OfflineMessage, OfflineTotals
from interlink.storage.pep import AccessModel, PepItem, PepNodeConfig
from interlink.storage.providers import AuditEntry, Provider, ProviderStatus
from interlink.storage.roster import PendingSubscription, RosterItem, Subscription
from interlink.xmpp.sasl import ScramCredentials, StoredCredentials

if TYPE_CHECKING:
    from interlink.storage.sqlite.engine import SqliteDatabase


class SqliteAccounts:
    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db

    async def create(self, jid: str, credentials: StoredCredentials, now: float) -> None:
        async with self._db.transaction() as conn:
            try:
                await conn.execute(
                    "INSERT INTO accounts (jid, created_at) VALUES (?, ?)", (jid, now)
                )
            except sqlite3.IntegrityError:
                raise AccountExistsError(f"account {jid} already exists") from None
            await self._write_credentials(jid, credentials)

    async def _write_credentials(self, jid: str, credentials: StoredCredentials) -> None:
        await self._db.conn.executemany(
            "INSERT OR REPLACE INTO credentials "
            "(jid, mechanism, salt, stored_key, server_key, iterations) VALUES (?, ?, ?, ?, ?, ?)",
            [
                (jid, mech, c.salt, c.stored_key, c.server_key, c.iterations)
                for mech, c in credentials.scram.items()
            ],
        )

    async def exists(self, jid: str) -> bool:
        async with self._db.conn.execute("SELECT 1 FROM accounts WHERE jid = ?", (jid,)) as cur:
            return await cur.fetchone() is not None

    async def get_credentials(self, jid: str) -> StoredCredentials | None:
        async with self._db.conn.execute(
            "SELECT mechanism, salt, stored_key, server_key, iterations "
            "FROM credentials WHERE jid = ?",
            (jid,),
        ) as cur:
            rows = await cur.fetchall()
        if not rows:
            return None
        return StoredCredentials(
            {
                str(r[0]): ScramCredentials(bytes(r[1]), bytes(r[2]), bytes(r[3]), int(r[4]))
                for r in rows
            }
        )

    async def set_credentials(self, jid: str, credentials: StoredCredentials) -> None:
        async with self._db.transaction() as conn:
            async with conn.execute("SELECT 1 FROM accounts WHERE jid = ?", (jid,)) as cur:
                if await cur.fetchone() is None:
                    raise AccountNotFoundError(f"no account {jid}")
            await self._write_credentials(jid, credentials)

    async def delete(self, jid: str) -> None:
        async with self._db.transaction() as conn:
            cur = await conn.execute("DELETE FROM accounts WHERE jid = ?", (jid,))
            if cur.rowcount == 0:
                raise AccountNotFoundError(f"no account {jid}")
            # Others' roster entries pointing at the account stay: they are the others' data.

    async def list_jids(self) -> list[str]:
        async with self._db.conn.execute("SELECT jid FROM accounts ORDER BY jid") as cur:
            return [str(r[0]) for r in await cur.fetchall()]


class SqliteRoster:
    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db

    @staticmethod
    def _item(row: sqlite3.Row | tuple[object, ...]) -> RosterItem:
        contact, name, sub, ask, groups = row
        return RosterItem(
            contact=str(contact),
            name=None if name is None else str(name),
            subscription=Subscription(str(sub)),
            ask=bool(ask),
            groups=tuple(json.loads(str(groups))),
        )

    async def items(self, owner: str) -> list[RosterItem]:
        async with self._db.conn.execute(
            "SELECT contact, name, subscription, ask, groups FROM roster "
            "WHERE owner = ? ORDER BY contact",
            (owner,),
        ) as cur:
            return [self._item(tuple(r)) for r in await cur.fetchall()]

    async def get(self, owner: str, contact: str) -> RosterItem | None:
        async with self._db.conn.execute(
            "SELECT contact, name, subscription, ask, groups FROM roster "
            "WHERE owner = ? AND contact = ?",
            (owner, contact),
        ) as cur:
            row = await cur.fetchone()
        return None if row is None else self._item(tuple(row))

    async def count(self, owner: str) -> int:
        async with self._db.conn.execute(
            "SELECT COUNT(*) FROM roster WHERE owner = ?", (owner,)
        ) as cur:
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    async def put(self, owner: str, item: RosterItem) -> None:
        async with self._db.transaction() as conn:
            await conn.execute(
                "INSERT OR REPLACE INTO roster (owner, contact, name, subscription, ask, groups) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (
                    owner,
                    item.contact,
                    item.name,
                    str(item.subscription),
                    int(item.ask),
                    json.dumps(list(item.groups)),
                ),
            )

    async def remove(self, owner: str, contact: str) -> None:
        async with self._db.transaction() as conn:
            await conn.execute(
                "DELETE FROM roster WHERE owner = ? AND contact = ?", (owner, contact)
            )

    async def add_pending(self, owner: str, requester: str, stanza: str, now: float) -> None:
        async with self._db.transaction() as conn:
            await conn.execute(
                "INSERT OR REPLACE INTO pending_subscriptions"
                " (owner, requester, stanza, created_at)"
                " VALUES (?, ?, ?, ?)",
                (owner, requester, stanza, now),
            )

    async def remove_pending(self, owner: str, requester: str) -> bool:
        async with self._db.transaction() as conn:
            cur = await conn.execute(
                "DELETE FROM pending_subscriptions WHERE owner = ? AND requester = ?",
                (owner, requester),
            )
            return cur.rowcount > 0

    async def pending(self, owner: str) -> list[PendingSubscription]:
        async with self._db.conn.execute(
            "SELECT requester, stanza FROM pending_subscriptions WHERE owner = ? "
            "ORDER BY created_at",
            (owner,),
        ) as cur:
            return [PendingSubscription(str(r[0]), str(r[1])) for r in await cur.fetchall()]


class SqliteOffline:
    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db

    async def store(self, owner: str, stanza: str, now: float, cap: int) -> bool:
        async with self._db.transaction() as conn:
            # One statement: the cap check and the insert cannot be split by another writer.
            cur = await conn.execute(
                "INSERT INTO offline_messages (owner, stanza, stored_at) "
                "SELECT ?, ?, ? WHERE (SELECT COUNT(*) FROM offline_messages WHERE owner = ?) < ?",
                (owner, stanza, now, owner, cap),
            )
            return cur.rowcount == 1

    async def fetch(self, owner: str, limit: int) -> Sequence[OfflineMessage]:
        async with self._db.conn.execute(
            "SELECT id, stanza, stored_at FROM offline_messages WHERE owner = ? "
            "ORDER BY id LIMIT ?",
            (owner, limit),
        ) as cur:
            return [OfflineMessage(int(r[0]), str(r[1]), float(r[2])) for r in await cur.fetchall()]

    async def delete(self, owner: str, up_to_id: int) -> None:
        async with self._db.transaction() as conn:
            await conn.execute(
                "DELETE FROM offline_messages WHERE owner = ? AND id <= ?", (owner, up_to_id)
            )

    async def count(self, owner: str) -> int:
        async with self._db.conn.execute(
            "SELECT COUNT(*) FROM offline_messages WHERE owner = ?", (owner,)
        ) as cur:
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    async def totals(self) -> OfflineTotals:
        async with self._db.conn.execute(
            "SELECT COALESCE(SUM(n), 0), COUNT(*), COALESCE(MAX(n), 0) "
            "FROM (SELECT COUNT(*) AS n FROM offline_messages GROUP BY owner)"
        ) as cur:
            row = await cur.fetchone()
        return (
            OfflineTotals(int(row[0]), int(row[1]), int(row[2])) if row else OfflineTotals(0, 0, 0)
        )


class SqliteServerState:
    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db

    async def get_or_create_secret(self, name: str, size: int) -> bytes:
        async with self._db.transaction() as conn:
            async with conn.execute(
                "SELECT value FROM server_state WHERE name = ?", (name,)
            ) as cur:
                row = await cur.fetchone()
            if row is not None:
                return bytes(row[0])
            value = secrets.token_bytes(size)
            await conn.execute(
                "INSERT INTO server_state (name, value) VALUES (?, ?)", (name, value)
            )
            return value


class SqlitePep:
    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db

    @staticmethod
    def _config(row: tuple[object, ...]) -> PepNodeConfig:
        access, max_items, persist = row
        return PepNodeConfig(AccessModel(str(access)), int(str(max_items)), bool(persist))

    async def node(self, owner: str, node: str) -> PepNodeConfig | None:
        async with self._db.conn.execute(
            "SELECT access_model, max_items, persist_items FROM pep_nodes "
            "WHERE owner = ? AND node = ?",
            (owner, node),
        ) as cur:
            row = await cur.fetchone()
        return None if row is None else self._config(tuple(row))

    async def nodes(self, owner: str) -> list[tuple[str, PepNodeConfig]]:
        async with self._db.conn.execute(
            "SELECT node, access_model, max_items, persist_items FROM pep_nodes "
            "WHERE owner = ? ORDER BY node",
            (owner,),
        ) as cur:
            return [(str(r[0]), self._config(tuple(r[1:]))) for r in await cur.fetchall()]

    async def node_count(self, owner: str) -> int:
        async with self._db.conn.execute(
            "SELECT COUNT(*) FROM pep_nodes WHERE owner = ?", (owner,)
        ) as cur:
            row = await cur.fetchone()
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
            await self._trim(owner, node, config.max_items)

    async def _trim(self, owner: str, node: str, keep: int) -> None:
        await self._db.conn.execute(
            "DELETE FROM pep_items WHERE owner = ? AND node = ? AND seq NOT IN "
            "(SELECT seq FROM pep_items WHERE owner = ? AND node = ? ORDER BY seq DESC LIMIT ?)",
            (owner, node, owner, node, keep),
        )

    async def publish(self, owner: str, node: str, item: PepItem) -> None:
        async with self._db.transaction() as conn:
            async with conn.execute(
                "SELECT max_items, COALESCE((SELECT MAX(seq) FROM pep_items "
                "WHERE owner = ? AND node = ?), 0) FROM pep_nodes WHERE owner = ? AND node = ?",
                (owner, node, owner, node),
            ) as cur:
                row = await cur.fetchone()
            assert row is not None, "publish to a node that does not exist"
            max_items, seq = int(row[0]), int(row[1])
            await conn.execute(
                "INSERT OR REPLACE INTO pep_items (owner, node, item_id, payload, published_at, "
                "seq) VALUES (?, ?, ?, ?, ?, ?)",
                (owner, node, item.id, item.payload, item.published_at, seq + 1),
            )
            await self._trim(owner, node, max_items)

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
            params: tuple[object, ...] = (owner, node, json.dumps(list(ids)))
        else:
            sql = (
                "SELECT item_id, payload, published_at FROM (SELECT * FROM pep_items "
                "WHERE owner = ? AND node = ? ORDER BY seq DESC LIMIT ?) ORDER BY seq"
            )
            params = (owner, node, -1 if newest is None else newest)
        async with self._db.conn.execute(sql, params) as cur:
            return [PepItem(str(r[0]), str(r[1]), float(r[2])) for r in await cur.fetchall()]

    async def delete_node(self, owner: str, node: str) -> bool:
        async with self._db.transaction() as conn:
            cur = await conn.execute(
                "DELETE FROM pep_nodes WHERE owner = ? AND node = ?", (owner, node)
            )
            return cur.rowcount > 0

    async def subscribe(self, owner: str, node: str, subscriber: str) -> None:
        async with self._db.transaction() as conn:
            await conn.execute(
                "INSERT OR IGNORE INTO pep_subscriptions (owner, node, subscriber) "
                "VALUES (?, ?, ?)",
                (owner, node, subscriber),
            )

    async def unsubscribe(self, owner: str, node: str, subscriber: str) -> bool:
        async with self._db.transaction() as conn:
            cur = await conn.execute(
                "DELETE FROM pep_subscriptions WHERE owner = ? AND node = ? AND subscriber = ?",
                (owner, node, subscriber),
            )
            return cur.rowcount > 0

    async def subscribers(self, owner: str, node: str) -> list[str]:
        async with self._db.conn.execute(
            "SELECT subscriber FROM pep_subscriptions WHERE owner = ? AND node = ? "
            "ORDER BY subscriber",
            (owner, node),
        ) as cur:
            return [str(r[0]) for r in await cur.fetchall()]


class SqliteProviders:
    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db

    async def get(self, provider_id: str) -> Provider | None:
        async with self._db.conn.execute(
            "SELECT id, display_name, status, jwks, jwks_url, callback_url, media_hosts, "
            "features, rate_tier, created_at, updated_at FROM providers WHERE id = ?",
            (provider_id,),
        ) as cur:
            row = await cur.fetchone()
        return None if row is None else provider_from_row(tuple(row))

    async def all(self) -> list[Provider]:
        async with self._db.conn.execute(
            "SELECT id, display_name, status, jwks, jwks_url, callback_url, media_hosts, "
            "features, rate_tier, created_at, updated_at FROM providers ORDER BY id"
        ) as cur:
            return [provider_from_row(tuple(r)) for r in await cur.fetchall()]

    async def put(self, provider: Provider, audit: AuditEntry) -> None:
        row = provider_to_row(provider)
        async with self._db.transaction() as conn:
            await conn.execute(
                "INSERT OR REPLACE INTO providers (id, display_name, status, jwks, jwks_url, "
                "callback_url, media_hosts, features, rate_tier, created_at, updated_at) VALUES "
                "(:id, :display_name, :status, :jwks, :jwks_url, :callback_url, :media_hosts, "
                ":features, :rate_tier, :created_at, :updated_at)",
                row,
            )
            await conn.execute(
                "INSERT INTO provider_audit (provider_id, at, actor, action, details) "
                "VALUES (?, ?, ?, ?, ?)",
                (
                    audit.provider_id,
                    audit.at,
                    audit.actor,
                    audit.action,
                    json.dumps(audit.details, default=str),
                ),
            )

    async def audit(self, provider_id: str) -> list[AuditEntry]:
        async with self._db.conn.execute(
            "SELECT provider_id, at, actor, action, details FROM provider_audit "
            "WHERE provider_id = ? ORDER BY seq",
            (provider_id,),
        ) as cur:
            return [
                AuditEntry(str(r[0]), float(r[1]), str(r[2]), str(r[3]), json.loads(str(r[4])))
                for r in await cur.fetchall()
            ]


def provider_to_row(p: Provider) -> dict[str, object]:
    return {
        "id": p.id,
        "display_name": p.display_name,
        "status": str(p.status),
        "jwks": None if p.jwks is None else json.dumps(p.jwks),
        "jwks_url": p.jwks_url,
        "callback_url": p.callback_url,
        "media_hosts": json.dumps(list(p.media_hosts)),
        "features": json.dumps(list(p.features)),
        "rate_tier": p.rate_tier,
        "created_at": p.created_at,
        "updated_at": p.updated_at,
    }


def provider_from_row(row: Sequence[object]) -> Provider:
    (pid, name, status, jwks, jwks_url, callback, hosts, features, tier, created, updated) = row
    return Provider(
        id=str(pid),
        display_name=str(name),
        status=ProviderStatus(str(status)),
        jwks=None if jwks is None else json.loads(str(jwks)),
        jwks_url=None if jwks_url is None else str(jwks_url),
        callback_url=str(callback),
        media_hosts=tuple(json.loads(str(hosts))),
        features=tuple(json.loads(str(features))),
        rate_tier=str(tier),
        created_at=float(str(created)),
        updated_at=float(str(updated)),
    )
