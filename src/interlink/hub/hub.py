"""The hub facade the transport shells talk to: authentication lookups, binding, routing."""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable, Mapping

from interlink.cluster import Cluster
from interlink.errors import (
    AuthenticationRefused,
    StanzaError,
    StanzaErrorCondition,
    StreamError,
    StreamErrorCondition,
)
from interlink.hub.addressing import Addressing
from interlink.hub.auth_throttle import AuthAttempt, AuthThrottle, AuthThrottled
from interlink.hub.cluster import ClusterNode, Handler
from interlink.hub.context import HubContext, HubSettings
from interlink.hub.federation import (
    AliasCipher,
    Enlisted,
    EnlistedAccount,
    Federation,
    FederationPort,
    NoLinks,
)
from interlink.hub.observers import HubObservers
from interlink.hub.router import DomainServices, Pending, Router
from interlink.hub.session import BindConflictPolicy, Session, SessionPort, SessionRegistry
from interlink.hub.sm import Parked, ParkedPort, ResumptionRegistry
from interlink.storage import Storage
from interlink.storage.offline import SentMark
from interlink.xmpp.jid import JID, InvalidJID
from interlink.xmpp.sasl import StoredCredentials
from interlink.xmpp.stanza import Stanza
from interlink.xmpp.stream.sm import StreamManagement

log = logging.getLogger("interlink.hub")


async def _nobody_enlisted(jid: str) -> Enlisted | None:
    return None  # without an enlistment store, no federated user reaches anyone


# (token, the stream's service) -> account JID; raises AuthenticationRefused
BearerVerifier = Callable[[str, str | None], Awaitable[str]]
UserIds = Callable[[str], Awaitable[str | None]]  # third-party JID -> provider-attested user id


class Hub:
    """Everything behind the transports, built once from its collaborators.

    ``sessions`` is the registry of bound resources (shared with the operator state, which ends
    a suspended provider's sessions).
    ``authenticate_bearer`` checks SASL OAUTHBEARER tokens (the interop control plane); it is a
    required gate. ``user_ids`` gives the user-visible id a provider attested for one of its
    users (for the interop marker). ``disabled`` says whether an operator disabled an account
    (it may not log in). ``federation_port`` is the s2s transport (none: nothing federates;
    a :class:`~interlink.hub.federation.LinksPort` when the transport is built after the hub).
    ``domain_services`` are what the service domains answer
    besides the core (XEP-0363 upload, media tokens). ``cluster`` is the other hub processes
    (by default none: this one alone); ``heartbeat_every`` how often this node renews its lease
    there; ``cluster_handlers`` take the other nodes' requests of the services outside the hub
    (by kind, e.g. ``component``)."""

    def __init__(
        self,
        settings: HubSettings,
        storage: Storage,
        clock: Callable[[], float],
        *,
        addressing: Addressing,
        sessions: SessionRegistry,
        authenticate_bearer: BearerVerifier,
        user_ids: UserIds,
        observers: HubObservers | None = None,
        domain_services: DomainServices | None = None,
        disabled: Callable[[str], bool] = lambda _jid: False,
        aliases: AliasCipher | None = None,
        enlisted_account: EnlistedAccount | None = None,
        federation_port: FederationPort | None = None,
        cluster: Cluster | None = None,
        heartbeat_every: float = 3.0,
        cluster_handlers: Mapping[str, Handler] | None = None,
    ) -> None:
        self.ctx = HubContext(
            settings, storage, clock, addressing, sessions, observers or HubObservers(), cluster
        )
        alias_cipher = aliases if aliases is not None else AliasCipher(secrets.token_bytes(64))
        enlisted = enlisted_account if enlisted_account is not None else _nobody_enlisted
        self.router = Router(
            self.ctx,
            user_ids=user_ids,
            domain_services=domain_services or DomainServices(),
            federation=lambda ctx, rooms: Federation(
                ctx,
                alias_cipher,
                enlisted,
                federation_port if federation_port is not None else NoLinks(),
                cache_seconds=settings.policy.cache_seconds,
                disabled=disabled,
                rooms=rooms,
            ),
        )
        self.federation = self.router.federation
        self.node: ClusterNode | None = None
        if self.ctx.cluster.shared:
            self.node = ClusterNode(
                self.ctx,
                self.ctx.cluster,
                self.router.offline,
                heartbeat_every=heartbeat_every,
                carbons=self.router.carbons,
                handlers={
                    **(cluster_handlers or {}),
                    "probe": self.router.presence.probed,
                    "room": self.router.groups.from_node,
                },
                on_nodes=self.router.groups.nodes_changed,
            )
        self._authenticate_bearer = authenticate_bearer
        self._disabled = disabled
        self.auth_throttle = AuthThrottle(settings.auth_throttle)
        self.resumable = ResumptionRegistry()
        # resumption id -> (account, park now): streams still connected, for a client that
        # comes back before the hub noticed its old connection died (XEP-0198 §5)
        self._resumable_live: dict[str, tuple[JID, Callable[[], None]]] = {}

    async def route_federated(self, provider_id: str, stanza: Stanza) -> None:
        """A stanza from ``provider_id``'s server, over s2s (:mod:`interlink.hub.federation`)."""
        await self.federation.receive(provider_id, stanza, self.route)

    @property
    def sessions(self) -> int:
        return len(self.ctx.sessions)

    def begin_login(
        self,
        address: str,
        username: str | None,
        host: str | None = None,
        *,
        claimed: bool = False,
    ) -> AuthAttempt | AuthThrottled:
        """Ask the throttle whether a SASL attempt from ``address`` (the peer's IP) on
        ``username`` (``None``: a bearer token, counted per source only) may go ahead. Whether
        the account exists is not looked at: the answer is the same for any name. ``claimed``:
        the address was carried by a provider proxy, not seen, so it earns no trusted pair."""
        throttle = self.auth_throttle
        source = throttle.source_key(address)
        account: str | None = None
        if username is not None:
            jid = self.account_jid(username, host)
            account = str(jid) if jid is not None else f"?{username.lower()}"
        verdict = throttle.begin(self.ctx.clock(), source, account, may_trust=not claimed)
        if isinstance(verdict, AuthThrottled):
            log.debug(
                "authentication throttled",
                extra={"source": source, "user": account, "retry_after": verdict.retry_after},
            )
        return verdict

    def login_succeeded(self, attempt: AuthAttempt) -> None:
        self.auth_throttle.succeeded(attempt, self.ctx.clock())

    def login_failed(self, attempt: AuthAttempt, condition: str) -> None:
        """Count and log a failed attempt."""
        self.auth_throttle.failed(attempt, self.ctx.clock())
        backing_off = attempt.pair_failures >= self.auth_throttle.limits.pair.free
        (log.warning if backing_off else log.info)(
            "authentication failed",
            extra={
                "source": attempt.source,
                "user": attempt.account,
                "condition": condition,
                "failures": attempt.pair_failures,
                "backing_off": backing_off,
            },
        )

    async def verify_bearer(self, token: str, host: str | None = None) -> str:
        """The account a bearer token authenticates on a stream opened to ``host`` (a token for
        another service than the host's is refused); raises ``AuthenticationRefused``."""
        domain = host if host is not None else self.ctx.addressing.default
        jid = await self._authenticate_bearer(
            token, self.ctx.addressing.locate_domain(domain).service
        )
        if self._disabled(jid):
            raise AuthenticationRefused("this account is disabled by the operator")
        return jid

    def account_jid(self, username: str, host: str | None = None) -> JID | None:
        """The bare JID a SASL username names on this hub, or ``None`` if it names none: a
        local part on ``host`` (the domain the stream was opened to; the default service when
        not given), or a full address of the same service as ``host``."""
        addressing = self.ctx.addressing
        domain = host if host is not None else addressing.default
        try:
            if "@" not in username:
                return JID.make(username, domain)
            jid = JID.parse(username)
        except InvalidJID:
            return None
        if jid.resource is not None or not addressing.is_local(jid):
            return None
        if addressing.service_of(jid) != addressing.locate_domain(domain).service:
            return None  # an account of another service than the stream's
        return jid

    async def credentials(self, username: str, host: str | None = None) -> StoredCredentials | None:
        jid = self.account_jid(username, host)
        if jid is None or self._disabled(str(jid)):
            return None  # a disabled account fails as a wrong password does
        return await self.ctx.storage.accounts.get_credentials(str(jid))

    def bind(
        self, port: SessionPort, username: str, resource: str | None, host: str | None = None
    ) -> Session:
        """Bind a resource for an authenticated ``username`` (RFC 6120 §7).

        Raises :class:`StanzaError` (``bad-request`` for an invalid resource, ``conflict`` when
        the policy refuses a resource in use, ``resource-constraint`` when the account has
        ``max_sessions_per_account`` resources bound already, RFC 6120 §7.6.2.1)."""
        bare = self.account_jid(username, host)
        if bare is None:
            raise StanzaError(StanzaErrorCondition.NOT_AUTHORIZED)
        registry = self.ctx.sessions
        if resource is None:
            resource = registry.free_resource(bare)
        try:
            full = bare.with_resource(resource)
        except InvalidJID as exc:
            raise StanzaError(
                StanzaErrorCondition.BAD_REQUEST, f"invalid resource: {exc}"
            ) from None
        existing = registry.get(full)
        replaces = existing is not None and (
            self.ctx.settings.bind_conflict is BindConflictPolicy.REPLACE
        )
        cap = self.ctx.settings.max_sessions_per_account
        if not replaces and registry.count(bare) >= cap:
            log.info("bind refused: session cap", extra={"jid": str(bare), "sessions": cap})
            raise StanzaError(
                StanzaErrorCondition.RESOURCE_CONSTRAINT,
                f"this account has the most sessions allowed at once ({cap})",
            )
        if existing is not None:
            policy = self.ctx.settings.bind_conflict
            if policy is BindConflictPolicy.REFUSE:
                raise StanzaError(StanzaErrorCondition.CONFLICT, "resource already in use")
            if policy is BindConflictPolicy.REPLACE:
                registry.remove(existing)
                existing.port.terminate(
                    StreamError(
                        StreamErrorCondition.CONFLICT, "replaced by a new session for this resource"
                    )
                )
                self.router.presence.leave_later(existing)
            else:
                full = bare.with_resource(registry.free_resource(bare, resource))
        session = Session(full, port)
        registry.add(session)
        log.info("session bound", extra={"jid": str(full)})
        return session

    def route(self, session: Session, stanza: Stanza) -> Pending | None:
        return self.router.route(session, stanza)

    def session_ended(
        self,
        session: Session,
        take_unacked: Callable[[], list[tuple[str, SentMark | None]]] | None = None,
    ) -> Pending | None:
        """Remove ``session`` now; returns the unavailable broadcast to await, if any.

        With stream management (``take_unacked`` gives the stanzas the client did not
        acknowledge), the session leaves under its account's offline lock instead, and the
        unacknowledged messages are stored before anything newer for the account: the returned
        coroutine does both."""
        if take_unacked is None:
            return self.router.session_ended(session)
        return self.router.offline.take_back(
            session, lambda: self.router.session_ended(session), take_unacked
        )

    # -- XEP-0198 resumption -------------------------------------------------------------------
    def park(self, session: Session, state: StreamManagement) -> bool:
        """Keep ``session`` for ``hub.sm_resume_window`` seconds after its connection was lost,
        to be resumed (XEP-0198 §5); ``False`` if it cannot be (no resumption id, no window)."""
        window = self.ctx.settings.sm_resume_window
        resume_id = state.resume_id
        if resume_id is None or window <= 0:
            return False
        session.port = ParkedPort(state, lambda: self._expire(resume_id))
        session.acks = None
        self.resumable.park(resume_id, Parked(session, state, self.ctx.clock() + window))
        asyncio.get_running_loop().call_later(window, self._expire_due)
        log.info("session waits to be resumed", extra={"jid": str(session.jid)})
        return True

    def resume(self, username: str, host: str, resume_id: str) -> Parked | None:
        """The session ``username`` parked under ``resume_id``, taken off the registry (the
        caller gives it its new port), or ``None``. A session of the account whose old stream
        is still connected is parked first (that stream is closed)."""
        bare = self.account_jid(username, host)
        if bare is None:
            return None
        live = self._resumable_live.get(resume_id)
        if live is not None and live[0] == bare:
            live[1]()
        return self.resumable.take(resume_id, bare, self.ctx.clock())

    def resumable_stream(self, resume_id: str, account: JID, park_now: Callable[[], None]) -> None:
        """A connected stream whose session may be resumed under ``resume_id``; ``park_now``
        closes it and parks the session."""
        self._resumable_live[resume_id] = (account, park_now)

    def stream_gone(self, resume_id: str) -> None:
        self._resumable_live.pop(resume_id, None)

    def _expire_due(self) -> None:
        for parked in self.resumable.expired(self.ctx.clock()):
            self._end_parked(parked)

    def _expire(self, resume_id: str) -> None:
        parked = self.resumable.pop(resume_id)
        if parked is not None:
            self._end_parked(parked)

    def _end_parked(self, parked: Parked) -> None:
        """Not resumed: the session ends now (unavailable), what the client did not acknowledge
        goes to offline storage first."""
        session, state = parked.session, parked.state
        resume_id = state.resume_id
        assert resume_id is not None

        def take_unacked() -> list[tuple[str, SentMark | None]]:
            return [(u.xml, SentMark(resume_id, u.seq)) for u in state.unacked() if not u.stored]

        pending = self.session_ended(session, take_unacked)
        if pending is not None:
            self.ctx.spawn(pending, name=f"expire {session.jid}")

    async def settle_received(self, username: str, host: str, stream: str, h: int) -> None:
        """XEP-0198: the client ``username`` has the first ``h`` stanzas of its earlier stream
        ``stream`` (its ``<resume previd h/>``, answered ``<failed/>``): what was stored for them
        is not sent again."""
        bare = self.account_jid(username, host)
        if bare is not None:
            await self.router.offline.settle_received(bare, stream, h)

    def end_account_sessions(self, jid: JID, reason: str) -> int:
        """End every session of the account ``jid`` (e.g. it was removed)."""
        bare = jid.bare
        ended = self.ctx.sessions.terminate(
            lambda full: full.bare == bare, StreamError(StreamErrorCondition.NOT_AUTHORIZED, reason)
        )
        log.info("account sessions ended", extra={"jid": str(bare), "sessions": ended})
        return ended

    async def start(self) -> None:
        """Load what the routing path keeps in memory (block lists); in a cluster, start
        taking this node's inbox and watching the other nodes."""
        await self.router.policy.load()
        if self.node is not None:
            await self.node.read_nodes()
            self.node.start()

    async def shutdown(self) -> None:
        """End every session with ``<system-shutdown/>`` and finish background work."""
        error = StreamError(StreamErrorCondition.SYSTEM_SHUTDOWN, "the server is shutting down")
        for session in self.ctx.sessions.all_sessions():
            session.port.terminate(error)
        await self.ctx.drain_tasks()
        await self.ctx.fanout.close()
        await self.router.groups.close()
        if self.node is not None:
            await self.node.stop()
