"""SQLite: message archives and archiving preferences (migration 0014), and the rooms' archives
(migration 0019: the same tables, owned by a room, so one class serves both).

Messages are written by a group commit (:mod:`interlink.storage.sqlite.group`): the archive
copies of messages routed at the same time share one transaction and one fsync, so archiving
costs a routed message its place in a group, not an fsync of its own. The per-account quota is
enforced in the same transaction: ``archive_counts`` (kept by triggers) says which archives went
past it, and their oldest messages are deleted. Retention deletes in bounded batches, one
transaction each, so message writes are never held up for long.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping, Sequence

import aiosqlite

from interlink.storage.archive import ArchivedMessage, ArchiveEntry, ArchiveFilter, ArchivePage
from interlink.storage.sqlite.database import Row, SqliteDatabase
from interlink.storage.sqlite.group import GroupCommit
from interlink.xmpp.ext.mam import Default, Prefs

PRUNE_BATCH = 10_000  # rows one retention transaction deletes

_Item = tuple[Sequence[ArchiveEntry], int]


def _message(row: Row) -> ArchivedMessage:
    return ArchivedMessage(str(row[0]), float(row[1]), str(row[2]), str(row[3]))


class SqliteMessageArchive:
    """The messages of one kind of archive: ``messages`` and ``counts`` tables whose owners are
    the ``jid`` column of ``owners`` (table names are this module's constants, never input)."""

    def __init__(
        self,
        db: SqliteDatabase,
        *,
        messages: str = "archive_messages",
        counts: str = "archive_counts",
        owners: str = "accounts",
    ) -> None:
        self._db = db
        self._m, self._c, self._o = messages, counts, owners
        self._writes: GroupCommit[_Item, None] = GroupCommit(self._write, max_group=256)

    @property
    def groups_committed(self) -> int:
        """How many group commits wrote archive entries (for tests and metrics)."""
        return self._writes.groups

    async def append(self, entries: Sequence[ArchiveEntry], max_messages: int) -> None:
        if entries:
            await self._writes.submit((entries, max_messages))

    async def _write(self, items: list[_Item]) -> list[None]:
        rows: list[ArchiveEntry] = []  # in the columns' order: bound as they are
        quota: dict[str, int] = {}
        added: dict[str, int] = {}
        for entries, max_messages in items:
            rows.extend(entries)
            for e in entries:
                owner = e.owner
                quota[owner] = min(max_messages, quota.get(owner, max_messages))
                added[owner] = added.get(owner, 0) + 1
        try:
            # The usual case, one plain statement for the lot: every owner is an account (the
            # router archives for accounts only) and every id is new (random).
            async with self._db.transaction() as conn:
                await conn.executemany(
                    f"INSERT INTO {self._m} (owner, id, peer, peer_resource, at, stanza) "  # noqa: S608
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    rows,
                )
                await self._count_and_trim(conn, added, quota)
        except sqlite3.IntegrityError:
            # An owner that is no account (removed meanwhile) or an id already in its archive:
            # row by row, skipping those, so the rest of the group is kept.
            async with self._db.transaction() as conn:
                added = {}
                for row in rows:
                    cur = await conn.execute(
                        f"INSERT INTO {self._m} (owner, id, peer, peer_resource, at, "  # noqa: S608
                        f"stanza) SELECT ?, ?, ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM {self._o} "
                        "WHERE jid = ?) ON CONFLICT (owner, id) DO NOTHING",
                        (*row, row[0]),
                    )
                    if cur.rowcount == 1:
                        added[row[0]] = added.get(row[0], 0) + 1
                await self._count_and_trim(conn, added, quota)
        return [None] * len(items)

    async def _count_and_trim(
        self, conn: aiosqlite.Connection, added: dict[str, int], quota: dict[str, int]
    ) -> None:
        """Add what was inserted to the archives' counters, then drop the oldest messages of
        the archives past their quota (the delete trigger subtracts them)."""
        if not added:
            return
        await conn.executemany(
            f"INSERT INTO {self._c} (owner, n) VALUES (?, ?) "  # noqa: S608
            "ON CONFLICT (owner) DO UPDATE SET n = n + excluded.n",
            list(added.items()),
        )
        owners = list(added)
        marks = ",".join("?" * len(owners))
        counts = await conn.execute_fetchall(
            f"SELECT owner, n FROM {self._c} WHERE owner IN ({marks})",  # noqa: S608
            owners,
        )
        for owner, n in counts:
            excess = int(n) - quota[str(owner)]
            if excess > 0:
                await conn.execute(
                    f"DELETE FROM {self._m} WHERE seq IN (SELECT seq FROM "  # noqa: S608
                    f"{self._m} WHERE owner = ? ORDER BY seq LIMIT ?)",
                    (owner, excess),
                )

    async def page(
        self,
        owner: str,
        where: ArchiveFilter,
        *,
        after: str | None,
        before: str | None,
        limit: int,
    ) -> ArchivePage | None:
        named = {n for n in (after, before, where.after_id, where.before_id) if n}
        seqs: dict[str, int] = {}
        if named:
            marks = ",".join("?" * len(named))
            found = await self._db.fetch_all(
                f"SELECT id, seq FROM {self._m} WHERE owner = ? AND id IN ({marks})",  # noqa: S608
                (owner, *named),
            )
            seqs = {str(r[0]): int(r[1]) for r in found}
            if len(seqs) != len(named):
                return None
        conds = ["owner = ?"]
        params: list[object] = [owner]
        if where.peer is not None:
            conds.append("peer = ?")
            params.append(where.peer)
            if where.peer_resource is not None:
                conds.append("peer_resource = ?")
                params.append(where.peer_resource)
        if where.start is not None:
            conds.append("at >= ?")
            params.append(where.start)
        if where.end is not None:
            conds.append("at <= ?")
            params.append(where.end)
        if where.after_id is not None:
            conds.append("seq > ?")
            params.append(seqs[where.after_id])
        if where.before_id is not None:
            conds.append("seq < ?")
            params.append(seqs[where.before_id])
        if where.ids:
            conds.append(f"id IN ({','.join('?' * len(where.ids))})")
            params.extend(where.ids)
        base = " AND ".join(conds)
        if before is not None:
            bound = f" AND seq < {seqs[before]:d}" if before else ""
            order = "DESC"
        else:
            bound = f" AND seq > {seqs[after]:d}" if after else ""
            order = "ASC"
        rows = await self._db.fetch_all(
            f"SELECT id, at, stanza, peer, seq FROM {self._m} WHERE {base}{bound} "  # noqa: S608
            f"ORDER BY seq {order} LIMIT ?",
            (*params, limit + 1),
        )
        complete = len(rows) <= limit
        rows = rows[:limit]
        if order == "DESC":
            rows.reverse()
        # The size of the set and the page's position in it, in one hop. A whole archive's
        # size is its counter; a position is counted on the side nearer where paging started
        # (the start when paging forwards, the end when paging backwards), each a range of one
        # index, not the whole set.
        if len(conds) == 1:
            total_sql = f"SELECT n FROM {self._c} WHERE owner = ?"  # noqa: S608
            total_params: list[object] = [owner]
        else:
            total_sql = f"SELECT COUNT(*) FROM {self._m} WHERE {base}"  # noqa: S608
            total_params = list(params)
        first_seq = int(rows[0][4]) if rows else 0
        side = "seq >= ?" if order == "DESC" else "seq < ?"
        counted = await self._db.fetch_one(
            f"SELECT ({total_sql}), (SELECT COUNT(*) FROM {self._m} "  # noqa: S608
            f"WHERE {base} AND {side})",
            (*total_params, *params, first_seq),
        )
        assert counted is not None
        total = int(counted[0] or 0)
        index = None
        if rows:
            index = total - int(counted[1]) if order == "DESC" else int(counted[1])
        return ArchivePage([_message(r) for r in rows], total, index, complete)

    async def edges(self, owner: str) -> tuple[ArchivedMessage, ArchivedMessage] | None:
        rows = await self._db.fetch_all(
            f"SELECT * FROM (SELECT id, at, stanza, peer FROM {self._m} WHERE owner = ? "  # noqa: S608
            f"ORDER BY seq ASC LIMIT 1) UNION ALL SELECT * FROM (SELECT id, at, stanza, peer "
            f"FROM {self._m} WHERE owner = ? ORDER BY seq DESC LIMIT 1)",
            (owner, owner),
        )
        if not rows:
            return None
        return _message(rows[0]), _message(rows[-1])

    async def count(self, owner: str) -> int:
        row = await self._db.fetch_one(
            f"SELECT n FROM {self._c} WHERE owner = ?",  # noqa: S608
            (owner,),
        )
        return int(row[0]) if row else 0

    async def prune(self, older_than: float) -> int:
        # Archive times grow with seq (they are the hub's clock when it archived), so what is
        # older than the cutoff is everything before the first newer row in rowid order: found
        # by reading the rows to remove and one more, without an index on the time.
        row = await self._db.fetch_one(
            f"SELECT COALESCE((SELECT seq FROM {self._m} WHERE at >= ? ORDER BY seq "  # noqa: S608
            f"LIMIT 1), (SELECT COALESCE(MAX(seq), 0) + 1 FROM {self._m}))",
            (older_than,),
        )
        assert row is not None
        cutoff = int(row[0])
        removed = 0
        while True:
            async with self._db.transaction() as conn:
                cur = await conn.execute(
                    f"DELETE FROM {self._m} WHERE seq IN (SELECT seq FROM "  # noqa: S608
                    f"{self._m} WHERE seq < ? ORDER BY seq LIMIT ?)",
                    (cutoff, PRUNE_BATCH),
                )
                done = cur.rowcount
            removed += done
            if done < PRUNE_BATCH:
                return removed


class SqliteArchive(SqliteMessageArchive):
    """The accounts' archives (migration 0014) and their preferences."""

    async def get_prefs(self, owner: str) -> Prefs | None:
        row = await self._db.fetch_one(
            "SELECT default_mode, always, never FROM archive_prefs WHERE owner = ?", (owner,)
        )
        return None if row is None else _prefs(row)

    async def set_prefs(self, owner: str, prefs: Prefs) -> None:
        async with self._db.exclusive() as conn:
            await conn.execute(
                "INSERT OR REPLACE INTO archive_prefs (owner, default_mode, always, never) "
                "VALUES (?, ?, ?, ?)",
                (owner, str(prefs.default), json.dumps(prefs.always), json.dumps(prefs.never)),
            )

    async def all_prefs(self) -> Mapping[str, Prefs]:
        rows = await self._db.fetch_all(
            "SELECT owner, default_mode, always, never FROM archive_prefs"
        )
        return {str(r[0]): _prefs(r[1:]) for r in rows}


class SqliteRoomArchive(SqliteMessageArchive):
    """The rooms' archives (migration 0019): removed with their room."""

    def __init__(self, db: SqliteDatabase) -> None:
        super().__init__(
            db, messages="room_archive_messages", counts="room_archive_counts", owners="rooms"
        )


def _prefs(row: Row) -> Prefs:
    return Prefs(Default(str(row[0])), tuple(json.loads(row[1])), tuple(json.loads(row[2])))
