"""Every benchmark script under bench/ runs to the end in its short mode, so that none rots
unnoticed (bench/README.md, "The --quick convention"). A script is discovered by its file name;
each must accept ``--quick`` and finish in well under a minute with it. Nothing here asserts a
number: a test never asserts a wall-clock time (STYLE.md)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = sorted(p for p in (ROOT / "bench").glob("*.py") if not p.name.startswith("_"))
TIMEOUT = 240.0  # seconds: a hung script fails instead of holding the suite


def run(script: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join((str(ROOT / "src"), str(ROOT)))}
    return subprocess.run(
        [sys.executable, str(script), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )


def test_the_benchmarks_are_discovered() -> None:
    assert {"crypto.py", "loadgen.py"} <= {p.name for p in SCRIPTS}


@pytest.mark.parametrize("script", SCRIPTS, ids=[p.stem for p in SCRIPTS])
def test_each_benchmark_runs_to_the_end_in_its_quick_mode(script: Path) -> None:
    helped = run(script, "--help")
    assert helped.returncode == 0, helped.stderr[-2000:]
    assert "--quick" in helped.stdout, f"{script.name} has no --quick (see bench/README.md)"
    done = run(script, "--quick")
    assert done.returncode == 0, f"{script.name} --quick failed:\n{done.stderr[-4000:]}"
    assert done.stdout.strip(), f"{script.name} --quick printed no result"
