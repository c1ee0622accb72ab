"""The cost of storing a message (and of a login's token id) on SQLite and on PostgreSQL,
through the repositories the hub uses, on this machine.

Both engines durable as the hub runs them: SQLite with ``synchronous = FULL`` (WAL), PostgreSQL
(Debian's, a throwaway cluster this script starts, fsync on) with ``synchronous_commit = on``.
One writer after another (latency: one stored message's cost), and 64 at once (throughput:
what a busy hub gets, SQLite serialising them, PostgreSQL running them side by side).

    .venv/bin/python bench/storage_cost.py [--messages 2000] [--concurrency 64] [--quick]

``--quick`` (bench/README.md): 64 messages, 8 at once, both engines: that it runs, not a figure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

from tests.servers import start_postgres  # noqa: E402

from interlink.storage import Storage, StorageConfig, open_storage  # noqa: E402
from interlink.xmpp.sasl import derive_credentials  # noqa: E402

STANZA = (
    "<message xmlns='jabber:client' from='u1@bench.local/r' to='u2@bench.local' type='chat' "
    "id='{i}'><body>" + "x" * 64 + "</body></message>"
)
OWNERS = 64


async def measure(storage: Storage, messages: int, concurrency: int) -> dict[str, float]:
    creds = derive_credentials("pw", 4096)
    for i in range(OWNERS):
        await storage.accounts.create(f"u{i}@bench.local", creds, time.time())
    cap = 10**9
    # one writer after another
    lat: list[float] = []
    for i in range(messages):
        t0 = time.perf_counter()
        await storage.offline.store(f"u{i % OWNERS}@bench.local", STANZA.format(i=i), 0.0, cap)
        lat.append(time.perf_counter() - t0)
    # many at once, each owner its own queue
    queue = iter(range(messages))

    async def writer() -> None:
        for i in queue:
            await storage.offline.store(f"u{i % OWNERS}@bench.local", STANZA.format(i=i), 0.0, cap)

    t0 = time.perf_counter()
    await asyncio.gather(*(writer() for _ in range(concurrency)))
    concurrent_s = time.perf_counter() - t0
    # a login's token id (every OAUTHBEARER login writes one), many at once
    ids = iter(range(messages))

    async def login() -> None:
        for i in ids:
            await storage.enlistment.remember_jti("https://p", f"jti-{i}", 2e9, time.time())

    t0 = time.perf_counter()
    await asyncio.gather(*(login() for _ in range(concurrency)))
    jti_s = time.perf_counter() - t0
    lat.sort()
    return {
        "store_serial_us_median": round(statistics.median(lat) * 1e6),
        "store_serial_us_p99": round(lat[int(len(lat) * 0.99)] * 1e6),
        "store_serial_per_s": round(messages / sum(lat)),
        f"store_{concurrency}_at_once_per_s": round(messages / concurrent_s),
        f"login_jti_{concurrency}_at_once_per_s": round(messages / jti_s),
    }


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--messages", type=int, default=2000)
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--quick", action="store_true", help="64 messages, 8 at once: that it runs")
    args = p.parse_args()
    if args.quick:
        args.messages, args.concurrency = 64, 8
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        sqlite = await open_storage(
            StorageConfig(sqlite_path=Path(tmp) / "bench.db", sqlite_synchronous="FULL")
        )
        try:
            results["sqlite (FULL)"] = await measure(sqlite, args.messages, args.concurrency)
        finally:
            await sqlite.close()
    server = start_postgres(durable=True)
    try:
        dsn = server.database()
        pg = await open_storage(
            StorageConfig(engine="postgres", postgres_dsn=dsn, postgres_pool_size=16)
        )
        try:
            results["postgresql (fsync on)"] = await measure(pg, args.messages, args.concurrency)
        finally:
            await pg.close()
    finally:
        server.stop()
    print(json.dumps({"cpus": os.cpu_count(), "results": results}, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
