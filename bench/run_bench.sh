#!/usr/bin/env bash
# Every hub benchmark in one command: flood (200 connections), paced (5,000 msg/s over 1,000
# connections) and idle (1,000 connections), each 3 times on a fresh hub, then a flood with py-spy
# attached to the hub for the hot-path profile. Results go to bench/results/ (summary.md,
# summary.json, one JSON per run, the profile). Extra arguments go to `loadgen.py all`, e.g.
# `bench/run_bench.sh --repeat 5` or `--skip-profile`. Takes about 8 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap >/dev/null
extra=()
if ! .venv/bin/py-spy --version >/dev/null 2>&1; then
    # py-spy is a measuring tool, not a project dependency: installed here on demand only.
    if ! .venv/bin/pip install --quiet py-spy; then
        echo "py-spy cannot be installed: running without the profile" >&2
        extra+=(--skip-profile)
    fi
fi
exec .venv/bin/python bench/loadgen.py all "${extra[@]}" "$@"
