"""Per-source connection budgets: boundaries of each, IPv6 /64 grouping, rate, allowlist."""

from __future__ import annotations

import pytest

from interlink.hub.policy.limits import Rate
from interlink.net.budget import Budget, SourceBudgets, SourceLimits

UNLIMITED = Rate(0, 1.0)


def test_per_ip_boundary_and_release() -> None:
    budgets = SourceBudgets(SourceLimits(per_ip=3, rate=UNLIMITED))
    a = budgets.source("192.0.2.1")
    assert [budgets.admit(a, 0.0) for _ in range(4)] == [None, None, None, Budget.PER_IP]
    other = budgets.source("192.0.2.2")
    assert budgets.admit(other, 0.0) is None  # another address has its own budget
    budgets.release(a)
    assert budgets.admit(a, 0.0) is None
    for _ in range(3):
        budgets.release(a)
    budgets.release(other)
    assert budgets.sources == 0  # counts of zero are forgotten


def test_ipv6_addresses_of_one_64_share_its_budget() -> None:
    budgets = SourceBudgets(SourceLimits(per_ip=2, per_ipv6_64=3, rate=UNLIMITED))
    same_net = [budgets.source(f"2001:db8:1:2::{i}") for i in range(1, 5)]
    assert [budgets.admit(s, 0.0) for s in same_net] == [None, None, None, Budget.PER_IPV6_64]
    assert budgets.admit(budgets.source("2001:db8:1:3::1"), 0.0) is None  # the next /64
    one = budgets.source("2001:db8:9::1")
    assert [budgets.admit(one, 0.0) for _ in range(3)] == [None, None, Budget.PER_IP]


def test_ipv4_mapped_addresses_count_as_ipv4() -> None:
    budgets = SourceBudgets(SourceLimits(per_ip=1, rate=UNLIMITED))
    assert budgets.admit(budgets.source("192.0.2.7"), 0.0) is None
    assert budgets.admit(budgets.source("::ffff:192.0.2.7"), 0.0) is Budget.PER_IP


def test_rate_is_a_token_bucket_with_time_passed_in() -> None:
    budgets = SourceBudgets(SourceLimits(per_ip=100, rate=Rate(3, 60.0)))
    a = budgets.source("192.0.2.1")
    assert [budgets.admit(a, 0.0) for _ in range(4)] == [None, None, None, Budget.RATE]
    assert budgets.admit(a, 19.0) is Budget.RATE  # one token every 20 s
    assert budgets.admit(a, 20.0) is None
    assert budgets.held_by("192.0.2.1") == 4  # a refusal counts nothing


def test_ipv6_rate_is_per_64() -> None:
    budgets = SourceBudgets(SourceLimits(rate=Rate(2, 60.0)))
    assert budgets.admit(budgets.source("2001:db8::1"), 0.0) is None
    assert budgets.admit(budgets.source("2001:db8::2"), 0.0) is None
    assert budgets.admit(budgets.source("2001:db8::3"), 0.0) is Budget.RATE


def test_allowlisted_sources_are_exempt() -> None:
    budgets = SourceBudgets(
        SourceLimits(per_ip=1, rate=Rate(1, 60.0), allowlist=("10.0.0.0/8", "2001:db8::7"))
    )
    proxy = budgets.source("10.1.2.3")
    assert proxy.exempt
    assert all(budgets.admit(proxy, 0.0) is None for _ in range(10))
    budgets.release(proxy)
    assert budgets.source("2001:db8::7").exempt
    assert not budgets.source("127.0.0.1").exempt  # loopback only when listed


def test_unknown_peers_share_one_budget() -> None:
    budgets = SourceBudgets(SourceLimits(per_ip=1, rate=UNLIMITED))
    assert budgets.admit(budgets.source(None), 0.0) is None
    assert budgets.admit(budgets.source("not an address"), 0.0) is Budget.PER_IP


def test_malformed_allowlist_is_refused() -> None:
    with pytest.raises(ValueError, match="does not appear to be an IPv4 or IPv6 network"):
        SourceLimits(allowlist=("example.com",))
