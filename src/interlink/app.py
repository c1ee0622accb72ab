"""The composition root: configuration in, a running hub out.

This is the one place that reads settings and wires objects together: storage, the hub, TLS,
the c2s listeners and the HTTP server (with XMPP over WebSocket).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import math
import os
import secrets
import signal
import socket
import ssl
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from pathlib import Path
from typing import Any
from xml.etree.ElementTree import Element

import httpx
import uvicorn
from fastapi import FastAPI

from interlink.cluster import Cluster
from interlink.cluster.local import LocalCluster
from interlink.cluster.redis import open_redis_cluster
from interlink.config import ADMIN_TOKEN_MIN, Settings
from interlink.errors import ConfigError, StreamError, StreamErrorCondition, reason
from interlink.hub.addressing import Addressing, ProviderDirectory
from interlink.hub.adhoc import AdhocLimits, AdhocService
from interlink.hub.adhoc_commands import standard_commands
from interlink.hub.app_push import AppPushSettings, AppServerPush, ClusterAppServers
from interlink.hub.auth_throttle import Backoff
from interlink.hub.federation import AliasCipher, Enlisted, LinksPort
from interlink.hub.hub import Hub
from interlink.hub.nodes import DirectorySync, NodeCalls
from interlink.hub.observers import HubObservers
from interlink.hub.policy.limits import Rate
from interlink.hub.router import DomainServices
from interlink.hub.session import SessionRegistry
from interlink.interop.challenges import ChallengeStore
from interlink.interop.discovery import DiscoveryService
from interlink.interop.enlistment import EnlistmentService
from interlink.interop.introspection import Introspector
from interlink.interop.keys import ProviderKeys
from interlink.interop.moderation import Moderation
from interlink.interop.operator import ChangeFeedFollower, OperatorState, PendingLinks
from interlink.interop.providers import ProviderNotFound, ProviderRegistry
from interlink.interop.push import HubSigner, PushNotifier, wants_no_push
from interlink.interop.reports import ReportForwarder
from interlink.interop.traffic import ProviderTraffic
from interlink.media.model import MediaLimits
from interlink.media.policy import ACTIVE_TYPES, ContentTypePolicy
from interlink.media.proxy import MediaProxy, ProxyLimits
from interlink.media.store import MediaStore
from interlink.media.token_service import MediaTokenService
from interlink.media.tokens import MediaTokens
from interlink.media.upload import REQUEST as UPLOAD_REQUEST
from interlink.media.upload import UploadService, anyone
from interlink.media.upload import disco_features as upload_features
from interlink.media.upload import disco_identity as upload_identity
from interlink.net.accept import HandshakeGate
from interlink.net.budget import SourceBudgets, SourceLimits
from interlink.net.c2s import C2SContext, Listener, start_c2s_listener
from interlink.net.component import ComponentGateway, start_component_listener
from interlink.net.console import ConsoleLimits
from interlink.net.driver import ConnectionGate, DriverLimits
from interlink.net.http import OperatorDoors, build_http_app, build_operator_app
from interlink.net.http_guard import HttpGuard, HttpGuardLimits
from interlink.net.http_server import EmbeddedUvicorn
from interlink.net.media_api import media_router
from interlink.net.media_proxy_api import media_proxy_router
from interlink.net.metrics import HubMetrics, MetricSources
from interlink.net.s2s import (
    ProviderGate,
    S2SCollector,
    S2SLimits,
    S2SService,
    ServiceDomains,
    start_s2s_listener,
)
from interlink.net.tls import ensure_self_signed, server_context
from interlink.net.websocket import WebSocketContext
from interlink.settings_map import (
    hub_settings,
    password_rules,
    proxy_registry,
    redis_limits,
    source_limits,
    xml_limits,
)
from interlink.storage import Storage
from interlink.storage.engines import StorageConfig
from interlink.storage.engines import open_storage as open_engine
from interlink.storage.providers import Provider
from interlink.tasks import cancel_and_wait
from interlink.xmpp import ns
from interlink.xmpp.ext import push as xep0357
from interlink.xmpp.ext.commands import COMMAND
from interlink.xmpp.ext.media_tokens import TOKEN
from interlink.xmpp.jid import JID
from interlink.xmpp.s2s import S2SConfig
from interlink.xmpp.shaper import ReadRate
from interlink.xmpp.stanza import Message
from interlink.xmpp.stream import StreamConfig
from interlink.xmpp.stream.component import ComponentConfig
from interlink.xmpp.stream.csi import CsiConfig
from interlink.xmpp.stream.sm import SmConfig

log = logging.getLogger("interlink")
CHANGE_FEED_PRUNE_EVERY = 3600.0  # seconds between two prunings of the change feed


async def open_storage(settings: Settings) -> Storage:
    settings.hub.data_dir.mkdir(parents=True, exist_ok=True)
    return await open_engine(
        StorageConfig(
            engine=settings.storage.engine,
            sqlite_path=settings.database_path,
            sqlite_synchronous=settings.storage.sqlite_synchronous,
            postgres_dsn=settings.storage.dsn,
            postgres_pool_size=settings.storage.pool_size,
        )
    )


def node_id(settings: Settings) -> str:
    """This process's name in the cluster: ``cluster.node_id``, or host name and pid."""
    return settings.cluster.node_id or f"{socket.gethostname()}-{os.getpid()}"


async def open_cluster(settings: Settings) -> Cluster:
    """The other hub processes: on Redis if ``cluster.redis_url`` is set, else none."""
    c = settings.cluster
    if not c.redis_url:
        return LocalCluster()
    return await open_redis_cluster(
        c.redis_url,
        node_id(settings),
        prefix=c.redis_prefix,
        node_ttl=c.node_ttl,
        limits=redis_limits(settings),
    )


def tls_files(settings: Settings) -> tuple[Path, Path]:
    if settings.tls.cert_file is not None or settings.tls.key_file is not None:
        if settings.tls.cert_file is None or settings.tls.key_file is None:
            raise ConfigError("tls.cert_file and tls.key_file must be set together")
        return settings.tls.cert_file, settings.tls.key_file
    return ensure_self_signed(settings.hub.data_dir, settings.hub.services)


def provider_tls_context(settings: Settings) -> ssl.SSLContext:
    """What the hub trusts on providers' endpoints: the system's CAs, and ``providers.ca_file``."""
    context = httpx.create_ssl_context()
    ca_file = settings.providers.ca_file
    if ca_file is not None:
        try:
            context.load_verify_locations(cafile=str(ca_file))
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"providers.ca_file: cannot load {ca_file}: {reason(exc)}") from None
    return context


def adhoc_service(
    s: Settings,
    storage: Storage,
    sessions: SessionRegistry,
    addressing: Addressing,
    clock: Callable[[], float],
) -> AdhocService:
    """XEP-0050 commands (``[adhoc]``); the operators must be accounts of the hosted services.
    Raises ``ConfigError``."""
    operators = frozenset(JID.parse(text) for text in s.adhoc.operators)
    for jid in operators:
        if not addressing.is_home(jid):
            raise ConfigError(f"adhoc.operators: {jid} is not an account of {addressing.services}")
    limits = AdhocLimits(
        max_sessions_per_account=s.adhoc.max_sessions_per_account,
        session_lifetime=s.adhoc.session_lifetime,
        online_users_list_max=s.adhoc.online_users_list_max,
    )
    service = AdhocService(addressing, clock, limits, operators)
    service.registry.extend(
        standard_commands(
            accounts=storage.accounts,
            sessions=sessions,
            addressing=addressing,
            limits=limits,
            rules=password_rules(s),
            scram_iterations=s.sasl.scram_iterations,
        )
    )
    return service


async def record_services(storage: Storage, addressing: Addressing) -> None:
    """Write the services this data directory's hub serves into it, so that ``interlink user``
    and ``interlink provider`` pointed at it know them (and refuse other domains).

    A service may be added; one this data directory served before may not silently disappear
    (its accounts and providers would be stranded): raises ``ConfigError`` naming it."""
    recorded = await storage.server_state.get_value("services")
    if recorded is not None:
        missing = [d for d in json.loads(recorded) if d not in addressing.services]
        if missing:
            raise ConfigError(
                f"the hub in this data directory served {', '.join(missing)}, which hub.domains "
                f"({', '.join(addressing.services)}) no longer names; keep it there (its "
                "accounts and providers are in this data directory)"
            )
    await storage.server_state.put_value("services", json.dumps(list(addressing.services)))


async def legacy_interop_service(storage: Storage, addressing: Addressing) -> str:
    """The service whose third-party addresses keep the form they had before a hub could serve
    several (recorded once: the default service when this is first asked)."""
    recorded = await storage.server_state.get_value("interop-jid-legacy-service")
    if recorded is None:
        recorded = addressing.default
        await storage.server_state.put_value("interop-jid-legacy-service", recorded)
    return recorded


def admin_token(settings: Settings) -> str:
    """The admin API's bearer token: configured, or generated once into the data directory."""
    if settings.admin.token:
        return settings.admin.token
    path = settings.hub.data_dir / "admin-token"
    if not path.exists():
        settings.hub.data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(32))
    token = path.read_text().strip()
    if len(token) < ADMIN_TOKEN_MIN:
        raise ConfigError(
            f"{path}: the admin token needs {ADMIN_TOKEN_MIN} characters or more (admin.token); "
            "remove the file to have one generated"
        )
    return token


LISTENERS = (
    ("c2s-starttls", "c2s_port"),
    ("c2s-direct-tls", "c2s_tls_port"),
    ("http", "http_port"),
)


def bind_port(host: str, port: int, what: str, *, reuse_port: bool = False) -> socket.socket:
    """A TCP socket bound to ``host:port``, not yet listening; with ``reuse_port``, shared with
    the other processes that bind it so (SO_REUSEPORT: the kernel spreads new connections).

    Raises:
        ConfigError: the address cannot be bound (taken, not local, no permission); the
            message names the port and what it was for.
    """
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        reason = exc.strerror or str(exc)
        raise ConfigError(f"cannot listen on {host}:{port} for {what}: {reason}") from exc
    return sock


async def _periodically(
    interval: float,
    job: Callable[[], Awaitable[int]],
    failed: str,
    removed: str | None = None,
) -> None:
    """Run a clean-up ``job`` every ``interval`` seconds until cancelled. A failure is logged
    (``failed``) and the next run comes as planned; with ``removed``, a run that removed
    something logs that message with the count the job returned."""
    while True:
        await asyncio.sleep(interval)
        try:
            count = await job()
        except Exception:
            log.exception(failed)
            continue
        if count and removed is not None:
            log.info(removed, extra={"count": count})


class HubServer:
    """A running hub: call :meth:`start`, then :meth:`stop` (or :meth:`run` until a signal)."""

    def __init__(
        self,
        settings: Settings,
        clock: Callable[[], float] = time.time,
        *,
        observers: HubObservers | None = None,
        http_hooks: Sequence[Callable[[FastAPI], None]] = (),
    ) -> None:
        """``observers`` listen to the hub (e.g. the demo's transcript); ``http_hooks`` see the
        HTTP app once it is built, before it serves (e.g. to add a recording middleware)."""
        self.settings = settings
        self.clock = clock
        self._observers = observers or HubObservers()
        self._http_hooks = tuple(http_hooks)
        self.ports: dict[str, int] = {}
        self.addressing: Addressing | None = None
        self.operator: OperatorState | None = None
        self._sockets: dict[str, socket.socket] = {}
        self._follower: ChangeFeedFollower | None = None
        self.hub: Hub | None = None
        self.storage: Storage | None = None
        self.cluster: Cluster | None = None
        self._directory_sync: DirectorySync | None = None
        self._notices: set[asyncio.Task[None]] = set()
        self.registry: ProviderRegistry | None = None
        self._http_client: httpx.AsyncClient | None = None
        self.push: PushNotifier | None = None
        self.adhoc: AdhocService | None = None  # XEP-0050 commands
        self.app_push: AppServerPush | None = None  # XEP-0357, through XEP-0114 components
        self.components: ComponentGateway | None = None
        self.reports: ReportForwarder | None = None
        self.discovery: DiscoveryService | None = None
        self.http_app: FastAPI | None = None
        self._servers: list[Listener] = []
        self._https: list[tuple[EmbeddedUvicorn, asyncio.Task[None]]] = []
        self._gate: ConnectionGate | None = None
        self._http_guard: HttpGuard | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self.metrics: HubMetrics | None = None
        self.node_calls: NodeCalls | None = None  # requests to the other nodes of a cluster
        self.media: MediaStore | None = None
        self.media_proxy: MediaProxy | None = None
        self.traffic: ProviderTraffic | None = None
        self._media_sweeper: asyncio.Task[None] | None = None
        self._changes_sweeper: asyncio.Task[None] | None = None
        self._archive_sweeper: asyncio.Task[None] | None = None
        self._ready = False
        self.s2s: S2SService | None = None

    async def start(self) -> None:
        """Build the object graph, in dependency order, and start serving. Every collaborator
        is given to the object that needs it when that object is built; nothing is attached
        afterwards."""
        s = self.settings
        clock = self.clock
        self._bind_listeners()  # a taken port is reported before anything is built
        self.storage = storage = await open_storage(s)
        secrets_ = storage.server_state
        decoy = await secrets_.get_or_create_secret("sasl-decoy", 32)
        cert, key = tls_files(s)
        tls: ssl.SSLContext = server_context(cert, key)
        self.addressing = addressing = Addressing(
            s.hub.services,
            ProviderDirectory(),
            groups_label=s.groups.subdomain if s.groups.enabled else None,
        )
        await record_services(storage, addressing)
        provider_tls = provider_tls_context(s)
        self._http_client = http_client = httpx.AsyncClient(
            timeout=s.interop.http_timeout, verify=provider_tls
        )
        signer = HubSigner(await secrets_.get_or_create_secret("hub-signing-key", 32))

        # The other hub processes, if any, and the sessions this one holds.
        self.cluster = cluster = await open_cluster(s)
        if cluster.shared:
            self._directory_sync = DirectorySync(cluster.directory, self._bound_in_cluster)
        sessions = SessionRegistry(self._directory_sync)

        # The interop control plane, which the hub's gates call into.
        # The s2s transport is built after the hub it routes through; operator state (which
        # the hub's gates ask) closes its links: the port exists first, the transport fulfils
        # it (below).
        s2s_links = PendingLinks()
        self.operator = operator = OperatorState(addressing, sessions, s2s_links)
        self.registry = registry = ProviderRegistry(
            storage.providers,
            clock,
            services=addressing.services,
            allow_insecure_loopback=s.interop.allow_insecure_loopback,
            on_change=(operator.provider_changed, self._announce_change),
        )
        enlistment = EnlistmentService(
            storage.enlistment,
            registry,
            ProviderKeys(http_client),
            hub_domain=addressing.default,
            services=addressing.services,
            legacy_service=await legacy_interop_service(storage, addressing),
            secret=await secrets_.get_or_create_secret("interop-jid", 32),
            clock=clock,
            login_check=Introspector(
                signer,
                http_client,
                hub_domain=addressing.default,
                timeout=s.interop.introspection_timeout,
                clock=clock,
            ).check,
            challenges=ChallengeStore(capacity=s.interop.open_challenges),
        )
        self.push = push = PushNotifier(
            storage.enlistment,
            registry,
            signer,
            http_client,
            hub_domain=addressing.default,
            clock=clock,
            queue_max=s.interop.push_queue_max,
            max_attempts=s.interop.push_max_attempts,
            backoff=s.interop.push_backoff,
        )
        self.reports = reports = ReportForwarder(
            storage.policy,
            storage.enlistment,
            registry,
            signer,
            http_client,
            hub_domain=addressing.default,
            clock=clock,
            max_attempts=s.interop.push_max_attempts,
            backoff=s.interop.push_backoff,
        )

        # Media: uploads on the service domains (their URL needs the HTTP port: bound first).
        http_socket = self._sockets["http"]
        self.media = media = self._media_store()
        tokens = MediaTokens(
            await secrets_.get_or_create_secret("media-token", 32),
            lifetime=s.media.token_lifetime,
        )
        upload = UploadService(
            media,
            self._upload_base(),
            may_upload=anyone if s.media.third_party_uploads else addressing.is_home,
        )

        def announce_upload(info: Element) -> None:
            info.insert(1, upload_identity())
            for feature in upload_features():
                info.append(Element(ns.qname(ns.DISCO_INFO, "feature"), {"var": feature}))
            info.append(upload.disco_extension())

        # XEP-0357 push for the hub's own accounts, to app servers connected as components.
        # In a cluster, through whichever node the app server is connected to.
        self.components = components = ComponentGateway(
            ComponentConfig(
                s.components.secrets,
                handshake_timeout=s.components.handshake_timeout,
                limits=xml_limits(s, authenticated=True),
            ),
            on_change=lambda domain, up: app_servers.changed(domain, up),
        )
        # requests to other nodes that wait for an answer (app servers, metrics)
        self.node_calls = calls = NodeCalls(cluster, self._spawn_on_hub)
        app_servers = ClusterAppServers(components, cluster, calls, self._spawn_on_hub)
        self.app_push = app_push = AppServerPush(
            storage.push_registrations,
            app_servers,
            AppPushSettings(
                max_registrations=s.push.max_registrations_per_account,
                max_publish_options_bytes=s.push.max_publish_options_bytes,
                reply_timeout=s.push.reply_timeout,
                max_in_flight=s.push.max_in_flight,
            ),
            clock,
            addressing.is_home,
            self._spawn_on_hub,
        )

        # The hub itself.
        def push_when_stored(jid: JID, message: Message) -> None:
            if addressing.provider_of(jid) is not None and not wants_no_push(message):
                push.notify(str(jid))
            elif s.components.secrets and addressing.is_home(jid):
                app_push_when_asleep(jid, message)

        def app_push_when_asleep(jid: JID, message: Message) -> None:
            if addressing.is_home(jid) and xep0357.wakes_device(message):
                app_push.message_stored(jid, message)

        self.traffic = traffic = ProviderTraffic(addressing.provider_of)
        observers = HubObservers(
            stanza_routed=(traffic.observe,),
            offline_stored=(push_when_stored,),
            parked_queued=(app_push_when_asleep,) if s.components.secrets else (),
            report_filed=(reports.submit,),
        ).merged(self._observers)
        self.adhoc = adhoc = adhoc_service(s, storage, sessions, addressing, clock)
        # The s2s transport routes through the hub and the hub sends through it: the port
        # exists first and the transport fulfils it once built (below).
        links = LinksPort()  # never fulfilled while s2s is off: nothing federates
        self.hub = hub = Hub(
            hub_settings(s),
            storage,
            clock,
            addressing=addressing,
            sessions=sessions,
            authenticate_bearer=enlistment.authenticate,
            user_ids=self._user_id,
            disabled=operator.is_disabled,
            aliases=AliasCipher(await secrets_.get_or_create_secret("s2s-alias", 64)),
            enlisted_account=self._enlisted_account,
            federation_port=links,
            observers=observers,
            cluster=cluster,
            heartbeat_every=s.cluster.node_ttl / 3,
            cluster_handlers={
                "reply": calls.replied,
                "component": calls.serve("component", app_servers.answer),
                "metrics": calls.serve("metrics", self._metrics_for_node),
            },
            domain_services=DomainServices(
                handlers={
                    TOKEN: MediaTokenService(tokens, addressing.is_home, clock).handle_iq,
                    UPLOAD_REQUEST: upload.handle_iq,
                    COMMAND: adhoc.handle_iq,
                },
                info=(announce_upload, adhoc.add_feature),
                nodes=adhoc.disco_nodes(),
                account_handlers=dict.fromkeys(xep0357.QUERIES, app_push.handle_iq),
                account_info=(app_push.account_features,) if s.components.secrets else (),
            ),
        )
        feed_position = await storage.changes.latest()  # before loading what it keeps current
        if s.s2s.enabled:  # federation: before operator state is loaded, which it follows
            peer_gate = ProviderGate(addressing)
            self.s2s = s2s = S2SService(
                hub,
                S2SConfig(
                    hosts=ServiceDomains(addressing),
                    gate=peer_gate,
                    dialback_secret=await secrets_.get_or_create_secret("s2s-dialback", 32),
                    limits=xml_limits(s, authenticated=True),
                    pre_auth_limits=xml_limits(s, authenticated=False),
                    auth_timeout=s.s2s.auth_timeout,
                    max_pending_stanzas=s.s2s.max_pending_stanzas,
                ),
                peer_gate,
                cert_file=str(cert),
                key_file=str(key),
                limits=S2SLimits(
                    connect_timeout=s.s2s.connect_timeout,
                    tls_handshake_timeout=s.net.tls_handshake_timeout,
                    max_links=s.s2s.max_links,
                ),
            )
            links.fulfil(s2s)
            s2s_links.fulfil(s2s)
        await operator.load(await registry.all(), await storage.moderation.disabled_accounts())
        if self.s2s is not None:
            self._servers.append(await start_s2s_listener(self.s2s, self._sockets["s2s"]))
        await hub.start()
        self._follower = ChangeFeedFollower(
            storage.changes.since,
            self._apply_change,
            resync=self._reload_operator_state,
            interval=s.admin.change_feed_interval,
        )
        self._follower.start(feed_position)
        if cluster.shared:  # a notice from any node: read the change feed now
            follower = self._follower
            cluster.invalidation.subscribe(lambda kind: follower.wake())
        await reports.resume()
        self.discovery = DiscoveryService(
            storage.policy,
            hub.router.policy,
            enlistment.authenticate,
            per_user=Rate(s.policy.discovery_per_user_per_hour, 3600.0),
            per_provider=Rate(s.policy.discovery_per_provider_per_hour, 3600.0),
            clock=clock,
            shared=cluster.buckets if cluster.shared else None,
        )
        self.media_proxy = MediaProxy(
            registry.get,
            limits=ProxyLimits(
                max_bytes=s.media.proxy_max_bytes,
                total_timeout=s.media.proxy_timeout,
                idle_timeout=s.media.proxy_idle_timeout,
                max_redirects=s.media.proxy_max_redirects,
            ),
            private_allowlist=s.media.proxy_private_allowlist,
            allow_http_loopback=s.interop.allow_insecure_loopback,
            ssl_context=provider_tls,
        )

        # Transports.
        stream_config = StreamConfig(
            hosts=addressing,
            limits=xml_limits(s, authenticated=True),
            pre_auth_limits=xml_limits(s, authenticated=False),
            starttls_available=True,
            tls_required=s.net.require_tls,
            auth_timeout=s.net.auth_timeout,
            max_auth_failures=s.limits.max_auth_failures,
            decoy_secret=decoy,
            decoy_iterations=s.sasl.scram_iterations,
            oauthbearer=True,
            sm=SmConfig(
                max_unacked=s.limits.sm_max_unacked,
                request_every=s.limits.sm_request_every,
                request_after=s.limits.sm_request_after,
                resume_window=math.ceil(s.xmpp.sm_resume_window),
            )
            if s.xmpp.stream_management
            else None,
            csi=CsiConfig(max_held=s.csi.max_held) if s.csi.enabled else None,
        )
        self._gate = gate = ConnectionGate(
            s.net.max_unauthenticated, SourceBudgets(source_limits(s))
        )
        c2s = C2SContext(
            hub=hub,
            stream_config=stream_config,
            tls=tls,
            gate=gate,
            limits=DriverLimits(
                max_outbound_bytes=s.net.max_outbound_bytes,
                pre_auth_read_rate=ReadRate(
                    s.limits.pre_auth_read_bytes_per_second, s.limits.pre_auth_read_burst_bytes
                ),
                read_rate=ReadRate(s.limits.read_bytes_per_second, s.limits.read_burst_bytes),
            ),
            tls_handshake_timeout=s.net.tls_handshake_timeout,
            tls_shutdown_timeout=s.net.tls_shutdown_timeout,
        )
        handshakes = HandshakeGate(
            s.net.max_tls_handshakes,
            SourceBudgets(
                SourceLimits(
                    per_ip=s.net.max_tls_handshakes_per_source,
                    per_ipv6_64=s.net.max_tls_handshakes_per_source,
                    rate=Rate(0, 1.0),  # the c2s gate and the HTTP guard count the rate
                    allowlist=tuple(s.net.source_allowlist),
                )
            ),
        )
        proxies = proxy_registry(s)
        for name, direct in (("c2s-starttls", False), ("c2s-direct-tls", True)):
            server = await start_c2s_listener(
                c2s,
                self._sockets[name],
                direct_tls=direct,
                handshakes=handshakes,
                proxies=proxies if direct else None,
            )
            self._servers.append(server)
        if "component" in self._sockets:
            self._servers.append(
                await start_component_listener(components, self._sockets["component"])
            )
        ws_stream = dataclasses.replace(stream_config, starttls_available=False)
        ws_ctx = WebSocketContext(
            c2s=C2SContext(hub, ws_stream, None, c2s.gate, c2s.limits), secure=s.net.http_tls
        )
        self._http_guard = http_guard = self._build_http_guard()
        self.metrics = HubMetrics(
            MetricSources(
                hub,
                storage,
                gate=gate,
                http_guard=http_guard,
                handshakes=handshakes,
                push=push,
                app_push=self.app_push,
                discovery=self.discovery,
                reports=reports,
                enlistment=enlistment,
                media_proxy=self.media_proxy,
                traffic=traffic,
                extra=[S2SCollector(self.s2s)] if self.s2s is not None else [],
            ),
            node=cluster.node_id if cluster.shared else None,
            others=self._other_nodes_metrics if cluster.shared else None,
        )
        console_limits = (
            ConsoleLimits(
                session_lifetime=s.console.session_lifetime,
                max_sessions=s.console.max_sessions,
                refresh=s.console.refresh,
                history=s.console.history,
                login_backoff=Backoff(
                    s.console.login_free_failures,
                    s.console.login_backoff,
                    s.console.login_backoff_cap,
                ),
            )
            if s.console.enabled
            else None
        )
        moderation = Moderation(
            storage.accounts,
            storage.policy,
            storage.enlistment,
            storage.moderation,
            operator,
            reports,
            clock,
        )
        admin_socket = self._sockets.get("admin")
        doors = OperatorDoors(
            registry,
            admin_token(s),
            moderation,
            console_limits,
            self.metrics,
            s.admin.metrics_public,
        )
        self.http_app = app = build_http_app(
            hub,
            ws_ctx,
            enlistment,
            signer,
            self.discovery,
            operator=doors if admin_socket is None else None,
            ready=self.not_ready,
            routers=[
                (media_router(media), {}),
                (
                    media_proxy_router(self.media_proxy, tokens, addressing.is_home, clock),
                    {},
                ),
            ],
        )
        for hook in self._http_hooks:
            hook(app)
        await self._start_http(app, http_socket, http_guard, handshakes, cert, key)
        if admin_socket is not None:
            operator_app = build_operator_app(doors, self.not_ready)
            await self._start_http(
                operator_app, admin_socket, self._build_http_guard(), handshakes, cert, key
            )
        loop = asyncio.get_running_loop()
        self._media_sweeper = loop.create_task(
            _periodically(
                s.media.cleanup_interval,
                lambda: media.collect_expired(self.clock()),
                "media clean-up failed",
                "expired media removed",
            )
        )
        # hourly: forget change-feed entries older than admin.change_feed_retention
        self._changes_sweeper = loop.create_task(
            _periodically(
                CHANGE_FEED_PRUNE_EVERY,
                lambda: storage.changes.prune(self.clock() - s.admin.change_feed_retention),
                "pruning the change feed failed",
            )
        )
        if s.archive.enabled:  # archived messages past their retention
            archive = hub.router.archive
            self._archive_sweeper = loop.create_task(
                _periodically(
                    s.archive.prune_interval,
                    lambda: archive.prune(self.clock()),
                    "pruning the message archives failed",
                    "archived messages past retention removed",
                )
            )
        self._sweeper = loop.create_task(self._sweep_idle(gate))
        for name, port in self.ports.items():
            log.info("listening", extra={"transport": name, "host": s.net.host, "port": port})
        self._ready = True

    def _spawn_on_hub(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        """Background work of services built before the hub (XEP-0357 pushes) joins the hub's
        task set: errors logged, awaited on shutdown."""
        assert self.hub is not None, "the hub is built before anything is routed"
        self.hub.ctx.spawn(coro, name)

    async def _metrics_for_node(self, body: Mapping[str, Any]) -> Mapping[str, Any] | None:
        """Another node's scrape asks for this node's metrics."""
        if self.metrics is None:
            return None
        return {"families": await self.metrics.snapshot()}

    async def _other_nodes_metrics(self) -> dict[str, list[dict[str, Any]]]:
        """The metrics of the other live nodes, asked at once; those that do not answer within
        ``cluster.metrics_wait`` are left out of this scrape."""
        cluster, calls = self.cluster, self.node_calls
        assert cluster is not None
        assert calls is not None
        wait = self.settings.cluster.metrics_wait
        others = sorted(n for n in await cluster.directory.live_nodes() if n != cluster.node_id)
        answers = await asyncio.gather(*(calls.call(node, "metrics", {}, wait) for node in others))
        return {
            node: list(answer["families"])
            for node, answer in zip(others, answers, strict=True)
            if answer is not None and isinstance(answer.get("families"), list)
        }

    def _media_store(self) -> MediaStore:
        s = self.settings
        assert self.storage is not None
        return MediaStore(
            self.storage.media,
            s.media_dir,
            shared=self.cluster is not None and self.cluster.shared,
            limits=MediaLimits(
                max_file_size=s.media.max_file_size,
                quota_bytes=s.media.quota_bytes,
                max_open_slots=s.media.max_open_slots,
                put_expiry=s.media.slot_expiry,
                retention=s.media.retention,
                upload_time_limit=s.media.upload_time_limit,
            ),
            types=ContentTypePolicy(
                allow=frozenset(s.media.allowed_types) if s.media.allowed_types else None,
                deny=ACTIVE_TYPES | frozenset(s.media.denied_types),
            ),
            clock=self.clock,
        )

    def _upload_base(self) -> str:
        """Where clients reach the HTTP port for XEP-0363 (tests bind port 0: bound first)."""
        s = self.settings
        host = s.net.host if s.net.host not in ("0.0.0.0", "::") else s.hub.services[0]  # noqa: S104
        scheme = "https" if s.net.http_tls else "http"
        if ":" in host:
            host = f"[{host}]"
        return s.media.public_url or f"{scheme}://{host}:{self.ports['http']}"

    async def _reload_operator_state(self) -> None:
        """Everything the change feed keeps current, read again (after a change that could not
        be applied): every provider's record, disabled accounts, users' block lists and
        settings."""
        assert self.registry is not None
        assert self.operator is not None
        for provider in await self.registry.all():
            self.registry.forget(provider.id)
            self.operator.provider_changed(provider)
        assert self.storage is not None
        self.operator.disabled_accounts(await self.storage.moderation.disabled_accounts())
        assert self.hub is not None
        await self.hub.router.policy.load()

    async def _apply_change(self, kind: str, subject: str) -> None:
        """An operator change from the change feed (possibly one this process made itself:
        applying it again changes nothing)."""
        assert self.registry is not None
        assert self.operator is not None
        assert self.hub is not None
        if kind == "provider":
            self.registry.forget(subject)
            try:
                self.operator.provider_changed(await self.registry.get(subject))
            except ProviderNotFound:
                self.operator.provider_removed(subject)
        elif kind == "account-removed":
            jid = JID.parse(subject)
            self.hub.router.policy.forget(jid)
            self.hub.router.policy.blocks.forget(jid)  # its list was deleted with it
            self.hub.end_account_sessions(jid, "the account was removed")
            self.hub.router.groups.forget_account(jid)  # its affiliations went with it
            self.hub.router.archive.forget_account(jid)  # its preferences went with it
            if self.adhoc is not None:
                self.adhoc.sessions.forget_account(jid)  # its half-done commands go too
        elif kind in ("account-disabled", "account-enabled"):
            self.operator.account_disabled(subject, kind == "account-disabled")
        elif kind == "settings":  # a user's interop settings, changed by another process
            self.hub.router.policy.forget(JID.parse(subject))
        elif kind == "blocklist":  # a user's block list, changed by another process
            await self.hub.router.policy.blocks.reload(JID.parse(subject))
        else:
            log.warning("unknown operator change", extra={"change": kind})

    def _announce_change(self, provider: Provider) -> None:
        """Tell the other nodes of a cluster that operator state changed (committed and in the
        change feed already), so they read the feed now rather than at their next poll."""
        if self.cluster is not None and self.cluster.shared:
            task = asyncio.get_running_loop().create_task(
                self.cluster.invalidation.publish("provider"), name="cluster-notice"
            )
            self._notices.add(task)
            task.add_done_callback(self._notices.discard)

    def _bound_in_cluster(self, full_jid: str) -> None:
        """A session's entry as available is in the cluster's directory: deliver what other
        nodes stored for the account before they could see it there."""
        if self.hub is not None:
            bare = JID.parse(full_jid).bare
            if self.hub.ctx.sessions.message_targets(bare):
                self.hub.router.offline.start_drain(bare)

    async def not_ready(self) -> str | None:
        """``None`` when the hub serves; else the reason (``/readyz``)."""
        if not self._ready or self.storage is None:
            return "starting or shutting down"
        try:
            await self.storage.ping()
        except Exception as exc:
            return f"the database does not answer: {exc}"
        if self.cluster is not None:
            try:
                await self.cluster.ping()
            except Exception as exc:
                return f"the cluster's Redis does not answer: {exc}"
        return None

    async def _enlisted_account(self, jid: str) -> Enlisted | None:
        """An enlisted account's provider and identity key (federation: only enlisted
        federated users reach anyone, and only with the bundle of the key they enlisted)."""
        assert self.storage is not None
        account = await self.storage.enlistment.account(jid)
        return None if account is None else Enlisted(account.provider_id, account.identity_key)

    async def _user_id(self, jid: str) -> str | None:
        """The user-visible id a provider attested for one of its users (the interop marker)."""
        assert self.storage is not None
        account = await self.storage.enlistment.account(jid)
        return None if account is None else account.user_id

    def _bind_listeners(self) -> None:
        """Bind every port now: a taken one is a clear error naming it, before anything runs
        (the HTTP port's number also goes into upload URLs)."""
        s = self.settings
        try:
            for name, key in LISTENERS + ((("s2s", "s2s_port"),) if s.s2s.enabled else ()):
                sock = bind_port(
                    s.net.host,
                    getattr(s.net, key),
                    f"{name} (net.{key})",
                    reuse_port=s.net.reuse_port,
                )
                self._sockets[name] = sock
                self.ports[name] = sock.getsockname()[1]
            if s.components.secrets:  # XEP-0114: only when a component is configured
                sock = bind_port(
                    s.net.component_host,
                    s.net.component_port,
                    "components (net.component_port)",
                    reuse_port=s.net.reuse_port,  # serve --workers: every worker listens
                )
                self._sockets["component"] = sock
                self.ports["component"] = sock.getsockname()[1]
            if s.net.admin_port is not None:  # the operator's doors on their own listener
                sock = bind_port(
                    s.net.admin_host,
                    s.net.admin_port,
                    "the admin API, console and metrics (net.admin_port)",
                    reuse_port=s.net.reuse_port,
                )
                self._sockets["admin"] = sock
                self.ports["admin"] = sock.getsockname()[1]
        except BaseException:
            self._close_sockets()
            raise

    def _close_sockets(self) -> None:
        for sock in self._sockets.values():
            sock.close()

    def _build_http_guard(self) -> HttpGuard:
        """The HTTP port's budgets and its first request's timer."""
        n = self.settings.net
        per_source = n.http_max_connections_per_source
        return HttpGuard(
            HttpGuardLimits(
                max_connections=n.http_max_connections, request_timeout=n.http_request_timeout
            ),
            SourceBudgets(
                SourceLimits(
                    per_ip=per_source,
                    per_ipv6_64=per_source,
                    rate=Rate(0, 1.0),  # connections are reused: their number is what counts
                    allowlist=tuple(n.source_allowlist),
                )
            ),
        )

    async def _start_http(
        self,
        app: object,
        sock: socket.socket,
        guard: HttpGuard,
        handshakes: HandshakeGate,
        cert: Path,
        key: Path,
    ) -> None:
        s = self.settings
        config = uvicorn.Config(
            app,  # type: ignore[arg-type]
            lifespan="off",
            log_config=None,
            access_log=False,
            ws_max_size=s.limits.max_stanza_bytes + 4096,
            timeout_keep_alive=s.net.http_keep_alive_timeout,
            backlog=1024,
            ssl_certfile=str(cert) if s.net.http_tls else None,
            ssl_keyfile=str(key) if s.net.http_tls else None,
        )
        config.load()
        if config.ssl is not None:
            config.ssl.minimum_version = ssl.TLSVersion.TLSv1_2
        # The budgets and the first request's timeout are the guard's. (The attribute is typed
        # as a class; uvicorn only ever calls it, with keyword arguments.)
        config.http_protocol_class = guard.protocol_factory(config.http_protocol_class)  # type: ignore[assignment]
        server = EmbeddedUvicorn(
            config,
            tls_handshake_timeout=s.net.tls_handshake_timeout,
            tls_shutdown_timeout=s.net.tls_shutdown_timeout,
            handshakes=handshakes,
        )
        task = asyncio.get_running_loop().create_task(server.serve([sock]))
        self._https.append((server, task))
        while not server.started:
            if task.done():
                task.result()
                raise ConfigError("the HTTP server stopped during start-up")
            await asyncio.sleep(0.01)

    async def _sweep_idle(self, gate: ConnectionGate) -> None:
        idle_for = self.settings.net.hibernate_after
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(idle_for / 2)
            gate.hibernate_idle(loop.time(), idle_for)

    async def stop(self) -> None:
        """Graceful shutdown: stop accepting, end streams with <system-shutdown/>, finish
        writes, close storage."""
        self._ready = False
        if self._follower is not None:
            await self._follower.stop()
        sweepers = (
            self._sweeper,
            self._media_sweeper,
            self._changes_sweeper,
            self._archive_sweeper,
        )
        await cancel_and_wait(task for task in sweepers if task is not None)
        for server in self._servers:
            server.close()
        if self.s2s is not None:
            await self.s2s.close()
        for http, _task in self._https:
            http.should_exit = True
        if self.hub is not None:
            await self.hub.shutdown()
        if self._gate is not None:  # streams that never bound a resource
            self._gate.shutdown(
                StreamError(StreamErrorCondition.SYSTEM_SHUTDOWN, "the server is shutting down")
            )
        if self.components is not None:
            self.components.shutdown()
        for server in self._servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), timeout=5)
        for _http, task in self._https:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, timeout=5)
        if self.hub is not None:
            await self.hub.ctx.drain_tasks()
        if self._directory_sync is not None:
            await self._directory_sync.close()  # the ended sessions leave the directory
        if self.cluster is not None:
            # the lease goes: what is still routed here is reclaimed by another node at once
            await self.cluster.close()
        if self.push is not None:
            await self.push.close()
        if self.app_push is not None:
            await self.app_push.close()
        if self.reports is not None:
            await self.reports.close()
        if self._http_client is not None:
            await self._http_client.aclose()
        if self.storage is not None:
            await self.storage.close()
        self._close_sockets()
        log.info("stopped")

    async def run(self) -> None:
        """Start, serve until SIGTERM or SIGINT, stop gracefully."""
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        try:
            try:
                await self.start()
            except BaseException:
                # Whatever was built is taken down again, so the process exits (a storage
                # thread left running kept it alive, deaf to signals, after a taken port).
                await self.stop()
                raise
            log.info(
                "hub started",
                extra={"domains": list(self.settings.hub.services), "ports": self.ports},
            )
            await stop.wait()
            log.info("shutting down")
            await self.stop()
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
