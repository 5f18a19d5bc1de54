"""``python run.py bench``: every benchmark in one run, one after another, and a summary on top of docs/BENCHMARKS.md.

``python run.py bench [--only ingest,orders] [--quick] [--seconds S] [--no-write] [--hard-timeout S]``

Parts (each its own ``python -m bench.NAME`` process, so peak-memory figures and crashes stay its own; each
rewrites its section of docs/BENCHMARKS.md):

* ``ingest`` — callback ingest, full path vs bare aiohttp vs decrypt+parse, req/s p50 p99, 1 and 2 processes;
* ``server`` — a real ``run.py serve`` (1 and 2 processes): RSS/PSS idle and under ingest load from a second process;
* ``orders`` — order placement under contention with the oversell checks, PostgreSQL and SQLite, against the raw
  conditional-UPDATE ceiling measured in the same run;
* ``tagging`` — tag matching vs raw ``jieba.lcut``;
* ``chat`` — chat understanding against the labelled corpus (bench/chat_corpus): exact match and wrong-order rate;
* ``broadcast`` — planning a broadcast to 100 k recipients: time and peak memory, SQLite and PostgreSQL;
* ``rfm`` — RFM recompute over 1 M customers / 10 M orders vs bare SQL and pandas;
* ``repurchase`` — repurchase alerts replayed day by day over a synthetic history with known intervals: recall
  (repurchases alerted before) and precision (reminders followed by the purchase);
* ``soak`` — **opt-in** (``--only soak``, alone or with others): ``serve --workers 2`` + 2 workers under 30 minutes of
  mixed load, RSS / p99 / queue depth sampled every 10 s — not part of the normal run, which stays ~16 minutes.

``--quick`` uses smaller sizes and shorter runs (a few minutes in all). The whole run is bounded by
``--hard-timeout``; each part gets what is left as its own ``--hard-timeout`` (their defaults assume a quiet
machine), and a part still running when the budget is spent gets SIGTERM (its own cleanup runs: scratch
databases dropped, children stopped), then SIGKILL. The summary section describes the machine (cores, CPU,
memory, versions, the load before and after — these machines are shared) and gives each part's result, wall
time and headline figures, all read from what each part concluded in this run (``--results`` JSON, see
:mod:`bench.verdict`), never scraped from a section an earlier run may have written. Exit code 0 = every part ran
and every check held and every target was met, 1 = some part did not.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench.common import (
    BENCHMARKS_MD,
    PROJECT_ROOT,
    background_busy,
    background_line,
    cpu_model,
    load_average,
    memory_total,
    nproc,
    pg_version,
    write_section,
)
from bench.verdict import Report, read_report, summary_passed, summary_result

KILL_GRACE = 30.0  # seconds between SIGTERM and SIGKILL for a part over the budget
SOAK_BUDGET = 30 * 60 + 600.0  # what `--only soak` adds to the run's budget (bench.soak's own hard timeout)
SOAK_BUDGET_QUICK = 5 * 60 + 600.0


@dataclass
class Part:
    name: str
    what: str
    argv: list[str]  # the full command (python -m bench.NAME …)
    opt_in: bool = False  # run only when named in --only (the soak: half an hour on its own)


@dataclass
class Outcome:
    part: Part
    code: int | None = None  # None: not run (budget spent before it)
    seconds: float = 0.0
    report: Report | None = None  # what the part concluded in this run (its --results file), None if it wrote none
    note: str = ""

    @property
    def passed(self) -> bool:
        return summary_passed(self.report, self.code)


def parts(args: argparse.Namespace) -> list[Part]:
    py = [sys.executable, "-m"]
    quick = args.quick
    seconds = ["--seconds", f"{args.seconds:g}"] if args.seconds else (["--seconds", "3"] if quick else [])
    write = ["--no-write"] if args.no_write else []
    return [
        Part("ingest", "callback ingest: full path vs bare aiohttp vs decrypt+parse, 1 and 2 processes; low-load latency",
             [*py, "bench.ingest", *seconds, *(["--pool-rate", "2500"] if quick else []), *write]),
        Part("server", "a real `run.py serve` (1 and 2 processes): RSS/PSS idle and under ingest load",
             [*py, "bench.server", *seconds, *write]),
        Part("orders", "order placement under contention + oversell checks, PostgreSQL and SQLite",
             [*py, "bench.orders", *seconds, *write]),
        Part("tagging", "tag matching vs raw jieba.lcut",
             [*py, "bench.tagging", *(["--messages", "5000", "--repeat", "3"] if quick else []), *write]),
        Part("chat", "chat understanding vs the labelled corpus: exact match, wrong-order rate (heldout targets)",
             [*py, "bench.chat", *write]),
        Part("broadcast", "broadcast planning: time and peak memory, SQLite and PostgreSQL",
             [*py, "bench.broadcast", "--recipients", "20000" if quick else "100000", "--backends", "sqlite,postgresql", *write]),
        Part("rfm", "RFM recompute vs bare SQL and pandas",
             [*py, "bench.rfm", *(["--customers", "100000", "--orders", "1000000", "--runs", "3"] if quick else []), *write]),
        Part("repurchase", "repurchase alerts on a synthetic history: recall of repurchases, precision of reminders",
             [*py, "bench.repurchase", *(["--customers", "500"] if quick else []), *write]),
        Part("soak", "serve --workers 2 + 2 workers, 30 min of mixed load: flat RSS, no growing queue, callback p99 (opt-in)",
             [*py, "bench.soak", *(["--minutes", "5", "--interval", "5"] if quick else []), *write], opt_in=True),
    ]  # fmt: skip


def chosen_parts(args: argparse.Namespace) -> list[Part]:
    """The parts ``--only`` names; without it every part but the opt-in ones (the half-hour soak)."""
    return [p for p in parts(args) if p.name in args.only_list or not (args.only_list or p.opt_in)]


# ---- running ----------------------------------------------------------------------------------------------
def run_part(part: Part, budget: float, results: Path) -> tuple[int, str]:
    """Run one part in a session of its own, output passed through; (exit code, note). The part's own hard
    timeout is what is left of the run's budget: its default assumes a quiet machine, and these are shared. It
    writes what it concluded to ``results`` (JSON, :mod:`bench.verdict`)."""
    argv = [*part.argv, "--hard-timeout", f"{max(1.0, budget - KILL_GRACE):.0f}", "--results", str(results)]
    proc = subprocess.Popen(argv, cwd=PROJECT_ROOT, start_new_session=True)
    try:
        return proc.wait(timeout=max(1.0, budget)), ""
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGTERM)  # the scripts turn SIGTERM into SystemExit: their cleanup runs
        try:
            proc.wait(KILL_GRACE)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        return 2, f"stopped: the run's time budget was spent after {budget:.0f} s"
    except KeyboardInterrupt:
        proc.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(KILL_GRACE)
        raise
    finally:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)


def uptime_line() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return f"load average {load_average()}"


def versions() -> dict[str, str]:
    import platform

    out = {"Python": f"{platform.python_implementation()} {platform.python_version()}", "SQLite": sqlite3.sqlite_version}
    try:
        out["PostgreSQL"] = asyncio.run(pg_version())
    except Exception as exc:
        out["PostgreSQL"] = f"unreachable ({type(exc).__name__})"
    try:
        import redis

        client = redis.Redis(host="127.0.0.1", port=6379, socket_timeout=3)
        out["Redis"] = str(client.info("server")["redis_version"])
        client.close()
    except Exception as exc:
        out["Redis"] = f"unreachable ({type(exc).__name__})"
    return out


@dataclass
class Machine:
    before_uptime: str = ""
    before_busy: str = ""
    after_uptime: str = ""
    facts: dict[str, str] = field(default_factory=dict)


def render(outcomes: list[Outcome], machine: Machine, argv: Sequence[str], wall: float) -> str:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    import platform

    lines = [
        "## Summary (`python run.py bench`)",
        "",
        f"Measured {stamp} with `python run.py bench{' ' + ' '.join(argv) if argv else ''}`; total wall time {wall:.0f} s. "
        "Each part ran alone, one after another, in a process of its own; its own section below has the details.",
        "",
        "**This machine is shared** (other people's builds and tests run on the same cores), so absolute figures drift "
        "between runs: compare the ratios measured within one section.",
        "",
        "| machine | |",
        "|---|---|",
        f"| cores | {nproc()} (`nproc`) |",
        f"| CPU | {cpu_model()} |",
        f"| memory | {memory_total()} |",
        *(f"| {k} | {v} |" for k, v in machine.facts.items()),
        f"| OS | {platform.system()} {platform.release()} |",
        f"| load before start | `{machine.before_uptime}`; CPU busy over 1 s: {machine.before_busy} |",
        f"| load after the run | `{machine.after_uptime}` |",
        "",
        "| part | what | result | wall time | headline figures |",
        "|---|---|---|---:|---|",
    ]
    for o in outcomes:
        result = summary_result(o.report, o.code)
        if o.note:
            result += f" — {o.note}"
        headline = o.report.headline if o.report and o.report.headline else "–"
        lines.append(f"| {o.part.name} | {o.part.what} | {result} | {o.seconds:.0f} s | {headline} |")
    passed = sum(o.passed for o in outcomes)
    lines += [
        "",
        f"**{'✔' if passed == len(outcomes) else '✘'} {passed} of {len(outcomes)} part(s) passed** — every result above is "
        "read from what that part concluded in this run (its checks and targets, listed under Verdict in its section).",
    ]
    return "\n".join(lines) + "\n"


def parse_args(argv: Sequence[str] | None, names: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python run.py bench", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--only", default="", help=f"comma-separated subset of {','.join(names)} (all but soak, which runs only when named)"
    )
    parser.add_argument("--quick", action="store_true", help="smaller sizes and shorter runs (a few minutes in all)")
    parser.add_argument("--seconds", type=float, default=0.0, help="timed seconds per ingest/server/orders run (their default)")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/BENCHMARKS.md alone")
    parser.add_argument("--hard-timeout", type=float, default=0.0, help="budget for the whole run, s (1800; --quick 900)")
    args = parser.parse_args(list(argv) if argv is not None else None)
    args.only_list = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = set(args.only_list) - set(names)
    if unknown:
        parser.error(f"--only: unknown part(s) {', '.join(sorted(unknown))}; choose from {','.join(names)}")
    if args.seconds < 0 or args.seconds > 600:
        parser.error("--seconds 0..600")
    base = 900.0 if args.quick else 1800.0
    if "soak" in args.only_list:  # its own length on top: 30 min of load (5 with --quick) + start, drain, checks
        base += SOAK_BUDGET_QUICK if args.quick else SOAK_BUDGET
    args.hard_timeout = args.hard_timeout or base
    return args


def main(argv: Sequence[str] | None = None, *, selected: list[Part] | None = None, path: Path = BENCHMARKS_MD) -> int:
    names = [p.name for p in parts(argparse.Namespace(quick=False, seconds=0, no_write=False))]
    args = parse_args(argv, names)
    chosen = selected if selected is not None else chosen_parts(args)
    shown = list(sys.argv[2:] if argv is None else argv)
    began = time.monotonic()
    deadline = began + args.hard_timeout
    machine = Machine(before_uptime=uptime_line(), before_busy=background_line(background_busy()), facts=versions())
    print(f"machine: {machine.before_uptime}; {machine.before_busy} busy", flush=True)
    outcomes = [Outcome(p) for p in chosen]
    with tempfile.TemporaryDirectory(prefix="scrm_bench_run_") as run_dir:
        try:
            for i, outcome in enumerate(outcomes, 1):
                left = deadline - time.monotonic()
                if left < 5:
                    break
                print(f"\n[{i}/{len(outcomes)}] {outcome.part.name}: {' '.join(outcome.part.argv[1:])}", flush=True)
                t0 = time.monotonic()
                results = Path(run_dir) / f"{outcome.part.name}.json"
                outcome.code, outcome.note = run_part(outcome.part, left, results)
                outcome.seconds = time.monotonic() - t0
                outcome.report = read_report(results)  # this run's only: the directory is new
                print(f"[{i}/{len(outcomes)}] {outcome.part.name}: exit {outcome.code} after {outcome.seconds:.0f} s", flush=True)
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return 130
    machine.after_uptime = uptime_line()
    summary = render(outcomes, machine, shown, time.monotonic() - began)
    print()
    print(summary)
    if not args.no_write:
        print(f"written to {write_section('summary', summary, path, first=True)}")
    return 0 if all(o.passed for o in outcomes) else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
