"""Federation: a provider's own XMPP server and the hub's users, over server-to-server streams.

Theory of operation
-------------------
A provider in federated mode (``mode`` ``federated`` or ``both``, issue 15) runs a stock XMPP
server on its server domains; its users keep their own addresses (``alice@chat.example``, kind
``FEDERATED`` in :mod:`interlink.hub.addressing`). This module stands between the router and the
s2s transport (:mod:`interlink.net.s2s`), which hands it what arrived and takes what leaves
through a :class:`FederationPort`.

**Addresses.** The hub's users have phone numbers for localparts; a provider's server never sees
one. Each of them appears to each federated provider under an *alias* on its service's domain:
``g<base32>@wa.example``, where the base32 is the AES-SIV encryption of the localpart with the
provider and the service as associated data (:class:`AliasCipher`). Deterministic, so one user
keeps one address per provider; different per provider, so two providers cannot link their
users' contacts; reversible with the hub's key only, so the hub needs no table to map an
answer back. Outbound, the sender's address becomes its alias; inbound, the alias becomes the
account again. A stanza from a federated server to anything but an alias (a guessed phone
number, a plug-and-play user's address) is refused with the generic refusal. And whatever the
hub sends over s2s passes a last check, :meth:`Federation.deliver`: an address on one of the
hub's service domains that is not an alias anywhere in it (a ``from``, an error text, a vCard,
a PEP item) stops it — it is refused, not rewritten, and counted (``s2s-address-leak``).

**The same rules.** Everything that arrives is routed like a stanza from a plug-and-play user:
through the router, hence the consent decision (opt-in, per-provider choice, message requests,
the interop marker, blocking, rate limits, reporting). Each federated sender gets a
:class:`~interlink.hub.session.Session` whose port leads back to its server (not registered
among the hub's sessions: nothing finds it by address).

**Enlistment.** A federated user reaches nobody before its account is enlisted (DESIGN Flow 2,
with the provider's own JID as the account): :meth:`Federation.receive` asks the enlistment
store first, and answers the generic refusal otherwise (``s2s-not-enlisted``); nor while an
operator has disabled that account (``s2s-account-disabled``, the same refusal). And a
bundle it sends a gatekeeper user (a PEP answer or notification, either OMEMO version) must
carry the identity key it enlisted: any other is refused (``s2s-bundle-key-not-enlisted``; an
iq result becomes ``not-acceptable``, a notification is dropped), so a federated server cannot
slip a substituted key to the hub's users.

**Rooms.** A federated user may be a member of the rooms of the group service of the service
its provider federates with (issue 18; :mod:`interlink.hub.groups.service`): what it sends to
``groups.<service>`` is routed to the group service as it is, except that the hub's users it
names inside (an invitee, an affiliation's ``jid``) must be named by an alias: its
per-provider alias becomes the user's per-room alias in that room (which the group service
reads back to the account, and which is all any member ever sees), a room alias is left as
it is, and any other address on a service domain (a guessed phone number) is refused with
the answer an invitation to nobody gets. What the rooms send
leaves from ``groups.<service>`` (its own s2s stream: the hub's certificate must name that
domain too) and passes the same last check, which lets per-room aliases through. A federated
co-member's iq to a per-room alias (OMEMO's key fetches) goes to the group service, which
answers it under the alias. When stanzas from a room never leave (:meth:`Federation.bounce`)
or a provider's links are closed (:meth:`Federation.provider_closed`), the
:class:`RoomEvents` given at construction are told (the group service makes those occupants
leave).
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
from collections import Counter, OrderedDict
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from copy import deepcopy
from dataclasses import dataclass, replace
from typing import Any, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESSIV

from interlink.errors import StanzaError, StanzaErrorCondition, StreamError, reason
from interlink.hub.addressing import Kind, Location
from interlink.hub.context import HubContext
from interlink.hub.session import Session
from interlink.later import Later
from interlink.xmpp import ns
from interlink.xmpp.ext import jid_attr
from interlink.xmpp.ext.interop import alias_answer
from interlink.xmpp.ext.omemo_bundles import bundle_matches, bundles_in
from interlink.xmpp.jid import JID
from interlink.xmpp.stanza import (
    Iq,
    IqType,
    Stanza,
    error_reply,
    iq_result,
    is_error_stanza,
    parse_stanza,
    to_xml,
)
from interlink.xmpp.xml import parse_fragment

log = logging.getLogger("interlink.s2s")
Pending = Coroutine[Any, Any, None]
Route = Callable[[Session, Stanza], Pending | None]


@dataclass(frozen=True, slots=True)
class Enlisted:
    """What the enlistment store says of a federated account."""

    provider_id: str
    identity_key: bytes  # Ed25519, as enlisted (DESIGN Flow 2)


#: third-party JID -> its enlisted account (``None``: not enlisted)
EnlistedAccount = Callable[[str], Awaitable[Enlisted | None]]

ALIAS_PREFIX = "g"
LEAK = "s2s-address-leak"
NOT_ENLISTED = "s2s-not-enlisted"
NOT_AN_ALIAS = "s2s-not-an-alias"
DISABLED = "s2s-account-disabled"
BUNDLE_KEY = "s2s-bundle-key-not-enlisted"


class AliasCipher:
    """The hub's users' per-provider aliases (see the module docstring). ``key``: 64 bytes."""

    def __init__(self, key: bytes) -> None:
        self._siv = AESSIV(key)

    def alias(self, local: str, provider_id: str, service: str) -> str:
        sealed = self._siv.encrypt(local.encode(), [provider_id.encode(), service.encode()])
        return ALIAS_PREFIX + base64.b32encode(sealed).decode().rstrip("=").lower()

    def resolve(self, alias: str, provider_id: str, service: str) -> str | None:
        """The localpart behind ``alias`` for this provider and service, else ``None``."""
        if not alias.startswith(ALIAS_PREFIX):
            return None
        text = alias[len(ALIAS_PREFIX) :].upper()
        try:
            sealed = base64.b32decode(text + "=" * (-len(text) % 8))
            return self._siv.decrypt(sealed, [provider_id.encode(), service.encode()]).decode()
        except (binascii.Error, ValueError, InvalidTag, UnicodeDecodeError):
            return None

    def room_alias(self, local: str, room_local: str, service: str) -> str:
        """The hub's user ``local``'s alias in the room ``room_local`` of ``service``'s group
        service (:mod:`interlink.hub.groups.aliases`): the room is sealed with the localpart,
        so the alias alone tells the hub whose it is and in which room it is shown. The
        associated data has three parts, so no per-provider alias is ever a room alias."""
        sealed = self._siv.encrypt(f"{local}/{room_local}".encode(), _room_scope(service))
        return ALIAS_PREFIX + base64.b32encode(sealed).decode().rstrip("=").lower()

    def resolve_room_alias(self, alias: str, service: str) -> tuple[str, str] | None:
        """``(localpart, room localpart)`` behind a room alias of ``service``, else ``None``."""
        if not alias.startswith(ALIAS_PREFIX):
            return None
        text = alias[len(ALIAS_PREFIX) :].upper()
        try:
            sealed = base64.b32decode(text + "=" * (-len(text) % 8))
            plain = self._siv.decrypt(sealed, _room_scope(service)).decode()
        except (binascii.Error, ValueError, InvalidTag, UnicodeDecodeError):
            return None
        local, _, room = plain.partition("/")
        return (local, room) if local and room else None


def _room_scope(service: str) -> list[bytes]:
    return [b"groups", b"room", service.encode()]


class FederationPort(Protocol):
    """The s2s transport as the hub sees it."""

    def send(self, provider_id: str, stanza: Stanza) -> None:
        """Queue ``stanza`` on the stream from ``stanza.from_``'s domain to ``stanza.to``'s
        (opening one if needed). Raises: StanzaError (``remote-server-not-found``: no way to
        reach that server; ``resource-constraint``: too much is waiting for it)."""


def _no_links() -> StanzaError:
    return StanzaError(
        StanzaErrorCondition.REMOTE_SERVER_NOT_FOUND, "server-to-server links are not enabled"
    )


class NoLinks:
    """The port of a hub without s2s (``s2s.enabled`` off): nothing federates."""

    def send(self, provider_id: str, stanza: Stanza) -> None:
        raise _no_links()


class LinksPort(Later[FederationPort]):
    """The s2s transport for a hub built before it (:mod:`interlink.later`: the transport
    routes what arrives through the hub, and the hub's :class:`Federation` sends through the
    transport). Until it is fulfilled a send is refused as when s2s is off (nothing can be
    sent before the listeners start anyway)."""

    __slots__ = ()

    def __init__(self) -> None:
        super().__init__("the s2s port")

    def send(self, provider_id: str, stanza: Stanza) -> None:
        port = self.it
        if port is None:
            raise _no_links()
        port.send(provider_id, stanza)


class _BackToServer:
    """The port of a federated sender's session: what the hub answers goes back over s2s."""

    __slots__ = ("_federation",)

    def __init__(self, federation: Federation) -> None:
        self._federation = federation

    def write_xml(self, xml: str) -> None:
        try:
            stanza = parse_stanza(parse_fragment(xml))
        except (StanzaError, ValueError) as exc:
            log.warning("an answer for s2s could not be read back", extra={"error": reason(exc)})
            return
        try:
            self._federation.deliver(stanza)
        except StanzaError as err:
            log.info("an answer over s2s was refused", extra={"error": reason(err)})

    async def wait_writable(self) -> None:
        return None

    def terminate(self, error: StreamError | None) -> None:
        return None  # the stream belongs to the whole server, not to this sender


def _ignore(_: object) -> None:
    return None


@dataclass(frozen=True, slots=True)
class RoomEvents:
    """What the rooms hear from federation (the router passes the group service's ears):
    ``unsent``, a room's stanza that its s2s link never sent (its occupant is unreachable);
    ``closed``, a provider whose links were closed."""

    unsent: Callable[[Stanza], None] = _ignore
    closed: Callable[[str], None] = _ignore


class Federation:
    """Between the router and the s2s transport; see the module docstring."""

    def __init__(
        self,
        ctx: HubContext,
        aliases: AliasCipher,
        enlisted_account: EnlistedAccount,
        port: FederationPort,
        *,
        cache_seconds: float = 5.0,
        max_senders: int = 4096,
        disabled: Callable[[str], bool] = lambda _jid: False,
        rooms: RoomEvents = RoomEvents(),
    ) -> None:
        """``port``: the s2s transport (:class:`NoLinks` without s2s; :class:`LinksPort` when
        the transport is built after the hub). ``disabled``: whether an operator disabled the
        account (bare JID); a disabled federated user reaches no one, as a disabled
        plug-and-play user cannot log in."""
        self.ctx = ctx
        self.addressing = ctx.addressing
        self.aliases = aliases
        self._enlisted_account = enlisted_account
        self._disabled = disabled
        self._port = port
        self._cache_seconds = cache_seconds
        self._max_senders = max_senders
        self._enlisted: OrderedDict[str, tuple[float, Enlisted | None]] = OrderedDict()
        self._senders: OrderedDict[JID, Session] = OrderedDict()
        #: (provider, reason) -> stanzas refused at the boundary (``/metrics``, per provider)
        self.refusals: Counter[tuple[str, str]] = Counter()
        self._rooms = rooms
        self._service_address = {
            service: re.compile(r"([^\s\"'<>@/&;]+)@" + re.escape(service) + r"(?![\w.-])")
            for service in self.addressing.services
        }

    def provider_closed(self, provider_id: str) -> None:
        """The s2s transport closed every link of ``provider_id`` (suspended, removed or no
        longer federated): the rooms are told (nothing more is sent to its users; their rooms
        see them leave)."""
        self._rooms.closed(provider_id)

    def federated(self, jid: JID) -> bool:
        return self.addressing.is_federated(jid)

    # -- outbound: the hub's users to federated users ------------------------------------------
    def deliver(self, stanza: Stanza) -> None:
        """Send ``stanza`` (``to`` a federated address) over s2s, its sender under its alias.

        Raises: StanzaError (not deliverable: no link, too much waiting, or it would show one of
        the hub's users' real addresses)."""
        to = stanza.to
        assert to is not None
        where = self.addressing.locate(to)
        if where.kind is not Kind.FEDERATED:
            raise StanzaError(StanzaErrorCondition.REMOTE_SERVER_NOT_FOUND)
        assert where.provider_id is not None
        assert where.service is not None
        provider_id, service = where.provider_id, where.service
        sender = stanza.from_
        if sender is not None and self.addressing.locate(sender) == Location(Kind.GROUPS, service):
            # a room of the service (or its group service): no phone number in its address
            self._check_no_leak(stanza, provider_id, service)
            self._port.send(provider_id, stanza)
            return
        if sender is None or not self.addressing.is_home(sender):
            raise StanzaError(
                StanzaErrorCondition.SERVICE_UNAVAILABLE, "only this hub's users federate"
            )
        if sender.domain != service:
            raise StanzaError(
                StanzaErrorCondition.SERVICE_UNAVAILABLE,
                f"{to.domain} federates with {service}, not {sender.domain}",
            )
        if (
            sender.local is not None
            and not self.aliases.resolve(sender.local, provider_id, service)
            and not self.aliases.resolve_room_alias(sender.local, service)  # answers at one
        ):
            alias = self.aliases.alias(sender.local, provider_id, service)
            aliased = JID.make(alias, sender.domain, sender.resource)
            stanza = _with(stanza, from_=aliased)
            stanza = _naming_self_as(stanza, sender, aliased)
        self._check_no_leak(stanza, provider_id, service)
        self._port.send(provider_id, stanza)

    def _check_no_leak(self, stanza: Stanza, provider_id: str, service: str) -> None:
        xml = to_xml(stanza, ns.CLIENT)
        for domain, pattern in self._service_address.items():
            if "@" + domain not in xml:
                continue
            for match in pattern.finditer(xml):
                local = match.group(1).lower()
                if domain == service and (
                    self.aliases.resolve(local, provider_id, service)
                    or self.aliases.resolve_room_alias(local, service)  # a member of a room
                ):
                    continue
                self._count(provider_id, LEAK)
                log.warning(
                    "a stanza for s2s named one of the hub's users; refused",
                    extra={"provider": provider_id, "service": domain},
                )
                raise StanzaError(
                    StanzaErrorCondition.NOT_ALLOWED,
                    "this stanza would show a user's address to another provider",
                )

    def bounce(self, stanza: Stanza, why: str) -> None:
        """``stanza`` (as it was to leave, ``from`` an alias) could not be sent: its sender, if
        still connected, gets ``remote-server-timeout``; nothing answers an error or a result."""
        sender, to = stanza.from_, stanza.to
        if sender is not None and self.addressing.locate(sender).kind is Kind.GROUPS:
            self._rooms.unsent(stanza)  # a room's occupant its server could not be reached for
            return
        if sender is None or to is None or is_error_stanza(stanza) or _is_response(stanza):
            return
        where = self.addressing.locate(to)
        local = sender.local
        if local is not None and where.provider_id is not None:
            local = self.aliases.resolve(local, where.provider_id, sender.domain) or local
        if sender.resource is None or local is None:
            return
        session = self.ctx.sessions.get(JID.make(local, sender.domain, sender.resource))
        if session is None:
            return
        error = StanzaError(StanzaErrorCondition.REMOTE_SERVER_TIMEOUT, why)
        session.deliver(error_reply(stanza, error, from_=to))

    async def handle_alias_query(self, session: Session, iq: Iq) -> None:
        """``<alias jid='alice@chat.example'/>`` (type get) from one of the hub's users: the
        address that federated user knows the asker by, for what the client puts inside an
        encrypted envelope (XEP-0420 ``from``) and accepts as its own there.

        Raises: StanzaError (not the hub's user; not a get; not a federated address)."""
        query = iq.query
        assert query is not None
        own = session.jid
        if not self.addressing.is_home(own) or own.local is None:
            raise StanzaError(
                StanzaErrorCondition.FEATURE_NOT_IMPLEMENTED, "aliases are for this hub's users"
            )
        if iq.type is not IqType.GET:
            raise StanzaError(StanzaErrorCondition.BAD_REQUEST, "wrong iq type for this query")
        peer = jid_attr(query, "<alias/>")
        where = self.addressing.locate(peer)
        if where.kind is not Kind.FEDERATED or where.service != own.domain:
            raise StanzaError(
                StanzaErrorCondition.ITEM_NOT_FOUND, f"{peer.bare} is not a federated address"
            )
        assert where.provider_id is not None
        alias = self.aliases.alias(own.local, where.provider_id, own.domain)
        answer = alias_answer(str(peer.bare), f"{alias}@{own.domain}")
        session.deliver(iq_result(iq, answer, from_=None))

    # -- inbound: federated users to the hub's users --------------------------------------------
    async def receive(self, provider_id: str, stanza: Stanza, route: Route) -> None:
        """Route ``stanza`` from ``provider_id``'s server (its ``from`` checked by the stream:
        in a domain the server authenticated) as the hub routes a plug-and-play user's."""
        sender = stanza.from_
        assert sender is not None
        where = self.addressing.locate(sender)
        session = self._session(sender)
        if where.kind is not Kind.FEDERATED or where.provider_id != provider_id:
            self._refuse(
                provider_id, session, stanza, NOT_ENLISTED
            )  # suspended since the stream opened
            return
        account = await self._enlisted_as(sender.bare)
        if account is None or account.provider_id != provider_id:
            self._refuse(provider_id, session, stanza, NOT_ENLISTED)
            return
        if self._disabled(str(sender.bare)):
            self._refuse(provider_id, session, stanza, DISABLED)
            return
        to = stanza.to
        if to is not None and self.addressing.locate(to) == Location(Kind.GROUPS, where.service):
            named = self._members_named(stanza, provider_id, to)
            if named is None:  # a guessed phone number: the answer an invitation to nobody gets
                self._refuse(provider_id, session, stanza, NOT_AN_ALIAS)
                return
            stanza = named
        elif to is not None and to.local is not None:
            target = self.addressing.locate(to)
            local = (
                self.aliases.resolve(to.local, provider_id, to.domain)
                if target.kind is Kind.HOME
                else None
            )
            if local is not None:
                stanza = _with(stanza, to=JID.make(local, to.domain, to.resource))
                # what names the alias inside (an OMEMO 2 ``<keys jid=''/>``) names the account
                stanza = _naming_self_as(stanza, to.bare, JID.make(local, to.domain))
            elif not (
                isinstance(stanza, Iq)
                and target.kind is Kind.HOME
                and self.aliases.resolve_room_alias(to.local, to.domain) is not None
            ):  # (an iq to a room's member by its per-room alias: the group service answers)
                # answered from the domain: an address that is not an alias gets no alias back
                self._refuse(
                    provider_id, session, stanza, NOT_AN_ALIAS, from_=JID.make(None, to.domain)
                )
                return
        if not self._bundles_enlisted(stanza, account):
            self._count(provider_id, BUNDLE_KEY)
            log.warning(
                "a federated user's OMEMO bundle has an identity key it did not enlist; refused",
                extra={"provider": provider_id},
            )
            refused = _bundle_refused(stanza, sender)
            if refused is None:
                return
            stanza = refused
        work = route(session, stanza)
        if work is not None:
            await work

    def _members_named(self, stanza: Stanza, provider_id: str, to: JID) -> Stanza | None:
        """``stanza`` (to a room, or to the group service, ``to``) with every attribute that
        names one of the hub's users by its per-provider alias naming it by its alias in that
        room instead (an invitee, an affiliation's ``jid``: the group service reads a room's
        aliases back to the account; and whatever the room passes on to its occupants shows
        the address every member sees, never the account's); ``None`` when one names a
        service's address that is no alias (a phone number)."""
        names: dict[str, str] = {}
        for value in _attribute_values(stanza):
            if "@" not in value or value in names:
                continue
            try:
                jid = JID.parse(value)
            except ValueError:
                continue
            if jid.local is None or not self.addressing.is_home_domain(jid.domain):
                continue
            service = jid.domain
            if self.aliases.resolve_room_alias(jid.local, service) is not None:
                continue
            local = self.aliases.resolve(jid.local, provider_id, service)
            if local is None or self.addressing.groups_domain(service) != to.domain:
                return None
            if to.local is not None:
                shown = self.aliases.room_alias(local, to.local, service)
                names[value] = str(JID.make(shown, service, jid.resource))
        if not names:
            return stanza
        return _renamed(stanza, names)

    def _count(self, provider_id: str, reason: str) -> None:
        """One refusal: in the hub's refusals by reason and in this provider's (``/metrics``)."""
        self.ctx.refusals[reason] += 1
        self.refusals[provider_id, reason] += 1

    def _refuse(
        self,
        provider_id: str,
        session: Session,
        stanza: Stanza,
        reason: str,
        *,
        from_: JID | None = None,
    ) -> None:
        self._count(provider_id, reason)
        log.info(
            "a stanza from a federated server was refused",
            extra={"provider": provider_id, "remote_domain": session.jid.domain, "reason": reason},
        )
        if not is_error_stanza(stanza) and not _is_response(stanza):
            # the one answer for an unreachable account, whatever the reason (no oracle)
            error = StanzaError(StanzaErrorCondition.SERVICE_UNAVAILABLE)
            session.deliver(error_reply(stanza, error, from_=from_ or stanza.to))

    @staticmethod
    def _bundles_enlisted(stanza: Stanza, account: Enlisted) -> bool:
        """Issue 15 item 4: gatekeeper users get only bundles whose identity key is the one
        the sender enlisted (an iq result, a PEP notification, anything carrying one)."""
        return all(bundle_matches(b, account.identity_key) for b in bundles_in(stanza.payload))

    async def _enlisted_as(self, bare: JID) -> Enlisted | None:
        key = str(bare)
        now = self.ctx.clock()
        hit = self._enlisted.get(key)
        if hit is not None and 0 <= now - hit[0] < self._cache_seconds:
            return hit[1]
        account = await self._enlisted_account(key)
        self._enlisted[key] = (now, account)
        while len(self._enlisted) > self._max_senders:
            self._enlisted.popitem(last=False)
        return account

    def forget(self, bare: JID) -> None:
        """An account's enlistment changed: read it again next time."""
        self._enlisted.pop(str(bare), None)

    def _session(self, sender: JID) -> Session:
        session = self._senders.get(sender)
        if session is None:
            session = Session(sender, _BackToServer(self))
            session.available = True
            self._senders[sender] = session
            while len(self._senders) > self._max_senders:
                self._senders.popitem(last=False)
        else:
            self._senders.move_to_end(sender)
        return session


def _bundle_refused(stanza: Stanza, sender: JID) -> Stanza | None:
    """What the gatekeeper user gets instead of a bundle that is not the enlisted one: an iq
    result becomes an error (``not-acceptable``, so the client's fetch fails clearly and does
    not wait); anything else (a PEP notification) is dropped."""
    if isinstance(stanza, Iq) and stanza.type is IqType.RESULT:
        error = StanzaError(
            StanzaErrorCondition.NOT_ACCEPTABLE,
            f"the identity key in this bundle is not the one {sender.bare} enlisted",
        )
        request = replace(stanza, to=stanza.from_, from_=stanza.to)
        return error_reply(request, error, from_=stanza.from_)
    return None


def _naming_self_as(stanza: Stanza, own: JID, alias: JID) -> Stanza:
    """``stanza`` with every attribute that names ``own`` (bare or full) naming ``alias``
    instead. Outbound, ``own`` is the sender: it may name itself where a protocol asks for its
    address (the ``jid`` of an XEP-0060 §6.1 ``<subscribe/>``, the ``<keys jid=''/>`` of its
    other devices in OMEMO 2, XEP-0384 §4.4); any other of the hub's users named is left for
    the leak check to refuse. Inbound, ``own`` is the alias the peer addressed and ``alias``
    the account behind it (a federated sender's OMEMO 2 keys for it)."""
    names = {str(own.bare): str(alias.bare), str(own): str(alias)}
    if not any(value in names for value in _attribute_values(stanza)):
        return stanza
    return _renamed(stanza, names)


def _renamed(stanza: Stanza, names: dict[str, str]) -> Stanza:
    """``stanza`` with every attribute of its payload whose value is a key of ``names`` set to
    that key's value (the payload copied, the original untouched)."""
    payload = []
    for el in stanza.payload:
        copy = deepcopy(el)
        for node in copy.iter():
            for key, value in node.attrib.items():
                if value in names:
                    node.set(key, names[value])
        payload.append(copy)
    return replace(stanza, payload=tuple(payload))


def _attribute_values(stanza: Stanza) -> Iterator[str]:
    for el in stanza.payload:
        for node in el.iter():
            yield from node.attrib.values()


def _is_response(stanza: Stanza) -> bool:
    kind = getattr(stanza, "type", None)
    return kind is not None and str(kind) == "result"


def _with(stanza: Stanza, **changes: JID | None) -> Stanza:
    return replace(stanza, **changes)  # type: ignore[arg-type]


__all__ = [
    "ALIAS_PREFIX",
    "AliasCipher",
    "Enlisted",
    "EnlistedAccount",
    "Federation",
    "FederationPort",
    "LinksPort",
    "NoLinks",
]
