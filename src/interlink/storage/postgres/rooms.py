"""PostgreSQL: the group service's rooms and affiliations (migration 0017)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, fields

from psycopg import errors

from interlink.errors import RoomExistsError
from interlink.storage.postgres.database import PostgresDatabase, fetch_one, lock
from interlink.storage.rooms import StoredMember, StoredRoom
from interlink.xmpp.ext.muc import Affiliation, RoomConfig

_CONFIG_FIELDS = frozenset(f.name for f in fields(RoomConfig))


def _config_json(config: RoomConfig) -> str:
    return json.dumps(asdict(config), sort_keys=True)


def _config(text: str) -> RoomConfig:
    """A stored configuration; fields added to RoomConfig since take their defaults."""
    data = json.loads(text)
    return RoomConfig(**{k: v for k, v in data.items() if k in _CONFIG_FIELDS})


class _OverLimit(Exception):
    """Inside :meth:`PostgresRooms.create`: undo the insert."""


class PostgresRooms:
    def __init__(self, db: PostgresDatabase) -> None:
        self._db = db

    async def get(self, room: str) -> tuple[StoredRoom, list[StoredMember]] | None:
        async with self._db.transaction() as conn:  # the room and its members as of one moment
            row = await fetch_one(
                conn,
                "SELECT jid, service, config, subject, subject_by, created FROM rooms "
                "WHERE jid = %s",
                (room,),
            )
            if row is None:
                return None
            cur = await conn.execute(
                "SELECT jid, affiliation, invited_by FROM room_members WHERE room = %s "
                "ORDER BY jid",
                (room,),
            )
            rows = await cur.fetchall()
        stored = StoredRoom(
            str(row[0]), str(row[1]), _config(str(row[2])), str(row[3]), str(row[4]), float(row[5])
        )
        members = [
            StoredMember(str(r[0]), Affiliation(str(r[1])), None if r[2] is None else str(r[2]))
            for r in rows
        ]
        return stored, members

    async def create(self, room: StoredRoom, owner: str, *, max_owned: int) -> bool:
        try:
            async with self._db.transaction() as conn:
                await lock(conn, "rooms-owned:" + owner)  # the count sees every creation
                try:
                    await conn.execute(
                        "INSERT INTO rooms (jid, service, config, subject, subject_by, public, "
                        "created) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                        (
                            room.jid,
                            room.service,
                            _config_json(room.config),
                            room.subject,
                            room.subject_by,
                            int(room.config.public),
                            room.created,
                        ),
                    )
                except errors.UniqueViolation:  # the transaction is rolled back as this leaves
                    raise RoomExistsError(room.jid) from None
                await conn.execute(
                    "INSERT INTO room_members (room, jid, affiliation, invited_by) "
                    "VALUES (%s, %s, 'owner', NULL)",
                    (room.jid, owner),
                )
                row = await fetch_one(
                    conn,
                    "SELECT COUNT(*) FROM room_members WHERE jid = %s AND affiliation = 'owner'",
                    (owner,),
                )
                assert row is not None
                if int(row[0]) > max_owned:
                    raise _OverLimit
        except _OverLimit:
            return False
        return True

    async def save(self, room: StoredRoom) -> None:
        async with self._db.transaction() as conn:
            await conn.execute(
                "UPDATE rooms SET config = %s, subject = %s, subject_by = %s, public = %s "
                "WHERE jid = %s",
                (
                    _config_json(room.config),
                    room.subject,
                    room.subject_by,
                    int(room.config.public),
                    room.jid,
                ),
            )

    async def set_members(self, room: str, changes: Mapping[str, StoredMember | None]) -> None:
        async with self._db.transaction() as conn:
            for jid, member in changes.items():
                if member is None:
                    await conn.execute(
                        "DELETE FROM room_members WHERE room = %s AND jid = %s", (room, jid)
                    )
                else:
                    await conn.execute(
                        "INSERT INTO room_members (room, jid, affiliation, invited_by) "
                        "SELECT %s, %s, %s, %s WHERE EXISTS (SELECT 1 FROM rooms WHERE jid = %s) "
                        "ON CONFLICT (room, jid) DO UPDATE SET affiliation = excluded.affiliation, "
                        "invited_by = excluded.invited_by",
                        (room, jid, str(member.affiliation), member.invited_by, room),
                    )

    async def delete(self, room: str) -> bool:
        async with self._db.transaction() as conn:
            cursor = await conn.execute("DELETE FROM rooms WHERE jid = %s", (room,))
            return cursor.rowcount > 0

    async def owned(self, owner: str) -> int:
        row = await self._db.fetch_one(
            "SELECT COUNT(*) FROM room_members WHERE jid = %s AND affiliation = 'owner'", (owner,)
        )
        return int(row[0]) if row else 0

    async def rooms_of(self, member: str) -> list[str]:
        rows = await self._db.fetch_all(
            "SELECT room FROM room_members WHERE jid = %s AND affiliation IN "
            "('owner', 'admin', 'member') ORDER BY room",
            (member,),
        )
        return [str(r[0]) for r in rows]

    async def public(self, service: str) -> list[tuple[str, str]]:
        rows = await self._db.fetch_all(
            "SELECT jid, config FROM rooms WHERE service = %s AND public = 1 ORDER BY jid",
            (service,),
        )
        return [(str(r[0]), _config(str(r[1])).name) for r in rows]
