"""An ``interop_accounts`` row, as the enlisted third-party account. Shared by both engines
(:mod:`interlink.storage.rows`)."""

from __future__ import annotations

from interlink.storage.enlistment import InteropAccount
from interlink.storage.rows import Row


def account_from_row(row: Row) -> InteropAccount:
    jid, provider, subject, user_id, key, enlisted, updated = row
    return InteropAccount(
        str(jid),
        str(provider),
        str(subject),
        None if user_id is None else str(user_id),
        bytes(key),
        float(enlisted),
        float(updated),
    )
