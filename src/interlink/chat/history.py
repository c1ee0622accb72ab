"""The chat's own history: its conversations' messages in a local SQLite file next to the
account's keys, so the next start shows them again. OMEMO messages can be decrypted only once,
so the archive on the hub (XEP-0313) cannot give them back in plaintext; what this device
decrypted is kept here, in plaintext, on the user's device only — as every messenger does.

Only messages are kept (text and file lines with a message id), at most ``max_lines`` (the oldest
go first), each once per conversation, direction and message id; notes of the client are not.
The archive id up to which the hub's archive was read is kept too, for the next catch-up
(:meth:`last_archive_id`), and for each group the one up to which its room's archive was read
(:meth:`last_room_archive_id`).
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from interlink.chat.model import Delivery, Line

FILE = "chat-history.sqlite3"
DEFAULT_MAX_LINES = 10_000


class HistoryError(Exception):
    """The history file could not be read or written; the message says why."""


@dataclass(frozen=True, slots=True)
class Kept:
    """One kept message: the conversation's address, whether it is a group, and its line."""

    peer: str
    room: bool
    line: Line


class ChatHistory:
    """The history file of one account (see the module docstring)."""

    def __init__(self, conn: sqlite3.Connection, max_lines: int) -> None:
        self._conn = conn
        self._max_lines = max_lines

    @classmethod
    def open(cls, path: Path, *, max_lines: int = DEFAULT_MAX_LINES) -> ChatHistory:
        """Open (or create) the file. Raises :class:`HistoryError` when it cannot, and
        ``ValueError`` for a ``max_lines`` below 1."""
        if max_lines < 1:
            raise ValueError("max_lines must be at least 1")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(path, isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            raise HistoryError(f"cannot open the chat history {path}: {exc}") from exc
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA secure_delete=ON")  # what is pruned does not linger
            conn.execute(
                "CREATE TABLE IF NOT EXISTS lines (seq INTEGER PRIMARY KEY AUTOINCREMENT,"
                " peer TEXT NOT NULL, room INTEGER NOT NULL, outgoing INTEGER NOT NULL,"
                " message_id TEXT NOT NULL, at REAL NOT NULL, text TEXT NOT NULL,"
                " flagged INTEGER NOT NULL, UNIQUE (peer, outgoing, message_id))"
            )
            conn.execute(
                "CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value TEXT NOT NULL)"
            )
        except sqlite3.Error as exc:
            conn.close()
            raise HistoryError(f"cannot open the chat history {path}: {exc}") from exc
        return cls(conn, max_lines)

    def load(self) -> list[Kept]:
        """Every kept message, oldest first. Raises :class:`HistoryError`."""
        try:
            rows = self._conn.execute(
                "SELECT peer, room, outgoing, message_id, at, text, flagged FROM lines"
                " ORDER BY at, seq"
            ).fetchall()
        except sqlite3.Error as exc:
            raise HistoryError(f"cannot read the chat history: {exc}") from exc
        kept = []
        for peer, room, outgoing, message_id, at, text, flagged in rows:
            line = Line(text, at, outgoing=bool(outgoing), message_id=message_id)
            line.flagged = bool(flagged)
            if outgoing:
                line.delivery = Delivery.SENT  # what became of it is not kept
            kept.append(Kept(peer, bool(room), line))
        return kept

    def save(self, items: Iterable[Kept]) -> int:
        """Keep these messages (ones kept already are left as they are), then drop the oldest
        beyond ``max_lines``. Returns how many were new. Raises :class:`HistoryError`."""
        rows = [
            (
                k.peer,
                int(k.room),
                int(k.line.outgoing),
                k.line.message_id,
                k.line.at,
                k.line.text,
                int(k.line.flagged),
            )
            for k in items
            if k.line.message_id and not k.line.note
        ]
        if not rows:
            return 0
        try:
            with self._transaction():
                before = self._conn.total_changes
                self._conn.executemany(
                    "INSERT OR IGNORE INTO lines"
                    " (peer, room, outgoing, message_id, at, text, flagged)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?)",
                    rows,
                )
                added = self._conn.total_changes - before
                self._conn.execute(
                    "DELETE FROM lines WHERE seq NOT IN"
                    " (SELECT seq FROM lines ORDER BY at DESC, seq DESC LIMIT ?)",
                    (self._max_lines,),
                )
        except sqlite3.Error as exc:
            raise HistoryError(f"cannot write the chat history: {exc}") from exc
        return added

    @property
    def last_archive_id(self) -> str | None:
        """The archive id of the last message read from the hub's archive, if any."""
        return self._state("last_archive_id")

    def set_last_archive_id(self, archive_id: str | None) -> None:
        """Remember (or, with None, forget) how far the archive was read."""
        self._set_state("last_archive_id", archive_id)

    def last_room_archive_id(self, room: str) -> str | None:
        """The archive id of the last message read from ``room``'s archive, if any."""
        return self._state(f"room_archive_id:{room}")

    def set_last_room_archive_id(self, room: str, archive_id: str | None) -> None:
        """Remember (or, with None, forget) how far ``room``'s archive was read."""
        self._set_state(f"room_archive_id:{room}", archive_id)

    def _state(self, key: str) -> str | None:
        try:
            row = self._conn.execute("SELECT value FROM state WHERE key = ?", (key,)).fetchone()
        except sqlite3.Error as exc:
            raise HistoryError(f"cannot read the chat history: {exc}") from exc
        return None if row is None else str(row[0])

    def _set_state(self, key: str, value: str | None) -> None:
        try:
            if value is None:
                self._conn.execute("DELETE FROM state WHERE key = ?", (key,))
            else:
                self._conn.execute(
                    "INSERT OR REPLACE INTO state (key, value) VALUES (?, ?)", (key, value)
                )
        except sqlite3.Error as exc:
            raise HistoryError(f"cannot write the chat history: {exc}") from exc

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self._conn.close()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")
