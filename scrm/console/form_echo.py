"""A refused form comes back as the user left it: what they typed, and the reason next to the field it is about.

Console writes answer with a redirect (303) to the page that holds the form, so the refusal travels in the signed
flash cookie (:func:`scrm.console.auth.set_flash`): the form's action path, the submitted text values (never the
CSRF token or a password; long values dropped to keep the cookie small) and the field the domain error names.
The page that shows the flash then refills that form — and only that form, found by its ``action`` — in its
rendered HTML (:func:`refill`): inputs get their values back, selects their choice, textareas their text, and the
named field is marked ``aria-invalid`` with the message beside it. Every console form gets this without a line in
its template; the values are escaped like any other text.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import unquote

NEVER_KEPT = frozenset({"csrf_token", "password", "next"})
# What the values may take in the flash cookie: with the message (≤ 300 characters, ≤ 900 bytes) and base64 the
# signed cookie stays under the 4 KiB browsers keep (and Signer.unsign accepts).
MAX_JSON_BYTES = 1800
SKIPPED_TYPES = frozenset({"hidden", "password", "submit", "button", "file", "image", "reset"})

_FORM = re.compile(r"<form\b[^>]*>.*?</form>", re.S | re.I)
_ACTION = re.compile(r'\baction="([^"]*)"', re.I)
_INPUT = re.compile(r"<input\b[^>]*>", re.I)
_TEXTAREA = re.compile(r"(<textarea\b[^>]*>)(.*?)(</textarea>)", re.S | re.I)
_SELECT = re.compile(r"(<select\b[^>]*>)(.*?)(</select>)", re.S | re.I)
_OPTION = re.compile(r"<option\b[^>]*>", re.I)


@dataclass(frozen=True)
class FormEcho:
    """A refused submission: the form (its action path), its values, the field at fault and why."""

    action: str
    values: Mapping[str, str | list[str]] = field(default_factory=dict)  # a list: several ticked boxes of one name
    field: str = ""
    message: str = ""

    def to_payload(self) -> dict[str, object]:
        """For the flash cookie (the message travels as the flash's own text, not twice)."""
        return {"a": self.action, "v": dict(self.values), "f": self.field}

    @classmethod
    def from_payload(cls, data: object, message: str) -> FormEcho | None:
        if not isinstance(data, dict) or not isinstance(data.get("a"), str) or not isinstance(data.get("v"), dict):
            return None
        values: dict[str, str | list[str]] = {}
        for k, v in data["v"].items():
            if isinstance(v, str):
                values[str(k)] = v
            elif isinstance(v, list) and all(isinstance(x, str) for x in v):
                values[str(k)] = [str(x) for x in v]
        return cls(data["a"], values, str(data.get("f") or ""), message)


def kept_values(form: Mapping[str, str | list[str]]) -> dict[str, str | list[str]]:
    """The values worth refilling: no token or password, and — when they would not fit the cookie — without the
    longest ones (a long text is better retyped than a cookie the browser drops). A name posted several times
    (ticked checkboxes) keeps all its values as a list."""
    values = {k: v for k, v in form.items() if k not in NEVER_KEPT}
    while values and len(json.dumps(values, ensure_ascii=False).encode()) > MAX_JSON_BYTES:
        del values[max(values, key=lambda k: len(json.dumps(values[k], ensure_ascii=False)))]
    return values


def _one(value: str | list[str] | None) -> str | None:
    """A single-valued field's value (the last one when it was posted several times, as a plain form read does)."""
    return value[-1] if isinstance(value, list) else value


def _attr(tag: str, name: str) -> str | None:
    found = re.search(rf'\b{name}="([^"]*)"', tag, re.I)
    return html.unescape(found.group(1)) if found else None


def _without(tag: str, name: str) -> str:
    return re.sub(rf'\s{name}(="[^"]*")?(?=[\s>/])', "", tag, flags=re.I)


def _add(tag: str, attrs: str) -> str:
    end = -2 if tag.endswith("/>") else -1
    return f"{tag[:end].rstrip()} {attrs}{tag[end:]}"


def _mark(tag: str, echo: FormEcho) -> str:
    """The field at fault: aria-invalid, the invalid class, described by the message beside it."""
    tag = _add(_without(tag, "aria-invalid"), f'aria-invalid="true" aria-describedby="{html.escape(echo.field)}-error"')
    klass = _attr(tag, "class")
    return _add(_without(tag, "class"), f'class="{html.escape(((klass or "") + " invalid").strip())}"')


def _note(echo: FormEcho) -> str:
    return f'<span class="field-error" id="{html.escape(echo.field)}-error">{html.escape(echo.message)}</span>'


def _refill_form(form: str, echo: FormEcho) -> str:
    values = echo.values

    def one_input(m: re.Match[str]) -> str:
        tag = m.group(0)
        name, kind = _attr(tag, "name"), (_attr(tag, "type") or "text").lower()
        if name is None or kind in SKIPPED_TYPES:
            return tag
        if kind in ("checkbox", "radio"):
            own = _attr(tag, "value") or "on"
            tag = _without(tag, "checked")
            posted = values.get(name)
            if own in (posted if isinstance(posted, list) else [posted]):
                tag = _add(tag, "checked")
        elif name in values:
            tag = _add(_without(tag, "value"), f'value="{html.escape(_one(values[name]) or "", quote=True)}"')
        return _mark(tag, echo) + _note(echo) if name == echo.field else tag

    def one_textarea(m: re.Match[str]) -> str:
        open_tag, body, close = m.groups()
        name = _attr(open_tag, "name")
        if name in values:
            body = html.escape(_one(values[name]) or "", quote=False)
        if name and name == echo.field:
            return _mark(open_tag, echo) + body + close + _note(echo)
        return open_tag + body + close

    def one_select(m: re.Match[str]) -> str:
        open_tag, body, close = m.groups()
        name = _attr(open_tag, "name")
        if name in values:
            chosen = _one(values[name])

            def option(o: re.Match[str]) -> str:
                tag = _without(o.group(0), "selected")
                return _add(tag, "selected") if _attr(tag, "value") == chosen else tag

            body = _OPTION.sub(option, body)
        if name and name == echo.field:
            return _mark(open_tag, echo) + body + close + _note(echo)
        return open_tag + body + close

    form = _TEXTAREA.sub(one_textarea, form)
    form = _SELECT.sub(one_select, form)
    # inputs outside textareas (a textarea's text is escaped, so it holds no "<input")
    return _INPUT.sub(one_input, form)


def refill(document: str, echo: FormEcho) -> str:
    """``document`` with the form whose action is ``echo.action`` refilled and its faulty field marked."""

    def one_form(m: re.Match[str]) -> str:
        form = m.group(0)
        action = _ACTION.search(form[: form.find(">") + 1])
        if action is None or unquote(html.unescape(action.group(1))).split("?", 1)[0] != echo.action:
            return form
        return _refill_form(form, echo)

    return _FORM.sub(one_form, document)
