"""``interlink demo`` runs green, and its transcript shows what it promises: each person's view
beside a metadata view in which the hub and the provider never see the words or the picture."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from rich.console import Console

from interlink.demo import Demo

SECRETS = (
    "Hi Alice",
    "Welcome",
    "Are you there",
    "the lake this morning",
    "Who brings the boat",
    "see you Saturday",
    "the harbour",
)


async def test_demo_transcript_people_hub_and_provider(tmp_path: Path) -> None:
    demo = Demo(Console(record=True, width=200), tmp_path)
    await demo.run()
    titles = [step.title for step in demo.steps]
    assert len(titles) == 10
    people = "\n".join(line for step in demo.steps for line in step.people)
    assert "REQUEST from bob (Example Chat)" in people
    assert "✓✓ delivered" in people
    assert "✓✓ seen" in people
    assert "push for bob" in people
    assert "GCM tag checked" in people
    assert "from Bob (Example Chat), encrypted to every member's devices" in people
    hub = "\n".join(line for step in demo.steps for line in step.hub)
    provider = "\n".join(line for step in demo.steps for line in step.provider)
    assert "omemo:2:encrypted" in hub
    assert "upload:request" in hub
    assert "PUT /media/" in hub
    assert "POST /interlink/v1/push" in provider
    # Bob's photo on Example Chat's host: Alice fetched it through the hub's proxy, so the host
    # saw the proxy (its address and User-Agent), and the hub saw the proxy request.
    (photo,) = [step for step in demo.steps if step.title.startswith("9. ")]
    assert "fetched through the hub's media proxy" in "\n".join(photo.people)
    assert "GET /v1/media-proxy" in "\n".join(photo.hub)
    fetched = [line for line in photo.provider if line.startswith("GET /media/")]
    assert fetched
    assert all("from 127.0.0.1, User-Agent Interlink-media-proxy" in line for line in fetched)
    for secret in SECRETS:
        assert secret in people
        assert secret not in hub
        assert secret not in provider


def test_the_cli_command_exits_zero(tmp_path: Path) -> None:
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "interlink", "demo"],
        capture_output=True,
        text=True,
        timeout=240,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "demo passed" in done.stdout
    assert not list(tmp_path.glob("interlink-demo-*"))  # temporary data removed
