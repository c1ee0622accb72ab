"""SQLite: interop settings, phone numbers, conversations, block lists and reports (migration
0005; a report's room, 0021). A settings row's provider list and a report's attached messages
are JSON text columns."""

from __future__ import annotations

import sqlite3

from interlink.errors import AccountNotFoundError, PhoneInUseError
from interlink.storage.policy import (
    Conversation,
    ConversationState,
    PhoneOwner,
    Reach,
    Report,
)
from interlink.storage.rows.policy import (
    conversation_from_row,
    reach_from_row,
    report_from_row,
    report_params,
    settings_params,
)
from interlink.storage.sqlite.changes import RECORD
from interlink.storage.sqlite.database import SqliteDatabase
from interlink.xmpp.ext.interop import InteropSettings

# One query answers "does it exist" and "what are its settings", so that a missing account and
# one that has not opted in take the same way through the rules.
_REACH = (
    "SELECT a.jid, s.enabled, s.providers, s.inbox, s.discoverable, s.share_activity "
    "FROM (SELECT ? AS jid) q LEFT JOIN accounts a ON a.jid = q.jid "
    "LEFT JOIN interop_settings s ON s.jid = q.jid"
)
_REACH_BY_PHONE = (
    "SELECT a.jid, s.enabled, s.providers, s.inbox, s.discoverable, s.share_activity "
    "FROM (SELECT ? AS phone, ? AS service) q "
    "LEFT JOIN account_phones p ON p.phone = q.phone AND p.service = q.service "
    "LEFT JOIN accounts a ON a.jid = p.jid LEFT JOIN interop_settings s ON s.jid = p.jid"
)
_REPORTS = (
    "SELECT id, reporter, reported, provider_id, reason, text, messages, created_at, "
    "forwarded_at, forward_error, forward_done, room FROM reports "
)
_REPORTS_LATEST = _REPORTS + "ORDER BY id DESC LIMIT ?"
_REPORTS_UNFORWARDED = (
    _REPORTS + "WHERE provider_id IS NOT NULL AND forward_done = 0 ORDER BY id LIMIT ?"
)
_REPORT_BY_ID = _REPORTS + "WHERE id = ?"
_CONVERSATIONS = "SELECT peer, state, messages, created_at FROM interop_conversations "


class SqlitePolicy:
    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db

    async def reach(self, jid: str) -> Reach:
        return reach_from_row(await self._db.fetch_one(_REACH, (jid,)))

    async def put_settings(self, jid: str, settings: InteropSettings, now: float) -> None:
        async with self._db.transaction() as conn:
            try:
                await conn.execute(
                    "INSERT OR REPLACE INTO interop_settings (jid, enabled, providers, inbox, "
                    "discoverable, share_activity, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    settings_params(jid, settings, now),
                )
            except sqlite3.IntegrityError:
                raise AccountNotFoundError(f"no account {jid}") from None
            await conn.execute(RECORD, ("settings", jid))  # other processes forget what they cached

    async def set_phone(self, jid: str, phone: str | None) -> None:
        async with self._db.transaction() as conn:
            await conn.execute("DELETE FROM account_phones WHERE jid = ?", (jid,))
            if phone is None:
                return
            try:
                await conn.execute(
                    "INSERT INTO account_phones (service, phone, jid) VALUES (?, ?, ?)",
                    (jid.partition("@")[2], phone, jid),
                )
            except sqlite3.IntegrityError as exc:
                if "FOREIGN KEY" in str(exc):
                    raise AccountNotFoundError(f"no account {jid}") from None
                raise PhoneInUseError(
                    f"{phone} belongs to another account of this service"
                ) from None

    async def phone_of(self, jid: str) -> str | None:
        row = await self._db.fetch_one("SELECT phone FROM account_phones WHERE jid = ?", (jid,))
        return None if row is None else str(row[0])

    async def reach_by_phone(self, phone: str, service: str) -> PhoneOwner:
        row = await self._db.fetch_one(_REACH_BY_PHONE, (phone, service))
        reach = reach_from_row(row)
        return PhoneOwner(str(row[0]) if reach.exists and row is not None else None, reach)

    async def conversation(self, owner: str, peer: str) -> Conversation | None:
        row = await self._db.fetch_one(
            _CONVERSATIONS + "WHERE owner = ? AND peer = ?", (owner, peer)
        )
        return None if row is None else conversation_from_row(row)

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
        rows = await self._db.fetch_all(
            _CONVERSATIONS + "WHERE owner = ? AND state = ? ORDER BY created_at, peer",
            (owner, str(state)),
        )
        return [conversation_from_row(r) for r in rows]

    async def blocklists(self) -> dict[str, set[str]]:
        lists: dict[str, set[str]] = {}
        for owner, blocked in await self._db.fetch_all("SELECT owner, blocked FROM blocklist"):
            lists.setdefault(str(owner), set()).add(str(blocked))
        return lists

    async def blocklist(self, owner: str) -> set[str]:
        rows = await self._db.fetch_all("SELECT blocked FROM blocklist WHERE owner = ?", (owner,))
        return {str(blocked) for (blocked,) in rows}

    async def block(self, owner: str, items: list[str], now: float) -> None:
        async with self._db.transaction() as conn:
            await conn.executemany(
                "INSERT OR IGNORE INTO blocklist (owner, blocked, created_at) VALUES (?, ?, ?)",
                [(owner, item, now) for item in items],
            )
            await conn.execute(RECORD, ("blocklist", owner))  # other processes reload the list

    async def unblock(self, owner: str, items: list[str] | None) -> None:
        async with self._db.transaction() as conn:
            if items is None:
                await conn.execute("DELETE FROM blocklist WHERE owner = ?", (owner,))
            else:
                await conn.executemany(
                    "DELETE FROM blocklist WHERE owner = ? AND blocked = ?",
                    [(owner, item) for item in items],
                )
            await conn.execute(RECORD, ("blocklist", owner))  # other processes reload the list

    async def add_report(self, report: Report) -> int:
        async with self._db.transaction() as conn:
            cur = await conn.execute(
                "INSERT INTO reports (reporter, reported, provider_id, reason, text, messages, "
                "created_at, room) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                report_params(report),
            )
            assert cur.lastrowid is not None
            return cur.lastrowid

    async def reports(self, limit: int, *, unforwarded: bool = False) -> list[Report]:
        query = _REPORTS_UNFORWARDED if unforwarded else _REPORTS_LATEST
        return [report_from_row(row) for row in await self._db.fetch_all(query, (limit,))]

    async def report(self, report_id: int) -> Report | None:
        row = await self._db.fetch_one(_REPORT_BY_ID, (report_id,))
        return None if row is None else report_from_row(row)

    async def report_forwarded(
        self, report_id: int, now: float | None, error: str | None, *, done: bool
    ) -> None:
        async with self._db.transaction() as conn:
            await conn.execute(
                "UPDATE reports SET forwarded_at = ?, forward_error = ?, forward_done = ? "
                "WHERE id = ?",
                (now, error, int(done), report_id),
            )
