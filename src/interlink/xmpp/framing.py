"""How an XML stream travels on a transport: TCP (RFC 6120 §4) or WebSocket (RFC 7395 §3).

Theory of operation
-------------------
The stream state machine and the parser are the same for every transport; only the edges differ.
A :class:`Framing` object says how:

- on TCP the stream is one XML document per direction: ``<stream:stream>`` opens it, its end tag
  closes it, and the root's default namespace (``jabber:client``) covers every stanza, so stanzas
  are written without ``xmlns``. Output is a byte stream; element boundaries mean nothing to TCP.
- on WebSocket every message (frame) holds exactly one complete top-level element (RFC 7395
  §3.3.3); ``<open/>`` and ``<close/>`` in the framing namespace stand for the header and footer
  (§3.3.2, §3.6), and as there is no enclosing root, every element declares its own namespaces.

The parser uses :attr:`Framing.synthetic_root`, :attr:`Framing.open_tag` and
:attr:`Framing.close_tag`; the stream uses the writers (:meth:`Framing.header`,
:meth:`Framing.footer`, :meth:`Framing.stream_element`) and :meth:`Framing.content_ns`; the
transport shell uses :attr:`Framing.message_per_element` to write bytes or send frames.

There are two framings, :data:`Framing.TCP` and :data:`Framing.WEBSOCKET`; both are stateless
singletons, compared with ``is``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

from interlink.errors import StreamError
from interlink.xmpp import ns
from interlink.xmpp.xml import escape_attr, escape_text

WS_OPEN = ns.qname(ns.FRAMING, "open")
WS_CLOSE = ns.qname(ns.FRAMING, "close")
STREAM_TAG = ns.qname(ns.STREAM, "stream")


class Framing(ABC):
    """One way of carrying an XML stream; see the module docstring."""

    TCP: ClassVar[Framing]
    WEBSOCKET: ClassVar[Framing]

    name: ClassVar[str]
    #: Each top-level element leaves as one transport message (a WebSocket frame), and each
    #: message received must hold exactly one.
    message_per_element: ClassVar[bool]
    #: The tag of the element that opens the stream (what the header must be).
    header_tag: ClassVar[str]
    #: Bytes fed to a new parser before any input, when the transport has no enclosing root.
    synthetic_root: ClassVar[bytes | None]
    #: Top-level elements that stand for the stream header and footer (``None``: the root is).
    open_tag: ClassVar[str | None]
    close_tag: ClassVar[str | None]

    @abstractmethod
    def content_ns(self, role_ns: str) -> str | None:
        """The default namespace stanzas are written in: ``role_ns`` where the header declares it
        for the whole stream, ``None`` where each element must declare its own."""

    @abstractmethod
    def header(self, *, content_ns: str, stream_id: str, from_: str) -> str:
        """The response stream header (RFC 6120 §4.7)."""

    @abstractmethod
    def footer(self) -> str:
        """What closes our side of the stream (RFC 6120 §4.4)."""

    @abstractmethod
    def stream_element(self, local: str, inner: str) -> str:
        """A ``stream:``-prefixed element (``features``, ``error``) holding ``inner``."""

    def stream_error(self, error: StreamError) -> str:
        """The ``<stream:error/>`` telling ``error`` (RFC 6120 §4.9.2): its condition, its
        application-specific condition if any (§4.9.4) and its text."""
        text = (
            f'<text xmlns="{ns.STREAMS_ERR}" xml:lang="en">{escape_text(error.text)}</text>'
            if error.text
            else ""
        )
        return self.stream_element(
            "error", f'<{error.condition} xmlns="{ns.STREAMS_ERR}"/>{error.app_condition}{text}'
        )

    def __repr__(self) -> str:
        return f"Framing.{self.name.upper()}"


class TcpFraming(Framing):
    name = "tcp"
    message_per_element = False
    header_tag = STREAM_TAG
    synthetic_root = None
    open_tag = None
    close_tag = None

    def content_ns(self, role_ns: str) -> str | None:
        return role_ns

    def header(self, *, content_ns: str, stream_id: str, from_: str) -> str:
        return (
            "<?xml version='1.0'?>"
            f'<stream:stream xmlns="{escape_attr(content_ns)}" xmlns:stream="{ns.STREAM}" '
            f'id="{stream_id}" from="{escape_attr(from_)}" version="1.0" xml:lang="en">'
        )

    def footer(self) -> str:
        return "</stream:stream>"

    def stream_element(self, local: str, inner: str) -> str:
        return f"<stream:{local}>{inner}</stream:{local}>"  # the header declared the prefix


class WebSocketFraming(Framing):
    name = "websocket"
    message_per_element = True
    header_tag = WS_OPEN
    synthetic_root = b"<interlink-websocket-frames>"
    open_tag = WS_OPEN
    close_tag = WS_CLOSE

    def content_ns(self, role_ns: str) -> str | None:
        return None

    def header(self, *, content_ns: str, stream_id: str, from_: str) -> str:
        return (
            f'<open xmlns="{ns.FRAMING}" id="{stream_id}" from="{escape_attr(from_)}" '
            'version="1.0" xml:lang="en"/>'
        )

    def footer(self) -> str:
        return f'<close xmlns="{ns.FRAMING}"/>'

    def stream_element(self, local: str, inner: str) -> str:
        return f'<stream:{local} xmlns:stream="{ns.STREAM}">{inner}</stream:{local}>'


Framing.TCP = TcpFraming()
Framing.WEBSOCKET = WebSocketFraming()

__all__ = ["STREAM_TAG", "WS_CLOSE", "WS_OPEN", "Framing", "TcpFraming", "WebSocketFraming"]
