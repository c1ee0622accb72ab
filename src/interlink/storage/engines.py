"""Opening storage by engine name: the seam each engine plugs into.

The composition root turns its settings into a :class:`StorageConfig` and calls
:func:`open_storage`; that looks the engine up by name in :data:`ENGINES`, whose opener connects,
applies the engine's pending migrations (its :class:`~interlink.storage.migrations.MigrationRunner`)
and returns the engine's :class:`~interlink.storage.Storage` bundle. A new engine adds its
options to :class:`StorageConfig` (prefixed with its name, as the settings are) and one entry to
:data:`ENGINES`; an engine whose driver is an optional dependency imports it inside its opener.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from interlink.errors import StorageError
from interlink.storage.repositories import Storage
from interlink.storage.sqlite.engine import open_sqlite


@dataclass(frozen=True, slots=True)
class StorageConfig:
    """Which engine, and its options. Only the chosen engine's options are read."""

    engine: str = "sqlite"
    sqlite_path: Path | str = ":memory:"
    sqlite_synchronous: str = "FULL"  # OFF, NORMAL, FULL or EXTRA (see docs/operations.md)
    postgres_dsn: str = ""  # a libpq connection string or postgresql:// URL
    postgres_pool_size: int = 10  # connections per process


EngineOpener = Callable[[StorageConfig], Awaitable[Storage]]


async def _open_sqlite(config: StorageConfig) -> Storage:
    return await open_sqlite(config.sqlite_path, synchronous=config.sqlite_synchronous)


async def _open_postgres(config: StorageConfig) -> Storage:
    if not config.postgres_dsn:
        raise StorageError("storage.engine postgres needs storage.dsn")
    # imported here: the embedded default (SQLite) loads no PostgreSQL driver
    from interlink.storage.postgres.engine import open_postgres

    return await open_postgres(config.postgres_dsn, pool_size=config.postgres_pool_size)


ENGINES: Mapping[str, EngineOpener] = {"sqlite": _open_sqlite, "postgres": _open_postgres}


async def open_storage(config: StorageConfig) -> Storage:
    """Open ``config.engine``'s storage, migrated to this Interlink's schema.

    Raises :class:`~interlink.errors.StorageError` for an unknown engine, bad options or a
    database newer than this Interlink."""
    opener = ENGINES.get(config.engine)
    if opener is None:
        raise StorageError(
            f"unknown storage engine {config.engine!r}; known: {', '.join(sorted(ENGINES))}"
        )
    return await opener(config)
