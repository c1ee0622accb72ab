"""Roster items to and from their rows (an item's groups: a JSON list in one column). Shared by
both engines (:mod:`interlink.storage.rows`)."""

from __future__ import annotations

import json

from interlink.storage.roster import RosterItem, Subscription
from interlink.storage.rows import Row


def roster_item_from_row(row: Row) -> RosterItem:
    contact, name, sub, ask, groups = row
    return RosterItem(
        contact=str(contact),
        name=None if name is None else str(name),
        subscription=Subscription(str(sub)),
        ask=bool(ask),
        groups=tuple(json.loads(str(groups))),
    )


def roster_item_params(owner: str, item: RosterItem) -> Row:
    return (
        owner,
        item.contact,
        item.name,
        str(item.subscription),
        int(item.ask),
        json.dumps(list(item.groups)),
    )
