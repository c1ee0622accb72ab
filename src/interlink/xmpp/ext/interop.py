"""Our ``urn:interlink:interop:0`` extension: a gatekeeper user's choices about third-party chats
and what the hub tells the user about them (docs/protocol.md §2–§4, docs/consent.md).

- ``<settings/>`` (get, set), ``<requests/>`` (get), ``<accept jid=''/>`` (set),
  ``<providers/>`` (get) and ``<alias jid=''/>`` (get: the address a federated user knows the
  asker by, docs/protocol.md §21): iq queries to the user's own account;
- ``<interop/>``: the marker the hub puts on what a gatekeeper user receives from a third party
  (only the hub writes it: it strips any a sender put in);
- ``<activity/>``: the SDK's hint on receipts, displayed markers and chat states it sends
  encrypted, so that the hub can hold them back when the user shares no activity.

And the ``urn:interlink:hints:0`` hint ``<no-push/>`` (docs/protocol.md §4): a message stored
like any other that wakes nobody (the SDK puts it on python-omemo's own protocol messages).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Literal
from xml.etree.ElementTree import Element

from interlink.errors import StanzaError, StanzaErrorCondition
from interlink.xmpp.ext import bad_request

NS = "urn:interlink:interop:0"
SETTINGS = f"{{{NS}}}settings"
REQUESTS = f"{{{NS}}}requests"
REQUEST = f"{{{NS}}}request"
ACCEPT = f"{{{NS}}}accept"
PROVIDERS = f"{{{NS}}}providers"
PROVIDER = f"{{{NS}}}provider"
MARKER = f"{{{NS}}}interop"
ACTIVITY = f"{{{NS}}}activity"  # hint on receipts, markers and chat states sent encrypted
ALIAS = f"{{{NS}}}alias"  # the address a federated user knows the asking user by (issue 15)
QUERIES = frozenset({SETTINGS, REQUESTS, ACCEPT, PROVIDERS})

HINTS_NS = "urn:interlink:hints:0"
NO_PUSH = f"{{{HINTS_NS}}}no-push"

_BOOLS = {"true": True, "1": True, "false": False, "0": False}


class InboxMode(StrEnum):
    SEPARATE = "separate"  # third-party chats in their own inbox (the default)
    COMBINED = "combined"


@dataclass(frozen=True, slots=True)
class InteropSettings:
    """A gatekeeper user's choices about third-party chats. Off until the user turns it on."""

    enabled: bool = False
    providers: frozenset[str] | None = None  # None: every approved provider
    inbox: InboxMode = InboxMode.SEPARATE
    discoverable: bool = False  # found by phone number through /v1/discovery
    share_activity: bool = True  # receipts, displayed markers and typing to third parties

    def allows(self, provider_id: str) -> bool:
        return self.enabled and (self.providers is None or provider_id in self.providers)


@dataclass(frozen=True, slots=True)
class InteropMarker:
    """What the hub attests about a third-party sender (the separate inbox): the provider's id and
    display name, the user-visible id the provider attested, the recipient's inbox mode, and
    whether this is a message request not yet accepted."""

    provider: str
    provider_name: str
    user: str | None
    inbox: str  # "separate" or "combined"
    request: bool = False


@dataclass(frozen=True, slots=True)
class MessageRequest:
    """A conversation a third-party user started that the gatekeeper user has not accepted."""

    jid: str
    messages: int  # accepted from this sender so far
    marker: InteropMarker | None


# -- settings ------------------------------------------------------------------------------------
def _bool(el: Element, name: str, current: bool) -> bool:
    value = el.get(name)
    if value is None:
        return current
    if value not in _BOOLS:
        raise bad_request(f"'{name}' must be true or false")
    return _BOOLS[value]


def settings_element(settings: InteropSettings) -> Element:
    """``<settings/>`` with every field: the hub's answer to a get or a set."""
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
        el.append(Element(PROVIDER, {"id": provider}))
    return el


def settings_change(
    *,
    enabled: bool | None = None,
    providers: Iterable[str] | Literal["all"] | None = None,
    inbox: str | None = None,
    discoverable: bool | None = None,
    share_activity: bool | None = None,
) -> Element:
    """``<settings/>`` for a set: only the fields given (``providers`` is ``"all"`` or ids)."""
    el = Element(SETTINGS)
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
            el.append(Element(PROVIDER, {"id": provider}))
    return el


def apply_settings(
    el: Element, current: InteropSettings, *, max_providers: int | None = None
) -> InteropSettings:
    """``current`` changed by a ``<settings/>`` element: attributes given change, others stay.

    Raises:
        StanzaError: ``bad-request`` naming a malformed attribute or child, or
            ``policy-violation`` for more than ``max_providers`` providers.
    """
    inbox = el.get("inbox")
    if inbox is not None and inbox not in ("separate", "combined"):
        raise bad_request("'inbox' must be separate or combined")
    mode = el.get("providers")
    providers = current.providers
    listed = [child for child in el if child.tag == PROVIDER]
    if mode == "all":
        if listed:
            raise bad_request("providers='all' takes no <provider/> children")
        providers = None
    elif mode == "list":
        ids = [child.get("id", "") for child in listed]
        if any(not i for i in ids):
            raise bad_request("every <provider/> needs an id")
        if max_providers is not None and len(set(ids)) > max_providers:
            raise StanzaError(
                StanzaErrorCondition.POLICY_VIOLATION,
                f"at most {max_providers} providers in the list",
            )
        providers = frozenset(ids)
    elif mode is not None:
        raise bad_request("'providers' must be all or list")
    elif listed:
        raise bad_request("<provider/> children need providers='list'")
    return replace(
        current,
        enabled=_bool(el, "enabled", current.enabled),
        providers=providers,
        inbox=InboxMode(inbox) if inbox is not None else current.inbox,
        discoverable=_bool(el, "discoverable", current.discoverable),
        share_activity=_bool(el, "share-activity", current.share_activity),
    )


def parse_settings(el: Element) -> InteropSettings:
    """The settings a ``<settings/>`` answer states (fields it leaves out take the defaults).

    Raises:
        StanzaError: ``bad-request`` if the element is malformed.
    """
    return apply_settings(el, InteropSettings())


# -- the interop marker ----------------------------------------------------------------------------
def marker_element(marker: InteropMarker) -> Element:
    attrs = {
        "provider": marker.provider,
        "provider-name": marker.provider_name,
        "inbox": str(marker.inbox),
    }
    if marker.user:
        attrs["user"] = marker.user
    if marker.request:
        attrs["request"] = "true"
    return Element(MARKER, attrs)


def parse_marker(el: Element) -> InteropMarker:
    return InteropMarker(
        provider=el.get("provider", ""),
        provider_name=el.get("provider-name", ""),
        user=el.get("user"),
        inbox=el.get("inbox", "separate"),
        request=el.get("request") == "true",
    )


# -- message requests, accept, providers -----------------------------------------------------------
def requests_element(pending: list[MessageRequest]) -> Element:
    el = Element(REQUESTS)
    for request in pending:
        item = Element(REQUEST, {"jid": request.jid, "messages": str(request.messages)})
        if request.marker is not None:
            item.append(marker_element(request.marker))
        el.append(item)
    return el


def parse_requests(el: Element | None) -> list[MessageRequest]:
    found = []
    for item in [] if el is None else el.findall(REQUEST):
        marker = item.find(MARKER)
        found.append(
            MessageRequest(
                item.get("jid", ""),
                int(item.get("messages", "0")),
                None if marker is None else parse_marker(marker),
            )
        )
    return found


def accept_element(jid: str) -> Element:
    return Element(ACCEPT, {"jid": jid})


def providers_element(approved: dict[str, str]) -> Element:
    el = Element(PROVIDERS)
    for provider_id, name in sorted(approved.items()):
        el.append(Element(PROVIDER, {"id": provider_id, "name": name}))
    return el


def parse_providers(el: Element | None) -> dict[str, str]:
    items = [] if el is None else el.findall(PROVIDER)
    return {p.get("id", ""): p.get("name", "") for p in items}


def alias_query(peer: str) -> Element:
    """``<alias jid='peer'/>`` (iq get to one's own account): the address a federated user
    knows the asking gatekeeper user by (docs/protocol.md, issue 15)."""
    return Element(ALIAS, {"jid": peer})


def alias_answer(peer: str, alias: str) -> Element:
    return Element(ALIAS, {"jid": peer, "alias": alias})


def parse_alias_answer(el: Element | None) -> str:
    """The ``alias`` of an answer to :func:`alias_query`. Raises: StanzaError (``bad-request``:
    no alias in it)."""
    alias = None if el is None or el.tag != ALIAS else el.get("alias")
    if not alias or "@" not in alias:
        raise bad_request("the answer names no alias")
    return alias
