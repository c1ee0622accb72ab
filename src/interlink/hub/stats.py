"""Plain counters the hot path can afford (an integer add), read by the metrics endpoint at
scrape time: stanzas by kind and direction, and a routing-latency histogram."""

from __future__ import annotations

from bisect import bisect_left

# Upper bounds in seconds (Prometheus "le"), the last bucket is +Inf.
LATENCY_BUCKETS = (
    0.000_05,
    0.000_1,
    0.000_25,
    0.000_5,
    0.001,
    0.002_5,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
)
KINDS = {"m": "message", "p": "presence", "i": "iq"}


class HubStats:
    __slots__ = ("latency", "latency_sum", "stanzas_in", "stanzas_out")

    def __init__(self) -> None:
        self.stanzas_in: dict[str, int] = dict.fromkeys(KINDS.values(), 0)
        self.stanzas_out: dict[str, int] = dict.fromkeys(KINDS, 0)  # by first letter of the tag
        self.latency = [0] * (len(LATENCY_BUCKETS) + 1)
        self.latency_sum = 0.0

    def routed(self, seconds: float) -> None:
        self.latency[bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self.latency_sum += seconds

    def sent(self, xml: str) -> None:
        """One stanza written to a client (``xml`` starts with ``<message``, ``<presence``, …)."""
        key = xml[1:2]
        if key in self.stanzas_out:
            self.stanzas_out[key] += 1

    def outbound(self) -> dict[str, int]:
        return {KINDS[k]: v for k, v in self.stanzas_out.items()}

    def histogram(self) -> tuple[list[tuple[str, int]], float]:
        """Cumulative buckets as Prometheus wants them, and the sum."""
        buckets, running = [], 0
        for bound, count in zip((*LATENCY_BUCKETS, float("inf")), self.latency, strict=True):
            running += count
            buckets.append(("+Inf" if bound == float("inf") else repr(bound), running))
        return buckets, self.latency_sum
