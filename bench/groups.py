"""Group fan-out benchmark: one XEP-0045 room with N members (default 100), all of them in it.

It starts a hub of its own (as ``loadgen.py`` does: a subprocess, plain c2s, a fresh data
directory, the room and sender rates of ``[groups]`` turned off), logs in N accounts, lets ``u0``
create a members-only room, add the others as members (one muc#admin set) and every member enter.
Then ``--senders`` members send groupchat messages as fast as they can, each with at most
``--window`` messages in flight (sent, not yet delivered to every occupant), for ``--duration``
seconds after ``--warmup``. A message is complete when all N occupants (the sender's own copy
included) have it.

Reported: complete messages/s, deliveries/s (messages × N), and percentiles of the time from
send to the *last* occupant's copy (the fan-out latency) and of every single delivery. The
message ``id`` carries ``<sender>.<seq>.<send ns>``; one process sends and receives, so no clock
sync is needed. Bodies are opaque bytes of ``--body-bytes`` (the hub relays ciphertext as is:
OMEMO costs the clients, not the hub's fan-out).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import loadgen  # the sibling script: hub process, raw clients
from loadgen import (
    DOMAIN,
    BenchError,
    Client,
    HubOptions,
    Stats,
    close_all,
    login_all,
    percentiles_ms,
    start_hub,
    stop_hub,
)

ROOM = f"bench@groups.{DOMAIN}"
MUC = "http://jabber.org/protocol/muc"
_base_config = loadgen.write_config


def write_config(data_dir: Path, synchronous: str, archive: str = "behind") -> Path:
    """loadgen's configuration, with the room and sender message rates off (this measures the
    fan-out, not the limits) and room sizes large enough."""
    path = _base_config(data_dir, synchronous, archive)
    with path.open("a", encoding="utf-8") as f:
        f.write(
            "[groups]\n"
            "room_messages_per_minute = 0\n"
            "sender_messages_per_minute = 0\n"
            "max_occupants = 5000\n"
            "max_members = 5000\n"
        )
    return path


loadgen.write_config = write_config  # start_hub writes its config through this name


class Fanout:
    """Per message: how many occupants have it, and when the last one got it."""

    def __init__(self, occupants: int) -> None:
        self.occupants = occupants
        self.pending: dict[bytes, list[int]] = {}  # id -> [copies, send ns]
        self.fanout_ns: list[int] = []
        self.delivery_ns: list[int] = []
        self.complete = 0
        self.measuring = False
        self.senders: dict[int, RoomClient] = {}

    def got(self, key: bytes, sender: int, sent: int, now: int) -> None:
        entry = self.pending.get(key)
        if entry is None:
            entry = self.pending[key] = [0, sent]
        entry[0] += 1
        if self.measuring:
            self.delivery_ns.append(now - sent)
        if entry[0] == self.occupants:
            del self.pending[key]
            if self.measuring:
                self.complete += 1
                self.fanout_ns.append(now - sent)
            client = self.senders.get(sender)
            if client is not None:
                client.inflight -= 1
                client.refill()


class RoomClient(Client):
    fanout: Fanout
    window = 5

    def refill(self) -> None:
        if self.ready and self.inflight < self.window:
            self.send_burst(self.window - self.inflight)

    def _messages(self, data: bytes) -> None:
        buf = self.buf + data if self.buf else data
        now = loadgen.monotonic_ns()
        pos = 0
        while True:
            end = buf.find(b"</message>", pos)
            if end < 0:
                break
            start = buf.rfind(b"<message", pos, end)
            i = buf.find(b' id="', start, end)
            if start >= 0 and i >= 0 and buf.find(b'type="groupchat"', start, end) >= 0:
                j = buf.find(b'"', i + 5, end)
                key = buf[i + 5 : j]
                parts = key.split(b".")
                if len(parts) == 3:
                    self.fanout.got(key, int(parts[0]), int(parts[2]), now)
            elif start >= 0 and buf.find(b'type="error"', start, end) >= 0:
                self.stats.errors += 1
            pos = end + 10
        self.buf = buf[pos:] if pos < len(buf) else b""


async def setup_room(clients: list[RoomClient]) -> float:
    """u0 creates the room, makes everyone else a member; then everyone enters."""
    started = time.perf_counter()
    owner = clients[0]
    owner.send(f'<presence to="{ROOM}/u0"><x xmlns="{MUC}"/></presence>'.encode())
    await owner.read_until(b"</subject>", b"<subject/>")
    owner.send(
        f'<iq type="set" id="cfg" to="{ROOM}"><query xmlns="{MUC}#owner">'
        '<x xmlns="jabber:x:data" type="submit"/></query></iq>'.encode()
    )
    await owner.read_until(b'id="cfg"')
    items = "".join(f'<item affiliation="member" jid="{c.user}@{DOMAIN}"/>' for c in clients[1:])
    admin = f'<query xmlns="{MUC}#admin">{items}</query>'
    owner.send(f'<iq type="set" id="adm" to="{ROOM}">{admin}</iq>'.encode())
    answer = await owner.read_until(b'id="adm"')
    if b"error" in answer[-200:]:
        raise BenchError(f"adding members failed: {owner.buf[-300:]!r}")
    for client in clients[1:]:
        client.send(f'<presence to="{ROOM}/{client.user}"><x xmlns="{MUC}"/></presence>'.encode())
        await client.read_until(b"</subject>", b"<subject/>")
    return time.perf_counter() - started


async def run(args: argparse.Namespace) -> dict[str, Any]:
    opts = HubOptions(
        pin_cpu=None if args.no_pin else args.hub_cpu,
        sqlite_synchronous="NORMAL",
        profile="none",
        keep_data=False,
        hub_src=str(loadgen.ROOT / "src"),  # this tree's hub, not the installed one
    )
    hub = await start_hub(opts, args.members)
    stats = Stats(args.members)
    fanout = Fanout(args.members)
    RoomClient.fanout = fanout
    RoomClient.window = args.window
    original = loadgen.Client
    loadgen.Client = RoomClient  # login_all builds its clients through this name
    try:
        clients_raw, login_s = await login_all(hub.port, args.members, 50, stats)
        clients = [c for c in clients_raw if isinstance(c, RoomClient)]
        setup_s = await setup_room(clients)
        await asyncio.sleep(1.0)  # the joins' presence broadcasts settle
        senders = clients[: args.senders]
        body = "x" * args.body_bytes
        for c in clients:
            c.buf = b""
            c.start_messages()
        for c in senders:
            c.prefix = f'<message to="{ROOM}" type="groupchat" id="{c.index}.'.encode()
            c.suffix = f'"><body>{body}</body></message>'.encode()
            fanout.senders[c.index] = c
        cpu0 = hub.cpu_seconds()
        for c in senders:
            c.refill()
        await asyncio.sleep(args.warmup)
        fanout.measuring = True
        t0 = time.perf_counter()
        cpu_start = hub.cpu_seconds()
        await asyncio.sleep(args.duration)
        elapsed = time.perf_counter() - t0
        fanout.measuring = False
        cpu_used = hub.cpu_seconds() - cpu_start
        for c in senders:
            c.window = 0  # stop refilling
        await asyncio.sleep(1.0)
        close_all(clients_raw)
        del cpu0
        return {
            "members": args.members,
            "senders": args.senders,
            "window": args.window,
            "body_bytes": args.body_bytes,
            "login_s": round(login_s, 2),
            "room_setup_s": round(setup_s, 2),
            "measured_s": round(elapsed, 2),
            "messages_per_s": round(fanout.complete / elapsed, 1),
            "deliveries_per_s": round(fanout.complete * args.members / elapsed, 1),
            "fanout_ms": percentiles_ms(fanout.fanout_ns),
            "delivery_ms": percentiles_ms(fanout.delivery_ns),
            "errors": stats.errors,
            "hub_cpu_share": round(cpu_used / elapsed, 2),
            "hub_rss_mib": round(hub.rss_kib() / 1024, 1),
        }
    finally:
        loadgen.Client = original
        await stop_hub(hub, opts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=100)
    parser.add_argument("--senders", type=int, default=10)
    parser.add_argument("--window", type=int, default=5)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--body-bytes", type=int, default=512)
    parser.add_argument("--hub-cpu", type=int, default=0)
    parser.add_argument("--no-pin", action="store_true")
    parser.add_argument("--quick", action="store_true", help="a few seconds (bench/README.md)")
    args = parser.parse_args()
    if args.quick:
        args.members, args.senders, args.duration, args.warmup = 10, 2, 1.0, 0.5
    if args.members < 2 or not 1 <= args.senders <= args.members:
        parser.error("need at least 2 members and 1..members senders")
    result = asyncio.run(run(args))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
