"""XEP-0050 ad-hoc commands at a service's domain (wire code: :mod:`interlink.xmpp.ext.commands`).

Theory of operation. :class:`CommandSessions` is the sans-I/O core: the table of open command
sessions, each owned by the full JID that opened it, at a stage, with an expiry; time is passed in
(``now``). A request without a session id opens one (at most ``max_sessions_per_account`` live
per account, ``resource-constraint`` beyond); a request with one continues it only from its owner
(``bad-sessionid`` otherwise, and for ids never issued or already closed) and only before it
expires (``session-expired``, XEP-0050 §6; an expired session is remembered for one more lifetime
to say so, then forgotten). Completing or cancelling closes it at once.

:class:`AdhocService` is the shell around it: it checks who may run what (a command is either
for every local account or for the operators listed in ``[adhoc] operators``: ``forbidden``
otherwise; an unknown node is ``item-not-found``), checks the action against those the last stage
offered (``bad-action``), calls the command and answers. Disco: the service's domain lists
``http://jabber.org/protocol/commands``; ``disco#items`` on that node lists the commands the
requester may run (§2.2), ``disco#info`` on a command's node describes it (§2.3)."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from xml.etree.ElementTree import Element

from interlink.errors import StanzaError, StanzaErrorCondition
from interlink.hub.addressing import Addressing, Kind
from interlink.hub.session import Session
from interlink.xmpp import ns
from interlink.xmpp.ext import commands
from interlink.xmpp.ext.commands import Action, AppCondition, Note, Status
from interlink.xmpp.forms import read_form
from interlink.xmpp.jid import JID
from interlink.xmpp.stanza import Iq, IqType, iq_result

log = logging.getLogger("interlink.adhoc")


@dataclass(frozen=True, slots=True)
class AdhocLimits:
    max_sessions_per_account: int = 8  # open command sessions of one account (all resources)
    session_lifetime: float = 600.0  # seconds from opening to expiry
    online_users_list_max: int = 1000  # JIDs one get-online-users-list answer carries

    def __post_init__(self) -> None:
        if self.max_sessions_per_account < 1 or self.online_users_list_max < 1:
            raise ValueError("ad-hoc limits must be at least 1")
        if self.session_lifetime <= 0:
            raise ValueError("adhoc.session_lifetime must be positive")


@dataclass(slots=True)
class CommandSession:
    id: str
    node: str
    owner: JID  # the full JID that opened it
    expires_at: float
    stage: int = 0
    actions: tuple[Action, ...] = ()  # what the last stage offered
    default: Action | None = None
    counted: bool = True  # against its account's cap (until it expires)


class CommandSessions:
    """Open command sessions (sans-I/O: no clock, no I/O)."""

    def __init__(self, limits: AdhocLimits) -> None:
        self._limits = limits
        self._open: dict[str, CommandSession] = {}
        self._per_account: dict[JID, int] = {}

    def __len__(self) -> int:
        return len(self._open)

    def open(self, owner: JID, node: str, now: float) -> CommandSession:
        """Raises: StanzaError ``resource-constraint`` past ``max_sessions_per_account``."""
        self.expire(now)
        account = owner.bare
        cap = self._limits.max_sessions_per_account
        if self._per_account.get(account, 0) >= cap:
            raise StanzaError(
                StanzaErrorCondition.RESOURCE_CONSTRAINT,
                f"at most {cap} command sessions open per account; complete or cancel one",
            )
        session = CommandSession(
            secrets.token_hex(8), node, owner, now + self._limits.session_lifetime
        )
        self._open[session.id] = session
        self._per_account[account] = self._per_account.get(account, 0) + 1
        return session

    def find(self, owner: JID, node: str, sessionid: str, now: float) -> CommandSession:
        """The live session ``sessionid`` of ``owner`` on ``node``.

        Raises:
            StanzaError: ``bad-sessionid`` for no such session of this requester and node,
                ``session-expired`` past its lifetime.
        """
        session = self._open.get(sessionid)
        if session is None or session.owner != owner or session.node != node:
            raise commands.error(AppCondition.BAD_SESSIONID, "no such command session")
        if now >= session.expires_at:
            raise commands.error(AppCondition.SESSION_EXPIRED, "the command session expired")
        return session

    def close(self, session: CommandSession) -> None:
        if self._open.pop(session.id, None) is not None and session.counted:
            session.counted = False
            self._uncount(session.owner.bare)

    def _uncount(self, account: JID) -> None:
        left = self._per_account.get(account, 0) - 1
        if left > 0:
            self._per_account[account] = left
        else:
            self._per_account.pop(account, None)

    def expire(self, now: float) -> None:
        """Stop counting expired sessions against their account; forget those expired more
        than one lifetime ago (until then a request names them ``session-expired``)."""
        lifetime = self._limits.session_lifetime
        for sid, session in list(self._open.items()):
            if session.expires_at > now:
                continue
            if session.counted:
                session.counted = False
                self._uncount(session.owner.bare)
            if now >= session.expires_at + lifetime:
                del self._open[sid]

    def forget_account(self, account: JID) -> None:
        """The bare JID ``account`` was removed: its open command sessions go (a half-done
        command, e.g. a password change, never continues for whoever gets the address next)."""
        for sid, session in list(self._open.items()):
            if session.owner.bare == account:
                session.counted = False
                del self._open[sid]
        self._per_account.pop(account, None)

    def live(self, account: JID) -> int:
        """Live sessions of the bare JID ``account`` (as counted against its cap)."""
        return self._per_account.get(account, 0)


@dataclass(frozen=True, slots=True)
class Step:
    """What a command answers to one request."""

    status: Status
    form: Element | None = None
    notes: tuple[Note, ...] = ()
    actions: tuple[Action, ...] = ()
    default: Action | None = None

    @staticmethod
    def done(text: str, form: Element | None = None) -> Step:
        return Step(Status.COMPLETED, form, (Note(commands.NoteType.INFO, text),))


@dataclass(frozen=True, slots=True)
class Requester:
    jid: JID  # full JID
    service: str  # the service domain the command was sent to
    operator: bool


class Command(Protocol):
    node: str
    name: str
    operators_only: bool

    async def start(self, requester: Requester) -> Step:
        """The first stage (``execute`` without a session)."""
        ...

    async def submit(
        self, requester: Requester, stage: int, action: Action, fields: dict[str, list[str]]
    ) -> Step:
        """The requester's answer to ``stage`` (``complete``/``next``/``execute``).

        Raises:
            StanzaError: ``bad-request``/``bad-payload`` for a form the stage cannot take.
        """
        ...


NodeHandler = Callable[[Session, Iq], Coroutine[Any, Any, None]]


@dataclass(slots=True)
class AdhocService:
    """The commands of every service domain of the hub."""

    addressing: Addressing
    clock: Callable[[], float]
    limits: AdhocLimits
    operators: frozenset[JID]
    registry: list[Command] = field(default_factory=list)
    sessions: CommandSessions = field(init=False)

    def __post_init__(self) -> None:
        self.sessions = CommandSessions(self.limits)

    def _by_node(self) -> Mapping[str, Command]:
        return {c.node: c for c in self.registry}

    def _requester(self, session: Session, iq: Iq) -> Requester:
        """Raises: StanzaError ``forbidden`` for a requester of another service."""
        service = iq.to.domain if iq.to is not None else session.jid.domain
        where = self.addressing.locate(session.jid)
        if where.kind is not Kind.HOME or where.service != service:
            raise StanzaError(
                StanzaErrorCondition.FORBIDDEN,
                "this service's commands are for its own accounts",
            )
        return Requester(session.jid, service, session.jid.bare in self.operators)

    def _may_run(self, requester: Requester, command: Command) -> bool:
        return requester.operator or not command.operators_only

    # -- execution (§3, §4) --------------------------------------------------------------------
    async def handle_iq(self, session: Session, iq: Iq) -> None:
        """A ``<command/>`` to a service domain.

        Raises:
            StanzaError: ``item-not-found`` for an unknown node, ``forbidden`` for a command the
                requester may not run, the §6 conditions (``bad-action``, ``bad-sessionid``,
                ``session-expired``, ``malformed-action``, ``bad-payload``), and what the
                command raises.
        """
        query = iq.query
        assert query is not None
        if iq.type is not IqType.SET:
            raise StanzaError(StanzaErrorCondition.BAD_REQUEST, "commands are executed by a set")
        request = commands.parse_request(query)
        command = self._by_node().get(request.node)
        if command is None:
            raise StanzaError(StanzaErrorCondition.ITEM_NOT_FOUND, "no such command")
        requester = self._requester(session, iq)
        if not self._may_run(requester, command):
            log.info("command refused", extra={"jid": str(session.jid), "node": command.node})
            raise StanzaError(StanzaErrorCondition.FORBIDDEN, "this command is for operators")
        now = self.clock()
        table = self.sessions
        if request.sessionid is None:
            if request.action is not Action.EXECUTE:
                raise commands.error(AppCondition.BAD_ACTION, "a new session starts by execute")
            state = table.open(session.jid, command.node, now)
            step = await self._step(state, command.start(requester))
        else:
            state = table.find(session.jid, command.node, request.sessionid, now)
            if request.action is Action.CANCEL:
                table.close(state)
                session.deliver(
                    iq_result(
                        iq,
                        commands.response(command.node, state.id, Status.CANCELED),
                        from_=iq.to,
                    )
                )
                return
            action = state.default if request.action is Action.EXECUTE else request.action
            if action is None or action not in state.actions:
                raise commands.error(
                    AppCondition.BAD_ACTION, f"this stage does not take {request.action}"
                )
            form = request.form
            if form is None or form.get("type") != "submit":
                raise commands.error(AppCondition.BAD_PAYLOAD, "this stage takes a submitted form")
            fields = read_form(form)
            step = await self._step(state, command.submit(requester, state.stage, action, fields))
        session.deliver(
            iq_result(
                iq,
                commands.response(
                    command.node,
                    state.id,
                    step.status,
                    actions=step.actions,
                    default=step.default,
                    form=step.form,
                    notes=step.notes,
                ),
                from_=iq.to,
            )
        )

    async def _step(self, state: CommandSession, work: Awaitable[Step]) -> Step:
        """Run one stage: the session moves on, or closes when the command is done. An error
        leaves the stage as it was (the requester may submit again or cancel)."""
        try:
            step = await work
        except StanzaError:
            if not state.actions:  # it failed at its first stage: nothing to continue
                self.sessions.close(state)
            raise
        if step.status is Status.EXECUTING:
            state.stage += 1
            state.actions = step.actions
            state.default = step.default
        else:
            self.sessions.close(state)
        return step

    # -- discovery (§2) ------------------------------------------------------------------------
    def disco_nodes(self) -> dict[str, NodeHandler]:
        """disco#info / disco#items handlers by node, for the service domains."""
        nodes: dict[str, NodeHandler] = {commands.NS: self._list}
        for command in self.registry:
            nodes[command.node] = self._describe
        return nodes

    def add_feature(self, info: Element) -> None:
        """The service domain's disco#info lists XEP-0050."""
        info.append(Element(ns.qname(ns.DISCO_INFO, "feature"), {"var": commands.NS}))

    async def _list(self, session: Session, iq: Iq) -> None:
        query = iq.query
        assert query is not None
        assert iq.to is not None
        if query.tag == ns.qname(ns.DISCO_INFO, "query"):
            answer = Element(query.tag, {"node": commands.NS})
            answer.append(
                Element(
                    ns.qname(ns.DISCO_INFO, "identity"),
                    {**commands.LIST_IDENTITY, "name": "Commands"},
                )
            )
            session.deliver(iq_result(iq, answer, from_=iq.to))
            return
        answer = Element(query.tag, {"node": commands.NS})
        try:
            requester: Requester | None = self._requester(session, iq)
        except StanzaError:
            requester = None  # another service's account: no commands here
        for command in self.registry:
            if requester is not None and self._may_run(requester, command):
                answer.append(
                    Element(
                        ns.qname(ns.DISCO_ITEMS, "item"),
                        {"jid": str(iq.to), "node": command.node, "name": command.name},
                    )
                )
        session.deliver(iq_result(iq, answer, from_=iq.to))

    async def _describe(self, session: Session, iq: Iq) -> None:
        query = iq.query
        assert query is not None
        node = query.get("node", "")
        command = self._by_node()[node]
        if query.tag != ns.qname(ns.DISCO_INFO, "query"):
            session.deliver(iq_result(iq, Element(query.tag, {"node": node}), from_=iq.to))
            return
        answer = Element(query.tag, {"node": node})
        answer.append(
            Element(
                ns.qname(ns.DISCO_INFO, "identity"), {**commands.IDENTITY, "name": command.name}
            )
        )
        for feature in (commands.NS, ns.DATA_FORMS):
            answer.append(Element(ns.qname(ns.DISCO_INFO, "feature"), {"var": feature}))
        session.deliver(iq_result(iq, answer, from_=iq.to))
