"""DiscoveryService without HTTP: E.164 parsing, the per-user and per-provider buckets at their
boundaries (time passed in), and the single not-found for every unreachable case."""

from __future__ import annotations

import pytest

from interlink.cluster import SharedBuckets
from interlink.cluster.local import LocalBackplane, LocalCluster
from interlink.errors import AuthenticationRefused
from interlink.hub.policy.limits import Rate
from interlink.interop.discovery import DiscoveryError, DiscoveryService, normalize_phone
from interlink.xmpp.ext.interop import InteropSettings
from tests.hubkit import CREDS, DOMAIN, HubKit, running_hub

PROVIDER = "examplechat"
PHONE = "+4915112345678"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("+4915112345678", "+4915112345678"),
        ("+49 151 1234-5678", "+4915112345678"),
        ("+1 (555) 010.0000", "+15550100000"),
        ("4915112345678", None),  # no +
        ("+0123456789", None),  # no country code starts with 0
        ("+123456", None),  # 6 digits: too short
        ("+1234567", "+1234567"),  # 7 digits: the shortest accepted
        ("+123456789012345", "+123456789012345"),  # 15 digits: the longest
        ("+1234567890123456", None),  # 16 digits
        ("+49151abc5678", None),
        ("", None),
    ],
)
def test_normalize_phone(text: str, expected: str | None) -> None:
    assert normalize_phone(text) == expected


def service(
    kit: HubKit, *, per_user: int, per_provider: int, shared: SharedBuckets | None = None
) -> DiscoveryService:
    async def authenticate(token: str) -> str:
        if token == "down":
            raise AuthenticationRefused("introspection timed out", temporary=True)
        if not token.startswith("user"):
            raise AuthenticationRefused("bad token")
        return f"{token}@{PROVIDER}.interop.{DOMAIN}"

    return DiscoveryService(
        kit.hub.ctx.storage.policy,
        kit.hub.router.policy,
        authenticate,
        per_user=Rate(per_user, 3600.0),
        per_provider=Rate(per_provider, 3600.0),
        clock=kit.clock,
        shared=shared,
    )


async def test_found_only_when_every_condition_holds() -> None:
    async with running_hub() as kit:
        kit.approve(PROVIDER, "Example Chat")
        alice = await kit.account("alice")
        repo = kit.hub.ctx.storage.policy
        await repo.set_phone(alice, PHONE)
        svc = service(kit, per_user=100, per_provider=100)
        assert await svc.lookup("user1", PHONE) is None  # not opted in
        await repo.put_settings(alice, InteropSettings(enabled=True), kit.clock())
        assert await svc.lookup("user1", PHONE) is None  # not discoverable
        discoverable = InteropSettings(enabled=True, discoverable=True)
        await repo.put_settings(alice, discoverable, kit.clock())
        assert await svc.lookup("user1", PHONE) == alice
        kit.suspend(PROVIDER)
        assert await svc.lookup("user1", PHONE) is None
        assert (svc.lookups, svc.found) == (4, 1)


@pytest.mark.parametrize("buckets", ["own", "shared by two nodes"])
async def test_per_user_and_per_provider_buckets_at_their_boundaries(buckets: str) -> None:
    async with running_hub() as kit:
        kit.approve(PROVIDER, "Example Chat")
        if buckets == "own":
            svc = service(kit, per_user=3, per_provider=5)
            other = svc
        else:  # two nodes of a cluster, each its own service, one set of buckets
            plane = LocalBackplane()
            svc, other = (
                service(kit, per_user=3, per_provider=5, shared=LocalCluster(n, plane).buckets)
                for n in ("a", "b")
            )
        for _ in range(3):
            assert await svc.lookup("user1", PHONE) is None
        with pytest.raises(DiscoveryError) as limited:
            await svc.lookup("user1", PHONE)
        assert limited.value.status == 429
        assert limited.value.retry_after == 1200  # one lookup per 1200 s
        # The provider's budget (5) is shared: user2 gets the 2 left, then everyone waits.
        assert await other.lookup("user2", PHONE) is None
        assert await other.lookup("user2", PHONE) is None
        with pytest.raises(DiscoveryError) as provider_limited:
            await other.lookup("user3", PHONE)
        assert provider_limited.value.status == 429
        kit.clock.now += 1200  # one token back for user1 and for the provider
        assert await svc.lookup("user1", PHONE) is None
        assert svc.limited + (other.limited if other is not svc else 0) == 2


async def test_refusals_are_problem_statuses() -> None:
    async with running_hub() as kit:
        kit.approve(PROVIDER, "Example Chat")
        svc = service(kit, per_user=10, per_provider=10)
        with pytest.raises(DiscoveryError) as bad:
            await svc.lookup("user1", "0151 1234")
        assert (bad.value.status, bad.value.kind) == (400, "bad-phone")
        with pytest.raises(DiscoveryError) as unauthorized:
            await svc.lookup("forged", PHONE)
        assert unauthorized.value.status == 401
        with pytest.raises(DiscoveryError) as unavailable:
            await svc.lookup("down", PHONE)
        assert unavailable.value.status == 503


async def test_one_number_on_two_services_is_found_on_the_callers_service() -> None:
    """Review finding: phone numbers are unique hub-wide (``account_phones.phone`` is the primary
    key), so with several services one person's number can be recorded on only one of them, and
    a third party on the other service gets "not found" for a discoverable user of its own
    service. Each service has its own users (docs/operations.md): a number belongs to one account
    per service, and a lookup answers with the caller's service's account."""
    wa, msg = "wa.test", "msg.test"
    async with running_hub(services=(wa, msg)) as kit:
        kit.approve(PROVIDER, "Example Chat", wa, msg)
        repo = kit.hub.ctx.storage.policy
        discoverable = InteropSettings(enabled=True, discoverable=True)
        for jid in (f"alice@{wa}", f"alice@{msg}"):
            await kit.hub.ctx.storage.accounts.create(jid, CREDS, kit.clock())
            await repo.put_settings(jid, discoverable, kit.clock())
            await repo.set_phone(jid, PHONE)  # the same person uses both messengers

        async def authenticate(token: str) -> str:
            return f"{token}@{PROVIDER}.interop.{msg}"  # a caller on msg.test

        svc = DiscoveryService(
            repo,
            kit.hub.router.policy,
            authenticate,
            per_user=Rate(100, 3600.0),
            per_provider=Rate(100, 3600.0),
            clock=kit.clock,
        )
        assert await svc.lookup("user1", PHONE) == f"alice@{msg}"
