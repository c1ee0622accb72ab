"""When this device replaces a session that cannot read a peer device's messages.

Theory of operation
-------------------
python-omemo keeps one session per peer device and namespace. When both devices write first at
the same moment, each starts a session with a key exchange, each replaces its own session by the
other's key exchange when it arrives, and each then writes on the session it has: the other no
longer has that one. Every further message fails with "Key material decryption failed", in both
directions, for good (libsignal and Gajim keep older sessions and do not break this way). A
device that lost its state (a restored backup) breaks the same way.

XEP-0384 §"Recovering from broken sessions" (v0.8; the legacy namespace's spec says the same)
has the receiver answer an unreadable message by starting a new session: python-omemo's
``replace_sessions`` builds one from the peer's bundle and sends an empty message carrying the
key exchange, so the peer's next messages can be read. What was written on the broken session
meanwhile stays unreadable (the user sees ``DecryptionFailed``, never silence).

If both devices did so at once, their new key exchanges would cross again, forever. So the two
decide alike without talking: a device that has *read a key exchange from that peer device
within the last* ``settle`` *seconds* leaves the repair to the peer device when the peer's
address (bare JID, then device id) sorts first, which does not wait. After a crossing, each has
read the other's key exchange, so exactly one of them repairs. A device that broke alone (the
peer read nothing from it lately) repairs at once whatever the order. And no device repairs the
same peer device twice within ``settle`` seconds, whatever happens on the wire.

Only a message without a key exchange for this device that python-omemo could not decrypt with
the session it has (or for which it has none) starts a repair: a duplicate (a replay, or an
archived copy read twice) or a message refused before decryption never does.
"""

from __future__ import annotations

from collections import OrderedDict

import omemo
from doubleratchet.aead import AuthenticationFailedException, DecryptionFailedException

SETTLE = 30.0
"""Seconds after reading a key exchange from a device (and after repairing its session) during
which the repair of that device's session is left alone (see the module docstring)."""

MAX_PEERS = 1024
"""Peer devices remembered at most per table (the oldest go first): a peer writing from ever
new device ids cannot grow them, whatever it sends within ``settle`` seconds."""


def check_settle(settle: float) -> None:
    """ValueError unless ``settle`` is positive."""
    if settle <= 0:
        raise ValueError("session_repair_settle must be positive")


def broken_session(exc: BaseException) -> bool:
    """Whether python-omemo's refusal says the session it has cannot read the message (or that
    it has none), rather than that the message was a duplicate or malformed."""
    if isinstance(exc, omemo.NoSession):
        return True
    if not isinstance(exc, omemo.DecryptionFailed):
        return False
    cause = exc.__cause__
    return isinstance(cause, AuthenticationFailedException | DecryptionFailedException)


class SessionRepair:
    """The decision of :mod:`interlink.client.healing`, for one device (pure; time passed in)."""

    def __init__(self, own: str, device_id: int, *, settle: float = SETTLE) -> None:
        check_settle(settle)
        self._own = (own, device_id)
        self._settle = settle
        # peer device -> when; oldest first (time only moves forward)
        self._key_exchange_read: OrderedDict[tuple[str, int], float] = OrderedDict()
        self._repaired: OrderedDict[tuple[str, int], float] = OrderedDict()

    def key_exchange_read(self, bare: str, device_id: int, now: float) -> None:
        """A message from ``bare``'s device ``device_id`` that carried a key exchange for this
        device was read."""
        self._remember(self._key_exchange_read, (bare, device_id), now)
        self._forget(now)

    def should_repair(self, bare: str, device_id: int, now: float) -> bool:
        """Whether to replace the session with that device now; if so, it counts as repaired."""
        self._forget(now)
        peer = (bare, device_id)
        repaired = self._repaired.get(peer)
        if repaired is not None and now - repaired < self._settle:
            return False
        read = self._key_exchange_read.get(peer)
        if read is not None and now - read < self._settle and peer < self._own:
            return False  # a crossing: the device whose address sorts first repairs
        self._remember(self._repaired, peer, now)
        return True

    @staticmethod
    def _remember(
        table: OrderedDict[tuple[str, int], float], peer: tuple[str, int], now: float
    ) -> None:
        table[peer] = now
        table.move_to_end(peer)
        while len(table) > MAX_PEERS:
            table.popitem(last=False)

    def _forget(self, now: float) -> None:
        """What is older than ``settle`` no longer counts: dropped, oldest first."""
        for table in (self._key_exchange_read, self._repaired):
            while table and now - next(iter(table.values())) >= self._settle:
                table.popitem(last=False)

    @property
    def remembered(self) -> int:
        """Peer devices remembered in both tables (tests, the bound)."""
        return len(self._key_exchange_read) + len(self._repaired)
