"""The README's Python code runs as written: each ```python block is extracted and run as a
script against a loopback hub serving ``localhost`` with the README's two accounts, from a
directory laid out as ``scripts/run-hub`` leaves it (``interlink-data/tls/dev-cert.pem``). The one
change made to a block is its ``PORT = 5222`` line, to the test hub's port."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from interlink.client import InterlinkClient
from interlink.xmpp.sasl import derive_credentials
from tests.integration.kit import running_hub

ROOT = Path(__file__).resolve().parents[2]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
ACCOUNTS = {"4915112345678@localhost": "secret1", "4915187654321@localhost": "secret2"}


def python_blocks(markdown: Path) -> list[str]:
    return BLOCK.findall(markdown.read_text())


def test_the_readme_python_blocks_are_clean_python(tmp_path: Path) -> None:
    """No unused import, no undefined name, no ``await`` outside a function (pyflakes rules)."""
    for i, block in enumerate(python_blocks(ROOT / "README.md")):
        script = tmp_path / f"block{i}.py"
        script.write_text(block)
        checked = subprocess.run(
            [sys.executable, "-m", "ruff", "check", "--isolated", "--select", "F,E9", str(script)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert checked.returncode == 0, checked.stdout


def test_the_readme_has_its_sdk_script() -> None:
    blocks = python_blocks(ROOT / "README.md")
    assert blocks
    assert any("InterlinkClient" in b and "asyncio.run(main())" in b for b in blocks)
    assert all("PORT = 5222" in b for b in blocks if "InterlinkClient" in b)


async def test_the_readme_python_blocks_run_against_a_loopback_hub(tmp_path: Path) -> None:
    async with running_hub(tmp_path, accounts=(), hub={"domain": "localhost"}) as (server, certs):
        assert server.storage is not None
        for jid, password in ACCOUNTS.items():
            creds = derive_credentials(password, 4096)
            await server.storage.accounts.create(jid, creds, time.time())
        port = server.ports["c2s-starttls"]
        workdir = tmp_path / "readme"
        (workdir / "interlink-data" / "tls").mkdir(parents=True)
        shutil.copy(certs.ca, workdir / "interlink-data" / "tls" / "dev-cert.pem")
        bob = InterlinkClient(  # Bob's `interlink chat`: online, keys published, receipts on
            "4915187654321@localhost/chat",
            "secret2",
            data_dir=tmp_path / "bob",
            port=port,
            ca_file=certs.ca,
        )
        await bob.connect()
        try:
            for i, block in enumerate(python_blocks(ROOT / "README.md")):
                script = workdir / f"block{i}.py"
                script.write_text(block.replace("PORT = 5222", f"PORT = {port}"))
                env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
                proc = await asyncio.create_subprocess_exec(
                    sys.executable,
                    str(script),
                    cwd=workdir,
                    env=env,
                    stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.PIPE,
                )
                out, err = await asyncio.wait_for(proc.communicate(), 60)
                assert proc.returncode == 0, err.decode()[-3000:]
                if "send_text" in block:
                    text = out.decode()
                    assert "the hub has it" in text
                    assert "delivered to Bob's device" in text
                    assert "safety number:" in text
        finally:
            await bob.close()
