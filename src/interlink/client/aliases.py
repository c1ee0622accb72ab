"""The address each peer knows this account by (issue 15, federation).

A gatekeeper user's phone-number address never reaches a federated provider: the hub rewrites
the ``from`` of what leaves over s2s to a per-provider alias (:mod:`interlink.hub.federation`).
What the SDK puts *inside* an OMEMO 2 envelope (XEP-0420 §4: the ``<from/>`` affix) the hub
cannot see, so the SDK must seal with the same alias, or the envelope both leaks the number and
fails the peer's affix check. The hub tells it: ``<alias jid='peer'/>`` (an iq to the account,
:func:`interlink.xmpp.ext.interop.alias_query`), answered with the alias or ``item-not-found``
when the peer is not a federated user.

An alias depends on the peer's provider only, and a server domain belongs to one provider, so
answers are kept per peer domain (bounded, least recently used first out). The account's own
domain, its plug-and-play subdomains and its group service are never federated, and a
plug-and-play user (this account on ``<provider>.interop.<service>``) has no alias towards
the service it is on: no question then.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable
from xml.etree.ElementTree import Element

import slixmpp

from interlink.client.consent import ConsentError, query
from interlink.client.errors import ClientError
from interlink.errors import StanzaError
from interlink.xmpp.addressing import domain_of, interop_provider
from interlink.xmpp.ext import interop

MAX_DOMAINS = 1024


class AliasUnknown(ClientError):
    """The hub could not tell which address a peer knows this account by."""


#: sends an own-account iq get with this payload, returns the result's payload; raises
#: ConsentError with the hub's condition (or ``timeout``), NotConnected before ``connect()``
Ask = Callable[[Element], Awaitable[Element | None]]


def asking(stream: Callable[[], slixmpp.ClientXMPP], timeout: float) -> Ask:
    """The :data:`Ask` port over the client's slixmpp stream."""

    async def ask(payload: Element) -> Element | None:
        return await query(stream(), "get", payload, timeout)

    return ask


class OwnAddresses:
    """This account's address as each peer sees it. Port: ``ask`` (:data:`Ask`)."""

    def __init__(self, *, own: str, ask: Ask, max_domains: int = MAX_DOMAINS) -> None:
        self._own = own
        self._own_domain = domain_of(own)
        self._ask = ask
        self._max = max_domains
        self._known: OrderedDict[str, str | None] = OrderedDict()  # peer domain -> alias

    def _local_domain(self, domain: str) -> bool:
        own = self._own_domain
        return (
            domain == own
            or interop_provider(domain, own) is not None
            or domain.endswith("." + own)  # the group service and other subdomains of ours
            # this account is a plug-and-play user of ``domain``'s service: no alias, ever
            or own.endswith("." + domain)
        )

    async def alias_for(self, peer: str) -> str | None:
        """The alias (bare JID) ``peer`` (a bare JID) knows this account by, ``None`` when
        ``peer`` is not a federated user (it knows the account's own address).

        Raises:
            AliasUnknown: the hub did not answer, or answered nonsense.
            NotConnected: before ``connect()``, for a domain not asked about yet.
        """
        domain = domain_of(peer)
        if self._local_domain(domain):
            return None
        if domain in self._known:
            self._known.move_to_end(domain)
            return self._known[domain]
        try:
            answer = await self._ask(interop.alias_query(peer))
            alias: str | None = interop.parse_alias_answer(answer)
        except ConsentError as exc:
            if exc.condition not in ("item-not-found", "feature-not-implemented"):
                raise AliasUnknown(f"no alias for {peer}: {exc}") from None
            # not a federated address, or not a gatekeeper account: it sees the account as is
            alias = None
        except StanzaError as exc:
            raise AliasUnknown(f"no alias for {peer}: {exc.text}") from None
        self._known[domain] = alias
        while len(self._known) > self._max:
            self._known.popitem(last=False)
        return alias

    async def seen_by(self, peer: str) -> str:
        """The bare JID ``peer`` knows this account by (its alias, or the account itself).
        Raises: as :meth:`alias_for`."""
        return await self.alias_for(peer) or self._own


__all__ = ["AliasUnknown", "Ask", "OwnAddresses", "asking"]
