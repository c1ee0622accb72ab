"""Interop settings, conversations and reports, to and from their rows (migration 0005). Shared by
both engines (:mod:`interlink.storage.rows`)."""

from __future__ import annotations

import json

from interlink.storage.policy import (
    AttachedMessage,
    Conversation,
    ConversationState,
    Reach,
    Report,
)
from interlink.storage.rows import Row
from interlink.xmpp.ext.interop import InboxMode, InteropSettings


def reach_from_row(row: Row | None) -> Reach:
    if row is None or row[0] is None:
        return Reach(False)
    if row[1] is None:
        return Reach(True)
    providers = None if row[2] is None else frozenset(json.loads(str(row[2])))
    return Reach(
        True,
        InteropSettings(
            enabled=bool(row[1]),
            providers=providers,
            inbox=InboxMode(str(row[3])),
            discoverable=bool(row[4]),
            share_activity=bool(row[5]),
        ),
    )


def report_from_row(row: Row) -> Report:
    messages = tuple(AttachedMessage(**m) for m in json.loads(str(row[6])))
    return Report(
        id=int(str(row[0])),
        reporter=str(row[1]),
        reported=str(row[2]),
        provider_id=None if row[3] is None else str(row[3]),
        reason=str(row[4]),
        text=str(row[5]),
        messages=messages,
        created_at=float(str(row[7])),
        forwarded_at=None if row[8] is None else float(str(row[8])),
        forward_error=None if row[9] is None else str(row[9]),
        forward_done=bool(row[10]),
        room=None if row[11] is None else str(row[11]),
    )


def conversation_from_row(row: Row) -> Conversation:
    return Conversation(str(row[0]), ConversationState(row[1]), int(row[2]), float(row[3]))


def settings_params(jid: str, settings: InteropSettings, now: float) -> Row:
    providers = None if settings.providers is None else json.dumps(sorted(settings.providers))
    return (
        jid,
        int(settings.enabled),
        providers,
        str(settings.inbox),
        int(settings.discoverable),
        int(settings.share_activity),
        now,
    )


def report_params(report: Report) -> Row:
    messages = json.dumps(
        [{"id": m.id, "at": m.at, "body": m.body} for m in report.messages],
        ensure_ascii=False,
    )
    return (
        report.reporter,
        report.reported,
        report.provider_id,
        report.reason,
        report.text,
        messages,
        report.created_at,
        report.room,
    )
