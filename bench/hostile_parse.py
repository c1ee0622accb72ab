"""Parser amplification before login: the hub's memory and a bystander's login under attack.

The attack is the one of the hardening issue: on each of N unauthenticated connections, a stream
header, ``<message>`` and 28,000 ``<a b=''/>`` (252 KiB), never closed. The hub runs as its own
process (``loadgen.start_hub``), so its RSS is read honestly from ``/proc/<pid>/status``.

    .venv/bin/python bench/hostile_parse.py                       # 100 connections, held
    .venv/bin/python bench/hostile_parse.py --reconnect 10        # each reconnects for 10 s
    .venv/bin/python bench/hostile_parse.py --hub-src /tmp/old/src  # another commit's hub

It prints RSS before, the peak during, and after the connections close (after 2 s), the hub's CPU
seconds spent during the attack, and how long a bystander's login (SCRAM, bind, presence) took
while the attack ran.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time

from loadgen import Client, HubOptions, Stats, start_hub, stop_hub

HEADER = (
    b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
    b"xmlns:stream='http://etherx.jabber.org/streams' to='bench.local' version='1.0'>"
)
PATTERN = b"<a b=''/>" * 1000  # 28 of these: 252 KiB


async def attack_once(port: int, stop: asyncio.Event) -> bool:
    """One connection: the pattern, then hold it open until the hub closes it or ``stop``."""
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return False
    try:
        writer.write(HEADER + b"<message>")
        for _ in range(28):
            writer.write(PATTERN)
            await writer.drain()
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                if not await asyncio.wait_for(reader.read(65536), 0.2):
                    break
    except (OSError, ConnectionError):
        pass
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()
    return True


async def attacker(port: int, stop: asyncio.Event, reconnect: bool, count: list[int]) -> None:
    while True:
        if await attack_once(port, stop):
            count[0] += 1
        if not reconnect or stop.is_set():
            return


async def main(args: argparse.Namespace) -> None:
    opts = HubOptions(None, "NORMAL", "none", False, hub_src=args.hub_src)
    hub = await start_hub(opts, accounts=2)
    try:
        warm = Client(0, Stats(2))
        await warm.login(hub.port)  # the first login loads code paths; not the attack's cost
        warm.close()
        await asyncio.sleep(1.0)
        before = hub.rss_kib()
        cpu_before = hub.cpu_seconds()
        stop, count = asyncio.Event(), [0]
        peak = before

        async def sample() -> None:
            nonlocal peak
            while not stop.is_set():
                peak = max(peak, hub.rss_kib())
                await asyncio.sleep(0.05)

        sampler = asyncio.create_task(sample())
        attackers = [
            asyncio.create_task(attacker(hub.port, stop, args.reconnect > 0, count))
            for _ in range(args.connections)
        ]
        await asyncio.sleep(0.5)  # the attack is under way
        started = time.perf_counter()
        bystander = Client(1, Stats(2))
        await bystander.login(hub.port)
        login = time.perf_counter() - started
        await asyncio.sleep(max(args.reconnect - 0.5 - login, 1.0))
        stop.set()
        await asyncio.gather(*attackers)
        await sampler
        cpu = hub.cpu_seconds() - cpu_before
        bystander.close()
        await asyncio.sleep(2.0)
        after = hub.rss_kib()
        print(f"connections opened by the attack: {count[0]}")
        print(f"bystander login during the attack:  {login * 1000:.0f} ms")
        print(f"hub RSS before:                     {before / 1024:.0f} MiB")
        print(f"hub RSS peak during:                {peak / 1024:.0f} MiB")
        print(f"hub RSS 2 s after the close:        {after / 1024:.0f} MiB")
        print(f"hub CPU during the attack:          {cpu:.1f} s")
        for i in range(args.rounds - 1):  # the same attack again: is the memory reused?
            stop = asyncio.Event()
            waves = [attacker(hub.port, stop, False, count) for _ in range(args.connections)]
            held = asyncio.gather(*waves)
            await asyncio.sleep(1.0)
            stop.set()
            await held
            await asyncio.sleep(1.0)
            print(f"hub RSS after round {i + 2}:             {hub.rss_kib() / 1024:.0f} MiB")
    finally:
        await stop_hub(hub, opts)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=100)
    parser.add_argument("--reconnect", type=float, default=0.0, metavar="SECONDS")
    parser.add_argument("--rounds", type=int, default=1, help="attack again, RSS after each")
    parser.add_argument("--hub-src", default=None)
    parser.add_argument("--quick", action="store_true", help="a few seconds (bench/README.md)")
    args = parser.parse_args()
    if args.quick:
        args.connections = 5
    asyncio.run(main(args))
