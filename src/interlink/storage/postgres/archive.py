"""PostgreSQL: message archives and archiving preferences (migration 0014), and the rooms'
archives (migration 0019: the same tables, owned by a room, so one class serves both).

As on SQLite, messages are written by a group commit (the engine-neutral
:class:`~interlink.storage.sqlite.group.GroupCommit`): the archive copies of messages routed at
the same time share one transaction and one WAL flush. The per-account quota is enforced in the
same transaction: ``archive_counts`` says which archives went past it, and their oldest messages
are deleted (the statement trigger of migration 0014 subtracts them).

What PostgreSQL adds, running writers side by side (on other connections and other nodes):

- a group first takes, in sorted order, the advisory lock of each archive it writes
  (``archive:<owner>``; a room's ``room-archive:<room>``), held until it commits. The quota
  check then sees every write to that archive, and, since an archive's rows get their ``seq``
  only under its lock, ``seq`` order within an archive is commit order: a client paging "after"
  a message never skips one committed later with a smaller ``seq``. Sorted, two groups sharing
  archives wait for each other, never deadlock.
- retention and the writers share one more lock per kind of archive, ``archive-prune`` (rooms:
  ``room-archive-prune``): writers take it shared, each retention batch exclusively. A batch
  deletes many archives' oldest rows and its trigger updates their counters, in an order of its
  own; a group holds some of those counters and deletes some of those rows, in another. Without
  the lock the two could deadlock.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from psycopg import errors

from interlink.storage.archive import ArchivedMessage, ArchiveEntry, ArchiveFilter, ArchivePage
from interlink.storage.postgres.database import (
    Connection,
    PostgresDatabase,
    Row,
    fetch_all,
    lock,
    lock_all,
)
from interlink.storage.sqlite.group import GroupCommit
from interlink.xmpp.ext.mam import Default, Prefs

PRUNE_BATCH = 10_000  # rows one retention transaction deletes

_Item = tuple[Sequence[ArchiveEntry], int]


def _message(row: Row) -> ArchivedMessage:
    return ArchivedMessage(str(row[0]), float(row[1]), str(row[2]), str(row[3]))


class PostgresMessageArchive:
    """The messages of one kind of archive: ``messages`` and ``counts`` tables whose owners are
    the ``jid`` column of ``owners``, each archive under the advisory lock ``<kind>:<owner>``
    (table names and kinds are this module's constants, never input)."""

    def __init__(
        self,
        db: PostgresDatabase,
        *,
        messages: str = "archive_messages",
        counts: str = "archive_counts",
        owners: str = "accounts",
        kind: str = "archive",
    ) -> None:
        self._db = db
        self._m, self._c, self._o = messages, counts, owners
        self._kind = kind
        self._prune_lock = kind + "-prune"
        self._writes: GroupCommit[_Item, None] = GroupCommit(self._write, max_group=256)

    @property
    def groups_committed(self) -> int:
        """How many group commits wrote archive entries (for tests and metrics)."""
        return self._writes.groups

    async def _lock_archives(self, conn: Connection, owners: Sequence[str]) -> None:
        await conn.execute(
            "SELECT pg_advisory_xact_lock_shared(hashtextextended(%s, 0))", (self._prune_lock,)
        )
        await lock_all(conn, (f"{self._kind}:{owner}" for owner in owners))

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
            # router archives for accounts only) and every id is new (random). The rows go as
            # one array per column (unnest yields them in order, so seq follows their order):
            # with executemany, this write was a fifth of the hub's main thread at 5,000 msg/s
            # (py-spy), with binary arrays 15 % (docs/performance.md).
            columns = [list(column) for column in zip(*rows, strict=True)]
            async with self._db.transaction() as conn:
                await self._lock_archives(conn, list(added))
                await conn.execute(
                    f"INSERT INTO {self._m} (owner, id, peer, peer_resource, at, "  # noqa: S608
                    "stanza) SELECT * FROM unnest(%b::text[], %b::text[], %b::text[], "
                    "%b::text[], %b::float8[], %b::text[])",
                    columns,
                )
                await self._count_and_trim(conn, added, quota)
        except errors.IntegrityError:
            # An owner that is no account (removed meanwhile) or an id already in its archive:
            # row by row, skipping those, so the rest of the group is kept.
            async with self._db.transaction() as conn:
                await self._lock_archives(conn, list(quota))
                added = {}
                for row in rows:
                    cur = await conn.execute(
                        f"INSERT INTO {self._m} (owner, id, peer, peer_resource, at, "  # noqa: S608
                        "stanza) SELECT %s, %s, %s, %s, %s, %s WHERE EXISTS (SELECT 1 FROM "
                        f"{self._o} WHERE jid = %s) ON CONFLICT (owner, id) DO NOTHING",
                        (*row, row[0]),
                    )
                    if cur.rowcount == 1:
                        added[row[0]] = added.get(row[0], 0) + 1
                await self._count_and_trim(conn, added, quota)
        return [None] * len(items)

    async def _count_and_trim(
        self, conn: Connection, added: dict[str, int], quota: dict[str, int]
    ) -> None:
        """Add what was inserted to the archives' counters, then drop the oldest messages of
        the archives past their quota (the delete trigger subtracts them)."""
        if not added:
            return
        owners = sorted(added)
        await conn.execute(
            f"INSERT INTO {self._c} (owner, n) SELECT * FROM unnest(%b::text[], %b::bigint[]) "  # noqa: S608
            f"ON CONFLICT (owner) DO UPDATE SET n = {self._c}.n + excluded.n",
            (owners, [added[owner] for owner in owners]),
        )
        counts = await fetch_all(
            conn,
            f"SELECT owner, n FROM {self._c} WHERE owner = ANY(%s)",  # noqa: S608
            (list(added),),
        )
        for owner, n in counts:
            excess = int(n) - quota[str(owner)]
            if excess > 0:
                await conn.execute(
                    f"DELETE FROM {self._m} WHERE seq IN (SELECT seq FROM "  # noqa: S608
                    f"{self._m} WHERE owner = %s ORDER BY seq LIMIT %s)",
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
        async with self._db.transaction() as conn:  # the page and its counts from one moment
            return await self._page(conn, owner, where, after=after, before=before, limit=limit)

    async def _page(
        self,
        conn: Connection,
        owner: str,
        where: ArchiveFilter,
        *,
        after: str | None,
        before: str | None,
        limit: int,
    ) -> ArchivePage | None:
        await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        named = {n for n in (after, before, where.after_id, where.before_id) if n}
        seqs: dict[str, int] = {}
        if named:
            found = await fetch_all(
                conn,
                f"SELECT id, seq FROM {self._m} WHERE owner = %s AND id = ANY(%s)",  # noqa: S608
                (owner, list(named)),
            )
            seqs = {str(r[0]): int(r[1]) for r in found}
            if len(seqs) != len(named):
                return None
        conds = ["owner = %s"]
        params: list[object] = [owner]
        if where.peer is not None:
            conds.append("peer = %s")
            params.append(where.peer)
            if where.peer_resource is not None:
                conds.append("peer_resource = %s")
                params.append(where.peer_resource)
        if where.start is not None:
            conds.append("at >= %s")
            params.append(where.start)
        if where.end is not None:
            conds.append("at <= %s")
            params.append(where.end)
        if where.after_id is not None:
            conds.append("seq > %s")
            params.append(seqs[where.after_id])
        if where.before_id is not None:
            conds.append("seq < %s")
            params.append(seqs[where.before_id])
        if where.ids:
            conds.append("id = ANY(%s)")
            params.append(list(where.ids))
        base = " AND ".join(conds)
        if before is not None:
            bound = f" AND seq < {seqs[before]:d}" if before else ""
            order = "DESC"
        else:
            bound = f" AND seq > {seqs[after]:d}" if after else ""
            order = "ASC"
        rows = await fetch_all(
            conn,
            f"SELECT id, at, stanza, peer, seq FROM {self._m} WHERE {base}{bound} "  # noqa: S608
            f"ORDER BY seq {order} LIMIT %s",
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
            total_sql = f"SELECT n FROM {self._c} WHERE owner = %s"  # noqa: S608
            total_params: list[object] = [owner]
        else:
            total_sql = f"SELECT COUNT(*) FROM {self._m} WHERE {base}"  # noqa: S608
            total_params = list(params)
        first_seq = int(rows[0][4]) if rows else 0
        side = "seq >= %s" if order == "DESC" else "seq < %s"
        counted = await fetch_all(
            conn,
            f"SELECT ({total_sql}), (SELECT COUNT(*) FROM {self._m} "  # noqa: S608
            f"WHERE {base} AND {side})",
            (*total_params, *params, first_seq),
        )
        total = int(counted[0][0] or 0)
        index = None
        if rows:
            index = total - int(counted[0][1]) if order == "DESC" else int(counted[0][1])
        return ArchivePage([_message(r) for r in rows], total, index, complete)

    async def edges(self, owner: str) -> tuple[ArchivedMessage, ArchivedMessage] | None:
        rows = await self._db.fetch_all(
            f"SELECT * FROM (SELECT id, at, stanza, peer FROM {self._m} WHERE owner = %s "  # noqa: S608
            "ORDER BY seq ASC LIMIT 1) AS first UNION ALL SELECT * FROM (SELECT id, at, stanza, "
            f"peer FROM {self._m} WHERE owner = %s ORDER BY seq DESC LIMIT 1) AS last",
            (owner, owner),
        )
        if not rows:
            return None
        return _message(rows[0]), _message(rows[-1])

    async def count(self, owner: str) -> int:
        row = await self._db.fetch_one(
            f"SELECT n FROM {self._c} WHERE owner = %s",  # noqa: S608
            (owner,),
        )
        return int(row[0]) if row else 0

    async def prune(self, older_than: float) -> int:
        # Archive times grow with seq (they are the hub's clock when it archived), so what is
        # older than the cutoff is everything before the first newer row in seq order: found
        # by reading the rows to remove and one more, without an index on the time.
        row = await self._db.fetch_one(
            f"SELECT COALESCE((SELECT seq FROM {self._m} WHERE at >= %s ORDER BY seq "  # noqa: S608
            f"LIMIT 1), (SELECT COALESCE(MAX(seq), 0) + 1 FROM {self._m}))",
            (older_than,),
        )
        assert row is not None
        cutoff = int(row[0])
        removed = 0
        while True:
            async with self._db.transaction() as conn:
                await lock(conn, self._prune_lock)  # exclusive: no group writes meanwhile
                cur = await conn.execute(
                    f"DELETE FROM {self._m} WHERE seq IN (SELECT seq FROM "  # noqa: S608
                    f"{self._m} WHERE seq < %s ORDER BY seq LIMIT %s)",
                    (cutoff, PRUNE_BATCH),
                )
                done = cur.rowcount
            removed += done
            if done < PRUNE_BATCH:
                return removed


class PostgresArchive(PostgresMessageArchive):
    """The accounts' archives (migration 0014) and their preferences."""

    async def get_prefs(self, owner: str) -> Prefs | None:
        row = await self._db.fetch_one(
            "SELECT default_mode, always, never FROM archive_prefs WHERE owner = %s", (owner,)
        )
        return None if row is None else _prefs(row)

    async def set_prefs(self, owner: str, prefs: Prefs) -> None:
        async with self._db.transaction() as conn:
            await conn.execute(
                "INSERT INTO archive_prefs (owner, default_mode, always, never) "
                "VALUES (%s, %s, %s, %s) ON CONFLICT (owner) DO UPDATE SET "
                "default_mode = excluded.default_mode, always = excluded.always, "
                "never = excluded.never",
                (owner, str(prefs.default), json.dumps(prefs.always), json.dumps(prefs.never)),
            )

    async def all_prefs(self) -> Mapping[str, Prefs]:
        rows = await self._db.fetch_all(
            "SELECT owner, default_mode, always, never FROM archive_prefs"
        )
        return {str(r[0]): _prefs(r[1:]) for r in rows}


class PostgresRoomArchive(PostgresMessageArchive):
    """The rooms' archives (migration 0019): removed with their room."""

    def __init__(self, db: PostgresDatabase) -> None:
        super().__init__(
            db,
            messages="room_archive_messages",
            counts="room_archive_counts",
            owners="rooms",
            kind="room-archive",
        )


def _prefs(row: Row) -> Prefs:
    return Prefs(Default(str(row[0])), tuple(json.loads(row[1])), tuple(json.loads(row[2])))
