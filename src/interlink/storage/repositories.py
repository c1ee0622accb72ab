"""Repository interfaces: the only way the hub reaches durable state.

Values are plain data (strings, bytes, dataclasses); the storage layer knows nothing of stanzas
beyond the serialized text it keeps. JIDs are passed as their canonical strings.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol

from interlink.xmpp.sasl import StoredCredentials

if TYPE_CHECKING:
    from interlink.hub.policy.model import PolicyRepository
    from interlink.interop.enlistment import EnlistmentRepository
    from interlink.interop.providers import ProviderRepository
    from interlink.media.model import MediaRepository


class Subscription(StrEnum):
    """Roster subscription states, RFC 6121 §2.1.2.5."""

    NONE = "none"
    TO = "to"
    FROM = "from"
    BOTH = "both"

    @property
    def has_to(self) -> bool:
        return self is Subscription.TO or self is Subscription.BOTH

    @property
    def has_from(self) -> bool:
        return self is Subscription.FROM or self is Subscription.BOTH

    @staticmethod
    def of(*, to: bool, from_: bool) -> Subscription:
        if to and from_:
            return Subscription.BOTH
        if to:
            return Subscription.TO
        if from_:
            return Subscription.FROM
        return Subscription.NONE


@dataclass(frozen=True, slots=True)
class RosterItem:
    contact: str
    name: str | None = None
    subscription: Subscription = Subscription.NONE
    ask: bool = False  # an outbound subscription request is pending
    groups: tuple[str, ...] = field(default_factory=tuple)


@dataclass(frozen=True, slots=True)
class PendingSubscription:
    requester: str
    stanza: str


@dataclass(frozen=True, slots=True)
class OfflineMessage:
    id: int
    stanza: str
    stored_at: float


class AccountRepository(Protocol):
    async def create(self, jid: str, credentials: StoredCredentials, now: float) -> None:
        """Raises :class:`~interlink.errors.AccountExistsError`."""

    async def exists(self, jid: str) -> bool: ...

    async def get_credentials(self, jid: str) -> StoredCredentials | None: ...

    async def set_credentials(self, jid: str, credentials: StoredCredentials) -> None:
        """Raises :class:`~interlink.errors.AccountNotFoundError`."""

    async def delete(self, jid: str) -> None:
        """Delete the account and everything stored for it; raises ``AccountNotFoundError``."""

    async def list_jids(self) -> list[str]: ...


class RosterRepository(Protocol):
    async def items(self, owner: str) -> list[RosterItem]: ...

    async def get(self, owner: str, contact: str) -> RosterItem | None: ...

    async def count(self, owner: str) -> int: ...

    async def put(self, owner: str, item: RosterItem) -> None: ...

    async def remove(self, owner: str, contact: str) -> None: ...

    async def add_pending(self, owner: str, requester: str, stanza: str, now: float) -> None: ...

    async def remove_pending(self, owner: str, requester: str) -> bool: ...

    async def pending(self, owner: str) -> list[PendingSubscription]: ...


class OfflineRepository(Protocol):
    async def store(self, owner: str, stanza: str, now: float, cap: int) -> bool:
        """Durably append ``stanza`` to ``owner``'s queue unless it already holds ``cap``
        messages; return whether it was stored. Returns only after the write is durable."""

    async def fetch(self, owner: str, limit: int) -> Sequence[OfflineMessage]:
        """The oldest ``limit`` messages, in arrival order."""

    async def delete(self, owner: str, up_to_id: int) -> None:
        """Remove ``owner``'s messages with ids up to and including ``up_to_id``."""

    async def count(self, owner: str) -> int: ...

    async def totals(self) -> tuple[int, int, int]:
        """Messages stored, accounts with any, and the longest queue (for metrics)."""
        ...


class AccessModel(StrEnum):
    """Who may read a PEP node (XEP-0060 §4.5)."""

    OPEN = "open"
    PRESENCE = "presence"
    WHITELIST = "whitelist"  # the owner only, until affiliations are offered


@dataclass(frozen=True, slots=True)
class PepNodeConfig:
    access_model: AccessModel = AccessModel.PRESENCE
    max_items: int = 1
    persist_items: bool = True


@dataclass(frozen=True, slots=True)
class PepItem:
    id: str
    payload: str  # the serialized payload element
    published_at: float


class PepRepository(Protocol):
    async def node(self, owner: str, node: str) -> PepNodeConfig | None: ...

    async def nodes(self, owner: str) -> list[tuple[str, PepNodeConfig]]: ...

    async def node_count(self, owner: str) -> int: ...

    async def configure(self, owner: str, node: str, config: PepNodeConfig, now: float) -> None:
        """Create the node or change its configuration; trims items beyond ``max_items``."""

    async def publish(self, owner: str, node: str, item: PepItem) -> None:
        """Store ``item`` (replacing one with the same id) as the newest; keep at most the
        node's ``max_items``."""

    async def retract(self, owner: str, node: str, item_id: str) -> bool: ...

    async def items(
        self, owner: str, node: str, *, ids: Sequence[str] = (), newest: int | None = None
    ) -> list[PepItem]:
        """Items by id, or the newest ``newest`` (all when ``None``), oldest first."""

    async def delete_node(self, owner: str, node: str) -> bool: ...

    async def subscribe(self, owner: str, node: str, subscriber: str) -> None: ...

    async def unsubscribe(self, owner: str, node: str, subscriber: str) -> bool: ...

    async def subscribers(self, owner: str, node: str) -> list[str]: ...


class ServerStateRepository(Protocol):
    async def get_or_create_secret(self, name: str, size: int) -> bytes:
        """A random secret created once and kept (e.g. the SASL decoy key)."""

    async def get_value(self, name: str) -> str | None:
        """A small named value (e.g. the services this data directory's hub serves)."""

    async def put_value(self, name: str, value: str) -> None: ...


class ChangeFeedRepository(Protocol):
    """The operator change feed: every operator change, in order (see interop/operator.py)."""

    async def record(self, kind: str, subject: str) -> None: ...

    async def since(self, after: int, limit: int) -> list[tuple[int, str, str]]:
        """``(seq, kind, subject)`` of the changes after ``after``, oldest first."""
        ...

    async def latest(self) -> int: ...


class Storage(Protocol):
    """One engine's repositories."""

    @property
    def accounts(self) -> AccountRepository: ...

    @property
    def roster(self) -> RosterRepository: ...

    @property
    def offline(self) -> OfflineRepository: ...

    @property
    def server_state(self) -> ServerStateRepository: ...

    @property
    def pep(self) -> PepRepository: ...

    @property
    def changes(self) -> ChangeFeedRepository: ...

    @property
    def providers(self) -> ProviderRepository: ...

    @property
    def enlistment(self) -> EnlistmentRepository: ...

    @property
    def policy(self) -> PolicyRepository: ...

    @property
    def media(self) -> MediaRepository: ...

    async def ping(self) -> None:
        """Raise if the database cannot answer (readiness)."""
        ...

    async def close(self) -> None: ...
