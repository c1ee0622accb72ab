"""The SDK against real third-party XMPP clients: profanity 0.13.1 (Debian 12; legacy OMEMO
through libsignal-protocol-c) and poezio 0.14 (Debian 12) with poezio-omemo 0.9.1 (PyPI; legacy
OMEMO through python-omemo), each driven headless in a private tmux server (``tmux -L``), and
Gajim 1.7.3 with gajim-omemo 2.9 (Debian 12; legacy OMEMO through python3-axolotl), driven on a
private X server (tests/integration/gajimkit.py). scripts/bootstrap installs them; a test is
skipped, with the reason, only where a client is missing. Each client logs in to a loopback hub,
makes and publishes its own OMEMO keys, and messages go both ways: what the SDK sends must reach
the client decrypted (on profanity's and poezio's screens, in Gajim's archive; the plaintext
``<body>`` is only the "cannot read it" fallback), and what the client sends must reach the SDK
as a ``TextMessage``, not a ``DecryptionFailed``."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
import shutil
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import slixmpp

from interlink.client import DecryptionFailed, InterlinkClient, TextMessage
from tests.integration import gajimkit
from tests.integration.kit import DOMAIN, Certs, Xmpp, running_hub

REPO = Path(__file__).resolve().parents[2]
TMUX = shutil.which("tmux")
PROFANITY = shutil.which("profanity")
# poezio-omemo's venv, made by scripts/bootstrap: outside the checkout for root, as poezio then
# runs as nobody
POEZIO_VENV = Path("/opt/interlink-poezio") if os.geteuid() == 0 else REPO / ".venv-poezio"
POEZIO_PYTHON = POEZIO_VENV / "bin" / "python"
LEGACY = "eu.siacs.conversations.axolotl"
LEGACY_DEVICES = f"{LEGACY}.devicelist"
WAIT = 20.0
NOBODY = 65534
FALLBACK = "your client cannot read it"


class Terminal:
    """One program in its own tmux server (a private socket), read from its screen."""

    def __init__(self, name: str) -> None:
        assert TMUX is not None
        self.tmux = TMUX
        self.socket = f"interlink-{name}-{os.getpid()}-{secrets.token_hex(3)}"
        self.socket_path = ""

    async def _tmux(self, *args: str) -> str:
        proc = await asyncio.create_subprocess_exec(
            self.tmux,
            "-L",
            self.socket,
            "-f",
            "/dev/null",
            *args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), 10)
        if proc.returncode != 0:
            raise AssertionError(f"tmux {args[0]} failed: {err.decode().strip()}")
        return out.decode()

    async def start(self, command: list[str], env: dict[str, str]) -> None:
        argv = ["env", "-i", *(f"{k}={v}" for k, v in env.items()), *command]
        await self._tmux("new-session", "-d", "-x", "200", "-y", "50", *argv)
        await self._tmux("set-option", "-g", "remain-on-exit", "on")
        self.socket_path = (await self._tmux("display-message", "-p", "#{socket_path}")).strip()

    async def screen(self) -> str:
        return await self._tmux("capture-pane", "-p", "-J")

    async def wait_for(self, pattern: str, timeout: float = WAIT) -> re.Match[str]:
        """The first match of ``pattern`` on the screen, polled until ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            text = await self.screen()
            found = re.search(pattern, text)
            if found is not None:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(f"{pattern!r} not on the screen within {timeout}s:\n{text}")
            await asyncio.sleep(0.2)

    async def type(self, line: str) -> None:
        """Type ``line`` and press Enter apart: poezio takes a burst of input for a paste and
        would put the Enter into the text. The first key goes alone too: in poezio's roster
        tab "/" opens the command line, which must be there before the rest arrives."""
        await self._tmux("send-keys", "-l", line[:1])
        await asyncio.sleep(0.3)
        await self._tmux("send-keys", "-l", line[1:])
        await asyncio.sleep(0.4)
        await self._tmux("send-keys", "Enter")

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self._tmux("kill-server")
        if self.socket_path:  # tmux leaves it behind when its program dies with the server
            Path(self.socket_path).unlink(missing_ok=True)


@contextlib.asynccontextmanager
async def terminal(name: str) -> AsyncIterator[Terminal]:
    term = Terminal(name)
    try:
        yield term
    finally:
        await term.close()


async def befriend(port: int, certs: Certs, a: str, b: str) -> None:
    """A mutual presence subscription, as between contacts: clients publish their OMEMO bundles
    for contacts only (profanity's have the default "presence" access model)."""
    one = Xmpp(f"{a}@{DOMAIN}/setup", "pw", certs)
    two = Xmpp(f"{b}@{DOMAIN}/setup", "pw", certs)  # slixmpp accepts and asks back
    await one.login(port)
    await two.login(port)
    try:
        one.client.send_presence_subscription(pto=f"{b}@{DOMAIN}")
        deadline = time.monotonic() + WAIT
        while True:
            await one.client.get_roster(timeout=5)
            if one.client.client_roster[f"{b}@{DOMAIN}"]["subscription"] == "both":
                return
            assert time.monotonic() < deadline, "no mutual subscription"
            await asyncio.sleep(0.2)
    finally:
        await one.close()
        await two.close()


async def legacy_device_ids(xmpp: Xmpp, owner: str) -> set[int]:
    pubsub: Any = xmpp.client.plugin["xep_0060"]
    try:
        result = await pubsub.get_items(slixmpp.JID(owner), LEGACY_DEVICES, timeout=5)
    except slixmpp.exceptions.IqError:
        return set()
    return {
        int(device.get("id"))
        for device in result.xml.iter(f"{{{LEGACY}}}device")
        if (device.get("id") or "").isdigit()
    }


async def wait_published(
    port: int, certs: Certs, owner: str, device_id: int | None, timeout: float = WAIT
) -> set[int]:
    """Until ``owner``'s legacy device list names ``device_id`` (any device if None); the
    device ids in that list."""
    reader = Xmpp(f"alice@{DOMAIN}/look", "pw", certs)
    reader.client.register_plugin("xep_0060")
    await reader.login(port, presence=False)
    try:
        deadline = time.monotonic() + timeout
        while True:
            ids = await legacy_device_ids(reader, owner)
            if (device_id in ids) if device_id is not None else ids:
                return ids
            assert time.monotonic() < deadline, f"{owner} published no device {device_id}"
            await asyncio.sleep(0.3)
    finally:
        await reader.close()


async def next_text(client: InterlinkClient, sender: str) -> TextMessage:
    """The next text from ``sender``; a message from it that the SDK cannot decrypt fails."""
    deadline = time.monotonic() + WAIT
    while True:
        event = await client.next_event(max(0.01, deadline - time.monotonic()))
        if isinstance(event, DecryptionFailed) and event.sender.startswith(sender):
            raise AssertionError(f"the SDK could not decrypt {sender}: {event}")
        if isinstance(event, TextMessage) and event.sender.startswith(sender):
            return event


def sdk(tmp: Path, port: int, certs: Certs) -> InterlinkClient:
    return InterlinkClient(
        f"alice@{DOMAIN}/sdk", "pw", data_dir=tmp / "alice", port=port, ca_file=certs.ca
    )


# -- profanity -------------------------------------------------------------------------------------


@pytest.mark.skipif(TMUX is None, reason="tmux is not installed (scripts/bootstrap installs it)")
@pytest.mark.skipif(
    PROFANITY is None,
    reason="profanity is not installed (scripts/bootstrap installs it as root: apt-get install "
    "profanity)",
)
async def test_profanity(tmp_path: Path) -> None:
    assert PROFANITY is not None
    async with running_hub(tmp_path) as (server, certs), terminal("profanity") as term:
        port = server.ports["c2s-starttls"]
        await befriend(port, certs, "alice", "bob")
        home = tmp_path / "profanity"
        (home / "config" / "profanity").mkdir(parents=True)
        (home / "data" / "profanity").mkdir(parents=True)
        # "tls.policy=trust" accepts the hub's test certificate for this account only
        (home / "data" / "profanity" / "accounts").write_text(
            f"[bob@{DOMAIN}]\nenabled=true\njid=bob@{DOMAIN}\nserver=127.0.0.1\nport={port}\n"
            "resource=profanity\npassword=pw\ntls.policy=trust\n"
        )
        env = {
            "HOME": str(home),
            "XDG_CONFIG_HOME": str(home / "config"),
            "XDG_DATA_HOME": str(home / "data"),
            "TERM": "xterm-256color",
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        }
        await term.start([PROFANITY, "-a", f"bob@{DOMAIN}"], env)
        await term.wait_for(r"logged in successfully")
        await term.type("/omemo gen")
        device_id = int((await term.wait_for(r"Your Device ID is (\d+)")).group(1))
        await term.type("/omemo trustmode blind")
        await term.wait_for(r"trusted automatically")
        # profanity 0.13.1 creates its device list only after reading one, and takes an error
        # for "no list yet" only with XEP-0086's code='404', which the hub's errors carry.
        await wait_published(port, certs, f"bob@{DOMAIN}", device_id)

        alice = sdk(tmp_path, port, certs)
        await alice.connect()
        try:
            to_client = f"sdk to profanity {secrets.token_hex(4)}"
            await alice.send_text(f"bob@{DOMAIN}", to_client)
            await term.wait_for(rf"chat message: alice@{DOMAIN}/sdk \(win 2\)")
            await term.type("/win 2")
            # "~" marks a message profanity decrypted with OMEMO
            await term.wait_for(rf"~ alice@{DOMAIN}/sdk: {to_client}")
            await term.type("/omemo start")
            await term.wait_for(r"\[OMEMO\]")
            to_sdk = f"profanity to sdk {secrets.token_hex(4)}"
            await term.type(to_sdk)
            event = await next_text(alice, f"bob@{DOMAIN}/profanity")
            assert event.text == to_sdk
            assert event.namespace == LEGACY
            assert event.device_id == device_id
        finally:
            await alice.close()


# -- poezio ----------------------------------------------------------------------------------------


POEZIO_MISSING = (
    "poezio is not installed"
    if shutil.which("poezio") is None
    else f"poezio-omemo is not installed in {POEZIO_VENV}"
    if not POEZIO_PYTHON.exists()
    else None
)


@contextlib.asynccontextmanager
async def poezio(tmp_path: Path, port: int, certs: Certs) -> AsyncIterator[Terminal]:
    """poezio as bob, loading poezio-omemo. poezio refuses to run as root: as root it runs as
    nobody, with its files in a folder of its own (pytest's tmp_path is private to root)."""
    root = os.geteuid() == 0
    home = Path(tempfile.mkdtemp(prefix="interlink-poezio-"))
    try:
        (home / "config" / "poezio").mkdir(parents=True)
        shutil.copy(certs.ca, home / "ca.pem")  # poezio verifies the hub with the test CA
        (home / "config" / "poezio" / "poezio.cfg").write_text(
            f"[Poezio]\njid = bob@{DOMAIN}/poezio\npassword = pw\ncustom_host = 127.0.0.1\n"
            f"custom_port = {port}\nca_cert_path = {home / 'ca.pem'}\n"
            "plugins_autoload = omemo\n"
        )
        if root:
            for path in [home, *home.rglob("*")]:
                os.chown(path, NOBODY, NOBODY)
        env = {
            "HOME": str(home),
            "XDG_CONFIG_HOME": str(home / "config"),
            "XDG_DATA_HOME": str(home / "data"),
            "XDG_CACHE_HOME": str(home / "cache"),
            "TERM": "xterm-256color",
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        }
        drop = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
        command = [*(drop if root else []), str(POEZIO_PYTHON), "-m", "poezio"]
        async with terminal("poezio") as term:
            await term.start(command, env)
            await term.wait_for(r"Authentication success")
            yield term
    finally:
        shutil.rmtree(home, ignore_errors=True)


@pytest.mark.skipif(TMUX is None, reason="tmux is not installed (scripts/bootstrap installs it)")
@pytest.mark.skipif(
    POEZIO_MISSING is not None,
    reason=f"{POEZIO_MISSING} (scripts/bootstrap installs both as root: apt-get install poezio, "
    f"pip install poezio-omemo into {POEZIO_VENV})",
)
async def test_poezio(tmp_path: Path) -> None:
    """poezio writes first: poezio-omemo 0.9.1 advertises OMEMO 2 notifications and lists its
    device for OMEMO 2 too, but reads legacy OMEMO only, so the SDK answers it in the version it
    wrote in. (A first message from the SDK: :func:`test_poezio_reads_a_first_message_from_the_sdk`.)"""
    async with running_hub(tmp_path) as (server, certs):
        port = server.ports["c2s-starttls"]
        await befriend(port, certs, "alice", "bob")
        alice = sdk(tmp_path, port, certs)
        await alice.connect()
        try:
            async with poezio(tmp_path, port, certs) as term:
                await wait_published(port, certs, f"bob@{DOMAIN}", None)
                await term.type(f"/message alice@{DOMAIN}")
                await term.wait_for(r"\[alice@hub\.test\]")
                await term.type("/omemo")
                await term.wait_for(r"omemo encryption enabled")
                to_sdk = f"poezio to sdk {secrets.token_hex(4)}"
                await term.type(to_sdk)
                event = await next_text(alice, f"bob@{DOMAIN}/")
                assert event.text == to_sdk
                assert event.namespace == LEGACY
                to_client = f"sdk to poezio {secrets.token_hex(4)}"
                await alice.send_text(f"bob@{DOMAIN}", to_client)
                await term.wait_for(rf"alice> {to_client}")
                assert FALLBACK not in await term.screen()
        finally:
            await alice.close()


@pytest.mark.skipif(TMUX is None, reason="tmux is not installed (scripts/bootstrap installs it)")
@pytest.mark.skipif(POEZIO_MISSING is not None, reason=f"{POEZIO_MISSING}")
async def test_poezio_reads_a_first_message_from_the_sdk(tmp_path: Path) -> None:
    """The SDK writes first: poezio-omemo 0.9.1 lists its device for both versions, advertises
    OMEMO 2 and reads legacy only, and slixmpp-omemo decrypts an OMEMO 2 ``<encrypted>``
    whenever a stanza has one. Its device has not written yet, so the SDK sends the OMEMO 2
    message and a legacy twin (same id): poezio shows the twin's text once, no fallback."""
    async with running_hub(tmp_path) as (server, certs):
        port = server.ports["c2s-starttls"]
        await befriend(port, certs, "alice", "bob")
        alice = sdk(tmp_path, port, certs)
        await alice.connect()
        try:
            async with poezio(tmp_path, port, certs) as term:
                await wait_published(port, certs, f"bob@{DOMAIN}", None)
                to_client = f"sdk to poezio {secrets.token_hex(4)}"
                await alice.send_text(f"bob@{DOMAIN}", to_client)
                await term.wait_for(r"\d\.alice")
                await term.type("/win 1")
                # the screen the line appeared on: a second capture right after it once showed
                # only the roster's first row (CI, 2026-12-08; poezio redrawing, it seems)
                screen = (await term.wait_for(rf"alice> (\[This message|{to_client})")).string
                assert to_client in screen
                assert FALLBACK not in screen
                assert "encrypted with" not in screen  # the OMEMO 2 twin is not shown
                assert "error" not in screen.lower()
                # poezio answers in legacy OMEMO; from then on the SDK writes legacy only
                await term.type("/omemo")
                await term.wait_for(r"omemo encryption enabled")
                to_sdk = f"poezio to sdk {secrets.token_hex(4)}"
                await term.type(to_sdk)
                event = await next_text(alice, f"bob@{DOMAIN}/")
                assert (event.text, event.namespace) == (to_sdk, LEGACY)
                again = f"sdk to poezio again {secrets.token_hex(4)}"
                await alice.send_text(f"bob@{DOMAIN}", again)
                screen = (await term.wait_for(rf"alice> {again}")).string
                assert FALLBACK not in screen
                assert "encrypted with" not in screen
        finally:
            await alice.close()


# -- Gajim ----------------------------------------------------------------------------------------


GAJIM_MISSING = gajimkit.missing_packages()
# a GTK program's start on a busy 2-core machine: the X server, fonts, plugins, then the login
GAJIM_START = 60.0
needs_gajim = pytest.mark.skipif(
    bool(GAJIM_MISSING),
    reason=f"not installed: {', '.join(GAJIM_MISSING)} (scripts/bootstrap installs them as root "
    "with apt-get)",
)


@contextlib.asynccontextmanager
async def gajim_and_sdk(
    tmp_path: Path, *, sdk_first: bool
) -> AsyncIterator[tuple[gajimkit.Gajim, InterlinkClient, set[int]]]:
    """Gajim logged in as bob with its OMEMO device published (the ids of bob's legacy device
    list come third), and the SDK as alice, contacts of each other; the SDK connects before
    Gajim starts if ``sdk_first``, else after Gajim published its device."""
    async with running_hub(tmp_path) as (server, certs):
        port = server.ports["c2s-starttls"]
        await befriend(port, certs, "alice", "bob")
        alice = sdk(tmp_path, port, certs)
        try:
            if sdk_first:
                await alice.connect()
            async with gajimkit.running_gajim(
                jid=f"bob@{DOMAIN}", port=port, cert=certs.cert, omemo_with=f"alice@{DOMAIN}"
            ) as gajim:
                devices = await wait_published(port, certs, f"bob@{DOMAIN}", None, GAJIM_START)
                gajim.check_running()
                if not sdk_first:
                    await alice.connect()
                yield gajim, alice, devices
                # Gajim checks the SDK's entity caps (XEP-0115) against its disco#info
                assert "Caps hashes differ" not in gajim.log.read_text(errors="replace")
        finally:
            await alice.close()


async def gajim_sends(gajim: gajimkit.Gajim, alice: InterlinkClient, devices: set[int]) -> None:
    """A line typed into Gajim's chat with alice reaches the SDK as a legacy-OMEMO
    ``TextMessage`` from Gajim's device, and Gajim archived it as sent with OMEMO."""
    await gajim.open_chat(f"alice@{DOMAIN}")
    to_sdk = f"gajim to sdk {secrets.token_hex(4)}"
    await gajim.type_line(to_sdk)
    event = await next_text(alice, f"bob@{DOMAIN}/gajim")
    assert event.text == to_sdk
    assert event.namespace == LEGACY
    assert event.device_id in devices
    sent = await gajim.wait_archived(gajimkit.CHAT_MSG_SENT, to_sdk, WAIT)
    assert sent.encryption == "OMEMO"


async def sdk_sends(gajim: gajimkit.Gajim, alice: InterlinkClient) -> None:
    """What the SDK sends is in Gajim's archive as text from alice that OMEMO carried: Gajim
    decrypted it (the fallback body would not match)."""
    to_client = f"sdk to gajim {secrets.token_hex(4)}"
    await alice.send_text(f"bob@{DOMAIN}", to_client)
    shown = await gajim.wait_archived(gajimkit.CHAT_MSG_RECV, to_client, WAIT)
    assert shown.jid == f"alice@{DOMAIN}"
    assert shown.encryption == "OMEMO"


@needs_gajim
async def test_gajim(tmp_path: Path) -> None:
    """Gajim 1.7.3 with gajim-omemo 2.9 (Debian 12) on a private X server, as bob, logged in
    with a profile made beforehand: the SDK writes first, then Gajim answers."""
    async with gajim_and_sdk(tmp_path, sdk_first=True) as (gajim, alice, devices):
        await sdk_sends(gajim, alice)
        await gajim_sends(gajim, alice, devices)


@needs_gajim
async def test_gajim_writes_first(tmp_path: Path) -> None:
    """Gajim writes first to an SDK user who came online after it: Gajim learns alice's device
    from the device-list notification (the two are contacts) and builds its session from the
    SDK's legacy bundle; then the SDK answers."""
    async with gajim_and_sdk(tmp_path, sdk_first=False) as (gajim, alice, devices):
        # Gajim refuses to send before it knows a device of the peer ("No devices found. Query
        # in progress..."), and says when it does
        await gajim.wait_logged(rf"Received device list for alice@{re.escape(DOMAIN)}: \[\d")
        await gajim_sends(gajim, alice, devices)
        await sdk_sends(gajim, alice)
