"""/console/rules — 标签规则: view the chat tagging rules, edit the file, check it, try it on recent history, save it.

The page shows the rules in force (and, in red, why the file on disk is not in force when it does not validate),
then the file itself in a textarea. Two buttons submit the same form: 试运行 replays the last days of customer
messages against the text as edited (:func:`tagging.rules.dryrun.replay`, read-only) and shows who would gain or lose
each tag with the message that counts; 校验并保存 validates and replaces the file atomically (previous text kept as
``.bak``), refusing when someone else saved meanwhile. A text that does not validate comes back as typed, with
each problem listed by rule and field. Same building blocks as :mod:`scrm.console.web`: :func:`auth.protected`
(session + CSRF), HTML through :func:`render.t` (every value escaped), POST → 303 → GET with a flash on success.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Collection

from aiohttp import web

from scrm.console import auth
from scrm.console.render import PageContext, Safe, join, t, table, when
from scrm.console.web import _back, _ctx, _form, _page, forbidden
from scrm.core.errors import Conflict
from scrm.core.http.keys import RUNTIME
from tagging.rules.domain import Problem, RuleSet, RulesFileError, parse_rules
from tagging.rules.dryrun import DryRunReport, Evidence, replay
from tagging.rules.engine import tagger_cache

log = logging.getLogger(__name__)

DRY_RUN_DAYS = (7, 30, 90)
DRY_RUN_LIMIT = 5000  # messages replayed at most (the most recent), so a preview stays a few seconds at worst
DRY_RUN_TOP = 20


# ---- rendering --------------------------------------------------------------------------------------------
def _words(words: tuple[str, ...], limit: int = 8) -> str:
    shown = "、".join(words[:limit])
    return shown + (f" 等 {len(words)} 个" if len(words) > limit else "")


def rules_table(rules: RuleSet) -> Safe:
    """The rules in force, one row each."""
    return table(
        ["标签", "分组", "关键词", "排除词", "意图模式", "权重", "打上 / 移除阈值", "半衰期"],
        [
            (
                t('<strong>{tag}</strong><br><small class="hint">{d}</small>', tag=r.tag, d=r.description),
                r.group,
                _words(r.keywords + tuple(s for s, _ in r.synonyms)),
                _words(r.excluded) or "—",
                join((t("<code>{p}</code>", p=p) for p in r.patterns), "<br>") if r.patterns else "—",
                f"{r.weight:g}",
                f"{r.threshold:g} / {r.remove_threshold:g}",
                f"{r.half_life_days:g} 天",
            )
            for r in rules.rules
        ],
        empty="没有规则在生效",
    )


def problems_box(problems: list[Problem]) -> Safe:
    rows = [(p.rule or "（整个文件）", p.field or "—", p.message) for p in problems]
    return t(
        '<div class="flash flash-err" role="alert">规则未保存：发现 {n} 个问题，请修改后再试。</div>{table}',
        n=len(problems),
        table=table(["规则", "字段", "问题"], rows),
    )


def _evidence_row(ev: Evidence, names: dict[int, str]) -> tuple[object, ...]:
    return (
        t("#{id} {name}", id=ev.customer_id, name=names.get(ev.customer_id, "")),
        f"{ev.score:.2f}",
        when(ev.at),
        ev.text,
        "、".join(ev.words),
        ev.ref,
    )


def dry_run_results(report: DryRunReport, days: int) -> Safe:
    """Per tag: the counts, then who would gain it and who would lose it, with the message that counts."""
    sources = "，".join(f"{'客服/公众号' if k == 'inbound' else '会话存档'} {v} 条" for k, v in sorted(report.sources.items()))
    head = t(
        '<p class="hint">回放近 {days} 天（最多最近 {limit} 条）的 {n} 条客户消息（{sources}），涉及 {c} 位客户；'
        "得分衰减计算到 {now}。只读，未写入任何数据。</p>",
        days=days,
        limit=DRY_RUN_LIMIT,
        n=report.messages,
        sources=sources or "无",
        c=report.customers,
        now=when(report.now),
    )
    cols = ["客户", "得分", "时间", "消息", "命中", "消息编号"]
    sections = []
    for c in report.changes:
        extra = []
        if c.by_hand:
            extra.append(f"已由人工或其他来源打上 {c.by_hand} 位（规则不改动）")
        if c.not_replayed:
            extra.append(f"窗口内无消息 {c.not_replayed} 位（不变）")
        lists: object = ""
        if c.gain:
            rows = [_evidence_row(ev, report.names) for ev in c.gain]
            lists = t("<h4>将新增（前 {top} 位）</h4>{table}", top=DRY_RUN_TOP, table=table(cols, rows))
        if c.lose:
            rows = [
                _evidence_row(item, report.names)
                if isinstance(item, Evidence)
                else (t("#{id} {name}", id=item, name=report.names.get(item, "")), "0", "—", "窗口内没有命中本规则的消息", "—", "—")
                for item in c.lose
            ]
            lists = t("{before}<h4>将移除（前 {top} 位）</h4>{table}", before=lists, top=DRY_RUN_TOP, table=table(cols, rows))
        sections.append(
            t(
                '<section class="card"><h3>{tag} <small>{group}</small></h3>'
                "<p>将新增 <strong>{g}</strong> 位 · 将移除 <strong>{l}</strong> 位 · 保持 {k} 位{extra}</p>{lists}</section>",
                tag=c.rule.tag,
                group=c.rule.group,
                g=c.gained,
                l=c.lost,
                k=c.kept,
                extra=("；" + "；".join(extra)) if extra else "",
                lists=lists,
            )
        )
    return t('<h2 id="dry-run">试运行结果</h2>{head}{sections}', head=head, sections=join(sections))


def rules_page(
    ctx: PageContext,
    *,
    text: str,
    base_version: str,
    in_force: RuleSet,
    path: str,
    file_error: str,
    problems: list[Problem] | None = None,
    report: DryRunReport | None = None,
    days: int = 30,
) -> Safe:
    """The whole page body: status, the problems found (if any), the editor, dry-run results, the rules in force."""
    status = t(
        '<p class="hint">规则文件 <code>{path}</code> · 生效版本 {v} · {n} 条规则。保存后立即生效，无需重启。</p>',
        path=path,
        v=in_force.version or "—",
        n=len(in_force.rules),
    )
    if file_error:
        status = t('{s}<div class="flash flash-err" role="alert">磁盘上的规则文件未生效，仍在使用上一版：{e}</div>', s=status, e=file_error)
    options = join(t('<option value="{d}"{sel}>近 {d} 天</option>', d=d, sel=Safe(" selected") if d == days else "") for d in DRY_RUN_DAYS)
    editor = t(
        '<form method="post" action="/console/rules" class="stack">'
        '<input type="hidden" name="csrf_token" value="{csrf}"><input type="hidden" name="base_version" value="{base}">'
        '<label>规则文件（TOML）<textarea name="text" rows="32" cols="110" spellcheck="false" wrap="off">{text}</textarea></label>'
        '<div class="row"><label>试运行范围 <select name="days">{options}</select></label>'
        '<button type="submit" formaction="/console/rules/dry-run">试运行（不保存）</button>'
        '<button type="submit" class="primary">校验并保存</button></div>'
        '<p class="hint">试运行按编辑框中的内容回放近期客户消息，显示每个标签将新增、移除哪些客户及依据，不写入任何数据。'
        "保存时先校验，原文件备份为 .bak。</p></form>",
        csrf=ctx.csrf,
        base=base_version,
        text=text,
        options=options,
    )
    return t(
        "{status}{problems}<h2>编辑规则</h2>{editor}{results}<h2>生效中的规则</h2>{rules}",
        status=status,
        problems=problems_box(problems) if problems else "",
        editor=editor,
        results=dry_run_results(report, days) if report is not None and not problems else "",
        rules=rules_table(in_force),
    )


# ---- views --------------------------------------------------------------------------------------------------
async def _render(
    request: web.Request,
    *,
    text: str | None = None,
    base_version: str | None = None,
    problems: list[Problem] | None = None,
    report: DryRunReport | None = None,
    days: int = 30,
    status: int = 200,
) -> web.Response:
    rt = request.app[RUNTIME]
    cache = tagger_cache(rt)
    in_force = (await cache.get(rt)).rules
    if text is None or base_version is None:
        disk_text, disk_version = cache.read_text()
        text = disk_text if text is None else text
        base_version = disk_version if base_version is None else base_version
    ctx = _ctx(request, "rules")
    body = rules_page(
        ctx,
        text=text,
        base_version=base_version,
        in_force=in_force,
        path=str(cache.path),
        file_error=cache.status().error,
        problems=problems,
        report=report,
        days=days,
    )
    return _page(request, ctx, "标签规则", body, status=status)


async def rules_view(request: web.Request) -> web.Response:
    """标签规则: the rules in force and the editor."""
    return await _render(request)


def _text(form: dict[str, str]) -> str:
    return form.get("text", "").replace("\r\n", "\n")


async def rules_save(request: web.Request) -> web.Response:
    """校验并保存: validate, refuse a stale base version, replace the file atomically, put it in force."""
    form = await _form(request)
    text, base = _text(form), form.get("base_version", "")
    rt = request.app[RUNTIME]
    try:
        rules = await tagger_cache(rt).save(rt, text, base_version=base)
    except RulesFileError as exc:
        return await _render(request, text=text, base_version=base, problems=exc.problems, status=400)
    except Conflict as exc:
        problem = Problem("", "", exc.message)
        return await _render(request, text=text, base_version=base, problems=[problem], status=409)
    log.info("tag rules saved from the console", extra={"by": request[auth.SESSION].subject, "version": rules.version})
    return _back(
        request, "/console/rules", "ok", f"规则已保存并生效：{len(rules.rules)} 条规则（版本 {rules.version}），原文件已备份为 .bak"
    )


async def rules_dry_run(request: web.Request) -> web.Response:
    """试运行: the edited text against recent customer messages; nothing is saved or written."""
    form = await _form(request)
    text, base = _text(form), form.get("base_version", "")
    raw_days = form.get("days", "30")
    days = int(raw_days) if raw_days.isdecimal() and int(raw_days) in DRY_RUN_DAYS else 30
    try:
        rules = parse_rules(text)
    except RulesFileError as exc:
        return await _render(request, text=text, base_version=base, problems=exc.problems, days=days, status=400)
    rt = request.app[RUNTIME]
    since = rt.clock.now() - dt.timedelta(days=days)
    report = await replay(rt, rules, since=since, limit=DRY_RUN_LIMIT, top=DRY_RUN_TOP)
    return await _render(request, text=text, base_version=base, report=report, days=days)


ROUTES = (
    ("GET", "/console/rules", rules_view),
    ("POST", "/console/rules", rules_save),
    ("POST", "/console/rules/dry-run", rules_dry_run),
)


def setup_routes(app: web.Application, *, roles: Collection[str] = auth.MARKETING_ROLES) -> None:
    """Mount the rules editor behind the console's sign-in (CSRF on both POSTs)."""
    for method, path, handler in ROUTES:
        app.router.add_route(method, path, auth.protected(handler, roles=roles, forbidden_page=forbidden))
