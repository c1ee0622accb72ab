"""Storage behind repository interfaces.

Callers see only the protocols in :mod:`interlink.storage.repositories` and the :class:`Storage`
bundle; each engine (``sqlite`` now, ``postgres`` later) keeps its SQL and numbered migrations in
its own package.
"""

from __future__ import annotations

from interlink.storage.repositories import (
    AccessModel,
    AccountRepository,
    OfflineMessage,
    OfflineRepository,
    PendingSubscription,
    PepItem,
    PepNodeConfig,
    PepRepository,
    RosterItem,
    RosterRepository,
    ServerStateRepository,
    Storage,
    Subscription,
)

__all__ = [
    "AccessModel",
    "AccountRepository",
    "OfflineMessage",
    "OfflineRepository",
    "PendingSubscription",
    "PepItem",
    "PepNodeConfig",
    "PepRepository",
    "RosterItem",
    "RosterRepository",
    "ServerStateRepository",
    "Storage",
    "Subscription",
]
