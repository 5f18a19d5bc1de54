"""The console's page-rendering API: Jinja2 templates (``scrm/console/templates/``, autoescape on) fed typed values.

A page handler reads through a capability's ``queries.py`` or service, builds a :class:`PageContext` with
:func:`page_context`, and returns :func:`render` of a template that extends ``base.html`` (the layout: nav by
role, flash, sign-out form with the CSRF token). Forms post through ``macros.html`` (``post_form`` carries the
CSRF field); writes go through :func:`act` (a domain error becomes the red flash, success the green one, 303 back).

The :class:`jinja2.Environment` is built once per app by :func:`setup_templates` (from the console's
``setup_routes``), never at import time, and kept under :data:`TEMPLATES`.
"""

from __future__ import annotations

import datetime as dt
import html
import logging
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlencode

import jinja2
from aiohttp import web
from markupsafe import Markup

from fulfillment.catalog.services import MAX_QTY
from fulfillment.orders.domain import STATUS_ZH
from scrm.console import auth, labels
from scrm.console.access import NAV, NAV_SECTIONS
from scrm.console.auth import SESSION
from scrm.console.form_echo import FormEcho, kept_values, refill
from scrm.core.clock import local
from scrm.core.errors import DomainError, InvalidInput, NotFound
from scrm.core.http.keys import SETTINGS
from scrm.core.money import format_fen
from scrm.crm.staff.domain import ROLE_NAMES_ZH

log = logging.getLogger(__name__)

TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"
TEMPLATES = web.AppKey("console_templates", jinja2.Environment)
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; style-src 'self'; script-src 'none'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


# ---- values the templates format -------------------------------------------------------------------------------
def money(fen: int) -> str:
    """Integer fen as staff read it: ¥12.34."""
    return format_fen(int(fen))


def yuan(fen: int) -> str:
    """Integer fen as an amount to edit in a form field: 36.50 (no ¥)."""
    return f"{int(fen) // 100}.{int(fen) % 100:02d}"


def when(value: dt.datetime | None) -> str:
    """A time as staff read it: Asia/Shanghai, to the minute; None is —."""
    return local(value).strftime("%Y-%m-%d %H:%M") if value is not None else "—"


def path_quote(value: object) -> str:
    """A value as one URL path segment (``/`` and every reserved character escaped)."""
    return quote(str(value), safe="")


def order_url(number: str) -> str:
    return "/console/orders/" + quote(number, safe="")


def url(path: str, **query: object) -> str:
    """``path`` with the non-blank ``query`` values encoded."""
    params = {k: str(v) for k, v in query.items() if v not in (None, "")}
    return path + ("?" + urlencode(params) if params else "")


def roles_zh(roles: Iterable[str]) -> str:
    """Roles in Chinese, 、-separated (运营、财务)."""
    return "、".join(ROLE_NAMES_ZH.get(r, r) for r in roles)


def status_zh(status: str | None) -> str:
    """An order status in Chinese (unknown codes as they are)."""
    return STATUS_ZH.get(status or "", status or "")


def escape(value: object) -> object:
    """Every ``{{ value }}`` (the environment's ``finalize``): markup passes, None is empty, anything else is escaped
    with :func:`html.escape` (``&quot;`` / ``&#x27;``: the bytes the string-built pages wrote) and so is not escaped again."""
    if hasattr(value, "__html__"):
        return value
    return Markup(html.escape("" if value is None else str(value), quote=True))  # noqa: S704  # escaped right here


def build_environment() -> jinja2.Environment:
    """The console's template environment: autoescape everywhere, undefined names are errors."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATE_DIR),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,
        finalize=escape,
    )
    env.filters.update(
        money=money,
        yuan=yuan,
        when=when,
        order_url=order_url,
        status_zh=status_zh,
        roles_zh=roles_zh,
        quote=path_quote,
        label=labels.label,
        actor_label=labels.actor_label,
    )
    env.globals.update(url=url, STATUS_ZH=STATUS_ZH)
    return env


def setup_templates(app: web.Application) -> None:
    """Build the environment once for ``app`` (idempotent: every console module's ``setup_routes`` may call it)."""
    if TEMPLATES not in app:
        app[TEMPLATES] = build_environment()


# ---- the page around the body ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class NavItem:
    key: str
    href: str
    label: str
    active: bool


@dataclass(frozen=True)
class NavSection:
    """One entry of the menu bar: a section's drop-down of nav items, or (``label`` empty) one top-level link."""

    label: str
    items: tuple[NavItem, ...]

    @property
    def active(self) -> bool:
        return any(item.active for item in self.items)

    @property
    def single(self) -> NavItem | None:
        """The one item of a section that has only one for this role (shown as a plain link), else None."""
        return self.items[0] if len(self.items) == 1 else None


def menu_sections(items: Iterable[NavItem]) -> tuple[NavSection, ...]:
    """The nav items grouped by :data:`scrm.console.access.NAV_SECTIONS`, in NAV order: top-level links before the
    first section's place, sections where their first item is; empty sections left out."""
    by_key = {item.key: item for item in items}
    section_of = {key: label for label, keys in NAV_SECTIONS for key in keys}
    out: list[NavSection] = []
    placed: set[str] = set()
    for item in by_key.values():
        label = section_of.get(item.key)
        if label is None:
            out.append(NavSection("", (item,)))
        elif label not in placed:
            placed.add(label)
            keys = dict(NAV_SECTIONS)[label]
            out.append(NavSection(label, tuple(by_key[k] for k in keys if k in by_key)))
    return tuple(out)


@dataclass(frozen=True)
class PageContext:
    """What every signed-in page shows around its body: who, the CSRF token, the flash message, the nav item."""

    subject: str
    role_zh: str
    csrf: str
    flash: tuple[str, str] | None
    active: str
    roles: tuple[str, ...] = ()  # the session's roles: the nav shows only what they may use (empty: everything)

    @property
    def nav(self) -> tuple[NavItem, ...]:
        return tuple(
            NavItem(key, href, label, key == self.active)
            for key, href, label, roles in NAV
            if not self.roles or not roles.isdisjoint(self.roles)
        )

    @property
    def menu(self) -> tuple[NavSection, ...]:
        """The nav as the menu bar shows it: sections with drop-downs (see :func:`menu_sections`)."""
        return menu_sections(self.nav)


def page_context(request: web.Request, active: str) -> PageContext:
    """The signed-in session's page context; ``active`` is the nav key (:data:`scrm.console.access.NAV`)."""
    session = request[SESSION]
    return PageContext(
        subject=session.subject,
        role_zh=roles_zh(session.all_roles),
        csrf=auth.csrf_token(request.app[SETTINGS], session),
        flash=auth.read_flash(request),
        active=active,
        roles=session.all_roles,
    )


def html_response(document: str, *, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    """An HTML response with the console's security headers (CSP without inline script, no framing, no caching)."""
    return web.Response(
        text=document, status=status, content_type="text/html", charset="utf-8", headers={**SECURITY_HEADERS, **(headers or {})}
    )


def render_document(app: web.Application, template: str, **values: object) -> str:
    return app[TEMPLATES].get_template(template).render(**values)


def render(
    request: web.Request,
    template: str,
    ctx: PageContext,
    *,
    http_status: int = 200,
    http_headers: Mapping[str, str] | None = None,
    **values: object,
) -> web.Response:
    """A signed-in page: ``template`` (extending ``base.html``) with ``ctx`` and ``values``; the flash is shown once.
    ``http_status`` / ``http_headers`` go on the response (named so that a template value may be called ``status``)."""
    document = render_document(request.app, template, ctx=ctx, **values)
    echo = auth.read_form_echo(request) if ctx.flash is not None and ctx.flash[0] == "err" else None
    if echo is not None:
        document = refill(document, echo)  # the refused form as the user left it, the reason beside its field
    response = html_response(document, status=http_status, headers=http_headers)
    auth.clear_flash(request, response)
    return response


def message_page(request: web.Request, title: str, message: str, *, status: int, headers: Mapping[str, str] | None = None) -> web.Response:
    """A bare page for errors (403, 404, 429) that needs no session."""
    return html_response(render_document(request.app, "message.html", title=title, message=message), status=status, headers=headers)


def forbidden(request: web.Request, message: str) -> web.Response:
    """The 403 page :func:`scrm.console.auth.protected` shows (wrong role, bad CSRF token)."""
    return message_page(request, "无法完成操作", message, status=403)


# ---- handlers' small helpers -------------------------------------------------------------------------------------
def back(request: web.Request, path: str, kind: str, message: str, *, form: FormEcho | None = None) -> web.Response:
    """303 to ``path`` with a flash message (``kind`` ok / err) and, for a refused form, what to refill it with."""
    response = web.Response(status=303, headers={"Location": path})
    auth.set_flash(request, response, kind, message, form=form)
    return response


_ENGLISH_GLOSS = re.compile(r"\s*\((?=[^()]*[A-Za-z]{2})[^()\u3000-\u9fff\uff00-\uffef]*\)\s*$")


def staff_text(message: str) -> str:
    """A domain error as staff read it: the services' messages end in an English gloss for API clients
    ("… (kind must be fixed or percent)"); the console shows the Chinese sentence before it."""
    return _ENGLISH_GLOSS.sub("", message) or message


async def refused(request: web.Request, back_to: str, exc: DomainError) -> web.Response:
    """Back to the form's page with the error: the submitted values come back and the field the error names
    (``exc.details["field"]``) is marked with the message beside it."""
    posted = await request.post() if request.method == "POST" else None
    form: dict[str, str | list[str]] = {}
    for name in posted.keys() if posted is not None else ():
        texts = [v for v in posted.getall(name) if isinstance(v, str)]  # file parts left out
        if texts:
            form[name] = texts[0] if len(texts) == 1 else texts
    field = str(exc.details.get("field") or "")
    if field not in form and field.removesuffix("_fen") in form:  # the service's threshold_fen is the form's threshold
        field = field.removesuffix("_fen")
    message = staff_text(exc.message)
    echo = FormEcho(request.path, kept_values(form), field if field in form else "", message)
    return back(request, back_to, "err", message, form=echo)


def actor(request: web.Request) -> str:
    """Who did it, as the services record it."""
    return f"console:{request[SESSION].subject}"


async def read_form(request: web.Request) -> dict[str, str]:
    """The posted form's text fields (file parts left out)."""
    return {k: v for k, v in (await request.post()).items() if isinstance(v, str)}


async def act(request: web.Request, back_to: str, action: Callable[[], Awaitable[str]]) -> web.Response:
    """Run one service call; its domain error (Chinese message, stable code) becomes the red flash."""
    try:
        message = await action()
    except DomainError as exc:
        log.info("console action refused", extra={"path": request.path, "code": exc.code})
        return await refused(request, back_to, exc)
    return back(request, back_to, "ok", message)


def path_id(request: web.Request, name: str = "id", *, what: str = "编号") -> int:
    """A numeric id from the route (``/console/…/{id}``); anything else is NotFound (never a 500 or a huge int)."""
    raw = request.match_info[name]
    if not raw.isdecimal() or len(raw) > 18:
        raise NotFound(f"没有这个{what}：{raw[:32]}")
    return int(raw)


def int_field(form: Mapping[str, str], name: str, label: str, *, minimum: int) -> int:
    """A whole-number form field between ``minimum`` and MAX_QTY, else InvalidInput naming ``label``."""
    raw = form.get(name, "").strip()
    if not raw.isdecimal() or not minimum <= int(raw) <= MAX_QTY:
        raise InvalidInput(f"{label}必须是 {minimum} 到 {MAX_QTY} 之间的整数", field=name)
    return int(raw)
