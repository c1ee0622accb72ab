"""Gajim, the GTK desktop client, driven for real on a private X display.

Debian 12 ships Gajim 1.7.3 with OMEMO as a plugin (gajim-omemo 2.9, legacy OMEMO,
``eu.siacs.conversations.axolotl``, through python3-axolotl). Here it runs unmodified:

- on its own X server, Xvfb, started with ``-displayfd`` (a free display number, found by Xvfb)
  and ``-nolisten tcp``: a Unix socket only, no network;
- on its own D-Bus session bus (``dbus-daemon --session`` at a socket in its folder): Gajim is a
  single-instance GApplication, and a second ``gajim xmpp:<jid>?message`` hands the URI to the
  running instance over that bus, which opens the chat as a click on such a link would;
- with a throwaway profile written before it starts (``gajim -c <folder>``: settings, data and
  cache all in one folder; see :func:`write_profile`);
- typed into with xdotool (synthetic key presses through the XTEST extension, as a keyboard);
- read through its own message archive, ``logs.db``: Gajim stores there the text it decrypted,
  with the encryption that carried it, once it has shown the message.

Gajim refuses to run as root: as root, it (and its bus) run as nobody, in a folder of their own
outside pytest's private temporary directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import sqlite3
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

GAJIM = shutil.which("gajim")
GAJIM_OMEMO = Path("/usr/share/gajim/plugins/omemo/plugin.py")
XVFB = shutil.which("Xvfb")
XDOTOOL = shutil.which("xdotool")
DBUS_DAEMON = shutil.which("dbus-daemon")
NOBODY = 65534
START_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0
# Gajim 1.7's archive (gajim/common/const.py, KindConstant)
CHAT_MSG_RECV = 4
CHAT_MSG_SENT = 6
# Gajim 1.7's settings database (gajim/common/settings.py, CURRENT_USER_VERSION)
SETTINGS_VERSION = 5
# Gajim 1.7's window titles (gajim/gtk/main.py, gajim/gtk/start_chat.py; English)
MAIN_WINDOW = "Gajim"
START_CHAT = "Start / Join Chat"


def missing_packages() -> list[str]:
    """The Debian packages this needs that are not installed (scripts/bootstrap installs them)."""
    wanted = {
        "gajim": GAJIM is not None,
        "gajim-omemo": GAJIM_OMEMO.exists(),
        "xvfb": XVFB is not None,
        "xdotool": XDOTOOL is not None,
        "dbus": DBUS_DAEMON is not None,  # dbus-daemon
    }
    return [package for package, present in wanted.items() if not present]


def write_profile(folder: Path, *, jid: str, port: int, cert: Path, omemo_with: str) -> None:
    """A Gajim 1.7 profile with one account, ``jid`` (password "pw"), on the hub at
    127.0.0.1:``port``, ready to use without a dialog:

    - the hub's certificate ``cert`` in Gajim's certificate store: what Gajim writes there when
      its user answers "trust this certificate" to the unknown-CA dialog;
    - the password in the settings, not a keyring (there is none in the test session);
    - the OMEMO plugin active, and OMEMO chosen for the chat with ``omemo_with``: the lock a
      user would close in that chat. gajim-omemo's default "blind trust before verification"
      (BLIND_TRUST) trusts a new contact's devices without asking.

    The settings database is the one Gajim creates (gajim/common/settings.py: two tables of
    JSON documents, user_version 5), with these values in it; Gajim checks every value's name
    and type when it loads them.
    """
    (folder / "cert_store").mkdir(parents=True)
    shutil.copy(cert, folder / "cert_store" / "hub.pem")
    local, domain = jid.split("@")
    account = {
        "name": local,
        "hostname": domain,
        "resource": "gajim",
        "password": "pw",
        "active": True,
        "autoconnect": True,
        "use_custom_host": True,
        "custom_host": "127.0.0.1",
        "custom_port": port,
        "custom_type": "START TLS",
    }
    settings: dict[str, Any] = {
        "app": {"use_keyring": False},
        "soundevents": {},
        "status_presets": {},
        "proxies": {},
        "plugins": {"omemo": {"active": True}},
        "workspaces": {str(uuid.uuid4()): {}},
    }
    with contextlib.closing(sqlite3.connect(folder / "settings.sqlite")) as db:
        db.executescript(
            "CREATE TABLE settings (name TEXT UNIQUE, settings TEXT);"
            "CREATE TABLE account_settings (account TEXT UNIQUE, settings TEXT);"
            f"PRAGMA user_version={SETTINGS_VERSION};"
        )
        db.executemany(
            "INSERT INTO settings(name, settings) VALUES (?, ?)",
            [(name, json.dumps(value)) for name, value in settings.items()],
        )
        document = {
            "account": account,
            "contact": {omemo_with: {"encryption": "OMEMO"}},
            "group_chat": {},
        }
        db.execute(
            "INSERT INTO account_settings(account, settings) VALUES (?, ?)",
            (local, json.dumps(document)),
        )
        db.commit()


@dataclass(frozen=True)
class ArchivedMessage:
    """One line of Gajim's archive."""

    jid: str
    kind: int
    text: str
    encryption: str | None  # the name Gajim stored with it ("OMEMO"), None if in clear


async def _stop(proc: asyncio.subprocess.Process) -> None:
    """Stops a process started with ``start_new_session``, with what it started."""
    if proc.returncode is not None:
        return
    for sig, wait in ((signal.SIGTERM, STOP_TIMEOUT), (signal.SIGKILL, STOP_TIMEOUT)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(proc.wait(), wait)
            return


class Gajim:
    """A running Gajim: see :func:`running_gajim`."""

    def __init__(self, folder: Path, env: dict[str, str], drop: list[str], log: Path) -> None:
        self.folder = folder
        self.profile = folder / "profile"
        self.env = env
        self.drop = drop
        self.log = log
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        assert GAJIM is not None
        with self.log.open("ab") as out:
            self.proc = await self._exec(
                GAJIM,
                "-c",
                str(self.profile),
                "-l",
                "gajim=INFO,.nbxmpp=WARNING,.nbxmpp.connection=INFO",
                stdout=out,
            )

    async def _exec(self, *argv: str, stdout: Any) -> asyncio.subprocess.Process:
        command = [*self.drop, "env", "-i", *(f"{k}={v}" for k, v in self.env.items()), *argv]
        return await asyncio.create_subprocess_exec(
            *command,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=stdout,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )

    def log_tail(self, lines: int = 25) -> str:
        """Gajim's warnings and errors (such as a TLS failure), then the end of its log."""
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        every = text.splitlines()
        notable = [line for line in every if re.search(r"\((W|E|C)\)|[Ee]rror|Traceback", line)]
        return "\n".join([*notable[-30:], "...", *every[-lines:]])

    def check_running(self) -> None:
        if self.proc is None or self.proc.returncode is not None:
            raise AssertionError(f"Gajim is not running:\n{self.log_tail()}")

    async def open_chat(self, jid: str) -> None:
        """Opens the chat with ``jid`` as following an ``xmpp:`` link (RFC 5122) would: a second
        ``gajim`` hands the URI to the running one over D-Bus and returns once it was handled.
        Gajim selects a chat it already has, focusing its message field before it answers. For
        a new chat it opens its "Start / Join Chat" dialog with the contact selected, where
        Enter starts the chat, as a user would; the link is then followed once more, for the
        chat now there: the new chat's field takes the focus at a moment this cannot see, and
        keys typed before it are lost."""
        uri = f"xmpp:{jid}?message"
        await self._follow(uri)
        dialog = await self._windows(START_CHAT)
        if not dialog:
            return
        await self._xdotool("windowfocus", "--sync", dialog[0])
        await self._xdotool("key", "Return")
        deadline = time.monotonic() + START_TIMEOUT
        while await self._windows(START_CHAT):
            assert time.monotonic() < deadline, f"{START_CHAT!r} stayed open"
            await asyncio.sleep(0.2)
        await self._follow(uri)
        assert not await self._windows(START_CHAT), f"no chat with {jid} after {START_CHAT!r}"

    async def _follow(self, uri: str) -> None:
        assert GAJIM is not None
        self.check_running()
        with self.log.open("ab") as out:
            proc = await self._exec(GAJIM, "-c", str(self.profile), uri, stdout=out)
        try:
            code = await asyncio.wait_for(proc.wait(), START_TIMEOUT)
        finally:
            await _stop(proc)
        assert code == 0, f"gajim {uri} failed ({code})"

    async def type_line(self, text: str) -> None:
        """Types ``text`` into the focused field of Gajim's main window (the open chat's message
        field) and presses Enter."""
        self.check_running()
        windows = await self._windows(MAIN_WINDOW)
        assert windows, "Gajim's main window is not shown"
        await self._xdotool("windowfocus", "--sync", windows[0])
        await self._xdotool("type", "--delay", "20", text)
        await self._xdotool("key", "Return")

    async def _windows(self, title: str) -> list[str]:
        """The ids of the visible windows with this title (no regex characters in it)."""
        # --name: the pattern (a POSIX regular expression) is matched against window titles
        found = await self._xdotool(
            "search", "--onlyvisible", "--name", f"^{title}$", none_found_ok=True
        )
        return found.split()

    async def _xdotool(self, *args: str, none_found_ok: bool = False) -> str:
        assert XDOTOOL is not None
        proc = await asyncio.create_subprocess_exec(
            XDOTOOL,
            *args,
            env={"DISPLAY": self.env["DISPLAY"]},
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
        try:
            out, err = await asyncio.wait_for(proc.communicate(), START_TIMEOUT)
        finally:
            await _stop(proc)
        # "search" exits with 1 when no window matches
        if proc.returncode == 1 and none_found_ok and not out.strip():
            return ""
        assert proc.returncode == 0, f"xdotool {args[0]} failed: {(out + err).decode()}"
        return out.decode()

    def archive(self) -> list[ArchivedMessage]:
        """The chat messages in Gajim's archive, read-only (Gajim keeps writing it)."""
        path = self.profile / "logs.db"
        if not path.exists():
            return []
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            try:
                rows = db.execute(
                    "SELECT jids.jid, logs.kind, logs.message, logs.additional_data FROM logs "
                    "JOIN jids ON jids.jid_id = logs.jid_id WHERE logs.kind IN (?, ?) "
                    "ORDER BY logs.log_line_id",
                    (CHAT_MSG_RECV, CHAT_MSG_SENT),
                ).fetchall()
            except sqlite3.OperationalError:  # not created yet
                return []
        found = []
        for jid, kind, text, extra in rows:
            encrypted = json.loads(extra or "{}").get("encrypted") or {}
            found.append(ArchivedMessage(jid, kind, text or "", encrypted.get("name")))
        return found

    async def wait_logged(self, pattern: str, timeout: float = START_TIMEOUT) -> None:
        """Until a line of Gajim's log matches ``pattern``."""
        deadline = time.monotonic() + timeout
        while True:
            self.check_running()
            if re.search(pattern, self.log.read_text(errors="replace")):
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"{pattern!r} not in Gajim's log within {timeout}s")
            await asyncio.sleep(0.3)

    async def wait_archived(self, kind: int, text: str, timeout: float) -> ArchivedMessage:
        """The archived message of ``kind`` whose text is ``text``, polled until ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            self.check_running()
            for message in self.archive():
                if message.kind == kind and message.text == text:
                    return message
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{text!r} (kind {kind}) not in Gajim's archive within {timeout}s: "
                    f"{self.archive()}\n{self.log_tail()}"
                )
            await asyncio.sleep(0.3)


async def _start_xvfb() -> tuple[asyncio.subprocess.Process, str]:
    """Xvfb on a free display (it picks the number and writes it to ``-displayfd``)."""
    assert XVFB is not None
    read, write = os.pipe()
    try:
        proc = await asyncio.create_subprocess_exec(
            XVFB,
            "-displayfd",
            str(write),
            "-nolisten",
            "tcp",
            "-screen",
            "0",
            "1280x800x24",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            pass_fds=(write,),
            start_new_session=True,
        )
    finally:
        os.close(write)
    try:
        number = await asyncio.wait_for(asyncio.to_thread(_read_line, read), START_TIMEOUT)
    except BaseException:
        await _stop(proc)
        raise
    finally:
        os.close(read)
    assert number.isdigit(), f"Xvfb did not start (displayfd said {number!r})"
    return proc, f":{number}"


def _read_line(fd: int) -> str:
    data = b""
    while not data.endswith(b"\n"):
        chunk = os.read(fd, 64)
        if not chunk:
            break
        data += chunk
    return data.decode().strip()


@contextlib.asynccontextmanager
async def running_gajim(
    *, jid: str, port: int, cert: Path, omemo_with: str
) -> AsyncIterator[Gajim]:
    """Gajim logged in as ``jid`` on the hub at 127.0.0.1:``port`` (see :func:`write_profile`),
    with its X server and session bus; all three are stopped, and the folder removed, at the
    end. On failure the exception carries the end of Gajim's log."""
    root = os.geteuid() == 0
    folder = Path(tempfile.mkdtemp(prefix="interlink-gajim-"))
    procs: list[asyncio.subprocess.Process] = []
    gajim: Gajim | None = None
    try:
        write_profile(folder / "profile", jid=jid, port=port, cert=cert, omemo_with=omemo_with)
        for sub in ("home", "config", "data", "cache", "run"):
            (folder / sub).mkdir(mode=0o700)
        if root:
            for path in [folder, *folder.rglob("*")]:
                os.chown(path, NOBODY, NOBODY)
        drop = (
            ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"] if root else []
        )

        xvfb, display = await _start_xvfb()
        procs.append(xvfb)
        assert DBUS_DAEMON is not None
        bus = f"unix:path={folder / 'run' / 'bus'}"
        dbus = await asyncio.create_subprocess_exec(
            *drop,
            DBUS_DAEMON,
            "--session",
            "--nofork",
            "--nopidfile",
            f"--address={bus}",
            "--print-address=1",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
            start_new_session=True,
        )
        procs.append(dbus)
        assert dbus.stdout is not None
        address = (await asyncio.wait_for(dbus.stdout.readline(), START_TIMEOUT)).decode().strip()
        assert address, "dbus-daemon did not start"

        env = {
            "HOME": str(folder / "home"),
            "XDG_CONFIG_HOME": str(folder / "config"),
            "XDG_DATA_HOME": str(folder / "data"),
            "XDG_CACHE_HOME": str(folder / "cache"),
            "XDG_RUNTIME_DIR": str(folder / "run"),
            "DISPLAY": display,
            "DBUS_SESSION_BUS_ADDRESS": address,
            "NO_AT_BRIDGE": "1",  # no accessibility bus
            "GSETTINGS_BACKEND": "memory",
            "LANG": "C.UTF-8",
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        }
        gajim = Gajim(folder, env, drop, folder / "gajim.log")
        await gajim.start()
        assert gajim.proc is not None
        procs.append(gajim.proc)
        try:
            yield gajim
        except BaseException as exc:
            exc.add_note(f"--- end of Gajim's log:\n{gajim.log_tail()}")
            raise
    finally:
        for proc in reversed(procs):
            await _stop(proc)
        shutil.rmtree(folder, ignore_errors=True)
