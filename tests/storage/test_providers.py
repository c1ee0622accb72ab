"""Providers contract: records round trip with their JSON fields, each change with its audit entry."""

from __future__ import annotations

from dataclasses import replace

from interlink.storage import Storage
from interlink.storage.providers import (
    AuditAction,
    AuditEntry,
    Provider,
    ProviderMode,
    ProviderStatus,
)
from tests.storage.kit import T0

JWKS: dict[str, object] = {"keys": [{"kty": "OKP", "crv": "Ed25519", "kid": "k1", "x": "AAAA"}]}


def provider(pid: str = "examplechat", **changes: object) -> Provider:
    p = Provider(
        id=pid,
        display_name="Example Chat",
        callback_url="https://examplechat.test/hub",
        jwks=JWKS,
        media_hosts=("media.examplechat.test", "cdn.examplechat.test:8443"),
        features=("discovery", "messaging"),
        rate_tier="large",
        created_at=T0,
        updated_at=T0,
    )
    return replace(p, **changes)  # type: ignore[arg-type]


async def test_a_provider_round_trips(storage: Storage) -> None:
    assert await storage.providers.get("examplechat") is None
    p = provider()
    await storage.providers.put(p, AuditEntry(p.id, T0, "admin", AuditAction.ADD, p.public_view()))
    got = await storage.providers.get("examplechat")
    assert got == p
    assert got is not None
    assert got.status is ProviderStatus.PENDING
    (entry,) = await storage.providers.audit(p.id)
    assert entry.action is AuditAction.ADD
    by_url = provider("otherchat", jwks=None, jwks_url="https://otherchat.test/jwks")
    await storage.providers.put(by_url, AuditEntry(by_url.id, T0, "admin", AuditAction.ADD, {}))
    assert await storage.providers.get("otherchat") == by_url


async def test_providers_are_listed_in_id_order(storage: Storage) -> None:
    for pid in ("zchat", "achat", "mchat"):
        await storage.providers.put(
            provider(pid), AuditEntry(pid, T0, "admin", AuditAction.ADD, {})
        )
    assert [p.id for p in await storage.providers.all()] == ["achat", "mchat", "zchat"]


async def test_each_change_replaces_the_record_and_appends_to_the_audit(storage: Storage) -> None:
    p = provider()
    await storage.providers.put(p, AuditEntry(p.id, T0, "admin", AuditAction.ADD, {"id": p.id}))
    approved = replace(p, status=ProviderStatus.APPROVED, updated_at=T0 + 1)
    details: dict[str, object] = {"from": "pending", "to": "approved"}
    await storage.providers.put(
        approved, AuditEntry(p.id, T0 + 1, "ops", AuditAction.STATUS, details)
    )
    other = provider("otherchat")
    await storage.providers.put(other, AuditEntry(other.id, T0, "admin", AuditAction.ADD, {}))

    assert await storage.providers.get(p.id) == approved
    assert await storage.providers.audit(p.id) == [
        AuditEntry(p.id, T0, "admin", AuditAction.ADD, {"id": p.id}),
        AuditEntry(p.id, T0 + 1, "ops", AuditAction.STATUS, details),
    ]
    assert await storage.providers.audit("nochat") == []


async def test_a_federated_providers_s2s_fields_round_trip_and_are_replaced(
    storage: Storage,
) -> None:
    """Migration 0020: mode, server domains, pins, CA and static address, on every engine."""
    plain = provider()
    await storage.providers.put(plain, AuditEntry(plain.id, T0, "admin", AuditAction.ADD, {}))
    got = await storage.providers.get(plain.id)
    assert got is not None
    assert (got.mode, got.server_domains, got.s2s_fingerprints, got.s2s_ca, got.s2s_address) == (
        ProviderMode.PLUG_AND_PLAY,
        (),
        (),
        None,
        None,
    )
    federated = replace(
        plain,
        mode=ProviderMode.BOTH,
        server_domains=("chat.example", "muc.chat.example"),
        s2s_fingerprints=("ab" * 32,),
        s2s_ca="-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        s2s_address="xmpp.chat.example:5269",
        updated_at=T0 + 1,
    )
    await storage.providers.put(
        federated, AuditEntry(plain.id, T0 + 1, "ops", AuditAction.UPDATE, {})
    )
    assert await storage.providers.get(plain.id) == federated
    back = replace(federated, mode=ProviderMode.FEDERATED, s2s_ca=None, s2s_address=None)
    await storage.providers.put(back, AuditEntry(plain.id, T0 + 2, "ops", AuditAction.UPDATE, {}))
    assert await storage.providers.all() == [back]
