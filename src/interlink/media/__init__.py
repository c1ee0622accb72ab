"""Media: XEP-0363 upload slots and the file store behind them, shared by the hub and the
provider kit (:mod:`.store`), with the hub's XMPP slot service (:mod:`.upload`). The HTTP routes
are in :mod:`interlink.net.media_api`."""

from __future__ import annotations

from interlink.media.errors import MediaError
from interlink.media.model import MediaLimits, Slot, SlotUrls, slot_urls
from interlink.media.policy import ContentTypePolicy
from interlink.media.store import Download, MediaStore

__all__ = [
    "ContentTypePolicy",
    "Download",
    "MediaError",
    "MediaLimits",
    "MediaStore",
    "Slot",
    "SlotUrls",
    "slot_urls",
]
