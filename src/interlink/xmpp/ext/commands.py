"""XEP-0050 Ad-Hoc Commands: the ``<command/>`` element both ways, and its error conditions;
the XEP-0133 service administration nodes the hub offers.

§3.1: a requester executes a command by node; the responder answers with a session id, a status
(``executing``, ``completed``, ``canceled``), the actions the requester may take next
(``<actions execute='...'>``, §3.4), notes (§3.5) and a data form (XEP-0004). §4.3: actions are
``execute`` (the stage's default), ``next``, ``prev``, ``complete`` and ``cancel``. §6: the
application-specific conditions beside the stanza error."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from xml.etree.ElementTree import Element

from interlink.errors import StanzaError, StanzaErrorCondition
from interlink.xmpp.forms import X as FORM

NS = "http://jabber.org/protocol/commands"
COMMAND = f"{{{NS}}}command"
IDENTITY = {"category": "automation", "type": "command-node"}  # §2.3, a command's disco#info
LIST_IDENTITY = {"category": "automation", "type": "command-list"}  # §2.2

# XEP-0133 §4: nodes and the result form's FORM_TYPE
ADMIN = "http://jabber.org/protocol/admin"
ANNOUNCE = ADMIN + "#announce"  # §4.23
ONLINE_USERS_LIST = ADMIN + "#get-online-users-list"  # §4.15
ONLINE_USERS_NUM = ADMIN + "#get-online-users-num"  # §4.16


class Action(StrEnum):
    EXECUTE = "execute"
    NEXT = "next"
    PREV = "prev"
    COMPLETE = "complete"
    CANCEL = "cancel"


class Status(StrEnum):
    EXECUTING = "executing"
    COMPLETED = "completed"
    CANCELED = "canceled"


class NoteType(StrEnum):
    INFO = "info"
    WARN = "warn"
    ERROR = "error"


class AppCondition(StrEnum):
    """§6: each with the stanza error it goes with (:func:`error`)."""

    BAD_ACTION = "bad-action"
    BAD_LOCALE = "bad-locale"
    BAD_PAYLOAD = "bad-payload"
    BAD_SESSIONID = "bad-sessionid"
    MALFORMED_ACTION = "malformed-action"
    SESSION_EXPIRED = "session-expired"


def error(app: AppCondition, text: str) -> StanzaError:
    """The stanza error of a §6 condition (``session-expired`` is ``not-allowed``, the rest
    ``bad-request``)."""
    condition = (
        StanzaErrorCondition.NOT_ALLOWED
        if app is AppCondition.SESSION_EXPIRED
        else StanzaErrorCondition.BAD_REQUEST
    )
    return StanzaError(condition, text, app_condition=f"{{{NS}}}{app}")


@dataclass(frozen=True, slots=True)
class CommandRequest:
    node: str
    sessionid: str | None
    action: Action
    form: Element | None  # the submitted (or cancelled) data form, if any


def parse_request(el: Element) -> CommandRequest:
    """A requester's ``<command/>``.

    Raises:
        StanzaError: ``bad-request`` for no node, ``bad-request``/``malformed-action`` for an
            action §4.3 does not define.
    """
    node = el.get("node", "")
    if not node:
        raise StanzaError(StanzaErrorCondition.BAD_REQUEST, "a command names its node")
    try:
        action = Action(el.get("action", "execute"))
    except ValueError:
        raise error(
            AppCondition.MALFORMED_ACTION, f"no such action: {el.get('action')!r}"
        ) from None
    return CommandRequest(node, el.get("sessionid") or None, action, el.find(FORM))


@dataclass(frozen=True, slots=True)
class Note:
    type_: NoteType
    text: str


def response(
    node: str,
    sessionid: str,
    status: Status,
    *,
    actions: tuple[Action, ...] = (),
    default: Action | None = None,
    form: Element | None = None,
    notes: tuple[Note, ...] = (),
) -> Element:
    """The responder's ``<command/>`` (§3.1, §3.4: ``actions`` only while executing)."""
    el = Element(COMMAND, {"node": node, "sessionid": sessionid, "status": str(status)})
    if status is Status.EXECUTING and actions:
        attrs = {"execute": str(default)} if default is not None else {}
        acts = Element(f"{{{NS}}}actions", attrs)
        for action in actions:
            acts.append(Element(f"{{{NS}}}{action}"))
        el.append(acts)
    for note in notes:
        n = Element(f"{{{NS}}}note", {"type": str(note.type_)})
        n.text = note.text
        el.append(n)
    if form is not None:
        el.append(form)
    return el
