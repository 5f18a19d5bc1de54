"""Repurchase alerts (复购预警) measured: on a synthetic purchase history with known intervals, how many repurchases
had an alert before them, and how many alerts were followed by a purchase.

``python -m bench.repurchase [--customers 2000] [--days 540] [--seed 16] [--lead-days 3] [--no-write]``

The history (fixed seed, so every run sees the same one) mixes the kinds of customer a shop has, each buying one to
three products from day 0 (staggered starts) to ``--days``:

| profile | share | intervals |
|---|---:|---|
| regular | 60 % | every k days ± 10 % (k = 7, 14, 30 or 60) |
| irregular | 25 % | gamma-distributed around k (coefficient of variation 0.5) |
| churner | 15 % | regular, then stops for good after a third to two thirds of the period |

It is replayed day by day through :func:`scrm.sales.repurchase.domain.replay` — the same prediction and alert rules
the nightly recompute applies (median of the latest gaps, the product's typical interval for a single purchase,
a reminder ``--lead-days`` before the predicted date, at-risk after two intervals): each morning the alerts are
raised from the purchases before today, then the day's purchases happen and close their alert.

Reported: **recall** = repurchases with an open alert when they happened / all repurchases (every purchase but a
customer's first of that product), overall and per profile; **precision** = reminders (due alerts) followed by the
purchase / reminders whose fate is known (followed, or replaced by an at-risk alert because nothing came); how far
ahead the alert came; at-risk alerts and how many of those customers came back; the replay's time.
Targets: recall ≥ 80 % overall and ≥ 90 % for the regular customers; precision ≥ 70 %.

Exit code 0 = every target met, 1 = one missed or the run broke, 2 = hard timeout. Results go to stdout and to
``docs/BENCHMARKS.md`` (``<!-- bench:repurchase -->``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import random
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from bench.common import TIMED_OUT, add_run_options, command_line, generated_line, guarded, machine_lines, publish
from bench.verdict import Report, at_least, check
from scrm.sales.repurchase.domain import Pair, ReplayResult, replay

TARGET_RECALL = 0.80
TARGET_RECALL_REGULAR = 0.90
TARGET_PRECISION = 0.70
PROFILES = (("regular", 0.60), ("irregular", 0.25), ("churner", 0.15))
RHYTHMS = (7, 14, 30, 60)
SKUS = tuple(f"SKU-{i:02d}" for i in range(12))
DAY0 = dt.date(2025, 1, 6)


@dataclass
class History:
    purchases: dict[Pair, list[dt.date]] = field(default_factory=dict)
    profile_of: dict[int, str] = field(default_factory=dict)


def synthetic_history(customers: int, days: int, seed: int) -> History:
    """The mixed history described in the module docstring."""
    rng = random.Random(seed)
    h = History()
    end = DAY0 + dt.timedelta(days=days)
    names, weights = [n for n, _ in PROFILES], [w for _, w in PROFILES]
    for cid in range(1, customers + 1):
        profile = rng.choices(names, weights)[0]
        h.profile_of[cid] = profile
        stop = end if profile != "churner" else DAY0 + dt.timedelta(days=rng.randint(days // 3, 2 * days // 3))
        for sku in rng.sample(SKUS, rng.randint(1, 3)):
            k = rng.choice(RHYTHMS)
            at = DAY0 + dt.timedelta(days=rng.randint(0, k))
            days_of: list[dt.date] = []
            while at < stop:
                days_of.append(at)
                if profile == "irregular":
                    gap = rng.gammavariate(4.0, k / 4.0)  # mean k, CV 0.5
                else:
                    gap = k + rng.uniform(-0.1, 0.1) * k
                at += dt.timedelta(days=max(1, round(gap)))
            if days_of:
                h.purchases[(cid, sku)] = days_of
    return h


@dataclass
class Measured:
    overall: ReplayResult
    by_profile: dict[str, ReplayResult]
    seconds: float
    pairs: int
    purchases: int


def measure(customers: int, days: int, seed: int, lead_days: int) -> Measured:
    history = synthetic_history(customers, days, seed)
    started = time.perf_counter()
    overall, by_profile = replay(
        history.purchases,
        lead_days=lead_days,
        start=DAY0,
        end=DAY0 + dt.timedelta(days=days),
        group=lambda pair: history.profile_of[pair[0]],
    )
    seconds = time.perf_counter() - started
    total = sum(len(v) for v in history.purchases.values())
    return Measured(overall, {name: by_profile.get(name, ReplayResult()) for name, _ in PROFILES}, seconds, len(history.purchases), total)


def pct(value: float) -> str:
    return "–" if math.isnan(value) else f"{value * 100:.1f} %"


def render(m: Measured, args: argparse.Namespace, command: Sequence[str]) -> str:
    o = m.overall
    leads = sorted(o.lead_days)
    lines = [
        "## Repurchase alerts (`python -m bench.repurchase`)",
        "",
        generated_line(command),
        "",
        *machine_lines(),
        "",
        f"Synthetic history (seed {args.seed}): {args.customers:,} customers, {m.pairs:,} customer × product pairs, "
        f"{m.purchases:,} purchases over {args.days} days; profiles regular 60 % (k ± 10 %, k ∈ {{7, 14, 30, 60}}), irregular "
        "25 % (gamma, CV 0.5), churner 15 % (stops after ⅓–⅔ of the period). Replayed day by day through "
        f"`scrm.sales.repurchase.domain.replay` with a lead time of {args.lead_days} days.",
        "",
        "| customers | repurchases | alerted before (recall) | due alerts | followed by the purchase (precision) "
        "| … by the date + lead time | at-risk alerts | came back |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
        _row("all", o),
        *(_row(name, r) for name, r in m.by_profile.items()),
        "",
        f"How far ahead the alert came (alerted repurchases): median {statistics.median(leads) if leads else 0:g} days, "
        f"90th percentile {leads[int(0.9 * (len(leads) - 1))] if leads else 0} days. Replay time {m.seconds:.2f} s "
        f"({m.seconds / max(1, args.days) * 1000:.1f} ms per simulated day).",
        "",
        "Recall counts every repurchase, including second purchases made before enough peers had a rhythm to borrow. "
        "Precision counts a reminder as followed when the purchase came before the customer turned at risk; the stricter "
        "column only when it came by the predicted date + the lead time.",
    ]
    return "\n".join(lines) + "\n"


def _row(name: str, r: ReplayResult) -> str:
    return (
        f"| {name} | {r.repurchases:,} | {r.alerted:,} ({pct(r.recall)}) | {r.due_alerts:,} | {r.due_hits:,} ({pct(r.precision)}) | "
        f"{r.due_hits_on_time:,} ({pct(r.precision_on_time)}) | {r.at_risk_alerts:,} | {r.at_risk_recalled:,} |"
    )


def report_of(m: Measured) -> Report:
    o, regular = m.overall, m.by_profile["regular"]
    report = Report("repurchase")
    report.add(
        check("history has repurchases to measure", o.repurchases > 0, f"{o.repurchases:,} repurchases"),
        at_least("recall (all customers)", o.recall * 100, TARGET_RECALL * 100, " %"),
        at_least("recall (regular customers)", regular.recall * 100, TARGET_RECALL_REGULAR * 100, " %"),
        at_least("precision of reminders", o.precision * 100, TARGET_PRECISION * 100, " %"),
    )
    report.headline = f"recall {pct(o.recall)} (regular {pct(regular.recall)}), precision {pct(o.precision)}"
    report.figures = {
        "recall": o.recall, "recall_regular": regular.recall, "precision": o.precision, "precision_on_time": o.precision_on_time,
        "repurchases": o.repurchases,
    }  # fmt: skip
    return report


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.repurchase", description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=2000)
    parser.add_argument("--days", type=int, default=540, help="simulated days")
    parser.add_argument("--seed", type=int, default=16)
    parser.add_argument("--lead-days", type=int, default=3, help="remind this many days before the predicted date")
    add_run_options(parser, hard_timeout=600.0)
    return parser.parse_args(list(argv) if argv is not None else None)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    code, measured = guarded(lambda: measure(args.customers, args.days, args.seed, args.lead_days), hard_timeout=args.hard_timeout)
    if code is not None or measured is None:
        return code if code is not None else TIMED_OUT
    text = render(measured, args, command_line("bench.repurchase", argv))
    return publish("repurchase", text, report_of(measured), write=not args.no_write, results=args.results)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
