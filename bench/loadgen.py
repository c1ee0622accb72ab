#!/usr/bin/env python3
"""Load generator for the Interlink hub.

It starts a hub of its own (a subprocess on 127.0.0.1, ephemeral ports, a fresh data directory,
no TLS), logs in N accounts over plain c2s with SCRAM-SHA-256, and measures one of:

``flood``  every connection sends chat messages as fast as it can to its neighbour in a ring,
           with at most ``--window`` messages in flight (sent, not yet received by the partner);
           reports delivered messages/s and latency percentiles.
``paced``  an aggregate offered rate (``--rate`` messages/s) spread round-robin over the
           connections, open loop; reports latency percentiles and loss (sent - received after
           a drain grace period).
``idle``   logs in N connections and reports the hub's RSS growth per idle authenticated,
           bound and available connection.
``all``    the three runs above with the reference parameters, then a flood run with py-spy
           attached to the hub (the hot-path profile); writes ``bench/results/*``.
``sm``     stream-management overhead (XEP-0198): ``--repeat`` pairs of flood runs, each pair
           one run without and one with every client enabling stream management (``<enable/>``
           after binding, answering each ``<r/>`` of the hub with ``<a h/>``), alternated so
           that drifting load on the machine hits both alike; reports the medians and the
           throughput lost with stream management in %. ``flood --sm`` is one run with it.

Each message carries its send time (``time.monotonic_ns()`` of this process) in its ``id``
attribute, ``<sender>.<seq>.<ns>``; the same process receives it, so latency needs no clock sync.
The hub runs under ``taskset -c 0`` and this process pins itself to CPU 1 (``--no-pin`` disables).

Every run is bounded in time and the hub is stopped at the end, also on errors.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import gc
import json
import math
import os
import platform
import pstats
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import scramp

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
DOMAIN = "bench.local"
PASSWORD = "bench-password"  # every account has the same one: credentials are derived once
RESOURCE = "r"
NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
NS_BIND = "urn:ietf:params:xml:ns:xmpp-bind"
STREAM_HEADER = (
    f"<?xml version='1.0'?><stream:stream to='{DOMAIN}' version='1.0' "
    "xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>"
).encode()
STEP_TIMEOUT = 30.0  # seconds for one login step
END_MESSAGE = b"</message>"
NS_SM = "urn:xmpp:sm:3"
SM_REQUEST = b'<r xmlns="urn:xmpp:sm:3"/>'
_SASL_DATA = re.compile(rb"<(?:challenge|success)\b[^>]*?(?:/>|>([^<]*)</)")
_BOUND_JID = re.compile(rb"<jid>([^<]+)</jid>")

monotonic_ns = time.monotonic_ns

# Starts the hub like the `interlink` script, with a gc callback that logs every collection of
# generation 2 and every pause over 0.5 ms as a JSON line (CLOCK_MONOTONIC is shared between
# processes, so the generator can tell which pauses fell into its measured window).
GC_LOGGER = """
import gc, json, sys, time
_t = [0.0]
def _cb(phase, info):
    if phase == "start":
        _t[0] = time.monotonic()
        return
    ms = (time.monotonic() - _t[0]) * 1000
    if ms > 0.5 or info["generation"] == 2:
        sys.stderr.write(json.dumps({"event": "gc-pause", "gen": info["generation"],
            "ms": round(ms, 3), "collected": info["collected"], "t": _t[0]}) + "\\n")
gc.callbacks.append(_cb)
from interlink.cli.main import main
sys.argv[0] = "interlink"
main()
"""


class BenchError(Exception):
    pass


class GcWatch:
    """The generator's own gc pauses, so that its stalls are not taken for the hub's."""

    pauses: ClassVar[list[tuple[float, float]]] = []  # (monotonic start, milliseconds)
    _start = 0.0

    @classmethod
    def install(cls) -> None:
        gc.callbacks.append(cls._callback)

    @classmethod
    def _callback(cls, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            cls._start = time.monotonic()
        else:
            ms = (time.monotonic() - cls._start) * 1000
            if ms > 0.5:
                cls.pauses.append((cls._start, ms))

    @classmethod
    def since(cls, t0: float) -> dict[str, Any]:
        ms = [p for t, p in cls.pauses if t >= t0]
        return {"pauses_over_2ms": sum(1 for p in ms if p > 2), "max_pause_ms": max(ms, default=0)}


# -- the hub subprocess ------------------------------------------------------------------------


@dataclass
class HubOptions:
    pin_cpu: int | None
    sqlite_synchronous: str
    profile: str  # "none", "py-spy" or "cprofile"
    keep_data: bool
    gc_log: bool = False  # run the hub with a gc callback that logs collections
    hub_src: str | None = None  # import the hub from this source tree instead of the venv's
    archive: str = "behind"  # [archive]: off, behind (write-behind) or durable (before ack)
    extra_config: str = ""  # more TOML sections for the hub (a bench of one feature's settings)
    dsn: str | None = None  # storage on this PostgreSQL database instead of SQLite
    redis_url: str | None = None  # a cluster on this Redis
    workers: int = 1  # interlink serve --workers


@dataclass
class HubProcess:
    proc: subprocess.Popen[bytes]
    data_dir: Path
    log_path: Path
    port: int
    profile: str
    cprofile_path: Path | None = None

    @property
    def pid(self) -> int:
        return self.proc.pid  # taskset execs the hub, so this is the Python process itself

    def rss_kib(self) -> int:
        return _status_kib(self.pid, "VmRSS")

    def hwm_kib(self) -> int:
        return _status_kib(self.pid, "VmHWM")

    def cpu_seconds(self) -> float:
        """CPU time of the hub: its process and every live descendant (``serve --workers``:
        the workers are children of the supervisor, whose own ``cutime`` counts them only
        once they have exited)."""
        return sum(_process_cpu_ticks(pid) for pid in _descendants(self.pid)) / os.sysconf(
            "SC_CLK_TCK"
        )

    def threads(self) -> int:
        return _status_kib(self.pid, "Threads")

    def gc_pauses(self, t0: float, t1: float) -> dict[str, Any]:
        """The logged gc pauses between monotonic times ``t0`` and ``t1`` (``--hub-gc-log``)."""
        pauses: list[dict[str, Any]] = []
        with contextlib.suppress(OSError):
            for line in self.log_path.read_text(errors="replace").splitlines():
                if '"gc-pause"' in line:
                    with contextlib.suppress(ValueError):
                        entry = json.loads(line)
                        if t0 <= entry["t"] <= t1:
                            pauses.append(entry)
        return {
            "gen2_collections": sum(1 for p in pauses if p["gen"] == 2),
            "pauses_over_0_5ms": sum(1 for p in pauses if p["ms"] > 0.5),
            "pauses_over_2ms": sum(1 for p in pauses if p["ms"] > 2),
            "max_pause_ms": max((p["ms"] for p in pauses), default=0.0),
        }

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def _process_cpu_ticks(pid: int) -> int:
    """utime + stime of one process in clock ticks (0 if it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return 0
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[11]) + int(fields[12])


def _descendants(pid: int) -> list[int]:
    """``pid`` and its live descendants (through /proc/<pid>/task/*/children)."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        with contextlib.suppress(OSError):
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children") as f:
                    todo.extend(int(child) for child in f.read().split())
    return found


def _status_kib(pid: int, key: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise BenchError(f"no {key} in /proc/{pid}/status")


async def create_accounts(data_dir: Path, count: int, dsn: str | None = None) -> float:
    """Write ``count`` accounts ``u0``..``u{count-1}`` straight into the hub's database."""
    from interlink.storage import StorageConfig, open_storage
    from interlink.storage.sqlite import open_sqlite
    from interlink.xmpp.sasl import derive_credentials

    started = time.perf_counter()
    creds = derive_credentials(PASSWORD, 4096)  # once: every account shares it (and its salt)
    if dsn is not None:
        storage = await open_storage(StorageConfig(engine="postgres", postgres_dsn=dsn))
    else:
        storage = await open_sqlite(data_dir / "interlink.sqlite3", synchronous="OFF")
    try:
        now = time.time()
        for i in range(count):
            await storage.accounts.create(f"u{i}@{DOMAIN}", creds, now)
    finally:
        await storage.close()
    return time.perf_counter() - started


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_config(data_dir: Path, synchronous: str, opts: HubOptions | None = None) -> Path:
    archive = opts.archive if opts is not None else "behind"
    extra = opts.extra_config if opts is not None else ""
    path = data_dir / "bench-hub.toml"
    storage = f'sqlite_synchronous = "{synchronous}"\n'
    cluster = ""
    ports = "c2s_port = 0\nc2s_tls_port = 0\nhttp_port = 0\n"
    if opts is not None and opts.dsn is not None:
        storage = f'engine = "postgres"\ndsn = "{opts.dsn}"\npool_size = 16\n'
    if opts is not None and opts.redis_url is not None:
        cluster = f'[cluster]\nredis_url = "{opts.redis_url}"\n'
    if opts is not None and opts.workers > 1:  # shared (SO_REUSEPORT): fixed
        ports = "".join(
            f"{k} = {_free_port()}\n" for k in ("c2s_port", "c2s_tls_port", "http_port")
        )
    path.write_text(
        "[hub]\n"
        f'domain = "{DOMAIN}"\n'
        f'data_dir = "{data_dir}"\n'
        "[net]\n"
        'host = "127.0.0.1"\n'
        f"{ports}"
        "require_tls = false\n"
        "max_unauthenticated = 5000\n"
        # the load generator is one source by design: not held by the per-source budgets
        'source_allowlist = ["127.0.0.0/8"]\n'
        "[storage]\n"
        f"{storage}"
        "[archive]\n"
        f"enabled = {'false' if archive == 'off' else 'true'}\n"
        f"durable_before_ack = {'true' if archive == 'durable' else 'false'}\n"
        f"{cluster}"
        "[log]\n"
        'level = "INFO"\n'
        'format = "json"\n' + extra,
        encoding="utf-8",
    )
    return path


async def start_hub(opts: HubOptions, accounts: int) -> HubProcess:
    data_dir = Path(tempfile.mkdtemp(prefix="interlink-bench-"))
    try:
        took = await create_accounts(data_dir, accounts, opts.dsn)
        print(f"  created {accounts} accounts in {took:.1f} s", flush=True)
        config = write_config(data_dir, opts.sqlite_synchronous, opts)
        cmd: list[str] = []
        if opts.pin_cpu is not None:
            cmd += [shutil.which("taskset") or "taskset", "-c", str(opts.pin_cpu)]
        cprofile_path = None
        if opts.profile == "cprofile":
            cprofile_path = data_dir / "hub.cprofile"
            cmd += [sys.executable, "-m", "cProfile", "-o", str(cprofile_path)]
            cmd += ["-m", "interlink", "serve", "--config", str(config)]
        elif opts.gc_log:
            cmd += [sys.executable, "-c", GC_LOGGER, "serve", "--config", str(config)]
        else:
            cmd += [str(VENV_BIN / "interlink"), "serve", "--config", str(config)]
        if opts.workers > 1:
            cmd += ["--workers", str(opts.workers)]
        env = dict(os.environ)
        if opts.hub_src is not None:
            env["PYTHONPATH"] = os.pathsep.join(
                p for p in (str(Path(opts.hub_src).resolve()), env.get("PYTHONPATH")) if p
            )
        log_path = data_dir / "hub.log"
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd=data_dir, env=env
            )
        hub = HubProcess(proc, data_dir, log_path, 0, opts.profile, cprofile_path)
    except BaseException:
        if not opts.keep_data:
            shutil.rmtree(data_dir, ignore_errors=True)
        raise
    try:
        hub.port = await _wait_listening(hub, opts.workers)
    except BaseException:
        await stop_hub(hub, opts)
        raise
    return hub


async def _wait_listening(hub: HubProcess, workers: int = 1, timeout: float = 60.0) -> int:
    """The c2s port, once ``workers`` processes listen on it: with ``serve --workers`` the
    first worker up would otherwise take every connection of the run (SO_REUSEPORT spreads
    only over the sockets that exist when a connection comes)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if hub.proc.poll() is not None:
            raise BenchError(f"the hub exited with {hub.proc.returncode}:\n{hub.log_tail()}")
        with contextlib.suppress(OSError):
            ports = []
            for line in hub.log_path.read_text(errors="replace").splitlines():
                if '"listening"' not in line:
                    continue
                with contextlib.suppress(ValueError):
                    entry = json.loads(line)
                    if entry.get("transport") == "c2s-starttls":
                        ports.append(int(entry["port"]))
            if len(ports) >= workers:
                return ports[0]
        await asyncio.sleep(0.05)
    raise BenchError(f"the hub did not report its c2s port in {timeout} s:\n{hub.log_tail()}")


async def stop_hub(hub: HubProcess, opts: HubOptions) -> None:
    """SIGINT/SIGTERM (graceful; cProfile writes its file), then SIGKILL after 30 s."""
    proc = hub.proc
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT if hub.profile == "cprofile" else signal.SIGTERM)
        deadline = time.monotonic() + 30
        while proc.poll() is None and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if proc.poll() is None:
            print("  the hub did not stop in 30 s; killing it", flush=True)
            proc.kill()
            proc.wait()
    errors = [
        line
        for line in hub.log_tail(100000).splitlines()
        if '"level": "error"' in line or '"level": "critical"' in line
    ]
    if errors:
        print(f"  hub logged {len(errors)} error line(s); first: {errors[0][:500]}", flush=True)
    if not opts.keep_data:
        keep = hub.cprofile_path is not None
        if not keep:
            shutil.rmtree(hub.data_dir, ignore_errors=True)


# -- the client connections --------------------------------------------------------------------


class Stats:
    """What the receivers record: one (send ns, receive ns) pair per delivered message."""

    def __init__(self, connections: int) -> None:
        self.sent_ns: list[int] = []
        self.recv_ns: list[int] = []
        self.sent = 0
        self.received = 0
        self.errors = 0  # type="error" messages bounced by the hub
        self.stream_errors = 0
        self.disconnects = 0
        self.delivered_by_sender = [0] * connections


class Client(asyncio.Protocol):
    """One XMPP client connection: a tiny login state machine, then a message pump."""

    def __init__(self, index: int, stats: Stats, sm: bool = False) -> None:
        self.index = index
        self.sm = sm  # enable XEP-0198 after binding and answer the hub's <r/>
        self.handled = 0  # stanzas received since <enable/> (what <a h/> reports)
        self.user = f"u{index}"
        self.jid = ""
        self.stats = stats
        self.transport: asyncio.Transport | None = None
        self.buf = b""
        self.ready = False  # logged in; data_received now counts messages
        self.closing = False
        self._waiter: asyncio.Future[bytes] | None = None
        self._markers: tuple[bytes, ...] = ()
        self._lost: Exception | None = None
        self.on_acks: Callable[[list[int]], None] | None = None
        self.prefix = b""  # '<message to="partner" type="chat" id="<index>.'
        self.suffix = b""  # '"><body>…</body></message>'
        self.seq = 0
        self.inflight = 0

    # -- asyncio.Protocol ---------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if not self.closing:
            self.stats.disconnects += 1
        self._lost = exc or ConnectionError("connection closed by the hub")
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(self._lost)

    def data_received(self, data: bytes) -> None:
        if self.ready:
            self._messages(data)
            return
        self.buf += data
        self._check_waiter()

    # -- login --------------------------------------------------------------------------------
    def _check_waiter(self) -> None:
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        for marker in self._markers:
            i = self.buf.find(marker)
            if i >= 0:
                end = i + len(marker)
                chunk, self.buf = self.buf[:end], self.buf[end:]
                waiter.set_result(chunk)
                return
        if b"<stream:error" in self.buf and b"</stream:error>" in self.buf:
            waiter.set_exception(BenchError(f"{self.user}: stream error {self.buf[-300:]!r}"))

    async def read_until(self, *markers: bytes) -> bytes:
        """Everything up to and including the first of ``markers``."""
        if self._lost is not None:
            raise self._lost
        self._waiter = asyncio.get_running_loop().create_future()
        self._markers = markers
        self._check_waiter()
        try:
            return await asyncio.wait_for(self._waiter, STEP_TIMEOUT)
        except TimeoutError:
            raise BenchError(
                f"{self.user}: timed out waiting for {markers!r}; got {self.buf[-300:]!r}"
            ) from None
        finally:
            self._waiter = None

    def send(self, data: bytes) -> None:
        if self.transport is not None:
            self.transport.write(data)

    async def login(self, port: int) -> None:
        loop = asyncio.get_running_loop()
        await loop.create_connection(lambda: self, "127.0.0.1", port)
        self.send(STREAM_HEADER)
        features = await self.read_until(b"</stream:features>")
        if b"SCRAM-SHA-256" not in features:
            raise BenchError(f"SCRAM-SHA-256 not offered (require_tls off?): {features!r}")
        scram = scramp.ScramClient(["SCRAM-SHA-256"], self.user, PASSWORD)
        first = base64.b64encode(scram.get_client_first().encode()).decode()
        self.send(f"<auth xmlns='{NS_SASL}' mechanism='SCRAM-SHA-256'>{first}</auth>".encode())
        challenge = await self.read_until(b"</challenge>", b"</failure>")
        scram.set_server_first(_sasl_data(challenge))
        final = base64.b64encode(scram.get_client_final().encode()).decode()
        self.send(f"<response xmlns='{NS_SASL}'>{final}</response>".encode())
        outcome = await self.read_until(b"</success>", b"</failure>")
        scram.set_server_final(_sasl_data(outcome))  # checks the server signature
        self.send(STREAM_HEADER)
        features = await self.read_until(b"</stream:features>")
        if NS_BIND.encode() not in features:
            raise BenchError(f"no resource binding offered: {features!r}")
        self.send(
            f"<iq type='set' id='bind'><bind xmlns='{NS_BIND}'>"
            f"<resource>{RESOURCE}</resource></bind></iq>".encode()
        )
        bound = await self.read_until(b"</iq>")
        m = _BOUND_JID.search(bound)
        if m is None or b'type="result"' not in bound:
            raise BenchError(f"bind failed: {bound!r}")
        self.jid = m.group(1).decode()
        self.send(b"<presence/>")
        # The hub echoes available presence to the sender: then the session is available.
        await self.read_until(b"<presence")
        rest = await self.read_until(b">")
        if not rest.endswith(b"/>"):
            await self.read_until(b"</presence>")
        if self.sm:
            self.send(f"<enable xmlns='{NS_SM}'/>".encode())
            await self.read_until(b"<enabled")
            await self.read_until(b">")

    def start_messages(self) -> None:
        """From now on incoming data is counted as messages."""
        self.ready = True
        data, self.buf = self.buf, b""
        if data:
            self._messages(data)

    def close(self) -> None:
        self.closing = True
        if self.transport is not None:
            with contextlib.suppress(Exception):
                self.transport.write(b"</stream:stream>")
            self.transport.close()

    # -- messages -----------------------------------------------------------------------------
    def set_partner(self, partner_jid: str, body_bytes: int) -> None:
        self.prefix = f'<message to="{partner_jid}" type="chat" id="{self.index}.'.encode()
        body = ("x" * body_bytes).encode()
        self.suffix = b'"><body>' + body + b"</body></message>"

    def send_burst(self, count: int) -> None:
        """Send ``count`` messages in one write, each stamped with its own send time."""
        if self.transport is None or count <= 0:
            return
        prefix, suffix, seq = self.prefix, self.suffix, self.seq
        parts = []
        for _ in range(count):
            seq += 1
            parts.append(prefix + b"%d.%d" % (seq, monotonic_ns()) + suffix)
        self.seq = seq
        self.inflight += count
        self.stats.sent += count
        self.transport.write(b"".join(parts))

    def _messages(self, data: bytes) -> None:
        buf = self.buf + data if self.buf else data
        stats = self.stats
        now = monotonic_ns()
        pos = 0
        acks: list[int] = []
        while True:
            end = buf.find(END_MESSAGE, pos)
            if end < 0:
                break
            start = buf.rfind(b"<message", pos, end)
            i = buf.find(b' id="', start, end)
            if start < 0 or i < 0 or buf.find(b'type="error"', start, i) >= 0:
                stats.errors += 1
            else:
                j = buf.find(b'"', i + 5, end)
                sender, _, sent = buf[i + 5 : j].split(b".")
                stats.sent_ns.append(int(sent))
                stats.recv_ns.append(now)
                acks.append(int(sender))
            pos = end + 10
        if self.sm:
            # XEP-0198: every message counts as handled; each <r/> of the hub (counted in what
            # was scanned, so a request split across reads is answered once) gets an <a h/>.
            self.handled += len(acks)
            requests = buf.count(SM_REQUEST, 0, pos)
            if requests and self.transport is not None:
                answer = f"<a xmlns='{NS_SM}' h='{self.handled % 2**32}'/>".encode()
                self.transport.write(answer * requests)
        self.buf = buf[pos:] if pos < len(buf) else b""
        if b"<stream:error" in data:
            stats.stream_errors += 1
        if acks:
            stats.received += len(acks)
            if self.on_acks is not None:
                self.on_acks(acks)


def _sasl_data(element: bytes) -> str:
    if b"<failure" in element:
        raise BenchError(f"SASL failure: {element!r}")
    m = _SASL_DATA.search(element)
    if m is None:
        raise BenchError(f"unexpected SASL answer: {element!r}")
    return base64.b64decode(m.group(1) or b"").decode()


async def login_all(
    port: int, count: int, concurrency: int, stats: Stats, first: int = 0, sm: bool = False
) -> tuple[list[Client], float]:
    """Log in accounts ``first``..``first+count-1`` with bounded concurrency."""
    clients = [Client(first + i, stats, sm) for i in range(count)]
    sem = asyncio.Semaphore(concurrency)

    async def one(client: Client) -> None:
        async with sem:
            await client.login(port)

    started = time.perf_counter()
    results = await asyncio.gather(*(one(c) for c in clients), return_exceptions=True)
    took = time.perf_counter() - started
    failures = [r for r in results if isinstance(r, BaseException)]
    if failures:
        for c in clients:
            c.close()
        raise BenchError(f"{len(failures)} of {count} logins failed; first: {failures[0]!r}")
    # The connections live for the whole run: keep the collector from rescanning them (a full
    # collection over thousands of objects would stall the generator for milliseconds).
    gc.collect()
    gc.freeze()
    return clients, took


def close_all(clients: list[Client]) -> None:
    for c in clients:
        c.close()


# -- measurements ------------------------------------------------------------------------------


def percentiles_ms(values_ns: list[int]) -> dict[str, float | None]:
    keys = ("p50", "p90", "p99", "p999", "max")
    if not values_ns:
        return dict.fromkeys(keys)
    v = sorted(values_ns)
    n = len(v)

    def rank(p: float) -> float:
        return round(v[min(n - 1, max(0, math.ceil(p / 100 * n) - 1))] / 1e6, 3)

    return {
        "p50": rank(50),
        "p90": rank(90),
        "p99": rank(99),
        "p999": rank(99.9),
        "max": round(v[-1] / 1e6, 3),
    }


def cpu_times() -> dict[str, list[int]]:
    """Per-CPU jiffies from /proc/stat: user nice system idle iowait irq softirq steal."""
    times: dict[str, list[int]] = {}
    with contextlib.suppress(OSError), open("/proc/stat") as f:
        for line in f:
            if line.startswith("cpu") and line[3:4].isdigit():
                name, *values = line.split()
                times[name] = [int(v) for v in values[:8]]
    return times


def server_cpu_seconds(hub: HubProcess) -> float:
    """CPU time of the servers this run started (``--postgres``, ``--redis``: the children of
    this process other than the hub), for CPU per message that other processes on the machine
    do not skew, as they skew wall-clock latency."""
    hub_pids = set(_descendants(hub.pid))
    ours = [p for p in _descendants(os.getpid()) if p != os.getpid() and p not in hub_pids]
    return sum(_process_cpu_ticks(pid) for pid in ours) / os.sysconf("SC_CLK_TCK")


class Sampler:
    """Hub, generator and servers' CPU use, and steal time of the VM's CPUs, over a window."""

    def __init__(self, hub: HubProcess) -> None:
        self.hub = hub
        self.t0 = time.monotonic()
        self.hub0 = hub.cpu_seconds()
        self.servers0 = server_cpu_seconds(hub)
        self.gen0 = time.process_time()
        self.cpu0 = cpu_times()

    def per_message(self, result: dict[str, Any], messages: int) -> None:
        """Add the CPU microseconds per message of the hub and of the servers to ``result``."""
        if messages:
            for key in ("hub", "servers"):
                seconds = result[f"{key}_cpu_s"]
                result[f"{key}_cpu_us_per_msg"] = round(seconds * 1e6 / messages, 1)

    def result(self) -> dict[str, Any]:
        wall = time.monotonic() - self.t0
        hub_s = self.hub.cpu_seconds() - self.hub0
        servers_s = server_cpu_seconds(self.hub) - self.servers0
        steal: dict[str, float] = {}
        for name, now in cpu_times().items():
            before = self.cpu0.get(name)
            if before is not None and len(now) >= 8:
                total = sum(now) - sum(before)
                steal[name] = round(100 * (now[7] - before[7]) / total, 1) if total else 0.0
        return {
            "hub_cpu_pct": round(100 * hub_s / wall, 1),
            "hub_cpu_s": round(hub_s, 3),
            "servers_cpu_pct": round(100 * servers_s / wall, 1),
            "servers_cpu_s": round(servers_s, 3),
            "generator_cpu_pct": round(100 * (time.process_time() - self.gen0) / wall, 1),
            "steal_pct": steal,
            "generator_gc": GcWatch.since(self.t0),
        }


async def drain(stats: Stats, timeout: float) -> float:
    started = time.monotonic()
    while stats.received + stats.errors < stats.sent and time.monotonic() - started < timeout:
        await asyncio.sleep(0.01)
    return time.monotonic() - started


def ring(clients: list[Client], body_bytes: int) -> None:
    """Client i sends to client i+1 (mod N)."""
    n = len(clients)
    for i, c in enumerate(clients):
        c.set_partner(clients[(i + 1) % n].jid, body_bytes)


async def run_flood(args: argparse.Namespace, opts: HubOptions) -> dict[str, Any]:
    n = args.connections
    hub = await start_hub(opts, n)
    spy: subprocess.Popen[bytes] | None = None
    try:
        stats = Stats(n)
        clients, login_s = await login_all(hub.port, n, args.login_concurrency, stats, sm=args.sm)
        print(f"  {n} connections logged in in {login_s:.1f} s", flush=True)
        ring(clients, args.body_bytes)
        window = args.window
        sending = True

        def refill(acks: list[int]) -> None:
            # The acknowledged senders get their window back, then send what it allows.
            counts = Counter(acks)
            for sender, k in counts.items():
                c = clients[sender]
                c.inflight -= k
                if sending:
                    c.send_burst(window - c.inflight)

        for c in clients:
            c.on_acks = refill
            c.start_messages()
        for c in clients:
            c.send_burst(window)
        await asyncio.sleep(args.warmup)
        if opts.profile == "py-spy":
            spy = start_py_spy(
                hub, args.duration, args.profile_out, args.profile_rate, args.profile_blocking
            )
        t0 = monotonic_ns()
        sampler = Sampler(hub)
        await asyncio.sleep(args.duration)
        t1 = monotonic_ns()
        cpu = sampler.result()
        rss = hub.rss_kib()
        sending = False
        drained = await drain(stats, 10.0)
        if opts.gc_log:
            cpu["hub_gc"] = hub.gc_pauses(t0 / 1e9, t1 / 1e9)
        lat = [r - s for s, r in zip(stats.sent_ns, stats.recv_ns, strict=True) if t0 <= r < t1]
        result: dict[str, Any] = {
            "mode": "flood",
            "stream_management": args.sm,
            "connections": n,
            "window": window,
            "body_bytes": args.body_bytes,
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "login_s": round(login_s, 2),
            "delivered": len(lat),
            "msgs_per_s": round(len(lat) / ((t1 - t0) / 1e9)),
            "latency_ms": percentiles_ms(lat),
            "sent_total": stats.sent,
            "received_total": stats.received,
            "lost": stats.sent - stats.received - stats.errors,
            "error_replies": stats.errors,
            "stream_errors": stats.stream_errors,
            "disconnects": stats.disconnects,
            "drain_s": round(drained, 2),
            "hub_rss_kib": rss,
            **cpu,
        }
        sampler.per_message(result, len(lat))
        close_all(clients)
        if spy is not None:
            result["profile"] = finish_py_spy(spy, args.profile_out, args.profile_top)
        return result
    finally:
        if spy is not None and spy.poll() is None:
            spy.kill()
        await stop_hub(hub, opts)
        if hub.cprofile_path is not None and args.profile_out:
            summary = summarize_cprofile(hub.cprofile_path, args.profile_out, args.profile_top)
            print(summary, flush=True)
            if not opts.keep_data:
                shutil.rmtree(hub.data_dir, ignore_errors=True)


async def run_paced(args: argparse.Namespace, opts: HubOptions) -> dict[str, Any]:
    n = args.connections
    hub = await start_hub(opts, n)
    spy: subprocess.Popen[bytes] | None = None
    try:
        stats = Stats(n)
        clients, login_s = await login_all(hub.port, n, args.login_concurrency, stats)
        print(f"  {n} connections logged in in {login_s:.1f} s", flush=True)
        ring(clients, args.body_bytes)
        for c in clients:
            c.start_messages()
        rate = args.rate
        total = int(rate * (args.warmup + args.duration))
        warm = int(rate * args.warmup)
        tick = args.tick_ms / 1000
        sent = 0
        max_behind = 0.0
        start = time.monotonic()
        t_warm = 0
        sampler: Sampler | None = None
        while sent < total:
            now = time.monotonic()
            due = min(total, int((now - start) * rate) + 1)
            max_behind = max(max_behind, (due - 1 - sent) / rate)
            while sent < due:
                if sent == warm:
                    t_warm = monotonic_ns()
                    sampler = Sampler(hub)
                    if opts.profile == "py-spy":
                        spy = start_py_spy(
                            hub,
                            args.duration,
                            args.profile_out,
                            args.profile_rate,
                            args.profile_blocking,
                        )
                clients[sent % n].send_burst(1)
                sent += 1
            await asyncio.sleep(tick)
        send_wall = time.monotonic() - start
        cpu = sampler.result() if sampler is not None else {}
        rss = hub.rss_kib()
        drained = await drain(stats, args.grace)
        if opts.gc_log:
            cpu["hub_gc"] = hub.gc_pauses(t_warm / 1e9, time.monotonic())
        lat = [r - s for s, r in zip(stats.sent_ns, stats.recv_ns, strict=True) if s >= t_warm]
        measured_sent = total - warm
        result: dict[str, Any] = {
            "mode": "paced",
            "connections": n,
            "offered_rate": rate,
            "achieved_send_rate": round(total / send_wall),
            "body_bytes": args.body_bytes,
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "login_s": round(login_s, 2),
            "measured_sent": measured_sent,
            "measured_received": len(lat),
            "latency_ms": percentiles_ms(lat),
            "sent_total": stats.sent,
            "received_total": stats.received,
            "lost": stats.sent - stats.received,
            "error_replies": stats.errors,
            "stream_errors": stats.stream_errors,
            "disconnects": stats.disconnects,
            "max_schedule_lag_ms": round(max_behind * 1000, 2),
            "drain_s": round(drained, 2),
            "hub_rss_kib": rss,
            **cpu,
        }
        if sampler is not None:
            sampler.per_message(result, measured_sent)
        close_all(clients)
        if spy is not None:
            result["profile"] = finish_py_spy(spy, args.profile_out, args.profile_top)
        return result
    finally:
        if spy is not None and spy.poll() is None:
            spy.kill()
        await stop_hub(hub, opts)
        if hub.cprofile_path is not None and args.profile_out:
            print(summarize_cprofile(hub.cprofile_path, args.profile_out, args.profile_top))
            if not opts.keep_data:
                shutil.rmtree(hub.data_dir, ignore_errors=True)


async def run_idle(args: argparse.Namespace, opts: HubOptions) -> dict[str, Any]:
    n = args.connections
    warmup = min(20, n)
    hub = await start_hub(opts, n + warmup)
    try:
        stats = Stats(n + warmup)
        rss_start = hub.rss_kib()
        # Warm the hub's code paths and caches, then let it settle: the baseline is a hub that
        # has served logins, not a cold one.
        warm_clients, _ = await login_all(hub.port, warmup, args.login_concurrency, stats, n)
        close_all(warm_clients)
        await asyncio.sleep(args.settle)
        rss_before = hub.rss_kib()
        clients, login_s = await login_all(hub.port, n, args.login_concurrency, stats)
        print(f"  {n} connections logged in in {login_s:.1f} s", flush=True)
        await asyncio.sleep(args.settle)
        rss_login = hub.rss_kib()
        # Then stay idle long enough for whatever the hub does to idle streams (it frees an
        # idle stream's parser after net.hibernate_after, 10 s by default, swept every 5 s).
        await asyncio.sleep(args.idle_wait)
        rss_after = hub.rss_kib()
        result: dict[str, Any] = {
            "mode": "idle",
            "connections": n,
            "login_s": round(login_s, 2),
            "logins_per_s": round(n / login_s, 1),
            "hub_rss_start_kib": rss_start,
            "hub_rss_before_kib": rss_before,
            "hub_rss_after_login_kib": rss_login,
            "hub_rss_after_kib": rss_after,
            "kib_per_connection_after_login": round((rss_login - rss_before) / n, 2),
            "kib_per_connection": round((rss_after - rss_before) / n, 2),
            "settle_s": args.settle,
            "idle_wait_s": args.idle_wait,
            "disconnects": stats.disconnects,
        }
        close_all(clients)
        return result
    finally:
        await stop_hub(hub, opts)


# -- profiling ---------------------------------------------------------------------------------


def start_py_spy(
    hub: HubProcess, duration: float, out: str | None, rate: int, blocking: bool
) -> subprocess.Popen[bytes]:
    spy = shutil.which("py-spy", path=f"{VENV_BIN}:{os.environ.get('PATH', '')}")
    if spy is None:
        raise BenchError("py-spy is not installed: .venv/bin/pip install py-spy")
    if not out:
        raise BenchError("--profile-out is needed with --profile py-spy")
    raw = Path(out + ".raw.txt")
    raw.parent.mkdir(parents=True, exist_ok=True)
    cmd = [spy, "record", "--pid", str(hub.pid), "--duration", str(int(duration))]
    cmd += ["--rate", str(rate), "--threads", "--format", "raw", "--output", str(raw)]
    if len(_descendants(hub.pid)) > 1:
        cmd.append("--subprocesses")  # serve --workers: the workers, added up
    if not blocking:
        cmd.append("--nonblocking")  # py-spy does not stop the hub to sample: less overhead
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def finish_py_spy(spy: subprocess.Popen[bytes], out: str, top: int) -> dict[str, Any]:
    try:
        _, err = spy.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        spy.kill()
        _, err = spy.communicate()
    raw = Path(out + ".raw.txt")
    if spy.returncode != 0 or not raw.exists():
        raise BenchError(f"py-spy failed ({spy.returncode}): {err.decode(errors='replace')}")
    summary = summarize_collapsed(raw, top)
    Path(out + ".txt").write_text(format_profile(summary), encoding="utf-8")
    return summary


_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::\d+)?\)$")


def _frame_key(frame: str) -> str:
    m = _FRAME.match(frame)
    if m is None:
        return frame
    path = m.group("file")
    for marker in ("site-packages/", "lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return f"{m.group('func')} ({path})"


_LOOP_FRAMES = ("Runner.run (asyncio/runners.py)", "run (uvloop/__init__.py)")
LOOP_C = "[uvloop/libuv C code: socket I/O, polling, callback dispatch]"
NO_FRAME = "[no Python frame in the sample]"


def summarize_collapsed(raw: Path, top: int) -> dict[str, Any]:
    """Self and inclusive sample shares per function of the hub's main thread, from py-spy's
    collapsed stacks (recorded with ``--threads``). Frames up to the event loop's ``run`` are
    dropped; time in C code shows as self time of the last Python frame above it."""
    own: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    total = other_threads = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        k = int(count)
        frames = stack.split(";")
        while frames and frames[0].startswith("process "):
            frames = frames[1:]  # --subprocesses: the processes' samples are added up
        if not frames:
            continue
        if frames[0].startswith("thread ("):
            if not frames[0].endswith("MainThread"):
                other_threads += k
                continue
            frames = frames[1:]
        total += k
        keys = [_frame_key(f) for f in frames]
        loop_at = max((i for i, key in enumerate(keys) if key in _LOOP_FRAMES), default=-1)
        if loop_at >= 0:
            keys = keys[loop_at + 1 :] or [LOOP_C]
        elif not keys:
            keys = [NO_FRAME]
        own[keys[-1]] += k
        for key in set(keys):
            incl[key] += k

    def table(counter: Counter[str]) -> list[list[Any]]:
        return [[name, round(100 * c / total, 1)] for name, c in counter.most_common(top)]

    return {
        "samples": total,
        "other_thread_samples": other_threads,
        "self_pct": table(own),
        "inclusive_pct": table(incl),
    }


def format_profile(summary: dict[str, Any]) -> str:
    lines = [
        f"main-thread samples: {summary['samples']} "
        f"(other threads: {summary.get('other_thread_samples', 0)})",
        "",
        "self %  function",
    ]
    lines += [f"{pct:6.1f}  {name}" for name, pct in summary["self_pct"]]
    lines += ["", "incl %  function"]
    lines += [f"{pct:6.1f}  {name}" for name, pct in summary["inclusive_pct"]]
    return "\n".join(lines) + "\n"


def summarize_cprofile(path: Path, out: str, top: int) -> str:
    if not path.exists():
        return f"  no cProfile output at {path}"
    text = Path(out + ".cprofile.txt")
    text.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(path, out + ".cprofile")
    with open(text, "w", encoding="utf-8") as f:
        stats = pstats.Stats(str(path), stream=f)
        stats.sort_stats("tottime").print_stats(top)
        stats.sort_stats("cumulative").print_stats(top)
    return f"  cProfile written to {out}.cprofile and {text}"


# -- environment and reporting -----------------------------------------------------------------


_CALIBRATION = """
import time
def spin():
    t = time.perf_counter()
    x = 0
    for i in range(1_000_000):
        x += i & 7
    return time.perf_counter() - t
print(round(min(spin() for _ in range(5)) * 1000, 1))
"""


def calibrate(cpus: list[int]) -> dict[str, float]:
    """Milliseconds a fixed pure-Python loop takes on each CPU: this VM's speed drifts over
    time, so results are comparable only between runs with similar figures."""
    out: dict[str, float] = {}
    taskset = shutil.which("taskset")
    for cpu in cpus:
        cmd = [sys.executable, "-c", _CALIBRATION]
        if taskset is not None:
            cmd = [taskset, "-c", str(cpu), *cmd]
        with contextlib.suppress(OSError, subprocess.CalledProcessError, ValueError):
            text = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
            out[f"cpu{cpu}"] = float(text.strip())
    return out


def source_state() -> str:
    """The git commit of the hub under test, and whether src/ has uncommitted changes."""
    try:
        head = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain", "--", "src"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{head} (src/ with uncommitted changes)" if dirty else head


def machine_info() -> dict[str, Any]:
    cpu = "?"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_kib = _status_file_kib("/proc/meminfo", "MemTotal")
    try:
        import uvloop

        uv = uvloop.__version__
    except ImportError:
        uv = None
    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "mem_gib": round(mem_kib / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "uvloop": uv,
        "source": source_state(),
    }


def _status_file_kib(path: str, key: str) -> int:
    with contextlib.suppress(OSError), open(path) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def raise_fd_limit(need: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = max(soft, min(hard, need)) if hard != resource.RLIM_INFINITY else max(soft, need)
    if want > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    if want < need:
        print(f"  warning: fd limit {want} < {need}; large runs may fail", flush=True)


def pin(args: argparse.Namespace) -> HubOptions:
    pin_cpu: int | None = None
    if not args.no_pin:
        cpus = os.sched_getaffinity(0)
        if len(cpus) >= 2 and args.hub_cpu in cpus and args.gen_cpu in cpus:
            os.sched_setaffinity(0, {args.gen_cpu})
            pin_cpu = args.hub_cpu
        else:
            print(f"  warning: cannot pin to CPUs {args.hub_cpu}/{args.gen_cpu}; not pinning")
    return HubOptions(
        pin_cpu=pin_cpu,
        sqlite_synchronous=args.sqlite_synchronous,
        profile=getattr(args, "profile", "none"),
        keep_data=args.keep_data,
        gc_log=args.hub_gc_log,
        hub_src=args.hub_src,
        archive=args.archive,
        workers=args.workers,
    )


def report(result: dict[str, Any]) -> str:
    mode = result["mode"]
    if mode == "sm":
        return (
            f"sm     {result['connections']} conns window {result['window']}, "
            f"{result['pairs']} pairs: median {result['median_without']:.0f} msg/s without, "
            f"{result['median_with']:.0f} msg/s with stream management: "
            f"{result['overhead_pct']}% lower (without {result['without_sm_msgs_per_s']}, "
            f"with {result['with_sm_msgs_per_s']}); per hub CPU second "
            f"{result['cpu_overhead_pct']}% fewer messages; lost {result['lost']}"
        )
    if mode == "flood":
        lat = result["latency_ms"]
        return (
            f"flood  {result['connections']} conns window {result['window']}: "
            f"{result['msgs_per_s']} msg/s, latency p50 {lat['p50']} p99 {lat['p99']} "
            f"max {lat['max']} ms, lost {result['lost']}, hub CPU {result['hub_cpu_pct']}%, "
            f"generator CPU {result['generator_cpu_pct']}%; CPU per message: hub "
            f"{result.get('hub_cpu_us_per_msg')} µs, PostgreSQL + Redis "
            f"{result.get('servers_cpu_us_per_msg')} µs"
        )
    if mode == "paced":
        lat = result["latency_ms"]
        return (
            f"paced  {result['connections']} conns at {result['offered_rate']} msg/s: "
            f"latency p50 {lat['p50']} p90 {lat['p90']} p99 {lat['p99']} max {lat['max']} ms, "
            f"lost {result['lost']} of {result['sent_total']}, "
            f"hub CPU {result.get('hub_cpu_pct')}%; CPU per message: hub "
            f"{result.get('hub_cpu_us_per_msg')} µs, PostgreSQL + Redis "
            f"{result.get('servers_cpu_us_per_msg')} µs"
        )
    return (
        f"idle   {result['connections']} conns: {result['kib_per_connection']} KiB RSS per "
        f"connection after {result['idle_wait_s']} s idle "
        f"({result['kib_per_connection_after_login']} KiB {result['settle_s']} s after login; "
        f"{result['hub_rss_before_kib']} -> {result['hub_rss_after_kib']} KiB)"
    )


def save(results_dir: Path, name: str, result: dict[str, Any]) -> None:
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / f"{name}.json"
    path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"  wrote {path}", flush=True)


@contextlib.contextmanager
def section(title: str) -> Iterator[None]:
    print(f"== {title}", flush=True)
    started = time.monotonic()
    yield
    print(f"   ({time.monotonic() - started:.0f} s)", flush=True)


async def run_sm_overhead(args: argparse.Namespace, opts: HubOptions) -> dict[str, Any]:
    """Pairs of flood runs without and with XEP-0198, alternated; medians and the overhead."""
    runs: dict[bool, list[dict[str, Any]]] = {False: [], True: []}
    for i in range(args.repeat):
        for sm in (False, True):
            args.sm = sm
            result = await run_flood(args, opts)
            print(f"  pair {i + 1} {'with' if sm else 'without'} SM: {report(result)}", flush=True)
            runs[sm].append(result)
    args.sm = False

    def median(values: list[float]) -> float:
        ordered = sorted(values)
        mid = len(ordered) // 2
        return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2

    without = [r["msgs_per_s"] for r in runs[False]]
    with_sm = [r["msgs_per_s"] for r in runs[True]]
    base = median(without)

    def per_cpu(r: dict[str, Any]) -> int:
        # Messages per second of hub CPU: the cost per message, which another process taking
        # CPU from the hub (a shared machine) does not change as much as it changes msg/s.
        pct = r.get("hub_cpu_pct") or 0.0
        return round(r["msgs_per_s"] / (pct / 100.0)) if pct else 0

    eff_without = median([per_cpu(r) for r in runs[False]])
    eff_with = median([per_cpu(r) for r in runs[True]])
    return {
        "mode": "sm",
        "connections": args.connections,
        "window": args.window,
        "duration_s": args.duration,
        "pairs": args.repeat,
        "without_sm_msgs_per_s": without,
        "with_sm_msgs_per_s": with_sm,
        "median_without": base,
        "median_with": median(with_sm),
        "overhead_pct": round(100.0 * (base - median(with_sm)) / base, 1) if base else None,
        "msgs_per_hub_cpu_s_without": [per_cpu(r) for r in runs[False]],
        "msgs_per_hub_cpu_s_with": [per_cpu(r) for r in runs[True]],
        "cpu_overhead_pct": (
            round(100.0 * (eff_without - eff_with) / eff_without, 1) if eff_without else None
        ),
        "hub_cpu_pct_without": [r.get("hub_cpu_pct") for r in runs[False]],
        "hub_cpu_pct_with": [r.get("hub_cpu_pct") for r in runs[True]],
        "p99_ms_without": [r["latency_ms"]["p99"] for r in runs[False]],
        "p99_ms_with": [r["latency_ms"]["p99"] for r in runs[True]],
        "lost": sum(r["lost"] for r in runs[False] + runs[True]),
        "stream_errors": sum(r["stream_errors"] for r in runs[False] + runs[True]),
    }


RUNNERS = {"flood": run_flood, "paced": run_paced, "idle": run_idle, "sm": run_sm_overhead}


async def main_async(args: argparse.Namespace) -> int:
    opts = pin(args)
    servers: list[Any] = []
    try:
        sys.path.insert(0, str(ROOT))
        from tests.servers import start_postgres, start_redis

        if args.postgres:
            servers.append(start_postgres(durable=True))
            opts.dsn = servers[-1].database()
        if args.redis:
            servers.append(start_redis())
            opts.redis_url = servers[-1].url
        return await _main_async(args, opts)
    finally:
        for server in servers:
            server.stop()


async def _main_async(args: argparse.Namespace, opts: HubOptions) -> int:
    results_dir = Path(args.results_dir)
    info = machine_info()
    info["pinning"] = (
        f"hub on CPU {opts.pin_cpu}, generator on CPU {args.gen_cpu}"
        if opts.pin_cpu is not None
        else "none"
    )
    info["sqlite_synchronous"] = opts.sqlite_synchronous
    info["archive"] = opts.archive
    info["storage"] = "postgresql" if opts.dsn else "sqlite"
    info["cluster"] = f"redis, {opts.workers} worker(s)" if opts.redis_url else "none"
    if opts.hub_src is not None:
        info["source"] = f"hub imported from {opts.hub_src}"
    if args.mode != "all":
        with section(f"{args.mode}"):
            speed = calibrate(cal_cpus(args, opts))
            result = await RUNNERS[args.mode](args, opts)
            result["calibration_ms"] = speed
        result["machine"] = info
        print(report(result), flush=True)
        if args.save:
            save(results_dir, args.mode, result)
        return 0

    summary = await run_all(args, opts, info, results_dir)
    text = format_summary(summary)
    (results_dir / "summary.md").write_text(text, encoding="utf-8")
    print(text, flush=True)
    return 0


# Reference figures from the issue: the targets and the other servers' numbers.
REFERENCE = {
    "flood": ("≥ 20,000 msg/s", "~18,000 msg/s", "~22,000 msg/s"),
    "paced_p99": ("≤ 10 ms", "~600 ms", "~2.5 ms"),
    "paced_loss": ("0", "–", "–"),
    "idle": ("≤ 30 KiB", "34 KiB", "53 KiB"),
}


def cal_cpus(args: argparse.Namespace, opts: HubOptions) -> list[int]:
    return [opts.pin_cpu, args.gen_cpu] if opts.pin_cpu is not None else [0]


async def run_all(
    args: argparse.Namespace, opts: HubOptions, info: dict[str, Any], results_dir: Path
) -> dict[str, Any]:
    """The reference runs, each ``--repeat`` times on a fresh hub, then the profiled flood."""
    base = {
        "login_concurrency": args.login_concurrency,
        "body_bytes": args.body_bytes,
        "keep_data": args.keep_data,
        "profile_top": args.profile_top,
        "profile_rate": args.profile_rate,
        "profile_blocking": args.profile_blocking,
        "tick_ms": args.tick_ms,
        "grace": args.grace,
        "settle": args.settle,
        "idle_wait": args.idle_wait,
        "profile_out": None,
    }
    flood = argparse.Namespace(
        **base, mode="flood", connections=200, duration=10, warmup=2, window=50
    )
    paced = argparse.Namespace(
        **base, mode="paced", connections=1000, rate=5000, duration=10, warmup=1
    )
    idle = argparse.Namespace(**base, mode="idle", connections=1000)
    gc_opts = HubOptions(
        opts.pin_cpu, opts.sqlite_synchronous, "none", opts.keep_data, True, opts.hub_src
    )
    plan = [("flood", flood, opts), ("paced", paced, gc_opts), ("idle", idle, opts)]
    summary: dict[str, Any] = {"machine": info, "repeat": args.repeat, "runs": {}}
    for name, run_args, run_opts in plan:
        results = []
        for i in range(1, args.repeat + 1):
            with section(f"{name} {i}/{args.repeat}"):
                speed = calibrate(cal_cpus(args, opts))
                result = await RUNNERS[name](run_args, run_opts)
                result["calibration_ms"] = speed
            result["machine"] = info
            print(report(result), flush=True)
            save(results_dir, f"{name}-{i}", result)
            results.append(result)
        summary["runs"][name] = results
    if not args.skip_profile:
        prof_args = argparse.Namespace(**{**vars(flood), "profile_out": None})
        prof_args.profile_out = str(results_dir / "profile-flood")
        prof_opts = HubOptions(
            opts.pin_cpu, opts.sqlite_synchronous, "py-spy", opts.keep_data, False, opts.hub_src
        )
        with section("profile-flood (py-spy attached to the hub)"):
            result = await run_flood(prof_args, prof_opts)
        result["machine"] = info
        print(report(result), flush=True)
        print(format_profile(result["profile"]), flush=True)
        save(results_dir, "profile-flood", result)
        summary["profile"] = result
    save(results_dir, "summary", summary)
    return summary


def _median_run(runs: list[dict[str, Any]], key: Callable[[dict[str, Any]], float]) -> Any:
    return sorted(runs, key=key)[(len(runs) - 1) // 2]


def format_summary(summary: dict[str, Any]) -> str:
    """A markdown table of the results against the targets and the reference servers."""
    runs = summary["runs"]
    m = summary["machine"]
    out = [
        f"Interlink hub benchmark, {m['date']}: {m['nproc']} × {m['cpu']}, {m['mem_gib']} GiB, "
        f"Python {m['python']}, uvloop {m['uvloop']}; {m['pinning']}; no TLS; "
        f"SQLite synchronous={m['sqlite_synchronous']}; source {m.get('source')}",
        "",
        f"Each figure: the median of {summary['repeat']} runs on a fresh hub, [min–max].",
        "",
        "| measurement | target | Interlink | Prosody 0.12 | ejabberd 23.01 |",
        "| --- | --- | --- | --- | --- |",
    ]

    def span(values: list[float], fmt: str) -> str:
        v = sorted(values)
        return f"{fmt.format(v[(len(v) - 1) // 2])} [{fmt.format(v[0])}–{fmt.format(v[-1])}]"

    if runs.get("flood"):
        rates = [r["msgs_per_s"] for r in runs["flood"]]
        ref = REFERENCE["flood"]
        out.append(
            f"| flood, 200 connections | {ref[0]} | {span(rates, '{:,.0f}')} msg/s "
            f"| {ref[1]} | {ref[2]} |"
        )
    if runs.get("paced"):
        p99 = [r["latency_ms"]["p99"] for r in runs["paced"]]
        lost = [r["lost"] for r in runs["paced"]]
        ref = REFERENCE["paced_p99"]
        out.append(
            f"| p99 latency, 5,000 msg/s over 1,000 connections | {ref[0]} "
            f"| {span(p99, '{:.2f}')} ms | {ref[1]} | {ref[2]} |"
        )
        out.append(
            f"| loss at 5,000 msg/s | 0 | {sum(lost)} of "
            f"{sum(r['sent_total'] for r in runs['paced']):,} | – | – |"
        )
    if runs.get("idle"):
        kib = [r["kib_per_connection"] for r in runs["idle"]]
        ref = REFERENCE["idle"]
        out.append(
            f"| RSS per idle authenticated connection, no TLS | {ref[0]} "
            f"| {span(kib, '{:.1f}')} KiB | {ref[1]} | {ref[2]} |"
        )
    out += ["", "Per run:", ""]
    out.append(
        "| run | msg/s | p50 ms | p90 ms | p99 ms | max ms | lost | hub CPU % | gen CPU % "
        "| steal % cpu0/cpu1 | gen lag ms | hub GC > 2 ms | KiB/conn | login s "
        "| calibration ms |"
    )
    out.append("|" + " --- |" * 15)
    for name in ("flood", "paced", "idle"):
        for i, r in enumerate(runs.get(name, []), 1):
            lat = r.get("latency_ms") or {}
            steal = r.get("steal_pct") or {}
            gc = r.get("hub_gc") or {}
            cells = [
                f"{name} {i}",
                f"{r['msgs_per_s']:,}" if "msgs_per_s" in r else "",
                *(str(lat.get(k, "")) for k in ("p50", "p90", "p99", "max")),
                str(r.get("lost", "")),
                str(r.get("hub_cpu_pct", "")),
                str(r.get("generator_cpu_pct", "")),
                "/".join(str(v) for v in steal.values()),
                str(r.get("max_schedule_lag_ms", "")),
                str(gc.get("pauses_over_2ms", "")),
                str(r.get("kib_per_connection", "")),
                str(r.get("login_s", "")),
                "/".join(str(v) for v in (r.get("calibration_ms") or {}).values()),
            ]
            out.append("| " + " | ".join(cells) + " |")
    if "profile" in summary:
        p = summary["profile"]
        out += [
            "",
            f"Profiled flood (py-spy attached): {p['msgs_per_s']:,} msg/s.",
            "",
            "```",
            format_profile(p["profile"]).rstrip(),
            "```",
        ]
    return "\n".join(out) + "\n"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("mode", nargs="?", choices=["flood", "paced", "idle", "all", "sm"])
    p.add_argument(
        "--quick",
        action="store_true",
        help="a flood of 10 connections for 1 s, the mode if none is given (bench/README.md)",
    )
    p.add_argument("--connections", type=int, default=None, help="[flood 200, others 1000]")
    p.add_argument("--duration", type=float, default=10.0, help="measured seconds [10]")
    p.add_argument("--warmup", type=float, default=None, help="unmeasured seconds first")
    p.add_argument("--window", type=int, default=50, help="flood: in-flight per sender [50]")
    p.add_argument("--rate", type=float, default=5000.0, help="paced: offered msg/s [5000]")
    p.add_argument("--tick-ms", type=float, default=1.0, help="paced: scheduler tick [1]")
    p.add_argument("--grace", type=float, default=5.0, help="paced: drain grace seconds [5]")
    p.add_argument("--settle", type=float, default=5.0, help="idle: settle seconds [5]")
    p.add_argument(
        "--idle-wait", type=float, default=20.0, help="idle: idle seconds before the final RSS [20]"
    )
    p.add_argument("--body-bytes", type=int, default=64, help="message body size [64]")
    p.add_argument(
        "--sm", action="store_true", help="flood: clients enable XEP-0198 stream management"
    )
    p.add_argument("--login-concurrency", type=int, default=50, help="parallel logins [50]")
    p.add_argument("--hub-cpu", type=int, default=0, help="CPU for the hub [0]")
    p.add_argument("--gen-cpu", type=int, default=1, help="CPU for this generator [1]")
    p.add_argument("--no-pin", action="store_true", help="do not pin to CPUs")
    p.add_argument("--sqlite-synchronous", default="NORMAL", choices=["NORMAL", "FULL", "EXTRA"])
    p.add_argument(
        "--archive",
        default="behind",
        choices=["off", "behind", "durable"],
        help="XEP-0313 archiving of every message: off, write-behind (the default) or durable "
        "before the sender's next stanza [behind]",
    )
    p.add_argument(
        "--postgres", action="store_true", help="the hub on a throwaway PostgreSQL (fsync on)"
    )
    p.add_argument("--redis", action="store_true", help="a cluster on a throwaway Redis")
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        help="interlink serve --workers (needs --postgres --redis)",
    )
    p.add_argument(
        "--profile",
        default="none",
        choices=["none", "py-spy", "cprofile"],
        help="flood/paced: profile the hub (py-spy: the measured window; cProfile: whole run)",
    )
    p.add_argument("--profile-out", default=None, help="profile output path prefix")
    p.add_argument("--profile-top", type=int, default=30, help="rows in profile tables [30]")
    p.add_argument("--profile-rate", type=int, default=400, help="py-spy samples/s [400]")
    p.add_argument(
        "--profile-blocking",
        action="store_true",
        help="py-spy pauses the hub for each sample (exact stacks, much more overhead)",
    )
    p.add_argument("--skip-profile", action="store_true", help="all: no profiled flood run")
    p.add_argument(
        "--repeat", type=int, default=3, help="all: runs of each benchmark; sm: pairs [3]"
    )
    p.add_argument("--results-dir", default=str(ROOT / "bench" / "results"))
    p.add_argument("--save", action="store_true", help="single modes: write results JSON")
    p.add_argument("--keep-data", action="store_true", help="keep hub data dirs and logs")
    p.add_argument(
        "--hub-src",
        default=None,
        help="run the hub from this source directory (its 'src'), e.g. to compare commits",
    )
    p.add_argument(
        "--hub-gc-log", action="store_true", help="log the hub's gc pauses (all: on for paced)"
    )
    args = p.parse_args(argv)
    if args.quick:
        args.mode = args.mode or "flood"
        args.connections = args.connections or 10
        args.duration = min(args.duration, 1.0)
        args.warmup = 0.5 if args.warmup is None else args.warmup
        args.idle_wait, args.settle, args.grace = 1.0, 1.0, 1.0
    if args.mode is None:
        p.error("a mode is needed (flood, paced, idle, all, sm), or --quick")
    if args.connections is None:
        args.connections = 200 if args.mode in ("flood", "sm") else 1000
    if args.warmup is None:
        args.warmup = 2.0 if args.mode in ("flood", "sm") else 1.0
    if args.connections < 2:
        p.error("--connections must be at least 2")
    if args.profile != "none" and args.mode not in ("flood", "paced"):
        p.error("--profile applies to flood and paced runs")
    if args.profile != "none" and args.profile_out is None:
        args.profile_out = str(Path(args.results_dir) / f"profile-{args.mode}-{args.profile}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    GcWatch.install()
    raise_fd_limit(max(4096, 2 * (args.connections or 1000) + 1024))
    try:
        import uvloop
    except ImportError:
        uvloop = None
    try:
        if uvloop is not None:
            return uvloop.run(main_async(args))
        return asyncio.run(main_async(args))
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
