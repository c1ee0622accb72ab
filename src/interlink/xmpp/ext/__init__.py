"""Protocol extensions shared by the hub and the SDK: one module per extension, holding its
namespaces, its data model and the functions that build and read its elements. Pure code, no
I/O; both sides import from here so that a wire format lives in exactly one place.

- :mod:`~interlink.xmpp.ext.interop`: our ``urn:interlink:interop:0`` (settings, message
  requests, accept, providers, the interop marker, the activity hint) and the
  ``urn:interlink:hints:0`` no-push hint;
- :mod:`~interlink.xmpp.ext.blocking`: XEP-0191 blocking;
- :mod:`~interlink.xmpp.ext.reporting`: XEP-0377 spam reporting with XEP-0297 attachments;
- :mod:`~interlink.xmpp.ext.media_tokens`: our ``urn:interlink:media:0`` (media-proxy tokens and
  the media kind hint);
- :mod:`~interlink.xmpp.ext.http_upload`: XEP-0363 slot requests and slots;
- :mod:`~interlink.xmpp.ext.private`: XEP-0049 private XML storage;
- :mod:`~interlink.xmpp.ext.vcard`: XEP-0054 vCards and their view across the interop boundary.

Every namespace is listed in docs/protocol.md. What the hub is sent is checked here; a bad
element is a ``bad-request`` (or ``jid-malformed``) :class:`~interlink.errors.StanzaError` saying
what is wrong."""

from __future__ import annotations

from xml.etree.ElementTree import Element

from interlink.errors import StanzaError, StanzaErrorCondition
from interlink.xmpp.jid import JID, InvalidJID


def bad_request(text: str) -> StanzaError:
    return StanzaError(StanzaErrorCondition.BAD_REQUEST, text)


def jid_attr(el: Element, what: str) -> JID:
    """The ``jid`` attribute of ``el`` (``what`` names it in the error)."""
    value = el.get("jid")
    if not value:
        raise bad_request(f"{what} needs a jid")
    try:
        return JID.parse(value)
    except InvalidJID as exc:
        raise StanzaError(StanzaErrorCondition.JID_MALFORMED, f"{value!r}: {exc}") from None
