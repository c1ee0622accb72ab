"""The blind provider proxy's cost, measured side by side with direct connections in one run.

Starts a hub (``interlink serve``) and a blind proxy (``interlink provider proxy``) as their own
processes on loopback, the proxy registered in the hub's ``[proxies]``, and then, alternating
direct and proxied rounds so that drift hits both alike:

* **latency**: one logged-in connection sends XEP-0199 pings one at a time; round-trip p50/p99;
* **connection setup**: TCP + TLS handshake + stream header to features, p50/p99;
* **throughput**: ``--connections`` connections each keep ``--window`` messages of ``--body``
  bytes to themselves in flight for ``--seconds``; stanzas a second, and the proxy's relayed
  bytes per second of its own CPU time (``/proc/<pid>/stat``): throughput per core.

Prints a Markdown report (docs/performance.md quotes it). A benchmark asserts nothing.

    .venv/bin/python bench/proxy.py [--pings 2000] [--connections 20] [--seconds 8]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import os
import re
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

import trustme  # noqa: E402

from interlink.net.proxied import fingerprint, public_key_bytes  # noqa: E402
from interlink.provider.proxy import load_or_create_key  # noqa: E402

DOMAIN = "bench.local"
# the proxy relays only its provider's users (provider "bench"): the bench logs them in
USER_DOMAIN = f"bench.interop.{DOMAIN}"
PASSWORD = "bench-password"
PROXY_SOURCE = "127.0.0.3"
VENV_BIN = Path(sys.executable).parent
HEADER = (
    "<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
    f"xmlns:stream='http://etherx.jabber.org/streams' to='{DOMAIN}' version='1.0'>"
).encode()
_RESULT = re.compile(rb"<iq\b[^>]*type=[\"']result[\"']")
_MESSAGE_END = b"</message>"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        stat = f.read()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Conn:
    """A raw XMPP client over direct TLS, logged in with PLAIN."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.buffer = b""
        self.jid = ""

    @staticmethod
    async def open(port: int, tls: ssl.SSLContext) -> Conn:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=tls, server_hostname=DOMAIN
        )
        return Conn(reader, writer)

    async def until(self, marker: bytes) -> None:
        while marker not in self.buffer:
            data = await asyncio.wait_for(self.reader.read(65536), 30)
            if not data:
                raise ConnectionError(f"closed while waiting for {marker!r}")
            self.buffer += data
        self.buffer = self.buffer[self.buffer.index(marker) + len(marker) :]

    async def features(self) -> None:
        self.writer.write(HEADER)
        await self.until(b"</stream:features>")

    async def login(self, user: str) -> None:
        await self.features()
        token = base64.b64encode(f"\0{user}\0{PASSWORD}".encode()).decode()
        auth = f"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{token}</auth>"
        self.writer.write(auth.encode())
        await self.until(b"<success")
        await self.features()
        self.writer.write(
            b"<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
            b"<resource>r</resource></bind></iq>"
        )
        await self.until(b"</jid>")
        self.jid = f"{user}/r"

    async def ping(self) -> int:
        started = time.perf_counter_ns()
        self.writer.write(
            f"<iq type='get' id='p' to='{DOMAIN}'><ping xmlns='urn:xmpp:ping'/></iq>".encode()
        )
        while not _RESULT.search(self.buffer):
            self.buffer += await asyncio.wait_for(self.reader.read(65536), 30)
        self.buffer = b""
        return time.perf_counter_ns() - started

    def close(self) -> None:
        self.writer.close()


def percentiles(values_ns: list[int]) -> tuple[float, float]:
    ordered = sorted(values_ns)
    p50 = ordered[len(ordered) // 2] / 1e6
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] / 1e6
    return p50, p99


async def latency(port: int, tls: ssl.SSLContext, user: str, pings: int) -> list[int]:
    conn = await Conn.open(port, tls)
    try:
        await conn.login(user)
        for _ in range(50):  # warm up
            await conn.ping()
        return [await conn.ping() for _ in range(pings)]
    finally:
        conn.close()


async def setups(port: int, tls: ssl.SSLContext, count: int) -> list[int]:
    out = []
    for _ in range(count):
        started = time.perf_counter_ns()
        conn = await Conn.open(port, tls)
        await conn.features()
        out.append(time.perf_counter_ns() - started)
        conn.close()
    return out


async def throughput(
    port: int, tls: ssl.SSLContext, users: list[str], body: int, window: int, seconds: float
) -> tuple[int, int]:
    """Messages to self: stanzas delivered and stanza bytes moved (both directions)."""
    conns = [await Conn.open(port, tls) for _ in users]
    for conn, user in zip(conns, users, strict=True):
        await conn.login(user)
    text = "x" * body
    done, moved = [0], [0]
    stop = time.monotonic() + seconds

    async def run(conn: Conn) -> None:
        stanza = f"<message to='{conn.jid}' type='chat'><body>{text}</body></message>".encode()
        for _ in range(window):
            conn.writer.write(stanza)
        while time.monotonic() < stop:
            data = await asyncio.wait_for(conn.reader.read(262144), 30)
            if not data:
                raise ConnectionError("closed")
            conn.buffer += data
            arrived = conn.buffer.count(_MESSAGE_END)
            if arrived:
                conn.buffer = conn.buffer[conn.buffer.rindex(_MESSAGE_END) + len(_MESSAGE_END) :]
                done[0] += arrived
                moved[0] += arrived * len(stanza) * 2
                for _ in range(arrived):
                    conn.writer.write(stanza)

    try:
        await asyncio.gather(*(run(c) for c in conns))
    finally:
        for conn in conns:
            conn.close()
    return done[0], moved[0]


async def create_accounts(data_dir: Path, count: int) -> list[str]:
    from interlink.storage.sqlite import open_sqlite
    from interlink.xmpp.sasl import derive_credentials

    creds = derive_credentials(PASSWORD, 4096)
    storage = await open_sqlite(data_dir / "interlink.sqlite3", synchronous="OFF")
    try:
        for i in range(count):
            await storage.accounts.create(f"u{i}@{USER_DOMAIN}", creds, time.time())
    finally:
        await storage.close()
    return [f"u{i}@{USER_DOMAIN}" for i in range(count)]


async def wait_port(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    for _ in range(600):
        if proc.poll() is not None:
            raise RuntimeError(f"exited:\n{log.read_text(errors='replace')[-2000:]}")
        with contextlib.suppress(OSError):
            _, w = await asyncio.open_connection("127.0.0.1", port)
            w.close()
            return
        await asyncio.sleep(0.05)
    raise RuntimeError(f"port {port} never opened")


async def main(args: argparse.Namespace) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="interlink-proxy-bench-"))
    ca = trustme.CA()
    issued = ca.issue_cert(DOMAIN)
    cert, key, ca_file = tmp / "cert.pem", tmp / "key.pem", tmp / "ca.pem"
    issued.cert_chain_pems[0].write_to_path(str(cert))
    issued.private_key_pem.write_to_path(str(key))
    ca.cert_pem.write_to_path(str(ca_file))
    proxy_key = load_or_create_key(tmp / "proxy.key")
    users = await create_accounts(tmp, args.connections + 1)
    hub_tls_port, proxy_port = free_port(), free_port()
    config = tmp / "hub.toml"
    config.write_text(
        f'[hub]\ndomain = "{DOMAIN}"\ndata_dir = "{tmp}"\n'
        f'[net]\nhost = "127.0.0.1"\nc2s_port = {free_port()}\nc2s_tls_port = {hub_tls_port}\n'
        f"http_port = {free_port()}\nmax_unauthenticated = 5000\n"
        'source_allowlist = ["127.0.0.0/8"]\n'
        f'[tls]\ncert_file = "{cert}"\nkey_file = "{key}"\n'
        '[storage]\nsqlite_synchronous = "NORMAL"\n'
        "[limits]\nread_bytes_per_second = 100000000\nread_burst_bytes = 100000000\n"
        '[log]\nlevel = "WARNING"\n'
        "[[proxies.registered]]\n"
        f'provider = "bench"\naddresses = ["{PROXY_SOURCE}"]\n'
        f'fingerprint = "{fingerprint(public_key_bytes(proxy_key))}"\n',
        encoding="utf-8",
    )
    hub_log, proxy_log = tmp / "hub.log", tmp / "proxy.log"
    with open(hub_log, "wb") as out:
        hub = subprocess.Popen(
            [str(VENV_BIN / "interlink"), "serve", "--config", str(config)],
            stdout=out,
            stderr=out,
            env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
        )
    with open(proxy_log, "wb") as out:
        proxy = subprocess.Popen(
            [
                str(VENV_BIN / "interlink"),
                "provider",
                "proxy",
                "--route",
                f"{DOMAIN}=127.0.0.1:{hub_tls_port}",
                "--key-file",
                str(tmp / "proxy.key"),
                "--port",
                str(proxy_port),
                "--upstream-source",
                PROXY_SOURCE,
            ],
            stdout=out,
            stderr=out,
            env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
        )
    tls = ssl.create_default_context(cafile=str(ca_file))
    try:
        await wait_port(hub_tls_port, hub, hub_log)
        await wait_port(proxy_port, proxy, proxy_log)
        paths = {"direct": hub_tls_port, "blind proxy": proxy_port}
        rtts: dict[str, list[int]] = {p: [] for p in paths}
        opens: dict[str, list[int]] = {p: [] for p in paths}
        rounds = 4
        for _ in range(rounds):  # alternate, so drift hits both alike
            for name, port in paths.items():
                rtts[name] += await latency(port, tls, users[-1], args.pings // rounds)
                opens[name] += await setups(port, tls, args.setups // rounds)
        rates: dict[str, tuple[float, float, float]] = {}
        for name, port in paths.items():
            before = cpu_seconds(proxy.pid)
            hub_before = cpu_seconds(hub.pid)
            started = time.monotonic()
            done, moved = await throughput(
                port, tls, users[: args.connections], args.body, args.window, args.seconds
            )
            took = time.monotonic() - started
            proxy_cpu = cpu_seconds(proxy.pid) - before
            hub_cpu = cpu_seconds(hub.pid) - hub_before
            rates[name] = (done / took, moved / took, proxy_cpu / took if proxy_cpu else 0.0)
            rates[name + " hub"] = (hub_cpu / took, 0.0, 0.0)
        print(f"\n{rounds} alternating rounds; {args.pings} pings and {args.setups} connection")
        print(f"setups per path; throughput: {args.connections} connections x {args.window}")
        print(f"messages of {args.body} bytes in flight to themselves, {args.seconds:.0f} s.\n")
        print("| path | ping p50 (ms) | ping p99 (ms) | setup p50 (ms) | setup p99 (ms) |")
        print("|---|---:|---:|---:|---:|")
        for name in paths:
            (p50, p99), (s50, s99) = percentiles(rtts[name]), percentiles(opens[name])
            print(f"| {name} | {p50:.3f} | {p99:.3f} | {s50:.2f} | {s99:.2f} |")
        d50, d99 = percentiles(rtts["direct"])
        b50, b99 = percentiles(rtts["blind proxy"])
        print(f"\nadded by the proxy: p50 {b50 - d50:+.3f} ms, p99 {b99 - d99:+.3f} ms\n")
        print("| path | stanzas/s | stanza bytes/s | hub CPU (cores) | proxy CPU (cores) |")
        print("|---|---:|---:|---:|---:|")
        for name in paths:
            stanzas, rate, proxy_cores = rates[name]
            hub_cores = rates[name + " hub"][0]
            print(
                f"| {name} | {stanzas:,.0f} | {rate / 1e6:.2f} MB/s | {hub_cores:.2f} "
                f"| {proxy_cores:.2f} |"
            )
        stanzas, rate, proxy_cores = rates["blind proxy"]
        if proxy_cores:
            print(
                f"\nblind proxy per core: {rate / proxy_cores / 1e6:.1f} MB/s of stanzas, "
                f"{stanzas / proxy_cores:,.0f} stanzas/s"
            )
        print(f"\nmedian ping, direct {statistics.median(rtts['direct']) / 1e6:.3f} ms")
    finally:
        for proc in (proxy, hub):
            proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(10)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pings", type=int, default=2000)
    parser.add_argument("--setups", type=int, default=200)
    parser.add_argument("--connections", type=int, default=20)
    parser.add_argument("--window", type=int, default=4)
    parser.add_argument("--body", type=int, default=1024)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument(
        "--quick", action="store_true", help="100 pings, 10 set-ups, 4 connections for 1 s"
    )
    args = parser.parse_args()
    if args.quick:
        args.pings, args.setups, args.connections, args.seconds = 100, 10, 4, 1.0
    return args


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
