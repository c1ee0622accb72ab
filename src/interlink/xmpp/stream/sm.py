"""Stream Management (XEP-0198, ``urn:xmpp:sm:3``): counters, the unacknowledged queue, the XML.

Theory of operation
-------------------
One :class:`StreamManagement` belongs to one stream once the client sent ``<enable/>`` (§3).
It counts in both directions:

- **inbound** (``handled``): the stanzas the server has *handled*. The stream counts the stanzas
  it answers itself; the shell counts each routed stanza only once routing finished — for a
  message stored offline, once the commit is durable (:meth:`stanza_handled`). ``<a h/>`` goes out
  only when the shell has reached the ``<r/>`` in the peer's input, so ``h`` never covers a stanza
  that could still be lost.
- **outbound**: every stanza written to the client after ``<enable/>`` is kept
  (:meth:`record_sent`) until the client's ``<a h/>`` covers it (:meth:`ack`). The queue is capped
  (``max_unacked``): a client that never acknowledges is disconnected rather than growing it.
  Every ``request_every`` stanzas the server asks for an ack (``<r/>``) — but never while its
  last ``<r/>`` is unanswered: under load the number of ``<r/>``/``<a/>`` round trips follows the
  round-trip time, not the message rate (Prosody's mod_smacks does the same) — and, if
  ``request_after`` is set, also at the latest that many seconds after a stanza it has not
  asked about yet (the machine's timer, :meth:`get_timer`). An ``h`` above what was sent is the
  ``<handled-count-too-high/>`` stream error (§4).

Counters on the wire are ``h mod 2**32`` (§4: they wrap); inside, ``sent`` and ``acked`` are
plain integers that never wrap, so "acknowledged through the n-th stanza" needs no modular maths
outside :meth:`ack`.

Each queued stanza carries a ``stored`` flag: it came from offline storage and stays there until
acknowledged, so it must not be stored again when the session ends unacknowledged.

Nothing here does I/O or reads a clock; the machine (:mod:`.machine`) calls it from its handlers.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import NamedTuple

from interlink.errors import StreamError, StreamErrorCondition
from interlink.xmpp import ns
from interlink.xmpp.xml import escape_attr

NS = "urn:xmpp:sm:3"
WRAP = 2**32
# While the server holds a client's input (the client's <a/> cannot be read), the unacknowledged
# queue may grow to this many times max_unacked before the client is disconnected.
HELD_INPUT_ALLOWANCE = 2

ENABLE = ns.qname(NS, "enable")
REQUEST = ns.qname(NS, "r")
ACK = ns.qname(NS, "a")
RESUME = ns.qname(NS, "resume")


@dataclass(frozen=True, slots=True)
class SmConfig:
    """``max_unacked``: stanzas kept for a client before it must acknowledge;
    ``request_every``: the server sends ``<r/>`` after this many unrequested stanzas;
    ``request_after``: or this many seconds after the first unrequested one (0: never by time)."""

    enabled: bool = True
    max_unacked: int = 1000
    request_every: int = 5
    request_after: float = 0.0
    resume_window: int = 300  # seconds a session waits to be resumed (the shell keeps it)

    def __post_init__(self) -> None:
        if self.max_unacked < 1 or self.request_every < 1:
            raise ValueError("max_unacked and request_every must be at least 1")
        if self.request_after < 0:
            raise ValueError("request_after must not be negative")


class Unacked(NamedTuple):
    """A stanza written to the client and not yet acknowledged. (A tuple: one is made for every
    stanza sent, and a tuple is made several times faster than a frozen dataclass.)"""

    xml: str
    stored: bool  # still in offline storage (deleted only once acknowledged)
    seq: int  # its number on this stream (1 for the first after <enable/>); h covers it if >=


class StreamManagement:
    """The state of XEP-0198 on one stream; see the module docstring."""

    __slots__ = (
        "_since_request",
        "_stored",
        "acked",
        "awaiting_ack",
        "config",
        "handled",
        "queue",
        "request_due",
        "resume_id",
        "sent",
        "stored_acked",
    )

    def __init__(self, config: SmConfig, resume_id: str | None = None) -> None:
        self.config = config
        # Named to the client when it asked for resume: what it reports later for this id
        # (<resume previd h/>) settles the offline messages written here.
        self.resume_id = resume_id
        self.handled = 0  # inbound stanzas handled (unbounded; sent mod 2**32)
        self.sent = 0  # outbound stanzas written since <enable/>
        self.acked = 0  # outbound stanzas the client acknowledged
        # What was written and not acknowledged, oldest first: the stanza numbered acked + 1
        # first. Only the text is kept per stanza (one is kept for every stanza sent); the few
        # that stay in offline storage until acknowledged are the numbers in _stored.
        self.queue: deque[str] = deque()
        self._stored: set[int] = set()
        self._since_request = 0
        self.awaiting_ack = False  # an <r/> is out and its <a/> has not come back yet
        self.request_due: float | None = None  # when an <r/> is due by time (request_after)
        self.stored_acked = False  # an ack covered a stanza from offline storage (shell resets)

    # -- inbound ------------------------------------------------------------------------------
    def stanza_handled(self) -> None:
        self.handled += 1

    def ack_xml(self) -> str:
        """``<a h/>`` for the stanzas handled so far (§4)."""
        return f'<a xmlns="{NS}" h="{self.handled % WRAP}"/>'

    # -- outbound -----------------------------------------------------------------------------
    def record_sent(
        self,
        xml: str,
        *,
        stored: bool = False,
        now: float | None = None,
        input_held: bool = False,
    ) -> bool:
        """Keep ``xml`` until acknowledged; ``True`` when an ``<r/>`` should follow it. With
        ``now`` (and ``request_after``), the first stanza not yet asked about arms the timer.
        ``input_held``: the server is not reading this client meanwhile (it waits for storage
        on the client's behalf), so the client's acknowledgements cannot arrive; the limit is
        then ``HELD_INPUT_ALLOWANCE`` times ``max_unacked`` — still a bound, and the plain
        limit applies again as soon as the server reads again.

        Raises: StreamError (``policy-violation``: more than ``max_unacked`` unacknowledged)."""
        limit = self.config.max_unacked * (HELD_INPUT_ALLOWANCE if input_held else 1)
        if len(self.queue) >= limit:
            raise StreamError(
                StreamErrorCondition.POLICY_VIOLATION,
                f"too many unacknowledged stanzas ({self.config.max_unacked}); "
                "acknowledge with <a/> (XEP-0198)",
            )
        self.sent += 1
        self.queue.append(xml)
        if stored:
            self._stored.add(self.sent)
        self._since_request += 1
        if now is not None and self.request_due is None and self.config.request_after > 0:
            self.request_due = now + self.config.request_after
        if self._since_request >= self.config.request_every and not self.awaiting_ack:
            self._since_request = 0
            self.awaiting_ack = True
            return True
        return False

    def request_needed(self) -> bool:
        """After an ack: whether ``request_every`` stanzas went out meanwhile, unasked."""
        return self._since_request >= self.config.request_every and not self.awaiting_ack

    def get_timer(self) -> float | None:
        """When to look for stanzas sent and not yet asked about (``request_after`` seconds
        after the first stanza sent since the last look), or ``None``. An ``<r/>`` sent because
        of the count does not move it: the deadline changes at most once per ``request_after``,
        so the shell does not re-arm a timer for every few stanzas."""
        return self.request_due

    def handle_timer(self, now: float) -> bool:
        """The timer is due: ``True`` when an ``<r/>`` should go out (some stanza was sent
        since the last one); the next stanza sent arms the timer again."""
        if self.request_due is None or now < self.request_due:
            return False
        self.request_due = None
        return self._since_request > 0

    def request_xml(self) -> str:
        self._since_request = 0
        self.awaiting_ack = True
        return f'<r xmlns="{NS}"/>'

    def ack(self, h_attr: str | None) -> int:
        """The client's ``<a h/>``: drop what it covers; returns how many stanzas it newly
        acknowledged.

        Raises: StreamError (``h`` missing or not a number: ``bad-format``; acknowledging more
        than was sent: ``undefined-condition`` with ``handled-count-too-high``, §4)."""
        h = parse_h(h_attr)
        self.awaiting_ack = False
        newly = (h - self.acked) % WRAP
        if newly > len(self.queue):
            sent = self.sent % WRAP
            raise StreamError(
                StreamErrorCondition.UNDEFINED_CONDITION,
                f"You acknowledged {h} stanzas, but I only sent you {sent} so far.",
                app_condition=f'<handled-count-too-high xmlns="{NS}" h="{h}" send-count="{sent}"/>',
            )
        popleft = self.queue.popleft
        for _ in range(newly):
            popleft()
        self.acked += newly
        if self._stored:
            covered = {seq for seq in self._stored if seq <= self.acked}
            if covered:
                self._stored -= covered
                self.stored_acked = True
        return newly

    def keep(self, xml: str, stored: bool = False) -> None:
        """Add ``xml`` to the unacknowledged queue without writing it (the stream is closed or
        parked: it is resent on resumption, or stored), numbered as if sent; no limit."""
        self.sent += 1
        self.queue.append(xml)
        if stored:
            self._stored.add(self.sent)

    def resumed_xml(self, previd: str) -> str:
        return f'<resumed xmlns="{NS}" previd="{escape_attr(previd)}" h="{self.handled % WRAP}"/>'

    def unacked(self) -> list[Unacked]:
        """What the client has not acknowledged, oldest first (the queue is emptied)."""
        first = self.acked + 1
        stored = self._stored
        items = [Unacked(xml, first + i in stored, first + i) for i, xml in enumerate(self.queue)]
        self.queue.clear()
        self._stored = set()
        return items


def parse_h(value: str | None) -> int:
    """An ``h`` attribute (``xs:unsignedInt``). Raises: StreamError (``bad-format``)."""
    if value is None or not value.isdigit() or int(value) >= WRAP:
        raise StreamError(StreamErrorCondition.BAD_FORMAT, "<a/> needs h, an unsigned 32-bit int")
    return int(value)


def enabled_xml(resume_id: str | None = None, window: int = 0) -> str:
    if resume_id is None:
        return f'<enabled xmlns="{NS}"/>'
    return f'<enabled xmlns="{NS}" id="{resume_id}" resume="true" max="{window}"/>'


def failed_xml(condition: str) -> str:
    return f'<failed xmlns="{NS}"><{condition} xmlns="{ns.STANZAS_ERR}"/></failed>'


def feature_xml() -> str:
    return f'<sm xmlns="{NS}"/>'


__all__ = [
    "ACK",
    "ENABLE",
    "NS",
    "REQUEST",
    "RESUME",
    "WRAP",
    "SmConfig",
    "StreamManagement",
    "Unacked",
    "enabled_xml",
    "failed_xml",
    "feature_xml",
    "parse_h",
]
