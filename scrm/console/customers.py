"""/console/customers: the customer directory (客户) for every signed-in staff role — search by name, identity or
``#id``, filter with the segment language (the same one campaigns target), and one customer's full record
(identities, salespeople, tags and why, activity and RFM, orders, balance due, groups, notes, timeline).

Read-only, same building blocks as the other console pages: routes behind :func:`auth.protected`, every value
escaped through :func:`render.t`, the shared layout. Reads come from :mod:`scrm.web.customer_directory`, which the
API shares.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from typing import Any

from aiohttp import web

from scrm.console import auth
from scrm.console.render import Safe, join, money, order_url, status_badge, t, table, url, when
from scrm.console.web import _ctx, _page, forbidden
from scrm.core.errors import DomainError, NotFound
from scrm.web.customer_directory import CustomerRow, DirectoryPage, customer_record, search_customers
from scrm.web.keys import RUNTIME

IDENTITY_ZH = {"external_userid": "企业微信外部联系人", "openid": "公众号 openid", "unionid": "unionid"}
SEGMENT_HINT = "例：tag:意向-高 and rfm:重要价值客户 and last_active < 30d"


def customer_url(customer_id: int) -> str:
    return f"/console/customers/{int(customer_id)}"


def display_name(name: str, customer_id: int) -> str:
    return name or f"未命名客户 #{customer_id}"


def _iso_when(value: str | None) -> str:
    return when(dt.datetime.fromisoformat(value)) if value else "—"


def _wrap(text: str) -> Safe:
    """Long free text (messages, notes, reasons) wraps instead of widening the table."""
    return t('<span class="wrap">{x}</span>', x=text)


# ---- the directory ----------------------------------------------------------------------------------------------
def _row_cells(r: CustomerRow) -> tuple[object, ...]:
    tag_text = "、".join(r.tags) + (f" 等{r.tags_more + len(r.tags)}个" if r.tags_more else "")
    return (
        t(
            '<a href="{href}">{name}</a><div class="hint">{ident}</div>',
            href=customer_url(r.id),
            name=display_name(r.name, r.id),
            ident=r.identity,
        ),
        "、".join(r.salespeople) or "—",
        tag_text or "—",
        r.activity or "—",
        r.rfm_segment or "—",
        r.orders,
        t('<span class="num">{m}</span>', m=money(r.monetary_fen)),
        when(r.last_seen_at),
    )


def directory_page(result: DirectoryPage | None, *, q: str, segment: str, error: str = "") -> Safe:
    """搜索表单 + 结果表 + 翻页. ``error``: the search's own error (e.g. an expression that does not parse)."""
    form = t(
        '<form method="get" action="/console/customers" class="toolbar">'
        '<input name="q" value="{q}" placeholder="姓名、外部联系人ID、openid 或 #编号" maxlength="64">'
        '<input name="segment" value="{segment}" placeholder="客群表达式（可选）" maxlength="2000" class="wide">'
        '<button type="submit">搜索</button></form><p class="hint">{hint}；语法见 docs/segments.md。</p>',
        q=q,
        segment=segment,
        hint=SEGMENT_HINT,
    )
    if error:
        return t('{form}<div class="flash flash-err" role="alert">{error}</div>', form=form, error=error)
    assert result is not None
    body = table(
        ["客户", "负责销售", "标签", "活跃度", "RFM 分群", "订单数", "消费金额", "最近互动"],
        [_row_cells(r) for r in result.rows],
        empty="没有符合条件的客户",
    )
    pager = join(
        [
            t('<a href="{href}">上一页</a>', href=url("/console/customers", q=q, segment=segment, page=result.page - 1))
            if result.page > 1
            else "",
            t("<span>第 {p} 页 · 共 {n} 位客户</span>", p=result.page, n=result.total),
            t('<a href="{href}">下一页</a>', href=url("/console/customers", q=q, segment=segment, page=result.page + 1))
            if result.more
            else "",
        ]
    )
    return t('{form}{body}<nav class="pager">{pager}</nav>', form=form, body=body, pager=pager)


# ---- one customer -----------------------------------------------------------------------------------------------
def _facts(record: dict[str, Any]) -> Safe:
    rfm = record.get("rfm")
    rfm_text = (
        f"{rfm['segment']}（R{rfm['r']} F{rfm['f']} M{rfm['m']}；{rfm['recency_days']} 天前下单，"
        f"{rfm['frequency']} 单，{money(rfm['monetary_fen'])}；{rfm['computed_on']} 计算）"
        if rfm
        else "尚未计算（无计入的订单）"
    )
    facts = [
        ("性别", record["gender_zh"]),
        ("企业", record["corp_name"] or "—"),
        ("首次出现", _iso_when(record["first_seen_at"])),
        ("最近互动", _iso_when(record["last_seen_at"])),
        ("活跃度", record.get("activity") or "尚未计算"),
        ("RFM", rfm_text),
        ("应收余额", money(record["balance_due_fen"])),
        ("其中逾期", money(record["overdue_fen"]) + (f"（最早到期 {record['oldest_due_on']}）" if record.get("oldest_due_on") else "")),
        ("所在客户群", "、".join(g["name"] or g["chat_id"] for g in record["groups"]) or "—"),
    ]
    rows = join(t("<tr><th>{k}</th><td>{v}</td></tr>", k=k, v=v) for k, v in facts)
    return t('<div class="card"><table class="facts"><tbody>{rows}</tbody></table></div>', rows=rows)


def record_page(record: dict[str, Any]) -> Safe:
    identities = table(
        ["类型", "标识"],
        [(IDENTITY_ZH.get(kind, kind), value) for kind, values in record["identities"].items() for value in values],
        empty="没有记录的身份标识",
    )
    people = table(
        ["销售", "关系", "添加方式", "渠道 state", "备注", "开始", "结束"],
        [
            (
                f["name"],
                f["status_zh"],
                f["add_way_zh"],
                f["state"] or "—",
                f["remark"] or "—",
                _iso_when(f["since"]),
                _iso_when(f["ended_at"]),
            )
            for f in record["follows"]
        ],
        empty="还没有销售添加这位客户",
    )
    tag_table = table(
        ["标签", "分组", "来源", "原因", "打标时间"],
        [(g["name"], g["group"], g["source_zh"], _wrap(g["why"]), _iso_when(g["applied_at"])) for g in record["tags"]],
        empty="没有标签",
    )
    order_table = table(
        ["订单号", "状态", "商品", "合计", "物流", "下单时间"],
        [
            (
                t('<a href="{href}">{n}</a>', href=order_url(o["number"]), n=o["number"]),
                status_badge(o["status"]),
                "；".join(f"{ln['name']} × {ln['qty']}{ln['unit']}" for ln in o["lines"]),
                t('<span class="num">{m}</span>', m=money(o["total_fen"])),
                "、".join(o["tracking_numbers"]) or "—",
                _iso_when(o["created_at"]),
            )
            for o in record["orders"]
        ],
        empty="还没有订单",
    )
    notes = table(
        ["时间", "作者", "内容"],
        [(_iso_when(n["created_at"]), n["author_name"], _wrap(n["body"])) for n in record["notes"]],
        empty="没有备注",
    )
    timeline = table(
        ["时间", "类型", "事件", "内容"],
        [(_iso_when(e["at"]), e["kind_zh"], e["title"], _wrap(e["body"])) for e in record["timeline"]],
        empty="没有动态",
    )
    return t(
        "{facts}<h2>身份标识</h2>{identities}<h2>负责销售</h2>{people}<h2>标签（及原因）</h2>{tags}"
        "<h2>订单</h2>{orders}<h2>备注</h2>{notes}<h2>最近动态</h2>{timeline}"
        '<p><a href="/console/customers">返回客户列表</a></p>',
        facts=_facts(record),
        identities=identities,
        people=people,
        tags=tag_table,
        orders=order_table,
        notes=notes,
        timeline=timeline,
    )


# ---- routes -------------------------------------------------------------------------------------------------------
async def customers_list(request: web.Request) -> web.Response:
    ctx = _ctx(request, "customers")
    q = request.query.get("q", "")[:64]
    segment = request.query.get("segment", "")[:2000]
    raw_page = request.query.get("page", "1")
    page = int(raw_page) if raw_page.isdigit() and len(raw_page) < 6 else 1
    try:
        result = await search_customers(request.app[RUNTIME], q=q, expression=segment, page=page)
    except DomainError as exc:  # a bad expression: the form again with the reason (column), nothing else shown
        return _page(request, ctx, "客户", directory_page(None, q=q, segment=segment, error=exc.message), status=400)
    return _page(request, ctx, "客户", directory_page(result, q=q, segment=segment))


async def customer_view(request: web.Request) -> web.Response:
    ctx = _ctx(request, "customers")
    raw = request.match_info["customer_id"]
    try:
        if not raw.isdigit() or len(raw) > 18:
            raise NotFound(f"没有这个客户：{raw}")
        record = await customer_record(request.app[RUNTIME], int(raw))
    except NotFound as exc:
        return _page(request, ctx, "没有找到客户", t('<p class="empty">{m}</p>', m=exc.message), status=404)
    if record.get("merged_from") is not None:  # an old id (merged away): the surviving record's own address
        return web.Response(status=303, headers={"Location": customer_url(record["id"])})
    return _page(request, ctx, f"客户 {display_name(record['name'], record['id'])}", record_page(record))


def setup_routes(app: web.Application, *, roles: Collection[str] = auth.ALL_ROLES) -> None:
    """Mount the directory behind the console's session + role guard (every staff role works with customers)."""
    for path, handler in (("/console/customers", customers_list), ("/console/customers/{customer_id}", customer_view)):
        app.router.add_route("GET", path, auth.protected(handler, roles=roles, forbidden_page=forbidden))
