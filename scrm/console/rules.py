"""/console/rules — 标签规则: view the chat tagging rules, edit the file, check it, try it on recent history, save it.

The page shows the rules in force (and, in red, why the file on disk is not in force when it does not validate),
then the file itself in a textarea. Two buttons submit the same form: 试运行 replays the last days of customer
messages against the text as edited (:func:`tagging.rules.dryrun.replay`, read-only) and shows who would gain or lose
each tag with the message that counts; 校验并保存 validates and replaces the file atomically (previous text kept as
``.bak``), refusing when someone else saved meanwhile. A text that does not validate comes back as typed, with
each problem listed by rule and field. Same building blocks as every console page: :func:`auth.protected`
(session + CSRF), typed values into ``templates/rules/page.html`` (:mod:`scrm.console.pages`, autoescaped), POST → 303 →
GET with a flash on success.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Collection
from dataclasses import dataclass

from aiohttp import web

from scrm.console import auth
from scrm.console.pages import back, forbidden, page_context, read_form, render, setup_templates, when
from scrm.core.errors import Conflict
from scrm.core.http.keys import RUNTIME
from tagging.rules.domain import Problem, RuleSet, RulesFileError, parse_rules
from tagging.rules.dryrun import DryRunReport, Evidence, replay
from tagging.rules.engine import tagger_cache

log = logging.getLogger(__name__)

DRY_RUN_DAYS = (7, 30, 90)
DRY_RUN_LIMIT = 5000  # messages replayed at most (the most recent), so a preview stays a few seconds at worst
DRY_RUN_TOP = 20


# ---- view values --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RuleRow:
    """One rule in force as the table shows it."""

    tag: str
    description: str
    group: str
    words: str
    excluded: str
    patterns: tuple[str, ...]
    weight: str
    thresholds: str
    half_life: str


@dataclass(frozen=True)
class ChangeView:
    """One tag's dry-run outcome: the counts, then who would gain it and who would lose it (customer, score, time,
    message, words, ref)."""

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
class RulesView:
    """The whole page: the file's status, the problems found, the editor's text, dry-run results, the rules."""

    path: str
    version: str
    file_error: str
    text: str
    base_version: str
    days: int
    day_choices: tuple[int, ...]
    problems: tuple[tuple[str, str, str], ...]
    dry_run: DryRunView | None
    rules: tuple[RuleRow, ...]


def _words(words: tuple[str, ...], limit: int = 8) -> str:
    shown = "、".join(words[:limit])
    return shown + (f" 等 {len(words)} 个" if len(words) > limit else "")


def rule_rows(rules: RuleSet) -> tuple[RuleRow, ...]:
    """The rules in force, one row each."""
    return tuple(
        RuleRow(
            tag=r.tag,
            description=r.description,
            group=r.group,
            words=_words(r.keywords + tuple(s for s, _ in r.synonyms)),
            excluded=_words(r.excluded) or "—",
            patterns=tuple(r.patterns),
            weight=f"{r.weight:g}",
            thresholds=f"{r.threshold:g} / {r.remove_threshold:g}",
            half_life=f"{r.half_life_days:g} 天",
        )
        for r in rules.rules
    )


def _evidence_row(ev: Evidence, names: dict[int, str]) -> tuple[str, ...]:
    return (f"#{ev.customer_id} {names.get(ev.customer_id, '')}", f"{ev.score:.2f}", when(ev.at), ev.text, "、".join(ev.words), ev.ref)


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
            else (f"#{item} {report.names.get(item, '')}", "0", "—", "窗口内没有命中本规则的消息", "—", "—")
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
    view = RulesView(
        path=str(cache.path),
        version=in_force.version or "",
        file_error=cache.status().error,
        text=text,
        base_version=base_version,
        days=days,
        day_choices=DRY_RUN_DAYS,
        problems=tuple((p.rule or "（整个文件）", p.field or "—", p.message) for p in problems or ()),
        dry_run=dry_run_view(report, days) if report is not None and not problems else None,
        rules=rule_rows(in_force),
    )
    return render(request, "rules/page.html", page_context(request, "rules"), http_status=status, view=view)


async def rules_view(request: web.Request) -> web.Response:
    """标签规则: the rules in force and the editor."""
    return await _render(request)


def _text(form: dict[str, str]) -> str:
    return form.get("text", "").replace("\r\n", "\n")


async def rules_save(request: web.Request) -> web.Response:
    """校验并保存: validate, refuse a stale base version, replace the file atomically, put it in force."""
    form = await read_form(request)
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
    return back(
        request, "/console/rules", "ok", f"规则已保存并生效：{len(rules.rules)} 条规则（版本 {rules.version}），原文件已备份为 .bak"
    )


async def rules_dry_run(request: web.Request) -> web.Response:
    """试运行: the edited text against recent customer messages; nothing is saved or written."""
    form = await read_form(request)
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
    setup_templates(app)
    for method, path, handler in ROUTES:
        app.router.add_route(method, path, auth.protected(handler, roles=roles, forbidden_page=forbidden))
