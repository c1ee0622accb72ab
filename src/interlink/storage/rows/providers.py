"""Providers and their audit log entries, to and from their rows (JSON columns for lists). Shared
by both engines (:mod:`interlink.storage.rows`)."""

from __future__ import annotations

import json

from interlink.storage.providers import (
    AuditAction,
    AuditEntry,
    Provider,
    ProviderMode,
    ProviderStatus,
)
from interlink.storage.rows import Row


def provider_params(p: Provider) -> dict[str, object]:
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


def provider_from_row(row: Row) -> Provider:
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


def audit_params(audit: AuditEntry) -> Row:
    details = json.dumps(audit.details, default=str)
    return (audit.provider_id, audit.at, audit.actor, str(audit.action), details)


def audit_from_row(row: Row) -> AuditEntry:
    return AuditEntry(
        str(row[0]), float(row[1]), str(row[2]), AuditAction(str(row[3])), json.loads(str(row[4]))
    )
