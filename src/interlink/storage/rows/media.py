"""A ``media`` row's parameters, from an upload's record. Shared by both engines
(:mod:`interlink.storage.rows`)."""

from __future__ import annotations

from interlink.storage.media import MediaRecord
from interlink.storage.rows import Row


def record_params(r: MediaRecord) -> Row:
    return (
        r.slot_id,
        r.file_id,
        r.owner,
        r.filename,
        r.size,
        r.content_type,
        r.token_hash,
        r.created_at,
        r.put_expires_at,
        r.stored_at,
        r.expires_at,
    )
