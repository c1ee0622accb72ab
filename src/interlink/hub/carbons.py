"""Message carbons (XEP-0280): every resource of an account that asks for it sees the account's
whole conversation, whichever resource sent or received each message.

Eligible messages (§6): type ``chat``, or ``normal`` with a body; never error, groupchat or
headline messages, nor those marked ``<private/>`` with a ``<no-copy/>`` hint. Copies are
``<received/>`` (for other resources of the recipient) or ``<sent/>`` (for other resources of the
sender), each wrapping the original in ``<forwarded/>`` (XEP-0297). Stored offline messages are
not copied; they reach every resource that drains them.

In a cluster the account's resources on other nodes get their copies through those nodes'
inboxes, written only to a session that enabled carbons (which its own node alone knows):
:meth:`Carbons.sent_elsewhere` and :meth:`Carbons.received_elsewhere` queue them on the hub's
:class:`~interlink.hub.nodes.Fanout`, so the message path never waits for the cluster.
"""

from __future__ import annotations

from collections.abc import Iterable

from interlink.cluster import Located
from interlink.hub.nodes import WHEN_CARBONS, Build, Fanout
from interlink.hub.session import Session, SessionRegistry
from interlink.xmpp import ns
from interlink.xmpp.jid import JID
from interlink.xmpp.stanza import Message, MessageType
from interlink.xmpp.xml import escape_attr

NS = "urn:xmpp:carbons:2"
FORWARD = "urn:xmpp:forward:0"
ENABLE = ns.qname(NS, "enable")
DISABLE = ns.qname(NS, "disable")
_PRIVATE = ns.qname(NS, "private")
_NO_COPY = ns.qname(ns.HINTS, "no-copy")
_BODY = ns.qname(ns.CLIENT, "body")
_CARBON_TAGS = frozenset((ns.qname(NS, "received"), ns.qname(NS, "sent")))


def eligible(msg: Message) -> bool:
    if msg.type is MessageType.CHAT:
        pass
    elif msg.type is not MessageType.NORMAL or msg.find(_BODY) is None:
        return False
    tags = {child.tag for child in msg.payload}
    if _PRIVATE in tags and _NO_COPY in tags:
        return False
    return not tags & _CARBON_TAGS  # never copy a copy


class Carbons:
    def __init__(self, sessions: SessionRegistry, fanout: Fanout | None = None) -> None:
        self._sessions = sessions
        self._fanout = fanout if fanout is not None and fanout.active else None
        # accounts with at least one carbons-enabled resource: the common case costs one lookup
        self._enabled: dict[JID, int] = {}

    def enable(self, session: Session, on: bool) -> None:
        if session.carbons == on:
            return
        session.carbons = on
        bare = session.jid.bare
        count = self._enabled.get(bare, 0) + (1 if on else -1)
        if count:
            self._enabled[bare] = count
        else:
            self._enabled.pop(bare, None)

    def forget(self, session: Session) -> None:
        """The session ended."""
        self.enable(session, False)

    def _wanting(self, bare: JID, skip: Iterable[Session]) -> list[Session]:
        excluded = set(skip)
        return [s for s in self._sessions.available(bare) if s.carbons and s not in excluded]

    def received(self, msg: Message, xml: str, bare: JID, delivered_to: Iterable[Session]) -> None:
        """Copy a message delivered live to ``bare``'s resources to its other resources."""
        if bare not in self._enabled or not eligible(msg):
            return
        for s in self._wanting(bare, delivered_to):
            s.deliver_xml(_wrap("received", bare, s.jid, msg.type, xml))

    def sent(self, msg: Message, xml: str, sender: Session) -> None:
        """Copy a message the user sent to the user's other resources."""
        bare = sender.jid.bare
        if bare not in self._enabled or not eligible(msg):
            return
        if msg.to is not None and msg.to.bare == bare:
            return  # to oneself: the resources get it (or its received copy) anyway
        for s in self._wanting(bare, (sender,)):
            s.deliver_xml(_wrap("sent", bare, s.jid, msg.type, xml))

    def may_copy_received(self, bare: JID) -> bool:
        """Whether a message delivered to ``bare`` may have ``received`` copies to make, here
        or on other nodes (if not, the message need not even be parsed)."""
        return bare in self._enabled or (self._fanout is not None and self._fanout.may_reach(bare))

    def received_elsewhere(self, msg: Message, xml: str, bare: JID) -> None:
        """Queue the ``received`` copies for ``bare``'s resources on other nodes (a message
        delivered on this one)."""
        if self._fanout is None or not eligible(msg):
            return
        self._fanout.put(bare, WHEN_CARBONS, _copy("received", bare, msg.type, xml, None))

    def sent_elsewhere(self, msg: Message, xml: str, sender: Session) -> None:
        """Queue the ``sent`` copies for the sender's resources on other nodes."""
        bare = sender.jid.bare
        if self._fanout is None or not eligible(msg):
            return
        if msg.to is not None and msg.to.bare == bare:
            return
        self._fanout.put(bare, WHEN_CARBONS, _copy("sent", bare, msg.type, xml, sender.jid))


def _copy(kind: str, bare: JID, mtype: MessageType, xml: str, skip: JID | None) -> Build:
    def build(where: Located) -> str | None:
        if skip is not None and where.full_jid == str(skip):
            return None
        return _wrap(kind, bare, JID.parse(where.full_jid), mtype, xml)

    return build


def _wrap(kind: str, bare: JID, to: JID, mtype: MessageType, xml: str) -> str:
    type_attr = "" if mtype is MessageType.NORMAL else f' type="{mtype}"'
    return (
        f'<message xmlns="jabber:client" from="{escape_attr(str(bare))}" '
        f'to="{escape_attr(str(to))}"{type_attr}><{kind} xmlns="{NS}">'
        f'<forwarded xmlns="{FORWARD}">{xml}</forwarded></{kind}></message>'
    )
