"""Hostile load against a real `interlink serve` (uvloop, default limits), on loopback.

For each transport, one source (127.0.0.1) opens ``--idle`` connections that send nothing
(the issue's lockout: 1,000) while a bystander on 127.0.0.2 logs in ``--logins`` times; then
200 idle HTTPS connections wait for ``net.http_request_timeout``. Prints the bystander's login
latency, /healthz latency, how many attack connections the hub still held, and the hub's RSS.

    PYTHONPATH=src:. .venv/bin/python bench/hostile_load.py [--idle 1000] [--logins 5]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from tests.integration.kit import DOMAIN, make_certs
from tests.integration.loadkit import (
    close_all,
    closed_by_peer,
    direct_tls_login,
    https_get,
    open_idle,
    starttls_login,
    websocket_login,
)

LOGINS = {
    "c2s-starttls": starttls_login,
    "c2s-direct-tls": direct_tls_login,
    "http": websocket_login,
}


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def start_hub(folder: Path) -> tuple[asyncio.subprocess.Process, dict[str, int]]:
    certs = make_certs(folder)
    config = folder / "hub.toml"
    config.write_text(
        f'[hub]\ndomain = "{DOMAIN}"\ndata_dir = "{folder / "data"}"\n'
        '[net]\nhost = "127.0.0.1"\nc2s_port = 0\nc2s_tls_port = 0\nhttp_port = 0\n'
        f'[tls]\ncert_file = "{certs.cert}"\nkey_file = "{certs.key}"\n'
    )
    add = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "interlink", "user", "add", f"alice@{DOMAIN}", "--password", "pw",
        "--config", str(config), stdout=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    await add.wait()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "interlink", "serve", "--config", str(config),
        stdin=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stderr is not None
    ports: dict[str, int] = {}
    while True:
        entry = json.loads(await asyncio.wait_for(proc.stderr.readline(), 30))
        if entry.get("event") == "listening":
            ports[entry["transport"]] = int(entry["port"])
        if entry.get("event") == "hub started":
            break
    asyncio.get_running_loop().create_task(_drain(proc.stderr))
    return proc, ports


async def _drain(stream: asyncio.StreamReader) -> None:
    while await stream.readline():
        pass


async def logins(listener: str, port: int, certs_dir: Path, count: int) -> list[float]:
    from tests.integration.kit import Certs

    certs = Certs(certs_dir / "ca.pem", certs_dir / "cert.pem", certs_dir / "key.pem")
    times = []
    for _ in range(count):
        started = time.perf_counter()
        await LOGINS[listener](port, certs)
        times.append(time.perf_counter() - started)
    return times


def ms(values: list[float]) -> str:
    return f"median {statistics.median(values) * 1000:.0f} ms, max {max(values) * 1000:.0f} ms"


async def held_open(conns: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]]) -> int:
    closed = await asyncio.gather(*(closed_by_peer(r, timeout=0.5) for r, _ in conns))
    return sum(not c for c in closed)


async def main(idle: int, count: int) -> None:
    from tests.integration.kit import Certs

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        proc, ports = await start_hub(folder)
        certs = Certs(folder / "ca.pem", folder / "cert.pem", folder / "key.pem")
        try:
            print(f"hub RSS at start: {rss_mib(proc.pid):.0f} MiB")
            for listener, port in ports.items():
                kinds = ["tcp"] if listener == "c2s-starttls" else ["tcp", "tls"]
                for kind in kinds:
                    quiet = await logins(listener, port, folder, count)
                    tls = certs.client_context() if kind == "tls" else None
                    attack = await open_idle(port, idle, tls=tls)
                    await asyncio.sleep(0.5)
                    loaded = await logins(listener, port, folder, count)
                    rss = rss_mib(proc.pid)
                    held = await held_open(attack)
                    await close_all(attack)
                    said = "nothing" if kind == "tcp" else "a TLS handshake, then nothing"
                    print(
                        f"{listener}: bystander login {ms(quiet)} quiet; {ms(loaded)} under "
                        f"{idle} connections from one source that sent {said} (the hub still "
                        f"held {held} of them 1 s later); hub RSS {rss:.0f} MiB"
                    )
                    await asyncio.sleep(1)
            port = ports["http"]
            attack = await open_idle(port, 200, tls=certs.client_context())
            started = time.perf_counter()
            health = []
            for _ in range(count):
                t = time.perf_counter()
                assert (await https_get(port, certs, "/healthz")).startswith(b"HTTP/1.1 200")
                health.append(time.perf_counter() - t)
            rss = rss_mib(proc.pid)
            await asyncio.gather(*(closed_by_peer(r, timeout=60) for r, _ in attack))
            print(
                f"200 idle HTTPS connections (one source, handshake done): /healthz {ms(health)}"
                f" meanwhile, hub RSS {rss:.0f} MiB; all closed by the hub after "
                f"{time.perf_counter() - started:.1f} s"
            )
            await close_all(attack)
        finally:
            proc.terminate()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(proc.wait(), 15)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--idle", type=int, default=1000)
    parser.add_argument("--logins", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="a few seconds (bench/README.md)")
    args = parser.parse_args()
    if args.quick:
        args.idle, args.logins = 50, 2
    asyncio.run(main(args.idle, args.logins))
