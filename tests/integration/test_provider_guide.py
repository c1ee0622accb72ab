"""docs/provider-guide.md §8 as written: its marked blocks run in order in an empty directory
(the real `interlink` program for the hub, the provider kit and the CLI; the SDK for Bob's and
Alice's apps; curl for the kit's push endpoint), with free ports instead of the guide's.

A block is marked by the HTML comment before its fence: ``<!-- guide-test -->`` (run it, it must
exit 0), ``<!-- guide-test: background, ready="text" -->`` (start it, wait for ``text`` in its
output, stop it at the end) or ``<!-- guide-test: file="name" -->`` (write it to ``name``)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.ports import free_ports

GUIDE = Path(__file__).parents[2] / "docs" / "provider-guide.md"
MARK = re.compile(
    r"<!-- guide-test(?::\s*(?P<opts>.*?))?\s*-->\s*\n```(?P<lang>\w*)\n(?P<body>.*?)\n```", re.S
)
GUIDE_PORTS = ("5222", "5223", "5280", "8443")


@dataclass
class Block:
    kind: str  # run | background | file
    body: str
    ready: str = ""
    name: str = ""


def guide_blocks(text: str) -> list[Block]:
    blocks = []
    for match in MARK.finditer(text):
        opts = match.group("opts") or ""
        body = match.group("body")
        if opts.startswith("background"):
            ready = re.search(r'ready="([^"]+)"', opts)
            assert ready is not None, opts
            blocks.append(Block("background", body, ready=ready.group(1)))
        elif opts.startswith("file"):
            name = re.search(r'file="([^"]+)"', opts)
            assert name is not None, opts
            blocks.append(Block("file", body, name=name.group(1)))
        else:
            assert not opts, f"unknown guide-test options {opts!r}"
            blocks.append(Block("run", body))
    return blocks


def shims(folder: Path) -> dict[str, str]:
    """``interlink`` and ``python`` on PATH: this interpreter, with this checkout's sources."""
    folder.mkdir()
    for name, command in (("interlink", "-m interlink"), ("python", "")):
        path = folder / name
        path.write_text(f'#!/bin/sh\nexec "{sys.executable}" {command} "$@"\n')
        path.chmod(0o755)
    src = str(Path(__file__).parents[2] / "src")
    env = dict(os.environ)
    env["PATH"] = f"{folder}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH", "")) if p)
    return env


class Background:
    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: list[str] = []
        self._reader = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        async for raw in self.proc.stdout:
            self.lines.append(raw.decode(errors="replace").rstrip())

    async def wait_for(self, text: str, timeout: float = 60) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while not any(text in line for line in self.lines):
            if self.proc.returncode is not None or asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"no {text!r} in:\n" + "\n".join(self.lines[-40:]))
            await asyncio.sleep(0.1)

    async def stop(self) -> None:
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)  # the shell and the program it started
            try:
                await asyncio.wait_for(self.proc.wait(), 20)
            except TimeoutError:
                os.killpg(self.proc.pid, signal.SIGKILL)
                await self.proc.wait()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._reader, 5)


FILE = re.compile(r" file=([0-9a-f]{12})\b")


@pytest.mark.skipif(shutil.which("curl") is None, reason="the guide's push check uses curl")
async def test_the_provider_guides_walkthrough_runs_as_written(tmp_path: Path) -> None:
    ports = dict(zip(GUIDE_PORTS, map(str, free_ports(len(GUIDE_PORTS))), strict=True))
    blocks = guide_blocks(GUIDE.read_text(encoding="utf-8"))
    assert [b.kind for b in blocks].count("background") == 2  # the hub and the kit
    env = shims(tmp_path / "bin")
    work = tmp_path / "work"
    work.mkdir()
    background: list[Background] = []
    outputs: list[str] = []
    try:
        for block in blocks:
            body = block.body
            for guide_port, port in ports.items():
                body = body.replace(guide_port, port)
            if block.kind == "file":
                (work / block.name).write_text(body + "\n", encoding="utf-8")
                continue
            proc = await asyncio.create_subprocess_exec(
                "bash",
                "-euo",
                "pipefail",
                "-c",
                body,
                cwd=work,
                env=env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
            )
            if block.kind == "background":
                started = Background(proc)
                background.append(started)
                await started.wait_for(block.ready)
                continue
            try:
                out, _ = await asyncio.wait_for(proc.communicate(), 120)
            except TimeoutError:
                os.killpg(proc.pid, signal.SIGKILL)
                raise
            text = out.decode(errors="replace")
            assert proc.returncode == 0, f"{body}\n---\n{text}"
            outputs.append(text)
    finally:
        for started in reversed(background):
            await started.stop()
    walk = "\n".join(outputs)
    assert "Bob is enlisted as " in walk
    assert "Alice got a message request: Hi Alice, it's Bob from Example Chat" in walk
    assert "Bob got: Hi Bob!" in walk
    assert "Bob got, stored while offline: Are you there?" in walk
    assert "through the hub's media proxy, intact: True" in walk
    assert '"count":1' in outputs[-1].replace(" ", "")  # the push, as the kit recorded it
    hub_log = "\n".join(background[0].lines)
    kit_log = "\n".join(background[1].lines)
    assert re.search(r"listening transport=c2s-starttls host=127\.0\.0\.1 port=\d+", hub_log)
    assert "provider approved provider=examplechat" in hub_log
    assert "enlisted provider=examplechat" in hub_log
    assert "alice-secret" not in hub_log
    assert re.search(r"listening transport=https host=127\.0\.0\.1 port=\d+", kit_log)
    for event in ("token issued user=bob", "introspection user=bob active=True", "push received"):
        assert event in kit_log, kit_log
    proxied = [line for line in kit_log.splitlines() if "media request method=GET" in line]
    assert proxied, kit_log
    assert all("user_agent=Interlink-media-proxy" in line for line in proxied)
    # the path (the file's fetch capability, and its name) is never logged: a short hash of the
    # id in it instead
    media = [line for line in kit_log.splitlines() if "media request" in line]
    assert any("method=PUT" in line for line in media), media
    assert all("/media/" not in line for line in media), media
    assert all(FILE.search(line) for line in media), media
