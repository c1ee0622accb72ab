"""Incremental, restricted XML parsing of an XMPP stream (RFC 6120 §11, RFC 7395 §3.3).

Theory of operation
-------------------
Bytes go in through :meth:`StreamParser.feed` in whatever pieces the network delivers; complete
events come out: the stream header, each complete top-level element (a stanza or a negotiation
element) and the stream footer. Expat does the tokenising, so the result does not depend on where
the input was split.

Restricted XML (RFC 6120 §11.1) is enforced by handlers that fail as soon as expat reports a
document type declaration, an entity declaration, a comment or a processing instruction; an
entity reference other than the five predefined ones fails too (expat reports it as undefined,
since no DTD is ever accepted). Those give ``<restricted-xml/>``; every other expat error, invalid
UTF-8 and characters not allowed in XML 1.0 give ``<not-well-formed/>``.

Limits (:class:`XmlLimits`) bound the memory and CPU one peer can make us spend: the bytes and
the elements of one top-level element, the nesting depth, attributes per element, name lengths,
namespace declarations per stanza, and the attributes and namespace declarations of the stream
header (which stay in force, and in expat's memory, for the whole stream). The element count
matters as much as the bytes: an ElementTree element costs some 300 bytes of Python objects, so
256 KiB of ``<a b=''/>`` would otherwise become about 10 MB of tree. The stream chooses the limits
per phase: much smaller ones before authentication (RFC 6120 §13.12), see
:class:`~interlink.xmpp.stream.config.StreamConfig`.

Two framings exist (:mod:`interlink.xmpp.framing`): the classic TCP stream, where everything is
a child of one ``<stream:stream>`` root, and RFC 7395 WebSocket framing, where each frame holds
one complete element and ``<open/>``/``<close/>`` stand for the stream header and footer. For the
latter the parser is fed the framing's synthetic root once, so the same machinery serves both;
:meth:`StreamParser.feed_frame` checks that a frame holds exactly one top-level element.

Expat remembers every distinct attribute name and namespace prefix it has seen, for as long as it
lives, so a peer sending new names in every stanza (each within every limit) would grow one
stream's parser without end. The parser therefore renews expat, as hibernation does, at the first
clean boundary after :data:`RENEW_AFTER_BYTES` of input.

After an error the parser is dead: :meth:`feed` returns the events completed before the error,
then :class:`ParseFailed`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any
from xml.etree.ElementTree import Element
from xml.parsers import expat

from interlink.errors import StreamError, StreamErrorCondition
from interlink.xmpp.framing import Framing as Framing  # re-exported: callers pick a framing
from interlink.xmpp.xml import escape_attr

_UNDEFINED_ENTITY = expat.errors.codes[expat.errors.XML_ERROR_UNDEFINED_ENTITY]
# expat names ("uri}local") → Clark names ("{uri}local"); shared by all parsers, bounded.
_NAMES: dict[str, str] = {}
_NAMES_KEPT = 4096
#: Input after which expat is replaced at the next clean boundary (see the module docstring).
RENEW_AFTER_BYTES = 256 * 1024


@dataclass(frozen=True, slots=True)
class XmlLimits:
    """Bounds on what one peer may send. Every value is configurable.

    ``max_stanza_bytes`` counts one top-level element from its start tag to the start of its end
    tag (and any unfinished input); ``max_elements`` counts the elements of one top-level element,
    itself included; ``max_depth`` counts nesting inside a stanza, the stanza element itself being
    level 1; ``max_name_length`` applies to local names of elements and attributes;
    ``max_namespace_declarations`` counts ``xmlns`` and ``xmlns:prefix`` declarations anywhere in
    one top-level element. ``max_header_attributes`` and ``max_header_namespaces`` bound the stream
    header (TCP framing; over WebSocket ``<open/>`` is an element like any other).
    """

    max_stanza_bytes: int = 256 * 1024
    max_elements: int = 4096
    max_depth: int = 32
    max_attributes: int = 64
    max_name_length: int = 256
    max_namespace_declarations: int = 64
    max_header_attributes: int = 16
    max_header_namespaces: int = 16

    def __post_init__(self) -> None:
        for f in fields(self):
            if getattr(self, f.name) < 1:
                raise ValueError(f"{f.name} must be at least 1")


@dataclass(frozen=True, slots=True)
class StreamHeader:
    """``<stream:stream>`` (TCP) or ``<open/>`` (WebSocket) with its attributes."""

    tag: str
    attrs: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ElementReceived:
    """One complete top-level element: a stanza or a negotiation element."""

    element: Element
    size: int


@dataclass(frozen=True, slots=True)
class StreamFooter:
    """``</stream:stream>`` (TCP) or ``<close/>`` (WebSocket)."""


@dataclass(frozen=True, slots=True)
class ParseFailed:
    """The input broke XML, restricted XML or a limit; the stream must end with ``error``."""

    error: StreamError


ParserEvent = StreamHeader | ElementReceived | StreamFooter | ParseFailed


class _Stop(Exception):
    def __init__(self, error: StreamError) -> None:
        self.error = error


def _restricted(what: str) -> _Stop:
    return _Stop(StreamError(StreamErrorCondition.RESTRICTED_XML, f"{what} are not allowed"))


class StreamParser:
    """Turns the bytes of one stream direction into :data:`ParserEvent` objects."""

    def __init__(self, limits: XmlLimits | None = None, framing: Framing = Framing.TCP) -> None:
        self.limits = limits or XmlLimits()
        self.framing = framing
        self._parser: Any = None
        self._stack: list[Element] = []
        self._events: list[ParserEvent] = []
        self._consumed = 0
        self._boundary = 0
        self._stanza_start = 0
        self._failed = False
        self._root_namespaces: list[tuple[str, str]] = []
        self._chunk_start = 0
        self._chunk = b""
        self._clean = False  # nothing but whitespace follows the last complete element
        self._top_has_content = False
        self._last_end = -1
        self._last_had_content = False
        self._elements = 0  # in the current top-level element
        self._namespaces = 0  # declared in the current top-level element, or in the header
        self._new_expat()
        if framing.synthetic_root is not None:
            self._feed_bytes(framing.synthetic_root)
            self._boundary = self._consumed

    def _new_expat(self) -> None:
        p = expat.ParserCreate(encoding="UTF-8", namespace_separator="}")
        p.buffer_text = True
        p.buffer_size = 2048  # each parser allocates this; idle connections are many
        p.ordered_attributes = False
        p.specified_attributes = True
        p.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
        p.StartElementHandler = self._start
        p.EndElementHandler = self._end
        p.CharacterDataHandler = self._chars
        p.XmlDeclHandler = self._xml_decl
        p.StartDoctypeDeclHandler = self._doctype
        p.EntityDeclHandler = self._entity_decl
        p.UnparsedEntityDeclHandler = self._entity_decl
        p.NotationDeclHandler = self._entity_decl
        p.CommentHandler = self._comment
        p.ProcessingInstructionHandler = self._pi
        p.ExternalEntityRefHandler = self._external_entity
        p.SkippedEntityHandler = self._skipped_entity
        p.StartNamespaceDeclHandler = self._namespace_decl
        self._parser = p
        self._consumed = 0

    # -- hibernation -----------------------------------------------------------------------------
    @property
    def hibernating(self) -> bool:
        return self._parser is None

    def hibernate(self) -> bool:
        """Free the expat parser of an idle stream (about 15 KiB) if it holds no partial input.

        The next :meth:`feed` builds a new one, primed with the stream root's namespace
        declarations, so parsing continues as if nothing happened. Returns whether it hibernated.
        """
        if self._parser is None:
            return True
        if self._failed or len(self._stack) != 1 or not self._clean:
            return False
        self._parser = None
        self._chunk = b""
        return True

    def _wake(self) -> None:
        self._new_expat()
        decls = "".join(
            f' xmlns:{prefix}="{escape_attr(uri)}"' if prefix else f' xmlns="{escape_attr(uri)}"'
            for prefix, uri in self._root_namespaces
        )
        root = self._stack[0]
        qname = self._root_qname()
        self._stack.clear()
        self._priming = True
        try:
            self._feed_bytes(f"<{qname}{decls}>".encode())
        finally:
            self._priming = False
        self._stack[0] = root
        self._boundary = self._consumed

    _priming = False

    def _root_qname(self) -> str:
        """The root's name as the peer wrote it, so its closing tag still matches."""
        tag = self._stack[0].tag if self._stack else "root"
        if tag[:1] != "{":
            return tag
        uri, local = tag[1:].split("}", 1)
        for prefix, declared in self._root_namespaces:
            if declared == uri:
                return f"{prefix}:{local}" if prefix else local
        return local

    @property
    def failed(self) -> bool:
        return self._failed

    @property
    def between_elements(self) -> bool:
        """Nothing is pending: no failure, no open element, nothing but whitespace after the last
        complete one. Only then may the parser be reused for unrelated input."""
        return not self._failed and len(self._stack) == 1 and self._clean

    # -- input --------------------------------------------------------------------------------
    def feed(self, data: bytes) -> list[ParserEvent]:
        """Parse ``data``; return the events it completed (an error, if any, comes last)."""
        if self._failed:
            return []
        if self._parser is None:
            self._wake()
        self._chunk_start = self._consumed
        self._chunk = data
        was_clean, self._clean = self._clean, False
        self._last_end = -1
        try:
            self._feed_bytes(data)
            if self._last_end >= 0:  # checked once per read, not per stanza
                self._clean = self._only_space_after(self._last_end)
            elif was_clean and not data.strip():
                self._clean = True  # whitespace keepalives keep a clean boundary
            if self._clean and len(self._stack) == 1:
                self._boundary = self._consumed  # whitespace between stanzas costs no budget
            if self._consumed - self._boundary > self.limits.max_stanza_bytes:
                raise _Stop(self._too_big())
        except _Stop as stop:
            self._fail(stop.error)
        except expat.ExpatError as exc:
            self._fail(self._expat_error(exc))
        if self._clean and self._consumed > RENEW_AFTER_BYTES:
            self.hibernate()  # the next feed starts a fresh expat
        events, self._events = self._events, []
        return events

    def feed_frame(self, frame: bytes) -> list[ParserEvent]:
        """WebSocket framing: ``frame`` must hold exactly one complete element (RFC 7395 §3.3.3).

        An unfinished element fails with ``<not-well-formed/>`` after the events the frame did
        complete; a frame holding more than one top-level element fails whole with
        ``<bad-format/>`` (none of its elements is reported), so a peer cannot batch stanzas
        into one message. A frame of only whitespace yields nothing."""
        events = self.feed(frame)
        if self._failed:
            return events
        if self._stack_depth() != 0:
            self._fail(
                StreamError(
                    StreamErrorCondition.NOT_WELL_FORMED,
                    "a WebSocket frame must contain exactly one complete XML element",
                )
            )
        elif len(events) > 1:
            self._fail(
                StreamError(
                    StreamErrorCondition.BAD_FORMAT,
                    f"a WebSocket frame must hold one top-level element (RFC 7395 §3.3.3); "
                    f"this one held {len(events)}",
                )
            )
            events = []
        events.extend(self._events)
        self._events = []
        return events

    def _stack_depth(self) -> int:
        return len(self._stack) - 1  # below the synthetic root

    def _feed_bytes(self, data: bytes) -> None:
        self._consumed += len(data)
        self._parser.Parse(data, False)

    def _fail(self, error: StreamError) -> None:
        self._failed = True
        self._events.append(ParseFailed(error))
        self.release()

    def release(self) -> None:
        """Drop expat and the partial tree now: the parser will never be fed again.

        A failed or closed stream's object may outlive its input for a while (the error is still
        being written to a peer that does not read), so its memory must not wait for that."""
        self._failed = True
        # expat holds our bound methods as handlers: a cycle only the cyclic collector would
        # free, late, with the whole partial tree. Dropping our side frees both at once.
        self._parser = None
        self._stack = []
        self._chunk = b""
        self._root_namespaces = []

    def _too_big(self) -> StreamError:
        return StreamError(
            StreamErrorCondition.POLICY_VIOLATION,
            f"stanza larger than the limit of {self.limits.max_stanza_bytes} bytes",
        )

    def _expat_error(self, exc: expat.ExpatError) -> StreamError:
        if exc.code == _UNDEFINED_ENTITY:
            return StreamError(
                StreamErrorCondition.RESTRICTED_XML,
                "entity references other than the five predefined ones are not allowed",
            )
        return StreamError(StreamErrorCondition.NOT_WELL_FORMED, f"XML error: {exc}")

    # -- expat handlers -----------------------------------------------------------------------
    def _name(self, raw: str) -> str:
        name = _NAMES.get(raw)
        if name is None:
            if len(raw) > self.limits.max_name_length + 1024:
                raise _Stop(self._name_too_long())
            sep = raw.find("}")
            if sep >= 0:
                local = raw[sep + 1 :]
                name = "{" + raw
            else:
                local = raw
                name = raw
            if len(local) > self.limits.max_name_length:
                raise _Stop(self._name_too_long())
            if len(_NAMES) >= _NAMES_KEPT:
                # Start again rather than stop caching: otherwise names a peer invents (before
                # logging in, even) would fill the cache once and slow every stream for good.
                _NAMES.clear()
            _NAMES[raw] = name
        return name

    def _name_too_long(self) -> StreamError:
        return StreamError(
            StreamErrorCondition.POLICY_VIOLATION,
            f"XML name longer than the limit of {self.limits.max_name_length} characters",
        )

    def _start(self, raw: str, attrs: dict[str, str]) -> None:
        depth = len(self._stack)
        if depth >= self.limits.max_depth + 1:
            raise _Stop(
                StreamError(
                    StreamErrorCondition.POLICY_VIOLATION,
                    f"elements nested deeper than the limit of {self.limits.max_depth}",
                )
            )
        if len(attrs) > self.limits.max_attributes:
            raise _Stop(
                StreamError(
                    StreamErrorCondition.POLICY_VIOLATION,
                    f"more than {self.limits.max_attributes} attributes on one element",
                )
            )
        names = _NAMES
        tag = names.get(raw) or self._name(raw)
        if attrs:
            attrs = {(names.get(k) or self._name(k)): v for k, v in attrs.items()}
        if depth == 0:
            el = Element(tag, attrs)
            self._stack.append(el)
            if self._priming:
                return
            self._namespaces = 0
            if self.framing.synthetic_root is None:  # the peer's root is the stream header
                if len(attrs) > self.limits.max_header_attributes:
                    raise _Stop(
                        StreamError(
                            StreamErrorCondition.POLICY_VIOLATION,
                            f"more than {self.limits.max_header_attributes} attributes on the "
                            "stream header",
                        )
                    )
                self._boundary = self._parser.CurrentByteIndex
                self._clean = self._header_ends_chunk(self._boundary)
                self._events.append(StreamHeader(tag, attrs))
            return
        if depth == 1:
            self._stanza_start = self._parser.CurrentByteIndex
            self._top_has_content = False
            self._elements = 1
            el = Element(tag, attrs)
        else:
            self._elements += 1
            if self._elements > self.limits.max_elements:
                raise _Stop(
                    StreamError(
                        StreamErrorCondition.POLICY_VIOLATION,
                        f"more than {self.limits.max_elements} elements in one stanza",
                    )
                )
            self._top_has_content = True
            parent = self._stack[-1]
            el = Element(tag, attrs)
            parent.append(el)
        self._stack.append(el)

    def _end(self, raw: str) -> None:
        el = self._stack.pop()
        depth = len(self._stack)
        if depth == 1:
            end = self._parser.CurrentByteIndex
            size = end - self._stanza_start
            if size > self.limits.max_stanza_bytes:
                raise _Stop(self._too_big())
            self._boundary = end
            self._last_end = end
            self._last_had_content = self._top_has_content
            self._namespaces = 0
            if el.tag == self.framing.open_tag:
                self._events.append(StreamHeader(el.tag, dict(el.attrib)))
            elif el.tag == self.framing.close_tag:
                self._events.append(StreamFooter())
            else:
                self._events.append(ElementReceived(el, size))
        elif depth == 0:
            self._events.append(StreamFooter())

    def _only_space_after(self, end: int) -> bool:
        """Whether nothing but whitespace follows, in the current chunk, the top-level element
        that just ended (so no partial token waits inside expat). ``end`` is expat's position in
        the end handler: the start of ``</name>``, or just past ``/>`` for an empty element."""
        pos = end - self._chunk_start
        chunk = self._chunk
        if pos < 2 or pos > len(chunk):
            return False  # the tag straddles chunks: do not guess
        if not self._last_had_content and chunk[pos - 2 : pos] == b"/>":
            return len(chunk.rstrip()) == pos
        close = chunk.find(b">", pos)  # an end tag holds no quotes, so its first '>' ends it
        return close >= 0 and len(chunk.rstrip()) == close + 1

    def _header_ends_chunk(self, start: int) -> bool:
        """Whether the stream header starting at ``start`` ends the current chunk (but for
        whitespace); attribute values may hold '>', so quotes are honoured."""
        pos = start - self._chunk_start
        chunk = self._chunk
        if pos < 0:
            return False
        quote = 0
        for i in range(pos, len(chunk)):
            byte = chunk[i]
            if quote:
                quote = 0 if byte == quote else quote
            elif byte in (0x22, 0x27):
                quote = byte
            elif byte == 0x3E:
                return not chunk[i + 1 :].strip()
        return False

    def _namespace_decl(self, prefix: str | None, uri: str) -> None:
        # Called before the start handler of the element that declares it.
        if self._priming:
            return
        self._namespaces += 1
        if len(self._stack) == 0:
            if self._namespaces > self.limits.max_header_namespaces:
                raise _Stop(
                    StreamError(
                        StreamErrorCondition.POLICY_VIOLATION,
                        f"more than {self.limits.max_header_namespaces} namespace declarations "
                        "on the stream header",
                    )
                )
            self._root_namespaces.append((prefix or "", uri))
        elif self._namespaces > self.limits.max_namespace_declarations:
            raise _Stop(
                StreamError(
                    StreamErrorCondition.POLICY_VIOLATION,
                    f"more than {self.limits.max_namespace_declarations} namespace declarations "
                    "in one stanza",
                )
            )

    def _chars(self, data: str) -> None:
        depth = len(self._stack)
        if depth <= 1:
            if data.strip():
                raise _Stop(
                    StreamError(
                        StreamErrorCondition.BAD_FORMAT,
                        "character data is not allowed between stanzas",
                    )
                )
            return
        self._top_has_content = True
        top = self._stack[-1]
        if len(top):
            last = top[-1]
            last.tail = data if last.tail is None else last.tail + data
        else:
            top.text = data if top.text is None else top.text + data

    def _xml_decl(self, version: str | None, encoding: str | None, standalone: int) -> None:
        if version is not None and version != "1.0":
            raise _Stop(
                StreamError(StreamErrorCondition.UNSUPPORTED_VERSION, "only XML 1.0 is supported")
            )
        if encoding is not None and encoding.lower().replace("_", "-") != "utf-8":
            raise _Stop(
                StreamError(StreamErrorCondition.UNSUPPORTED_ENCODING, "streams must be UTF-8")
            )

    def _doctype(self, *_: Any) -> None:
        raise _restricted("document type declarations (DTDs)")

    def _entity_decl(self, *_: Any) -> None:
        raise _restricted("entity declarations")

    def _comment(self, _: str) -> None:
        raise _restricted("XML comments")

    def _pi(self, _target: str, _data: str) -> None:
        raise _restricted("processing instructions")

    def _external_entity(self, *_: Any) -> int:
        raise _restricted("external entities")

    def _skipped_entity(self, *_: Any) -> None:
        raise _restricted("entity references")
