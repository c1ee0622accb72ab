"""Authentication under hostile load: parallel password guessers against one account.

Two processes on 127.0.0.1: the hub (``interlink serve`` as shipped, pinned to CPU 0 with
``taskset`` when there is one) and this one (the guessers and a bystander, pinned to CPU 1).
N guessers (``--guessers``, default 20 and 48) try PLAIN passwords on ``alice`` over direct TLS as
fast as the hub answers, three per stream (the stream's own limit) then a new connection. Every
``--every`` seconds the bystander ``bob`` logs in (TLS, PLAIN, bind) on a connection of its own;
bob logged in once before the attack, from the same address (a known place, docs/security.md).

Printed per run: attempts answered per second, of them the guesses actually checked
(``not-authorized``) and the throttled ones (``temporary-auth-failure``), and the bystander's
login times (median and worst). ``--no-throttle`` raises the free failures out of reach, to show
the hub as it was before the throttle.

    .venv/bin/python bench/auth_guessing.py                    # 20 and 48 guessers, 10 s each
    .venv/bin/python bench/auth_guessing.py --guessers 48 --no-throttle
    .venv/bin/python bench/auth_guessing.py --scram             # SCRAM-SHA-256 guessers
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

DOMAIN = "bench.local"
SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
HEADER = (
    "<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
    f"xmlns:stream='http://etherx.jabber.org/streams' to='{DOMAIN}' version='1.0'>"
).encode()


def pin(cpu: int) -> None:
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > cpu:
        os.sched_setaffinity(0, {cpu})


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def interlink_cmd() -> list[str]:
    script = Path(sys.executable).with_name("interlink")
    return [str(script)] if script.exists() else [sys.executable, "-m", "interlink"]


def start_hub(data: Path, tls_port: int, throttle: bool) -> subprocess.Popen[bytes]:
    config = data / "hub.toml"
    off = (
        ""
        if throttle
        else (
            "throttle_pair_free = 1000000000\nthrottle_source_free = 1000000000\n"
            "throttle_account_free = 1000000000\n"
        )
    )
    config.write_text(
        f'[hub]\ndomain = "{DOMAIN}"\ndata_dir = "{data}"\n'
        f'[net]\nhost = "127.0.0.1"\nc2s_port = {free_port()}\n'
        f"c2s_tls_port = {tls_port}\nhttp_port = {free_port()}\n"
        # every guesser and the bystander share 127.0.0.1: the connection budget per source
        # (net.connections_per_source_per_minute) would end the run before SASL is measured
        "connections_per_source_per_minute = 0\n"
        f"[sasl]\n{off}"
        '[log]\nlevel = "ERROR"\n'
    )
    for user in ("alice", "bob"):
        add = ["user", "add", f"{user}@{DOMAIN}", "--password", "pw", "--config", str(config)]
        subprocess.run(
            [*interlink_cmd(), *add],
            check=True,
            stdout=subprocess.DEVNULL,
        )
    cmd = [*interlink_cmd(), "serve", "--config", str(config)]
    taskset = shutil.which("taskset")
    if taskset and (os.cpu_count() or 1) > 1:
        cmd = [taskset, "-c", "0", *cmd]
    with (data / "hub.log").open("wb") as log:
        hub = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if hub.poll() is not None:
            raise SystemExit(f"the hub exited: {(data / 'hub.log').read_text()[-2000:]}")
        try:
            socket.create_connection(("127.0.0.1", tls_port), timeout=1).close()
            return hub
        except OSError:
            time.sleep(0.05)
    hub.kill()
    raise SystemExit("the hub did not start listening within 30 s")


class Conn:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer, self.buf = reader, writer, b""

    @staticmethod
    async def open(port: int, ctx: ssl.SSLContext) -> Conn:
        r, w = await asyncio.open_connection("127.0.0.1", port, ssl=ctx, server_hostname=DOMAIN)
        return Conn(r, w)

    async def until(self, *marks: bytes) -> bytes:
        """Read until one of ``marks`` (the start of a tag) has arrived with the rest of its tag;
        return everything up to the end of that tag and keep what follows."""
        while True:
            for mark in marks:
                i = self.buf.find(mark)
                if i >= 0:
                    end = self.buf.find(b">", i + len(mark) - 1)
                    if end < 0:
                        break  # the tag is not complete yet
                    got, self.buf = self.buf[: end + 1], self.buf[end + 1 :]
                    return got
            data = await asyncio.wait_for(self.reader.read(65536), 30)
            if not data:
                raise ConnectionError("closed")
            self.buf += data

    def send(self, data: bytes) -> None:
        self.writer.write(data)

    def close(self) -> None:
        self.writer.close()


def plain(user: str, password: str) -> bytes:
    token = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
    return f"<auth xmlns='{SASL}' mechanism='PLAIN'>{token}</auth>".encode()


@dataclass
class Tally:
    checked: int = 0
    throttled: int = 0
    logins: list[float] = field(default_factory=list)


async def scram_guess(c: Conn, password: str) -> bytes:
    """One SCRAM-SHA-256 attempt on alice; the hub's final answer (failure or success)."""
    from scramp import ScramClient

    client = ScramClient(["SCRAM-SHA-256"], "alice", password)
    first = base64.b64encode(client.get_client_first().encode()).decode()
    c.send(f"<auth xmlns='{SASL}' mechanism='SCRAM-SHA-256'>{first}</auth>".encode())
    got = await c.until(b"</challenge", b"</failure")
    if b"<failure" in got:
        return got  # refused before the challenge (throttled)
    text = got[got.index(b"<challenge") :].split(b">", 1)[1].split(b"<", 1)[0]
    client.set_server_first(base64.b64decode(text).decode())
    final = base64.b64encode(client.get_client_final().encode()).decode()
    c.send(f"<response xmlns='{SASL}'>{final}</response>".encode())
    return await c.until(b"</failure", b"<success")


async def guesser(
    port: int, ctx: ssl.SSLContext, stop: asyncio.Event, tally: Tally, scram: bool
) -> None:
    n = 0
    while not stop.is_set():
        try:
            c = await Conn.open(port, ctx)
        except (OSError, ssl.SSLError):
            await asyncio.sleep(0.01)
            continue
        try:
            c.send(HEADER)
            await c.until(b"</stream:features>")
            for _ in range(3):
                n += 1
                if scram:
                    got = await scram_guess(c, f"guess{n}")
                else:
                    c.send(plain("alice", f"guess{n}"))
                    got = await c.until(b"<not-authorized", b"<temporary-auth-failure")
                if b"<not-authorized" in got:
                    tally.checked += 1
                else:
                    tally.throttled += 1
                if stop.is_set():
                    break
        except (OSError, ssl.SSLError, ConnectionError, TimeoutError):
            pass
        finally:
            c.close()


async def bystander_login(port: int, ctx: ssl.SSLContext, resource: str) -> float:
    started = time.perf_counter()
    c = await Conn.open(port, ctx)
    try:
        c.send(HEADER)
        await c.until(b"</stream:features>")
        c.send(plain("bob", "pw"))
        got = await c.until(b"<success", b"<failure")
        if b"<success" not in got:
            raise SystemExit(f"the bystander was refused: {got[-200:]!r}")
        c.buf = b""
        c.send(HEADER)
        await c.until(b"</stream:features>")
        c.send(
            b"<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
            + f"<resource>{resource}</resource></bind></iq>".encode()
        )
        await c.until(b"</iq>")
        return time.perf_counter() - started
    finally:
        c.close()


async def run(port: int, guessers: int, seconds: float, every: float, scram: bool) -> Tally:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    tally = Tally()
    await bystander_login(port, ctx, "before")  # bob's known place
    stop = asyncio.Event()
    tasks = [asyncio.create_task(guesser(port, ctx, stop, tally, scram)) for _ in range(guessers)]
    started = time.perf_counter()
    i = 0
    while time.perf_counter() - started < seconds:
        await asyncio.sleep(every)
        i += 1
        tally.logins.append(await bystander_login(port, ctx, f"r{i}"))
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    return tally


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--guessers", type=int, nargs="+", default=[20, 48])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--every", type=float, default=0.5, help="seconds between bob's logins")
    parser.add_argument("--no-throttle", action="store_true")
    parser.add_argument("--scram", action="store_true", help="guess with SCRAM-SHA-256")
    parser.add_argument("--quick", action="store_true", help="a few seconds (bench/README.md)")
    args = parser.parse_args()
    if args.quick:
        args.guessers, args.seconds, args.every = [4], 1.0, 0.25
    pin(1)
    for n in args.guessers:
        data = Path(tempfile.mkdtemp(prefix="interlink-auth-bench-"))
        port = free_port()
        hub = start_hub(data, port, throttle=not args.no_throttle)
        try:
            tally = asyncio.run(run(port, n, args.seconds, args.every, args.scram))
        finally:
            hub.send_signal(signal.SIGTERM)
            try:
                hub.wait(30)
            except subprocess.TimeoutExpired:
                hub.kill()
            shutil.rmtree(data, ignore_errors=True)
        s = args.seconds
        logins = sorted(tally.logins)
        print(
            f"{n} {'SCRAM' if args.scram else 'PLAIN'} guessers, {s:.0f} s, "
            f"throttle {'off' if args.no_throttle else 'on'}: "
            f"{(tally.checked + tally.throttled) / s:.0f} attempts/s answered, "
            f"{tally.checked / s:.2f} guesses/s checked ({tally.checked} in all), "
            f"{tally.throttled / s:.0f}/s throttled; bystander login "
            f"median {statistics.median(logins) * 1000:.0f} ms, "
            f"worst {logins[-1] * 1000:.0f} ms ({len(logins)} logins)"
        )


if __name__ == "__main__":
    main()
