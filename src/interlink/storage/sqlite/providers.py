"""SQLite: third-party providers and their audit log (migrations 0003, 0008, 0020). A provider's
inline JWKS, media hosts, features, services, server domains and pins, and an audit entry's
details, are JSON text columns.
Every change to a provider is also written to the operator change feed, in its transaction."""

from __future__ import annotations

from interlink.storage.providers import (
    AuditEntry,
    Provider,
)
from interlink.storage.rows.providers import (
    audit_from_row,
    audit_params,
    provider_from_row,
    provider_params,
)
from interlink.storage.sqlite.changes import RECORD
from interlink.storage.sqlite.database import SqliteDatabase

_PROVIDERS = (
    "SELECT id, display_name, status, jwks, jwks_url, callback_url, media_hosts, "
    "features, rate_tier, created_at, updated_at, services, mode, server_domains, "
    "s2s_fingerprints, s2s_ca, s2s_address FROM providers "
)


class SqliteProviders:
    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db

    async def get(self, provider_id: str) -> Provider | None:
        row = await self._db.fetch_one(_PROVIDERS + "WHERE id = ?", (provider_id,))
        return None if row is None else provider_from_row(row)

    async def all(self) -> list[Provider]:
        return [provider_from_row(r) for r in await self._db.fetch_all(_PROVIDERS + "ORDER BY id")]

    async def put(self, provider: Provider, audit: AuditEntry) -> None:
        async with self._db.transaction() as conn:
            await conn.execute(
                "INSERT OR REPLACE INTO providers (id, display_name, status, jwks, jwks_url, "
                "callback_url, media_hosts, features, rate_tier, created_at, updated_at, "
                "services, mode, server_domains, s2s_fingerprints, s2s_ca, s2s_address) "
                "VALUES (:id, :display_name, :status, :jwks, :jwks_url, :callback_url, "
                ":media_hosts, :features, :rate_tier, :created_at, :updated_at, :services, :mode, "
                ":server_domains, :s2s_fingerprints, :s2s_ca, :s2s_address)",
                provider_params(provider),
            )
            await conn.execute(RECORD, ("provider", provider.id))
            await conn.execute(
                "INSERT INTO provider_audit (provider_id, at, actor, action, details) "
                "VALUES (?, ?, ?, ?, ?)",
                audit_params(audit),
            )

    async def audit(self, provider_id: str) -> list[AuditEntry]:
        rows = await self._db.fetch_all(
            "SELECT provider_id, at, actor, action, details FROM provider_audit "
            "WHERE provider_id = ? ORDER BY seq",
            (provider_id,),
        )
        return [audit_from_row(r) for r in rows]
