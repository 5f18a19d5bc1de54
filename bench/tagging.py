"""Tagging throughput: tag matching (tokenize + match, no database) vs raw ``jieba.lcut`` on the same messages.

``python -m bench.tagging [--messages 20000] [--rules 1000] [--repeat 5] [--seed 7] [--no-write]``

Rules: the sample file (config/tag_rules.toml) plus ``--rules`` generated ones — 3–6 keywords each drawn from
jieba's own dictionary (real words, 2–4 characters), a third with a synonym, a third with an excluded word, a fifth
with an intent pattern (``词A.{0,4}词B``). Messages: ``--messages`` chat lines of 20–60 characters built from shop
phrases (greetings, the sample catalog's products, quantities, the intents the sample rules look for) and words of
the same dictionary pool, so generated rules match now and then too.

Cases, each over every message, interleaved for ``--repeat`` rounds (best round reported, median beside it):

* ``jieba.lcut`` — jieba's default tokenizer, default mode (HMM on): the target's baseline.
* ``jieba.lcut(HMM=False)`` — the same without HMM (what the matcher cuts with), for reference.
* ``Matcher.match`` — normalise + cut (jieba's dictionary plus the catalog words) + inverted index + pattern gates +
  the reading of token boundaries, clauses and negation: what tagging costs per message before any database work.
* ``loop over rules`` — the same reading, then every rule's words and every pattern searched in turn: the obvious
  implementation, and the correctness reference — the matcher must find exactly what it finds on every message.

Target: ``Matcher.match`` ≥ 0.8 × the throughput of ``jieba.lcut``. Exit code 0 = target met and results
identical, 1 = not, 2 = hard timeout. Results go to stdout and to ``docs/BENCHMARKS.md`` (``<!-- bench:tagging -->``).
"""

from __future__ import annotations

import argparse
import gc
import logging
import random
import re
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jieba

from bench.common import (
    add_run_options,
    background_busy,
    background_line,
    command_line,
    fmt_rate,
    generated_line,
    guarded,
    machine_lines,
    publish,
)
from bench.verdict import Report, at_least, check
from scrm.core.tokenizer import fresh_tokenizer
from tagging.rules.domain import Rule, RuleSet, compile_pattern, load_rules, normalize, parse_rules
from tagging.rules.engine import RULES_FILE, build_matcher
from tagging.rules.matcher import Matcher, MessageReading

TARGET = 0.8
_CJK = re.compile(r"^[\u4e00-\u9fff]{2,4}$")
GREETINGS = ["老板", "你好", "在吗", "亲", "老板在吗", "麻烦问一下", "早上好", "您好"]
PRODUCTS = ["矿泉水", "农夫山泉", "可乐", "可口可乐", "抽纸", "纸巾", "东北大米", "生抽", "老抽", "花生油", "餐巾纸"]
QUANTITIES = ["3箱", "两箱", "十箱", "一提", "5袋", "二十箱", "一百箱", "2桶", "六瓶", "半箱"]
INTENTS = [
    "多少钱一箱",
    "批发价多少钱",
    "给个价格表",
    "什么时候到",
    "怎么还没到啊",
    "太贵了能便宜点吗",
    "有没有优惠",
    "老样子再来",
    "还要两箱",
    "上次的有两瓶漏了",
    "箱子坏了要退货",
    "质量问题",
    "快点发货",
    "跟上次一样",
    "公司采购要开专票",
    "别家才卖三十",
    "帮我送到店里",
    "地址没变",
    "下午能送吗",
    "谢谢老板",
    "好的收到",
    "发票抬头写公司",
    "今天能发货吗",
    "上次那批挺好的",
]
PUNCT = ["，", "。", "？", "！", " ", "～"]
CATALOG_WORDS = ("矿泉水", "农夫山泉", "可乐", "可口可乐", "抽纸", "纸巾", "餐巾纸", "东北大米", "大米", "生抽", "老抽", "花生油")


def dictionary_pool(rng: random.Random, size: int) -> list[str]:
    """Real words from jieba's dictionary: Chinese only, 2–4 characters, moderately common."""
    path = Path(jieba.__file__).with_name("dict.txt")
    words = []
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            parts = line.split()
            if len(parts) >= 2 and _CJK.match(parts[0]) and 20 <= int(parts[1]) <= 5000:
                words.append(parts[0])
    rng.shuffle(words)
    return words[:size]


def generate_rules(n: int, pool: list[str], rng: random.Random) -> RuleSet:
    blocks = []
    words = iter(pool)
    for i in range(n):
        keywords = [next(words) for _ in range(rng.randint(3, 6))]
        lines = [f'[[rules]]\nid = "gen-{i}"\ntag = "生成标签{i}"\ngroup = "压测"', f"keywords = {keywords!r}".replace("'", '"')]
        if rng.random() < 1 / 3:
            lines.append(f"excluded = [{next(words)!r}]".replace("'", '"'))
        if rng.random() < 0.2:
            a, b = next(words), next(words)
            lines.append(f'patterns = ["{a}.{{0,4}}{b}"]')
        if rng.random() < 1 / 3:
            lines.append(f'[rules.synonyms]\n"{keywords[0]}" = ["{next(words)}"]')
        blocks.append("\n".join(lines))
    return parse_rules("\n\n".join(blocks))


def generate_messages(n: int, pool: list[str], rng: random.Random) -> list[str]:
    """Chat lines of 20–60 characters: shop phrases mixed with dictionary words."""
    out: list[str] = []
    while len(out) < n:
        target = rng.randint(20, 60)
        parts: list[str] = []
        if rng.random() < 0.6:
            parts += [rng.choice(GREETINGS), rng.choice(PUNCT[:2])]
        length = sum(map(len, parts))
        while length < target:
            kind = rng.random()
            if kind < 0.3:
                piece = rng.choice(INTENTS)
            elif kind < 0.5:
                piece = rng.choice(QUANTITIES) + rng.choice(PRODUCTS)
            elif kind < 0.6:
                piece = rng.choice(PRODUCTS)
            else:
                piece = "".join(rng.choice(pool) for _ in range(rng.randint(1, 2)))
            parts += [piece, rng.choice(PUNCT) if rng.random() < 0.5 else ""]
            length += len(piece) + 1
        line = "".join(parts)[:60].strip()
        if len(line) >= 20:
            out.append(line)
    return out


@dataclass
class Case:
    name: str
    run: Callable[[str], object]
    messages: list[str]
    times: list[float] = field(default_factory=list)

    def rate(self, seconds: float) -> float:
        return len(self.messages) / seconds


class LoopOverRules:
    """The obvious implementation with the matcher's semantics, rule by rule: the timing and correctness reference."""

    def __init__(self, matcher: Matcher, rules: Sequence[Rule]) -> None:
        self.matcher = matcher
        self.rules = [
            (r, {k: (k, *(s for s, kk in r.synonyms if kk == k)) for k in r.keywords}, [compile_pattern(p) for p in r.patterns])
            for r in rules
        ]

    def __call__(self, text: str) -> list[tuple[str, frozenset[str]]]:
        norm = normalize(text)
        reading = MessageReading(norm, self.matcher.tokens(text))  # the same reading of tokens, clauses and negators

        def places(word: str) -> list[int]:
            out, i = [], norm.find(word)
            while i >= 0:
                out.append(i)
                i = norm.find(word, i + 1)
            return out

        def counts(start: int, end: int, vetoed: set[int]) -> bool:
            clause = reading.clause_of(start)
            return clause >= 0 and clause not in vetoed and not reading.negator(start, end)

        found = []
        for rule, keywords, patterns in self.rules:
            vetoed = {reading.clause_of(i) for w in rule.excluded for i in places(w) if not reading.inside(i, i + len(w))}
            hits = {
                k
                for k, forms in keywords.items()
                if any(not reading.inside(i, i + len(f)) and counts(i, i + len(f), vetoed) for f in forms for i in places(f))
            }
            hits |= {f"/{p.pattern}/" for p in patterns if any(m.end() > m.start() and counts(*m.span(), vetoed) for m in p.finditer(norm))}
            if hits:
                found.append((rule.id, frozenset(hits)))
        return found


def timed(cases: list[Case], repeat: int) -> None:
    for _ in range(repeat):
        for case in cases:
            run = case.run
            gc.collect()
            start = time.perf_counter()
            for text in case.messages:
                run(text)
            case.times.append(time.perf_counter() - start)


def render(
    cases: list[Case], messages: list[str], rules: int, args: argparse.Namespace, facts: dict[str, str], checks: dict[str, str]
) -> str:
    chars = sum(map(len, messages))
    base = cases[0].rate(min(cases[0].times))
    lines = [
        "## Tagging",
        "",
        generated_line(command_line("bench.tagging", args.argv)),
        "",
        *machine_lines(facts),
        "",
        f"Workload: {len(messages):,} chat lines of 20–60 characters (mean {chars / len(messages):.1f}), {rules:,} rules "
        f"(the sample file + {args.rules:,} generated from jieba's dictionary); best of {args.repeat} interleaved rounds, "
        "one core, no database. The loop over rules is timed on the first tenth of the messages (it is slow).",
        "",
        "| case | msg/s (best) | msg/s (median) | M chars/s | µs / msg | throughput vs `jieba.lcut` |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for case in cases:
        best, median = case.rate(min(case.times)), case.rate(statistics.median(case.times))
        per_char = sum(map(len, case.messages)) / len(case.messages)
        lines.append(
            f"| {case.name} | {fmt_rate(best)} | {fmt_rate(median)} | {best * per_char / 1e6:.2f} | {1e6 / best:.1f} | {best / base:.2f}× |"
        )
    lines += ["", *(f"- {k}: {v}" for k, v in checks.items())]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.tagging", description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--rules", type=int, default=1000, help="generated rules on top of the sample file")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--seed", type=int, default=7)
    add_run_options(parser, hard_timeout=600)
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    if not (100 <= args.messages <= 1_000_000 and 0 <= args.rules <= 5000 and 1 <= args.repeat <= 50):
        parser.error("--messages 100..1000000, --rules 0..5000, --repeat 1..50")

    def run() -> dict[str, Any]:
        jieba.setLogLevel(logging.WARNING)
        facts = {"machine busy before start": background_line(background_busy()), "jieba": jieba.__version__}
        rng = random.Random(args.seed)
        pool = dictionary_pool(rng, 9 * args.rules + 2000)
        sample = load_rules(RULES_FILE)
        generated = generate_rules(args.rules, pool, rng)
        rules = RuleSet(sample.rules + generated.rules, "bench")
        messages = generate_messages(args.messages, pool[: 9 * args.rules + 2000], rng)
        t0 = time.perf_counter()
        fresh_tokenizer()  # jieba's dictionary, once per process
        facts["jieba dictionary load (once per process)"] = f"{time.perf_counter() - t0:.2f} s"
        t0 = time.perf_counter()
        matcher = build_matcher(rules, CATALOG_WORDS)
        words = sum(len(r.words()) for r in rules.rules)
        facts["matcher build (copy dictionary + add words + index)"] = f"{time.perf_counter() - t0:.2f} s for {words:,} words"
        jieba.initialize()  # the baseline's global tokenizer, loaded before timing
        loop = LoopOverRules(matcher, rules.rules)
        checks: dict[str, str] = {}
        mismatches = [m for m in messages if sorted((x.rule.id, frozenset(x.hits)) for x in matcher.match(m)) != sorted(loop(m))]
        matched = sum(1 for m in messages if matcher.match(m))
        checks["same matches as the loop over rules"] = (
            f"yes, on all {len(messages):,} messages" if not mismatches else f"NO: {len(mismatches)} differ, e.g. {mismatches[:3]}"
        )
        checks["messages matching at least one rule"] = f"{matched:,} of {len(messages):,} ({matched / len(messages):.0%})"
        few = messages[: max(len(messages) // 10, 100)]
        cases = [
            Case("`jieba.lcut` (default, HMM on)", jieba.lcut, messages),
            Case("`jieba.lcut(HMM=False)`", lambda s: jieba.lcut(s, HMM=False), messages),
            Case(f"`Matcher.match` ({len(rules.rules):,} rules, inverted index)", matcher.match, messages),
            Case(f"loop over {len(rules.rules):,} rules, same tokens (first {len(few):,} messages)", loop, few),
        ]
        print(f"timing {len(cases)} cases × {args.repeat} rounds over {len(messages):,} messages …", flush=True)
        timed(cases, args.repeat)
        return {"cases": cases, "messages": messages, "rules": rules, "facts": facts, "checks": checks, "mismatches": mismatches}

    code, state = guarded(run, hard_timeout=args.hard_timeout)
    if code is not None or state is None:
        return code or 1
    cases, messages, checks, mismatches = state["cases"], state["messages"], state["checks"], state["mismatches"]
    ratio = cases[2].rate(min(cases[2].times)) / cases[0].rate(min(cases[0].times))
    report = Report("tagging")
    report.add(
        check("same matches as the loop over rules", not mismatches, checks["same matches as the loop over rules"]),
        at_least("`Matcher.match` / `jieba.lcut` throughput", ratio, TARGET, "×"),
    )
    lcut, match = (cases[i].rate(min(cases[i].times)) for i in (0, 2))
    report.headline = f"jieba.lcut / Matcher.match {fmt_rate(lcut)} / {fmt_rate(match)} msg/s ({ratio:.2f}×)"
    report.figures = {"lcut_msg_per_s": lcut, "match_msg_per_s": match, "ratio": ratio}
    text = render(cases, messages, len(state["rules"].rules), args, state["facts"], checks)
    return publish("tagging", text, report, write=not args.no_write, results=args.results)


if __name__ == "__main__":
    raise SystemExit(main())
