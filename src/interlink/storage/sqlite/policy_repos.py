"""SQLite repository of the consent and abuse rules (:mod:`interlink.hub.policy`)."""

from __future__ import annotations

import json
import sqlite3
from typing import TYPE_CHECKING

from interlink.errors import AccountNotFoundError, PhoneInUseError
from interlink.storage.policy import (
    AttachedMessage,
    Conversation,
    ConversationState,
    Reach,
    Report,
)
from interlink.xmpp.ext.interop import InboxMode, InteropSettings

if TYPE_CHECKING:
    from interlink.storage.sqlite.engine import SqliteDatabase

# One query answers "does it exist" and "what are its settings", so that a missing account and
# one that has not opted in take the same way through the rules.
_REACH = (
    "SELECT a.jid, s.enabled, s.providers, s.inbox, s.discoverable, s.share_activity "
    "FROM (SELECT ? AS jid) q LEFT JOIN accounts a ON a.jid = q.jid "
    "LEFT JOIN interop_settings s ON s.jid = q.jid"
)
_REACH_BY_PHONE = (
    "SELECT a.jid, s.enabled, s.providers, s.inbox, s.discoverable, s.share_activity "
    "FROM (SELECT ? AS phone) q LEFT JOIN account_phones p ON p.phone = q.phone "
    "LEFT JOIN accounts a ON a.jid = p.jid LEFT JOIN interop_settings s ON s.jid = p.jid"
)
_REPORTS = (
    "SELECT id, reporter, reported, provider_id, reason, text, messages, created_at, "
    "forwarded_at, forward_error, forward_done FROM reports "
)
_REPORTS_LATEST = _REPORTS + "ORDER BY id DESC LIMIT ?"
_REPORTS_UNFORWARDED = (
    _REPORTS + "WHERE provider_id IS NOT NULL AND forward_done = 0 ORDER BY id LIMIT ?"
)
_REPORT_BY_ID = _REPORTS + "WHERE id = ?"


def _reach(row: sqlite3.Row | tuple[object, ...] | None) -> Reach:
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


def _report(row: sqlite3.Row | tuple[object, ...]) -> Report:
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
    )


class SqlitePolicy:
    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db

    async def reach(self, jid: str) -> Reach:
        async with self._db.conn.execute(_REACH, (jid,)) as cur:
            return _reach(await cur.fetchone())

    async def put_settings(self, jid: str, settings: InteropSettings, now: float) -> None:
        providers = None if settings.providers is None else json.dumps(sorted(settings.providers))
        async with self._db.transaction() as conn:
            try:
                await conn.execute(
                    "INSERT OR REPLACE INTO interop_settings (jid, enabled, providers, inbox, "
                    "discoverable, share_activity, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        jid,
                        int(settings.enabled),
                        providers,
                        str(settings.inbox),
                        int(settings.discoverable),
                        int(settings.share_activity),
                        now,
                    ),
                )
            except sqlite3.IntegrityError:
                raise AccountNotFoundError(f"no account {jid}") from None

    async def set_phone(self, jid: str, phone: str | None) -> None:
        async with self._db.transaction() as conn:
            await conn.execute("DELETE FROM account_phones WHERE jid = ?", (jid,))
            if phone is None:
                return
            try:
                await conn.execute(
                    "INSERT INTO account_phones (phone, jid) VALUES (?, ?)", (phone, jid)
                )
            except sqlite3.IntegrityError as exc:
                if "FOREIGN KEY" in str(exc):
                    raise AccountNotFoundError(f"no account {jid}") from None
                raise PhoneInUseError(f"{phone} belongs to another account") from None

    async def phone_of(self, jid: str) -> str | None:
        async with self._db.conn.execute(
            "SELECT phone FROM account_phones WHERE jid = ?", (jid,)
        ) as cur:
            row = await cur.fetchone()
        return None if row is None else str(row[0])

    async def reach_by_phone(self, phone: str) -> tuple[str | None, Reach]:
        async with self._db.conn.execute(_REACH_BY_PHONE, (phone,)) as cur:
            row = await cur.fetchone()
        reach = _reach(row)
        return (str(row[0]) if reach.exists and row is not None else None), reach

    async def conversation(self, owner: str, peer: str) -> Conversation | None:
        async with self._db.conn.execute(
            "SELECT peer, state, messages, created_at FROM interop_conversations "
            "WHERE owner = ? AND peer = ?",
            (owner, peer),
        ) as cur:
            row = await cur.fetchone()
        if row is None:
            return None
        return Conversation(str(row[0]), ConversationState(row[1]), int(row[2]), float(row[3]))

    async def put_conversation(
        self, owner: str, peer: str, state: ConversationState, messages: int, now: float
    ) -> None:
        try:
            async with self._db.transaction() as conn:
                await conn.execute(
                    "INSERT INTO interop_conversations (owner, peer, state, messages, created_at, "
                    "updated_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (owner, peer) DO UPDATE "
                    "SET state = excluded.state, messages = excluded.messages, "
                    "updated_at = excluded.updated_at",
                    (owner, peer, str(state), messages, now, now),
                )
        except sqlite3.IntegrityError:
            raise AccountNotFoundError(f"no account {owner}") from None

    async def conversations(self, owner: str, state: ConversationState) -> list[Conversation]:
        async with self._db.conn.execute(
            "SELECT peer, state, messages, created_at FROM interop_conversations "
            "WHERE owner = ? AND state = ? ORDER BY created_at, peer",
            (owner, str(state)),
        ) as cur:
            rows = await cur.fetchall()
        return [
            Conversation(str(r[0]), ConversationState(r[1]), int(r[2]), float(r[3])) for r in rows
        ]

    async def blocklists(self) -> dict[str, set[str]]:
        lists: dict[str, set[str]] = {}
        async with self._db.conn.execute("SELECT owner, blocked FROM blocklist") as cur:
            async for row in cur:
                lists.setdefault(str(row[0]), set()).add(str(row[1]))
        return lists

    async def block(self, owner: str, items: list[str], now: float) -> None:
        async with self._db.transaction() as conn:
            await conn.executemany(
                "INSERT OR IGNORE INTO blocklist (owner, blocked, created_at) VALUES (?, ?, ?)",
                [(owner, item, now) for item in items],
            )

    async def unblock(self, owner: str, items: list[str] | None) -> None:
        async with self._db.transaction() as conn:
            if items is None:
                await conn.execute("DELETE FROM blocklist WHERE owner = ?", (owner,))
            else:
                await conn.executemany(
                    "DELETE FROM blocklist WHERE owner = ? AND blocked = ?",
                    [(owner, item) for item in items],
                )

    async def add_report(self, report: Report) -> int:
        messages = json.dumps(
            [{"id": m.id, "at": m.at, "body": m.body} for m in report.messages],
            ensure_ascii=False,
        )
        async with self._db.transaction() as conn:
            cur = await conn.execute(
                "INSERT INTO reports (reporter, reported, provider_id, reason, text, messages, "
                "created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    report.reporter,
                    report.reported,
                    report.provider_id,
                    report.reason,
                    report.text,
                    messages,
                    report.created_at,
                ),
            )
            assert cur.lastrowid is not None
            return cur.lastrowid

    async def reports(self, limit: int, *, unforwarded: bool = False) -> list[Report]:
        query = _REPORTS_UNFORWARDED if unforwarded else _REPORTS_LATEST
        async with self._db.conn.execute(query, (limit,)) as cur:
            return [_report(row) for row in await cur.fetchall()]

    async def report(self, report_id: int) -> Report | None:
        async with self._db.conn.execute(_REPORT_BY_ID, (report_id,)) as cur:
            row = await cur.fetchone()
        return None if row is None else _report(row)

    async def report_forwarded(
        self, report_id: int, now: float | None, error: str | None, *, done: bool
    ) -> None:
        async with self._db.transaction() as conn:
            await conn.execute(
                "UPDATE reports SET forwarded_at = ?, forward_error = ?, forward_done = ? "
                "WHERE id = ?",
                (now, error, int(done), report_id),
            )
