"""/console/customers: the customer directory (客户) for every signed-in staff role — search by name, identity or
``#id``, filter with the segment language (the same one campaigns target), and one customer's full record
(identities, salespeople, tags and why, activity and RFM, orders, balance due, groups, notes, timeline).

Read-only, same building blocks as the other console pages: routes behind :func:`auth.protected`, every value
escaped through :func:`render.t`, the shared layout. Reads come from :mod:`scrm.customer360.directory`, which the
API shares.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from typing import Any

from aiohttp import web

from scrm.console import auth
from scrm.console.render import PageContext, Safe, join, money, order_url, post_form, status_badge, t, table, url, when
from scrm.console.web import _act, _actor, _ctx, _form, _page, forbidden, path_id
from scrm.core.errors import DomainError, InvalidInput, NotFound
from scrm.core.http.keys import RUNTIME
from scrm.crm.customers.services import NOTE_MAX_CHARS, add_note, set_custom_fields
from scrm.crm.tags.models import TagSource
from scrm.crm.tags.services import set_customer_tag
from scrm.customer360.directory import CustomerRow, DirectoryPage, customer_record, search_customers, surviving_customer
from scrm.customer360.queries import available_tags

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


def _tag_forms(ctx: PageContext, record: dict[str, Any], catalogue: list[dict[str, Any]]) -> Safe:
    """Remove buttons per applied tag and an add form over the tags not yet on the customer."""
    cid = record["id"]
    applied = {g["tag_id"] for g in record["tags"]}
    options = join(
        t('<option value="{id}">{group} / {name}</option>', id=x["tag_id"], group=x["group"], name=x["name"])
        for x in catalogue
        if x["tag_id"] not in applied
    )
    add = (
        post_form(
            ctx,
            f"/console/customers/{cid}/tags",
            t(
                '<select name="tag_id">{o}</select><input type="hidden" name="action" value="add"><button type="submit">打标签</button>',
                o=options,
            ),
            cls="row",
        )
        if options
        else Safe("")
    )
    remove = join(
        post_form(
            ctx,
            f"/console/customers/{cid}/tags",
            t(
                '<input type="hidden" name="tag_id" value="{id}"><input type="hidden" name="action" value="remove">'
                '<button type="submit" class="link">移除“{name}”</button>',
                id=g["tag_id"],
                name=g["name"],
            ),
            cls="inline",
        )
        for g in record["tags"]
    )
    return t('<div class="toolbar">{add}{remove}</div>', add=add, remove=remove)


def _fields_block(ctx: PageContext, record: dict[str, Any]) -> Safe:
    cid = record["id"]
    rows = [
        (
            key,
            _wrap(value),
            post_form(
                ctx,
                f"/console/customers/{cid}/fields",
                t('<input type="hidden" name="key" value="{k}"><button type="submit" class="link">删除</button>', k=key),
                cls="inline",
            ),
        )
        for key, value in sorted(record["custom_fields"].items())
    ]
    form = post_form(
        ctx,
        f"/console/customers/{cid}/fields",
        Safe(
            '<input name="key" required maxlength="32" placeholder="字段名，如：门店地址">'
            '<input name="value" maxlength="200" placeholder="内容（留空表示删除）" class="wide">'
            '<button type="submit">保存字段</button>'
        ),
        cls="toolbar",
    )
    return t("{table}{form}", table=table(["字段", "内容", ""], rows, empty="没有自定义字段"), form=form)


def _note_form(ctx: PageContext, record: dict[str, Any]) -> Safe:
    return post_form(
        ctx,
        f"/console/customers/{record['id']}/notes",
        t(
            '<textarea name="body" required maxlength="{n}" rows="2" placeholder="记录跟进情况、偏好、约定……"></textarea>'
            '<button type="submit">添加备注</button>',
            n=NOTE_MAX_CHARS,
        ),
        cls="stack",
    )


def record_page(record: dict[str, Any], ctx: PageContext, catalogue: list[dict[str, Any]]) -> Safe:
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
        "{facts}<h2>身份标识</h2>{identities}<h2>负责销售</h2>{people}<h2>标签（及原因）</h2>{tags}{tag_forms}"
        "<h2>自定义字段</h2>{fields}<h2>订单</h2>{orders}<h2>备注</h2>{notes}{note_form}<h2>最近动态</h2>{timeline}"
        '<p><a href="/console/customers">返回客户列表</a></p>',
        facts=_facts(record),
        identities=identities,
        people=people,
        tags=tag_table,
        tag_forms=_tag_forms(ctx, record, catalogue),
        fields=_fields_block(ctx, record),
        orders=order_table,
        notes=notes,
        note_form=_note_form(ctx, record),
        timeline=timeline,
    )


# ---- routes -------------------------------------------------------------------------------------------------------
async def customers_list(request: web.Request) -> web.Response:
    ctx = _ctx(request, "customers")
    q = request.query.get("q", "")[:64]
    segment = request.query.get("segment", "")[:2000]
    raw_page = request.query.get("page", "1")
    page = int(raw_page) if raw_page.isdecimal() and len(raw_page) < 6 else 1
    try:
        result = await search_customers(request.app[RUNTIME], q=q, expression=segment, page=page)
    except DomainError as exc:  # a bad expression: the form again with the reason (column), nothing else shown
        return _page(request, ctx, "客户", directory_page(None, q=q, segment=segment, error=exc.message), status=400)
    return _page(request, ctx, "客户", directory_page(result, q=q, segment=segment))


async def customer_view(request: web.Request) -> web.Response:
    ctx = _ctx(request, "customers")
    try:
        record = await customer_record(request.app[RUNTIME], _customer_id(request))
    except NotFound as exc:
        return _page(request, ctx, "没有找到客户", t('<p class="empty">{m}</p>', m=exc.message), status=404)
    if record.get("merged_from") is not None:  # an old id (merged away): the surviving record's own address
        return web.Response(status=303, headers={"Location": customer_url(record["id"])})
    catalogue = await available_tags(request.app[RUNTIME])
    return _page(request, ctx, f"客户 {display_name(record['name'], record['id'])}", record_page(record, ctx, catalogue))


def _customer_id(request: web.Request) -> int:
    return path_id(request, "customer_id", what="客户")


async def _existing(request: web.Request) -> int:
    """The customer the form is about (its surviving record); NotFound otherwise."""
    async with request.app[RUNTIME].db.read() as conn:
        return await surviving_customer(conn, _customer_id(request))


async def customer_tag(request: web.Request) -> web.Response:
    """Add or remove one tag (mirrored tags reach WeCom through the outbox, like the sidebar's)."""
    form = await _form(request)
    rt = request.app[RUNTIME]
    back = customer_url(_customer_id(request))

    async def action() -> str:
        cid = await _existing(request)
        raw = form.get("tag_id", "")
        if not raw.isdecimal() or len(raw) > 18:
            raise InvalidInput("请选择标签 (tag_id)", field="tag_id")
        add = form.get("action") != "remove"
        by = _actor(request)[:64]
        changed = await set_customer_tag(
            rt, customer_id=cid, tag_id=int(raw), add=add, source=TagSource.MANUAL, evidence={"by": by} if add else {}, by=by
        )
        if not changed:
            return "标签没有变化"
        return "已打上标签" if add else "已移除标签"

    return await _act(request, back, action)


async def customer_note(request: web.Request) -> web.Response:
    form = await _form(request)
    back = customer_url(_customer_id(request))

    async def action() -> str:
        await add_note(request.app[RUNTIME], await _existing(request), _actor(request)[:64], form.get("body", ""))
        return "已添加备注"

    return await _act(request, back, action)


async def customer_fields(request: web.Request) -> web.Response:
    """Set one custom field (``key`` + ``value``; an empty value removes it)."""
    form = await _form(request)
    rt = request.app[RUNTIME]
    back = customer_url(_customer_id(request))

    async def action() -> str:
        cid = await _existing(request)
        key = form.get("key", "").strip()
        value = form.get("value", "").strip()
        if not key:
            raise InvalidInput("请填写字段名 (key)", field="key")
        async with rt.db.write() as conn:
            await set_custom_fields(conn, cid, {key: value or None}, rt.clock.now())
        return f"已保存字段“{key}”" if value else f"已删除字段“{key}”"

    return await _act(request, back, action)


def setup_routes(app: web.Application, *, roles: Collection[str] = auth.ALL_ROLES) -> None:
    """Mount the directory behind the console's session + role guard (every staff role works with customers)."""
    for method, path, handler in (
        ("GET", "/console/customers", customers_list),
        ("GET", "/console/customers/{customer_id}", customer_view),
        ("POST", "/console/customers/{customer_id}/tags", customer_tag),
        ("POST", "/console/customers/{customer_id}/notes", customer_note),
        ("POST", "/console/customers/{customer_id}/fields", customer_fields),
    ):
        app.router.add_route(method, path, auth.protected(handler, roles=roles, forbidden_page=forbidden))
