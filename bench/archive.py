"""Message archive (XEP-0313) throughput of the SQLite repository, in one process.

Durable writes (``archive.durable_before_ack = true``): ``--writers`` concurrent tasks, each a
sender archiving one routed message at a time (two entries: the sender's and the recipient's
copy, as the router writes them) and waiting for the durable commit before its next, for
``--seconds``. Concurrent writes share group commits, which is what a hub with many senders
sees. Then write-behind (the default): batches of 2,048 messages (4,096 rows) a transaction, as
the hub's background writer commits them. Printed: messages/s, archive rows/s, and the messages
per commit. Every figure includes building the entries in Python (not the routing).

Queries: one account's archive of ``--archive-size`` messages (written first) read page by page
(``--page`` messages a page) forwards with RSM ``after``, backwards from the end with
``before``, and forwards filtered to one contact (``with``). Printed: pages/s and messages/s.

    .venv/bin/python bench/archive.py                          # synchronous=FULL (the default)
    .venv/bin/python bench/archive.py --synchronous NORMAL --writers 200
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

from interlink.storage.archive import ArchiveEntry, ArchiveFilter
from interlink.storage.sqlite import open_sqlite
from interlink.storage.sqlite.engine import SqliteStorage
from interlink.xmpp.sasl import derive_credentials

DOMAIN = "bench.local"
BIG = 10_000_000


def stanza(sender: str, to: str, n: int, body_bytes: int) -> str:
    # about what an OMEMO 2 message weighs: the ciphertext is base64, like this filler
    return (
        f'<message xmlns="jabber:client" from="{sender}/r" to="{to}" type="chat" id="{n}">'
        f'<encrypted xmlns="urn:xmpp:omemo:2"><header sid="1"><keys jid="{to}">'
        f'<key rid="2">{"k" * 120}</key></keys></header><payload>{"p" * body_bytes}</payload>'
        "</encrypted><store xmlns='urn:xmpp:hints'/></message>"
    )


async def writes(storage: SqliteStorage, writers: int, seconds: float, body_bytes: int) -> None:
    ids = itertools.count()
    done = 0
    stop = time.perf_counter() + seconds

    async def writer(w: int) -> None:
        nonlocal done
        sender, to = f"u{w}@{DOMAIN}", f"u{(w + 1) % writers}@{DOMAIN}"
        while time.perf_counter() < stop:
            n = next(ids)
            xml = stanza(sender, to, n, body_bytes)
            now = time.time()
            await storage.archive.append(
                [
                    ArchiveEntry(sender, f"a{n}", to, "r", now, xml),
                    ArchiveEntry(to, f"a{n}", sender, "r", now, xml),
                ],
                BIG,
            )
            done += 1

    groups = storage.archive.groups_committed
    started = time.perf_counter()
    await asyncio.gather(*(writer(w) for w in range(writers)))
    took = time.perf_counter() - started
    groups = storage.archive.groups_committed - groups
    print(
        f"writes   {writers:4d} writers: {done / took:9,.0f} messages/s "
        f"({2 * done / took:,.0f} rows/s), {done / max(groups, 1):.1f} messages per commit"
    )


async def batches(storage: SqliteStorage, seconds: float, body_bytes: int) -> None:
    """What the hub's write-behind writer does: 4,096 entries (2,048 messages) a transaction."""
    n = done = 0
    stop = time.perf_counter() + seconds
    started = time.perf_counter()
    while time.perf_counter() < stop:
        entries = []
        for _ in range(2048):
            sender, to = f"u{n % 200}@{DOMAIN}", f"u{(n + 1) % 200}@{DOMAIN}"
            xml = stanza(sender, to, n, body_bytes)
            now = time.time()
            entries.append(ArchiveEntry(sender, f"b{n}", to, "r", now, xml))
            entries.append(ArchiveEntry(to, f"b{n}", sender, "r", now, xml))
            n += 1
        await storage.archive.append(entries, BIG)
        done += 2048
    took = time.perf_counter() - started
    print(
        f"writes   write-behind batches: {done / took:9,.0f} messages/s "
        f"({2 * done / took:,.0f} rows/s), 2048 messages per commit"
    )


async def queries(storage: SqliteStorage, size: int, page: int, body_bytes: int) -> None:
    owner = f"reader@{DOMAIN}"
    peers = [f"p{i}@{DOMAIN}" for i in range(10)]
    for first in range(0, size, 1000):
        await storage.archive.append(
            [
                ArchiveEntry(
                    owner,
                    f"r{n}",
                    peers[n % 10],
                    "",
                    1e9 + n,
                    stanza(peers[0], owner, n, body_bytes),
                )
                for n in range(first, min(size, first + 1000))
            ],
            BIG,
        )

    async def walk(label: str, where: ArchiveFilter, *, backwards: bool) -> None:
        pages = messages = 0
        after: str | None = None
        before: str | None = "" if backwards else None
        started = time.perf_counter()
        while True:
            got = await storage.archive.page(owner, where, after=after, before=before, limit=page)
            assert got is not None
            pages += 1
            messages += len(got.messages)
            if got.complete or not got.messages:
                break
            if backwards:
                before = got.messages[0].id
            else:
                after = got.messages[-1].id
        took = time.perf_counter() - started
        print(
            f"queries  {label:<22} {pages / took:9,.0f} pages/s ({messages / took:,.0f} "
            f"messages/s; {pages} pages of {page})"
        )

    await walk("forwards (after)", ArchiveFilter(), backwards=False)
    await walk("backwards (before)", ArchiveFilter(), backwards=True)
    await walk("with one contact", ArchiveFilter(peer=peers[3]), backwards=False)


async def main(opts: argparse.Namespace) -> None:
    folder = Path(tempfile.mkdtemp(prefix="interlink-archive-bench-"))
    try:
        storage = await open_sqlite(folder / "hub.db", synchronous=opts.synchronous)
        creds = derive_credentials("pw", 4096)
        for i in range(max(opts.writers)):
            await storage.accounts.create(f"u{i}@{DOMAIN}", creds, time.time())
        await storage.accounts.create(f"reader@{DOMAIN}", creds, time.time())
        print(
            f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {platform.node()}, "
            f"{os.cpu_count()} CPUs, Python {platform.python_version()}, "
            f"synchronous={opts.synchronous}, payload {opts.body_bytes} B"
        )
        for writers in opts.writers:
            await writes(storage, writers, opts.seconds, opts.body_bytes)
        await batches(storage, opts.seconds, opts.body_bytes)
        await queries(storage, opts.archive_size, opts.page, opts.body_bytes)
        await storage.close()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--synchronous", default="FULL", choices=["NORMAL", "FULL"])
    p.add_argument("--writers", type=int, nargs="+", default=[1, 20, 200])
    p.add_argument("--seconds", type=float, default=5.0, help="per writer count [5]")
    p.add_argument("--archive-size", type=int, default=100_000, help="for the queries [100000]")
    p.add_argument("--page", type=int, default=250, help="messages a page [250]")
    p.add_argument("--body-bytes", type=int, default=400, help="ciphertext filler [400]")
    p.add_argument("--quick", action="store_true", help="a few seconds (bench/README.md)")
    opts = p.parse_args()
    if opts.quick:
        opts.writers, opts.seconds, opts.archive_size = [1, 5], 0.5, 2000
    asyncio.run(main(opts))
