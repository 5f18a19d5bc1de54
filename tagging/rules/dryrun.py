"""Dry run: replay stored customer messages against a rules file and report what would change. Writes nothing.

``python run.py tags dry-run [--rules FILE] [--since YYYY-MM-DD] [--limit N] [--top N]``

The replay takes every text customers wrote — kf and Official Account texts, and the customers' own lines in the
chat archive — since ``--since`` (all history by default; ``--limit`` keeps the N most recent), per customer in
time order, and plays the candidate rules over them as the live tagger would: scores add up and decay, a tag goes
on at ``threshold`` and comes off below ``remove_threshold`` (decayed to now). The result is compared with who
carries each rule's tag now: customers who would **gain** it, customers who would **lose** it (a rule tag, and
their replayed messages no longer earn it), and how many keep it. Tags put on by people are never counted as a
change: rules do not touch them. Customers with no message in the replay window are left out of gains and losses.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import heapq
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, Any

import sqlalchemy as sa

from fulfillment.catalog.services import catalog_naming, list_products
from scrm.core.clock import SHANGHAI, local
from scrm.core.runtime import Runtime
from scrm.crm.archive.models import archive_messages
from scrm.crm.customers.models import customer_identities, customers
from scrm.crm.groups.domain import EXTERNAL_PREFIXES
from scrm.crm.tags.models import TagSource, customer_tags
from tagging.rules import scoring
from tagging.rules.domain import Rule, RuleSet
from tagging.rules.engine import build_matcher, product_words
from tagging.rules.matcher import Matcher
from tagging.rules.services import CUSTOMER_TEXT_KINDS, archive_ref, inbound_ref, inbound_view, rule_tag_id

PAGE = 2000  # rows matched per worker-thread hop


@dataclass(frozen=True)
class Evidence:
    customer_id: int
    ref: str
    at: dt.datetime
    text: str
    words: tuple[str, ...]
    score: float  # the customer's score for the rule, decayed to now
    reasons: tuple[str, ...] = ()  # how each occurrence of the rule's words was read (命中 / 否定 / 排除 / 在词内)


@dataclass
class TagChange:
    rule: Rule
    gain: list[Evidence] = field(default_factory=list)  # the top ones by score
    lose: list[Evidence | int] = field(default_factory=list)  # evidence of the last match, or the bare customer id
    gained: int = 0
    lost: int = 0
    kept: int = 0
    by_hand: int = 0  # would earn it, but carry it from another source (rules leave those alone)
    not_replayed: int = 0  # carry it as a rule tag, but wrote nothing in the window


@dataclass
class DryRunReport:
    rules: RuleSet
    now: dt.datetime
    since: dt.datetime | None
    messages: int
    customers: int
    sources: dict[str, int]
    changes: list[TagChange]
    names: dict[int, str] = field(default_factory=dict)


class _Simulator:
    """Replays rows ordered by customer then time; keeps one customer's state at a time. Blocking (jieba)."""

    def __init__(self, matcher: Matcher, now: dt.datetime) -> None:
        self.matcher, self.now = matcher, now
        self.customer: int | None = None
        self.state: dict[str, tuple[scoring.Score, bool, Evidence | None, Evidence | None]] = {}  # score, on, best, last
        self.would: dict[str, dict[int, Evidence]] = {r.id: {} for r in matcher.rules}
        self.near: dict[str, dict[int, Evidence]] = {r.id: {} for r in matcher.rules}  # matched, not enough
        self.seen: set[int] = set()
        self.messages = 0
        self.sources: dict[str, int] = {}

    def feed(self, rows: list[Any]) -> None:
        for row in rows:
            if row.customer_id != self.customer:
                self._finish_customer()
                self.customer = int(row.customer_id)
                self.seen.add(self.customer)
            self.messages += 1
            self.sources[row.source] = self.sources.get(row.source, 0) + 1
            for m in self.matcher.match(row.text):
                rule = m.rule
                score, on, best, _ = self.state.get(rule.id, (None, False, None, None))
                if on and scoring.value_at(score, row.at, rule.half_life_days) < rule.remove_threshold:
                    on = False  # the daily decay would have taken it off before this message
                new = scoring.add(score, m.score, row.at, rule.half_life_days)
                on = on or scoring.value_at(new, row.at, rule.half_life_days) >= rule.threshold
                ref = inbound_ref(int(row.key)) if row.source == "inbound" else archive_ref(row.key)
                ev = Evidence(int(row.customer_id), ref, row.at, row.text, m.words, m.score, tuple(m.reasons()))
                if best is None or m.score >= best.score:
                    best = ev
                self.state[rule.id] = (new, on, best, ev)

    def _finish_customer(self) -> None:
        for rule in self.matcher.rules:
            if rule.id not in self.state:
                continue
            score, on, best, _last = self.state[rule.id]
            value = scoring.value_at(score, self.now, rule.half_life_days)
            assert best is not None and self.customer is not None
            ev = Evidence(best.customer_id, best.ref, best.at, best.text, best.words, value, best.reasons)
            if on and value >= rule.remove_threshold:
                self.would[rule.id][self.customer] = ev
            else:
                self.near[rule.id][self.customer] = ev
        self.state = {}

    def finish(self) -> None:
        self._finish_customer()
        self.customer = None


def _history(since: dt.datetime | None) -> tuple[Any, list[Any]]:
    """Every customer text as (customer_id, source, key, text, at), compiled with bound parameters only."""
    iv, ci, am = inbound_view.c, customer_identities.c, archive_messages.c
    parts: list[Any] = []
    for (channel, kind), identity in CUSTOMER_TEXT_KINDS.items():
        who = iv.external_userid if identity == "external_userid" else iv.from_user
        parts.append(
            sa.select(
                ci.customer_id.label("customer_id"),
                sa.literal("inbound").label("source"),
                sa.cast(iv.id, sa.String).label("key"),
                iv.content.label("text"),
                iv.occurred_at.label("at"),
            )
            .join(customer_identities, sa.and_(ci.kind == identity, ci.value == who))
            .where(iv.channel == channel, iv.kind == kind)
        )
    parts.append(
        sa.select(am.customer_id, sa.literal("archive"), am.msgid, am.content, am.msgtime).where(
            am.action == "send",
            am.msgtype == "text",
            am.customer_id.is_not(None),
            sa.or_(*(am.from_id.startswith(prefix, autoescape=True) for prefix in EXTERNAL_PREFIXES)),
        )
    )
    union = sa.union_all(*parts).subquery("history")
    return union, ([union.c.at >= since] if since is not None else [])


async def replay(
    rt: Runtime,
    rules: RuleSet,
    *,
    since: dt.datetime | None = None,
    limit: int | None = None,
    top: int = 10,
    progress: Callable[[int, int], None] | None = None,
) -> DryRunReport:
    """Replay stored customer texts against ``rules`` and compare with the tags customers carry now. Reads only.
    Matching runs in a worker thread, a page at a time, so a server's event loop stays responsive."""
    now = rt.clock.now()
    async with rt.db.read() as conn:
        infos = await list_products(conn)
        words, naming = product_words(infos), catalog_naming(infos)
        union, where = _history(since)
        if limit is not None:
            cutoff_q = sa.select(union.c.at).where(*where).order_by(union.c.at.desc()).limit(1).offset(max(limit - 1, 0))
            cutoff = (await conn.execute(cutoff_q)).scalar()
            if cutoff is not None:
                where = [union.c.at >= cutoff]
                since = cutoff if since is None else max(since, cutoff)
        total = int((await conn.execute(sa.select(sa.func.count()).select_from(union).where(*where))).scalar_one())
    matcher = await asyncio.to_thread(build_matcher, rules, words, naming)  # the process's tokenizer, shared
    sim = _Simulator(matcher, now)
    done = 0
    async with rt.db.read() as conn:
        q = sa.select(union).where(*where).order_by(union.c.customer_id, union.c.at, union.c.source, union.c.key)
        result = await conn.stream(q)
        async for page in result.partitions(PAGE):
            await asyncio.to_thread(sim.feed, list(page))
            done += len(page)
            if progress is not None:
                progress(done, total)
    sim.finish()
    changes = [await _compare(rt, rule, sim, top) for rule in rules.rules]
    report = DryRunReport(rules, now, since, sim.messages, len(sim.seen), dict(sim.sources), changes)
    ids = {e if isinstance(e, int) else e.customer_id for c in changes for e in [*c.gain, *c.lose]}
    if ids:
        async with rt.db.read() as conn:
            q = sa.select(customers.c.id, customers.c.name).where(customers.c.id.in_(sorted(ids)))
            report.names = {int(r.id): r.name for r in await conn.execute(q)}
    return report


async def _compare(rt: Runtime, rule: Rule, sim: _Simulator, top: int) -> TagChange:
    change = TagChange(rule)
    async with rt.db.read() as conn:
        tag_id = await rule_tag_id(conn, rule)
        current: dict[int, str] = {}
        if tag_id is not None:
            q = sa.select(customer_tags.c.customer_id, customer_tags.c.source).where(customer_tags.c.tag_id == tag_id)
            current = {int(r.customer_id): r.source for r in await conn.execute(q)}
    would = sim.would[rule.id]
    gains: list[Evidence] = []
    for cid, ev in would.items():
        source = current.get(cid)
        if source is None:
            gains.append(ev)
        elif source == TagSource.RULE:
            change.kept += 1
        else:
            change.by_hand += 1
    losses: list[Evidence | int] = []
    for cid, source in current.items():
        if source != TagSource.RULE or cid in would:
            continue
        if cid not in sim.seen:
            change.not_replayed += 1
            continue
        losses.append(sim.near[rule.id].get(cid, cid))
    change.gained, change.lost = len(gains), len(losses)
    change.gain = heapq.nlargest(top, gains, key=lambda e: (e.score, e.at))
    change.lose = sorted(losses, key=lambda e: -e.score if isinstance(e, Evidence) else 0.0)[:top]
    return change


# ---- printing -------------------------------------------------------------------------------------------------
def _when(at: dt.datetime) -> str:
    return local(at).strftime("%Y-%m-%d %H:%M")


def _clip(text: str, limit: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def evidence_line(ev: Evidence, name: str) -> str:
    """One line of evidence: who, the score now, when, what they wrote, the words that counted, the message ref, and
    the reading of each occurrence (命中 / 被否定 / 排除 / 在词内)."""
    who = f"#{ev.customer_id} {name}".rstrip()
    why = f" · {'；'.join(ev.reasons)}" if ev.reasons else ""
    return f"{who}  得分 {ev.score:.2f} · {_when(ev.at)} · “{_clip(ev.text)}” [{' '.join(ev.words)}] ({ev.ref}){why}"


def format_report(report: DryRunReport, *, source: str = "") -> str:
    """The dry-run result as plain text (Chinese first), one block per tag."""
    counts = "，".join(f"{'客服/公众号' if k == 'inbound' else '会话存档'} {v:,} 条" for k, v in sorted(report.sources.items()))
    window = f"{_when(report.since)} 起" if report.since else "全部历史中"
    lines = [
        f"规则文件：{source or '(未保存的规则)'}（{len(report.rules.rules)} 条规则，版本 {report.rules.version or '-'}）",
        f"回放{window}的 {report.messages:,} 条客户消息（{counts or '无'}），涉及 {report.customers:,} 位客户；"
        f"得分衰减计算到 {_when(report.now)}。只读，不写入任何数据。",
    ]
    for c in report.changes:
        lines.append("")
        lines.append(f"【{c.rule.tag}】（{c.rule.group}）" + (f"规则 id {c.rule.id}" if c.rule.id != c.rule.tag else ""))
        summary = f"  将新增 {c.gained} 位 · 将移除 {c.lost} 位 · 保持 {c.kept} 位"
        if c.by_hand:
            summary += f" · 已由人工或其他来源打上 {c.by_hand} 位（规则不改动）"
        if c.not_replayed:
            summary += f" · 窗口内无消息 {c.not_replayed} 位（不变）"
        lines.append(summary)
        lines.extend(f"  + {evidence_line(ev, report.names.get(ev.customer_id, ''))}" for ev in c.gain)
        if c.gained > len(c.gain):
            lines.append(f"    … 另有 {c.gained - len(c.gain)} 位将新增")
        for item in c.lose:
            if isinstance(item, Evidence):
                lines.append(f"  - {evidence_line(item, report.names.get(item.customer_id, ''))}（不足以保留）")
            else:
                who = f"#{item} {report.names.get(item, '')}".rstrip()
                lines.append(f"  - {who}  窗口内没有命中本规则的消息")
        if c.lost > len(c.lose):
            lines.append(f"    … 另有 {c.lost - len(c.lose)} 位将移除")
    return "\n".join(lines)


# ---- the command ----------------------------------------------------------------------------------------------
def _parse_since(text: str | None) -> dt.datetime | None:
    if not text:
        return None
    day = dt.date.fromisoformat(text)
    return dt.datetime(day.year, day.month, day.day, tzinfo=SHANGHAI)


def _bar(out: IO[str]) -> Callable[[int, int], None]:
    def show(done: int, total: int) -> None:
        width = 30
        filled = int(width * done / total) if total else width
        print(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} 条消息", end="", file=out, flush=True)

    return show


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The dry-run options, for run.py's ``tags dry-run`` sub-command."""
    parser.add_argument("--rules", help="规则文件 (default: config/tag_rules.toml)")
    parser.add_argument("--since", help="只回放该日期（北京时间）之后的消息，YYYY-MM-DD")
    parser.add_argument("--limit", type=int, help="最多回放最近 N 条消息")
    parser.add_argument("--top", type=int, default=10, help="每个标签列出前 N 位客户的依据 (default 10)")
