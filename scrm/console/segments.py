"""/console/segments — 客群: RFM distribution (8 segments as bars, the R×F 5×5 heatmap), activity segments, the
segment builder with a live count, and the saved segments.

Server-rendered like every console page (SVG charts, values escaped by :func:`render.t`); the builder also works
without JavaScript (the form's GET shows the count). With JavaScript, ``static/segments.js`` asks
``GET /console/segments/preview?expression=…`` as you type — the console session authenticates it (same guard as
every console route), so the page needs no API token. This page's CSP allows scripts from 'self' only (no inline
script); every other console page keeps ``script-src 'none'``.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from aiohttp import web

from scrm.console import auth
from scrm.console.charts import GREEN, MUTED, donut_chart
from scrm.console.render import SECURITY_HEADERS, Safe, html_response, join, layout, post_form, t, table, url, when
from scrm.console.web import _actor, _back, _ctx, _form, forbidden
from scrm.core.errors import DomainError, NotFound
from scrm.core.http.keys import RUNTIME
from tagging.activity import services as activity
from tagging.rfm import services as rfm
from tagging.segments import services as segments
from tagging.segments import syntax as segments_syntax
from tagging.segments.jobs import recompute_all

PAGE = "/console/segments"
CSP = SECURITY_HEADERS["Content-Security-Policy"].replace("script-src 'none'", "script-src 'self'")
EXAMPLES = (
    "rfm:重要价值客户 and last_active < 30d",
    "activity:churn_risk or activity:silent",
    'tag:意向-高 and not group:"VIP群"',
    "orders >= 3 and spent > 1000",
    "first_seen < 7d and channel:展会",
)


# ---- charts -----------------------------------------------------------------------------------------------
def segment_bars(counts: dict[str, int]) -> Safe:
    """The 8 RFM segments as horizontal bars (names stay readable in a narrow card); hover shows the share."""
    row, label_w, bar_w = 28, 96, 230
    total, peak = sum(counts.values()), max([*counts.values(), 0])
    parts: list[Safe] = []
    for k, (name, n) in enumerate(counts.items()):
        y = 6 + k * row
        length = bar_w * n / peak if peak else 0
        share = f"{100 * n / total:.1f}%" if total else "0%"
        color = GREEN if name.startswith("重要") else "#94a3b8"
        parts.append(
            t(
                '<text x="{lx}" y="{ty}" font-size="12" text-anchor="end" fill="#1f2328">{name}</text>'
                '<rect x="{bx}" y="{y}" width="{w}" height="18" rx="2" fill="{c}"><title>{name}：{n} 位（{share}）</title></rect>'
                '<text x="{nx}" y="{ty}" font-size="12" fill="{muted}">{n}</text>',
                lx=label_w - 6, ty=y + 13, name=name, bx=label_w, y=y, w=f"{length:.1f}", c=color, n=n, share=share,
                nx=label_w + length + 6, muted=MUTED,
            )
        )  # fmt: skip
    width, height = label_w + bar_w + 60, 12 + row * len(counts)
    return t(
        '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}" width="100%" role="img" aria-label="{title}" '
        'font-family="sans-serif"><title>{title}</title>{inner}</svg>',
        w=width,
        h=height,
        title="RFM 八类客户人数（绿色为“重要”客户：消费金额高）",
        inner=join(parts),
    )


def rf_heatmap(grid: dict[tuple[int, int], int]) -> Safe:
    """5×5 cells: R score up (5 at the top), F score across; darker = more customers; hover shows the count."""
    cell, left, top = 48, 32, 8
    peak = max([*grid.values(), 0])
    parts: list[Safe] = []
    for r in range(5, 0, -1):
        y = top + (5 - r) * cell
        parts.append(
            t('<text x="{x}" y="{y}" font-size="12" text-anchor="end" fill="{c}">R{r}</text>', x=left - 8, y=y + cell / 2 + 4, c=MUTED, r=r)
        )
        for f in range(1, 6):
            n = grid.get((r, f), 0)
            x = left + (f - 1) * cell
            shade = 0.06 + 0.94 * n / peak if peak else 0.06
            ink = "#fff" if shade > 0.55 else "#1f2328"
            parts.append(
                t(
                    '<rect x="{x}" y="{y}" width="{w}" height="{w}" fill="{g}" fill-opacity="{o}" stroke="#fff" stroke-width="2">'
                    "<title>R{r} F{f}：{n} 位客户</title></rect>"
                    '<text x="{tx}" y="{ty}" font-size="12" text-anchor="middle" fill="{ink}">{n}</text>',
                    x=x,
                    y=y,
                    w=cell,
                    g=GREEN,
                    o=f"{shade:.2f}",
                    r=r,
                    f=f,
                    n=n,
                    tx=x + cell / 2,
                    ty=y + cell / 2 + 4,
                    ink=ink,
                )
            )
    for f in range(1, 6):
        parts.append(
            t(
                '<text x="{x}" y="{y}" font-size="12" text-anchor="middle" fill="{c}">F{f}</text>',
                x=left + (f - 0.5) * cell,
                y=top + 5 * cell + 16,
                c=MUTED,
                f=f,
            )
        )
    width, height = left + 5 * cell + 8, top + 5 * cell + 24
    return t(
        '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}" width="100%" role="img" aria-label="{title}" '
        'font-family="sans-serif"><title>{title}</title>{inner}</svg>',
        w=width,
        h=height,
        title="R×F 分布：最近购买（R，越高越近）× 购买频次（F，越高越多）",
        inner=join(parts),
    )


# ---- page -------------------------------------------------------------------------------------------------
def _preview_box(expression: str, outcome: dict[str, Any] | None) -> Safe:
    """What the server found for the expression (the no-JavaScript path; the script replaces it live)."""
    if outcome is None:
        return Safe('<div id="segment-preview" class="hint" role="status" aria-live="polite">输入表达式后会实时显示人数。</div>')
    if "error" in outcome:
        col = outcome["column"]
        before, at, after = expression[: col - 1], expression[col - 1 : col], expression[col:]
        return t(
            '<div id="segment-preview" role="status" aria-live="polite"><p class="flash flash-err">{m}</p>'
            '<p class="hint"><code>{b}<mark>{a}</mark>{c}</code></p></div>',
            m=outcome["error"],
            b=before,
            a=at or " ",
            c=after,
        )
    names = "、".join(f"#{s['id']} {s['name']}".strip() for s in outcome["sample"])
    return t(
        '<div id="segment-preview" role="status" aria-live="polite"><p class="kpi"><strong>{n}</strong> 位客户</p>'
        '<p class="hint">{sample}</p></div>',
        n=outcome["count"],
        sample=f"例如：{names}" if names else "",
    )


def builder(ctx: Any, expression: str, outcome: dict[str, Any] | None) -> Safe:
    examples = join(t('<li><a href="{href}"><code>{e}</code></a></li>', href=url(PAGE, expression=e) + "#builder", e=e) for e in EXAMPLES)
    check = t(
        '<form method="get" action="{page}" class="stack" id="segment-form">'
        '<label>表达式<textarea name="expression" id="segment-expression" rows="3" maxlength="{max}" '
        'spellcheck="false" data-preview="{page}/preview">{e}</textarea></label>'
        '<button type="submit">计算人数</button></form>',
        page=PAGE,
        max=segments_syntax.MAX_LENGTH,
        e=expression,
    )
    save = post_form(
        ctx,
        PAGE,
        t(
            '<input type="hidden" name="expression" value="{e}" id="segment-save-expression">'
            '<label>客群名称<input name="name" required maxlength="64" placeholder="如：高价值活跃客户"></label>'
            '<label>说明<input name="description" maxlength="500"></label>'
            '<button type="submit" class="primary">保存为客群</button>',
            e=expression,
        ),
        cls="stack",
    )
    return t(
        '<h2>客群筛选</h2><section class="card" id="builder">{check}{preview}{save}'
        '<p class="hint">条件：tag:标签 · rfm:分群 · activity:活跃度 · group:"群名" · channel:渠道 · salesperson:销售 · '
        "last_active &lt; 30d · first_seen &lt; 7d · orders &gt;= 3 · spent &gt; 1000（元）· r/f/m &gt;= 4；"
        "用 and / or / not 和括号组合。说明见 docs/segments.md。</p><ul>{examples}</ul></section>",
        check=check,
        preview=_preview_box(expression, outcome),
        save=save,
        examples=examples,
    )


def saved_list(ctx: Any, items: list[segments.SavedSegment]) -> Safe:
    rows = [
        (
            s.name,
            t('<a href="{href}"><code>{e}</code></a>', href=url(PAGE, expression=s.expression) + "#builder", e=s.expression),
            s.description,
            s.created_by,
            when(s.updated_at),
            post_form(ctx, f"{PAGE}/{s.id}/delete", Safe('<button type="submit" class="danger">删除</button>'), cls="inline"),
        )
        for s in items
    ]
    return table(["名称", "表达式（点击查看人数）", "说明", "创建人", "更新时间", ""], rows, empty="还没有保存的客群")


def page_body(ctx: Any, data: dict[str, Any], expression: str, outcome: dict[str, Any] | None) -> Safe:
    counts, grid, acts = data["rfm"], data["grid"], data["activity"]
    scored = sum(counts.values())
    bars = segment_bars(counts)
    donut = donut_chart([(activity.SEGMENT_ZH[k], v) for k, v in acts.items()], title="活跃度分群", center=f"{sum(acts.values())} 位")
    recompute = post_form(ctx, f"{PAGE}/recompute", Safe('<button type="submit">立即重新计算</button>'), cls="inline")
    return t(
        '<p class="hint">RFM：近 {days} 天内已确认的订单；R/F/M 各按排名分 1–5 分，≥ {high} 分为“高”。'
        "每天 03:00 后全量重算，订单事件实时更新。{recompute}</p>"
        '<div class="grid"><section class="card"><h3>RFM 分群 <small>共 {scored} 位客户</small></h3>{bars}</section>'
        '<section class="card"><h3>R×F 分布</h3>{heat}</section>'
        '<section class="card"><h3>活跃度</h3>{donut}</section></div>'
        '{builder}<h2>已保存的客群</h2>{saved}<script src="/console/static/segments.js" defer></script>',
        days=data["window_days"],
        high=data["high"],
        recompute=recompute,
        scored=scored,
        bars=bars,
        heat=rf_heatmap(grid),
        donut=donut,
        builder=builder(ctx, expression, outcome),
        saved=saved_list(ctx, data["saved"]),
    )


async def _outcome(rt: Any, expression: str) -> dict[str, Any] | None:
    if not expression.strip():
        return None
    try:
        return {"count": await segments.count_segment(rt, expression), "sample": await segments.sample_segment(rt, expression, 5)}
    except segments_syntax.SegmentSyntaxError as exc:
        return {"error": exc.message, "column": exc.column}


# ---- routes -----------------------------------------------------------------------------------------------
async def segments_page(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    expression = request.query.get("expression", "")[: segments_syntax.MAX_LENGTH + 1]
    async with rt.db.read() as conn:
        data = {
            "rfm": await rfm.segment_counts(conn),
            "grid": await rfm.rf_grid(conn),
            "activity": await activity.activity_counts(conn),
            "saved": await segments.list_segments(conn),
            "window_days": rfm.rfm_config(rt).window_days,
            "high": rfm.rfm_config(rt).high_score,
        }
    outcome = await _outcome(rt, expression)
    ctx = _ctx(request, "segments")
    response = html_response(layout(ctx, "客群", page_body(ctx, data, expression, outcome)), headers={"Content-Security-Policy": CSP})
    auth.clear_flash(request, response)
    return response


async def preview(request: web.Request) -> web.Response:
    """JSON for the live count: {"count", "sample"} or 400 {"error": {"code": "segment_syntax", …, "details": {"column"}}}."""
    expression = request.query.get("expression", "")
    rt = request.app[RUNTIME]
    count = await segments.count_segment(rt, expression)  # SegmentSyntaxError → 400 JSON by the error middleware
    return web.json_response({"count": count, "sample": await segments.sample_segment(rt, expression, 5)})


async def save(request: web.Request) -> web.Response:
    form = await _form(request)
    expression = form.get("expression", "")
    back = url(PAGE, expression=expression) + "#builder"
    try:
        made = await segments.save_segment(
            request.app[RUNTIME],
            name=form.get("name", ""),
            expression=expression,
            description=form.get("description", ""),
            created_by=_actor(request),
        )
    except DomainError as exc:
        return _back(request, back, "err", exc.message)
    return _back(request, back, "ok", f"已保存客群 “{made.name}”")


async def delete(request: web.Request) -> web.Response:
    raw = request.match_info["id"]
    try:
        if not raw.isdecimal() or len(raw) > 18:
            raise NotFound("没有这个客群 (no such segment)")
        await segments.delete_segment(request.app[RUNTIME], int(raw))
    except DomainError as exc:
        return _back(request, PAGE, "err", exc.message)
    return _back(request, PAGE, "ok", "已删除客群")


async def recompute(request: web.Request) -> web.Response:
    report = await recompute_all(request.app[RUNTIME])
    return _back(
        request, PAGE, "ok", f"已重新计算：{report.scored} 位客户有 RFM 评分，{sum(report.activity_segments.values())} 位客户已分活跃度"
    )


def setup_routes(app: web.Application, *, roles: Collection[str] = auth.OPERATIONS_ROLES) -> None:
    """Mount the 客群 page, its preview JSON and its forms behind the console's session + role guard."""
    for method, path, handler in (
        ("GET", PAGE, segments_page),
        ("GET", f"{PAGE}/preview", preview),
        ("POST", PAGE, save),
        ("POST", f"{PAGE}/{{id}}/delete", delete),
        ("POST", f"{PAGE}/recompute", recompute),
    ):
        app.router.add_route(method, path, auth.protected(handler, roles=roles, forbidden_page=forbidden))
