"""Numbered schema migrations, and the interface every engine's runner offers.

Each engine ships its migrations as files ``migrations/NNNN_name.sql`` in its own package,
numbered from 1 without gaps, and records in the database the number of the last one applied.
:func:`load_migrations` reads and checks such a folder; a :class:`MigrationRunner` applies what
is pending, each migration together with its new version number in one transaction, so a crash
leaves the schema at one version or the next, never between.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Protocol

from interlink.errors import StorageError

_MIGRATION_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True, slots=True)
class Migration:
    number: int
    name: str  # the file name without number and extension, e.g. "initial"
    sql: str


class MigrationRunner(Protocol):
    """One engine's migrations on one database."""

    @property
    def migrations(self) -> Sequence[Migration]:
        """Every migration this Interlink ships for the engine, in order."""
        ...

    async def current_version(self) -> int:
        """The number of the last migration applied (0 for an empty database)."""
        ...

    async def pending(self) -> list[Migration]:
        """The migrations not yet applied, in order.

        Raises :class:`~interlink.errors.StorageError` if the database is newer than this
        Interlink."""
        ...

    async def apply(self) -> list[Migration]:
        """Apply every pending migration, in order, each in its own transaction; return those
        applied. Raises :class:`~interlink.errors.StorageError` as :meth:`pending` does."""
        ...


def load_migrations(package: str, folder: str = "migrations") -> list[Migration]:
    """The migrations ``NNNN_name.sql`` in ``package``'s ``folder``, in order.

    Raises :class:`~interlink.errors.StorageError` unless they are numbered 1..n without gaps."""
    found = []
    for entry in (resources.files(package) / folder).iterdir():
        match = _MIGRATION_NAME.match(entry.name)
        if match:
            sql = entry.read_text(encoding="utf-8")
            found.append(Migration(int(match.group(1)), match.group(2), sql))
    found.sort(key=lambda m: m.number)
    numbers = [m.number for m in found]
    if numbers != list(range(1, len(numbers) + 1)):
        raise StorageError(f"migrations are not numbered 1..n without gaps: {numbers}")
    return found


def pending_after(migrations: Sequence[Migration], current: int) -> list[Migration]:
    """Those of ``migrations`` after version ``current``.

    Raises :class:`~interlink.errors.StorageError` if ``current`` is past the last of them."""
    if current > len(migrations):
        raise StorageError(
            f"database schema version {current} is newer than this Interlink "
            f"({len(migrations)}); upgrade Interlink"
        )
    return list(migrations[current:])
