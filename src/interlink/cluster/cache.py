"""A node's cache of the session directory, without I/O (the Redis cluster drives it).

*Theory of operation.* Routing a message to another node asks the directory where the
recipient's sessions are. Most answers do not change between two messages, so a node keeps
them, keyed by bare JID, and drops one when a notice says that account's sessions changed. The
node that writes a session (bind, presence, unbind, a dead node's sessions forgotten) publishes
the notice after the write, so a node that holds an answer older than a write always has that
write's notice on its way. Two races are closed here:

- a lookup in flight when a notice arrives may carry the value from before the write: a
  lookup's answer is kept only if no notice for its account (nor a :meth:`clear`) came between
  :meth:`start` and :meth:`fetched`;
- notices lost while the subscription was down: the cache is used only while :attr:`live`
  (the subscription confirmed); losing it clears everything.

Entries also expire ``ttl`` seconds after they were fetched (a bound on any staleness the two
rules above miss), and at most ``size`` are kept (the oldest go first). Time is passed in.

A stale answer never loses a message (:meth:`interlink.cluster.SessionDirectory.locate`): it
costs a detour through the wrong node's offline storage, or a fresh lookup.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from interlink.cluster.base import Located


@dataclass(frozen=True, slots=True)
class _Entry:
    located: tuple[Located, ...]
    expires: float


class DirectoryCache:
    def __init__(self, *, ttl: float, size: int) -> None:
        """``ttl`` seconds an answer is kept at most (0: nothing is kept); ``size`` answers
        at most."""
        self.ttl = ttl
        self.size = size
        self._entries: dict[str, _Entry] = {}
        self._epoch = 0  # counts notices and clears
        self._cleared = 0  # the epoch of the last clear
        self._changed: dict[str, int] = {}  # bare -> epoch of its last notice, while fetching
        self._fetching: Counter[str] = Counter()
        self._live = False
        self.hits = 0
        self.misses = 0

    @property
    def live(self) -> bool:
        """Whether notices are being received (only then is anything kept)."""
        return self._live

    @live.setter
    def live(self, live: bool) -> None:
        # either way, lookups begun before now may predate notices this node never got
        self.clear()
        self._live = live

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, bare: str, now: float) -> list[Located] | None:
        """The kept answer for ``bare``, or ``None`` (then look it up)."""
        entry = self._entries.get(bare)
        if entry is None or not self._live:
            self.misses += 1
            return None
        if entry.expires <= now:
            del self._entries[bare]
            self.misses += 1
            return None
        self.hits += 1
        return list(entry.located)

    def start(self, bare: str) -> int:
        """A lookup of ``bare`` begins; pass what this returns to :meth:`fetched`."""
        self._fetching[bare] += 1
        return self._epoch

    def fetched(self, bare: str, started: int, located: list[Located] | None, now: float) -> None:
        """The lookup begun at ``started`` answered ``located`` (``None``: it failed). Kept if
        nothing changed ``bare`` meanwhile."""
        self._fetching[bare] -= 1
        changed = self._changed.get(bare, -1)
        if self._fetching[bare] <= 0:
            del self._fetching[bare]
            self._changed.pop(bare, None)
        if (
            located is None
            or not self._live
            or self.ttl <= 0
            or self.size <= 0
            or changed > started
            or self._cleared > started
        ):
            return
        self._entries.pop(bare, None)
        while len(self._entries) >= self.size:
            del self._entries[next(iter(self._entries))]
        self._entries[bare] = _Entry(tuple(located), now + self.ttl)

    def invalidate(self, bare: str) -> None:
        """A notice: ``bare``'s sessions changed."""
        self._epoch += 1
        self._entries.pop(bare, None)
        if bare in self._fetching:
            self._changed[bare] = self._epoch

    def clear(self) -> None:
        """Forget everything (notices may have been lost)."""
        self._epoch += 1
        self._cleared = self._epoch
        self._entries.clear()
