"""The owner of operator state: the directory the routing path reads, sessions ended when a
provider loses a service, and the change feed that brings other processes' changes."""

from __future__ import annotations

from dataclasses import replace

import pytest

from interlink.errors import StreamError, StreamErrorCondition
from interlink.hub.addressing import Addressing, ProviderDirectory
from interlink.hub.session import Session, SessionRegistry
from interlink.interop.operator import ChangeFeedFollower, OperatorState, PendingLinks
from interlink.storage.providers import Provider, ProviderMode, ProviderStatus
from interlink.storage.sqlite import open_sqlite
from interlink.xmpp.jid import JID
from tests.hubkit import FakePort

SERVICES = ("wa.test", "msg.test")
CHAT = Provider(
    "chat",
    "Chat",
    "https://chat.example",
    status=ProviderStatus.APPROVED,
    jwks_url="https://chat.example/jwks",
    services=("wa.test", "msg.test"),
)


class Recorded(FakePort):
    """A session's port that records, in ``ended``, each time the operator state ends it."""

    def __init__(self, ended: list[tuple[str, str]], where: tuple[str, str]) -> None:
        super().__init__()
        self._ended = ended
        self._where = where

    def terminate(self, error: StreamError | None) -> None:
        super().terminate(error)
        self._ended.append(self._where)


def owner() -> tuple[OperatorState, ProviderDirectory, list[tuple[str, str]]]:
    """The owner over two services, with one session of a ``chat`` user on each (and one of a
    gatekeeper user, which no provider change ends)."""
    directory = ProviderDirectory()
    sessions = SessionRegistry()
    ended: list[tuple[str, str]] = []
    for service in SERVICES:
        port = Recorded(ended, ("chat", service))
        sessions.add(Session(JID.parse(f"x@chat.interop.{service}/app"), port))
    sessions.add(Session(JID.parse("alice@wa.test/a"), Recorded(ended, ("home", "wa.test"))))
    state = OperatorState(Addressing(SERVICES, directory), sessions)
    return state, directory, ended


async def test_approval_suspension_and_services() -> None:
    state, directory, ended = owner()
    await state.load([replace(CHAT, status=ProviderStatus.PENDING)])
    assert not directory.approved("chat", "wa.test")
    state.provider_changed(CHAT)
    assert directory.approved("chat", "wa.test")
    assert directory.approved("chat", "msg.test")
    assert ended == []
    state.provider_changed(replace(CHAT, services=("wa.test",)))  # leaves msg.test
    assert ended == [("chat", "msg.test")]
    assert not directory.approved("chat", "msg.test")
    state.provider_changed(replace(CHAT, status=ProviderStatus.SUSPENDED, services=("wa.test",)))
    assert ended == [("chat", "msg.test"), ("chat", "wa.test")]
    assert directory.for_service("wa.test") == {}
    state.provider_changed(replace(CHAT, services=("wa.test", "gone.test")))  # not served here
    assert directory.for_service("wa.test") == {"chat": "Chat"}
    state.provider_removed("chat")
    assert ended[-1] == ("chat", "wa.test")
    assert not directory.approved("chat", "wa.test")


async def test_the_change_feed_is_written_with_each_change_and_followed_in_order() -> None:
    storage = await open_sqlite(":memory:")
    try:
        seen: list[tuple[str, str]] = []
        resyncs: list[int] = []

        async def handle(kind: str, subject: str) -> None:
            seen.append((kind, subject))
            if subject == "boom":
                raise RuntimeError("this change fails every time")

        async def resync() -> None:
            resyncs.append(len(seen))

        await storage.changes.record("provider", "before")
        follower = ChangeFeedFollower(
            storage.changes.since, handle, resync=resync, interval=60, batch=2, attempts=3
        )
        follower.position = await storage.changes.latest()
        assert await follower.poll() == 0
        await storage.changes.record("provider", "boom")
        await storage.changes.record("provider", "a")
        await storage.changes.record("account-removed", "x@wa.test")
        # A failing change stops the poll; it is tried again, and after the third failure the
        # whole state is reloaded instead and the follower goes on (two batches).
        assert await follower.poll() == 0
        assert await follower.poll() == 0
        assert resyncs == []
        assert await follower.poll() == 3
        assert resyncs == [3]
        assert seen == [("provider", "boom")] * 3 + [
            ("provider", "a"),
            ("account-removed", "x@wa.test"),
        ]
        assert await follower.poll() == 0
    finally:
        await storage.close()


async def test_provider_and_account_changes_are_logged_in_their_transaction() -> None:
    from interlink.storage.providers import AuditAction, AuditEntry
    from interlink.xmpp.sasl import derive_credentials

    storage = await open_sqlite(":memory:")
    try:
        await storage.providers.put(CHAT, AuditEntry("chat", 1.0, "t", AuditAction.ADD))
        await storage.accounts.create("x@wa.test", derive_credentials("pw", 4096), 1.0)
        await storage.accounts.delete("x@wa.test")
        entries = await storage.changes.since(0, 10)
        assert [(kind, subject) for _, kind, subject in entries] == [
            ("provider", "chat"),
            ("account-removed", "x@wa.test"),
        ]
        assert await storage.changes.latest() == entries[-1][0]
    finally:
        await storage.close()


async def no_resync() -> None:
    raise AssertionError("a change that succeeds on its second attempt needs no reload")


async def test_a_change_that_failed_to_apply_is_applied_later() -> None:
    """Review finding: the follower moves its position past a change whose handler raised, so a
    transient failure while applying it (the database busy or locked while the CLI writes,
    an I/O error in ``registry.get``) loses the change for good: a provider suspended from
    the command line stays approved, with its users' sessions live, until the hub restarts.
    A failed change must be tried again (or the state reloaded) at a later poll."""
    storage = await open_sqlite(":memory:")
    try:
        applied: list[tuple[str, str]] = []
        failures = iter([True])  # the first attempt fails, as a busy database would

        async def handle(kind: str, subject: str) -> None:
            if next(failures, False):
                raise OSError("database is locked")
            applied.append((kind, subject))

        follower = ChangeFeedFollower(storage.changes.since, handle, resync=no_resync, interval=60)
        follower.position = await storage.changes.latest()
        await storage.changes.record("provider", "chat")  # e.g. `interlink provider suspend`
        await follower.poll()
        await follower.poll()
        assert applied == [("provider", "chat")]
    finally:
        await storage.close()


async def test_the_change_feed_forgets_old_entries() -> None:
    """Pruning drops what was recorded before the cut-off, keeps the rest and the numbering."""
    import time

    storage = await open_sqlite(":memory:")
    try:
        await storage.changes.record("provider", "old")
        latest = await storage.changes.latest()
        assert await storage.changes.prune(time.time() - 60) == 0  # recorded after the cut-off
        assert await storage.changes.prune(time.time() + 60) == 1
        assert await storage.changes.since(0, 10) == []
        await storage.changes.record("provider", "new")
        assert [seq for seq, _, _ in await storage.changes.since(0, 10)] == [latest + 1]
    finally:
        await storage.close()


async def test_disabling_an_account_ends_its_sessions_once_and_gates_login() -> None:
    state, _directory, ended = owner()
    await state.load([CHAT], disabled=["bob@wa.test"])
    assert state.is_disabled("bob@wa.test")
    assert not state.is_disabled("alice@wa.test")
    assert state.sessions_of("alice@wa.test") == ["alice@wa.test/a"]
    state.account_disabled("alice@wa.test", True)
    assert ended == [("home", "wa.test")]
    assert state.is_disabled("alice@wa.test")
    state.account_disabled("alice@wa.test", True)  # again, through the change feed: nothing
    assert ended == [("home", "wa.test")]
    state.disabled_accounts(["alice@wa.test"])  # a resync: bob was enabled meanwhile
    assert not state.is_disabled("bob@wa.test")
    # (a fake port leaves its session registered: the transport removes it when it closes)
    assert state.all_sessions(10) == sorted(
        ["alice@wa.test/a", *(f"x@chat.interop.{service}/app" for service in SERVICES)]
    )
    assert state.all_sessions(1) == ["alice@wa.test/a"]
    state.account_removed("alice@wa.test")
    assert not state.is_disabled("alice@wa.test")


def test_ending_sessions_only_says_reset_and_disabling_says_not_authorized() -> None:
    """RFC 6120 §4.9.3: ``reset`` lets the client come back, ``not-authorized`` does not."""
    sessions = SessionRegistry()
    first, second = FakePort(), FakePort()
    sessions.add(Session(JID.parse("alice@wa.test/a"), first))
    sessions.add(Session(JID.parse("bob@wa.test/b"), second))
    state = OperatorState(Addressing(SERVICES, ProviderDirectory()), sessions)
    assert state.end_sessions_only("alice@wa.test", "the operator ended this session") == 1
    assert first.terminated is not None
    assert first.terminated.condition is StreamErrorCondition.RESET
    assert second.terminated is None  # bob's untouched
    state.account_disabled("bob@wa.test", True)
    assert second.terminated is not None
    assert second.terminated.condition is StreamErrorCondition.NOT_AUTHORIZED


class FakeLinks:
    """The s2s transport as operator state sees it, recording what it is told."""

    def __init__(self) -> None:
        self.told: list[str] = []

    def provider_changed(self, provider: Provider) -> None:
        self.told.append(f"changed {provider.id}")

    def provider_removed(self, provider_id: str) -> None:
        self.told.append(f"removed {provider_id}")

    def close_provider(self, provider_id: str, reason: str) -> int:
        self.told.append(f"closed {provider_id}")
        return 1


async def test_pending_links_reach_the_transport_once_it_fulfils_them() -> None:
    """Operator state gets its s2s links at construction (PendingLinks) although the transport
    is built later: before it is fulfilled nothing is told (there are no links), afterwards a
    suspension closes the provider's links, and a second transport is a wiring mistake."""
    federated = replace(CHAT, mode=ProviderMode.FEDERATED, server_domains=("chat.example",))
    links = PendingLinks()
    state = OperatorState(Addressing(SERVICES, ProviderDirectory()), SessionRegistry(), links)
    state.provider_changed(federated)
    assert links.close_provider("chat", "nothing yet") == 0
    transport = FakeLinks()
    links.fulfil(transport)
    state.provider_changed(replace(federated, status=ProviderStatus.SUSPENDED))
    assert transport.told == ["changed chat", "closed chat"]
    state.provider_removed("chat")
    # closed while the transport still knows the provider's domains (its inbound streams)
    assert transport.told[-2:] == ["closed chat", "removed chat"]
    with pytest.raises(RuntimeError):
        links.fulfil(FakeLinks())
