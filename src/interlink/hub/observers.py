"""What the hub tells whoever listens: the observer hook.

The composition root gives the hub a :class:`HubObservers` when it builds it; nothing subscribes
or patches anything afterwards. The demo's transcript, push notifications to providers and report
forwarding all listen here. Each hook is a tuple of plain callables, called in order on the
routing path, so an empty tuple costs one truth test. A listener must not block or raise: what
it has to do with I/O it schedules itself; an exception is logged and swallowed, never turned
into a refusal of the stanza.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from interlink.xmpp.jid import JID
from interlink.xmpp.stanza import Message, Stanza

if TYPE_CHECKING:
    from interlink.hub.session import Session
    from interlink.storage.policy import Report

log = logging.getLogger("interlink.hub")

StanzaRouted = Callable[["Session", Stanza], None]  # every stanza a bound session sent
OfflineStored = Callable[[JID, Message], None]  # a message stored for an offline account
ReportFiled = Callable[["Report"], None]  # a user's report, stored
# a message queued for an account none of whose sessions is connected, only sessions that wait
# to be resumed (XEP-0198): for pushes to the sleeping device (XEP-0357)
ParkedQueued = Callable[[JID, Message], None]


@dataclass(frozen=True, slots=True)
class HubObservers:
    stanza_routed: tuple[StanzaRouted, ...] = ()
    offline_stored: tuple[OfflineStored, ...] = ()
    report_filed: tuple[ReportFiled, ...] = ()
    parked_queued: tuple[ParkedQueued, ...] = ()

    def merged(self, other: HubObservers) -> HubObservers:
        """Both sets of listeners (the composition root's and, e.g., the demo's)."""
        return HubObservers(
            self.stanza_routed + other.stanza_routed,
            self.offline_stored + other.offline_stored,
            self.report_filed + other.report_filed,
            self.parked_queued + other.parked_queued,
        )


def notify(listeners: tuple[Callable[..., None], ...], *args: object) -> None:
    """Call each listener; one that raises is logged and does not stop the others."""
    for listener in listeners:
        try:
            listener(*args)
        except Exception:
            log.exception("an observer failed", extra={"observer": repr(listener)})
