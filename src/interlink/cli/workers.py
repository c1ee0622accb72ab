"""``interlink serve --workers N``: N hub processes on one machine, one per core, sharing the
listening ports (SO_REUSEPORT: the kernel spreads new connections over them) and, as the nodes of
a cluster, one PostgreSQL and one Redis.

This process only supervises: it starts the workers (``interlink serve`` each, with its own node
id and ``--reuse-port``), passes SIGTERM and SIGINT on to them (each drains: ends its sessions,
which reconnect to the others or, at a full stop, to the restarted hub, and leaves the cluster),
and starts again a worker that died without being asked to.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import time
from collections.abc import Callable
from types import FrameType

log = logging.getLogger("interlink.workers")

STOP_TIMEOUT = 30.0  # seconds a worker has to drain after SIGTERM before it is killed
RESTART_DELAY = 1.0  # between a worker's death and its restart (doubling, up to a minute)


def _start(argv: list[str]) -> subprocess.Popen[bytes]:
    # argv is this interpreter running ``interlink serve`` with the supervisor's own options
    return subprocess.Popen(argv)  # noqa: S603


def supervise(argv_for: Callable[[int], list[str]], workers: int) -> int:
    """Run ``workers`` processes (``argv_for(i)``) until SIGTERM or SIGINT; returns the exit
    status (0 once every worker stopped when asked)."""
    stopping = False

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    procs: dict[int, subprocess.Popen[bytes]] = {}
    delays = dict.fromkeys(range(workers), RESTART_DELAY)
    due: dict[int, float] = {}
    try:
        for i in range(workers):
            procs[i] = _start(argv_for(i))
            log.info("worker started", extra={"worker": i, "pid": procs[i].pid})
        while not stopping:
            time.sleep(0.2)
            now = time.monotonic()
            for i, proc in list(procs.items()):
                if proc.poll() is not None and i not in due:
                    log.error(
                        "worker died; starting it again",
                        extra={"worker": i, "status": proc.returncode, "after": delays[i]},
                    )
                    due[i] = now + delays[i]
                    delays[i] = min(60.0, delays[i] * 2)
            for i, when in list(due.items()):
                if when <= now and not stopping:
                    del due[i]
                    procs[i] = _start(argv_for(i))
                    log.info("worker started", extra={"worker": i, "pid": procs[i].pid})
        for proc in procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        status = 0
        for proc in procs.values():
            try:
                code = proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                code = proc.wait()
            status = status or (0 if code in (0, -signal.SIGTERM) else 1)
        return status
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
