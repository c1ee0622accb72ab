"""Free TCP ports on 127.0.0.1 for the servers the tests start (the hub's own listeners bind
port 0 instead and report theirs)."""

from __future__ import annotations

import socket
from contextlib import ExitStack


def free_ports(count: int) -> tuple[int, ...]:
    """``count`` distinct ports free on 127.0.0.1 now: each socket stays bound until all are
    chosen, so the kernel cannot hand the same port out twice (it may, to sockets bound and
    closed one after the other)."""
    with ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(count)]
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return tuple(int(s.getsockname()[1]) for s in socks)


def free_port() -> int:
    """One port free on 127.0.0.1 now."""
    (port,) = free_ports(1)
    return port
