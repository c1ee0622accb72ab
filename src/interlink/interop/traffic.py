"""Messages across the interop boundary, counted per provider and direction (for the metrics
and the operator console): a hub observer of every routed stanza, O(1) per stanza."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from interlink.hub.session import Session
from interlink.xmpp.jid import JID
from interlink.xmpp.stanza import Message, MessageType, Stanza

FROM_PROVIDER = "from-provider"  # a third-party user sent it
TO_PROVIDER = "to-provider"  # sent to a third-party user


class ProviderTraffic:
    def __init__(self, provider_of: Callable[[JID], str | None]) -> None:
        self._provider_of = provider_of
        self.messages: Counter[tuple[str, str]] = Counter()  # (provider, direction) -> count

    def observe(self, session: Session, stanza: Stanza) -> None:
        """The hub's ``stanza_routed`` observer: count a message (not an error) a third-party
        user sent, or one sent to a third-party user."""
        if not isinstance(stanza, Message) or stanza.type is MessageType.ERROR:
            return
        sender = self._provider_of(session.jid)
        if sender is not None:
            self.messages[(sender, FROM_PROVIDER)] += 1
        if stanza.to is not None:
            receiver = self._provider_of(stanza.to)
            if receiver is not None:
                self.messages[(receiver, TO_PROVIDER)] += 1

    def per_provider(self) -> dict[str, int]:
        """Messages either way, per provider."""
        totals: Counter[str] = Counter()
        for (provider, _direction), count in self.messages.items():
            totals[provider] += count
        return dict(totals)
