"""Data forms (XEP-0004): what publish-options, node configuration and ad-hoc commands need."""

from __future__ import annotations

from dataclasses import dataclass
from xml.etree.ElementTree import Element

from interlink.xmpp import ns

X = ns.qname(ns.DATA_FORMS, "x")
_FIELD = ns.qname(ns.DATA_FORMS, "field")
_VALUE = ns.qname(ns.DATA_FORMS, "value")


def read_form(x: Element) -> dict[str, list[str]]:
    """Field var → values of a submitted form (``FORM_TYPE`` included)."""
    fields: dict[str, list[str]] = {}
    for f in x.findall(_FIELD):
        var = f.get("var")
        if var:
            fields[var] = [(v.text or "") for v in f.findall(_VALUE)]
    return fields


def build_form(form_type: str, fields: dict[str, str], *, type_: str = "form") -> Element:
    x = Element(X, {"type": type_})
    for var, value in [("FORM_TYPE", form_type), *fields.items()]:
        f = Element(_FIELD, {"var": var})
        if var == "FORM_TYPE":
            f.set("type", "hidden")
        v = Element(_VALUE)
        v.text = value
        f.append(v)
        x.append(f)
    return x


@dataclass(frozen=True, slots=True)
class FormField:
    """One field of a form the hub sends (XEP-0004 §3.2): a request (``form``) or a result."""

    var: str
    type_: str = "text-single"  # XEP-0004 §3.3: text-private, text-multi, jid-multi, hidden...
    label: str | None = None
    values: tuple[str, ...] = ()
    required: bool = False


def render_form(
    form_type: str,
    fields: list[FormField],
    *,
    type_: str = "form",
    title: str | None = None,
    instructions: str | None = None,
) -> Element:
    """A ``<x xmlns='jabber:x:data'/>`` of ``type_`` with a hidden ``FORM_TYPE`` (XEP-0068)."""
    x = Element(X, {"type": type_})
    for tag, text in (("title", title), ("instructions", instructions)):
        if text is not None:
            child = Element(ns.qname(ns.DATA_FORMS, tag))
            child.text = text
            x.append(child)
    for field in [FormField("FORM_TYPE", "hidden", values=(form_type,)), *fields]:
        attrs = {"var": field.var, "type": field.type_}
        if field.label is not None:
            attrs["label"] = field.label
        f = Element(_FIELD, attrs)
        if field.required:
            f.append(Element(ns.qname(ns.DATA_FORMS, "required")))
        for value in field.values:
            v = Element(_VALUE)
            v.text = value
            f.append(v)
        x.append(f)
    return x
