"""XEP-0377 Spam Reporting (``urn:xmpp:reporting:1``) inside an XEP-0191 block item, with the
messages the reporter chose attached as XEP-0297 ``<forwarded/>`` copies (XEP-0377 §3) — the
text the reporter's client decrypted and showed, with its XEP-0203 delay stamp."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import NamedTuple
from xml.etree.ElementTree import Element

from interlink.errors import StanzaError, StanzaErrorCondition
from interlink.xmpp.ext import bad_request

NS = "urn:xmpp:reporting:1"
REPORT = f"{{{NS}}}report"
TEXT = f"{{{NS}}}text"
SPAM = "urn:xmpp:reporting:spam"
ABUSE = "urn:xmpp:reporting:abuse"
REASONS = frozenset({SPAM, ABUSE})
FORWARDED = "{urn:xmpp:forward:0}forwarded"  # XEP-0297
DELAY = "{urn:xmpp:delay}delay"  # XEP-0203
CLIENT_MESSAGE = "{jabber:client}message"
CLIENT_BODY = "{jabber:client}body"


@dataclass(frozen=True, slots=True)
class ForwardedMessage:
    """A message attached to a report, as the reporter's client decrypted it."""

    id: str
    at: str  # XEP-0082 timestamp as the reporter gave it ("" if none)
    body: str
    sender: str = ""  # the 'from' of the copy (the hub does not rely on it)


class SpamReport(NamedTuple):
    reason: str  # one of REASONS
    text: str
    messages: tuple[ForwardedMessage, ...] = ()


def reason_uri(short: str) -> str:
    """``urn:xmpp:reporting:<short>`` for "spam" or "abuse".

    Raises:
        ValueError: for any other reason.
    """
    uri = f"urn:xmpp:reporting:{short}"
    if uri not in REASONS:
        raise ValueError("report must be 'spam' or 'abuse'")
    return uri


def stamp(seconds: float) -> str:
    """An XEP-0082 date-time (UTC) for a Unix time."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def report_element(report: SpamReport) -> Element:
    """``<report/>`` for a block ``<item/>``."""
    el = Element(REPORT, {"reason": report.reason})
    if report.text:
        text_el = Element(TEXT)
        text_el.text = report.text
        el.append(text_el)
    for message in report.messages:
        forwarded = Element(FORWARDED)
        if message.at:
            forwarded.append(Element(DELAY, {"stamp": message.at}))
        msg = Element(CLIENT_MESSAGE, {"from": message.sender, "id": message.id})
        body = Element(CLIENT_BODY)
        body.text = message.body
        msg.append(body)
        forwarded.append(msg)
        el.append(forwarded)
    return el


def parse_report(item: Element, *, max_messages: int, max_text: int) -> SpamReport | None:
    """The report inside a block ``<item/>``; ``None`` if it carries none.

    Raises:
        StanzaError: ``bad-request`` for an unknown reason or a ``<forwarded/>`` without a message
            body, ``policy-violation`` for a text over ``max_text`` characters or more than
            ``max_messages`` attached messages.
    """
    report = item.find(REPORT)
    if report is None:
        return None
    reason = report.get("reason", "")
    if reason not in REASONS:
        raise bad_request(f"report reason must be one of {sorted(REASONS)}")
    text_el = report.find(TEXT)
    text = (text_el.text or "") if text_el is not None else ""
    if len(text) > max_text:
        raise StanzaError(
            StanzaErrorCondition.POLICY_VIOLATION, f"report text over {max_text} characters"
        )
    messages: list[ForwardedMessage] = []
    for forwarded in report.findall(FORWARDED):
        if len(messages) == max_messages:
            raise StanzaError(
                StanzaErrorCondition.POLICY_VIOLATION,
                f"at most {max_messages} messages can be attached to a report",
            )
        message = forwarded.find(CLIENT_MESSAGE)
        body = message.find(CLIENT_BODY) if message is not None else None
        if message is None or body is None:
            raise bad_request("each <forwarded/> needs a <message/> with a <body/>")
        if len(body.text or "") > max_text:
            raise StanzaError(
                StanzaErrorCondition.POLICY_VIOLATION,
                f"an attached message is over {max_text} characters",
            )
        delay = forwarded.find(DELAY)
        at = delay.get("stamp", "") if delay is not None else ""
        messages.append(
            ForwardedMessage(message.get("id", ""), at, body.text or "", message.get("from", ""))
        )
    return SpamReport(reason, text, tuple(messages))
