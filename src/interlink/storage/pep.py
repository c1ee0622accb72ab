"""Personal eventing (XEP-0163): nodes, items and explicit subscriptions per account."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import NamedTuple, Protocol


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

    @property
    def size(self) -> int:
        """What the item counts against its owner's quota: its payload's UTF-8 bytes."""
        return len(self.payload.encode())


class PepNode(NamedTuple):
    name: str
    config: PepNodeConfig


class PepRepository(Protocol):
    async def node(self, owner: str, node: str) -> PepNodeConfig | None: ...

    async def nodes(self, owner: str) -> list[PepNode]:
        """``owner``'s nodes, in name order."""
        ...

    async def node_count(self, owner: str) -> int: ...

    async def configure(self, owner: str, node: str, config: PepNodeConfig, now: float) -> None:
        """Create the node or change its configuration; trims items beyond ``max_items``."""

    async def publish(
        self, owner: str, node: str, item: PepItem, *, quota: int | None = None
    ) -> bool:
        """Store ``item`` (replacing one with the same id) as the newest; keep at most the
        node's ``max_items``. The node must exist. With ``quota``, nothing is stored and
        ``False`` returned if the owner's items would then hold more than ``quota`` bytes of
        payload (:meth:`bytes_used`, counted after the replacement and the trim)."""

    async def bytes_used(self, owner: str) -> int:
        """The UTF-8 bytes of every payload ``owner`` has stored, all nodes together."""
        ...

    async def retract(self, owner: str, node: str, item_id: str) -> bool: ...

    async def items(
        self, owner: str, node: str, *, ids: Sequence[str] = (), newest: int | None = None
    ) -> list[PepItem]:
        """Items by id, or the newest ``newest`` (all when ``None``), oldest first."""

    async def delete_node(self, owner: str, node: str) -> bool: ...

    async def subscribe(
        self, owner: str, node: str, subscriber: str, *, cap: int | None = None
    ) -> bool:
        """Subscribe ``subscriber`` (a bare or full JID); whether it is subscribed now. With
        ``cap``, a new subscription is refused (``False``) when the subscriber's account (its
        bare JID, every resource together) already holds ``cap`` subscriptions on any node of
        any owner; one that exists already is kept."""
        ...

    async def subscription_count(self, account: str) -> int:
        """The subscriptions of the bare JID ``account`` and of its full JIDs, everywhere."""
        ...

    async def unsubscribe(self, owner: str, node: str, subscriber: str) -> bool: ...

    async def subscribers(self, owner: str, node: str) -> list[str]:
        """In JID order."""
        ...
