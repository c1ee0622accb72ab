"""Enlistment with proof of ownership: the happy path, re-enlistment with a new key,
un-enlistment, and every refusal, each storing nothing."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from interlink.errors import AuthenticationRefused, StorageError
from interlink.interop.enlistment import EnlistmentError, EnlistmentService
from interlink.interop.providers import ProviderRegistry
from interlink.storage.enlistment import CommitOutcome
from interlink.storage.providers import Provider, ProviderStatus
from interlink.storage.sqlite import SqliteStorage, open_sqlite
from tests.interop.enlistkit import HUB, ThirdParty

T0 = 1_000_000.0


class InlineKeys:
    async def keys(self, provider: Provider, *, refresh: bool) -> dict[str, Any]:
        assert provider.jwks is not None
        return provider.jwks


@dataclass
class Kit:
    storage: SqliteStorage
    registry: ProviderRegistry
    service: EnlistmentService
    party: ThirdParty

    async def stored(self) -> tuple[int, int, int]:
        """(accounts, seen token ids, open challenges)"""
        counts = []
        for table in ("interop_accounts", "seen_token_ids"):
            async with self.storage.db.conn.execute(f"SELECT COUNT(*) FROM {table}") as cur:  # noqa: S608
                row = await cur.fetchone()
            counts.append(int(row[0]) if row else 0)
        return counts[0], counts[1], len(self.service.challenges)


async def no_introspection(provider: Provider, subject: str, service: str) -> None:
    """These tests' provider offers no introspection: every enlisted account may log in."""


@asynccontextmanager
async def kit(status: ProviderStatus = ProviderStatus.APPROVED) -> AsyncIterator[Kit]:
    storage = await open_sqlite(":memory:")
    registry = ProviderRegistry(storage.providers, time.time, services=(HUB,))
    party = ThirdParty()
    await registry.add(
        Provider(party.provider_id, "Example Chat", "https://api.example.chat", jwks=party.jwks),
        "test",
    )
    await registry.set_status(party.provider_id, status, "test")
    service = EnlistmentService(
        storage.enlistment,
        registry,
        InlineKeys(),
        hub_domain=HUB,
        secret=b"s" * 32,
        clock=time.time,
        login_check=no_introspection,
    )
    try:
        yield Kit(storage, registry, service, party)
    finally:
        await storage.close()


async def test_enlist_re_enlist_with_a_new_key_and_unenlist() -> None:
    async with kit() as k:
        nonce, expires = k.service.challenge()
        assert expires > time.time()
        key, sig = k.party.prove(nonce)
        result = await k.service.enlist(k.party.token(), key, nonce, sig)
        assert result.created
        assert not result.key_changed
        jid = result.account.jid
        assert jid.endswith(f"@examplechat.interop.{HUB}")
        assert "user-42" not in jid  # the provider's own id never shows
        assert result.account.user_id == "@alice:example.chat"
        assert await k.storage.accounts.exists(jid)
        # The same subject enlists again from a new device with a new identity key.
        k.party.identity = Ed25519PrivateKey.generate()
        nonce, _ = k.service.challenge()
        key, sig = k.party.prove(nonce)
        again = await k.service.enlist(k.party.token(), key, nonce, sig)
        assert again.account.jid == jid
        assert not again.created
        assert again.key_changed
        assert len(await k.storage.enlistment.key_history(jid)) == 2
        assert await k.service.unenlist(k.party.token()) == jid
        assert not await k.storage.accounts.exists(jid)
        assert await k.storage.enlistment.account(jid) is None


def other_provider_key() -> Any:
    from joserfc.jwk import OKPKey

    return OKPKey.generate_key("Ed25519", parameters={"kid": "pk1"})


REFUSALS: list[tuple[str, Any, str]] = [
    ("expired token", lambda p, now: {"token": p.token(now=now - 1000)}, "token-expired"),
    (
        "not yet valid",
        lambda p, now: {"token": p.token(iat=int(now) + 400, exp=int(now) + 500)},
        "token-not-yet-valid",
    ),
    (
        "wrong audience",
        lambda p, now: {"token": p.token(aud="other.example")},
        "token-wrong-audience",
    ),
    ("unknown issuer", lambda p, now: {"token": p.token(iss="nobody")}, "unknown-issuer"),
    (
        "forged signature",
        lambda p, now: {"token": p.token(_key=other_provider_key())},
        "token-bad-signature",
    ),
    ("key not bound", lambda p, now: {"token": p.token(cnf={"jkt": "x"})}, "key-not-bound"),
    ("signature over another challenge", lambda p, now: {"sig_for": "another"}, "bad-proof"),
    ("signature for another hub", lambda p, now: {"sig_domain": "evil.example"}, "bad-proof"),
    (
        "unknown challenge",
        lambda p, now: {"challenge": "made-up", "sig_for": "made-up"},
        "bad-challenge",
    ),
]


@pytest.mark.parametrize(("name", "make", "kind"), REFUSALS, ids=[r[0] for r in REFUSALS])
async def test_refusals_store_nothing(name: str, make: Any, kind: str) -> None:
    async with kit() as k:
        nonce, _ = k.service.challenge()
        spec = make(k.party, time.time())
        challenge = spec.get("challenge", nonce)
        key, sig = k.party.prove(spec.get("sig_for", challenge), spec.get("sig_domain", HUB))
        token = spec.get("token", k.party.token())
        with pytest.raises(EnlistmentError) as info:
            await k.service.enlist(token, key, challenge, sig)
        assert info.value.kind == kind
        assert info.value.detail
        assert await k.stored() == (0, 0, 1)  # no account, no token id, the challenge unused


async def test_replayed_token_and_reused_challenge() -> None:
    async with kit() as k:
        nonce, _ = k.service.challenge()
        key, sig = k.party.prove(nonce)
        token = k.party.token()
        await k.service.enlist(token, key, nonce, sig)
        nonce2, _ = k.service.challenge()
        key2, sig2 = k.party.prove(nonce2)
        with pytest.raises(EnlistmentError) as replay:
            await k.service.enlist(token, key2, nonce2, sig2)
        assert replay.value.kind == "token-replayed"
        with pytest.raises(EnlistmentError) as reuse:
            await k.service.enlist(k.party.token(), key, nonce, sig)
        assert reuse.value.kind == "bad-challenge"
        assert await k.stored() == (1, 1, 1)  # only the first enlistment; nonce2 still open


async def test_suspended_or_pending_provider_is_refused() -> None:
    for status in (ProviderStatus.SUSPENDED, ProviderStatus.PENDING):
        async with kit(status) as k:
            nonce, _ = k.service.challenge()
            key, sig = k.party.prove(nonce)
            with pytest.raises(EnlistmentError) as info:
                await k.service.enlist(k.party.token(), key, nonce, sig)
            assert info.value.status == 403
            assert await k.stored() == (0, 0, 1)


async def test_expired_challenge() -> None:
    async with kit() as k:
        now = [time.time()]
        k.service._clock = lambda: now[0]
        nonce, _ = k.service.challenge()
        now[0] += 301
        key, sig = k.party.prove(nonce)
        with pytest.raises(EnlistmentError) as info:
            await k.service.enlist(k.party.token(now=now[0]), key, nonce, sig)
        assert info.value.kind == "bad-challenge"


async def test_one_challenge_serves_one_of_two_concurrent_enlistments() -> None:
    async with kit() as k:
        nonce, _ = k.service.challenge()
        key, sig = k.party.prove(nonce)
        outcomes = await asyncio.gather(
            k.service.enlist(k.party.token(), key, nonce, sig),
            k.service.enlist(k.party.token(), key, nonce, sig),
            return_exceptions=True,
        )
        refused = [o for o in outcomes if isinstance(o, EnlistmentError)]
        assert len(refused) == 1
        assert refused[0].kind == "bad-challenge"
        assert await k.stored() == (1, 1, 0)


async def test_a_storage_failure_gives_the_challenge_back() -> None:
    async with kit() as k:
        nonce, _ = k.service.challenge()
        key, sig = k.party.prove(nonce)

        async def broken(**_: Any) -> CommitOutcome:
            raise StorageError("disk full")

        real = k.storage.enlistment.commit_enlistment
        k.storage.enlistment.commit_enlistment = broken  # type: ignore[method-assign]
        with pytest.raises(StorageError):
            await k.service.enlist(k.party.token(), key, nonce, sig)
        k.storage.enlistment.commit_enlistment = real  # type: ignore[method-assign]
        assert (await k.service.enlist(k.party.token(), key, nonce, sig)).created


async def test_token_ids_stay_durable_across_pruning() -> None:
    """Pruning runs at most once a minute and drops only ids whose tokens expired an hour ago
    (long refused as expired anyway); a replay inside a token's lifetime is always caught."""
    async with kit() as k:
        repo = k.storage.enlistment
        assert await repo.remember_jti("examplechat", "a", expires_at=T0 + 300, now=T0)
        assert await repo.remember_jti("examplechat", "b", expires_at=T0 + 4000, now=T0 + 30)
        assert not await repo.remember_jti("examplechat", "a", expires_at=T0 + 300, now=T0 + 59)
        assert await repo.jti_seen("examplechat", "a")
        # More than an hour after "a" expired, the next prune (due: a minute has passed) drops it.
        assert await repo.remember_jti("examplechat", "c", expires_at=T0 + 5000, now=T0 + 3901)
        assert not await repo.jti_seen("examplechat", "a")
        assert await repo.jti_seen("examplechat", "b")
        assert not await repo.remember_jti("examplechat", "b", expires_at=T0 + 4000, now=T0 + 3902)


async def test_unenlistment_is_an_account_removal_in_the_change_feed() -> None:
    """Review finding: ``DELETE /v1/enlistments`` deletes the account but writes no
    ``account-removed`` entry, so nothing ends the unenlisted account's live sessions (it keeps
    sending as an account that no longer exists) and the policy's reach cache keeps it. The
    CLI's ``user remove`` writes one in its transaction; an unenlistment must too."""
    async with kit() as k:
        nonce, _ = k.service.challenge()
        key, sig = k.party.prove(nonce)
        jid = (await k.service.enlist(k.party.token(), key, nonce, sig)).account.jid
        position = await k.storage.changes.latest()
        assert await k.service.unenlist(k.party.token()) == jid
        entries = await k.storage.changes.since(position, 10)
        assert [(kind, subject) for _, kind, subject in entries] == [("account-removed", jid)]


async def test_a_third_partys_address_differs_between_services() -> None:
    """Review finding: the opaque local part is HMAC(provider, subject) without the service,
    so one third-party user has the same local part on every service of the hub, and the users
    of two services (two messengers) can tell that they talk to the same person. Each service
    should see its own opaque id."""
    async with kit() as k:
        on_wa = k.service.interop_jid("examplechat", "user-42", "wa.test")
        on_msg = k.service.interop_jid("examplechat", "user-42", "msg.test")
        assert on_wa.partition("@")[0] != on_msg.partition("@")[0]


async def test_a_login_token_for_another_service_is_refused_before_its_id_is_used() -> None:
    async with kit() as k:
        nonce, _ = k.service.challenge()
        key, sig = k.party.prove(nonce)
        jid = (await k.service.enlist(k.party.token(), key, nonce, sig)).account.jid
        token = k.party.token()  # aud: HUB
        with pytest.raises(AuthenticationRefused, match=r"the stream was opened to other\.test"):
            await k.service.authenticate(token, "other.test")
        # The refusal used nothing up: the same token logs in on its own service.
        assert await k.service.authenticate(token, HUB) == jid


async def test_an_enlistment_and_an_unenlistment_are_logged_once_at_info(
    caplog: pytest.LogCaptureFixture,
) -> None:
    import logging

    caplog.set_level(logging.INFO, "interlink.enlistment")
    async with kit() as k:
        for _ in range(2):  # the second time: the same key, nothing new to log
            nonce, _ = k.service.challenge()
            key, sig = k.party.prove(nonce)
            jid = (await k.service.enlist(k.party.token(), key, nonce, sig)).account.jid
        await k.service.unenlist(k.party.token())
    lines = [(r.getMessage(), r.__dict__.get("jid")) for r in caplog.records]
    assert lines == [("enlisted", jid), ("unenlisted", jid)]
