"""Entity capabilities (XEP-0115): what each connected resource supports, learnt from the
``<c/>`` element of its presence, verified and cached by its ``ver`` hash.

The hub needs this for PEP (XEP-0163 §4.3): a contact gets notifications for a node only if its
client announced ``<node>+notify``. An unknown ``ver`` costs one disco#info query to the client;
the answer is checked against the hash (SHA-1, §5.1) before it is cached for every client that
shows the same ``ver``; an answer that does not match serves only the session that gave it.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections import OrderedDict
from collections.abc import Callable, Coroutine
from typing import Any
from xml.etree.ElementTree import Element

from interlink.hub.context import HubContext
from interlink.hub.session import Session
from interlink.xmpp import ns
from interlink.xmpp.forms import X as FORM
from interlink.xmpp.forms import read_form
from interlink.xmpp.jid import JID
from interlink.xmpp.stanza import Iq, IqType, Presence

_C = ns.qname(ns.CAPS, "c")
_QUERY = ns.qname(ns.DISCO_INFO, "query")
_IDENTITY = ns.qname(ns.DISCO_INFO, "identity")
_FEATURE = ns.qname(ns.DISCO_INFO, "feature")
_CACHE_SIZE = 4096
_PENDING_MAX = 4096


def verification_string(info: Element) -> str:
    """The string S of XEP-0115 §5.1 for a disco#info result."""
    identities = sorted(
        (
            i.get("category", ""),
            i.get("type", ""),
            i.get(ns.XML_LANG, ""),
            i.get("name", ""),
        )
        for i in info.findall(_IDENTITY)
    )
    parts = ["/".join(i) + "<" for i in identities]
    parts.extend(f + "<" for f in sorted(f.get("var", "") for f in info.findall(_FEATURE)))
    forms = []
    for x in info.findall(FORM):
        fields = read_form(x)
        form_type = (fields.pop("FORM_TYPE", [""]) or [""])[0]
        text = form_type + "<"
        for var in sorted(fields):
            text += var + "<" + "".join(v + "<" for v in sorted(fields[var]))
        forms.append((form_type, text))
    parts.extend(text for _, text in sorted(forms))
    return "".join(parts)


def caps_hash(info: Element) -> str:
    digest = hashlib.sha1(verification_string(info).encode(), usedforsecurity=False).digest()
    return base64.b64encode(digest).decode()


class CapsService:
    def __init__(
        self, ctx: HubContext, on_features: Callable[[Session], Coroutine[Any, Any, None]]
    ) -> None:
        """``on_features`` runs once a session's features are known (PEP's +notify)."""
        self._ctx = ctx
        self._on_features = on_features
        self._cache: OrderedDict[str, frozenset[str]] = OrderedDict()
        self._pending: OrderedDict[str, tuple[JID, str, str]] = OrderedDict()

    def on_presence(self, session: Session, presence: Presence) -> None:
        """Learn ``session``'s features from an available presence."""
        c = presence.find(_C)
        if c is None:
            return
        ver, node, algo = c.get("ver", ""), c.get("node", ""), c.get("hash", "")
        if not ver or ver == session.caps_ver:
            return
        session.caps_ver = ver
        known = self._cache.get(ver)
        if known is not None:
            self._cache.move_to_end(ver)
            self._learnt(session, known)
            return
        query_id = "caps-" + secrets.token_hex(8)
        self._pending[query_id] = (session.jid, ver, algo)
        while len(self._pending) > _PENDING_MAX:
            self._pending.popitem(last=False)
        query = Element(_QUERY, {"node": f"{node}#{ver}"} if node else {})
        server = JID.make(None, session.jid.domain)  # the session's own server asks
        session.deliver(Iq(session.jid, server, query_id, None, (query,), IqType.GET))

    def on_response(self, session: Session, iq: Iq) -> bool:
        """Take the answer to one of our disco#info queries; ``False`` if it is not one."""
        if iq.id is None:
            return False
        pending = self._pending.get(iq.id)
        if pending is None or pending[0] != session.jid:
            return False
        del self._pending[iq.id]
        _, ver, algo = pending
        info = iq.find(_QUERY)
        if iq.type is not IqType.RESULT or info is None:
            return True
        features = frozenset(f.get("var", "") for f in info.findall(_FEATURE))
        if algo == "sha-1" and caps_hash(info) == ver:
            self._cache[ver] = features
            while len(self._cache) > _CACHE_SIZE:
                self._cache.popitem(last=False)
        if session.caps_ver == ver:
            self._learnt(session, features)
        return True

    def _learnt(self, session: Session, features: frozenset[str]) -> None:
        session.features = features
        self._ctx.spawn(self._on_features(session), name=f"caps {session.jid}")
