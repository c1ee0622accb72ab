"""The ``credentials`` rows of an account (one per SCRAM mechanism), as stored credentials. Shared
by both engines (:mod:`interlink.storage.rows`)."""

from __future__ import annotations

from interlink.storage.rows import Row
from interlink.xmpp.sasl import ScramCredentials, StoredCredentials


def credentials_from_rows(rows: list[Row]) -> StoredCredentials | None:
    if not rows:
        return None
    return StoredCredentials(
        {
            str(r[0]): ScramCredentials(bytes(r[1]), bytes(r[2]), bytes(r[3]), int(r[4]))
            for r in rows
        }
    )
