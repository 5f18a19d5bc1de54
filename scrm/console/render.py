"""Tiny, safe HTML building: every interpolated value is escaped unless it is already :class:`Safe` markup.

Templates are literal strings in this package with ``{name}`` placeholders; :func:`t` fills them with escaped
values, so forgetting to escape is not possible. Markup built by :func:`t` is :class:`Safe` and nests as is.
"""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import quote, urlencode

from aiohttp import web

from fulfillment.inventory.services import Drift
from fulfillment.orders.domain import STATUS_ZH
from fulfillment.orders.models import OrderStatus as S
from fulfillment.orders.queries import LineView, OrderView
from scrm.console.auth import ADMIN_ROLES, ALL_ROLES, FINANCE_ROLES, MARKETING_ROLES, OPERATIONS_ROLES
from scrm.console.queries import HistoryRow, OrderRow, PickRow, StockRow
from scrm.core.clock import local
from scrm.core.money import format_fen

# (key, path, label, roles that may use it): an entry is shown only to those roles (the routes check the same sets).
NAV = (
    ("dashboard", "/console/dashboard", "概览", ALL_ROLES),  # scrm/console/dashboard.py
    ("customers", "/console/customers", "客户", ALL_ROLES),  # scrm/console/customers.py
    ("orders", "/console/orders", "订单", OPERATIONS_ROLES),
    ("picking", "/console/picking", "发货", OPERATIONS_ROLES),
    ("stock", "/console/stock", "库存", OPERATIONS_ROLES),
    ("purchasing", "/console/purchasing", "采购", OPERATIONS_ROLES),  # scrm/console/purchasing.py
    ("groups", "/console/groups", "客户群", OPERATIONS_ROLES),  # scrm/console/groups.py
    ("finance", "/console/finance/receivables", "财务", FINANCE_ROLES),  # scrm/console/finance.py
    ("rules", "/console/rules", "标签规则", MARKETING_ROLES),  # scrm/console/rules.py
    ("segments", "/console/segments", "客群", MARKETING_ROLES),  # scrm/console/segments.py
    ("channels", "/console/channels", "渠道活码", MARKETING_ROLES),  # scrm/console/channels.py
    ("coupons", "/console/coupons", "优惠券", MARKETING_ROLES),  # scrm/console/campaigns.py
    ("campaigns", "/console/campaigns", "裂变活动", MARKETING_ROLES),  # scrm/console/campaigns.py
    ("broadcasts", "/console/broadcasts", "群发", MARKETING_ROLES),  # scrm/console/broadcasts.py
    ("staff", "/console/staff", "员工", ADMIN_ROLES),  # scrm/console/staff.py
)
SHIPMENT_STATUS_ZH = {"shipped": "已发出", "delivered": "已签收", "cancelled": "已取消"}
EVENT_ZH = {
    "credit_hold": "超出信用额度，待审核",
    "created": "创建",
    "lines_changed": "修改商品",
    "confirmed": "确认",
    "cancelled": "取消",
    "expired": "过期",
    "shipped": "发货",
    "completed": "完成",
    "shipment_cancelled": "取消发货",
    "backorder_allocated": "缺货补足",
}
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; style-src 'self'; script-src 'none'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


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


def money(fen: int) -> str:
    return format_fen(int(fen))


def when(value: dt.datetime | None) -> str:
    """A time as staff read it: Asia/Shanghai, to the minute."""
    return local(value).strftime("%Y-%m-%d %H:%M") if value is not None else "—"


def order_url(number: str) -> str:
    return "/console/orders/" + quote(number, safe="")


def url(path: str, **query: object) -> str:
    params = {k: str(v) for k, v in query.items() if v not in (None, "")}
    return path + ("?" + urlencode(params) if params else "")


def status_badge(status: str) -> Safe:
    return t('<span class="badge st-{s}">{zh}</span>', s=status, zh=STATUS_ZH.get(status, status))


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


@dataclass(frozen=True)
class PageContext:
    """What every signed-in page shows around its body: who, the CSRF token, the flash message, the nav item."""

    subject: str
    role_zh: str
    csrf: str
    flash: tuple[str, str] | None
    active: str
    roles: tuple[str, ...] = ()  # the session's roles: the nav shows only what they may use (empty: everything)


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


def html_response(document: str, *, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    """An HTML response with the console's security headers (CSP without inline script, no framing, no caching)."""
    return web.Response(
        text=document, status=status, content_type="text/html", charset="utf-8", headers={**SECURITY_HEADERS, **(headers or {})}
    )


def message_page(title: str, message: str, *, status: int, headers: dict[str, str] | None = None) -> web.Response:
    """A bare page for errors (403, 404, 429) that needs no session."""
    main = t(
        '<div class="card narrow"><h1>{title}</h1><p class="flash flash-err">{message}</p><p><a href="/console/">返回控制台</a></p></div>',
        title=title,
        message=message,
    )
    return html_response(
        _document(title, Safe('<header class="top"><span class="brand">SCRM 控制台</span></header>'), main), status=status, headers=headers
    )


def login_page(*, next_path: str, error: str = "", username: str = "admin") -> Safe:
    """The sign-in form: a staff account, or ``admin`` with the admin token (SCRM_ADMIN_TOKEN)."""
    err = t('<p class="flash flash-err" role="alert">{e}</p>', e=error) if error else ""
    main = t(
        '<div class="card narrow"><h1>登录运营控制台</h1>{err}'
        '<form method="post" action="/console/login" class="stack">'
        '<input type="hidden" name="next" value="{next_path}">'
        '<label>用户名<input name="username" value="{username}" autocomplete="username" required maxlength="64"></label>'
        '<label>密码<input name="password" type="password" autocomplete="current-password" required maxlength="256" autofocus></label>'
        '<button type="submit" class="primary">登录</button>'
        '<p class="hint">员工使用自己的账号登录；管理员也可用用户名 admin 和管理员令牌（SCRM_ADMIN_TOKEN）登录。</p></form></div>',
        err=err,
        next_path=next_path,
        username=username,
    )
    return _document("登录", Safe('<header class="top"><span class="brand">SCRM 控制台</span></header>'), main)


# ---- page bodies --------------------------------------------------------------------------------------------
def orders_list(rows: list[OrderRow], *, status: str, number: str, page: int, more: bool) -> Safe:
    """订单列表: the filter form, the table, the pager."""
    options = join(
        t('<option value="{v}"{sel}>{label}</option>', v=v, label=label, sel=Safe(" selected") if v == status else "")
        for v, label in (("", "全部状态"), *STATUS_ZH.items())
    )
    filters = t(
        '<form method="get" action="/console/orders" class="toolbar"><select name="status">{options}</select>'
        '<input name="q" value="{number}" placeholder="搜索订单号" maxlength="32">'
        '<button type="submit">筛选</button></form>',
        options=options,
        number=number,
    )
    cells = [
        (
            t('<a href="{href}">{n}</a>', href=order_url(r.number), n=r.number),
            status_badge(r.status),
            customer_label(r.customer_id, r.customer_name),
            t('<span class="num">{m}</span>', m=money(r.total_fen)),
            when(r.created_at),
        )
        for r in rows
    ]
    pager = join(
        [
            t('<a href="{href}">上一页</a>', href=url("/console/orders", status=status, q=number, page=page - 1)) if page > 1 else "",
            t("<span>第 {p} 页</span>", p=page),
            t('<a href="{href}">下一页</a>', href=url("/console/orders", status=status, q=number, page=page + 1)) if more else "",
        ]
    )
    body = table(["订单号", "状态", "客户", "合计", "下单时间"], cells, empty="没有符合条件的订单")
    return t('{filters}{body}<nav class="pager">{pager}</nav>', filters=filters, body=body, pager=pager)


def customer_label(customer_id: int, name: str) -> Safe:
    """A customer as staff see them in a table: a link to the customer's page (/console/customers/{id})."""
    return t('<a href="/console/customers/{id}">{name}</a>', id=int(customer_id), name=name or f"未命名客户 #{customer_id}")


def _ship_form(ctx: PageContext, number: str, *, lines: list[LineView] | None, back: str = "") -> Safe:
    """发货 form: carrier + tracking number, and per-line quantities when ``lines`` is given (blank = all)."""
    qty = join(
        t(
            '<label>{name}（待发 {n}{unit}）<input type="number" name="qty:{sku}" min="0" max="{n}" placeholder="{n}"></label>',
            name=ln.name,
            n=ln.allocated_qty - ln.shipped_qty,
            unit=ln.unit,
            sku=ln.sku,
        )
        for ln in lines or []
        if ln.allocated_qty > ln.shipped_qty
    )
    hint = Safe('<p class="hint">数量留空 = 发出全部已备货未发的商品；填写则只发所填的行。</p>') if lines else ""
    inner = t(
        '<label>承运商<input name="carrier" required maxlength="64" placeholder="顺丰"></label>'
        '<label>运单号<input name="tracking_no" required maxlength="64"></label>{qty}{hint}'
        '<button type="submit" class="primary">发货</button>',
        qty=qty,
        hint=hint,
    )
    return post_form(ctx, order_url(number) + "/ship", inner, cls="stack" if lines else "row", confirm_next=back)


def order_detail(ctx: PageContext, order: OrderView, name: str, history: list[HistoryRow]) -> Safe:
    """订单详情: summary, lines, shipments (签收 / 取消发货), the actions its status allows, history."""
    back = order_url(order.number)
    summary = t(
        '<dl class="summary">{items}</dl>',
        items=join(
            t("<dt>{k}</dt><dd>{v}</dd>", k=k, v=v)
            for k, v in (
                ("状态", status_badge(order.status)),
                ("客户", customer_label(order.customer_id, name)),
                ("来源", order.source),
                ("下单时间", when(order.created_at)),
                ("确认时间", when(order.confirmed_at)),
                ("小计", money(order.subtotal_fen)),
                ("优惠", money(order.discount_fen)),
                ("合计", t("<strong>{m}</strong>", m=money(order.total_fen))),
            )
        ),
    )
    lines = table(
        ["SKU", "商品", "单价", "数量", "已备货", "已发货", "缺货", "小计"],
        [
            (
                ln.sku,
                ln.name,
                money(ln.unit_price_fen),
                f"{ln.qty}{ln.unit}",
                ln.allocated_qty,
                ln.shipped_qty,
                t('<span class="warn">{n}</span>', n=ln.backordered_qty) if ln.backordered_qty else 0,
                money(ln.line_total_fen),
            )
            for ln in order.lines
        ],
    )
    ship_rows = []
    for s in order.shipments:
        actions: object = ""
        if s.status == "shipped":
            actions = join(
                [
                    button_form(ctx, f"/console/shipments/{s.number}/deliver", "签收", back=back),
                    button_form(ctx, f"/console/shipments/{s.number}/cancel", "取消发货", cls="danger", back=back),
                ]
            )
        ship_rows.append((s.number, s.carrier, s.tracking_no, SHIPMENT_STATUS_ZH.get(s.status, s.status), when(s.created_at), actions))
    ships = table(["发货单", "承运商", "运单号", "状态", "时间", "操作"], ship_rows, empty="尚未发货")
    forms = []
    if order.status in (S.CONFIRMED, S.PARTIALLY_SHIPPED) and any(ln.allocated_qty > ln.shipped_qty for ln in order.lines):
        forms.append(t('<section class="card"><h3>发货</h3>{f}</section>', f=_ship_form(ctx, order.number, lines=order.lines)))
    if order.status in (S.PENDING, S.ON_HOLD):
        confirm = button_form(ctx, back + "/confirm", "确认订单并备货", cls="primary")
        forms.append(t('<section class="card"><h3>确认</h3>{f}</section>', f=confirm))
    if order.status in (S.PENDING, S.ON_HOLD, S.CONFIRMED) and not any(ln.shipped_qty for ln in order.lines):
        cancel = post_form(
            ctx,
            back + "/cancel",
            Safe(
                '<label>原因<input name="reason" maxlength="200" placeholder="客户要求取消"></label>'
                '<button type="submit" class="danger">取消订单</button>'
            ),
            cls="stack",
        )
        forms.append(t('<section class="card"><h3>取消订单</h3>{f}</section>', f=cancel))
    hist = table(
        ["时间", "事件", "状态变化", "操作人", "备注"],
        [
            (
                when(r.at),
                EVENT_ZH.get(r.event, r.event),
                f"{STATUS_ZH.get(r.from_status, r.from_status)} → {STATUS_ZH.get(r.to_status, r.to_status)}"
                if r.from_status
                else STATUS_ZH.get(r.to_status, r.to_status),
                r.actor,
                r.note,
            )
            for r in history
        ],
    )
    return t(
        '<p><a href="/console/orders">← 返回订单列表</a></p>{summary}<h2>商品</h2>{lines}<h2>发货单</h2>{ships}'
        '<div class="grid">{forms}</div><h2>订单记录</h2>{hist}',
        summary=summary,
        lines=lines,
        ships=ships,
        forms=join(forms),
        hist=hist,
    )


def picking(ctx: PageContext, rows: list[PickRow]) -> Safe:
    """拣货单: totals to pick per SKU, then each order's lines with a quick ship form (ships everything allocated)."""
    totals: dict[str, tuple[PickRow, int, set[str]]] = {}
    by_order: dict[str, list[PickRow]] = {}
    for r in rows:
        first, qty, numbers = totals.get(r.sku, (r, 0, set()))
        totals[r.sku] = (first, qty + r.to_pick, numbers | {r.order_number})
        by_order.setdefault(r.order_number, []).append(r)
    sku_table = table(
        ["SKU", "商品", "待拣数量", "订单数"],
        [(p.sku, p.name, f"{qty}{p.unit}", len(nums)) for p, qty, nums in totals.values()],
        empty="没有待拣货的订单",
    )
    cards = join(
        t(
            '<section class="card"><h3><a href="{href}">{number}</a> <small>{customer} · 确认于 {at}</small></h3>'
            "<ul>{items}</ul>{form}</section>",
            href=order_url(number),
            number=number,
            customer=customer_label(items[0].customer_id, items[0].customer_name),
            at=when(items[0].confirmed_at),
            items=join(t("<li>{sku} {name} × {n}{unit}</li>", sku=i.sku, name=i.name, n=i.to_pick, unit=i.unit) for i in items),
            form=_ship_form(ctx, number, lines=None, back="/console/picking"),
        )
        for number, items in by_order.items()
    )
    return t('<h2>按商品汇总</h2>{skus}<h2>按订单</h2><div class="grid">{cards}</div>', skus=sku_table, cards=cards)


def stock(ctx: PageContext, rows: list[StockRow], drifts: list[Drift]) -> Safe:
    """库存: counters per product (low stock highlighted) with 入库 / 盘点 forms, and the ledger reconciliation."""

    def forms(r: StockRow) -> tuple[Safe, Safe]:
        sku = t('<input type="hidden" name="sku" value="{sku}">', sku=r.sku)
        receive = t(
            '{sku}<input type="number" name="qty" min="1" required placeholder="数量" aria-label="入库数量">'
            '<input name="reference" maxlength="100" placeholder="单号/备注" aria-label="入库备注"><button type="submit">入库</button>',
            sku=sku,
        )
        count = t(
            '{sku}<input type="number" name="on_hand" min="0" required placeholder="实盘数" aria-label="盘点数量">'
            '<button type="submit">盘点</button>',
            sku=sku,
        )
        return post_form(ctx, "/console/stock/receive", receive, cls="inline"), post_form(ctx, "/console/stock/count", count, cls="inline")

    stock_table = table(
        ["SKU", "商品", "在库", "已分配", "可用", "补货点", "入库", "盘点"],
        [
            (
                r.sku,
                t("{name}（{unit}）{flag}", name=r.name, unit=r.unit, flag=Safe(' <span class="badge low">低库存</span>') if r.low else ""),
                r.on_hand,
                r.allocated,
                r.available,
                "—" if r.reorder_point is None else r.reorder_point,
                *forms(r),
            )
            for r in rows
        ],
        row_cls=["low" if r.low else ("inactive" if not r.active else "") for r in rows],
        empty="还没有商品，请先导入商品目录 (python run.py catalog import FILE.csv)",
    )
    skus = {r.product_id: r.sku for r in rows}
    if drifts:
        recon = table(
            ["SKU", "仓库", "计数 在库/已分配", "流水 在库/已分配"],
            [
                (
                    skus.get(d.product_id, d.product_id),
                    d.warehouse_id,
                    f"{d.counters.on_hand}/{d.counters.allocated}",
                    f"{d.ledger.on_hand}/{d.ledger.allocated}",
                )
                for d in drifts
            ],
        )
        recon = t('<div class="flash flash-err">库存计数与流水不一致，共 {n} 处：</div>{t}', n=len(drifts), t=recon)
    else:
        recon = Safe('<div class="flash flash-ok">库存计数与流水一致</div>')
    return t('{table}<p class="hint">入库或盘点后，会自动为缺货订单补分配库存。</p><h2>对账</h2>{recon}', table=stock_table, recon=recon)
