"""Storage behind repository interfaces.

Callers see the :class:`Storage` bundle and, per concern, the records and repository protocol in
``interlink.storage.<concern>`` (the convention is at the top of
:mod:`interlink.storage.repositories`). Each engine (``sqlite`` now, ``postgres`` next) keeps its
SQL, row mappers and numbered migrations in its own package.
"""

from __future__ import annotations

from interlink.storage.repositories import Storage

__all__ = ["Storage"]
