"""The one owner of the operator state a running hub keeps in memory.

Operator state — which providers are approved for which service — lives in the database; the
routing path needs it on every stanza that crosses the boundary, so the hub keeps a copy in a
:class:`~interlink.hub.addressing.ProviderDirectory`. Only :class:`OperatorState` writes that
copy, and it is told of every change in one of two ways:

* a change made through this process (the admin API, the registry) arrives at once through the
  registry's ``on_change`` listeners;
* a change made by another process (``interlink provider …`` on the same data directory, or
  another node of a cluster) arrives through the change feed (:class:`ChangeFeedFollower`, which
  polls the database's ``operator_changes`` log; a cluster swaps the poll for a broker's
  subscription, same seam).

When a provider loses its approval for a service, the sessions of its users there end at once.
Accounts an operator disabled are kept here too (the login gates ask
:meth:`OperatorState.is_disabled`); disabling or removing an account ends its sessions at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from typing import Protocol

from interlink.errors import StreamError, StreamErrorCondition
from interlink.hub.addressing import Addressing, ProviderAccess
from interlink.hub.session import SessionRegistry
from interlink.later import Later
from interlink.storage.providers import Provider, ProviderStatus
from interlink.tasks import cancel_and_wait
from interlink.xmpp.jid import JID

log = logging.getLogger("interlink.operator")


def access_of(provider: Provider) -> ProviderAccess:
    """What the routing path may know of ``provider``: reachable on its services if approved."""
    services = (
        frozenset(provider.services) if provider.status is ProviderStatus.APPROVED else frozenset()
    )
    return ProviderAccess(
        provider.id,
        provider.display_name,
        services,
        server_domains=frozenset(provider.server_domains),
        federates=provider.mode.federates,
        plugs_in=provider.mode.plugs_in,
    )


class FederationLinks(Protocol):
    """The s2s shell as operator state sees it: the links of one provider's servers."""

    def provider_changed(self, provider: Provider) -> None:
        """``provider``'s current record (its certificate pins, CA and s2s address)."""

    def provider_removed(self, provider_id: str) -> None: ...

    def close_provider(self, provider_id: str, reason: str) -> int:
        """Close every s2s stream of ``provider_id`` at once; returns how many."""
        ...


class PendingLinks(Later[FederationLinks]):
    """The s2s links for an operator state built before them (:mod:`interlink.later`: the
    hub's gates ask operator state, the transport routes through the hub, and operator state
    closes the transport's links). Until fulfilled there are no links: nothing to tell,
    nothing to close (the transport reads every provider record when operator state is
    loaded, after it exists)."""

    __slots__ = ()

    def __init__(self) -> None:
        super().__init__("the s2s links")

    def provider_changed(self, provider: Provider) -> None:
        if (links := self.it) is not None:
            links.provider_changed(provider)

    def provider_removed(self, provider_id: str) -> None:
        if (links := self.it) is not None:
            links.provider_removed(provider_id)

    def close_provider(self, provider_id: str, reason: str) -> int:
        links = self.it
        return 0 if links is None else links.close_provider(provider_id, reason)


class OperatorState:
    def __init__(
        self,
        addressing: Addressing,
        sessions: SessionRegistry,
        links: FederationLinks | None = None,
    ) -> None:
        """Writes ``addressing``'s provider directory; ends sessions in ``sessions`` and the
        s2s ``links`` of a provider that may no longer federate (none: no s2s; a
        :class:`PendingLinks` when the transport is built after operator state)."""
        self._addressing = addressing
        self._directory = addressing.providers
        self._services = frozenset(addressing.services)
        self._sessions = sessions
        self._known: dict[str, frozenset[str]] = {}
        self._status: dict[str, ProviderStatus] = {}
        self._disabled: set[str] = set()
        self._federating: set[str] = set()
        self._links = links

    def _end_links(self, provider_id: str, federates: bool) -> None:
        """A provider that may no longer federate loses its s2s streams at once."""
        if federates:
            self._federating.add(provider_id)
            return
        self._federating.discard(provider_id)
        if self._links is not None:
            closed = self._links.close_provider(
                provider_id, f"the provider '{provider_id}' is suspended or no longer federated"
            )
            log.info("provider s2s links closed", extra={"provider": provider_id, "links": closed})

    def _end_sessions(self, provider_id: str, service: str) -> int:
        """End the sessions of ``provider_id``'s users on ``service``."""
        locate = self._addressing.locate
        error = StreamError(
            StreamErrorCondition.POLICY_VIOLATION,
            f"the provider '{provider_id}' is suspended or no longer approved for {service}",
        )

        def theirs(jid: JID) -> bool:
            where = locate(jid)
            return where.provider_id == provider_id and where.service == service

        ended = self._sessions.terminate(theirs, error)
        log.info(
            "provider sessions ended",
            extra={"provider": provider_id, "service": service, "sessions": ended},
        )
        return ended

    async def load(self, providers: Sequence[Provider], disabled: Sequence[str] = ()) -> None:
        for provider in providers:
            self.provider_changed(provider, loading=True)
        self._disabled = set(disabled)

    def is_disabled(self, jid: str) -> bool:
        """Whether the account ``jid`` (bare) was disabled by an operator: it may not log in."""
        return jid in self._disabled

    def sessions_of(self, jid: str) -> list[str]:
        """The full JIDs of the account's bound sessions."""
        bare = JID.parse(jid).bare
        return sorted(str(s.jid) for s in self._sessions.sessions(bare))

    def all_sessions(self, limit: int) -> list[str]:
        """The full JIDs of bound sessions (at most ``limit``), in order."""
        return sorted(str(s.jid) for s in self._sessions.all_sessions())[:limit]

    def end_account_sessions(
        self,
        jid: str,
        reason: str,
        condition: StreamErrorCondition = StreamErrorCondition.NOT_AUTHORIZED,
    ) -> int:
        """End every session of the account ``jid``: its clients see ``condition`` and
        ``reason``. ``not-authorized`` (the account was disabled or removed) tells a client not
        to come back; :meth:`end_sessions_only` uses ``reset``, after which it may."""
        bare = JID.parse(jid).bare
        ended = self._sessions.terminate(
            lambda full: full.bare == bare, StreamError(condition, reason)
        )
        log.info("account sessions ended", extra={"jid": str(bare), "sessions": ended})
        return ended

    def end_sessions_only(self, jid: str, reason: str) -> int:
        """End the account's sessions and nothing more: it may log in again. The stream error
        is ``reset`` (RFC 6120 §4.9.3.16: the stream and its security context end and are to
        be negotiated afresh), which clients treat as "connect again" — not ``not-authorized``
        (§4.9.3.12), which the SDK, rightly, takes as final (the account is disabled or gone);
        nor ``policy-violation`` (§4.9.3.14), which blames the client for something it did."""
        return self.end_account_sessions(jid, reason, StreamErrorCondition.RESET)

    def account_disabled(self, jid: str, disabled: bool) -> None:
        """The account was disabled (its sessions end) or enabled again; logged once."""
        if disabled == (jid in self._disabled):
            return  # applied already (a change made here comes back through the change feed)
        if disabled:
            self._disabled.add(jid)
            log.info("account disabled", extra={"jid": jid})
            self.end_account_sessions(jid, "the account was disabled by the operator")
        else:
            self._disabled.discard(jid)
            log.info("account enabled", extra={"jid": jid})

    def disabled_accounts(self, jids: Sequence[str]) -> None:
        """The whole set of disabled accounts, read again: the differences are applied."""
        now = set(jids)
        for jid in sorted(now - self._disabled):
            self.account_disabled(jid, True)
        for jid in sorted(self._disabled - now):
            self.account_disabled(jid, False)

    def account_removed(self, jid: str) -> None:
        """The account was removed: its sessions end."""
        self._disabled.discard(jid)
        log.info("account removed", extra={"jid": jid})
        self.end_account_sessions(jid, "the account was removed")

    def provider_changed(self, provider: Provider, *, loading: bool = False) -> None:
        """Apply ``provider``'s current record: update the directory, and end the sessions on
        every service it may no longer reach. A new status is logged once at INFO (a change
        made here arrives again through the change feed: nothing is logged twice), not when
        the state is ``loading``."""
        previous = self._status.get(provider.id)
        self._status[provider.id] = provider.status
        if not loading and previous is not provider.status:
            log.info(
                "provider onboarded" if previous is None else f"provider {provider.status}",
                extra={
                    "provider": provider.id,
                    "status": str(provider.status),
                    "services": ",".join(provider.services),
                },
            )
        access = access_of(provider)
        access = replace(access, services=access.services & self._services)
        before = self._known.get(provider.id, frozenset())
        self._known[provider.id] = access.services
        self._directory.put(access)
        for service in sorted(before - access.services):
            self._end_sessions(provider.id, service)
        if self._links is not None:
            self._links.provider_changed(provider)
        self._end_links(provider.id, bool(access.services) and access.federates)

    def provider_removed(self, provider_id: str) -> None:
        before = self._known.pop(provider_id, frozenset())
        if self._status.pop(provider_id, None) is not None:
            log.info("provider removed", extra={"provider": provider_id})
        # Its links close first, while its record still names its server domains: that is how
        # the transport finds its inbound streams and the rooms find its users' sessions.
        self._end_links(provider_id, False)
        self._directory.put(ProviderAccess(provider_id, provider_id, frozenset()))
        for service in sorted(before):
            self._end_sessions(provider_id, service)
        if self._links is not None:
            self._links.provider_removed(provider_id)


ChangeHandler = Callable[[str, str], Awaitable[None]]  # (kind, subject)


class ChangeFeedFollower:
    """Follows the database's log of operator changes and hands each to ``handle``.

    ``read(after, limit)`` returns ``[(seq, kind, subject), ...]`` with ``seq > after`` in order.
    The follower starts after ``position`` (the newest entry when the state it keeps up to date
    was loaded: read that first, then load) and polls every ``interval`` seconds.

    A change whose handler raises (the database busy while another process writes, say) stops
    the poll there: the next poll tries it again, so no change is lost to a passing failure.
    After ``attempts`` failures of the same change, ``resync()`` reloads the whole state instead
    (which covers that change and every earlier one) and the follower moves on."""

    def __init__(
        self,
        read: Callable[[int, int], Awaitable[list[tuple[int, str, str]]]],
        handle: ChangeHandler,
        *,
        resync: Callable[[], Awaitable[None]],
        interval: float,
        batch: int = 500,
        attempts: int = 3,
    ) -> None:
        self._read = read
        self._handle = handle
        self._resync = resync
        self.interval = interval
        self._batch = batch
        self._attempts = attempts
        self._failures = 0
        self.position = 0
        self._task: asyncio.Task[None] | None = None
        self._woken = asyncio.Event()

    def wake(self) -> None:
        """Poll now rather than at the end of the interval (a notice that something changed,
        e.g. from another node of a cluster)."""
        self._woken.set()

    def start(self, position: int) -> None:
        self.position = position
        self._task = asyncio.get_running_loop().create_task(self._run(), name="change-feed")

    async def poll(self) -> int:
        """Apply what is new; returns how many changes were applied."""
        applied = 0
        while True:
            changes = await self._read(self.position, self._batch)
            for seq, kind, subject in changes:
                try:
                    await self._handle(kind, subject)
                except Exception:
                    self._failures += 1
                    log.exception(
                        "an operator change failed",
                        extra={"change": kind, "attempt": self._failures},
                    )
                    if self._failures < self._attempts:
                        return applied  # tried again at the next poll
                    await self._resync()  # raises if even that fails: tried again later
                    log.warning("operator state reloaded", extra={"after": kind})
                self._failures = 0
                self.position = seq
                applied += 1
            if len(changes) < self._batch:
                return applied

    async def _run(self) -> None:
        while True:
            # asyncio.timeout, not wait_for: on Python 3.11 a cancellation that lands as
            # wait_for's own timeout fires can be swallowed (cpython gh-86296), and stop()
            # then waits for this task for ever (seen once with a 1 ms interval in a test)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.interval):
                    await self._woken.wait()
            self._woken.clear()
            try:
                await self.poll()
            except Exception:
                log.exception("reading the change feed failed")

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_and_wait([self._task])
