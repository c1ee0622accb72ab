"""Media proxy benchmark (issue 6 §5): a 100 MiB download through ``GET /v1/media-proxy``.

Three processes, all on 127.0.0.1:

* the *upstream* (a third party's media host): uvicorn serving one 100 MiB body with Content-Length,
  from one 64 KiB buffer sent again and again;
* the *proxy*: uvicorn (uvloop, httptools, as ``interlink serve`` runs) with only the media-proxy
  router, a real :class:`~interlink.media.proxy.MediaProxy` and token check, pinned to CPU 0;
* the *client* (this process, with the upstream's CPU 1): httpx streaming the body and dropping it.

The CPU each side used is printed per run. When the upstream and client together are near 100 %
of their one core (as with ``--tls``) the rate is a lower bound for the proxy. On a shared machine
the rate varies with whatever else runs; "MiB per CPU-second of the proxy" (bytes moved per unit of
the proxy's own CPU time) varies much less and tells what one core can carry.

For each run the proxy's peak RSS is reset (``/proc/<pid>/clear_refs``), and its growth is the
peak during the download minus the RSS just before it. ``--tls`` puts TLS on both hops (upstream
certificate for ``media.example`` from trustme, resolved to 127.0.0.1 by a fixed resolver; the
client trusts the proxy's certificate); without it both hops are plain HTTP on loopback, which the
proxy allows only for an explicitly allowlisted 127.0.0.1.

    .venv/bin/python bench/media_proxy.py                 # 5 runs of 100 MiB, plain HTTP
    .venv/bin/python bench/media_proxy.py --tls --runs 3

Target (issue 6): >= 100 MiB/s through the proxy with < 32 MiB RSS growth.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import os
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx

MiB = 1024 * 1024
CHUNK = os.urandom(64 * 1024)
HUB = "hub.test"
SECRET = b"bench-secret-bench-secret-bench!"


def pin(cpu: int) -> None:
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > cpu:
        os.sched_setaffinity(0, {cpu})


def serve(app: object, sock: socket.socket, certs: Path | None) -> None:
    import uvicorn

    config = uvicorn.Config(
        app,  # type: ignore[arg-type]
        lifespan="off",
        log_config=None,
        access_log=False,
        loop="uvloop",
        http="httptools",
        ssl_certfile=str(certs / "cert.pem") if certs else None,
        ssl_keyfile=str(certs / "key.pem") if certs else None,
    )
    uvicorn.Server(config).run([sock])


def upstream_main(size: int, certs: Path | None) -> None:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response, StreamingResponse
    from starlette.routing import Route

    async def body() -> AsyncIterator[bytes]:
        left = size
        while left >= len(CHUNK):
            yield CHUNK
            left -= len(CHUNK)
        if left:
            yield CHUNK[:left]

    async def file(_request: Request) -> Response:
        headers = {"Content-Length": str(size)}
        return StreamingResponse(body(), headers=headers, media_type="application/octet-stream")

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)  # before the port is told: the first connection must not be refused
    print(sock.getsockname()[1], flush=True)
    serve(Starlette(routes=[Route("/file", file)]), sock, certs)


def proxy_main(upstream_port: int, certs: Path | None) -> None:
    from fastapi import FastAPI

    from interlink.media.proxy import MediaProxy
    from interlink.media.tokens import MediaTokens
    from interlink.net.media_proxy_api import media_proxy_router
    from interlink.storage.providers import Provider, ProviderStatus

    provider = Provider(
        "bench",
        "Bench",
        "https://bench.example",
        ProviderStatus.APPROVED,
        media_hosts=(f"127.0.0.1:{upstream_port}", f"media.example:{upstream_port}"),
        services=(HUB,),
    )

    async def lookup(_provider_id: str) -> Provider:
        return provider

    async def resolve(host: str, _port: int) -> list[ipaddress.IPv4Address]:
        if host != "media.example":
            raise OSError(f"unknown host {host}")
        return [ipaddress.IPv4Address("127.0.0.1")]

    context = None
    if certs is not None:
        context = ssl.create_default_context(cafile=str(certs / "ca.pem"))
    proxy = MediaProxy(
        lookup,
        private_allowlist=["127.0.0.1"],
        allow_http_loopback=True,
        resolver=resolve,
        ssl_context=context,
    )
    app = FastAPI()
    app.include_router(
        media_proxy_router(
            proxy, MediaTokens(SECRET), lambda jid: jid.domain == HUB, clock=time.time
        )
    )
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)  # before the port is told: the first connection must not be refused
    print(sock.getsockname()[1], flush=True)
    serve(app, sock, certs)


def make_certs(folder: Path) -> None:
    import trustme

    ca = trustme.CA()
    issued = ca.issue_cert("media.example", "127.0.0.1")
    ca.cert_pem.write_to_path(str(folder / "ca.pem"))
    issued.cert_chain_pems[0].write_to_path(str(folder / "cert.pem"))
    issued.private_key_pem.write_to_path(str(folder / "key.pem"))


def spawn(role: str, *args: str) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(
        [sys.executable, __file__, "--role", role, *args], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    return proc, int(proc.stdout.readline())


def proc_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def download(client: httpx.AsyncClient, params: dict[str, str], token: str) -> int:
    received = 0
    headers = {"Authorization": f"Bearer {token}"}
    async with client.stream("GET", "/v1/media-proxy", params=params, headers=headers) as response:
        response.raise_for_status()
        async for chunk in response.aiter_raw(256 * 1024):
            received += len(chunk)
    return received


async def client_main(args: argparse.Namespace, certs: Path | None) -> None:
    from interlink.media.tokens import MediaTokens

    size = args.mib * MiB
    up_args = ["--size", str(size)] + (["--certs", str(certs)] if certs else [])
    upstream, up_port = spawn("upstream", *up_args)
    proxy, proxy_port = spawn("proxy", "--upstream-port", str(up_port), *up_args[2:])
    scheme = "https" if certs else "http"
    host = "media.example" if certs else "127.0.0.1"
    params = {"url": f"{scheme}://{host}:{up_port}/file", "provider": "bench"}
    verify: ssl.SSLContext | bool = False
    if certs:
        verify = ssl.create_default_context(cafile=str(certs / "ca.pem"))
    rates: list[float] = []
    growths: list[float] = []
    per_cpu: list[float] = []
    try:
        async with httpx.AsyncClient(
            base_url=f"{scheme}://127.0.0.1:{proxy_port}", verify=verify, timeout=60
        ) as client:
            token = MediaTokens(SECRET).issue(f"+15550000000@{HUB}", time.time())
            await download(client, params, token)  # warm-up
            print(
                f"{args.mib} MiB via the proxy, {'TLS' if certs else 'plain HTTP'} on both hops; "
                f"proxy pid {proxy.pid}"
            )
            for run in range(1, args.runs + 1):
                Path(f"/proc/{proxy.pid}/clear_refs").write_text("5")  # reset VmHWM
                before = proc_kib(proxy.pid, "VmRSS")
                cpu0 = cpu_seconds(proxy.pid)
                other0 = cpu_seconds(upstream.pid) + sum(os.times()[:2])
                started = time.perf_counter()
                received = await download(client, params, token)
                elapsed = time.perf_counter() - started
                assert received == size, (received, size)
                peak = proc_kib(proxy.pid, "VmHWM")
                cpu = cpu_seconds(proxy.pid) - cpu0
                other = cpu_seconds(upstream.pid) + sum(os.times()[:2]) - other0
                rates.append(size / MiB / elapsed)
                per_cpu.append(size / MiB / cpu if cpu > 0 else float("nan"))
                growths.append((peak - before) / 1024)
                print(
                    f"run {run}: {rates[-1]:7.1f} MiB/s  {elapsed:5.2f} s  "
                    f"proxy RSS {before / 1024:6.1f} MiB, peak growth {growths[-1]:5.1f} MiB, "
                    f"CPU: proxy {cpu / elapsed * 100:3.0f} %, "
                    f"upstream + client {other / elapsed * 100:3.0f} % (of one core)"
                )
    finally:
        for proc in (proxy, upstream):
            proc.send_signal(signal.SIGTERM)
        for proc in (proxy, upstream):
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
    print(
        f"median {statistics.median(rates):.1f} MiB/s [{min(rates):.1f}-{max(rates):.1f}], "
        f"peak RSS growth median {statistics.median(growths):.1f} MiB [max {max(growths):.1f}] "
        "(target >= 100 MiB/s, < 32 MiB)"
    )
    print(f"proxy cost: median {statistics.median(per_cpu):.0f} MiB per CPU-second of the proxy")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--role", choices=("client", "upstream", "proxy"), default="client")
    parser.add_argument("--mib", type=int, default=100)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--tls", action="store_true")
    parser.add_argument("--size", type=int)
    parser.add_argument("--certs", type=Path)
    parser.add_argument("--upstream-port", type=int)
    parser.add_argument("--quick", action="store_true", help="a few seconds (bench/README.md)")
    args = parser.parse_args()
    if args.quick:
        args.mib, args.runs = 2, 1
    if args.role == "upstream":
        pin(1)
        upstream_main(args.size, args.certs)
    elif args.role == "proxy":
        pin(0)
        proxy_main(args.upstream_port, args.certs)
    else:
        pin(1)
        with tempfile.TemporaryDirectory() as tmp:
            certs = None
            if args.tls:
                certs = Path(tmp)
                make_certs(certs)
            try:
                import uvloop

                uvloop.run(client_main(args, certs))
            except ImportError:
                asyncio.run(client_main(args, certs))


if __name__ == "__main__":
    main()
