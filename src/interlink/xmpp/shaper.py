"""Read shaping: how many bytes per second one stream may make us parse (sans-I/O).

Theory of operation
-------------------
Parsing costs CPU in the one event loop every stream shares, so one peer writing as fast as the
network allows would slow every other. Like Prosody's ``mod_limits`` and ejabberd's shapers, a
:class:`ReadShaper` is a token bucket over bytes: it holds up to ``burst`` bytes of credit and
regains ``rate`` bytes of it per second. The shell reports every read with :meth:`~ReadShaper.
consume` and the time; the bytes are already read, so the credit may go negative, and the answer
is how many seconds the shell must stop reading from that socket for the credit to be back at
zero. While it does not read, the kernel's buffers fill and TCP flow control slows the peer down;
the peer loses nothing.

No clock is read here: ``now`` comes in, and the shell arms the timer.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ReadRate:
    """``bytes_per_second`` sustained, with up to ``burst`` bytes read at once without waiting."""

    bytes_per_second: int
    burst: int

    def __post_init__(self) -> None:
        if self.bytes_per_second < 1 or self.burst < 1:
            raise ValueError("a read rate needs bytes_per_second >= 1 and burst >= 1")


class ReadShaper:
    """The read budget of one stream; see the module docstring."""

    __slots__ = ("_credit", "_updated", "rate")

    def __init__(self, rate: ReadRate, now: float) -> None:
        self.rate = rate
        self._credit = float(rate.burst)
        self._updated = now

    def change_rate(self, rate: ReadRate, now: float) -> None:
        """Use ``rate`` from ``now`` on (the stream authenticated); the credit starts full."""
        self.rate = rate
        self._credit = float(rate.burst)
        self._updated = now

    def consume(self, size: int, now: float) -> float:
        """``size`` bytes were read at ``now``: the seconds to stop reading (0.0: read on)."""
        rate = self.rate
        elapsed = max(0.0, now - self._updated)
        self._updated = max(self._updated, now)
        credit = min(float(rate.burst), self._credit + elapsed * rate.bytes_per_second) - size
        self._credit = credit
        return 0.0 if credit >= 0 else -credit / rate.bytes_per_second


__all__ = ["ReadRate", "ReadShaper"]
