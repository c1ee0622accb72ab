"""A stock Prosody (Debian's 0.12) as a federated provider's server, on loopback.

Everything lives in a temporary directory: the configuration, the certificates (one test CA
signs the hub's and Prosody's), the data and the log. Prosody finds the hub through DNS, as a
real server would: its resolver (libunbound) is pointed at :class:`LoopbackDns`, a tiny DNS
server on 127.0.0.1 that answers ``_xmpp-server._tcp.<hub domain>`` with the hub's s2s port; the
hub reaches Prosody through the provider record's static ``s2s_address``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import os
import shutil
import signal
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import trustme

from tests.integration.kit import Certs
from tests.ports import free_ports

PROSODY = shutil.which("prosody") or "/usr/bin/prosody"
PROSODYCTL = shutil.which("prosodyctl") or "/usr/bin/prosodyctl"
START_TIMEOUT = 15.0


class LoopbackDns(asyncio.DatagramProtocol):
    """Answers A and SRV queries from a table; NXDOMAIN for anything else."""

    def __init__(self, a: dict[str, str], srv: dict[str, tuple[str, int]]) -> None:
        self.a = a
        self.srv = srv
        self.transport: asyncio.DatagramTransport | None = None
        self.port = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)
        self.port = transport.get_extra_info("sockname")[1]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        try:
            query = dns.message.from_wire(data)
        except Exception:
            return
        answer = dns.message.make_response(query)
        answer.flags |= 0x80  # RA
        for question in query.question:
            name = question.name.to_text().rstrip(".").lower()
            if question.rdtype == dns.rdatatype.A and name in self.a:
                answer.answer.append(
                    dns.rrset.from_text(question.name, 60, "IN", "A", self.a[name])
                )
            elif question.rdtype == dns.rdatatype.SRV and name in self.srv:
                target, port = self.srv[name]
                answer.answer.append(
                    dns.rrset.from_text(question.name, 60, "IN", "SRV", f"0 5 {port} {target}.")
                )
            elif name not in self.a and name not in self.srv:
                answer.set_rcode(dns.rcode.NXDOMAIN)
        assert self.transport is not None
        self.transport.sendto(answer.to_wire(), addr)


@asynccontextmanager
async def loopback_dns(
    a: dict[str, str], srv: dict[str, tuple[str, int]]
) -> AsyncIterator[LoopbackDns]:
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(
        lambda: LoopbackDns(a, srv), local_addr=("127.0.0.1", 0)
    )
    try:
        yield protocol
    finally:
        transport.close()


@dataclass
class FederationCerts:
    ca: trustme.CA
    hub: Certs  # the hub's certificate (and the CA file every party trusts)
    peer_cert: Path  # the provider's server's (Prosody's or ejabberd's), for all its domains
    peer_key: Path

    @property
    def ca_pem(self) -> str:
        return self.ca.cert_pem.bytes().decode()


def federation_certs(
    folder: Path, hub_domain: str, peer_domains: tuple[str, ...]
) -> FederationCerts:
    folder.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA()
    # the group service's domain too: rooms federate from it (their own s2s streams)
    hub = ca.issue_cert(
        hub_domain, f"*.interop.{hub_domain}", f"groups.{hub_domain}", "localhost", "127.0.0.1"
    )
    # a near expiry: ejabberd's certificate store cannot read trustme's default (the year 3000)
    now = datetime.datetime.now(datetime.UTC)
    peer = ca.issue_cert(
        *peer_domains,
        not_before=now - datetime.timedelta(hours=1),
        not_after=now + datetime.timedelta(days=30),
    )
    certs = Certs(folder / "ca.pem", folder / "hub-cert.pem", folder / "hub-key.pem")
    ca.cert_pem.write_to_path(str(certs.ca))
    hub.cert_chain_pems[0].write_to_path(str(certs.cert))
    hub.private_key_pem.write_to_path(str(certs.key))
    fc = FederationCerts(ca, certs, folder / "peer-cert.pem", folder / "peer-key.pem")
    peer.cert_chain_pems[0].write_to_path(str(fc.peer_cert))
    peer.private_key_pem.write_to_path(str(fc.peer_key))
    os.chmod(fc.peer_key, 0o644)
    return fc


@dataclass
class Prosody:
    folder: Path
    config: Path
    c2s_port: int
    s2s_port: int
    process: subprocess.Popen[bytes] | None = None

    @property
    def log(self) -> str:
        try:
            return (self.folder / "prosody.log").read_text(errors="replace")
        except OSError:
            return ""

    async def register(self, user: str, host: str, password: str) -> None:
        """``prosodyctl register``."""
        process = await asyncio.create_subprocess_exec(
            *(PROSODYCTL, "--config", str(self.config), "register", user, host, password),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        output, _ = await asyncio.wait_for(process.communicate(), START_TIMEOUT)
        assert process.returncode == 0, output.decode(errors="replace")

    def closed_outgoing(self, local: str, remote: str) -> bool:
        """Whether Prosody has taken down its stream from ``local`` to ``remote``."""
        return f"Destroying outgoing session {local}->{remote}" in self.log


def _config(
    folder: Path,
    hosts: tuple[str, ...],
    certs: FederationCerts,
    c2s_port: int,
    s2s_port: int,
    dns_port: int,
    ca_file: Path,
) -> str:
    virtual_hosts = "\n".join(f'VirtualHost "{h}"' for h in hosts)
    return f"""
-- generated by tests/integration/prosodykit.py
run_as_root = true
daemonize = false
pidfile = "{folder}/prosody.pid"
data_path = "{folder}/data"
log = {{ {{ levels = {{ min = "debug" }}, to = "file", filename = "{folder}/prosody.log" }} }}
interfaces = {{ "127.0.0.1" }}
local_interfaces = {{ "127.0.0.1" }}
c2s_ports = {{ {c2s_port} }}
s2s_ports = {{ {s2s_port} }}
c2s_direct_tls_ports = {{ }}
s2s_direct_tls_ports = {{ }}
http_ports = {{ }}
https_ports = {{ }}
admin_socket = "{folder}/prosody.sock"
use_ipv6 = false
modules_enabled = {{
    "roster"; "saslauth"; "tls"; "dialback"; "disco"; "ping"; "pep"; "posix";
}}
modules_disabled = {{ "s2s_bidi"; "offline"; "c2s_timeout"; "admin_shell" }}
authentication = "internal_plain"
storage = "internal"
c2s_require_encryption = true
s2s_require_encryption = true
s2s_secure_auth = true
unbound = {{ forward = "127.0.0.1@{dns_port}"; resolvconf = false; hoststxt = false }}
ssl = {{
    certificate = "{certs.peer_cert}";
    key = "{certs.peer_key}";
    cafile = "{ca_file}";
}}
{virtual_hosts}
"""


@asynccontextmanager
async def running_prosody(
    folder: Path,
    hosts: tuple[str, ...],
    certs: FederationCerts,
    dns_port: int,
    *,
    ca_file: Path | None = None,
) -> AsyncIterator[Prosody]:
    """Prosody serving ``hosts`` with ``certs``' peer certificate; ``ca_file``: what it trusts
    (default: the test CA, which issued the hub's certificate)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "data").mkdir(exist_ok=True)
    c2s_port, s2s_port = free_ports(2)
    config = folder / "prosody.cfg.lua"
    config.write_text(
        _config(folder, hosts, certs, c2s_port, s2s_port, dns_port, ca_file or certs.hub.ca)
    )
    prosody = Prosody(folder, config, c2s_port, s2s_port)
    process = subprocess.Popen(
        [PROSODY, "--config", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=open(folder / "stderr.log", "wb"),  # noqa: SIM115 - closed with the process
        start_new_session=True,
    )
    prosody.process = process
    try:
        await _wait_listening(c2s_port, process, prosody)
        yield prosody
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(asyncio.to_thread(process.wait), timeout=10)
            except TimeoutError:
                process.kill()
                process.wait()


async def _wait_listening(port: int, process: subprocess.Popen[bytes], prosody: Prosody) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + START_TIMEOUT
    while loop.time() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"prosody exited ({process.returncode}):\n{prosody.log[-3000:]}")
        with contextlib.suppress(OSError):
            _reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"prosody did not start:\n{prosody.log[-3000:]}")
