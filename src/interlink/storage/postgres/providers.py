"""PostgreSQL: third-party providers and their audit log (migrations 0003, 0008, 0020). JSON
columns as on SQLite. Every change to a provider is also written to the operator change feed, as
the last statement of its transaction."""

from __future__ import annotations

import json

from interlink.storage.postgres.changes import record
from interlink.storage.postgres.database import PostgresDatabase, Row
from interlink.storage.providers import (
    AuditAction,
    AuditEntry,
    Provider,
    ProviderMode,
    ProviderStatus,
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


def _provider_params(p: Provider) -> dict[str, object]:
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
        "services": json.dumps(list(p.services)),
        "mode": str(p.mode),
        "server_domains": json.dumps(list(p.server_domains)),
        "s2s_fingerprints": json.dumps(list(p.s2s_fingerprints)),
        "s2s_ca": p.s2s_ca,
        "s2s_address": p.s2s_address,
    }


def _provider_from_row(row: Row) -> Provider:
    (pid, name, status, jwks, jwks_url, callback, hosts, features, tier, created, updated) = row[
        :11
    ]
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
        created_at=float(created),
        updated_at=float(updated),
        services=tuple(json.loads(str(row[11]))),
        mode=ProviderMode(str(row[12])),
        server_domains=tuple(json.loads(str(row[13]))),
        s2s_fingerprints=tuple(json.loads(str(row[14]))),
        s2s_ca=None if row[15] is None else str(row[15]),
        s2s_address=None if row[16] is None else str(row[16]),
    )


def _audit_params(audit: AuditEntry) -> Row:
    details = json.dumps(audit.details, default=str)
    return (audit.provider_id, audit.at, audit.actor, str(audit.action), details)


def _audit_from_row(row: Row) -> AuditEntry:
    return AuditEntry(
        str(row[0]), float(row[1]), str(row[2]), AuditAction(str(row[3])), json.loads(str(row[4]))
    )


class PostgresProviders:
    def __init__(self, db: PostgresDatabase) -> None:
        self._db = db

    async def get(self, provider_id: str) -> Provider | None:
        row = await self._db.fetch_one(_PROVIDERS + "WHERE id = %s", (provider_id,))
        return None if row is None else _provider_from_row(row)

    async def all(self) -> list[Provider]:
        return [_provider_from_row(r) for r in await self._db.fetch_all(_PROVIDERS + "ORDER BY id")]

    async def put(self, provider: Provider, audit: AuditEntry) -> None:
        async with self._db.transaction() as conn:
            await conn.execute(_PUT, _provider_params(provider))
            await conn.execute(
                "INSERT INTO provider_audit (provider_id, at, actor, action, details) "
                "VALUES (%s, %s, %s, %s, %s)",
                _audit_params(audit),
            )
            await record(conn, "provider", provider.id)

    async def audit(self, provider_id: str) -> list[AuditEntry]:
        rows = await self._db.fetch_all(
            "SELECT provider_id, at, actor, action, details FROM provider_audit "
            "WHERE provider_id = %s ORDER BY seq",
            (provider_id,),
        )
        return [_audit_from_row(r) for r in rows]
