"""PEP node configurations and items, from their rows. Shared by both engines
(:mod:`interlink.storage.rows`)."""

from __future__ import annotations

from interlink.storage.pep import AccessModel, PepItem, PepNodeConfig
from interlink.storage.rows import Row


def config_from_row(row: Row) -> PepNodeConfig:
    access, max_items, persist = row
    return PepNodeConfig(AccessModel(str(access)), int(max_items), bool(persist))


def item_from_row(row: Row) -> PepItem:
    return PepItem(str(row[0]), str(row[1]), float(row[2]))
