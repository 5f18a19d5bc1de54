"""/console/dashboard — 经营概览: the page a boss opens every morning.

Figures come from :mod:`fulfillment.reports.queries` (set-based SQL, business-local periods); this module only looks up
customer names and renders cards, tables and server-side SVG charts (:mod:`scrm.console.charts`).
"""

from __future__ import annotations

from collections.abc import Collection

import sqlalchemy as sa
from aiohttp import web

from fulfillment.reports.queries import Dashboard, business_dashboard
from scrm.console import auth
from scrm.console.charts import bar_chart, donut_chart, line_chart
from scrm.console.render import Safe, customer_label, join, money, t, table, when
from scrm.console.web import _ctx, _page, forbidden
from scrm.core.http.keys import RUNTIME
from scrm.crm.customers.models import customers


def _card(label: str, value: object, note: object = "") -> Safe:
    return t(
        '<section class="card"><h3>{label}</h3><p class="kpi"><strong>{value}</strong></p>{note}</section>',
        label=label,
        value=value,
        note=note,
    )


def _hint(text: object) -> Safe:
    return t('<p class="hint">{text}</p>', text=text)


def render_dashboard(board: Dashboard, names: dict[int, str]) -> Safe:
    """The page body: headline cards, 30-day charts, the period table, top customers, stock."""
    today, week, month = board.period("today"), board.period("week"), board.period("month")
    cards: list[Safe] = [
        _card("今日营业额", money(today.revenue_fen), _hint(f"{today.orders} 单")),
        _card("本周营业额", money(week.revenue_fen), _hint(f"{week.orders} 单")),
        _card("本月营业额", money(month.revenue_fen), _hint(f"{month.orders} 单")),
        _card(
            "本月回款率",
            month.collection_rate.percent_text,
            _hint(f"本月开票 {money(month.invoiced_fen)}，已回款 {money(month.invoice_paid_fen)}"),
        ),
        _card(
            "逾期应收",
            money(board.overdue.amount_fen),
            _hint(f"{board.overdue.invoices} 张发票 · {board.overdue.customers} 位客户"),
        ),
        _card(
            "90天复购率",
            board.repeat_rate.percent_text,
            _hint(f"{board.repeat_rate.num} / {board.repeat_rate.den} 位下单客户买过两次及以上"),
        ),
        _card(
            "库存价值",
            money(board.stock_value.total_fen),
            _hint(
                f"其中 {board.stock_value.products_at_price} 种商品尚无采购成本，按售价计 {money(board.stock_value.at_price_fen)}"
                if board.stock_value.products_at_price
                else "按最近采购成本计"
            ),
        ),
    ]
    labels = [f"{p.day.month}/{p.day.day}" for p in board.days]
    revenue = bar_chart([(lb, p.revenue_fen) for lb, p in zip(labels, board.days, strict=True)], title="近30天营业额", fmt=money)
    count = line_chart([(lb, p.orders) for lb, p in zip(labels, board.days, strict=True)], title="近30天订单数", fmt=lambda n: f"{n} 单")
    unpaid = max(month.invoiced_fen - month.invoice_paid_fen, 0)
    collection = donut_chart(
        [("已回款", month.invoice_paid_fen), ("未回款", unpaid)], title="本月发票回款", fmt=money, center=month.collection_rate.percent_text
    )
    cards.append(t('<section class="card"><h3>本月发票回款</h3>{c}</section>', c=collection))
    charts = t(
        '<h2>近30天营业额</h2><section class="card">{revenue}</section><h2>近30天订单数</h2><section class="card">{count}</section>',
        revenue=revenue,
        count=count,
    )
    periods = table(
        ["期间", "订单数", "营业额", "开票金额", "其中已回款", "回款率", "期间收款"],
        [
            (
                p.period.label,
                p.orders,
                money(p.revenue_fen),
                money(p.invoiced_fen),
                money(p.invoice_paid_fen),
                p.collection_rate.percent_text,
                money(p.received_fen),
            )
            for p in board.periods
        ],
    )
    top = table(
        ["排名", "客户", "订单数", "营业额"],
        [
            (k + 1, customer_label(c.customer_id, names.get(c.customer_id, "")), c.orders, money(c.revenue_fen))
            for k, c in enumerate(board.top_customers)
        ],
        empty="近30天还没有订单",
    )
    low = table(
        ["SKU", "商品", "可用", "补货点", "在途"],
        [(r.sku, f"{r.name}（{r.unit}）", r.available, r.reorder_point, r.on_order) for r in board.low_stock],
        row_cls=["low"] * len(board.low_stock),
        empty="没有低于补货点的商品",
    )
    return t(
        '<p class="hint">数据截至 {as_of}（北京时间）；营业额 = 已确认及之后的订单金额（不含待确认、待审核、已取消、已过期）。</p>'
        '<div class="grid">{cards}</div>{charts}<h2>分期汇总</h2>{periods}'
        "<h2>近30天客户排行（前10）</h2>{top}"
        '<h2>低库存</h2>{low}<p><a href="/console/purchasing">查看补货建议，生成采购单 →</a></p>',
        as_of=when(board.as_of),
        cards=join(cards),
        charts=charts,
        periods=periods,
        top=top,
        low=low,
    )


async def dashboard(request: web.Request) -> web.Response:
    """经营概览: today / week / month, collection, overdue, top customers, repeat rate, stock, 30-day charts."""
    rt = request.app[RUNTIME]
    board = await business_dashboard(rt)
    ids = [c.customer_id for c in board.top_customers]
    async with rt.db.read() as conn:
        names = (
            {int(r.id): r.name for r in await conn.execute(sa.select(customers.c.id, customers.c.name).where(customers.c.id.in_(ids)))}
            if ids
            else {}
        )
    ctx = _ctx(request, "dashboard")
    return _page(request, ctx, "经营概览", render_dashboard(board, names))


def setup_routes(app: web.Application, *, roles: Collection[str] = auth.ALL_ROLES) -> None:
    """Mount ``GET /console/dashboard`` behind the console's sign-in (point ``/console/`` at it)."""
    app.router.add_route("GET", "/console/dashboard", auth.protected(dashboard, roles=roles, forbidden_page=forbidden))
