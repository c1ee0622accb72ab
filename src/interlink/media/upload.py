"""HTTP File Upload (XEP-0363 v1.1, ``urn:xmpp:http:upload:0``) served at the hub's domain JID.

A client sends ``<iq type='get'><request filename='' size='' content-type=''/></iq>`` to the hub's
domain (§4); the answer is a ``<slot>`` with the PUT URL and the ``Authorization`` header to send
with it, and the GET URL to share (:func:`interlink.media.model.slot_urls`). Refusals follow §5:
``not-acceptable`` with ``<file-too-large><max-file-size/></file-too-large>`` for a file over the
limit, ``not-acceptable`` for a refused content type, ``resource-constraint`` (type wait) for the
quota or too many open slots, ``not-allowed`` for a requester who may not upload here, each with
a text saying why. The service is advertised in the domain's disco#info (§2) with an identity
``store/file``, the feature, and an XEP-0128 form giving ``max-file-size``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol
from xml.etree.ElementTree import Element

from interlink.errors import StanzaError, StanzaErrorCondition
from interlink.media.errors import FileTooLarge, MediaError, UploadNotAllowed
from interlink.media.model import slot_urls
from interlink.media.store import MediaStore
from interlink.xmpp.ext.http_upload import NS as NS
from interlink.xmpp.ext.http_upload import REQUEST as REQUEST
from interlink.xmpp.ext.http_upload import (
    Slot,
    disco_features,
    disco_form,
    disco_identity,
    file_too_large,
    parse_request,
    slot_element,
)
from interlink.xmpp.jid import JID
from interlink.xmpp.stanza import Iq, IqType, Stanza, error_element, iq_result

__all__ = ["NS", "REQUEST", "UploadService", "disco_features", "disco_form", "disco_identity"]


class Requester(Protocol):
    """What the service needs of the requesting session (:class:`interlink.hub.session.Session`)."""

    @property
    def jid(self) -> JID: ...

    def deliver(self, stanza: Stanza) -> None: ...


def _error_stanza(iq: Iq, error: MediaError) -> Iq:
    el = error_element(StanzaError(error.condition, error.detail))
    if isinstance(error, FileTooLarge):
        el.append(file_too_large(error.max_size))
    return Iq(iq.from_, iq.to, iq.id, None, (el,), IqType.ERROR)


def anyone(account: JID) -> bool:
    """The upload gate of a server whose every account may upload (e.g. a provider's)."""
    return True


class UploadService:
    """Answers slot requests for the store. ``base_url`` is the public ``https://host:port`` of
    the HTTP listener serving :func:`interlink.net.media_api.media_router` for ``store``;
    ``may_upload`` decides who may upload at all (the hub: its own users; a required gate,
    :func:`anyone` where every account may)."""

    def __init__(
        self,
        store: MediaStore,
        base_url: str,
        *,
        may_upload: Callable[[JID], bool],
    ) -> None:
        self._store = store
        self._base_url = base_url.rstrip("/")
        self._may_upload = may_upload

    def disco_extension(self) -> Element:
        return disco_form(self._store.limits.max_file_size)

    async def handle_iq(self, session: Requester, iq: Iq) -> None:
        """Answer one request iq addressed to the hub's domain. Raises :class:`StanzaError`
        (``bad-request``) for a malformed request, which the router turns into the error reply;
        refusals of a well-formed request are answered here, with their XEP-0363 details."""
        request = iq.query
        if request is None or request.tag != REQUEST or iq.type is not IqType.GET:
            raise StanzaError(StanzaErrorCondition.BAD_REQUEST, "expected a get with <request/>")
        asked = parse_request(request)
        owner = session.jid.bare
        try:
            if not self._may_upload(owner):
                raise UploadNotAllowed("this account may not upload files to this server")
            slot = await self._store.request_slot(
                str(owner), asked.filename, asked.size, asked.content_type
            )
        except MediaError as exc:
            session.deliver(_error_stanza(iq, exc))
            return
        urls = slot_urls(self._base_url, slot)
        answer = slot_element(Slot(urls.put_url, dict(urls.put_headers), urls.get_url))
        session.deliver(iq_result(iq, answer, from_=iq.to))
