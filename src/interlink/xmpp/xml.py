"""Element helpers and the serializer for XML streams.

Elements are :class:`xml.etree.ElementTree.Element` objects with Clark-notation names
(``{namespace}local``); the C implementation makes them cheap to build. ElementTree's own
serializer invents ``ns0:`` prefixes, which XMPP clients dislike, so we serialize ourselves:
a default-namespace declaration whenever an element's namespace differs from its parent's, and
``xml:lang`` written with its reserved prefix.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from xml.etree.ElementTree import Element

from interlink.xmpp import ns

__all__ = ["Element", "element", "escape_attr", "escape_text", "serialize", "split_qname"]


def escape_text(text: str) -> str:
    if "&" in text:
        text = text.replace("&", "&amp;")
    if "<" in text:
        text = text.replace("<", "&lt;")
    if ">" in text:
        text = text.replace(">", "&gt;")
    return text


def escape_attr(text: str) -> str:
    text = escape_text(text)
    if '"' in text:
        text = text.replace('"', "&quot;")
    if "\n" in text or "\r" in text or "\t" in text:
        text = text.replace("\n", "&#10;").replace("\r", "&#13;").replace("\t", "&#9;")
    return text


def split_qname(tag: str) -> tuple[str | None, str]:
    """``{ns}local`` → ``(ns, local)``; a name without namespace gives ``(None, local)``."""
    if tag[:1] == "{":
        end = tag.index("}")
        return tag[1:end], tag[end + 1 :]
    return None, tag


def element(
    tag: str,
    attrib: dict[str, str] | None = None,
    children: Iterable[Element] = (),
    text: str | None = None,
) -> Element:
    """Build an element in one expression."""
    el = Element(tag, attrib or {})
    el.extend(children)
    if text is not None:
        el.text = text
    return el


_fragments = threading.local()  # a parser per thread, reused while it is between elements


def parse_fragment(xml: str) -> Element:
    """Parse one element serialized by :func:`serialize` (e.g. read back from storage, or an
    OMEMO envelope), with the same restricted parser that reads the network.

    Setting up a parser costs more than parsing a small element (~40 of ~65 µs), so each thread
    keeps one and reuses it, as a WebSocket stream parses frame after frame. It is dropped
    after any input that did not leave it cleanly between elements (an error, trailing junk,
    a closed root), so one fragment can never affect how the next is read."""
    from interlink.xmpp.parser import ElementReceived, Framing, StreamParser

    parser: StreamParser | None = getattr(_fragments, "parser", None)
    if parser is None:
        parser = _fragments.parser = StreamParser(framing=Framing.WEBSOCKET)
    events = parser.feed_frame(xml.encode())
    if not parser.between_elements:
        _fragments.parser = None
    if len(events) != 1 or not isinstance(events[0], ElementReceived):
        _fragments.parser = None
        raise ValueError(f"not one well-formed element: {events}")
    return events[0].element


def serialize(el: Element, parent_ns: str | None = None) -> str:
    """Serialize ``el`` as it would appear inside an element whose default namespace is
    ``parent_ns``."""
    out: list[str] = []
    _write(el, parent_ns, out)
    return "".join(out)


def _write(el: Element, parent_ns: str | None, out: list[str]) -> None:
    el_ns, local = split_qname(el.tag)
    out.append("<" + local)
    if el_ns != parent_ns:
        out.append(' xmlns="' + escape_attr(el_ns or "") + '"')
    prefixes = 0
    for key, value in el.attrib.items():
        if key[:1] == "{":
            a_ns, a_local = split_qname(key)
            if a_ns == ns.XML:
                name = "xml:" + a_local
            else:
                prefixes += 1
                name = f"a{prefixes}:{a_local}"
                out.append(f' xmlns:a{prefixes}="' + escape_attr(a_ns or "") + '"')
        else:
            name = key
        out.append(" " + name + '="' + escape_attr(value) + '"')
    if len(el) == 0 and not el.text:
        out.append("/>")
    else:
        out.append(">")
        if el.text:
            out.append(escape_text(el.text))
        for child in el:
            _write(child, el_ns, out)
            if child.tail:
                out.append(escape_text(child.tail))
        out.append("</" + local + ">")
