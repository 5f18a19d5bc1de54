"""LEGACY — tiny, safe HTML building for the console pages not yet on templates (:mod:`scrm.console.pages`):
every interpolated value is escaped unless it is already :class:`Safe` markup. Delete when the last caller is gone.

Templates are literal strings in this package with ``{name}`` placeholders; :func:`t` fills them with escaped
values, so forgetting to escape is not possible. Markup built by :func:`t` is :class:`Safe` and nests as is.
"""

from __future__ import annotations

import html
from collections.abc import Iterable

from scrm.console.access import NAV

# The marketer pages (wt/tpl-mkt converts them) still import these from here; one definition, in pages.
from scrm.console.pages import SECURITY_HEADERS as SECURITY_HEADERS
from scrm.console.pages import PageContext
from scrm.console.pages import html_response as html_response
from scrm.console.pages import money as money
from scrm.console.pages import url as url
from scrm.console.pages import when as when


class Safe(str):
    """A string that is already HTML (built from escaped parts); :func:`h` leaves it alone."""

    __slots__ = ()


def h(value: object) -> Safe:
    """Escape a value for HTML text or a double-quoted attribute; None is empty; Safe passes through."""
    if isinstance(value, Safe):
        return value
    return Safe("" if value is None else html.escape(str(value), quote=True))


def t(template: str, **values: object) -> Safe:
    """Fill a literal template's ``{name}`` placeholders with escaped values."""
    return Safe(template.format_map({k: h(v) for k, v in values.items()}))


def join(parts: Iterable[object], sep: str = "") -> Safe:
    return Safe(h(sep).join(h(p) for p in parts))


def _cell(value: object) -> Safe:
    return t('<td class="num">{v}</td>' if isinstance(value, int) else "<td>{v}</td>", v=value)


def table(
    headers: Iterable[str], rows: Iterable[Iterable[object]], *, empty: str = "暂无数据", row_cls: Iterable[str] | None = None
) -> Safe:
    """A table; each cell is escaped unless Safe. An empty table shows ``empty``. ``row_cls``: a class per row."""
    head = join(t("<th>{x}</th>", x=x) for x in headers)
    classes = iter(row_cls or ())
    body = join(t('<tr class="{cls}">{cells}</tr>', cls=next(classes, ""), cells=join(map(_cell, row))) for row in rows)
    if not body:
        return t('<p class="empty">{empty}</p>', empty=empty)
    return t('<div class="table-wrap"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>', head=head, body=body)


def csrf_field(csrf: str) -> Safe:
    return t('<input type="hidden" name="csrf_token" value="{csrf}">', csrf=csrf)


def post_form(ctx: PageContext, action: str, inner: object, *, cls: str = "", confirm_next: str = "") -> Safe:
    """A POST form carrying the CSRF token (and a ``next`` path to come back to, when given)."""
    nxt = t('<input type="hidden" name="next" value="{n}">', n=confirm_next) if confirm_next else ""
    return t(
        '<form method="post" action="{action}" class="{cls}">{csrf}{nxt}{inner}</form>',
        action=action,
        cls=cls,
        csrf=csrf_field(ctx.csrf),
        nxt=nxt,
        inner=inner,
    )


def button_form(ctx: PageContext, action: str, label: str, *, cls: str = "", back: str = "") -> Safe:
    """A one-button POST form (签收, 取消发货, 确认 …)."""
    return post_form(
        ctx, action, t('<button type="submit" class="{cls}">{label}</button>', cls=cls, label=label), cls="inline", confirm_next=back
    )


def _document(title: str, header: object, main: object) -> Safe:
    return t(
        '<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<title>{title} · SCRM 控制台</title><link rel="stylesheet" href="/console/static/console.css"></head>'
        "<body>{header}<main>{main}</main></body></html>",
        title=title,
        header=header,
        main=main,
    )


def flash_box(flash: tuple[str, str] | None) -> Safe:
    if flash is None:
        return Safe("")
    kind, text = flash
    return t('<div class="flash flash-{kind}" role="status">{text}</div>', kind=kind, text=text)


def layout(ctx: PageContext, title: str, body: object) -> Safe:
    """A signed-in page: the nav bar (订单 / 发货 / 库存), who is signed in with 退出, the flash, the body."""
    nav = join(
        t('<a href="{href}" class="{cls}">{label}</a>', href=href, cls="active" if key == ctx.active else "", label=label)
        for key, href, label, roles in NAV
        if not ctx.roles or not roles.isdisjoint(ctx.roles)
    )
    logout = post_form(ctx, "/console/logout", Safe('<button type="submit" class="link">退出</button>'), cls="inline")
    header = t(
        '<header class="top"><a class="brand" href="/console/">SCRM 控制台</a><nav>{nav}</nav>'
        '<div class="who">{subject}（{role}）{logout}</div></header>',
        nav=nav,
        subject=ctx.subject,
        role=ctx.role_zh,
        logout=logout,
    )
    return _document(title, header, t("{flash}<h1>{title}</h1>{body}", flash=flash_box(ctx.flash), title=title, body=body))
