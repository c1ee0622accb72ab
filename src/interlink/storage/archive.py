"""Message archives (XEP-0313): per account, the messages it sent and received, as serialized
ciphertext stanzas, in arrival order; and each account's archiving preferences. A room of the
group service has an archive of the same shape (:class:`MessageArchive`, without preferences),
owned by the room's address."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol

from interlink.xmpp.ext.mam import Prefs


class ArchiveEntry(NamedTuple):
    """One message to keep in ``owner``'s archive under ``id`` (unique in that archive). A
    named tuple, not a dataclass: two are built per routed message, and engines can bind it as
    a row as it is."""

    owner: str  # bare JID of the account (or of the room)
    id: str
    peer: str  # bare JID of the other party (in a room's archive: of the member who sent it)
    peer_resource: str  # "" when the other party's address had none
    at: float
    stanza: str


@dataclass(frozen=True, slots=True)
class ArchivedMessage:
    id: str
    at: float
    stanza: str
    peer: str = ""  # the entry's peer (a room's archive shows its members' addresses by it)


@dataclass(frozen=True, slots=True)
class ArchiveFilter:
    """Which of an archive's messages a query covers (XEP-0313 §4.1): with a contact (bare, or
    one of its resources), in a time range (inclusive), after or before an entry (exclusive),
    among some ids."""

    peer: str | None = None
    peer_resource: str | None = None  # only with ``peer``
    start: float | None = None
    end: float | None = None
    after_id: str | None = None
    before_id: str | None = None
    ids: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ArchivePage:
    """One page, oldest first; ``count`` is the size of the whole filtered set, ``first_index``
    the position of the page's first message in it, ``complete`` whether the page reaches the
    end of the set in the direction of paging."""

    messages: Sequence[ArchivedMessage]
    count: int
    first_index: int | None
    complete: bool


class MessageArchive(Protocol):
    """The messages of one kind of archive: the accounts' (owner: an account) or the rooms'
    (owner: a room of the group service; removed with the room)."""

    async def append(self, entries: Sequence[ArchiveEntry], max_messages: int) -> None:
        """Durably add ``entries``, each to its owner's archive. An entry whose owner does not
        exist (no such account, or room) is skipped, and so is one whose id is already in that
        archive. An archive then holding more than ``max_messages`` loses its oldest messages
        (the quota drops the oldest, as deployed servers do). Returns only after the write is
        durable."""

    async def page(
        self,
        owner: str,
        where: ArchiveFilter,
        *,
        after: str | None,
        before: str | None,
        limit: int,
    ) -> ArchivePage | None:
        """At most ``limit`` messages of ``owner``'s archive matching ``where``: the first ones
        after the entry ``after`` (from the start when ``None``); or, with ``before`` set, the
        last ones before the entry ``before`` (``""``: the last page). ``None`` when one of
        the entries named (``after``, ``before``, ``where.after_id``, ``where.before_id``) is
        not in the archive."""

    async def edges(self, owner: str) -> tuple[ArchivedMessage, ArchivedMessage] | None:
        """The first and the last message of ``owner``'s archive; ``None`` when it is empty."""

    async def count(self, owner: str) -> int: ...

    async def prune(self, older_than: float) -> int:
        """Remove every message archived before ``older_than``; returns how many. Archive
        times are taken to grow with arrival (the hub's clock): a message appended after a
        newer one may stay until that one goes."""


class ArchiveRepository(MessageArchive, Protocol):
    """The accounts' archives and their preferences."""

    async def get_prefs(self, owner: str) -> Prefs | None:
        """``owner``'s preferences; ``None`` when it never set any."""

    async def set_prefs(self, owner: str, prefs: Prefs) -> None:
        """Durably replace ``owner``'s preferences."""

    async def all_prefs(self) -> Mapping[str, Prefs]:
        """Every account's preferences that were ever set (read when the hub starts)."""
