"""XEP-0313 Message Archive Management (``urn:xmpp:mam:2``, with ``#extended``) and XEP-0359
Unique and Stable Stanza IDs (``urn:xmpp:sid:0``): the wire side, no storage, no clock.

- §4.1: a query is an iq set with ``<query queryid?>`` holding a XEP-0004 form
  (``FORM_TYPE`` ``urn:xmpp:mam:2``; ``with``, ``start``, ``end``; with ``#extended`` also
  ``before-id``, ``after-id``, ``ids``) and a XEP-0059 ``<set/>``; ``<flip-page/>`` (#extended)
  delivers the page's messages last first. An iq get is answered with the form's fields (§4.1.1).
- §4.2: each match goes to the querying resource as
  ``<message><result queryid id><forwarded><delay stamp/><message/></forwarded></result>``;
  then the iq result carries ``<fin complete?>`` with the result set (§4.3).
- §4.1.2: ``with`` a bare JID matches every resource of that contact; a full JID, that resource.
- §6: ``<prefs default='always|never|roster'>`` with ``<always/>``/``<never/>`` JID lists.
- §7 (#extended metadata): ``<metadata/>`` answers the archive's first and last entry.
- XEP-0359 §3: the archiving entity stamps ``<stanza-id by id/>``; §5 a client cannot send one
  ``by`` an entity of this server (it is removed), while ``<origin-id/>`` is the sender's and kept.

What is worth archiving (§5.1.1, XEP-0334): chat and normal messages with a body, an OMEMO
payload (``urn:xmpp:omemo:2`` or the legacy ``eu.siacs.conversations.axolotl``) or a ``<store/>``
hint; never one hinted ``<no-store/>`` or ``<no-permanent-store/>``; chat states and receipts
alone are not archived. A room's archive (§5.1.2) keeps its ``groupchat`` messages of that
kind and its subject changes, once each, never private messages between occupants.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from xml.etree.ElementTree import Element, SubElement

from interlink.errors import StanzaError, StanzaErrorCondition
from interlink.xmpp import forms, ns
from interlink.xmpp.ext import rsm
from interlink.xmpp.jid import JID, InvalidJID
from interlink.xmpp.stanza import Message, MessageType
from interlink.xmpp.xml import escape_attr

NS = "urn:xmpp:mam:2"
EXTENDED = NS + "#extended"
QUERY = f"{{{NS}}}query"
PREFS = f"{{{NS}}}prefs"
METADATA = f"{{{NS}}}metadata"
FIN = f"{{{NS}}}fin"
QUERIES = frozenset((QUERY, PREFS, METADATA))  # what an account's own iq may ask
_FLIP = f"{{{NS}}}flip-page"
_ALWAYS = f"{{{NS}}}always"
_NEVER = f"{{{NS}}}never"
_JID = f"{{{NS}}}jid"
FORWARD = "urn:xmpp:forward:0"  # XEP-0297

SID = "urn:xmpp:sid:0"  # XEP-0359
STANZA_ID = f"{{{SID}}}stanza-id"
ORIGIN_ID = f"{{{SID}}}origin-id"

OMEMO = "urn:xmpp:omemo:2"
OMEMO_LEGACY = "eu.siacs.conversations.axolotl"
_BODY = ns.qname(ns.CLIENT, "body")
_SUBJECT = ns.qname(ns.CLIENT, "subject")
_ENCRYPTED = frozenset((ns.qname(OMEMO, "encrypted"), ns.qname(OMEMO_LEGACY, "encrypted")))
_ARCHIVED = frozenset((_BODY, ns.qname(ns.HINTS, "store"))) | _ENCRYPTED
_NO_STORE = frozenset((ns.qname(ns.HINTS, "no-store"), ns.qname(ns.HINTS, "no-permanent-store")))

FIELDS = ("with", "start", "end", "before-id", "after-id", "ids")
_ID_FIELDS = frozenset(("before-id", "after-id", "ids"))


def worth_archiving(message: Message) -> bool:
    """Whether ``message`` goes into the archives (see the module docstring)."""
    if message.type not in (MessageType.CHAT, MessageType.NORMAL):
        return False
    worth = False
    for child in message.payload:
        tag = child.tag
        if tag in _NO_STORE:
            return False
        if tag in _ARCHIVED:
            worth = True
    return worth


def worth_archiving_in_room(message: Message) -> bool:
    """Whether a room's archive keeps ``message`` (§5.1.2, MUC archives): a ``groupchat``
    message with a body, an OMEMO payload or a ``<store/>`` hint, or a subject change; never
    one hinted ``<no-store/>`` or ``<no-permanent-store/>``."""
    if message.type is not MessageType.GROUPCHAT:
        return False
    worth = False
    for child in message.payload:
        tag = child.tag
        if tag in _NO_STORE:
            return False
        if tag in _ARCHIVED or tag == _SUBJECT:
            worth = True
    return worth


def without_forged_ids(message: Message, ours: Callable[[str], bool]) -> Message:
    """``message`` without the ``<stanza-id/>`` elements whose ``by`` is one of ours (XEP-0359
    §5: only this server stamps them), the same object when it has none."""
    payload = message.payload
    for child in payload:
        if child.tag == STANZA_ID:
            break
    else:
        return message  # the usual case, nothing built
    kept = tuple(c for c in payload if c.tag != STANZA_ID or not ours(c.get("by", "")))
    if len(kept) == len(payload):
        return message
    return Message(message.to, message.from_, message.id, message.lang, kept, message.type)


def stamped(xml: str, by: str, archive_id: str) -> str:
    """A serialized message with ``<stanza-id by id/>`` added last (XEP-0359 §3), without
    serializing the message again."""
    assert xml.endswith("</message>")  # a message worth archiving has content
    return (
        f'{xml[:-10]}<stanza-id xmlns="{SID}" by="{escape_attr(by)}" '
        f'id="{escape_attr(archive_id)}"/></message>'
    )


def parse_time(text: str) -> float:
    """A XEP-0082 DateTime as seconds since the epoch.

    Raises:
        StanzaError: ``bad-request`` for anything else (a time without a zone, too).
    """
    try:
        parsed = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        raise StanzaError(
            StanzaErrorCondition.BAD_REQUEST, f"{text!r} is not a XEP-0082 date and time"
        )
    return parsed.timestamp()


def stamp(at: float) -> str:
    """A XEP-0082 DateTime (UTC, milliseconds)."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(at)) + f".{int(at % 1 * 1000):03d}Z"


_DEFAULT_PAGE = rsm.PageRequest()


@dataclass(frozen=True, slots=True)
class ArchiveQuery:
    """A parsed query (§4.1): the form's filters, the page, and how to deliver it."""

    query_id: str | None = None
    with_: JID | None = None
    start: float | None = None
    end: float | None = None
    after_id: str | None = None
    before_id: str | None = None
    ids: tuple[str, ...] = ()
    page: rsm.PageRequest = _DEFAULT_PAGE
    flip: bool = False


def _one(fields: dict[str, list[str]], var: str) -> str | None:
    values = fields.get(var)
    if values is None:
        return None
    if len(values) != 1 or not values[0].strip():
        raise StanzaError(StanzaErrorCondition.BAD_REQUEST, f"the field {var!r} takes one value")
    return values[0].strip()


def parse_query(query: Element, *, max_ids: int) -> ArchiveQuery:
    """The archive query an iq set carries; its ``ids`` field (§4.1.4) names at most
    ``max_ids`` messages (the hub passes ``archive.page_max``: no query returns more anyway).

    Raises:
        StanzaError: ``bad-request`` for a malformed form (another FORM_TYPE, an unknown field,
            a bad JID or time, start after end) or result set; ``not-acceptable`` for more than
            ``max_ids`` ids (XEP-0313 sets no limit nor its error: RFC 6120 §8.3.3.10, a
            request that does not meet the server's criteria, as for too many preference
            JIDs); ``feature-not-implemented`` for a query of a pubsub node's archive
            (XEP-0442) or for an RSM ``<index/>``.
    """
    if query.get("node") is not None:
        raise StanzaError(
            StanzaErrorCondition.FEATURE_NOT_IMPLEMENTED, "an account's archive has no nodes"
        )
    form = query.find(forms.X)
    fields: dict[str, list[str]] = {} if form is None else forms.read_form(form)
    form_type = fields.pop("FORM_TYPE", [NS])
    if form_type != [NS]:
        raise StanzaError(StanzaErrorCondition.BAD_REQUEST, f"the form's FORM_TYPE must be {NS}")
    unknown = sorted(set(fields) - set(FIELDS))
    if unknown:
        raise StanzaError(
            StanzaErrorCondition.BAD_REQUEST, f"unknown archive query field(s): {unknown}"
        )
    with_: JID | None = None
    text = _one(fields, "with")
    if text is not None:
        try:
            with_ = JID.parse(text)
        except InvalidJID as exc:
            raise StanzaError(
                StanzaErrorCondition.BAD_REQUEST, f"'with' is not a JID: {exc}"
            ) from exc
    start_text, end_text = _one(fields, "start"), _one(fields, "end")
    start = None if start_text is None else parse_time(start_text)
    end = None if end_text is None else parse_time(end_text)
    if start is not None and end is not None and start > end:
        raise StanzaError(StanzaErrorCondition.BAD_REQUEST, "'start' is after 'end'")
    ids = tuple(v.strip() for v in fields.get("ids", ()) if v.strip())
    if "ids" in fields and not ids:
        raise StanzaError(StanzaErrorCondition.BAD_REQUEST, "the field 'ids' names no id")
    if len(ids) > max_ids:
        raise StanzaError(
            StanzaErrorCondition.NOT_ACCEPTABLE,
            f"the field 'ids' names at most {max_ids} messages (one page); ask in several queries",
        )
    return ArchiveQuery(
        query_id=query.get("queryid"),
        with_=with_,
        start=start,
        end=end,
        after_id=_one(fields, "after-id"),
        before_id=_one(fields, "before-id"),
        ids=ids,
        page=rsm.parse(query.find(rsm.SET)),
        flip=query.find(_FLIP) is not None,
    )


def query_fields() -> Element:
    """The answer to an iq get of ``<query/>``: the form's fields (§4.1.1)."""
    result = Element(QUERY)
    x = SubElement(result, forms.X, {"type": "form"})
    form_type = SubElement(x, f"{{{ns.DATA_FORMS}}}field", {"var": "FORM_TYPE", "type": "hidden"})
    SubElement(form_type, f"{{{ns.DATA_FORMS}}}value").text = NS
    kinds = {"with": "jid-single", "start": "text-single", "end": "text-single"}
    for var in FIELDS:
        SubElement(
            x, f"{{{ns.DATA_FORMS}}}field", {"var": var, "type": kinds.get(var, "text-single")}
        )
    x[-1].set("type", "text-multi")  # ids
    return result


def result_xml(
    to: JID, from_: JID, query_id: str | None, archive_id: str, at: float, stanza: str
) -> str:
    """One result message (§4.2), built around the archived ``stanza`` text (serialized with
    its ``jabber:client`` namespace, as XEP-0297 wants the forwarded stanza)."""
    qid = "" if query_id is None else f' queryid="{escape_attr(query_id)}"'
    return (
        f'<message xmlns="jabber:client" to="{escape_attr(str(to))}" '
        f'from="{escape_attr(str(from_))}"><result xmlns="{NS}"{qid} '
        f'id="{escape_attr(archive_id)}"><forwarded xmlns="{FORWARD}">'
        f'<delay xmlns="{ns.DELAY}" stamp="{stamp(at)}"/>{stanza}</forwarded></result></message>'
    )


def fin(complete: bool, page: rsm.PageResult) -> Element:
    """The ``<fin/>`` of the iq result (§4.3): ``complete='true'`` once the page holds the last
    item of the set in the direction of paging."""
    element = Element(FIN, {"complete": "true"} if complete else {})
    element.append(rsm.element(page))
    return element


class Default(StrEnum):
    """What the archive does with a contact on neither list (§6)."""

    ALWAYS = "always"
    NEVER = "never"
    ROSTER = "roster"


@dataclass(frozen=True, slots=True)
class Prefs:
    default: Default
    always: tuple[str, ...] = ()  # bare JIDs
    never: tuple[str, ...] = ()


def _jids(parent: Element | None) -> tuple[str, ...]:
    if parent is None:
        return ()
    out: list[str] = []
    for el in parent.findall(_JID):
        try:
            out.append(str(JID.parse((el.text or "").strip()).bare))
        except InvalidJID as exc:
            raise StanzaError(
                StanzaErrorCondition.BAD_REQUEST, f"not a JID in the preferences: {exc}"
            ) from exc
    return tuple(dict.fromkeys(out))


def parse_prefs(prefs: Element, max_jids: int) -> Prefs:
    """Preferences an iq set carries (§6.1).

    Raises:
        StanzaError: ``bad-request`` for a missing or unknown default or a bad JID;
            ``not-acceptable`` for more than ``max_jids`` JIDs in the lists.
    """
    try:
        default = Default(prefs.get("default", ""))
    except ValueError:
        raise StanzaError(
            StanzaErrorCondition.BAD_REQUEST, "default must be always, never or roster"
        ) from None
    always, never = _jids(prefs.find(_ALWAYS)), _jids(prefs.find(_NEVER))
    if len(always) + len(never) > max_jids:
        raise StanzaError(
            StanzaErrorCondition.NOT_ACCEPTABLE,
            f"the preferences name at most {max_jids} JIDs",
        )
    return Prefs(default, always, tuple(j for j in never if j not in always))


def prefs_element(prefs: Prefs) -> Element:
    element = Element(PREFS, {"default": str(prefs.default)})
    for tag, jids in ((_ALWAYS, prefs.always), (_NEVER, prefs.never)):
        parent = SubElement(element, tag)
        for jid in jids:
            SubElement(parent, _JID).text = jid
    return element


@dataclass(frozen=True, slots=True)
class Edge:
    archive_id: str
    at: float


def metadata_element(first: Edge | None, last: Edge | None) -> Element:
    """``<metadata/>`` with the archive's first and last entry (empty for an empty archive)."""
    element = Element(METADATA)
    for tag, edge in (("start", first), ("end", last)):
        if edge is not None:
            attrs = {"id": edge.archive_id, "timestamp": stamp(edge.at)}
            SubElement(element, f"{{{NS}}}{tag}", attrs)
    return element


# -- the querying side (a client reading its own archive) ------------------------------------


def query_element(
    query_id: str, *, with_: str | None = None, after: str | None = None, max_items: int = 50
) -> Element:
    """A ``<query/>`` (§4.1) for the messages after the archive id ``after`` (RSM ``<after>``,
    XEP-0059 §2.2; from the oldest without it), at most ``max_items``, optionally only those
    exchanged ``with`` one JID (§4.1.2)."""
    query = Element(QUERY, {"queryid": query_id})
    x = SubElement(query, f"{{{ns.DATA_FORMS}}}x", {"type": "submit"})
    form_type = SubElement(x, f"{{{ns.DATA_FORMS}}}field", {"var": "FORM_TYPE", "type": "hidden"})
    SubElement(form_type, f"{{{ns.DATA_FORMS}}}value").text = NS
    if with_ is not None:
        field = SubElement(x, f"{{{ns.DATA_FORMS}}}field", {"var": "with"})
        SubElement(field, f"{{{ns.DATA_FORMS}}}value").text = with_
    set_ = SubElement(query, rsm.SET)
    SubElement(set_, f"{{{rsm.NS}}}max").text = str(max_items)
    if after is not None:
        SubElement(set_, f"{{{rsm.NS}}}after").text = after
    return query


@dataclass(frozen=True, slots=True)
class Result:
    """One archived message as a query delivers it (§4.2): its archive id, when the archive
    stored it (the ``<delay/>``, None without a valid one) and the forwarded stanza."""

    archive_id: str
    stored_at: float | None
    message: Element


_RESULT = f"{{{NS}}}result"
_FORWARDED = f"{{{FORWARD}}}forwarded"


def parse_result(message: Element, query_id: str) -> Result | None:
    """The result ``message`` carries for the query ``query_id``; None when it carries none (or
    one of another query, or one without an id or a forwarded message)."""
    result = message.find(_RESULT)
    if result is None or result.get("queryid") != query_id or not result.get("id"):
        return None
    forwarded = result.find(_FORWARDED)
    inner = None if forwarded is None else forwarded.find(ns.qname(ns.CLIENT, "message"))
    if forwarded is None or inner is None:
        return None
    delay = forwarded.find(f"{{{ns.DELAY}}}delay")
    try:
        at = None if delay is None else parse_time(delay.get("stamp", ""))
    except StanzaError:
        at = None
    return Result(result.get("id", ""), at, inner)


def parse_fin(element: Element | None) -> tuple[bool, str | None]:
    """``(complete, last id)`` of a query's ``<fin/>`` (§4.3); a missing one is ``(True, None)``
    (nothing more can be asked after it)."""
    if element is None or element.tag != FIN:
        return True, None
    complete = element.get("complete") in ("true", "1")
    last = element.find(f"{rsm.SET}/{{{rsm.NS}}}last")
    return complete, None if last is None or not last.text else last.text
