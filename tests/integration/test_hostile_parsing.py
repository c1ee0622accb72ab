"""Hostile load on a real hub process: parser amplification before login (the hardening issue).

On each of 100 unauthenticated connections: a stream header, ``<message>`` and 28,000
``<a b=''/>`` (252 KiB, inside every limit the hub had), never closed. Before the pre-login parse
budget this took the hub from 84 MiB to over 1 GiB, kept it after the sockets closed, and a login
at the same time took seconds. The hub runs as its own process so that its memory is measured
honestly (``VmRSS`` in ``/proc/<pid>/status``); figures are in ``docs/security.md``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import time
from pathlib import Path

from tests.integration.kit import DOMAIN, TIMEOUT, RawClient, Xmpp, make_certs
from tests.integration.test_process import HubProcess, cli, write_config

# Every attacker here comes from 127.0.0.1: the per-source connection budgets (tested in
# test_hostile_load.py) are lifted for it, so that all of them reach the parser, as in the finding.
ONE_SOURCE_MAY_FLOOD = 'source_allowlist = ["127.0.0.1/32"]\n'

ATTACKERS = 100
HEADER = (
    "<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
    f"xmlns:stream='http://etherx.jabber.org/streams' to='{DOMAIN}' version='1.0'>"
).encode()
PATTERN = b"<a b=''/>" * 1000  # 28 of these: 252 KiB


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for {pid}")


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        stat = f.read()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def amplify(port: int, stop: asyncio.Event) -> bytes:
    """One attacking connection, held until the hub closes it or ``stop``; what the hub said."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    received = b""
    try:
        writer.write(HEADER + b"<message>")
        for _ in range(28):
            writer.write(PATTERN)
            await writer.drain()
    except ConnectionError:
        pass  # the hub ended the stream before the attack was all sent
    with contextlib.suppress(ConnectionError):
        while not stop.is_set():
            try:
                data = await asyncio.wait_for(reader.read(65536), 0.1)
            except TimeoutError:
                continue
            if not data:
                break
            received += data
    writer.close()
    with contextlib.suppress(Exception):
        await writer.wait_closed()
    return received


async def test_amplification_before_login_is_cut_short_and_its_memory_returned(
    tmp_path: Path,
) -> None:
    certs = make_certs(tmp_path)
    config = write_config(tmp_path, certs, net=ONE_SOURCE_MAY_FLOOD)
    for user in ("alice", "bob"):
        assert (await cli(config, "user", "add", f"{user}@{DOMAIN}", "--password", "pw"))[0] == 0
    hub = HubProcess(config)
    await hub.start()
    try:
        assert hub.proc is not None
        pid = hub.proc.pid
        warm = Xmpp(f"alice@{DOMAIN}/warm", "pw", certs)  # loads the login's code paths
        await warm.login(hub.ports["c2s-direct-tls"], direct_tls=True)
        await warm.close()
        await asyncio.sleep(1.0)
        baseline, cpu_before = rss_mib(pid), cpu_seconds(pid)

        stop = asyncio.Event()
        peak = baseline

        async def sample() -> None:
            nonlocal peak
            while not stop.is_set():
                peak = max(peak, rss_mib(pid))
                await asyncio.sleep(0.02)

        sampler = asyncio.create_task(sample())
        attack = [
            asyncio.create_task(amplify(hub.ports["c2s-starttls"], stop)) for _ in range(ATTACKERS)
        ]
        await asyncio.sleep(0.2)
        bob = Xmpp(f"bob@{DOMAIN}/b", "pw", certs)
        started = time.perf_counter()
        await asyncio.wait_for(bob.login(hub.ports["c2s-direct-tls"], direct_tls=True), TIMEOUT)
        login = time.perf_counter() - started
        await asyncio.sleep(0.5)
        stop.set()
        answers = await asyncio.gather(*attack)
        await sampler
        cpu = cpu_seconds(pid) - cpu_before
        await bob.close()
        await asyncio.sleep(1.0)
        after = rss_mib(pid)
        print(
            f"\nbystander login {login * 1000:.0f} ms; hub RSS {baseline:.0f} MiB before, "
            f"{peak:.0f} MiB peak, {after:.0f} MiB after; hub CPU {cpu:.2f} s"
        )
        # Every attacker was told which limit it broke.
        told = [a for a in answers if b"policy-violation" in a and b"more than 100 elements" in a]
        assert len(told) == len(answers), [a for a in answers if a not in told][:2]
        assert peak < 300
        assert after <= baseline * 1.2
    finally:
        await hub.ensure_stopped()


async def test_a_post_login_header_with_thousands_of_namespaces_is_refused(
    tmp_path: Path,
) -> None:
    certs = make_certs(tmp_path)
    config = write_config(tmp_path, certs, net=ONE_SOURCE_MAY_FLOOD)
    assert (await cli(config, "user", "add", f"alice@{DOMAIN}", "--password", "pw"))[0] == 0
    hub = HubProcess(config)
    await hub.start()
    try:
        raw = await RawClient.open(hub.ports["c2s-direct-tls"], certs.client_context())
        try:
            await raw.open_stream()
            token = base64.b64encode(b"\0alice\0pw").decode()
            await raw.send(
                f"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{token}"
                "</auth>".encode()
            )
            await raw.read_until("success")
            raw.restart()
            # The finding's header: 9,000 declarations in 150 KB, inside the stanza size limit.
            decls = "".join(f" xmlns:n{i}='u:{i}'" for i in range(9000)).encode()
            assert len(decls) < 256 * 1024
            await raw.send(raw.header().replace(b" to=", decls + b" to="))
            error = await raw.read_until("error")
            assert [child.tag.rsplit("}", 1)[-1] for child in error] == ["policy-violation", "text"]
            assert "more than 16 namespace declarations on the stream header" in (
                error[1].text or ""
            )
            await raw.wait_closed()
        finally:
            await raw.close()
    finally:
        await hub.ensure_stopped()
