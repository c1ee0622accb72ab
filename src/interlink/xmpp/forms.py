"""Data forms (XEP-0004), just what publish-options and node configuration need."""

from __future__ import annotations

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
