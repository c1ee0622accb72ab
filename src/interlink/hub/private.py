"""XEP-0049 private XML storage for the hub's accounts (wire code:
:mod:`interlink.xmpp.ext.private`).

Only the account itself reads and writes its fragments (queries to another account are
``forbidden``, §3). Each fragment is stored as its serialized text, already read by the hub's
restricted parser; a fragment larger than ``private_max_fragment_bytes`` is ``not-acceptable``,
a set that would take the account past ``private_quota_bytes`` or ``private_max_fragments`` is
``resource-constraint`` and stores nothing.

``storage:bookmarks`` (XEP-0048) is not stored as given: it is a view of the account's XEP-0402
bookmarks node, read and written through :class:`~interlink.hub.bookmarks.BookmarksService`
(XEP-0402 §5.3)."""

from __future__ import annotations

from xml.etree.ElementTree import Element

from interlink.errors import StanzaError, StanzaErrorCondition
from interlink.hub.bookmarks import BookmarksService
from interlink.hub.context import HubContext
from interlink.hub.session import Session
from interlink.storage.private import PrivateFragment
from interlink.xmpp.ext import bookmarks, private
from interlink.xmpp.stanza import Iq, IqType, iq_result
from interlink.xmpp.xml import parse_fragment, serialize


class PrivateStorageService:
    def __init__(self, ctx: HubContext, bookmarks: BookmarksService) -> None:
        self._ctx = ctx
        self._bookmarks = bookmarks

    async def handle_iq(self, session: Session, iq: Iq) -> None:
        """Answer a get or set from the account's own session.

        Raises:
            StanzaError: ``not-acceptable`` for a malformed query or an oversized fragment,
                ``resource-constraint`` past the account's budget.
        """
        query = iq.query
        assert query is not None
        owner = str(session.jid.bare)
        repo = self._ctx.storage.private
        if iq.type is IqType.GET:
            wanted = private.requested(query)
            namespace = private.namespace_of(wanted)
            if namespace == bookmarks.LEGACY_NS:
                found = await self._bookmarks.legacy_view(session.jid.bare) or wanted
            else:
                text = await repo.get(owner, namespace)
                found = wanted if text is None else parse_fragment(text)
            session.deliver(iq_result(iq, private.query_with(found), from_=None))
            return
        settings = self._ctx.settings
        fragments: list[PrivateFragment] = []
        legacy_bookmarks: Element | None = None
        for namespace, el in private.stored(query):
            if namespace == bookmarks.LEGACY_NS:
                legacy_bookmarks = el
            else:
                fragments.append(PrivateFragment(namespace, serialize(el, None)))
        for fragment in fragments:
            if fragment.size > settings.private_max_fragment_bytes:
                raise StanzaError(
                    StanzaErrorCondition.NOT_ACCEPTABLE,
                    f"a private storage element holds at most "
                    f"{settings.private_max_fragment_bytes} bytes",
                )
        if legacy_bookmarks is not None:
            await self._bookmarks.store_legacy(session.jid.bare, legacy_bookmarks)
        if fragments and not await repo.put(
            owner,
            fragments,
            quota=settings.private_quota_bytes,
            max_fragments=settings.private_max_fragments,
        ):
            raise StanzaError(
                StanzaErrorCondition.RESOURCE_CONSTRAINT,
                f"private storage holds at most {settings.private_quota_bytes} bytes in "
                f"{settings.private_max_fragments} elements per account",
            )
        session.deliver(iq_result(iq, from_=None))
