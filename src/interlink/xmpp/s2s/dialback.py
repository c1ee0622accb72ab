"""Server Dialback (XEP-0220) and its key generation (XEP-0185), the wire code in one place.

Dialback proves that a stream's peer is the authoritative server of a domain by asking that
domain's server, reached through DNS, whether it sent the key (XEP-0220 §2.1–§2.4): the
originating server sends ``<db:result from to>key</db:result>``; the receiving server asks the
authoritative server ``<db:verify from to id>key</db:verify>`` on a stream of its own and gets
``type='valid'`` or ``'invalid'``; it tells the originating server in ``<db:result type/>``.

The key is the one of XEP-0185 §3: ``HMAC-SHA256(hex(SHA256(secret)), "receiving originating
stream-id")`` in lower-case hex, so the authoritative server checks a key without storing it.
Interlink runs dialback only over TLS (the stream machines require TLS before it), as
XEP-0220 §2.4 / XEP-0344 recommend.
"""

from __future__ import annotations

import hashlib
import hmac

from interlink.xmpp.xml import escape_attr, escape_text

NS = "jabber:server:dialback"
FEATURE_NS = "urn:xmpp:features:dialback"  # XEP-0220 §2.5 stream feature
RESULT = "{" + NS + "}result"
VERIFY = "{" + NS + "}verify"
FEATURE = "{" + FEATURE_NS + "}dialback"


def key(secret: bytes, receiving: str, originating: str, stream_id: str) -> str:
    """The dialback key (XEP-0185 §3) for a stream ``stream_id`` that ``originating`` opened to
    ``receiving``."""
    hashed = hashlib.sha256(secret).hexdigest().encode()
    text = f"{receiving} {originating} {stream_id}".encode()
    return hmac.new(hashed, text, hashlib.sha256).hexdigest()


def key_matches(secret: bytes, receiving: str, originating: str, stream_id: str, got: str) -> bool:
    return hmac.compare_digest(key(secret, receiving, originating, stream_id), got.strip())


def result_request(from_: str, to: str, dialback_key: str) -> str:
    """XEP-0220 §2.1.1: the originating server asks to be accepted for ``from_``."""
    return (
        f'<db:result from="{escape_attr(from_)}" to="{escape_attr(to)}">'
        f"{escape_text(dialback_key)}</db:result>"
    )


def result_answer(from_: str, to: str, *, valid: bool) -> str:
    """XEP-0220 §2.4.1 / §2.4.2: the receiving server's verdict."""
    kind = "valid" if valid else "invalid"
    return f'<db:result from="{escape_attr(from_)}" to="{escape_attr(to)}" type="{kind}"/>'


def result_error(from_: str, to: str, condition: str) -> str:
    """XEP-0220 §2.4.3: the request could not be processed (e.g. an unknown ``to``)."""
    return (
        f'<db:result from="{escape_attr(from_)}" to="{escape_attr(to)}" type="error">'
        f'<error type="cancel"><{condition} xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"/>'
        "</error></db:result>"
    )


def verify_request(from_: str, to: str, stream_id: str, dialback_key: str) -> str:
    """XEP-0220 §2.3.1: the receiving server (``from_``) asks the authoritative server (``to``)."""
    return (
        f'<db:verify from="{escape_attr(from_)}" to="{escape_attr(to)}" '
        f'id="{escape_attr(stream_id)}">{escape_text(dialback_key)}</db:verify>'
    )


def verify_answer(from_: str, to: str, stream_id: str, *, valid: bool) -> str:
    """XEP-0220 §2.3.2: the authoritative server's answer."""
    kind = "valid" if valid else "invalid"
    return (
        f'<db:verify from="{escape_attr(from_)}" to="{escape_attr(to)}" '
        f'id="{escape_attr(stream_id)}" type="{kind}"/>'
    )


__all__ = [
    "FEATURE",
    "FEATURE_NS",
    "NS",
    "RESULT",
    "VERIFY",
    "key",
    "key_matches",
    "result_answer",
    "result_error",
    "result_request",
    "verify_answer",
    "verify_request",
]
