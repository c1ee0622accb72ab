"""Provider records: validation, registry operations with their audit log, suspension hook."""

from __future__ import annotations

import pytest

from interlink.interop.providers import (
    ProviderError,
    ProviderExists,
    ProviderNotFound,
    ProviderRegistry,
    validate,
)
from interlink.storage.providers import Provider, ProviderMode, ProviderStatus
from interlink.storage.sqlite import open_sqlite

JWKS = {
    "keys": [
        {
            "kty": "OKP",
            "crv": "Ed25519",
            "kid": "k1",
            "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo",
        }
    ]
}


def provider(**changes: object) -> Provider:
    base: dict[str, object] = {
        "id": "ExampleChat",
        "display_name": " Example Chat ",
        "callback_url": "https://api.example.chat/",
        "jwks": JWKS,
        "media_hosts": ("Media.Example.Chat.",),
    }
    base.update(changes)
    return Provider(**base)  # type: ignore[arg-type]


def test_validate_normalises() -> None:
    p = validate(provider())
    assert p.id == "examplechat"
    assert p.display_name == "Example Chat"
    assert p.callback_url == "https://api.example.chat"
    assert p.media_hosts == ("media.example.chat",)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"id": "not a label"}, "DNS label"),
        ({"id": "x" * 64}, "DNS label"),
        ({"display_name": ""}, "display_name"),
        ({"jwks": None}, "exactly one of jwks"),
        ({"jwks_url": "https://example.chat/jwks"}, "exactly one of jwks"),
        ({"jwks": {"keys": []}}, "at least one key"),
        ({"jwks": {"keys": [{"kty": "oct", "kid": "s", "k": "c2VjcmV0"}]}}, "public keys only"),
        ({"jwks": {"keys": [{"kty": "OKP"}]}}, "'kty' and 'kid'"),
        ({"callback_url": "http://api.example.chat"}, "https"),
        ({"callback_url": "ftp://api.example.chat"}, "absolute https URL"),
        ({"callback_url": "https://user:pw@api.example.chat"}, "credentials"),
        ({"media_hosts": ("not a host!",)}, "host name"),
        ({"media_hosts": ("https://media.example.chat",)}, "is a URL: give the host name"),
        ({"media_hosts": ("media.example.chat:http",)}, "with :port when it is not 443"),
        ({"features": ("teleport",)}, "unknown features"),
        ({"rate_tier": "infinite"}, "rate_tier"),
    ],
)
def test_validation_errors_name_the_field(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ProviderError, match=message):
        validate(provider(**changes))


def test_loopback_http_only_when_allowed() -> None:
    local = provider(callback_url="http://127.0.0.1:8443")
    with pytest.raises(ProviderError, match="https"):
        validate(local)
    assert validate(local, allow_insecure_loopback=True).callback_url == "http://127.0.0.1:8443"
    with pytest.raises(ProviderError, match="https"):
        validate(provider(callback_url="http://10.0.0.1"), allow_insecure_loopback=True)


async def test_registry_lifecycle_and_audit() -> None:
    storage = await open_sqlite(":memory:")
    now = [1000.0]
    suspended: list[str] = []

    def changed(p: Provider) -> None:
        if p.status is ProviderStatus.SUSPENDED:
            suspended.append(p.id)

    registry = ProviderRegistry(
        storage.providers, lambda: now[0], services=("hub.test",), on_change=(changed,)
    )
    try:
        added = await registry.add(provider(), "alice-op")
        assert added.status is ProviderStatus.PENDING
        with pytest.raises(ProviderExists):
            await registry.add(provider(), "alice-op")
        now[0] = 2000.0
        approved = await registry.set_status("examplechat", ProviderStatus.APPROVED, "bob-op")
        assert approved.status is ProviderStatus.APPROVED
        assert approved.updated_at == 2000.0
        updated = await registry.update("ExampleChat", {"display_name": "ExChat"}, "bob-op")
        assert updated.display_name == "ExChat"
        with pytest.raises(ProviderError, match="cannot change"):
            await registry.update("examplechat", {"status": "approved"}, "x")
        await registry.set_status("examplechat", ProviderStatus.SUSPENDED, "carol-op")
        assert suspended == ["examplechat"]
        assert [p.id for p in await registry.all()] == ["examplechat"]
        trail = await registry.audit("examplechat")
        assert [(e.actor, e.action) for e in trail] == [
            ("alice-op", "add"),
            ("bob-op", "status"),
            ("bob-op", "update"),
            ("carol-op", "status"),
        ]
        assert trail[3].details == {"from": "approved", "to": "suspended"}
        with pytest.raises(ProviderNotFound):
            await registry.get("nobody")
    finally:
        await storage.close()


async def test_get_is_cached_briefly_and_operator_actions_read_fresh() -> None:
    storage = await open_sqlite(":memory:")
    now = [1000.0]
    try:
        hub = ProviderRegistry(
            storage.providers, lambda: now[0], services=("hub.test",), cache_seconds=5.0
        )
        # another process's view
        cli = ProviderRegistry(storage.providers, lambda: now[0], services=("hub.test",))
        await hub.add(provider(), "test")
        assert (await hub.get("examplechat")).status is ProviderStatus.PENDING
        await cli.set_status("examplechat", ProviderStatus.APPROVED, "cli")
        now[0] += 4.999
        assert (await hub.get("examplechat")).status is ProviderStatus.PENDING  # cached
        now[0] += 0.001
        assert (await hub.get("examplechat")).status is ProviderStatus.APPROVED  # 5 s: reread
        await cli.set_status("examplechat", ProviderStatus.SUSPENDED, "cli")
        # The hub's own action reads the record fresh: suspended -> approved is a real change.
        again = await hub.set_status("examplechat", ProviderStatus.APPROVED, "hub")
        assert again.status is ProviderStatus.APPROVED
        assert [e.details for e in await hub.audit("examplechat")][-1] == {
            "from": "suspended",
            "to": "approved",
        }
        assert (await hub.get("examplechat")).status is ProviderStatus.APPROVED  # written through
    finally:
        await storage.close()


# -- federation (issue 15) -------------------------------------------------------------------------

FP = "AB:" * 31 + "CD"


def test_federation_fields_are_normalised() -> None:
    p = validate(
        provider(
            mode=ProviderMode.BOTH,
            server_domains=("Chat.Example.", "chat.example"),
            s2s_fingerprints=(FP,),
            s2s_address=" 127.0.0.1:15269 ",
        ),
        services=("hub.test",),
    )
    assert p.mode is ProviderMode.BOTH
    assert p.server_domains == ("chat.example",)
    assert p.s2s_fingerprints == ("ab" * 31 + "cd",)
    assert p.s2s_address == "127.0.0.1:15269"
    assert validate(provider()).mode is ProviderMode.PLUG_AND_PLAY


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"mode": "open"}, "mode must be one of"),
        ({"mode": ProviderMode.FEDERATED}, "needs at least one server domain"),
        ({"server_domains": ("not a domain!",)}, "not a host name"),
        ({"server_domains": ("localhost",)}, "not a host name"),
        ({"server_domains": ("hub.test",)}, "inside the service"),
        ({"server_domains": ("x.interop.hub.test",)}, "inside the service"),
        ({"s2s_fingerprints": ("abcd",)}, "SHA-256"),
        ({"s2s_ca": "not pem"}, "s2s_ca must be PEM"),
        ({"s2s_address": "chat.example"}, "host:port"),
        ({"s2s_address": "chat.example:0"}, "host:port"),
    ],
)
def test_federation_errors_name_the_field(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ProviderError, match=message):
        validate(provider(**changes), services=("hub.test",))


async def test_a_server_domain_belongs_to_one_provider_and_fields_change() -> None:
    storage = await open_sqlite(":memory:")
    registry = ProviderRegistry(storage.providers, lambda: 1.0, services=("hub.test",))
    try:
        fed = provider(mode=ProviderMode.FEDERATED, server_domains=("chat.example",))
        added = await registry.add(fed, "op")
        assert (added.mode, added.server_domains) == (ProviderMode.FEDERATED, ("chat.example",))
        assert (await storage.providers.get("examplechat")) == added  # round trip, 0020
        other = provider(id="other", server_domains=("chat.example",), mode="both")
        with pytest.raises(ProviderExists, match="belongs to provider 'examplechat'"):
            await registry.add(other, "op")
        changed = await registry.update(
            "examplechat",
            {"mode": "both", "s2s_fingerprints": [FP], "s2s_address": "localhost:5270"},
            "op",
        )
        assert changed.mode is ProviderMode.BOTH
        assert changed.s2s_address == "localhost:5270"
        assert changed.public_view()["s2s_fingerprints"] == ["ab" * 31 + "cd"]
        cleared = await registry.update("examplechat", {"s2s_address": None}, "op")
        assert cleared.s2s_address is None
        with pytest.raises(ProviderError, match="needs at least one server domain"):
            await registry.update("examplechat", {"server_domains": []}, "op")
    finally:
        await storage.close()
