"""/console/rules — 标签规则: the chat tagging rules as a form, a live try-out, history replay, versions, TOML.

The rules live in the database, versioned (:mod:`tagging.rules.versions`); this page never writes a file.

* **The form** shows each rule of the version in force as fields (标签, 分组, 关键词, 同义词, 排除词, 意图模式, 权重,
  阈值, 半衰期), plus an empty rule to fill and a 删除 tick per rule. 保存 renders the fields as TOML
  (:mod:`tagging.rules.form`) and stores it as the next version, refused when someone saved meanwhile (409) or when
  it does not validate (400): the form comes back as typed, each problem in Chinese next to its field.
* **试一条消息** (``POST /console/rules/try``, JSON): the rules as currently typed against one sample message — which
  rules fire and why (each word matched / negated / excluded / inside a longer word). ``static/rules.js`` posts the
  form as you type; the page's CSP allows scripts from 'self' only.
* **试运行** replays recent customer messages against the typed rules (:func:`tagging.rules.dryrun.replay`, read-only).
* **版本** lists the versions (who, when, how); each has a page with its diff against the one before and 回滚, which
  stores that text again as a new version. **TOML** export (any version) and import stay for power users.

Same building blocks as every console page: :func:`auth.protected` (session, role, CSRF on POST), typed values into
``templates/rules/*.html`` (autoescaped), POST → 303 → GET with a flash on success.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Collection
from dataclasses import dataclass, field

from aiohttp import web

from scrm.console import auth
from scrm.console.pages import SECURITY_HEADERS, actor, back, forbidden, page_context, read_form, render, setup_templates, when
from scrm.core.errors import Conflict, InvalidInput, NotFound
from scrm.core.http.keys import RUNTIME
from tagging.rules import form as rule_form
from tagging.rules import versions
from tagging.rules.domain import MAX_FILE_BYTES, Problem, RuleSet, RulesFileError, parse_rules
from tagging.rules.dryrun import DryRunReport, Evidence, replay
from tagging.rules.engine import build_matcher, tagger_cache
from tagging.rules.form import RuleForm
from tagging.rules.matcher import NEGATORS

log = logging.getLogger(__name__)

PAGE = "/console/rules"
CSP = SECURITY_HEADERS["Content-Security-Policy"].replace("script-src 'none'", "script-src 'self'")
DRY_RUN_DAYS = (7, 30, 90)
DRY_RUN_LIMIT = 5000  # messages replayed at most (the most recent), so a preview stays a few seconds at worst
DRY_RUN_TOP = 20
SAMPLE_MAX = 500  # characters of a sample message tried live
VERSIONS_SHOWN = 30


# ---- view values --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ChangeView:
    """One tag's dry-run outcome: the counts, then who would gain it and who would lose it (customer, score, time,
    message, words, ref, reading)."""

    tag: str
    group: str
    gained: int
    lost: int
    kept: int
    extra: str
    gain: tuple[tuple[str, ...], ...]
    lose: tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class DryRunView:
    days: int
    limit: int
    top: int
    messages: int
    customers: int
    sources: str
    now: dt.datetime
    changes: tuple[ChangeView, ...]


@dataclass(frozen=True)
class RuleFormView:
    """One rule's fields as shown (as stored, or as typed) and the problems found on them, by field."""

    index: int
    rule: RuleForm
    errors: dict[str, str] = field(default_factory=dict)
    new: bool = False  # the empty rule offered to fill


@dataclass(frozen=True)
class RulesView:
    """The whole page."""

    number: int  # the version in force (the base of this edit)
    in_force: versions.RuleVersion | None
    load_error: str
    forms: tuple[RuleFormView, ...]
    problems: tuple[tuple[str, str, str], ...]  # (rule, field, message) not placed on a field
    refused: str  # why the save was refused ("" when nothing was refused)
    days: int
    day_choices: tuple[int, ...]
    dry_run: DryRunView | None
    versions: tuple[versions.RuleVersion, ...]
    import_text: str
    import_problems: tuple[tuple[str, str, str], ...]
    sample: str
    sample_max: int
    negators: str


def _evidence_row(ev: Evidence, names: dict[int, str]) -> tuple[str, ...]:
    return (
        f"#{ev.customer_id} {names.get(ev.customer_id, '')}",
        f"{ev.score:.2f}",
        when(ev.at),
        ev.text,
        "、".join(ev.words),
        ev.ref,
        "；".join(ev.reasons),
    )


def dry_run_view(report: DryRunReport, days: int) -> DryRunView:
    """Per tag: the counts, then who would gain it and who would lose it, with the message that counts."""
    sources = "，".join(f"{'客服/公众号' if k == 'inbound' else '会话存档'} {v} 条" for k, v in sorted(report.sources.items()))
    changes = []
    for c in report.changes:
        extra = []
        if c.by_hand:
            extra.append(f"已由人工或其他来源打上 {c.by_hand} 位（规则不改动）")
        if c.not_replayed:
            extra.append(f"窗口内无消息 {c.not_replayed} 位（不变）")
        lose = tuple(
            _evidence_row(item, report.names)
            if isinstance(item, Evidence)
            else (f"#{item} {report.names.get(item, '')}", "0", "—", "窗口内没有命中本规则的消息", "—", "—", "—")
            for item in c.lose
        )
        changes.append(
            ChangeView(
                tag=c.rule.tag,
                group=c.rule.group,
                gained=c.gained,
                lost=c.lost,
                kept=c.kept,
                extra=("；" + "；".join(extra)) if extra else "",
                gain=tuple(_evidence_row(ev, report.names) for ev in c.gain),
                lose=lose,
            )
        )
    return DryRunView(
        days=days,
        limit=DRY_RUN_LIMIT,
        top=DRY_RUN_TOP,
        messages=report.messages,
        customers=report.customers,
        sources=sources or "无",
        now=report.now,
        changes=tuple(changes),
    )


def _problem_rows(problems: list[Problem]) -> tuple[tuple[str, str, str], ...]:
    return tuple((p.rule or "（整体）", p.field or "—", p.message) for p in problems)


# ---- views --------------------------------------------------------------------------------------------------
async def _render(
    request: web.Request,
    *,
    forms: list[RuleForm] | None = None,
    base: int | None = None,
    checked: rule_form.FormCheck | None = None,
    refused: str = "",
    report: DryRunReport | None = None,
    days: int = 30,
    import_text: str = "",
    import_problems: list[Problem] | None = None,
    sample: str = "",
    status: int = 200,
) -> web.Response:
    rt = request.app[RUNTIME]
    cache = tagger_cache(rt)
    tagger = await cache.get(rt)  # seeds version 1 on a fresh database
    async with rt.db.read() as conn:
        listed = await versions.list_versions(conn, limit=VERSIONS_SHOWN)
    number = listed[0].version if listed else 0
    if forms is None:
        forms = rule_form.forms_of(tagger.rules)
    placed = checked.placed if checked is not None else {}
    general = checked.general if checked is not None else []
    views = [RuleFormView(i, f, placed.get(i, {})) for i, f in enumerate(forms)]
    views.append(RuleFormView(len(forms), rule_form.new_rule(), new=True))
    view = RulesView(
        number=number if base is None else base,
        in_force=listed[0] if listed else None,
        load_error=cache.status().error,
        forms=tuple(views),
        problems=_problem_rows(general),
        refused=refused,
        days=days,
        day_choices=DRY_RUN_DAYS,
        dry_run=dry_run_view(report, days) if report is not None else None,
        versions=tuple(listed),
        import_text=import_text,
        import_problems=_problem_rows(import_problems or []),
        sample=sample,
        sample_max=SAMPLE_MAX,
        negators="、".join(sorted(NEGATORS, key=lambda w: (len(w), w))),
    )
    return render(
        request,
        "rules/page.html",
        page_context(request, "rules"),
        http_status=status,
        http_headers={"Content-Security-Policy": CSP},
        view=view,
    )


async def rules_view(request: web.Request) -> web.Response:
    """标签规则: the rules in force as a form, the versions, TOML import/export."""
    return await _render(request)


def _sample(form: dict[str, str]) -> str:
    """The sample message typed in 试一条消息 (posted with the form), kept when the page comes back."""
    return form.get("sample", "")[:SAMPLE_MAX]


def _base(form: dict[str, str]) -> int | None:
    raw = form.get("base_version", "")
    return int(raw) if raw.isdecimal() and len(raw) < 10 else None


async def _typed(request: web.Request, form: dict[str, str]) -> tuple[list[RuleForm], rule_form.FormCheck]:
    """The posted rules and their check: the TOML (under the comment block of the version in force) and every
    problem on its rule and field."""
    forms = rule_form.read_forms(form)
    rt = request.app[RUNTIME]
    async with rt.db.read() as conn:
        current = await versions.current_version(conn)
    header = rule_form.leading_comments(current.text) if current is not None else ""
    return forms, rule_form.check_forms(forms, header=header)


async def rules_save(request: web.Request) -> web.Response:
    """保存: validate the form, refuse a stale base version, store the next version (in force everywhere at once)."""
    form = await read_form(request)
    forms, checked = await _typed(request, form)
    base = _base(form)
    if not checked.ok:
        refused = f"规则未保存：发现 {len(checked.problems)} 个问题，请按提示修改后再试。"
        return await _render(request, forms=forms, base=base, checked=checked, refused=refused, sample=_sample(form), status=400)
    rt = request.app[RUNTIME]
    try:
        made = await versions.save_rules(rt, checked.text, by=actor(request), base_version=base if base is not None else -1)
    except Conflict as exc:
        return await _render(request, forms=forms, base=base, refused=f"规则未保存：{exc.message}", sample=_sample(form), status=409)
    log.info("tag rules saved from the console", extra={"by": actor(request), "version": made.version})
    return back(request, PAGE, "ok", f"已保存为版本 {made.version}（{made.rules} 条规则），所有进程收到下一条消息时生效")


async def rules_dry_run(request: web.Request) -> web.Response:
    """试运行: the typed rules against recent customer messages; nothing is saved or written."""
    form = await read_form(request)
    forms, checked = await _typed(request, form)
    raw_days = form.get("days", "30")
    days = int(raw_days) if raw_days.isdecimal() and int(raw_days) in DRY_RUN_DAYS else 30
    if not checked.ok:
        refused = f"无法试运行：发现 {len(checked.problems)} 个问题，请按提示修改后再试。"
        return await _render(
            request, forms=forms, base=_base(form), checked=checked, refused=refused, days=days, sample=_sample(form), status=400
        )
    rt = request.app[RUNTIME]
    since = rt.clock.now() - dt.timedelta(days=days)
    report = await replay(rt, parse_rules(checked.text), since=since, limit=DRY_RUN_LIMIT, top=DRY_RUN_TOP)
    return await _render(request, forms=forms, base=_base(form), report=report, days=days, sample=_sample(form))


async def rules_try(request: web.Request) -> web.Response:
    """JSON: the typed rules against one sample message. 200 ``{"results": [{tag, group, score, threshold, fires,
    words, reasons}]}`` for every rule one of whose words occurs (firing or not); 400 ``{"error": {"code":
    "invalid_input", "message", "details": {"problems": [{rule, field, message}]}}}`` when the rules do not validate."""
    form = await read_form(request)
    sample = form.get("sample", "")
    if len(sample) > SAMPLE_MAX:
        raise InvalidInput(f"示例消息最多 {SAMPLE_MAX} 个字", field="sample")
    _forms, checked = await _typed(request, form)
    if not checked.ok:
        detail = [{"rule": p.rule, "field": p.field, "message": p.message} for p in checked.problems]
        raise InvalidInput(f"规则有 {len(detail)} 个问题，先改正再试", problems=detail)
    rt = request.app[RUNTIME]
    tagger = await tagger_cache(rt).get(rt)
    rules: RuleSet = parse_rules(checked.text)
    matcher = await asyncio.to_thread(build_matcher, rules, tagger.words, tagger.catalog)  # the process's tokenizer, shared
    results = [
        {
            "tag": m.rule.tag,
            "group": m.rule.group,
            "score": m.score,
            "threshold": m.rule.threshold,
            "fires": m.score >= m.rule.threshold,
            "words": list(m.words),
            "reasons": m.reasons(),
        }
        for m in (matcher.explain(sample) if sample.strip() else [])
    ]
    return web.json_response({"results": results})


async def version_view(request: web.Request) -> web.Response:
    """One version: who saved it and when, its diff against the version before, its text, and 回滚."""
    raw = request.match_info["number"]
    ctx = page_context(request, "rules")
    rt = request.app[RUNTIME]
    try:
        if not raw.isdecimal() or len(raw) > 9:
            raise NotFound("没有这个版本")
        async with rt.db.read() as conn:
            found, diff = await versions.version_diff(conn, int(raw))
            number = await versions.current_number(conn)
    except NotFound as exc:
        return render(request, "not_found.html", ctx, http_status=404, title="没有这个规则版本", message=exc.message)
    return render(request, "rules/version.html", ctx, version=found, diff=diff, number=number)


async def version_roll_back(request: web.Request) -> web.Response:
    """回滚: store the text of this version again as the next version."""
    raw = request.match_info["number"]
    form = await read_form(request)
    rt = request.app[RUNTIME]
    try:
        if not raw.isdecimal() or len(raw) > 9:
            raise NotFound("没有这个版本")
        made = await versions.roll_back(rt, int(raw), by=actor(request), base_version=_base(form) or -1)
    except (Conflict, NotFound) as exc:
        return back(request, f"{PAGE}/versions/{raw}", "err", f"未回滚：{exc.message}")
    except RulesFileError as exc:
        return back(request, f"{PAGE}/versions/{raw}", "err", f"未回滚：版本 {raw} 不能通过当前的校验：{exc}")
    return back(request, PAGE, "ok", f"已回滚到版本 {raw} 的内容，保存为新版本 {made.version}")


async def export_toml(request: web.Request) -> web.Response:
    """导出 TOML: a version's text as a file (default: the version in force)."""
    raw = request.query.get("version", "")
    rt = request.app[RUNTIME]
    await tagger_cache(rt).get(rt)
    async with rt.db.read() as conn:
        number = int(raw) if raw.isdecimal() and len(raw) < 10 else await versions.current_number(conn)
        found = await versions.get_version(conn, number)
    if found is None:
        return render(
            request, "not_found.html", page_context(request, "rules"), http_status=404, title="没有这个规则版本", message="没有这个版本"
        )
    return web.Response(
        text=found.text,
        content_type="application/toml",
        charset="utf-8",
        headers={**SECURITY_HEADERS, "Content-Disposition": f'attachment; filename="tag_rules-v{found.meta.version}.toml"'},
    )


async def import_toml(request: web.Request) -> web.Response:
    """导入 TOML: validate the pasted text and store it as the next version."""
    form = await read_form(request)
    text = form.get("toml", "").replace("\r\n", "\n")
    base = _base(form)
    if len(text.encode("utf-8")) > MAX_FILE_BYTES:
        problems = [Problem("", "", f"内容过大，上限 {MAX_FILE_BYTES // 1024} KB")]
        return await _render(request, import_text="", import_problems=problems, status=400)
    rt = request.app[RUNTIME]
    try:
        made = await versions.save_rules(
            rt, text, by=actor(request), base_version=base if base is not None else -1, action=versions.VersionAction.IMPORT
        )
    except RulesFileError as exc:
        return await _render(request, import_text=text, import_problems=exc.problems, status=400)
    except Conflict as exc:
        return await _render(request, import_text=text, import_problems=[Problem("", "", exc.message)], status=409)
    return back(request, PAGE, "ok", f"已导入为版本 {made.version}（{made.rules} 条规则），所有进程收到下一条消息时生效")


ROUTES = (
    ("GET", PAGE, rules_view),
    ("POST", PAGE, rules_save),
    ("POST", f"{PAGE}/dry-run", rules_dry_run),
    ("POST", f"{PAGE}/try", rules_try),
    ("GET", f"{PAGE}/versions/{{number}}", version_view),
    ("POST", f"{PAGE}/versions/{{number}}/rollback", version_roll_back),
    ("GET", f"{PAGE}/export", export_toml),
    ("POST", f"{PAGE}/import", import_toml),
)


def setup_routes(app: web.Application, *, roles: Collection[str] = auth.MARKETING_ROLES) -> None:
    """Mount the rules editor behind the console's sign-in (CSRF on every POST)."""
    setup_templates(app)
    for method, path, handler in ROUTES:
        app.router.add_route(method, path, auth.protected(handler, roles=roles, forbidden_page=forbidden))
