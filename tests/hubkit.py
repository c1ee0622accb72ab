"""Service-test kit: a Hub on in-memory SQLite with fake connections that record what they get."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from xml.etree.ElementTree import Element

from interlink.cluster.local import LocalBackplane, LocalCluster
from interlink.errors import AuthenticationRefused, StreamError
from interlink.hub.addressing import Addressing, ProviderDirectory
from interlink.hub.context import HubSettings
from interlink.hub.federation import EnlistedAccount, FederationPort
from interlink.hub.hub import Hub, UserIds
from interlink.hub.nodes import DirectorySync
from interlink.hub.observers import HubObservers
from interlink.hub.router import DomainServices
from interlink.hub.session import Session, SessionRegistry
from interlink.interop.operator import OperatorState
from interlink.storage import Storage
from interlink.storage.providers import Provider, ProviderStatus
from interlink.storage.sqlite import open_sqlite
from interlink.xmpp.parser import ElementReceived, Framing, StreamParser
from interlink.xmpp.sasl import derive_credentials
from interlink.xmpp.stanza import Stanza, parse_stanza

DOMAIN = "hub.test"
CREDS = derive_credentials("pw", 4096)


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass
class FakePort:
    """A SessionPort that parses everything written to it back into elements."""

    received: list[Element] = field(default_factory=list)
    terminated: StreamError | None = None
    closed: bool = False

    def __post_init__(self) -> None:
        self._parser = StreamParser(framing=Framing.WEBSOCKET)

    def write_xml(self, xml: str) -> None:
        for ev in self._parser.feed_frame(xml.encode()):
            assert isinstance(ev, ElementReceived), ev
            self.received.append(ev.element)

    async def wait_writable(self) -> None:
        return None

    def terminate(self, error: StreamError | None) -> None:
        self.closed = True
        self.terminated = error

    def take(self) -> list[Element]:
        out, self.received = self.received, []
        return out

    def stanzas(self) -> list[Stanza]:
        return [parse_stanza(el) for el in self.take()]


class Client:
    """One bound resource talking to the hub directly."""

    def __init__(self, hub: Hub, session: Session, port: FakePort) -> None:
        self.hub = hub
        self.session = session
        self.port = port

    @property
    def jid(self) -> str:
        return str(self.session.jid)

    async def send(self, xml: str) -> None:
        """Parse ``xml`` as this client's stanza, stamp ``from`` and route it like the driver."""
        from dataclasses import replace

        parser = StreamParser(framing=Framing.WEBSOCKET)
        (ev,) = parser.feed_frame(xml.encode())
        assert isinstance(ev, ElementReceived)
        stanza = replace(parse_stanza(ev.element), from_=self.session.jid)
        pending = self.hub.route(self.session, stanza)
        if pending is not None:
            await pending
        await settle()
        await self.hub.ctx.drain_tasks()

    def take(self) -> list[Element]:
        return self.port.take()

    def stanzas(self) -> list[Stanza]:
        return self.port.stanzas()


async def settle() -> None:
    """Let background work (offline drains, broadcasts) run to completion."""
    for _ in range(20):
        await asyncio.sleep(0)


async def no_bearer_tokens(token: str, service: str | None) -> str:
    raise AuthenticationRefused("bearer tokens are not accepted here")


async def no_user_ids(jid: str) -> str | None:
    return None


# (storage, sessions, addressing, clock) -> what the service domains answer besides the core
DomainServicesFactory = Callable[[Storage, SessionRegistry, Addressing, Clock], DomainServices]


@asynccontextmanager
async def running_hub(
    settings: HubSettings | None = None,
    *,
    services: tuple[str, ...] = (DOMAIN,),
    user_ids: UserIds = no_user_ids,
    domain_services: DomainServicesFactory | None = None,
    enlisted_account: EnlistedAccount | None = None,
    observers: HubObservers | None = None,
    federation_port: FederationPort | None = None,
) -> AsyncIterator[HubKit]:
    storage = await open_sqlite(":memory:")
    clock = Clock()
    addressing = Addressing(services, ProviderDirectory())
    sessions = SessionRegistry()
    operator = OperatorState(addressing, sessions)
    hub = Hub(
        settings or HubSettings(),
        storage,
        clock,
        addressing=addressing,
        sessions=sessions,
        authenticate_bearer=no_bearer_tokens,
        user_ids=user_ids,
        observers=observers,
        domain_services=(
            None
            if domain_services is None
            else domain_services(storage, sessions, addressing, clock)
        ),
        enlisted_account=enlisted_account,
        federation_port=federation_port,
        disabled=operator.is_disabled,
    )
    kit = HubKit(hub, clock, operator)
    try:
        yield kit
    finally:
        await hub.shutdown()
        await storage.close()


class HubKit:
    def __init__(self, hub: Hub, clock: Clock, operator: OperatorState) -> None:
        self.hub = hub
        self.clock = clock
        self.operator = operator

    def _provider(
        self, provider_id: str, name: str, status: ProviderStatus, *services: str
    ) -> None:
        self.operator.provider_changed(
            Provider(
                provider_id,
                name,
                "https://provider.example",
                status=status,
                jwks_url="https://provider.example/jwks",
                services=services or (DOMAIN,),
            )
        )

    def approve(self, provider_id: str, name: str, *services: str) -> None:
        """A provider approved by the operator (for ``services``; the default one if none)."""
        self._provider(provider_id, name, ProviderStatus.APPROVED, *services)

    def suspend(self, provider_id: str) -> None:
        """A provider suspended by the operator: its users' sessions end."""
        self._provider(provider_id, provider_id, ProviderStatus.SUSPENDED)

    async def account(self, local: str) -> str:
        jid = f"{local}@{DOMAIN}"
        await self.hub.ctx.storage.accounts.create(jid, CREDS, self.clock())
        return jid

    async def connect(
        self, local: str, resource: str | None = None, *, available: bool = True, priority: int = 0
    ) -> Client:
        port = FakePort()
        host = local.partition("@")[2] or None  # the domain the client's stream names
        session = self.hub.bind(port, local, resource, host)
        client = Client(self.hub, session, port)
        if available:
            await client.send(
                f"<presence xmlns='jabber:client'><priority>{priority}</priority></presence>"
            )
        return client

    async def disconnect(self, client: Client) -> None:
        pending = self.hub.session_ended(client.session)
        if pending is not None:
            await pending
        await settle()


class ClusterKit:
    """Hubs that are nodes of one in-process cluster (a :class:`LocalBackplane`) over one
    storage: a session directory, inboxes and the nodes' loops, as with Redis."""

    def __init__(self, kits: list[HubKit], syncs: list[DirectorySync]) -> None:
        self.kits = kits
        self._syncs = syncs

    async def settle(self) -> None:
        """Until every directory write, background task and inbox entry is handled."""
        for _ in range(10):
            for sync in self._syncs:
                await sync.flush()
            for kit in self.kits:
                await kit.hub.ctx.drain_tasks()
                await kit.hub.router.groups.flush()
                await kit.hub.ctx.fanout.flush()
            await asyncio.sleep(0.005)
            await settle()


@asynccontextmanager
async def running_cluster(
    nodes: int = 2,
    *,
    enlisted_account: EnlistedAccount | None = None,
    federation_ports: Sequence[FederationPort] = (),
) -> AsyncIterator[ClusterKit]:
    """``federation_ports``: each node's s2s transport, in node order (none: nothing
    federates)."""
    storage = await open_sqlite(":memory:")
    clock = Clock()
    plane = LocalBackplane()
    kits: list[HubKit] = []
    syncs: list[DirectorySync] = []
    try:
        for n in range(nodes):
            cluster = LocalCluster(f"n{n}", plane)
            await cluster.directory.heartbeat()
            sync = DirectorySync(cluster.directory)
            addressing = Addressing((DOMAIN,), ProviderDirectory())
            sessions = SessionRegistry(sync)
            operator = OperatorState(addressing, sessions)
            hub = Hub(
                HubSettings(),
                storage,
                clock,
                addressing=addressing,
                sessions=sessions,
                authenticate_bearer=no_bearer_tokens,
                user_ids=no_user_ids,
                disabled=operator.is_disabled,
                enlisted_account=enlisted_account,
                federation_port=federation_ports[n] if federation_ports else None,
                cluster=cluster,
            )
            await hub.start()
            kits.append(HubKit(hub, clock, operator))
            syncs.append(sync)
        for kit in kits:  # every node knows every other
            assert kit.hub.node is not None
            await kit.hub.node.read_nodes()
        yield ClusterKit(kits, syncs)
    finally:
        for kit in kits:
            await kit.hub.shutdown()
        for sync in syncs:
            await sync.close()
        await storage.close()
