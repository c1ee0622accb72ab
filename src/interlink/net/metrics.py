"""Prometheus metrics of the hub (``GET /metrics``), read at scrape time from the counters the
hub keeps anyway: nothing on the routing path calls into prometheus_client.

Everything is in one registry per hub (no process-global state), with the standard process
collector (RSS, CPU, open files) beside ours.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from interlink.hub.hub import Hub
from interlink.storage import Storage

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@dataclass
class MetricSources:
    """What the collector reads. Optional parts are absent in tests that build less."""

    hub: Hub
    storage: Storage
    gate: Any = None  # net.driver.ConnectionGate
    http_guard: Any = None  # net.http_guard.HttpGuard
    handshakes: Any = None  # net.accept.HandshakeGate
    push: Any = None  # interop.push.PushNotifier (.stats: provider -> PushStats)
    app_push: Any = None  # hub.app_push.AppServerPush (.stats: AppPushStats), XEP-0357
    discovery: Any = None  # interop.discovery.DiscoveryService
    reports: Any = None  # interop.reports.ReportForwarder
    enlistment: Any = None  # interop.enlistment.EnlistmentService (.stats, if it keeps them)
    media_proxy: Any = None  # media.proxy.MediaProxy (.outcomes)
    traffic: Any = None  # interop.traffic.ProviderTraffic (.messages: (provider, direction))
    extra: list[Collector] = field(default_factory=list)
    offline: tuple[int, int, int] = (0, 0, 0)  # refreshed before each scrape


class HubCollector(Collector):
    def __init__(self, sources: MetricSources) -> None:
        self._s = sources

    def collect(self) -> Iterator[Metric]:
        s = self._s
        ctx = s.hub.ctx
        yield GaugeMetricFamily(
            "interlink_sessions", "Bound XMPP resources", value=len(ctx.sessions)
        )
        yield from self._services()
        yield from self._cluster()
        if s.gate is not None:
            yield GaugeMetricFamily(
                "interlink_connections",
                "Open client streams (TCP and WebSocket)",
                value=len(s.gate.open),
            )
            yield GaugeMetricFamily(
                "interlink_connections_unauthenticated",
                "Streams that have not bound a resource yet",
                value=s.gate.unauthenticated,
            )
        throttle = s.hub.auth_throttle
        auth = CounterMetricFamily(
            "interlink_auth_attempts",
            "SASL attempts that failed (or were abandoned) and that the throttle refused",
            labels=["outcome"],
        )
        auth.add_metric(["failed"], throttle.failures)
        auth.add_metric(["throttled"], throttle.throttled)
        yield auth
        yield GaugeMetricFamily(
            "interlink_auth_throttle_keys",
            "Sources, accounts and pairs the authentication throttle keeps",
            value=len(throttle),
        )
        yield from self._connection_refusals()
        stanzas = CounterMetricFamily(
            "interlink_stanzas", "Stanzas by kind and direction", labels=["direction", "kind"]
        )
        for kind, count in ctx.stats.stanzas_in.items():
            stanzas.add_metric(["in", kind], count)
        for kind, count in ctx.stats.outbound().items():
            stanzas.add_metric(["out", kind], count)
        yield stanzas
        buckets, total = ctx.stats.histogram()
        yield HistogramMetricFamily(
            "interlink_routing_seconds",
            "Time from a stanza's arrival to its delivery or durable storage",
            buckets=buckets,
            sum_value=total,
        )
        stored, accounts, longest = s.offline
        yield GaugeMetricFamily(
            "interlink_offline_messages", "Messages stored for offline accounts", value=stored
        )
        yield GaugeMetricFamily(
            "interlink_offline_accounts", "Accounts with stored messages", value=accounts
        )
        yield GaugeMetricFamily(
            "interlink_offline_queue_longest", "The longest offline queue", value=longest
        )
        refusals = CounterMetricFamily(
            "interlink_policy_refusals",
            "Stanzas refused or dropped by the consent and abuse rules, by reason",
            labels=["reason"],
        )
        rate = CounterMetricFamily(
            "interlink_rate_limited", "Rate-limit hits, by limit", labels=["limit"]
        )
        for reason, count in sorted(ctx.refusals.items()):
            refusals.add_metric([reason], count)
            if reason.startswith("rate-"):
                rate.add_metric([reason[5:]], count)
        if s.discovery is not None:
            rate.add_metric(["discovery"], s.discovery.limited)
        yield refusals
        yield rate
        yield from self._interop()

    def _connection_refusals(self) -> Iterator[Metric]:
        """Connections refused by a budget: XMPP streams before binding (every transport) and
        HTTP connections; and HTTP connections closed for saying nothing in time."""
        s = self._s
        refused = CounterMetricFamily(
            "interlink_connections_refused",
            "Connections refused, by stage (tls-handshake; xmpp: every c2s transport; http) "
            "and budget",
            labels=["listener", "budget"],
        )
        if s.gate is not None:
            for budget, count in sorted(s.gate.refused.items()):
                refused.add_metric(["xmpp", str(budget)], count)
        if s.http_guard is not None:
            for budget, count in sorted(s.http_guard.refused.items()):
                refused.add_metric(["http", str(budget)], count)
        if s.handshakes is not None:
            for budget, count in sorted(s.handshakes.refused.items()):
                refused.add_metric(["tls-handshake", str(budget)], count)
            yield GaugeMetricFamily(
                "interlink_tls_handshakes",
                "Connections in their TLS handshake (direct TLS and HTTPS)",
                value=s.handshakes.pending,
            )
        yield refused
        if s.http_guard is not None:
            yield GaugeMetricFamily(
                "interlink_http_connections",
                "Open connections on the HTTP port (before a WebSocket upgrade)",
                value=s.http_guard.open,
            )
            yield CounterMetricFamily(
                "interlink_http_timeouts",
                "HTTP connections closed for not sending a request's headers in time",
                value=s.http_guard.timed_out,
            )

    def _cluster(self) -> Iterator[Metric]:
        """What this node took from inboxes, and what it could not send to other nodes."""
        hub = self._s.hub
        if hub.node is None:
            return
        inbox = CounterMetricFamily(
            "interlink_cluster_inbox",
            "Stanzas taken from this node's inbox (received) and from dead nodes' (reclaimed)",
            labels=["kind"],
        )
        inbox.add_metric(["received"], hub.node.received)
        inbox.add_metric(["reclaimed"], hub.node.reclaimed)
        yield inbox
        yield CounterMetricFamily(
            "interlink_cluster_fanout_dropped",
            "Carbons and roster pushes for other nodes dropped: cluster.fanout_backlog was full",
            value=hub.ctx.fanout.dropped,
        )
        yield CounterMetricFamily(
            "interlink_cluster_room_dropped",
            "Room stanzas for occupants on other nodes dropped: cluster.fanout_backlog was full",
            value=hub.router.groups.live_dropped,
        )

    def _services(self) -> Iterator[Metric]:
        """Per gatekeeper service: its users' and third parties' sessions, approved providers."""
        addressing = self._s.hub.ctx.addressing
        counts: Counter[tuple[str, str]] = Counter()
        for session in self._s.hub.ctx.sessions.all_sessions():
            where = addressing.locate(session.jid)
            if where.service is not None:
                counts[where.service, where.kind.value] += 1
        sessions = GaugeMetricFamily(
            "interlink_service_sessions",
            "Bound resources per gatekeeper service: its own users (home) and third parties",
            labels=["service", "kind"],
        )
        providers = GaugeMetricFamily(
            "interlink_service_providers",
            "Providers approved for each gatekeeper service",
            labels=["service"],
        )
        for service in addressing.services:
            for kind in ("home", "interop"):
                sessions.add_metric([service, kind], counts[service, kind])
            providers.add_metric([service], len(addressing.approved_providers(service)))
        yield sessions
        yield providers

    def _interop(self) -> Iterator[Metric]:
        s = self._s
        if s.push is not None:
            pushes = CounterMetricFamily(
                "interlink_pushes",
                "Pushes to providers, by outcome",
                labels=["provider", "outcome"],
            )
            for provider, stats in sorted(s.push.stats.items()):
                for outcome in ("queued", "coalesced", "sent", "retried", "failed", "dropped"):
                    pushes.add_metric([provider, outcome], getattr(stats, outcome))
            yield pushes
        if s.app_push is not None:
            app_pushes = CounterMetricFamily(
                "interlink_app_pushes",
                "XEP-0357 pushes to app servers of the hub's own accounts, by outcome",
                labels=["outcome"],
            )
            for outcome in ("sent", "failed", "disabled"):
                app_pushes.add_metric([outcome], getattr(s.app_push.stats, outcome))
            yield app_pushes
        if s.discovery is not None:
            lookups = CounterMetricFamily(
                "interlink_discovery_lookups", "Discovery lookups, by outcome", labels=["outcome"]
            )
            lookups.add_metric(["found"], s.discovery.found)
            lookups.add_metric(["not-found"], s.discovery.lookups - s.discovery.found)
            yield lookups
        if s.reports is not None:
            reports = CounterMetricFamily(
                "interlink_reports_forwarded", "Reports sent to providers", labels=["outcome"]
            )
            reports.add_metric(["forwarded"], s.reports.forwarded)
            reports.add_metric(["failed"], s.reports.failed)
            yield reports
        if s.traffic is not None:
            messages = CounterMetricFamily(
                "interlink_provider_messages",
                "Messages across the interop boundary, by provider and direction",
                labels=["provider", "direction"],
            )
            for (provider, direction), count in sorted(s.traffic.messages.items()):
                messages.add_metric([provider, direction], count)
            yield messages
        if s.media_proxy is not None:
            proxied = CounterMetricFamily(
                "interlink_media_proxy", "Media-proxy requests, by outcome", labels=["outcome"]
            )
            for outcome, count in sorted(s.media_proxy.outcomes.items()):
                proxied.add_metric([outcome], count)
            yield proxied
        stats = getattr(s.enlistment, "stats", None)
        if stats is not None:
            enlistments = CounterMetricFamily(
                "interlink_enlistments", "Enlistment API outcomes", labels=["outcome"]
            )
            for outcome, count in sorted(stats.items()):
                enlistments.add_metric([outcome], count)
            yield enlistments


# One metric family as nodes exchange it: name, type, help, samples (name, labels, value).
Family = dict[str, Any]
# The families of the other live nodes of a cluster, by node (those that answered in time).
OtherNodes = Callable[[], Awaitable[dict[str, list[Family]]]]


class _Families(Collector):
    """Collected families, every sample labelled with its ``node``, merged by name."""

    def __init__(self, by_node: dict[str, list[Family]]) -> None:
        self._by_node = by_node

    def collect(self) -> Iterator[Metric]:
        merged: dict[str, Metric] = {}
        for node in sorted(self._by_node):
            for family in self._by_node[node]:
                name = str(family["name"])
                metric = merged.get(name)
                if metric is None:
                    metric = Metric(name, str(family["help"]), str(family["type"]))
                    merged[name] = metric
                for sample_name, labels, value in family["samples"]:
                    metric.add_sample(str(sample_name), {**labels, "node": node}, float(value))
        yield from merged.values()


class HubMetrics:
    """``node`` is this process's name in a cluster (``None``: alone); then every series gets
    a ``node`` label, and ``others`` adds the series of the other live nodes, so that one
    scrape of any node (with ``serve --workers``, whichever worker the kernel picks) shows
    them all."""

    def __init__(
        self, sources: MetricSources, *, node: str | None = None, others: OtherNodes | None = None
    ) -> None:
        self.sources = sources
        self.node = node
        self._others = others
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(HubCollector(sources))
        self.registry.register(ProcessCollector(registry=None))
        for collector in sources.extra:
            self.registry.register(collector)

    async def samples(self) -> dict[str, list[tuple[dict[str, str], float]]]:
        """Every metric's samples, by sample name (``interlink_pushes_total``: labels, value),
        for the operator console's charts."""
        self.sources.offline = await self.sources.storage.offline.totals()
        found: dict[str, list[tuple[dict[str, str], float]]] = {}
        for family in self.registry.collect():
            for sample in family.samples:
                found.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
        return found

    async def snapshot(self) -> list[Family]:
        """This node's families, as other nodes ask for them."""
        self.sources.offline = await self.sources.storage.offline.totals()
        return [
            {
                "name": family.name,
                "type": family.type,
                "help": family.documentation,
                "samples": [[x.name, dict(x.labels), x.value] for x in family.samples],
            }
            for family in self.registry.collect()
        ]

    async def render(self) -> bytes:
        if self.node is None:
            self.sources.offline = await self.sources.storage.offline.totals()
            return generate_latest(self.registry)
        by_node = {self.node: await self.snapshot()}
        if self._others is not None:
            by_node.update(await self._others())
        merged = CollectorRegistry(auto_describe=False)
        merged.register(_Families(by_node))
        return generate_latest(merged)
