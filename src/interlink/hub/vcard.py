"""XEP-0054 vcard-temp for the hub's accounts (wire code: :mod:`interlink.xmpp.ext.vcard`).

An account sets its own vCard (no ``to``, or its bare JID); setting anyone else's is ``forbidden``.
A get to a bare JID is answered by the hub: between the hub's own users anyone may read, as on
Prosody (XEP-0191 blocks still apply, in the router); across the interop boundary the router has
already passed the iq through the consent rules (``check_iq``), and the vCard is cut down to
:data:`~interlink.xmpp.ext.vcard.THIRD_PARTY_FIELDS` in both directions: a third party's because
nothing in it is attested, a gatekeeper user's because a third party that the rules let query (the
user opted in) has no business with its telephone numbers and addresses. An account without a vCard,
or no account at all, gets an empty ``<vCard/>``: the same answer, so a get is no existence oracle.
A vCard larger than ``vcard_max_bytes`` serialized is ``not-acceptable``.

XEP-0153: :meth:`VcardService.avatar_hash` gives the SHA-1 of the account's photo that its
presence advertises (loaded once per session, kept on it); a set that changes it returns the new
one, and the router has the account's presence sent again with it."""

from __future__ import annotations

from collections.abc import Callable
from xml.etree.ElementTree import Element

from interlink.errors import StanzaError, StanzaErrorCondition
from interlink.hub.context import HubContext
from interlink.hub.session import Session
from interlink.xmpp.ext import vcard
from interlink.xmpp.jid import JID
from interlink.xmpp.stanza import Iq, IqType, iq_result
from interlink.xmpp.xml import parse_fragment, serialize


class VcardService:
    def __init__(self, ctx: HubContext, is_third_party: Callable[[JID], bool]) -> None:
        self._ctx = ctx
        self._is_third_party = is_third_party

    async def avatar_hash(self, session: Session) -> str:
        """The XEP-0153 photo hash of ``session``'s account (``""``: no photo)."""
        if session.avatar_hash is None:
            session.avatar_hash = vcard.photo_hash(await self._load(session.jid.bare))
        return session.avatar_hash

    async def handle_own(self, session: Session, iq: Iq) -> str | None:
        """A get or set of the sender's own vCard; the new photo hash when a set changed it
        (every session of the account then holds it), else ``None``.

        Raises:
            StanzaError: ``not-acceptable`` for a vCard above the size limit.
        """
        query = iq.query
        assert query is not None
        owner = session.jid.bare
        if iq.type is IqType.GET:
            session.deliver(iq_result(iq, await self._load(owner), from_=iq.to))
            return None
        text = serialize(query, None)
        limit = self._ctx.settings.vcard_max_bytes
        if len(text.encode()) > limit:
            raise StanzaError(
                StanzaErrorCondition.NOT_ACCEPTABLE, f"a vCard holds at most {limit} bytes"
            )
        before = await self.avatar_hash(session)
        await self._ctx.storage.vcard.put(str(owner), text)
        session.deliver(iq_result(iq, from_=iq.to))
        digest = vcard.photo_hash(query)
        for s in self._ctx.sessions.sessions(owner):
            s.avatar_hash = digest
        return digest if digest != before else None

    async def handle_other(self, session: Session, iq: Iq, account: JID) -> None:
        """A get or set of another account's vCard (``account``: its bare JID).

        Raises:
            StanzaError: ``forbidden`` for a set.
        """
        if iq.type is IqType.SET:
            raise StanzaError(StanzaErrorCondition.FORBIDDEN, "only its account sets a vCard")
        found = await self._load(account)
        if self._is_third_party(account) or self._is_third_party(session.jid):
            found = vcard.third_party_view(found)
        session.deliver(iq_result(iq, found, from_=iq.to))

    async def _load(self, account: JID) -> Element:
        text = await self._ctx.storage.vcard.get(str(account))
        return vcard.empty() if text is None else parse_fragment(text)
