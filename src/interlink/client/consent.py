"""The SDK's side of the consent and abuse rules: interop settings, message requests, providers,
XEP-0191 blocking with XEP-0377 reports, and reading the hub's interop marker. The hub enforces
every rule; this module only asks and reads (see docs/protocol.md)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, Literal
from xml.etree.ElementTree import Element

import slixmpp
from slixmpp.exceptions import IqError, IqTimeout
from slixmpp.stanza.error import Error

from interlink.client.errors import ClientError
from interlink.client.events import TextMessage
from interlink.errors import StanzaError
from interlink.xmpp.addressing import domain_of, interop_provider
from interlink.xmpp.ext import blocking, interop, reporting
from interlink.xmpp.ext.interop import InteropMarker, InteropSettings
from interlink.xmpp.ext.interop import MessageRequest as MessageRequest

__all__ = ["Consent", "ConsentError", "MessageRequest", "marker_of"]

# slixmpp knows the stanza error conditions of RFC 3920; RFC 6120 added policy-violation, which
# the hub's rules answer with. Without it slixmpp fails to read such errors at all.
Error.conditions.add("policy-violation")


class ConsentError(ClientError):
    """The hub refused a request; ``condition`` is the RFC 6120 stanza error condition (or
    ``timeout`` when it did not answer, ``bad-response`` when its answer made no sense)."""

    def __init__(self, condition: str, text: str) -> None:
        super().__init__(f"{condition}: {text}" if text else condition)
        self.condition = condition
        self.text = text


def marker_of(
    stanza_xml: Element, sender_bare: str, own_bare: str, *, federated: bool = False
) -> InteropMarker | None:
    """The hub's interop marker on a stanza, if it comes from a third-party user of our hub.
    Only the hub writes markers (it strips any a sender put in), and only on stanzas from
    ``<opaque>@<provider>.interop.<our domain>`` or (``federated``: the hub gave this account
    an alias towards the sender's provider) a federated provider's user, so a marker on
    anything else is ignored."""
    el = stanza_xml.find(interop.MARKER)
    plug_and_play = interop_provider(domain_of(sender_bare), domain_of(own_bare)) is not None
    if el is None or not (plug_and_play or federated):
        return None
    return interop.parse_marker(el)


async def query(
    xmpp: slixmpp.ClientXMPP, itype: Literal["get", "set"], payload: Element, wait: float
) -> Element | None:
    """Send an iq to our own account and return the result's payload (``None`` if empty).

    Raises:
        ConsentError: with the hub's condition and text, or ``timeout``.
    """
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
    if el is None or el.tag != interop.SETTINGS:
        raise ConsentError("bad-response", "the hub sent no settings")
    try:
        return interop.parse_settings(el)
    except StanzaError as exc:
        raise ConsentError("bad-response", exc.text) from None


def block_request(
    jid: str, *, report: str | None, text: str, attach: Sequence[TextMessage]
) -> Element:
    """``<block/>`` for ``jid``, with an XEP-0377 report if ``report`` ("spam" or "abuse") is set,
    attaching the chosen messages as XEP-0297 forwarded copies with the text the client shows."""
    block = Element(blocking.BLOCK)
    item = Element(blocking.ITEM, {"jid": jid})
    block.append(item)
    if report is None:
        return block
    messages = tuple(
        reporting.ForwardedMessage(
            message.message_id or "",
            "" if message.sent_at is None else reporting.stamp(message.sent_at),
            message.text,
            message.sender,
        )
        for message in attach
    )
    item.append(
        reporting.report_element(reporting.SpamReport(reporting.reason_uri(report), text, messages))
    )
    return block


class Consent:
    """``InterlinkClient``'s calls about the rules, each one iq to this account. Built once per
    client with ``stream()``, the connected slixmpp stream (raises :class:`NotConnected` before
    ``connect()``), and ``timeout``, how long the hub's answer is awaited."""

    def __init__(self, *, stream: Callable[[], slixmpp.ClientXMPP], timeout: float) -> None:
        self._stream = stream
        self._timeout = timeout

    async def _query(self, itype: Literal["get", "set"], payload: Element) -> Element | None:
        return await query(self._stream(), itype, payload, self._timeout)

    async def interop_settings(self) -> InteropSettings:
        """This gatekeeper user's third-party chat settings, as the hub keeps them.

        Raises:
            NotConnected: before ``connect()``.
            ConsentError: the hub refused (its condition and text), did not answer in time
                (``timeout``) or answered nonsense (``bad-response``).
        """
        return settings_of(await self._query("get", Element(interop.SETTINGS)))

    async def set_interop_settings(
        self,
        *,
        enabled: bool | None = None,
        providers: Iterable[str] | Literal["all"] | None = None,
        inbox: str | None = None,
        discoverable: bool | None = None,
        share_activity: bool | None = None,
    ) -> InteropSettings:
        """Change the settings given (the others stay); returns them as the hub now has them.
        ``providers``: ``"all"`` (every approved provider) or a list of provider ids.

        Raises:
            NotConnected: before ``connect()``.
            ConsentError: the hub refused (its condition and text), did not answer in time
                (``timeout``) or answered nonsense (``bad-response``).
        """
        request = interop.settings_change(
            enabled=enabled,
            providers=providers,
            inbox=inbox,
            discoverable=discoverable,
            share_activity=share_activity,
        )
        return settings_of(await self._query("set", request))

    async def approved_providers(self) -> dict[str, str]:
        """The providers whose users can be reached: id -> display name.

        Raises:
            NotConnected: before ``connect()``.
            ConsentError: the hub refused (its condition and text), did not answer in time
                (``timeout``) or answered nonsense (``bad-response``).
        """
        return interop.parse_providers(await self._query("get", Element(interop.PROVIDERS)))

    async def message_requests(self) -> list[MessageRequest]:
        """The open message requests: third-party users who wrote and are not accepted yet.

        Raises:
            NotConnected: before ``connect()``.
            ConsentError: the hub refused (its condition and text), did not answer in time
                (``timeout``) or answered nonsense (``bad-response``).
        """
        return interop.parse_requests(await self._query("get", Element(interop.REQUESTS)))

    async def accept_request(self, jid: str) -> None:
        """Accept ``jid``'s message request: replies, receipts and presence may go back.

        Raises:
            NotConnected: before ``connect()``.
            ConsentError: the hub refused (its condition and text), did not answer in time
                (``timeout``) or answered nonsense (``bad-response``).
        """
        await self._query("set", interop.accept_element(slixmpp.JID(jid).bare))

    async def block(
        self,
        jid: str,
        *,
        report: str | None = None,
        text: str = "",
        attach: Sequence[TextMessage] = (),
    ) -> None:
        """Block ``jid`` (a user, or a provider's domain ``<provider>.interop.<hub>``); with
        ``report`` ("spam" or "abuse") also report it, attaching the chosen messages.

        Raises:
            ValueError: ``report`` is neither "spam" nor "abuse".
            NotConnected: before ``connect()``.
            ConsentError: the hub refused (e.g. ``policy-violation`` for a full block list or too
                many reports), or did not answer in time.
        """
        request = block_request(jid, report=report, text=text, attach=attach)
        await self._query("set", request)

    async def unblock(self, *jids: str) -> None:
        """Unblock ``jids``; with none, unblock everyone.

        Raises:
            NotConnected: before ``connect()``.
            ConsentError: the hub refused (its condition and text), did not answer in time
                (``timeout``) or answered nonsense (``bad-response``).
        """
        await self._query("set", blocking.blocklist_element(blocking.UNBLOCK, jids))

    async def blocklist(self) -> list[str]:
        """The JIDs and domains this account blocks (XEP-0191).

        Raises:
            NotConnected: before ``connect()``.
            ConsentError: the hub refused (its condition and text), did not answer in time
                (``timeout``) or answered nonsense (``bad-response``).
        """
        return blocking.parse_blocklist(await self._query("get", Element(blocking.BLOCKLIST)))
