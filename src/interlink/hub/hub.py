"""The hub facade the transport shells talk to: authentication lookups, binding, routing."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from interlink.errors import (
    AuthenticationRefused,
    StanzaError,
    StanzaErrorCondition,
    StreamError,
    StreamErrorCondition,
)
from interlink.hub.context import HubContext, HubSettings
from interlink.hub.router import Pending, Router
from interlink.hub.session import BindConflictPolicy, Session, SessionPort
from interlink.storage import Storage
from interlink.xmpp.jid import JID, InvalidJID
from interlink.xmpp.sasl import StoredCredentials
from interlink.xmpp.stanza import Stanza

log = logging.getLogger("interlink.hub")


class Hub:
    def __init__(self, settings: HubSettings, storage: Storage, clock: Callable[[], float]) -> None:
        self.ctx = HubContext(settings, storage, clock)
        self.router = Router(self.ctx)
        # OAUTHBEARER: token -> account JID; set by the composition root (interop control plane).
        self.bearer_verifier: Callable[[str], Awaitable[str]] | None = None

    @property
    def sessions(self) -> int:
        return len(self.ctx.sessions)

    async def verify_bearer(self, token: str) -> str:
        """The account a bearer token authenticates; raises ``AuthenticationRefused``."""
        if self.bearer_verifier is None:
            raise AuthenticationRefused("bearer tokens are not accepted here")
        return await self.bearer_verifier(token)

    def account_jid(self, username: str) -> JID | None:
        """The bare JID a SASL username names on this hub (its domain or an interop subdomain),
        or ``None`` if it names none."""
        if "@" in username:
            try:
                jid = JID.parse(username)
            except InvalidJID:
                return None
            return jid if jid.resource is None and self.ctx.is_local(jid) else None
        try:
            return JID.make(username, self.ctx.domain.domain)
        except InvalidJID:
            return None

    async def credentials(self, username: str) -> StoredCredentials | None:
        jid = self.account_jid(username)
        if jid is None:
            return None
        return await self.ctx.storage.accounts.get_credentials(str(jid))

    def bind(self, port: SessionPort, username: str, resource: str | None) -> Session:
        """Bind a resource for an authenticated ``username`` (RFC 6120 §7).

        Raises :class:`StanzaError` (``bad-request`` for an invalid resource, ``conflict`` when
        the policy refuses a resource in use)."""
        bare = self.account_jid(username)
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

    def session_ended(self, session: Session) -> Pending | None:
        """Remove ``session`` now; returns the unavailable broadcast to await, if any."""
        return self.router.session_ended(session)

    def end_provider_sessions(self, provider_id: str) -> None:
        """End the sessions of a suspended provider's users (their JIDs live under
        ``<provider>.interop.<hub domain>``)."""
        self.ctx.approved_providers.pop(provider_id, None)
        domain = f"{provider_id}.interop.{self.ctx.domain.domain}"
        error = StreamError(
            StreamErrorCondition.POLICY_VIOLATION, f"the provider '{provider_id}' was suspended"
        )
        for session in self.ctx.sessions.all_sessions():
            if session.jid.domain == domain:
                session.port.terminate(error)
        log.info("provider sessions ended", extra={"provider": provider_id})

    def provider_approved(self, provider_id: str, display_name: str) -> None:
        """An approved provider's users may be reached (again)."""
        self.ctx.approved_providers[provider_id] = display_name

    async def start(self) -> None:
        """Load what the routing path keeps in memory (block lists)."""
        await self.router.policy.load()

    async def shutdown(self) -> None:
        """End every session with ``<system-shutdown/>`` and finish background work."""
        error = StreamError(StreamErrorCondition.SYSTEM_SHUTDOWN, "the server is shutting down")
        for session in self.ctx.sessions.all_sessions():
            session.port.terminate(error)
        await self.ctx.drain_tasks()
