"""XEP-0203 Delayed Delivery: the ``<delay xmlns='urn:xmpp:delay' stamp='…'/>`` a server puts on
a stanza it stored, carrying when it was received (§3), as an XEP-0082 date-time in UTC."""

from __future__ import annotations

import datetime
from xml.etree.ElementTree import Element

from interlink.xmpp import ns

DELAY = f"{{{ns.DELAY}}}delay"


def format_stamp(at: float) -> str:
    """``at`` (Unix seconds) as an XEP-0082 date-time in UTC with milliseconds."""
    moment = datetime.datetime.fromtimestamp(at, datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_stamp(text: str) -> float | None:
    """Unix seconds of an XEP-0082 date-time (``Z`` or an offset; fractions allowed), or None
    when it is not one: a bad stamp is ignored, not trusted."""
    try:
        moment = datetime.datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None  # §3: the stamp MUST be UTC with its zone given
    return moment.timestamp()


def delayed_at(stanza: Element) -> float | None:
    """When the server first received ``stanza``, from its ``<delay/>``; None without one."""
    delay = stanza.find(DELAY)
    if delay is None:
        return None
    return parse_stamp(delay.get("stamp", ""))
