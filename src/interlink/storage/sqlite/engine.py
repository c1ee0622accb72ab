"""The SQLite engine: its :class:`~interlink.storage.Storage` bundle, opened and migrated."""

from __future__ import annotations

from pathlib import Path

from interlink.storage.sqlite.accounts import SqliteAccounts
from interlink.storage.sqlite.archive import SqliteArchive, SqliteRoomArchive
from interlink.storage.sqlite.changes import SqliteChanges
from interlink.storage.sqlite.database import SqliteDatabase, connect
from interlink.storage.sqlite.enlistment import SqliteEnlistment
from interlink.storage.sqlite.media import SqliteMedia
from interlink.storage.sqlite.migrate import SqliteMigrations
from interlink.storage.sqlite.moderation import SqliteModeration
from interlink.storage.sqlite.offline import SqliteOffline
from interlink.storage.sqlite.pep import SqlitePep
from interlink.storage.sqlite.policy import SqlitePolicy
from interlink.storage.sqlite.private import SqlitePrivate
from interlink.storage.sqlite.providers import SqliteProviders
from interlink.storage.sqlite.push_registrations import SqlitePushRegistrations
from interlink.storage.sqlite.rooms import SqliteRooms
from interlink.storage.sqlite.roster import SqliteRoster
from interlink.storage.sqlite.server_state import SqliteServerState
from interlink.storage.sqlite.vcard import SqliteVcard


class SqliteStorage:
    """The :class:`~interlink.storage.Storage` bundle for SQLite."""

    def __init__(self, db: SqliteDatabase) -> None:
        self.db = db
        self.migrations = SqliteMigrations(db)
        self.accounts = SqliteAccounts(db)
        self.roster = SqliteRoster(db)
        self.offline = SqliteOffline(db)
        self.archive = SqliteArchive(db)
        self.server_state = SqliteServerState(db)
        self.pep = SqlitePep(db)
        self.private = SqlitePrivate(db)
        self.vcard = SqliteVcard(db)
        self.providers = SqliteProviders(db)
        self.enlistment = SqliteEnlistment(db)
        self.policy = SqlitePolicy(db)
        self.media = SqliteMedia(db)
        self.changes = SqliteChanges(db)
        self.rooms = SqliteRooms(db)
        self.push_registrations = SqlitePushRegistrations(db)
        self.moderation = SqliteModeration(db)
        self.room_archive = SqliteRoomArchive(db)

    async def ping(self) -> None:
        await self.db.fetch_one("SELECT 1")

    async def close(self) -> None:
        await self.db.close()


async def open_sqlite(path: Path | str, *, synchronous: str = "FULL") -> SqliteStorage:
    """Open (creating if needed) and migrate the database at ``path`` (``":memory:"`` works).

    Raises :class:`~interlink.errors.StorageError` for a bad ``synchronous`` mode or a database
    newer than this Interlink."""
    db = await connect(path, synchronous=synchronous)
    try:
        storage = SqliteStorage(db)
        await storage.migrations.apply()
    except BaseException:
        await db.close()
        raise
    return storage
