"""The SDK's side of the consent and abuse rules: interop settings, message requests, providers,
XEP-0191 blocking with XEP-0377 reports, and reading the hub's interop marker. The hub enforces
every rule; this module only asks and reads (see docs/protocol.md)."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal
from xml.etree.ElementTree import Element

import slixmpp
from slixmpp.exceptions import IqError, IqTimeout
from slixmpp.stanza.error import Error

from interlink.client.errors import ClientError
from interlink.client.events import InteropMarker, TextMessage
from interlink.hub.policy import wire
from interlink.xmpp.ext.interop import InteropSettings

__all__ = ["ConsentCalls", "ConsentError", "MessageRequest", "marker_of"]

# slixmpp knows the stanza error conditions of RFC 3920; RFC 6120 added policy-violation, which
# the hub's rules answer with. Without it slixmpp fails to read such errors at all.
Error.conditions.add("policy-violation")


class ConsentError(Exception):
    """The hub refused a request; ``condition`` is the RFC 6120 stanza error condition."""

    def __init__(self, condition: str, text: str) -> None:
        super().__init__(f"{condition}: {text}" if text else condition)
        self.condition = condition
        self.text = text


@dataclass(frozen=True, slots=True)
class MessageRequest:
    jid: str
    messages: int  # accepted from this sender so far
    marker: InteropMarker | None


def marker_of(stanza_xml: Element, sender_bare: str, own_bare: str) -> InteropMarker | None:
    """The hub's interop marker on a stanza, if it comes from a third-party user of our hub.
    Only the hub writes markers (it strips any a sender put in), and only on stanzas from
    ``<opaque>@<provider>.interop.<our domain>``, so a marker on anything else is ignored."""
    el = stanza_xml.find(wire.MARKER)
    own_domain = own_bare.rpartition("@")[2]
    if el is None or not sender_bare.rpartition("@")[2].endswith(".interop." + own_domain):
        return None
    return _marker(el)


def _marker(el: Element) -> InteropMarker:
    return InteropMarker(
        provider=el.get("provider", ""),
        provider_name=el.get("provider-name", ""),
        user=el.get("user"),
        inbox=el.get("inbox", "separate"),
        request=el.get("request") == "true",
    )


async def query(
    xmpp: slixmpp.ClientXMPP, itype: Literal["get", "set"], payload: Element, wait: float
) -> Element | None:
    """Send an iq to our own account and return the result's payload (``None`` if empty);
    raises :class:`ConsentError` with the hub's condition and text."""
    iq: Any = xmpp.make_iq(ito=None, itype=itype)
    iq.xml.append(payload)
    try:
        result = await iq.send(timeout=wait)
    except IqError as exc:
        error = exc.iq["error"]
        raise ConsentError(error["condition"], error["text"]) from None
    except IqTimeout:
        raise ConsentError("timeout", "the hub did not answer") from None
    children = list(result.xml)
    return children[0] if children else None


def settings_of(el: Element | None) -> InteropSettings:
    if el is None or el.tag != wire.SETTINGS:
        raise ConsentError("bad-response", "the hub sent no settings")
    return wire.apply_settings(el, InteropSettings(), max_providers=1 << 30)


def settings_request(
    *,
    enabled: bool | None,
    providers: Iterable[str] | Literal["all"] | None,
    inbox: str | None,
    discoverable: bool | None,
    share_activity: bool | None,
) -> Element:
    el = Element(wire.SETTINGS)
    for name, value in (
        ("enabled", enabled),
        ("discoverable", discoverable),
        ("share-activity", share_activity),
    ):
        if value is not None:
            el.set(name, "true" if value else "false")
    if inbox is not None:
        el.set("inbox", inbox)
    if providers == "all":
        el.set("providers", "all")
    elif providers is not None:
        el.set("providers", "list")
        for provider in providers:
            el.append(Element(f"{{{wire.INTEROP}}}provider", {"id": provider}))
    return el


def requests_of(el: Element | None) -> list[MessageRequest]:
    found = []
    for item in [] if el is None else el.findall(f"{{{wire.INTEROP}}}request"):
        marker = item.find(wire.MARKER)
        found.append(
            MessageRequest(
                item.get("jid", ""),
                int(item.get("messages", "0")),
                None if marker is None else _marker(marker),
            )
        )
    return found


def providers_of(el: Element | None) -> dict[str, str]:
    items = [] if el is None else el.findall(f"{{{wire.INTEROP}}}provider")
    return {p.get("id", ""): p.get("name", "") for p in items}


def blocklist_of(el: Element | None) -> list[str]:
    return [] if el is None else [i.get("jid", "") for i in el.findall(wire.ITEM)]


def block_request(
    jid: str, *, report: str | None, text: str, attach: Sequence[TextMessage]
) -> Element:
    """``<block/>`` for ``jid``, with an XEP-0377 report if ``report`` ("spam" or "abuse") is set,
    attaching the chosen messages as XEP-0297 forwarded copies with the text the client shows."""
    block = Element(wire.BLOCK)
    item = Element(wire.ITEM, {"jid": jid})
    block.append(item)
    if report is None:
        return block
    if report not in ("spam", "abuse"):
        raise ValueError("report must be 'spam' or 'abuse'")
    el = Element(wire.REPORT, {"reason": f"urn:xmpp:reporting:{report}"})
    item.append(el)
    if text:
        text_el = Element(f"{{{wire.REPORTING}}}text")
        text_el.text = text
        el.append(text_el)
    for message in attach:
        forwarded = Element(wire.FORWARDED)
        if message.sent_at is not None:
            stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(message.sent_at))
            forwarded.append(Element(wire.DELAY, {"stamp": stamp}))
        msg = Element(wire.CLIENT_MESSAGE, {"from": message.sender, "id": message.message_id or ""})
        body = Element(wire.CLIENT_BODY)
        body.text = message.text
        msg.append(body)
        forwarded.append(msg)
        el.append(forwarded)
    return block


def unblock_request(jids: Iterable[str]) -> Element:
    el = Element(wire.UNBLOCK)
    for jid in jids:
        el.append(Element(wire.ITEM, {"jid": jid}))
    return el


class ConsentCalls:
    """``InterlinkClient``'s calls about the rules (a mixin: it needs the connection)."""

    _xmpp: slixmpp.ClientXMPP | None
    _timeout: float

    async def _query(self, itype: Literal["get", "set"], payload: Element) -> Element | None:
        if self._xmpp is None:
            raise ClientError("not connected")
        return await query(self._xmpp, itype, payload, self._timeout)

    async def interop_settings(self) -> InteropSettings:
        """This gatekeeper user's third-party chat settings, as the hub keeps them."""
        return settings_of(await self._query("get", Element(wire.SETTINGS)))

    async def set_interop_settings(
        self,
        *,
        enabled: bool | None = None,
        providers: Iterable[str] | Literal["all"] | None = None,
        inbox: str | None = None,
        discoverable: bool | None = None,
        share_activity: bool | None = None,
    ) -> InteropSettings:
        """Change the settings given (the others stay); returns them as the hub now has them."""
        request = settings_request(
            enabled=enabled,
            providers=providers,
            inbox=inbox,
            discoverable=discoverable,
            share_activity=share_activity,
        )
        return settings_of(await self._query("set", request))

    async def approved_providers(self) -> dict[str, str]:
        """The providers whose users can be reached: id -> display name."""
        return providers_of(await self._query("get", Element(wire.PROVIDERS)))

    async def message_requests(self) -> list[MessageRequest]:
        return requests_of(await self._query("get", Element(wire.REQUESTS)))

    async def accept_request(self, jid: str) -> None:
        """Accept ``jid``'s message request: replies, receipts and presence may go back."""
        await self._query("set", Element(wire.ACCEPT, {"jid": slixmpp.JID(jid).bare}))

    async def block(
        self,
        jid: str,
        *,
        report: str | None = None,
        text: str = "",
        attach: Sequence[TextMessage] = (),
    ) -> None:
        """Block ``jid`` (a user, or a provider's domain ``<provider>.interop.<hub>``); with
        ``report`` ("spam" or "abuse") also report it, attaching the chosen messages."""
        request = block_request(jid, report=report, text=text, attach=attach)
        await self._query("set", request)

    async def unblock(self, *jids: str) -> None:
        """Unblock ``jids``; with none, unblock everyone."""
        await self._query("set", unblock_request(jids))

    async def blocklist(self) -> list[str]:
        return blocklist_of(await self._query("get", Element(wire.BLOCKLIST)))
