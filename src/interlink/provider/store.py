"""The provider kit's own storage (SQLite): users with scrypt password hashes, the signing key,
the pushes and abuse reports received from the hub, and the metadata of the media it hosts.

Media metadata goes through the hub's own repository class
(:class:`interlink.storage.sqlite.media.SqliteMedia`) on a second, autocommit connection to
the same database file: that repository runs its writes as explicit durable transactions, which
must not interleave with this connection's implicit ones."""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from pathlib import Path

import aiosqlite

from interlink.storage.sqlite.database import SqliteDatabase
from interlink.storage.sqlite.media import SqliteMedia, create_media_tables

_SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    username   TEXT PRIMARY KEY,
    subject    TEXT NOT NULL UNIQUE,
    salt       BLOB NOT NULL,
    hash       BLOB NOT NULL,
    active     INTEGER NOT NULL DEFAULT 1
);
CREATE TABLE IF NOT EXISTS kit_state (name TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS pushes (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    subject     TEXT NOT NULL,
    claims      TEXT NOT NULL,
    received_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS reports (
    report_id   INTEGER PRIMARY KEY,   -- the hub's id: a retried delivery is recorded once
    claims      TEXT NOT NULL,
    received_at REAL NOT NULL
);
"""


def _hash(password: str, salt: bytes) -> bytes:
    return hashlib.scrypt(password.encode(), salt=salt, n=2**14, r=8, p=1, dklen=32)


@dataclass(frozen=True, slots=True)
class KitUser:
    username: str
    subject: str
    active: bool


class KitStore:
    def __init__(self, conn: aiosqlite.Connection, path: Path | None = None) -> None:
        self._conn = conn
        self._path = path
        self._media_conn: aiosqlite.Connection | None = None

    @classmethod
    async def open(cls, path: Path) -> KitStore:
        conn = await aiosqlite.connect(str(path))
        await conn.execute("PRAGMA journal_mode=WAL")
        await conn.executescript(_SCHEMA)
        await conn.commit()
        return cls(conn, path)

    async def media_repository(self) -> SqliteMedia:
        """The media metadata repository, on its own connection (created on first call)."""
        if self._path is None:
            raise ValueError("the media repository needs a KitStore opened from a file")
        if self._media_conn is None:
            conn = await aiosqlite.connect(str(self._path), isolation_level=None)
            await conn.execute("PRAGMA synchronous=FULL")
            await conn.execute("PRAGMA busy_timeout=10000")
            await create_media_tables(conn)
            self._media_conn = conn
        return SqliteMedia(SqliteDatabase(self._media_conn))

    async def close(self) -> None:
        if self._media_conn is not None:
            await self._media_conn.close()
        await self._conn.close()

    async def add_user(self, username: str, password: str) -> KitUser:
        salt = secrets.token_bytes(16)
        subject = "u-" + secrets.token_hex(8)  # the provider's internal id, never the username
        try:
            await self._conn.execute(
                "INSERT INTO users (username, subject, salt, hash) VALUES (?, ?, ?, ?)",
                (username, subject, salt, _hash(password, salt)),
            )
            await self._conn.commit()
        except aiosqlite.IntegrityError:
            raise ValueError(f"user {username} exists already") from None
        return KitUser(username, subject, True)

    async def set_active(self, username: str, active: bool) -> None:
        cur = await self._conn.execute(
            "UPDATE users SET active = ? WHERE username = ?", (int(active), username)
        )
        await self._conn.commit()
        if cur.rowcount != 1:
            raise ValueError(f"no user {username}")

    async def check_password(self, username: str, password: str) -> KitUser | None:
        async with self._conn.execute(
            "SELECT subject, salt, hash, active FROM users WHERE username = ?", (username,)
        ) as cur:
            row = await cur.fetchone()
        if row is None:
            _hash(password, b"\0" * 16)  # same work for unknown users
            return None
        if not hmac.compare_digest(_hash(password, bytes(row[1])), bytes(row[2])):
            return None
        return KitUser(username, str(row[0]), bool(row[3]))

    async def by_subject(self, subject: str) -> KitUser | None:
        async with self._conn.execute(
            "SELECT username, active FROM users WHERE subject = ?", (subject,)
        ) as cur:
            row = await cur.fetchone()
        return None if row is None else KitUser(str(row[0]), subject, bool(row[1]))

    async def signing_seed(self) -> bytes:
        async with self._conn.execute(
            "SELECT value FROM kit_state WHERE name = 'signing-seed'"
        ) as cur:
            row = await cur.fetchone()
        if row is not None:
            return bytes(row[0])
        seed = secrets.token_bytes(32)
        await self._conn.execute(
            "INSERT INTO kit_state (name, value) VALUES ('signing-seed', ?)", (seed,)
        )
        await self._conn.commit()
        return seed

    async def record_push(self, subject: str, claims: dict[str, object], now: float) -> None:
        await self._conn.execute(
            "INSERT INTO pushes (subject, claims, received_at) VALUES (?, ?, ?)",
            (subject, json.dumps(claims), now),
        )
        await self._conn.commit()

    async def pushes(self, subject: str) -> list[dict[str, object]]:
        async with self._conn.execute(
            "SELECT claims FROM pushes WHERE subject = ? ORDER BY seq", (subject,)
        ) as cur:
            return [json.loads(str(r[0])) for r in await cur.fetchall()]

    async def record_report(self, claims: dict[str, object], now: float) -> None:
        await self._conn.execute(
            "INSERT OR IGNORE INTO reports (report_id, claims, received_at) VALUES (?, ?, ?)",
            (claims.get("report_id"), json.dumps(claims), now),
        )
        await self._conn.commit()

    async def reports(self) -> list[dict[str, object]]:
        async with self._conn.execute(
            "SELECT claims FROM reports ORDER BY received_at, report_id"
        ) as cur:
            return [json.loads(str(r[0])) for r in await cur.fetchall()]
