"""XML namespaces used by the XMPP core (RFC 6120, RFC 6121, RFC 7395) and the XEPs we serve."""

from __future__ import annotations

STREAM = "http://etherx.jabber.org/streams"
CLIENT = "jabber:client"
SERVER = "jabber:server"
FRAMING = "urn:ietf:params:xml:ns:xmpp-framing"  # RFC 7395
STREAMS_ERR = "urn:ietf:params:xml:ns:xmpp-streams"
STANZAS_ERR = "urn:ietf:params:xml:ns:xmpp-stanzas"
TLS = "urn:ietf:params:xml:ns:xmpp-tls"
SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
BIND = "urn:ietf:params:xml:ns:xmpp-bind"
SESSION = "urn:ietf:params:xml:ns:xmpp-session"  # RFC 3921 §3, kept for old clients
XML = "http://www.w3.org/XML/1998/namespace"
ROSTER = "jabber:iq:roster"
DISCO_INFO = "http://jabber.org/protocol/disco#info"
DISCO_ITEMS = "http://jabber.org/protocol/disco#items"
PING = "urn:xmpp:ping"
VERSION = "jabber:iq:version"
DELAY = "urn:xmpp:delay"
CHATSTATES = "http://jabber.org/protocol/chatstates"  # XEP-0085
RECEIPTS = "urn:xmpp:receipts"  # XEP-0184
CHAT_MARKERS = "urn:xmpp:chat-markers:0"  # XEP-0333
HINTS = "urn:xmpp:hints"
PUBSUB = "http://jabber.org/protocol/pubsub"
PUBSUB_EVENT = "http://jabber.org/protocol/pubsub#event"
PUBSUB_OWNER = "http://jabber.org/protocol/pubsub#owner"
PUBSUB_ERRORS = "http://jabber.org/protocol/pubsub#errors"
DATA_FORMS = "jabber:x:data"
CAPS = "http://jabber.org/protocol/caps"

XML_LANG = "{" + XML + "}lang"


def qname(namespace: str, local: str) -> str:
    """Clark notation ``{namespace}local`` as used by :mod:`xml.etree.ElementTree`."""
    return "{" + namespace + "}" + local
