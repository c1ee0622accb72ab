"""Storage behind repository interfaces.

Callers see only the protocols in :mod:`interlink.storage.repositories` and the :class:`Storage`
bundle; each engine (``sqlite`` now, ``postgres`` later) keeps its SQL and numbered migrations in
its own package.
"""

from __future__ import annotations

from interlink.storage.repositories import (
    AccountRepository,
    OfflineMessage,
    OfflineRepository,
    PendingSubscription,
    RosterItem,
    RosterRepository,
    ServerStateRepository,
    Storage,
    Subscription,
)

__all__ = [
    "AccountRepository",
    "OfflineMessage",
    "OfflineRepository",
    "PendingSubscription",
    "RosterItem",
    "RosterRepository",
    "ServerStateRepository",
    "Storage",
    "Subscription",
]
