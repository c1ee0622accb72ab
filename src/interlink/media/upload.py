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
from interlink.xmpp import ns
from interlink.xmpp.forms import build_form
from interlink.xmpp.jid import JID
from interlink.xmpp.stanza import Iq, IqType, Stanza, error_element, iq_result

NS = "urn:xmpp:http:upload:0"
REQUEST = ns.qname(NS, "request")
_MAX_SIZE_DIGITS = 20


class Requester(Protocol):
    """What the service needs of the requesting session (:class:`interlink.hub.session.Session`)."""

    @property
    def jid(self) -> JID: ...

    def deliver(self, stanza: Stanza) -> None: ...


def disco_identity() -> Element:
    """The identity XEP-0363 §2 has the upload service announce."""
    return Element(
        ns.qname(ns.DISCO_INFO, "identity"),
        {"category": "store", "type": "file", "name": "HTTP File Upload"},
    )


def disco_features() -> tuple[str, ...]:
    return (NS,)


def disco_form(max_file_size: int) -> Element:
    """The XEP-0128 extension of disco#info announcing ``max-file-size`` (XEP-0363 §2)."""
    return build_form(NS, {"max-file-size": str(max_file_size)}, type_="result")


def _error_stanza(iq: Iq, error: MediaError) -> Iq:
    stanza_error = StanzaError(error.condition, error.detail)
    el = error_element(stanza_error)
    if isinstance(error, FileTooLarge):
        too_large = Element(ns.qname(NS, "file-too-large"))
        max_size = Element(ns.qname(NS, "max-file-size"))
        max_size.text = str(error.max_size)
        too_large.append(max_size)
        el.append(too_large)
    return Iq(iq.from_, iq.to, iq.id, None, (el,), IqType.ERROR)


def _parse_request(request: Element) -> tuple[str, int, str | None]:
    filename = request.get("filename", "")
    size_text = request.get("size", "")
    if not size_text.isdigit() or len(size_text) > _MAX_SIZE_DIGITS:
        raise StanzaError(StanzaErrorCondition.BAD_REQUEST, "size must be a number of bytes")
    return filename, int(size_text), request.get("content-type")


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
        filename, size, content_type = _parse_request(request)
        owner = session.jid.bare
        try:
            if not self._may_upload(owner):
                raise UploadNotAllowed("this account may not upload files to this server")
            slot = await self._store.request_slot(str(owner), filename, size, content_type)
        except MediaError as exc:
            session.deliver(_error_stanza(iq, exc))
            return
        urls = slot_urls(self._base_url, slot)
        answer = Element(ns.qname(NS, "slot"))
        put = Element(ns.qname(NS, "put"), {"url": urls.put_url})
        for name, value in urls.put_headers.items():
            header = Element(ns.qname(NS, "header"), {"name": name})
            header.text = value
            put.append(header)
        answer.append(put)
        answer.append(Element(ns.qname(NS, "get"), {"url": urls.get_url}))
        session.deliver(iq_result(iq, answer, from_=iq.to))
