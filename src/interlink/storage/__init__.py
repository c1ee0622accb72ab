"""Storage behind repository interfaces.

Callers see the :class:`Storage` bundle and, per concern, the records and repository protocol in
``interlink.storage.<concern>`` (the convention is at the top of
:mod:`interlink.storage.repositories`). Each engine (``sqlite``, embedded; ``postgres``, for
several processes and machines) keeps its SQL, row mappers and numbered migrations in its own
package, and is opened by name through :func:`open_storage`.
"""

from __future__ import annotations

from interlink.storage.engines import ENGINES, StorageConfig, open_storage
from interlink.storage.migrations import Migration, MigrationRunner
from interlink.storage.repositories import Storage

__all__ = ["ENGINES", "Migration", "MigrationRunner", "Storage", "StorageConfig", "open_storage"]
