"""XML in, dict out — with DTDs and entities refused (no billion laughs, no external entities)."""

from __future__ import annotations

from typing import Any
from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring


class BadXml(ValueError):
    """The body is not XML we accept (malformed, has a DTD/entities, wrong root)."""


def parse_xml(text: str | bytes) -> dict[str, Any]:
    """Parse a WeCom/WeChat ``<xml>…</xml>`` document into a dict of its children.

    Leaf elements become strings (CDATA unwrapped, surrounding whitespace kept as sent); elements with children
    become dicts, and repeated child names become lists (``MemChangeList/Item``).
    """
    try:
        root = fromstring(text, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except (ParseError, DefusedXmlException, ValueError) as exc:
        raise BadXml(f"malformed XML: {type(exc).__name__}") from None
    if root.tag != "xml":
        raise BadXml(f"root element must be <xml>, got <{root.tag}>")
    value = _element(root)
    return value if isinstance(value, dict) else {}


def _element(el: Element) -> Any:
    children = list(el)
    if not children:
        return el.text or ""
    out: dict[str, Any] = {}
    for child in children:
        value = _element(child)
        if child.tag in out:
            existing = out[child.tag]
            if isinstance(existing, list):
                existing.append(value)
            else:
                out[child.tag] = [existing, value]
        else:
            out[child.tag] = value
    return out
