"""The XML of the consent and abuse rules: our ``urn:interlink:interop:0`` namespace (settings,
message requests, the interop marker, the activity hint), XEP-0191 blocking and XEP-0377 reports.
Pure functions from elements to values and back; every bad input is a ``bad-request`` or
``jid-malformed`` stanza error saying what is wrong. See docs/protocol.md."""

from __future__ import annotations

from dataclasses import replace
from xml.etree.ElementTree import Element

from interlink.errors import StanzaError, StanzaErrorCondition
from interlink.storage.policy import AttachedMessage, Conversation
from interlink.xmpp.ext.interop import InboxMode, InteropSettings
from interlink.xmpp.jid import JID, InvalidJID

INTEROP = "urn:interlink:interop:0"
SETTINGS = f"{{{INTEROP}}}settings"
REQUESTS = f"{{{INTEROP}}}requests"
ACCEPT = f"{{{INTEROP}}}accept"
PROVIDERS = f"{{{INTEROP}}}providers"
MARKER = f"{{{INTEROP}}}interop"
ACTIVITY = f"{{{INTEROP}}}activity"  # hint on receipts, markers and chat states sent encrypted
OWN_QUERIES = frozenset({SETTINGS, REQUESTS, ACCEPT, PROVIDERS})

BLOCKING = "urn:xmpp:blocking"
BLOCKLIST = f"{{{BLOCKING}}}blocklist"
BLOCK = f"{{{BLOCKING}}}block"
UNBLOCK = f"{{{BLOCKING}}}unblock"
ITEM = f"{{{BLOCKING}}}item"
BLOCKED_ERROR = "{urn:xmpp:blocking:errors}blocked"
BLOCKING_QUERIES = frozenset({BLOCKLIST, BLOCK, UNBLOCK})

REPORTING = "urn:xmpp:reporting:1"
REPORT = f"{{{REPORTING}}}report"
REASONS = frozenset({"urn:xmpp:reporting:spam", "urn:xmpp:reporting:abuse"})
FORWARDED = "{urn:xmpp:forward:0}forwarded"
DELAY = "{urn:xmpp:delay}delay"
CLIENT_MESSAGE = "{jabber:client}message"
CLIENT_BODY = "{jabber:client}body"

_BOOLS = {"true": True, "1": True, "false": False, "0": False}


def _bad(text: str) -> StanzaError:
    return StanzaError(StanzaErrorCondition.BAD_REQUEST, text)


def _bool(el: Element, name: str, current: bool) -> bool:
    value = el.get(name)
    if value is None:
        return current
    if value not in _BOOLS:
        raise _bad(f"'{name}' must be true or false")
    return _BOOLS[value]


def settings_element(settings: InteropSettings) -> Element:
    el = Element(
        SETTINGS,
        {
            "enabled": str(settings.enabled).lower(),
            "providers": "all" if settings.providers is None else "list",
            "inbox": str(settings.inbox),
            "discoverable": str(settings.discoverable).lower(),
            "share-activity": str(settings.share_activity).lower(),
        },
    )
    for provider in sorted(settings.providers or ()):
        el.append(Element(f"{{{INTEROP}}}provider", {"id": provider}))
    return el


def apply_settings(el: Element, current: InteropSettings, *, max_providers: int) -> InteropSettings:
    """``current`` changed by a ``<settings/>`` set: attributes given change, others stay."""
    inbox = el.get("inbox")
    if inbox is not None and inbox not in ("separate", "combined"):
        raise _bad("'inbox' must be separate or combined")
    mode = el.get("providers")
    providers = current.providers
    listed = [child for child in el if child.tag == f"{{{INTEROP}}}provider"]
    if mode == "all":
        if listed:
            raise _bad("providers='all' takes no <provider/> children")
        providers = None
    elif mode == "list":
        ids = [child.get("id", "") for child in listed]
        if any(not i for i in ids):
            raise _bad("every <provider/> needs an id")
        if len(set(ids)) > max_providers:
            raise StanzaError(
                StanzaErrorCondition.POLICY_VIOLATION,
                f"at most {max_providers} providers in the list",
            )
        providers = frozenset(ids)
    elif mode is not None:
        raise _bad("'providers' must be all or list")
    elif listed:
        raise _bad("<provider/> children need providers='list'")
    return replace(
        current,
        enabled=_bool(el, "enabled", current.enabled),
        providers=providers,
        inbox=InboxMode(inbox) if inbox is not None else current.inbox,
        discoverable=_bool(el, "discoverable", current.discoverable),
        share_activity=_bool(el, "share-activity", current.share_activity),
    )


def requests_element(pending: list[Conversation], markers: dict[str, Element]) -> Element:
    el = Element(REQUESTS)
    for conversation in pending:
        item = Element(
            f"{{{INTEROP}}}request",
            {"jid": conversation.peer, "messages": str(conversation.messages)},
        )
        marker = markers.get(conversation.peer)
        if marker is not None:
            item.append(marker)
        el.append(item)
    return el


def providers_element(approved: dict[str, str]) -> Element:
    el = Element(PROVIDERS)
    for provider_id, name in sorted(approved.items()):
        el.append(Element(f"{{{INTEROP}}}provider", {"id": provider_id, "name": name}))
    return el


def marker(
    provider_id: str, provider_name: str, user_id: str | None, inbox: InboxMode, request: bool
) -> Element:
    """The interop marker the hub puts on what a gatekeeper user receives from a third party."""
    attrs = {"provider": provider_id, "provider-name": provider_name, "inbox": str(inbox)}
    if user_id:
        attrs["user"] = user_id
    if request:
        attrs["request"] = "true"
    return Element(MARKER, attrs)


def jid_attr(el: Element, what: str) -> JID:
    value = el.get("jid")
    if not value:
        raise _bad(f"{what} needs a jid")
    try:
        return JID.parse(value)
    except InvalidJID as exc:
        raise StanzaError(StanzaErrorCondition.JID_MALFORMED, f"{value!r}: {exc}") from None


def block_items(el: Element, *, allow_empty: bool) -> list[tuple[JID, Element]]:
    items = [(jid_attr(child, "<item/>"), child) for child in el if child.tag == ITEM]
    if not items and not allow_empty:
        raise _bad("<block/> needs at least one <item/>")
    return items


def blocklist_element(tag: str, jids: list[str]) -> Element:
    el = Element(tag)
    for jid in sorted(jids):
        el.append(Element(ITEM, {"jid": jid}))
    return el


def parse_report(
    item: Element, *, max_messages: int, max_text: int
) -> tuple[str, str, list[AttachedMessage]] | None:
    """The XEP-0377 report inside a block ``<item/>``: reason, text and the messages the reporter
    attached (``<forwarded/>`` XEP-0297 copies, as its client decrypted them); ``None`` if none."""
    report = item.find(REPORT)
    if report is None:
        return None
    reason = report.get("reason", "")
    if reason not in REASONS:
        raise _bad(f"report reason must be one of {sorted(REASONS)}")
    text_el = report.find(f"{{{REPORTING}}}text")
    text = (text_el.text or "") if text_el is not None else ""
    if len(text) > max_text:
        raise StanzaError(
            StanzaErrorCondition.POLICY_VIOLATION, f"report text over {max_text} characters"
        )
    messages: list[AttachedMessage] = []
    for forwarded in report.findall(FORWARDED):
        if len(messages) == max_messages:
            raise StanzaError(
                StanzaErrorCondition.POLICY_VIOLATION,
                f"at most {max_messages} messages can be attached to a report",
            )
        message = forwarded.find(CLIENT_MESSAGE)
        body = message.find(CLIENT_BODY) if message is not None else None
        if message is None or body is None:
            raise _bad("each <forwarded/> needs a <message/> with a <body/>")
        if len(body.text or "") > max_text:
            raise StanzaError(
                StanzaErrorCondition.POLICY_VIOLATION,
                f"an attached message is over {max_text} characters",
            )
        delay = forwarded.find(DELAY)
        stamp = delay.get("stamp", "") if delay is not None else ""
        messages.append(AttachedMessage(message.get("id", ""), stamp, body.text or ""))
    return reason, text, messages
