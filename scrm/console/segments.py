"""/console/segments — 客群: RFM distribution (8 segments as bars, the R×F 5×5 heatmap), activity segments, the
segment builder with a live count, and the saved segments.

Server-rendered like every console page (``templates/segments/page.html``, SVG charts from ``charts.html``, values
autoescaped); the builder also works without JavaScript (the form's GET shows the count). With JavaScript, ``static/segments.js`` asks
``GET /console/segments/preview?expression=…`` as you type — the console session authenticates it (same guard as
every console route), so the page needs no API token. This page's CSP allows scripts from 'self' only (no inline
script); every other console page keeps ``script-src 'none'``.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from aiohttp import web

from scrm.console import auth
from scrm.console.charts import DonutChart, HBarChart, HeatmapChart, donut_geometry, hbar_geometry, heatmap_geometry
from scrm.console.pages import SECURITY_HEADERS, actor, back, forbidden, page_context, read_form, refused, render, setup_templates, url
from scrm.core.errors import DomainError, NotFound
from scrm.core.http.keys import RUNTIME
from scrm.core.runtime import Runtime
from tagging.activity import services as activity
from tagging.rfm import services as rfm
from tagging.rfm.domain import METHOD_ZH, RfmConfig
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


# ---- view values ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SegmentPreview:
    """What the server found for a typed expression: a count (and a few names), or the syntax error and where."""

    count: int = 0
    sample: str = ""  # "#12 王五、#15 …"
    error: str = ""
    before: str = ""  # the expression around the error's column
    at: str = ""
    after: str = ""


@dataclass(frozen=True)
class SegmentsView:
    window_days: int
    high: int
    scored: int
    method: rfm.ScoringMethod  # which scoring method is in use and why (auto: by the number of customers)
    method_zh: str
    cuts: str  # the cut points, as staff read them (shown when they score)
    rfm: HBarChart
    rf: HeatmapChart
    activity: DonutChart
    expression: str
    max_length: int
    preview: SegmentPreview | None
    examples: tuple[str, ...]
    saved: list[segments.SavedSegment]


def cut_points_zh(config: RfmConfig) -> str:
    """The cut points in words: R by days since the last order, F by orders, M by spend in 元."""
    r = "/".join(str(c) for c in config.recency_cuts)
    f = "/".join(str(c) for c in config.frequency_cuts)
    m = "/".join(f"{c // 100}" for c in config.monetary_cuts_fen)
    return f"R：距上次下单 {r} 天；F：订单数 {f} 单；M：消费 {m} 元"


async def segment_preview(rt: Runtime, expression: str) -> SegmentPreview | None:
    """The no-JavaScript count for ``expression`` (None when blank)."""
    if not expression.strip():
        return None
    try:
        count = await segments.count_segment(rt, expression)
        sample = await segments.sample_segment(rt, expression, 5)
    except segments_syntax.SegmentSyntaxError as exc:
        col = exc.column
        return SegmentPreview(error=exc.message, before=expression[: col - 1], at=expression[col - 1 : col], after=expression[col:])
    return SegmentPreview(count=count, sample="、".join(f"#{x['id']} {x['name']}".strip() for x in sample))


# ---- routes -----------------------------------------------------------------------------------------------
async def segments_page(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    expression = request.query.get("expression", "")[: segments_syntax.MAX_LENGTH + 1]
    async with rt.db.read() as conn:
        counts = await rfm.segment_counts(conn)
        grid = await rfm.rf_grid(conn)
        acts = await activity.activity_counts(conn)
        saved = await segments.list_segments(conn)
        method = await rfm.scoring_method(conn, rt.clock.now(), rfm.rfm_config(rt))
    config = rfm.rfm_config(rt)
    window_days, high = config.window_days, config.high_score
    view = SegmentsView(
        window_days=window_days,
        high=high,
        scored=sum(counts.values()),
        method=method,
        method_zh=METHOD_ZH[method.method],
        cuts=cut_points_zh(config),
        rfm=hbar_geometry(
            list(counts.items()), title="RFM 八类客户人数（绿色为“重要”客户：消费金额高）", highlight=lambda name: name.startswith("重要")
        ),
        rf=heatmap_geometry(grid, title="R×F 分布：最近购买（R，越高越近）× 购买频次（F，越高越多）"),
        activity=donut_geometry(
            [(activity.SEGMENT_ZH[k], v) for k, v in acts.items()], title="活跃度分群", center=f"{sum(acts.values())} 位"
        ),
        expression=expression,
        max_length=segments_syntax.MAX_LENGTH,
        preview=await segment_preview(rt, expression),
        examples=EXAMPLES,
        saved=saved,
    )
    return render(
        request, "segments/page.html", page_context(request, "segments"), http_headers={"Content-Security-Policy": CSP}, view=view
    )


async def preview(request: web.Request) -> web.Response:
    """JSON for the live count: {"count", "sample"} or 400 {"error": {"code": "segment_syntax", …, "details": {"column"}}}."""
    expression = request.query.get("expression", "")
    rt = request.app[RUNTIME]
    count = await segments.count_segment(rt, expression)  # SegmentSyntaxError → 400 JSON by the error middleware
    return web.json_response({"count": count, "sample": await segments.sample_segment(rt, expression, 5)})


async def save(request: web.Request) -> web.Response:
    form = await read_form(request)
    expression = form.get("expression", "")
    back_to = url(PAGE, expression=expression) + "#builder"
    try:
        made = await segments.save_segment(
            request.app[RUNTIME],
            name=form.get("name", ""),
            expression=expression,
            description=form.get("description", ""),
            created_by=actor(request),
        )
    except DomainError as exc:
        return await refused(request, back_to, exc)
    return back(request, back_to, "ok", f"已保存客群 “{made.name}”")


async def delete(request: web.Request) -> web.Response:
    raw = request.match_info["id"]
    try:
        if not raw.isdecimal() or len(raw) > 18:
            raise NotFound("没有这个客群")
        await segments.delete_segment(request.app[RUNTIME], int(raw))
    except DomainError as exc:
        return back(request, PAGE, "err", exc.message)
    return back(request, PAGE, "ok", "已删除客群")


async def recompute(request: web.Request) -> web.Response:
    report = await recompute_all(request.app[RUNTIME])
    return back(
        request, PAGE, "ok", f"已重新计算：{report.scored} 位客户有 RFM 评分，{sum(report.activity_segments.values())} 位客户已分活跃度"
    )


def setup_routes(app: web.Application, *, roles: Collection[str] = auth.OPERATIONS_ROLES) -> None:
    """Mount the 客群 page, its preview JSON and its forms behind the console's session + role guard."""
    setup_templates(app)
    for method, path, handler in (
        ("GET", PAGE, segments_page),
        ("GET", f"{PAGE}/preview", preview),
        ("POST", PAGE, save),
        ("POST", f"{PAGE}/{{id}}/delete", delete),
        ("POST", f"{PAGE}/recompute", recompute),
    ):
        app.router.add_route(method, path, auth.protected(handler, roles=roles, forbidden_page=forbidden))
