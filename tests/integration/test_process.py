"""The real `interlink` program: serve with a config file, CLI while running, SIGKILL and SIGTERM."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import socket
import sys
from pathlib import Path

import pytest

from tests.integration.kit import DOMAIN, TIMEOUT, Certs, Xmpp, make_certs


class HubProcess:
    def __init__(self, config: Path) -> None:
        self.config = config
        self.proc: asyncio.subprocess.Process | None = None
        self.ports: dict[str, int] = {}
        self.log: list[dict[str, object]] = []
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.ports = {}
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "interlink",
            "serve",
            "--config",
            str(self.config),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        ready = asyncio.Event()
        self._reader = asyncio.create_task(self._read(ready))
        await asyncio.wait_for(ready.wait(), 30)

    async def _read(self, ready: asyncio.Event) -> None:
        assert self.proc is not None
        assert self.proc.stderr is not None
        async for line in self.proc.stderr:
            try:
                entry = json.loads(line)
            except ValueError:
                entry = {"event": line.decode(errors="replace").rstrip()}
            self.log.append(entry)
            if entry.get("event") == "listening":
                self.ports[str(entry["transport"])] = int(str(entry["port"]))
            if entry.get("event") == "hub started":
                ready.set()

    async def signal(self, sig: signal.Signals) -> int:
        assert self.proc is not None
        self.proc.send_signal(sig)
        code = await asyncio.wait_for(self.proc.wait(), 30)
        if self._reader is not None:
            await asyncio.wait_for(self._reader, 10)
        return code

    async def ensure_stopped(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()


async def cli(config: Path, *args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "interlink",
        *args,
        "--config",
        str(config),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode()


def write_config(tmp: Path, certs: Certs, net: str = "") -> Path:
    """The hub's config file; ``net``: more lines for its ``[net]`` section."""
    config = tmp / "hub.toml"
    config.write_text(
        f"""
[hub]
domain = "{DOMAIN}"
data_dir = "{tmp / "data"}"

[net]
host = "127.0.0.1"
c2s_port = 0
c2s_tls_port = 0
http_port = 0
{net}
[tls]
cert_file = "{certs.cert}"
key_file = "{certs.key}"
"""
    )
    return config


async def test_sigkill_loses_no_accepted_message_and_delivers_each_once_in_order(
    tmp_path: Path,
) -> None:
    certs = make_certs(tmp_path)
    config = write_config(tmp_path, certs)
    assert (await cli(config, "user", "add", f"alice@{DOMAIN}", "--password", "pw"))[0] == 0
    hub = HubProcess(config)
    await hub.start()
    try:
        # Accounts can be added while the hub runs.
        code, out = await cli(config, "user", "add", f"bob@{DOMAIN}", "--password", "pw")
        assert code == 0, out
        alice = Xmpp(f"alice@{DOMAIN}/a", "pw", certs)
        await alice.login(hub.ports["c2s-starttls"])
        n = 200
        for i in range(n):
            alice.send_chat(f"bob@{DOMAIN}", f"m{i:03d}")
        # A ping is answered only after every message before it was durably stored.
        await alice.ping_server()
        assert await hub.signal(signal.SIGKILL) == -signal.SIGKILL
        alice.client.abort()

        await hub.start()
        bob = Xmpp(f"bob@{DOMAIN}/b", "pw", certs)
        await bob.login(hub.ports["c2s-direct-tls"], direct_tls=True)
        got = [(await bob.next_message())["body"] for _ in range(n)]
        assert got == [f"m{i:03d}" for i in range(n)]
        await asyncio.sleep(0.5)
        assert bob.messages.empty()  # exactly once
        await bob.close()
        # And after one more restart nothing is delivered again.
        assert await hub.signal(signal.SIGTERM) == 0
        await hub.start()
        bob = Xmpp(f"bob@{DOMAIN}/b", "pw", certs)
        await bob.login(hub.ports["c2s-starttls"])
        await asyncio.sleep(0.5)
        assert bob.messages.empty()
        await bob.close()
    finally:
        await hub.ensure_stopped()


async def test_sigterm_shuts_down_gracefully(tmp_path: Path) -> None:
    certs = make_certs(tmp_path)
    config = write_config(tmp_path, certs)
    await cli(config, "user", "add", f"alice@{DOMAIN}", "--password", "pw")
    hub = HubProcess(config)
    await hub.start()
    try:
        alice = Xmpp(f"alice@{DOMAIN}/a", "pw", certs)
        ended = asyncio.Event()
        alice.client.add_event_handler("disconnected", lambda _: ended.set())
        await alice.login(hub.ports["c2s-starttls"])
        assert await hub.signal(signal.SIGTERM) == 0
        await asyncio.wait_for(ended.wait(), TIMEOUT)
        events = [e.get("event") for e in hub.log]
        assert "shutting down" in events
        assert events[-1] == "stopped"
    finally:
        await hub.ensure_stopped()


async def test_user_commands(tmp_path: Path) -> None:
    certs = make_certs(tmp_path)
    config = write_config(tmp_path, certs)
    assert await cli(config, "user", "add", f"4915112345678@{DOMAIN}", "--password", "one") == (
        0,
        f"created 4915112345678@{DOMAIN}\n",
    )
    code, out = await cli(config, "user", "add", f"4915112345678@{DOMAIN}", "--password", "x")
    assert code == 1
    assert "already exists" in out
    code, out = await cli(config, "user", "add", "someone@other.example", "--password", "x")
    assert code == 2
    assert "not on this hub's domain" in out
    code, out = await cli(config, "user", "add", "not a jid@@", "--password", "x")
    assert code == 2
    await cli(config, "user", "add", f"bob@{DOMAIN}", "--password", "b")
    assert await cli(config, "user", "list") == (0, f"4915112345678@{DOMAIN}\nbob@{DOMAIN}\n")
    hub = HubProcess(config)
    await hub.start()
    try:
        assert (
            await cli(config, "user", "passwd", f"4915112345678@{DOMAIN}", "--password", "two")
        )[0] == 0
        old = Xmpp(f"4915112345678@{DOMAIN}/x", "one", certs)
        try:
            with pytest.raises(AssertionError, match="login failed"):
                await old.login(hub.ports["c2s-starttls"])
        finally:
            await old.close()
        new = Xmpp(f"4915112345678@{DOMAIN}/x", "two", certs)
        await new.login(hub.ports["c2s-starttls"])
        await new.close()
        # Disabled from the CLI: the running hub ends the session (it follows the change feed)
        # and refuses the next login; the log names the account without its phone number.
        live = Xmpp(f"4915112345678@{DOMAIN}/y", "two", certs)
        gone = asyncio.Event()
        live.client.add_event_handler("disconnected", lambda _: gone.set())
        await live.login(hub.ports["c2s-starttls"])
        code, out = await cli(config, "user", "disable", f"4915112345678@{DOMAIN}")
        assert (code, out) == (0, f"disabled 4915112345678@{DOMAIN}\n")
        await asyncio.wait_for(gone.wait(), TIMEOUT)
        await live.close()
        refused = Xmpp(f"4915112345678@{DOMAIN}/z", "two", certs)
        try:
            with pytest.raises(AssertionError, match="login failed"):
                await refused.login(hub.ports["c2s-starttls"])
        finally:
            await refused.close()
        disabled = [e for e in hub.log if e.get("event") == "account disabled"]
        # log_privacy.redact (the default): a pseudonym on the service's domain
        assert [
            re.fullmatch(rf"~[0-9a-f]+@{re.escape(DOMAIN)}", str(e.get("jid"))) is not None
            for e in disabled
        ] == [True]
        assert "4915112345678" not in json.dumps(hub.log)
        assert (await cli(config, "user", "enable", f"4915112345678@{DOMAIN}"))[0] == 0
        await asyncio.sleep(1.5)  # admin.change_feed_interval
        back = Xmpp(f"4915112345678@{DOMAIN}/z", "two", certs)
        await back.login(hub.ports["c2s-starttls"])
        await back.close()
        code, out = await cli(config, "user", "disable", f"nobody@{DOMAIN}")
        assert code == 1
    finally:
        await hub.signal(signal.SIGTERM)
    assert await cli(config, "user", "remove", f"bob@{DOMAIN}") == (0, f"removed bob@{DOMAIN}\n")
    code, out = await cli(config, "user", "remove", f"bob@{DOMAIN}")
    assert code == 1
    assert await cli(config, "user", "list") == (0, f"4915112345678@{DOMAIN}\n")


async def test_flags_override_the_config_file(tmp_path: Path) -> None:
    certs = make_certs(tmp_path)
    config = write_config(tmp_path, certs)
    other = tmp_path / "elsewhere"
    # A --data-dir that holds no hub is a mistake, not a new empty database.
    code, out = await cli(
        config, "user", "add", f"carol@{DOMAIN}", "--password", "c", "--data-dir", str(other)
    )
    assert code == 2
    assert "holds no Interlink hub" in out
    assert not (other / "interlink.sqlite3").exists()
    # A hub's data directory named by the flag wins over the configuration file's.
    elsewhere = tmp_path / "elsewhere.toml"
    elsewhere.write_text(config.read_text().replace(str(tmp_path / "data"), str(other)))
    assert (await cli(elsewhere, "user", "list"))[0] == 0
    code, out = await cli(
        config, "user", "add", f"carol@{DOMAIN}", "--password", "c", "--data-dir", str(other)
    )
    assert code == 0, out
    assert await cli(elsewhere, "user", "list") == (0, f"carol@{DOMAIN}\n")
    assert await cli(config, "user", "list") == (0, "")


async def test_bad_config_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[net]\nc2s_port = 'not a number'\n")
    code, out = await cli(bad, "user", "list")
    assert code == 2
    assert "invalid configuration" in out
    bad.write_text("[nope]\nx = 1\n")
    code, out = await cli(bad, "user", "list")
    assert code == 2
    assert "nope" in out
    bad.write_text("not toml = = =")
    code, out = await cli(bad, "user", "list")
    assert code == 2
    assert "not valid TOML" in out


@pytest.mark.parametrize(
    ("key", "transport"),
    [("c2s_port", "c2s-starttls"), ("c2s_tls_port", "c2s-direct-tls"), ("http_port", "http")],
)
async def test_a_taken_port_is_a_clear_error_and_serve_exits(
    tmp_path: Path, key: str, transport: str
) -> None:
    """Once, serve printed 'address already in use' and hung, deaf to SIGTERM and SIGINT."""
    certs = make_certs(tmp_path)
    config = write_config(tmp_path, certs)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config.write_text(config.read_text().replace(f"{key} = 0", f"{key} = {port}"))
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "interlink",
            "serve",
            "--config",
            str(config),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            # generous: it exits as soon as the port is found taken (~0.5 s with start-up)
            _, err = await asyncio.wait_for(proc.communicate(), 20)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    assert proc.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port} for {transport} (net.{key})" in err.decode()


async def test_provider_commands(tmp_path: Path) -> None:
    certs = make_certs(tmp_path)
    config = write_config(tmp_path, certs)
    jwks = tmp_path / "jwks.json"
    jwks.write_text(
        '{"keys": [{"kty": "OKP", "crv": "Ed25519", "kid": "k1",'
        ' "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}'
    )
    code, out = await cli(
        config,
        "provider",
        "add",
        "examplechat",
        "--name",
        "Example Chat",
        "--callback",
        "https://api.example.chat",
        "--jwks-file",
        str(jwks),
        "--media-host",
        "media.example.chat",
    )
    assert code == 0, out
    assert json.loads(out)["status"] == "pending"
    code, out = await cli(
        config,
        "provider",
        "add",
        "examplechat",
        "--name",
        "X",
        "--callback",
        "https://x.example",
        "--jwks-file",
        str(jwks),
    )
    assert code == 1
    assert "exists already" in out
    code, out = await cli(
        config,
        "provider",
        "add",
        "bad id",
        "--name",
        "X",
        "--callback",
        "https://x.example",
        "--jwks-file",
        str(jwks),
    )
    assert code == 1
    assert "DNS label" in out
    assert (await cli(config, "provider", "approve", "examplechat"))[0] == 0
    assert await cli(config, "provider", "list") == (0, "examplechat\tapproved\tExample Chat\n")
    assert (await cli(config, "provider", "suspend", "examplechat"))[0] == 0
    code, out = await cli(config, "provider", "show", "examplechat")
    assert code == 0
    assert '"status": "suspended"' in out
    assert "\tcli\tstatus\t" in out
    code, out = await cli(config, "provider", "show", "nobody")
    assert code == 1
    assert "no provider" in out


@pytest.mark.parametrize("kill_after", [63, 130])
async def test_sigkill_during_an_offline_drain_to_an_sm_client_loses_and_duplicates_nothing(
    tmp_path: Path, kill_after: int
) -> None:
    certs = make_certs(tmp_path)
    config = write_config(tmp_path, certs)
    config.write_text(config.read_text() + "\n[limits]\noffline_drain_batch = 20\n")
    for local in ("alice", "bob"):
        assert (await cli(config, "user", "add", f"{local}@{DOMAIN}", "--password", "pw"))[0] == 0
    hub = HubProcess(config)
    await hub.start()
    try:
        alice = Xmpp(f"alice@{DOMAIN}/a", "pw", certs)
        await alice.login(hub.ports["c2s-starttls"])
        n = 300
        for i in range(n):
            alice.send_chat(f"bob@{DOMAIN}", f"m{i:03d}")
        await alice.ping_server()  # all stored
        await alice.close()
        bob = Xmpp(f"bob@{DOMAIN}/b", "pw", certs)
        bob.client.register_plugin("xep_0198")  # asks for resumption: it will report its count
        dropped = asyncio.Event()
        bob.client.add_event_handler("disconnected", lambda _: dropped.set())
        await bob.login(hub.ports["c2s-starttls"])
        got = [(await bob.next_message())["body"] for _ in range(kill_after)]
        assert await hub.signal(signal.SIGKILL) == -signal.SIGKILL  # mid-drain
        await asyncio.wait_for(dropped.wait(), TIMEOUT)
        while not bob.messages.empty():  # what arrived before the connection died
            got.append(bob.messages.get_nowait()["body"])
        await hub.start()
        bob.started.clear()
        await bob.login(hub.ports["c2s-starttls"])  # <resume previd h/> → <failed/>, then bind
        while len(got) < n:
            got.append((await bob.next_message())["body"])
        assert got == [f"m{i:03d}" for i in range(n)]  # none lost, none twice, in order
        await asyncio.sleep(0.5)
        assert bob.messages.empty()
        await bob.close()
    finally:
        await hub.ensure_stopped()
