"""The :class:`Storage` bundle: one engine's repositories, the only way the hub reaches durable
state.

The repository convention
-------------------------
*Interfaces.* One module per concern in :mod:`interlink.storage` (``accounts``, ``roster``,
``offline``, ``archive``, ``pep``, ``private``, ``vcard``, ``server_state``, ``changes``,
``providers``, ``enlistment``, ``policy``, ``media``, ``rooms``, ``push_registrations``,
``moderation``) holds that concern's records and its
``<Concern>Repository`` protocol, and nothing else: the rules that use them (validation,
registries, services) stay in the domain packages, which import the records from here. Storage
imports only :mod:`interlink.storage`, :mod:`interlink.xmpp` and :mod:`interlink.errors`.

*Values.* Records are frozen dataclasses; anything with a closed set of values is an enum
(``StrEnum``, so it is stored as its text); several results at once are a ``NamedTuple``.
JIDs are their canonical strings. Time is passed in (``now``, float seconds): a repository never
reads a clock. Stanzas and PEP payloads are serialized XML text: storage knows nothing of stanzas.
A read returns ``None`` for a row that does not exist; a removal returns whether it removed
anything; a refusal is an exception from :mod:`interlink.errors` (``AccountNotFoundError``,
``AccountExistsError``, ``PhoneInUseError``, all ``StorageError``), never an engine's own (a
failing database may still raise its driver's error: nothing was stored then). Outcomes that are
not failures (a replayed token id) are returned as enums, not raised.

*Engines.* Each engine (``sqlite``, ``postgres``) is a package ``storage/<engine>/`` with one
module per concern, named as here, holding the class ``<Engine><Concern>`` (e.g. ``SqliteRoster``,
``PostgresRoster``), its SQL and its row
mappers (rows to records, (de)serialisation of JSON columns); its numbered migrations in
``migrations/`` run by its :class:`~interlink.storage.migrations.MigrationRunner`; and its
bundle. A repository class takes the engine's database handle as its only constructor argument
and keeps the connection and transactions to itself: reads go through the handle's
``fetch_one``/``fetch_all``, and every write method is one transaction (``transaction()``, or on
SQLite ``exclusive()`` for a single statement), durable when the call returns. Engines are opened by
name with :func:`interlink.storage.open_storage`; ``tests/storage/`` holds the contract every
engine passes.
"""

from __future__ import annotations

from typing import Protocol

from interlink.storage.accounts import AccountRepository
from interlink.storage.archive import ArchiveRepository, MessageArchive
from interlink.storage.changes import ChangeFeedRepository
from interlink.storage.enlistment import EnlistmentRepository
from interlink.storage.media import MediaRepository
from interlink.storage.migrations import MigrationRunner
from interlink.storage.moderation import ModerationRepository
from interlink.storage.offline import OfflineRepository
from interlink.storage.pep import PepRepository
from interlink.storage.policy import PolicyRepository
from interlink.storage.private import PrivateRepository
from interlink.storage.providers import ProviderRepository
from interlink.storage.push_registrations import PushRegistrationRepository
from interlink.storage.rooms import RoomRepository
from interlink.storage.roster import RosterRepository
from interlink.storage.server_state import ServerStateRepository
from interlink.storage.vcard import VcardRepository


class Storage(Protocol):
    """One engine's repositories."""

    @property
    def migrations(self) -> MigrationRunner:
        """The engine's schema migrations on this database (all applied once it is open)."""
        ...

    @property
    def accounts(self) -> AccountRepository: ...

    @property
    def roster(self) -> RosterRepository: ...

    @property
    def offline(self) -> OfflineRepository: ...

    @property
    def archive(self) -> ArchiveRepository: ...

    @property
    def server_state(self) -> ServerStateRepository: ...

    @property
    def pep(self) -> PepRepository: ...

    @property
    def private(self) -> PrivateRepository: ...

    @property
    def vcard(self) -> VcardRepository: ...

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

    @property
    def rooms(self) -> RoomRepository: ...

    @property
    def push_registrations(self) -> PushRegistrationRepository: ...

    @property
    def moderation(self) -> ModerationRepository: ...

    @property
    def room_archive(self) -> MessageArchive:
        """The rooms' XEP-0313 archives (owner: the room), removed with their room."""
        ...

    async def ping(self) -> None:
        """Raise if the database cannot answer (readiness)."""
        ...

    async def close(self) -> None: ...
