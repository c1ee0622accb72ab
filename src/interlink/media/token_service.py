"""The hub's answer to ``<token xmlns='urn:interlink:media:0'/>`` (the XML is
:mod:`interlink.xmpp.ext.media_tokens`): a gatekeeper user's client asks the hub for a short-lived
token for the media proxy (``GET /v1/media-proxy``). Third-party users fetch their own side's
media directly and get none."""

from __future__ import annotations

from collections.abc import Callable

from interlink.errors import StanzaError, StanzaErrorCondition
from interlink.hub.session import Session
from interlink.media.tokens import MediaTokens
from interlink.xmpp.ext.media_tokens import token_element
from interlink.xmpp.jid import JID
from interlink.xmpp.stanza import Iq, IqType, iq_result


class MediaTokenService:
    def __init__(
        self, tokens: MediaTokens, is_home: Callable[[JID], bool], clock: Callable[[], float]
    ) -> None:
        self._tokens = tokens
        self._is_home = is_home
        self._clock = clock

    async def handle_iq(self, session: Session, iq: Iq) -> None:
        if iq.type is not IqType.GET:
            raise StanzaError(StanzaErrorCondition.BAD_REQUEST, "ask for a token with type get")
        if not self._is_home(session.jid):
            raise StanzaError(
                StanzaErrorCondition.NOT_ALLOWED,
                "the media proxy is for this hub's own users; fetch your side's media directly",
            )
        now = self._clock()
        token = token_element(
            self._tokens.issue(str(session.jid.bare), now), now + self._tokens.lifetime
        )
        session.deliver(iq_result(iq, token, from_=iq.to))
