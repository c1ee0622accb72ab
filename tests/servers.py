"""Real servers for the tests, from the machine's Debian packages: a throwaway PostgreSQL
cluster (``initdb`` into a temporary directory, listening on 127.0.0.1 on a free port) and a
throwaway Redis (``redis-server``, no persistence, 127.0.0.1, a free port), each started once
per test session on first use (:func:`postgres_server`, :func:`redis_server`) and removed at
its end.

``scripts/test`` installs the ``postgresql`` and ``redis-server`` packages where missing. With
``INTERLINK_TEST_POSTGRES_DSN`` set (a server where the user may ``CREATE DATABASE``), the tests
use that server instead and start none. As root, the server runs as the ``postgres`` user the
package creates: PostgreSQL refuses to run as root.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from tests.ports import free_port

START_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0
USER = "interlink"


def postgres_bindir() -> Path | None:
    """The newest installed PostgreSQL's ``bin`` directory (Debian: /usr/lib/postgresql/N/bin)."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4])
    )
    return Path(found[-1]).parent if found else None


def postgres_available() -> bool:
    return bool(os.environ.get("INTERLINK_TEST_POSTGRES_DSN")) or postgres_bindir() is not None


@dataclass
class PostgresServer:
    """A server the tests may create databases on; :meth:`database` makes a fresh one."""

    admin_dsn: str  # a connection to the ``postgres`` database, as a user who may create more
    process: subprocess.Popen[bytes] | None = None
    root: Path | None = None
    made: list[str] = field(default_factory=list)

    def dsn(self, dbname: str) -> str:
        return str(psycopg.conninfo.make_conninfo(self.admin_dsn, dbname=dbname))

    def database(self) -> str:
        """A new empty database (UTF-8, C collation, as Interlink needs); its DSN."""
        name = "t_" + uuid.uuid4().hex[:16]
        with psycopg.connect(self.admin_dsn, autocommit=True) as conn:
            conn.execute(
                f"CREATE DATABASE {name} TEMPLATE template0 ENCODING 'UTF8' "
                "LC_COLLATE 'C' LC_CTYPE 'C'"
            )
        self.made.append(name)
        return self.dsn(name)

    def drop(self, dsn: str) -> None:
        name = psycopg.conninfo.conninfo_to_dict(dsn)["dbname"]
        with psycopg.connect(self.admin_dsn, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        with contextlib.suppress(ValueError):
            self.made.remove(str(name))

    def stop(self) -> None:
        if self.process is None:
            for name in list(self.made):  # an external server: leave it as it was
                with contextlib.suppress(psycopg.Error):
                    self.drop(self.dsn(name))
            return
        self.process.terminate()  # SIGTERM: "smart" shutdown; sessions are closed by then
        try:
            self.process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(STOP_TIMEOUT)
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)


def _as_server_user(argv: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return argv
    return ["runuser", "-u", "postgres", "--", *argv]


def start_postgres(*, durable: bool = False) -> PostgresServer:
    """Start a throwaway cluster (or use ``INTERLINK_TEST_POSTGRES_DSN``); ``durable`` keeps
    PostgreSQL's fsync on (for benchmarks; the tests do without)."""
    external = os.environ.get("INTERLINK_TEST_POSTGRES_DSN")
    if external:
        return PostgresServer(external)
    bindir = postgres_bindir()
    if bindir is None:
        raise RuntimeError("PostgreSQL is not installed (scripts/test installs it)")
    root = Path(tempfile.mkdtemp(prefix="interlink-pg-"))
    data = root / "data"
    if os.geteuid() == 0:
        pw = pwd.getpwnam("postgres")
        os.chown(root, pw.pw_uid, pw.pw_gid)
    root.chmod(0o755)
    log = root / "server.log"
    try:
        subprocess.run(
            _as_server_user(
                [
                    str(bindir / "initdb"),
                    "-D",
                    str(data),
                    "-U",
                    USER,
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--locale=C",
                    "--no-sync",
                ]
            ),
            check=True,
            capture_output=True,
            timeout=START_TIMEOUT,
        )
        port = free_port()
        # fsync off: these databases die with the test run; what the tests check is
        # that a write is committed before it is acknowledged, which fsync does not change
        argv = _as_server_user(
            [
                str(bindir / "postgres"),
                "-D",
                str(data),
                "-p",
                str(port),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                f"unix_socket_directories={root}",
                "-c",
                f"fsync={'on' if durable else 'off'}",
                "-c",
                f"full_page_writes={'on' if durable else 'off'}",
                "-c",
                "max_connections=300",
                "-c",
                "shared_buffers=32MB",
            ]
        )
        with log.open("wb") as out:
            process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise
    server = PostgresServer(
        f"host=127.0.0.1 port={port} user={USER} dbname=postgres", process, root
    )
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        try:
            with psycopg.connect(server.admin_dsn, connect_timeout=2):
                return server
        except psycopg.OperationalError:
            if process.poll() is not None or time.monotonic() > deadline:
                server.stop()
                raise RuntimeError(
                    "PostgreSQL did not start: " + log.read_text(errors="replace")[-2000:]
                ) from None
            time.sleep(0.1)


@contextlib.contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    server = start_postgres()
    try:
        yield server
    finally:
        server.stop()


REDIS_SERVER = "/usr/bin/redis-server"


def redis_available() -> bool:
    return bool(os.environ.get("INTERLINK_TEST_REDIS_URL")) or Path(REDIS_SERVER).exists()


@dataclass
class RedisServer:
    url: str
    process: subprocess.Popen[bytes] | None = None
    root: Path | None = None

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(STOP_TIMEOUT)
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)


def start_redis() -> RedisServer:
    """Start a throwaway Redis (or use ``INTERLINK_TEST_REDIS_URL``)."""
    external = os.environ.get("INTERLINK_TEST_REDIS_URL")
    if external:
        return RedisServer(external)
    if not Path(REDIS_SERVER).exists():
        raise RuntimeError("redis-server is not installed (scripts/test installs it)")
    root = Path(tempfile.mkdtemp(prefix="interlink-redis-"))
    port = free_port()
    argv = [
        REDIS_SERVER,
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(root),
        "--daemonize",
        "no",
    ]
    with (root / "server.log").open("wb") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
    server = RedisServer(f"redis://127.0.0.1:{port}/0", process, root)
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as conn:
                conn.sendall(b"PING\r\n")
                if conn.recv(16).startswith(b"+PONG"):
                    return server
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            log = (root / "server.log").read_text(errors="replace")[-2000:]
            server.stop()
            raise RuntimeError("redis-server did not start: " + log)
        time.sleep(0.05)


@contextlib.contextmanager
def redis_server() -> Iterator[RedisServer]:
    server = start_redis()
    try:
        yield server
    finally:
        server.stop()
