"""PostgreSQL: third-party providers and their audit log (migrations 0003, 0008, 0020). JSON
columns as on SQLite. Every change to a provider is also written to the operator change feed, as
the last statement of its transaction."""

from __future__ import annotations

from interlink.storage.postgres.changes import record
from interlink.storage.postgres.database import PostgresDatabase
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

_PROVIDERS = (
    "SELECT id, display_name, status, jwks, jwks_url, callback_url, media_hosts, "
    "features, rate_tier, created_at, updated_at, services, mode, server_domains, "
    "s2s_fingerprints, s2s_ca, s2s_address FROM providers "
)
_PUT = (
    "INSERT INTO providers (id, display_name, status, jwks, jwks_url, callback_url, media_hosts, "
    "features, rate_tier, created_at, updated_at, services, mode, server_domains, "
    "s2s_fingerprints, s2s_ca, s2s_address) VALUES (%(id)s, %(display_name)s, %(status)s, "
    "%(jwks)s, %(jwks_url)s, %(callback_url)s, %(media_hosts)s, %(features)s, %(rate_tier)s, "
    "%(created_at)s, %(updated_at)s, %(services)s, %(mode)s, %(server_domains)s, "
    "%(s2s_fingerprints)s, %(s2s_ca)s, %(s2s_address)s) ON CONFLICT (id) DO UPDATE SET "
    "display_name = excluded.display_name, status = excluded.status, jwks = excluded.jwks, "
    "jwks_url = excluded.jwks_url, callback_url = excluded.callback_url, "
    "media_hosts = excluded.media_hosts, features = excluded.features, "
    "rate_tier = excluded.rate_tier, created_at = excluded.created_at, "
    "updated_at = excluded.updated_at, services = excluded.services, mode = excluded.mode, "
    "server_domains = excluded.server_domains, s2s_fingerprints = excluded.s2s_fingerprints, "
    "s2s_ca = excluded.s2s_ca, s2s_address = excluded.s2s_address"
)


class PostgresProviders:
    def __init__(self, db: PostgresDatabase) -> None:
        self._db = db

    async def get(self, provider_id: str) -> Provider | None:
        row = await self._db.fetch_one(_PROVIDERS + "WHERE id = %s", (provider_id,))
        return None if row is None else provider_from_row(row)

    async def all(self) -> list[Provider]:
        return [provider_from_row(r) for r in await self._db.fetch_all(_PROVIDERS + "ORDER BY id")]

    async def put(self, provider: Provider, audit: AuditEntry) -> None:
        async with self._db.transaction() as conn:
            await conn.execute(_PUT, provider_params(provider))
            await conn.execute(
                "INSERT INTO provider_audit (provider_id, at, actor, action, details) "
                "VALUES (%s, %s, %s, %s, %s)",
                audit_params(audit),
            )
            await record(conn, "provider", provider.id)

    async def audit(self, provider_id: str) -> list[AuditEntry]:
        rows = await self._db.fetch_all(
            "SELECT provider_id, at, actor, action, details FROM provider_audit "
            "WHERE provider_id = %s ORDER BY seq",
            (provider_id,),
        )
        return [audit_from_row(r) for r in rows]
