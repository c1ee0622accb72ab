"""The PostgreSQL engine: its :class:`~interlink.storage.Storage` bundle, opened and migrated."""

from __future__ import annotations

from interlink.storage.postgres.accounts import PostgresAccounts
from interlink.storage.postgres.archive import PostgresArchive, PostgresRoomArchive
from interlink.storage.postgres.changes import PostgresChanges
from interlink.storage.postgres.database import PostgresDatabase, connect
from interlink.storage.postgres.enlistment import PostgresEnlistment
from interlink.storage.postgres.media import PostgresMedia
from interlink.storage.postgres.migrate import PostgresMigrations
from interlink.storage.postgres.moderation import PostgresModeration
from interlink.storage.postgres.offline import PostgresOffline
from interlink.storage.postgres.pep import PostgresPep
from interlink.storage.postgres.policy import PostgresPolicy
from interlink.storage.postgres.private import PostgresPrivate
from interlink.storage.postgres.providers import PostgresProviders
from interlink.storage.postgres.push_registrations import PostgresPushRegistrations
from interlink.storage.postgres.rooms import PostgresRooms
from interlink.storage.postgres.roster import PostgresRoster
from interlink.storage.postgres.server_state import PostgresServerState
from interlink.storage.postgres.vcard import PostgresVcard


class PostgresStorage:
    """The :class:`~interlink.storage.Storage` bundle for PostgreSQL."""

    def __init__(self, db: PostgresDatabase) -> None:
        self.db = db
        self.migrations = PostgresMigrations(db)
        self.accounts = PostgresAccounts(db)
        self.roster = PostgresRoster(db)
        self.offline = PostgresOffline(db)
        self.archive = PostgresArchive(db)
        self.server_state = PostgresServerState(db)
        self.pep = PostgresPep(db)
        self.private = PostgresPrivate(db)
        self.vcard = PostgresVcard(db)
        self.providers = PostgresProviders(db)
        self.enlistment = PostgresEnlistment(db)
        self.policy = PostgresPolicy(db)
        self.media = PostgresMedia(db)
        self.changes = PostgresChanges(db)
        self.rooms = PostgresRooms(db)
        self.push_registrations = PostgresPushRegistrations(db)
        self.moderation = PostgresModeration(db)
        self.room_archive = PostgresRoomArchive(db)

    async def ping(self) -> None:
        await self.db.fetch_one("SELECT 1")

    async def close(self) -> None:
        await self.db.close()


async def open_postgres(dsn: str, *, pool_size: int = 10) -> PostgresStorage:
    """Connect to ``dsn`` and migrate the database.

    Raises :class:`~interlink.errors.StorageError` if the server cannot be reached, the database
    is not UTF-8 with the C collation, or it is newer than this Interlink."""
    db = await connect(dsn, pool_size=pool_size)
    try:
        storage = PostgresStorage(db)
        await storage.migrations.apply()
    except BaseException:
        await db.close()
        raise
    return storage
