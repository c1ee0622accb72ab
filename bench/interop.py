"""Interop control-plane benchmark: enlistments/s and SASL OAUTHBEARER logins/s.

The hub runs as its own process pinned to CPU 0 (``interlink serve``, TLS on, SQLite
synchronous=FULL as shipped); this generator pins itself to CPU 1 and plays a provider (it signs
the tokens) and its users' devices (Ed25519 identity keys). Everything on 127.0.0.1.

The generator must outrun the hub, or it measures itself: the enlisting devices speak HTTP/1.1
with h11 over kept-alive asyncio TLS streams on uvloop (httpx's pool cost ~8 ms of generator CPU
per enlistment and capped the result at ~130/s while the hub was 60 % idle). The hub's own CPU
time per operation (from /proc) is printed next to the rates, and so is the generator's: a
generator near 100 % means the rate is a lower bound for the hub.

    .venv/bin/python bench/interop.py                   # 2,000 enlistments, 2,000 logins
    .venv/bin/python bench/interop.py --enlist 500 --logins 500 --concurrency 16

Targets (issue 4): >= 500 enlistments/s and >= 500 OAUTHBEARER logins/s.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import os
import secrets
import shutil
import socket
import ssl
import sys
import tempfile
import time
import warnings
from collections.abc import Coroutine
from pathlib import Path

import h11
import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from joserfc import jwt
from joserfc.jwk import OKPKey

DOMAIN = "bench.local"
ADMIN = "bench-admin-token-0123456789abcdefgh"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def thumbprint(public: bytes) -> str:
    jwk = {"crv": "Ed25519", "kty": "OKP", "x": b64url(public)}
    return b64url(
        hashlib.sha256(json.dumps(jwk, separators=(",", ":"), sort_keys=True).encode()).digest()
    )


class Http11:
    """One kept-alive HTTPS connection: h11 (sans-I/O) over asyncio streams, one request at a
    time."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._conn = h11.Connection(h11.CLIENT)

    @classmethod
    async def open(cls, port: int, ctx: ssl.SSLContext) -> Http11:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx)
        return cls(reader, writer)

    async def post(self, target: str, body: bytes = b"") -> tuple[int, bytes]:
        headers = [
            ("Host", DOMAIN),
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(body))),
        ]
        conn = self._conn
        self._writer.write(
            conn.send(h11.Request(method="POST", target=target, headers=headers))
            + conn.send(h11.Data(data=body))
            + conn.send(h11.EndOfMessage())
        )
        status, parts = 0, []
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(await self._reader.read(65536))
            elif isinstance(event, h11.Response):
                status = event.status_code
            elif isinstance(event, h11.Data):
                parts.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                conn.start_next_cycle()
                return status, b"".join(parts)
            elif isinstance(event, h11.ConnectionClosed):
                raise ConnectionError("the hub closed the connection")

    def close(self) -> None:
        self._writer.close()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, all threads, from /proc (Linux)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rpartition(")")[2].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Provider:
    def __init__(self) -> None:
        self.key = OKPKey.generate_key("Ed25519", parameters={"kid": "bench"})

    def token(self, subject: str, jkt: str) -> str:
        now = int(time.time())
        claims = {
            "iss": "benchchat",
            "sub": subject,
            "aud": DOMAIN,
            "iat": now,
            "exp": now + 300,
            "jti": secrets.token_urlsafe(12),
            "cnf": {"jkt": jkt},
        }
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return jwt.encode(
                {"alg": "Ed25519", "kid": "bench"}, claims, self.key, algorithms=["Ed25519"]
            )


async def start_hub(
    data: Path, synchronous: str
) -> tuple[asyncio.subprocess.Process, dict[str, int]]:
    ports = {"c2s": free_port(), "tls": free_port(), "http": free_port()}
    config = data / "hub.toml"
    config.write_text(
        f'[hub]\ndomain = "{DOMAIN}"\ndata_dir = "{data}"\n'
        f'[net]\nhost = "127.0.0.1"\nc2s_port = {ports["c2s"]}\nc2s_tls_port = {ports["tls"]}\n'
        f"http_port = {ports['http']}\nmax_unauthenticated = 5000\n"
        # the benchmark is one source by design: not held by the per-source budgets
        'source_allowlist = ["127.0.0.0/8"]\n'
        f'[admin]\ntoken = "{ADMIN}"\n[log]\nlevel = "WARNING"\n'
        f'[storage]\nsqlite_synchronous = "{synchronous}"\n'
    )
    cmd = [sys.executable, "-m", "interlink", "serve", "--config", str(config)]
    if shutil.which("taskset"):
        cmd = [shutil.which("taskset") or "taskset", "-c", "0", *cmd]
    proc = await asyncio.create_subprocess_exec(
        *cmd, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
    )
    for _ in range(300):
        try:
            _, w = await asyncio.open_connection("127.0.0.1", ports["http"])
            w.close()
            break
        except OSError:
            await asyncio.sleep(0.05)
    return proc, ports


async def measured(
    name: str, count: int, hub_pid: int, workers: list[Coroutine[None, None, None]]
) -> dict[str, float]:
    """Run the workers to completion: the rate, and the hub's and generator's CPU per item."""
    if count == 0:
        return {name: 0}
    hub_cpu, gen_cpu = cpu_seconds(hub_pid), time.process_time()
    start = time.perf_counter()
    await asyncio.gather(*workers)
    elapsed = time.perf_counter() - start
    hub_cpu, gen_cpu = cpu_seconds(hub_pid) - hub_cpu, time.process_time() - gen_cpu
    return {
        name: count,
        f"{name}_per_s": count / elapsed,
        f"{name}_hub_cpu_ms_each": 1000 * hub_cpu / count,
        f"{name}_hub_cpu_busy": hub_cpu / elapsed,
        f"{name}_generator_cpu_busy": gen_cpu / elapsed,
    }


async def run(enlist_n: int, login_n: int, concurrency: int, synchronous: str) -> dict[str, float]:
    data = Path(tempfile.mkdtemp(prefix="interop-bench-"))
    proc, ports = await start_hub(data, synchronous)
    cert = data / "tls" / "dev-cert.pem"
    ctx = ssl.create_default_context(cafile=str(cert))
    ctx.check_hostname = False  # the dev certificate names the domain, we dial 127.0.0.1
    provider = Provider()
    results: dict[str, float] = {}
    try:
        base = f"https://127.0.0.1:{ports['http']}"
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        async with httpx.AsyncClient(base_url=base, verify=ctx, timeout=30, limits=limits) as http:
            auth = {"Authorization": f"Bearer {ADMIN}"}
            body = {
                "id": "benchchat",
                "display_name": "Bench",
                "callback_url": "https://push.bench.example",
                "jwks": {"keys": [provider.key.as_dict(private=False)]},
            }
            assert (
                await http.post("/admin/v1/providers", json=body, headers=auth)
            ).status_code == 201
            await http.post("/admin/v1/providers/benchchat/approve", headers=auth)
        devices = [Ed25519PrivateKey.generate() for _ in range(enlist_n)]
        publics = [d.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw) for d in devices]
        tokens = [provider.token(f"user-{i}", thumbprint(publics[i])) for i in range(enlist_n)]
        queue: asyncio.Queue[int] = asyncio.Queue()
        for i in range(enlist_n):
            queue.put_nowait(i)
        failures = 0

        async def enlister() -> None:
            nonlocal failures
            conn = await Http11.open(ports["http"], ctx)
            try:
                while not queue.empty():
                    i = queue.get_nowait()
                    _, answer = await conn.post("/v1/enlistments/challenge")
                    nonce = json.loads(answer)["challenge"]
                    sig = devices[i].sign(nonce.encode() + DOMAIN.encode())
                    body = {
                        "token": tokens[i],
                        "identity_key": b64url(publics[i]),
                        "challenge": nonce,
                        "signature": b64url(sig),
                    }
                    status, _ = await conn.post("/v1/enlistments", json.dumps(body).encode())
                    if status != 201:
                        failures += 1
            finally:
                conn.close()

        results.update(
            await measured(
                "enlistments", enlist_n, proc.pid, [enlister() for _ in range(concurrency)]
            )
        )
        results["enlist_failures"] = failures
        login_tokens = [provider.token(f"user-{i % max(enlist_n, 1)}", "x") for i in range(login_n)]
        logins: asyncio.Queue[int] = asyncio.Queue()
        for i in range(login_n):
            logins.put_nowait(i)
        login_failures = 0
        host = f"benchchat.interop.{DOMAIN}"

        async def login(token: str) -> bool:
            reader, writer = await asyncio.open_connection("127.0.0.1", ports["tls"], ssl=ctx)
            try:
                header = (
                    f"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/"
                    f"streams' to='{host}' version='1.0'>"
                ).encode()
                initial = base64.b64encode(f"n,,\x01auth=Bearer {token}\x01\x01".encode()).decode()
                writer.write(
                    header
                    + f"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism="
                    f"'OAUTHBEARER'>{initial}</auth>".encode()
                )
                buffer = b""
                while b"<success" not in buffer and b"<failure" not in buffer:
                    chunk = await reader.read(65536)
                    if not chunk:
                        break
                    buffer += chunk
                return b"<success" in buffer
            finally:
                writer.close()

        async def logger() -> None:
            nonlocal login_failures
            while not logins.empty():
                i = logins.get_nowait()
                if not await login(login_tokens[i]):
                    login_failures += 1

        results.update(
            await measured("logins", login_n, proc.pid, [logger() for _ in range(concurrency)])
        )
        results["login_failures"] = login_failures
    finally:
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), timeout=30)
        except TimeoutError:
            print("the hub did not stop within 30 s of SIGTERM; killed", file=sys.stderr)
            proc.kill()
            await proc.wait()
        shutil.rmtree(data, ignore_errors=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--enlist", type=int, default=2000)
    parser.add_argument("--logins", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument(
        "--sync",
        default="FULL",
        choices=["FULL", "NORMAL"],
        help="the hub's storage.sqlite_synchronous (FULL as shipped)",
    )
    parser.add_argument("--quick", action="store_true", help="a few seconds (bench/README.md)")
    args = parser.parse_args()
    if args.quick:
        args.enlist, args.logins, args.concurrency = 20, 20, 4
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {1})
    main_coro = run(args.enlist, args.logins, args.concurrency, args.sync)
    try:
        import uvloop

        results = uvloop.run(main_coro)
    except ImportError:  # uvloop is a hub dependency on POSIX; plain asyncio elsewhere
        results = asyncio.run(main_coro)
    print(json.dumps(results, indent=2))
    for name, label in (("enlistments", "enlistments/s"), ("logins", "OAUTHBEARER logins/s")):
        if results.get(name):
            print(
                f"{label}: {results[name + '_per_s']:.0f} (target 500); hub CPU "
                f"{results[name + '_hub_cpu_ms_each']:.2f} ms each, hub busy "
                f"{results[name + '_hub_cpu_busy']:.0%}, generator busy "
                f"{results[name + '_generator_cpu_busy']:.0%}"
            )


if __name__ == "__main__":
    main()
