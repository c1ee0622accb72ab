"""A stock ejabberd (Debian's 23.01) as a federated provider's server, on loopback.

The configuration is the one docs/provider-guide.md §10 gives a provider, read from the guide
(:func:`guide_config`): the kit replaces its host-specific values (domains, certificate paths,
listener addresses and ports) and adds what only the tests need (a log level, and a loopback
HTTP API to register users). Everything lives in a temporary directory: configuration, Mnesia
spool, log.

ejabberd finds the hub through DNS, as a real server would. Its SRV lookup
(``_xmpp-server._tcp.<domain>``) goes through Erlang's own resolver, ``inet_res``, pointed at the
loopback DNS server of :mod:`tests.integration.prosodykit` by the guide's inetrc (:func:`inetrc`,
given as ``ERL_INETRC``); its address lookup then goes through the C library
(``net:getaddrinfo``, p1_xmpp 1.6), which reads no inetrc: so the SRV record's target is ``localhost``. The inetrc must clear
``resolv_conf`` first, or the system's ``/etc/resolv.conf`` replaces its nameserver.

The Erlang VM runs in the foreground without distribution (no epmd, no node name), as the user
running the tests, and stops by itself after :data:`LIFETIME` seconds at the latest.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import re
import shutil
import signal
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.integration.prosodykit import FederationCerts
from tests.ports import free_ports

ERL = shutil.which("erl") or "/usr/bin/erl"
GUIDE = Path(__file__).parents[2] / "docs" / "provider-guide.md"
GUIDE_BLOCK = re.compile(r"<!-- ejabberd-config -->\s*\n```yaml\n(?P<body>.*?)\n```", re.S)
INETRC_BLOCK = re.compile(r"<!-- ejabberd-inetrc -->\s*\n```erlang\n(?P<body>.*?)\n```", re.S)
START_TIMEOUT = 30.0
LIFETIME = 600  # seconds: the VM stops by itself even if the test process dies


def ejabberd_libs() -> str | None:
    """The directory holding Debian's ``ejabberd-<version>`` application (ejabberdctl's
    ``ERL_LIBS``), or ``None`` when ejabberd is not installed."""
    found = sorted(glob.glob("/usr/lib/*/ejabberd-*/ebin/ejabberd.app"))
    return str(Path(found[-1]).parents[1]) if found else None


def guide_config() -> dict[str, Any]:
    """The ejabberd configuration of docs/provider-guide.md §10, as written."""
    match = GUIDE_BLOCK.search(GUIDE.read_text(encoding="utf-8"))
    assert match is not None, "docs/provider-guide.md has no <!-- ejabberd-config --> block"
    config = yaml.safe_load(match.group("body"))
    assert isinstance(config, dict)
    return config


@dataclass
class Ejabberd:
    folder: Path
    c2s_port: int
    s2s_port: int
    api_port: int
    process: subprocess.Popen[bytes] | None = None

    @property
    def log(self) -> str:
        try:
            return (self.folder / "log" / "ejabberd.log").read_text(errors="replace")
        except OSError:
            return ""

    async def register(self, user: str, host: str, password: str) -> None:
        """``ejabberdctl register``, through the HTTP API (mod_http_api)."""
        async with httpx.AsyncClient(timeout=START_TIMEOUT) as http:
            response = await http.post(
                f"http://127.0.0.1:{self.api_port}/api/register",
                json={"user": user, "host": host, "password": password},
            )
        answer = response.content
        assert b"successfully registered" in answer, answer

    def closed_outgoing(self, local: str, remote: str) -> bool:
        """Whether ejabberd has taken down its stream from ``local`` to ``remote``."""
        return f"Closing outbound s2s connection {local} -> {remote}" in self.log


def provider_config(
    folder: Path,
    hosts: tuple[str, ...],
    certs: FederationCerts,
    ports: tuple[int, int, int],
    ca_file: Path,
) -> dict[str, Any]:
    """The guide's configuration with this machine's values in place of the guide's."""
    c2s_port, s2s_port, api_port = ports
    config = guide_config()
    assert config["hosts"] == ["chat.example"]
    config["hosts"] = list(hosts)
    assert len(config["certfiles"]) == 2
    config["certfiles"] = [str(certs.peer_cert), str(certs.peer_key)]
    assert "ca_file" in config
    config["ca_file"] = str(ca_file)
    config["loglevel"] = "debug"
    ports_by_module = {"ejabberd_c2s": c2s_port, "ejabberd_s2s_in": s2s_port}
    listeners = config["listen"]
    assert sorted(entry["module"] for entry in listeners) == sorted(ports_by_module)
    for entry in listeners:
        entry["ip"] = "127.0.0.1"
        entry["port"] = ports_by_module[entry["module"]]
    # the tests' own: users registered over a loopback HTTP API
    listeners.append(
        {
            "port": api_port,
            "ip": "127.0.0.1",
            "module": "ejabberd_http",
            "request_handlers": {"/api": "mod_http_api"},
        }
    )
    config["api_permissions"] = {
        "tests register users": {
            "from": ["mod_http_api"],
            "who": {"ip": "127.0.0.1/8"},
            "what": ["register"],
        }
    }
    return config


def inetrc(dns_port: int) -> str:
    """Erlang's resolver configuration of docs/provider-guide.md §10, pointed at the loopback
    DNS server (see the module doc)."""
    match = INETRC_BLOCK.search(GUIDE.read_text(encoding="utf-8"))
    assert match is not None, "docs/provider-guide.md has no <!-- ejabberd-inetrc --> block"
    body = match.group("body")
    assert "{nameserver, {127,0,0,1}, 5353}." in body
    return body.replace(
        "{nameserver, {127,0,0,1}, 5353}.", f"{{nameserver, {{127,0,0,1}}, {dns_port}}}."
    )


@asynccontextmanager
async def running_ejabberd(
    folder: Path,
    hosts: tuple[str, ...],
    certs: FederationCerts,
    dns_port: int,
    *,
    ca_file: Path | None = None,
) -> AsyncIterator[Ejabberd]:
    """ejabberd serving ``hosts`` with ``certs``' peer certificate; ``ca_file``: what it trusts
    (default: the test CA, which issued the hub's certificate)."""
    libs = ejabberd_libs()
    assert libs is not None, "ejabberd is not installed (scripts/bootstrap installs it)"
    for sub in ("spool", "log"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    c2s_port, s2s_port, api_port = free_ports(3)
    ports = (c2s_port, s2s_port, api_port)
    config = folder / "ejabberd.yml"
    config.write_text(
        "# generated by tests/integration/ejabberdkit.py from docs/provider-guide.md\n"
        + yaml.safe_dump(
            provider_config(folder, hosts, certs, ports, ca_file or certs.hub.ca),
            sort_keys=False,
        )
    )
    (folder / "inetrc").write_text(inetrc(dns_port))
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(folder),
        "EJABBERD_CONFIG_PATH": str(config),
        "EJABBERD_LOG_PATH": str(folder / "log" / "ejabberd.log"),
        "ERL_INETRC": str(folder / "inetrc"),
        "ERL_LIBS": libs,
        "ERL_CRASH_DUMP_BYTES": "0",
    }
    ejabberd = Ejabberd(folder, *ports)
    process = subprocess.Popen(
        [
            ERL,
            "-noinput",
            "-mnesia",
            "dir",
            f'"{folder / "spool"}"',
            "-s",
            "ejabberd",
            "-eval",
            f"timer:apply_after({LIFETIME * 1000}, init, stop, []).",
        ],
        cwd=folder,
        env=env,
        stdout=open(folder / "stdout.log", "wb"),  # noqa: SIM115 - closed with the process
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    ejabberd.process = process
    try:
        await _wait_listening(ejabberd.c2s_port, process, ejabberd)
        yield ejabberd
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)  # the VM stops (init:stop/0)
            try:
                await asyncio.wait_for(asyncio.to_thread(process.wait), timeout=15)
            except TimeoutError:
                process.kill()
                process.wait()


async def _wait_listening(port: int, process: subprocess.Popen[bytes], ejabberd: Ejabberd) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + START_TIMEOUT
    while loop.time() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"ejabberd exited ({process.returncode}):\n{ejabberd.log[-3000:]}")
        with contextlib.suppress(OSError):
            _reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"ejabberd did not start:\n{ejabberd.log[-3000:]}")
