"""The SDK's XMPP side: python-omemo's PEP hooks over slixmpp's pubsub plugin, and the matcher
for encrypted message stanzas (slixmpp's message event only covers those with a body)."""

from __future__ import annotations

from typing import Any
from xml.etree.ElementTree import Element

import slixmpp
from slixmpp.exceptions import IqError
from slixmpp.xmlstream.matcher.base import MatcherBase

from interlink.xmpp import ns
from interlink.xmpp.ext.interop import NO_PUSH

_HINTS = ns.HINTS  # XEP-0334
_PUBLISH_OPTIONS = "http://jabber.org/protocol/pubsub#publish-options"
# Answers that mean "nothing readable there" for one node: servers differ (Prosody answers
# forbidden for a node that does not exist), and one namespace's refusal must not stop the other.
NO_SUCH_ITEM = frozenset(("item-not-found", "forbidden", "not-authorized"))


def first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


class EncryptedMatcher(MatcherBase):
    """Matches message stanzas carrying an OMEMO ``<encrypted/>`` of a namespace we use."""

    def __init__(self, namespaces: list[str]) -> None:
        super().__init__(namespaces)
        self._tags = [f"{{{ns}}}encrypted" for ns in namespaces]

    def match(self, xml: Any) -> bool:
        element = xml.xml
        return bool(element.tag == "{jabber:client}message") and any(
            element.find(tag) is not None for tag in self._tags
        )


class SlixmppPep:
    """The :class:`~interlink.client.omemo_session.PepPort` over slixmpp's pubsub plugin."""

    def __init__(self, xmpp: slixmpp.ClientXMPP, timeout: float) -> None:
        self._xmpp = xmpp
        self._timeout = timeout
        self._own = slixmpp.JID(xmpp.boundjid.bare)

    def _plugin(self, name: str) -> Any:
        plugins: Any = self._xmpp.plugin  # slixmpp's plugin registry is typed by literal names
        return plugins[name]

    async def publish(self, node: str, item_id: str, payload: Element, *, max_items: str) -> None:
        form = self._plugin("xep_0004").make_form(ftype="submit")
        form.add_field(var="FORM_TYPE", ftype="hidden", value=_PUBLISH_OPTIONS)
        form.add_field(var="pubsub#access_model", value="open")
        form.add_field(var="pubsub#max_items", value=max_items)
        await self._plugin("xep_0060").publish(
            self._own, node, id=item_id, payload=payload, options=form, timeout=self._timeout
        )

    async def retract(self, node: str, item_id: str) -> None:
        await self._plugin("xep_0060").retract(
            self._own, node, item_id, notify=True, timeout=self._timeout
        )

    async def fetch(self, owner: str, node: str, item_id: str | None) -> Element | None:
        pubsub = self._plugin("xep_0060")
        try:
            if item_id is None:
                iq = await pubsub.get_items(
                    slixmpp.JID(owner), node, max_items=1, timeout=self._timeout
                )
            else:
                iq = await pubsub.get_items(
                    slixmpp.JID(owner), node, item_ids=[item_id], timeout=self._timeout
                )
        except IqError as exc:
            if exc.condition in NO_SUCH_ITEM:
                return None
            raise
        for item in iq["pubsub"]["items"]:
            payload: Element | None = item["payload"]
            if payload is not None:
                return payload
        return None

    async def subscribe(self, owner: str, node: str) -> None:
        """Subscribe this account (bare JID) to ``owner``'s ``node``. Raises slixmpp's
        ``IqError``/``IqTimeout`` when refused or unanswered."""
        await self._plugin("xep_0060").subscribe(
            slixmpp.JID(owner), node, subscribee=self._own, timeout=self._timeout
        )

    async def send_encrypted(self, to: str, encrypted: Element) -> None:
        stanza = self._xmpp.make_message(mto=slixmpp.JID(to), mtype="chat")
        stanza.xml.append(encrypted)
        stanza.xml.append(Element(f"{{{_HINTS}}}store"))
        # python-omemo's own protocol messages: stored for the peer, but no reason to wake it.
        stanza.xml.append(Element(NO_PUSH))
        stanza.send()
