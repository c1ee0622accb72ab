"""Media upload benchmark (issue 6 §5): a 100 MiB XEP-0363 upload to the hub and its download.

Two processes, on 127.0.0.1:

* the *hub*: ``interlink serve`` as shipped (uvicorn on uvloop, HTTPS with the generated dev
  certificate, SQLite, files under a temporary data directory on the machine's disk), pinned to
  CPU 0 with ``taskset``;
* the *client* (this process, pinned to CPU 1): one account created with ``interlink user add``,
  logged in with slixmpp (STARTTLS, SCRAM). For each run it asks the hub for a slot
  (``<request xmlns='urn:xmpp:http:upload:0'/>`` to the hub's domain, through the SDK's
  ``XmppUploader``), PUTs the body streamed with httpx (256 KiB chunks of one random buffer, with
  Content-Length, as the SDK uploads), then GETs the file from the slot's GET URL and drops it.

The hub receives the body into a part file (written by a worker thread), fsyncs it and renames it
into place before it answers 201, so the PUT time includes one fsync of 100 MiB; the GET reads the
file back (from the page cache, as it was just written).

For each PUT and each GET the hub's peak RSS is reset (``/proc/<pid>/clear_refs``), and its growth
is the peak during the transfer minus the RSS just before it. The growth from the idle hub (after
the login, before the first upload) to the highest peak of all runs is printed too. The CPU each
side used is printed per run: a client near 100 % of its core means the rate is the client's
limit, not the hub's.

``--sdk`` also measures the SDK's send-side cost: what ``InterlinkClient.send_file`` does before
it sends the message (``interlink.client.media_transfer.prepare``: describe, seal with AES-256-GCM
into a temporary file on disk, slot, upload), on a 100 MiB file of random bytes.

    .venv/bin/python bench/media_upload.py                  # 5 runs of 100 MiB up and down
    .venv/bin/python bench/media_upload.py --runs 7 --sdk

Target (issue 6): the throughput target (>= 100 MiB/s) is for the proxy; the memory one
(< 32 MiB RSS growth) applies to the hub here too.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
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
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx

MiB = 1024 * 1024
CHUNK = os.urandom(256 * 1024)
DOMAIN = "bench.local"
USER = f"uploader@{DOMAIN}"
PASSWORD = "bench-password"


def pin(cpu: int) -> None:
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > cpu:
        os.sched_setaffinity(0, {cpu})


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def proc_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, all threads (the hub's file writes run in threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def interlink_cmd() -> list[str]:
    script = Path(sys.executable).with_name("interlink")
    return [str(script)] if script.exists() else [sys.executable, "-m", "interlink"]


def write_config(data: Path, ports: dict[str, int]) -> Path:
    config = data / "hub.toml"
    config.write_text(
        f'[hub]\ndomain = "{DOMAIN}"\ndata_dir = "{data}"\n'
        f'[net]\nhost = "127.0.0.1"\nc2s_port = {ports["c2s"]}\n'
        f"c2s_tls_port = {ports['tls']}\nhttp_port = {ports['http']}\n"
        'source_allowlist = ["127.0.0.0/8"]\n'  # one source by design
        '[log]\nlevel = "WARNING"\n'
        # Room for every run's file: the default quota (1 GiB) holds ten.
        f"[media]\nquota_bytes = {1 << 40}\n"
    )
    return config


def start_hub(
    config: Path, data: Path, ports: dict[str, int], no_pin: bool
) -> subprocess.Popen[bytes]:
    subprocess.run(
        [*interlink_cmd(), "user", "add", USER, "--password", PASSWORD, "--config", str(config)],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    cmd = [*interlink_cmd(), "serve", "--config", str(config)]
    taskset = shutil.which("taskset")
    if taskset and not no_pin:
        cmd = [taskset, "-c", "0", *cmd]
    with (data / "hub.log").open("wb") as log:
        hub = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if hub.poll() is not None:
            raise SystemExit(f"the hub exited: {(data / 'hub.log').read_text()[-2000:]}")
        try:
            socket.create_connection(("127.0.0.1", ports["http"]), timeout=1).close()
            socket.create_connection(("127.0.0.1", ports["c2s"]), timeout=1).close()
            return hub
        except OSError:
            time.sleep(0.05)
    hub.kill()
    raise SystemExit("the hub did not start listening within 30 s")


async def login(port: int, cafile: Path) -> object:
    import slixmpp

    xmpp = slixmpp.ClientXMPP(USER, PASSWORD)
    xmpp.ca_certs = cafile
    xmpp.enable_plaintext = False
    started = asyncio.Event()
    failed = asyncio.Event()
    xmpp.add_event_handler("session_start", lambda _: started.set())
    xmpp.add_event_handler("failed_all_auth", lambda _: failed.set())
    xmpp.connect("127.0.0.1", port)
    waiters = [asyncio.ensure_future(started.wait()), asyncio.ensure_future(failed.wait())]
    await asyncio.wait(waiters, timeout=20, return_when=asyncio.FIRST_COMPLETED)
    for waiter in waiters:
        waiter.cancel()
    if not started.is_set():
        raise SystemExit("login failed" if failed.is_set() else "could not connect")
    return xmpp


async def body(size: int) -> AsyncIterator[bytes]:
    left = size
    while left >= len(CHUNK):
        yield CHUNK
        left -= len(CHUNK)
    if left:
        yield CHUNK[:left]


def expected_sha256(size: int) -> bytes:
    digest = hashlib.sha256()
    left = size
    while left > 0:
        digest.update(CHUNK[: min(left, len(CHUNK))])
        left -= len(CHUNK)
    return digest.digest()


@dataclass
class Transfer:
    mib_per_s: float
    seconds: float
    rss_before_mib: float
    growth_mib: float
    hub_busy: float  # share of one core
    client_busy: float

    def line(self, name: str) -> str:
        return (
            f"{name} {self.mib_per_s:6.1f} MiB/s {self.seconds:5.2f} s, hub RSS "
            f"{self.rss_before_mib:5.1f} MiB + peak {self.growth_mib:4.1f}, CPU hub "
            f"{self.hub_busy * 100:3.0f} % client {self.client_busy * 100:3.0f} %"
        )


class Meter:
    """Peak RSS growth and CPU shares of the hub (and this process) over one transfer."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.highest_kib = 0

    def start(self) -> None:
        Path(f"/proc/{self.pid}/clear_refs").write_text("5")  # reset VmHWM
        self._before = proc_kib(self.pid, "VmRSS")
        self._hub_cpu = cpu_seconds(self.pid)
        self._client_cpu = time.process_time()
        self._started = time.perf_counter()

    def stop(self, size: int) -> Transfer:
        elapsed = time.perf_counter() - self._started
        peak = proc_kib(self.pid, "VmHWM")
        self.highest_kib = max(self.highest_kib, peak)
        return Transfer(
            size / MiB / elapsed,
            elapsed,
            self._before / 1024,
            (peak - self._before) / 1024,
            (cpu_seconds(self.pid) - self._hub_cpu) / elapsed,
            (time.process_time() - self._client_cpu) / elapsed,
        )


def summary(name: str, runs: list[Transfer]) -> str:
    rates = [t.mib_per_s for t in runs]
    growths = [t.growth_mib for t in runs]
    hub = [t.hub_busy for t in runs]
    per_cpu = [t.mib_per_s / t.hub_busy if t.hub_busy > 0 else float("nan") for t in runs]
    return (
        f"{name}: median {statistics.median(rates):.1f} MiB/s [{min(rates):.1f}-{max(rates):.1f}], "
        f"hub peak RSS growth median {statistics.median(growths):.1f} MiB "
        f"[max {max(growths):.1f}], "
        f"hub CPU median {statistics.median(hub) * 100:.0f} % "
        f"({statistics.median(per_cpu):.0f} MiB per CPU-second of the hub)"
    )


async def run(args: argparse.Namespace) -> None:
    from interlink.client.media_transfer import XmppUploader, prepare

    size = args.mib * MiB
    data = Path(tempfile.mkdtemp(prefix="media-upload-bench-"))
    ports = {"c2s": free_port(), "tls": free_port(), "http": free_port()}
    config = write_config(data, ports)
    hub = start_hub(config, data, ports, args.no_pin)
    try:
        cafile = data / "tls" / "dev-cert.pem"  # the dev certificate names 127.0.0.1 too
        verify = ssl.create_default_context(cafile=str(cafile))
        xmpp = await login(ports["c2s"], cafile)
        uploader = XmppUploader(xmpp, DOMAIN, 10)  # type: ignore[arg-type]
        meter = Meter(hub.pid)
        idle_kib = proc_kib(hub.pid, "VmRSS")
        timeout = httpx.Timeout(30, read=120)
        puts: list[Transfer] = []
        gets: list[Transfer] = []
        print(
            f"{args.mib} MiB up (PUT) and down (GET), HTTPS to the hub (pid {hub.pid}, "
            f"{'not pinned' if args.no_pin else 'CPU 0'}); hub RSS idle {idle_kib / 1024:.1f} MiB"
        )
        async with httpx.AsyncClient(verify=verify, timeout=timeout) as http:
            for run_no in range(args.runs + 1):  # run 0 is a warm-up
                slot = await uploader.slot(f"bench-{run_no}.bin", size, "application/octet-stream")
                headers = {
                    **slot.put_headers,
                    "Content-Type": "application/octet-stream",
                    "Content-Length": str(size),
                }
                meter.start()
                answer = await http.put(slot.put_url, content=body(size), headers=headers)
                put = meter.stop(size)
                if answer.status_code != 201:
                    raise SystemExit(f"PUT refused: {answer.status_code} {answer.text[:300]}")
                digest = hashlib.sha256() if run_no == 0 else None
                received = 0
                meter.start()
                async with http.stream("GET", slot.get_url) as response:
                    response.raise_for_status()
                    async for chunk in response.aiter_raw(256 * 1024):
                        received += len(chunk)
                        if digest is not None:
                            digest.update(chunk)
                get = meter.stop(size)
                assert received == size, (received, size)
                if digest is not None:
                    assert digest.digest() == expected_sha256(size), "the GET body differs"
                    print(f"warm-up: {put.line('PUT')}; {get.line('GET')} (SHA-256 checked)")
                    continue
                puts.append(put)
                gets.append(get)
                print(f"run {run_no}: {put.line('PUT')}")
                print(f"       {get.line('GET')}")
        print(summary("PUT", puts))
        print(summary("GET", gets))
        print(
            f"hub RSS: idle {idle_kib / 1024:.1f} MiB, highest peak over all runs "
            f"{meter.highest_kib / 1024:.1f} MiB (+{(meter.highest_kib - idle_kib) / 1024:.1f}); "
            "target < 32 MiB growth"
        )
        if args.sdk:
            plain = data / "plain.bin"
            with plain.open("wb") as out:
                for _ in range(args.mib):
                    out.write(os.urandom(MiB))
            sends: list[Transfer] = []
            for run_no in range(1, args.runs + 1):
                meter.start()
                await prepare(
                    plain,
                    "file",
                    caption=None,
                    media_type=None,
                    duration=None,
                    uploader=uploader,
                    work_dir=data / "work",
                    verify=verify,
                    progress=None,
                )
                sends.append(meter.stop(size))
                print(f"run {run_no}: {sends[-1].line('SDK seal + upload')}")
            print(summary("SDK seal + upload", sends))
        xmpp.disconnect()  # type: ignore[attr-defined]
    finally:
        hub.send_signal(signal.SIGTERM)
        try:
            hub.wait(30)
        except subprocess.TimeoutExpired:
            hub.kill()
        if args.keep_data:
            print(f"data kept in {data}")
        else:
            shutil.rmtree(data, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mib", type=int, default=100)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--sdk", action="store_true", help="also time the SDK's seal + upload")
    parser.add_argument("--no-pin", action="store_true", help="no CPU pinning")
    parser.add_argument("--keep-data", action="store_true", help="keep the hub's data directory")
    parser.add_argument("--quick", action="store_true", help="a few seconds (bench/README.md)")
    args = parser.parse_args()
    if args.quick:
        args.mib, args.runs = 2, 1
    if not args.no_pin:
        pin(1)
    try:
        import uvloop
    except ImportError:  # uvloop is a hub dependency on POSIX; plain asyncio elsewhere
        asyncio.run(run(args))
    else:
        uvloop.run(run(args))


if __name__ == "__main__":
    main()
