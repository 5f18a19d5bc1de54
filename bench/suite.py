"""``python run.py bench``: every benchmark in one run, one after another, and a summary on top of docs/BENCHMARKS.md.

``python run.py bench [--only ingest,orders] [--quick] [--seconds S] [--no-write] [--hard-timeout S]``

Parts (each its own ``python -m bench.NAME`` process, so peak-memory figures and crashes stay its own; each
rewrites its section of docs/BENCHMARKS.md):

* ``ingest`` — callback ingest, full path vs bare aiohttp vs decrypt+parse, req/s p50 p99, 1 and 2 processes;
* ``server`` — a real ``run.py serve`` (1 and 2 processes): RSS/PSS idle and under ingest load from a second process;
* ``orders`` — order placement under contention with the oversell checks, PostgreSQL and SQLite;
* ``tagging`` — tag matching vs raw ``jieba.lcut``;
* ``chat`` — chat understanding against the labelled corpus (bench/chat_corpus): exact match and wrong-order rate;
* ``broadcast`` — planning a broadcast to 100 k recipients: time and peak memory, SQLite and PostgreSQL;
* ``rfm`` — RFM recompute over 1 M customers / 10 M orders vs bare SQL and pandas.

``--quick`` uses smaller sizes and shorter runs (a few minutes in all). The whole run is bounded by
``--hard-timeout``; each part gets what is left as its own ``--hard-timeout`` (their defaults assume a quiet
machine), and a part still running when the budget is spent gets SIGTERM (its own cleanup runs: scratch
databases dropped, children stopped), then SIGKILL. The summary section describes the machine (cores, CPU,
memory, versions, the load before and after — these machines are shared) and gives each part's result, wall
time and headline figures. Exit code 0 = every part ran and passed its checks, 1 = some part did not.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
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
    read_section,
    write_section,
)

KILL_GRACE = 30.0  # seconds between SIGTERM and SIGKILL for a part over the budget


@dataclass
class Part:
    name: str
    what: str
    argv: list[str]  # the full command (python -m bench.NAME …)
    headline: Callable[[str], str] = lambda section: ""
    exits: dict[int, str] = field(default_factory=dict)  # what an exit code means for this part, beyond the usual


@dataclass
class Outcome:
    part: Part
    code: int | None = None  # None: not run (budget spent before it)
    seconds: float = 0.0
    headline: str = ""
    note: str = ""


# ---- headline figures, read back from each part's section ---------------------------------------------------
def table_rows(section: str) -> list[list[str]]:
    rows = []
    for line in section.splitlines():
        if line.startswith("|") and not re.match(r"^\|[-:| ]+\|$", line):
            rows.append([c.strip() for c in line.strip().strip("|").split("|")])
    return rows


def _ingest(section: str) -> str:
    got = {(r[0].split(" ")[0], r[1]): r[2] for r in table_rows(section) if len(r) > 3 and r[1].isdecimal()}
    parts = []
    for label, key in (("full path", "full"), ("decrypt+parse", "decrypt"), ("bare", "bare")):
        values = [got.get((key, p)) for p in ("1", "2")]
        if any(values):
            parts.append(f"{label} {' / '.join(v or '–' for v in values)} req/s")
    return "; ".join(parts) + " (1 / 2 procs)" if parts else ""


def _server(section: str) -> str:
    out = []
    for r in table_rows(section):
        if len(r) > 8 and r[0].isdecimal():
            out.append(f"{r[0]} proc: idle {r[2]} MiB RSS ({r[3]} PSS), peak {r[4]} MiB RSS, {r[7]} req/s")
    return "; ".join(out)


def _orders(section: str) -> str:
    out = []
    for r in table_rows(section):
        if len(r) > 10 and r[0] in ("PostgreSQL", "SQLite"):
            out.append(f"{r[0]} {r[2]} orders/s (p99 {r[4]} ms), no oversell {r[-1]}")
    return "; ".join(out)


def _tagging(section: str) -> str:
    match = re.search(r"target `Matcher.match` ≥ 0.8 × `jieba.lcut`: (.+)", section)
    rates = [r[1] for r in table_rows(section) if len(r) > 2 and r[0].startswith(("`jieba.lcut` (default", "`Matcher.match`"))]
    return f"jieba.lcut / Matcher.match {' / '.join(rates)} msg/s; target {match.group(1)}" if match and rates else ""


def _chat(section: str) -> str:
    targets = re.search(r"wrong-order rate ≤ [\d.]+ %: (\S+ [\d.–]+ %).*exact match ≥ \d+ %: (\S+ [\d.–]+ %)", section)
    per_message = re.search(r"mean ([\d,]+ µs)", section)
    if not targets:
        return ""
    return f"heldout: wrong orders {targets.group(1)}, exact {targets.group(2)}" + (
        f"; {per_message.group(1)} per message" if per_message else ""
    )


def _broadcast(section: str) -> str:
    out = [f"{r[0]} {r[1]} recipients in {r[2]}" for r in table_rows(section) if len(r) > 3 and r[0] in ("sqlite", "postgresql")]
    rss = re.search(r"Peak RSS of the whole process[^:]*: ([\d,]+ MiB)", section)
    return "; ".join(out) + (f"; peak RSS {rss.group(1)}" if rss else "")


def _rfm(section: str) -> str:
    out = []
    for r in table_rows(section):
        if len(r) > 3 and ("ours, end to end" in r[0] or r[0].startswith("**bare**") or r[0].startswith("**pandas**")):
            out.append(f"{re.sub(r'[*]', '', r[0]).split(':')[0]} {r[2]} s")
    workload = re.search(r"Workload: ([\d,]+ customers, [\d,]+ orders)", section)
    return (f"{workload.group(1)}: " if workload else "") + "; ".join(out) + " (median)" if out else ""


def parts(args: argparse.Namespace) -> list[Part]:
    py = [sys.executable, "-m"]
    quick = args.quick
    seconds = ["--seconds", f"{args.seconds:g}"] if args.seconds else (["--seconds", "3"] if quick else [])
    write = ["--no-write"] if args.no_write else []
    return [
        Part("ingest", "callback ingest: full path vs bare aiohttp vs decrypt+parse, 1 and 2 processes",
             [*py, "bench.ingest", *seconds, *(["--pool-rate", "2500"] if quick else []), *write], _ingest),
        Part("server", "a real `run.py serve` (1 and 2 processes): RSS/PSS idle and under ingest load",
             [*py, "bench.server", *seconds, *write], _server),
        Part("orders", "order placement under contention + oversell checks, PostgreSQL and SQLite",
             [*py, "bench.orders", *seconds, *write], _orders),
        Part("tagging", "tag matching vs raw jieba.lcut",
             [*py, "bench.tagging", *(["--messages", "5000", "--repeat", "3"] if quick else []), *write], _tagging),
        Part("chat", "chat understanding vs the labelled corpus: exact match, wrong-order rate (heldout targets)",
             [*py, "bench.chat", *write], _chat,
             {2: "✘ not run: bots.dialogue.understanding 尚未实现 (or its hard timeout)"}),
        Part("broadcast", "broadcast planning: time and peak memory, SQLite and PostgreSQL",
             [*py, "bench.broadcast", "--recipients", "20000" if quick else "100000", "--backends", "sqlite,postgresql", *write],
             _broadcast),
        Part("rfm", "RFM recompute vs bare SQL and pandas",
             [*py, "bench.rfm", *(["--customers", "100000", "--orders", "1000000", "--runs", "3"] if quick else []), *write], _rfm),
    ]  # fmt: skip


# ---- running ----------------------------------------------------------------------------------------------
def run_part(part: Part, budget: float) -> tuple[int, str]:
    """Run one part in a session of its own, output passed through; (exit code, note). The part's own hard
    timeout is what is left of the run's budget: its default assumes a quiet machine, and these are shared."""
    argv = [*part.argv, "--hard-timeout", f"{max(1.0, budget - KILL_GRACE):.0f}"]
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
        if o.code is None:
            result = "not run (time budget spent)"
        else:
            meanings = {0: "✔ checks passed", 1: "✘ a check failed or it broke", 2: "✘ timed out", **o.part.exits}
            result = meanings.get(o.code, f"✘ exit {o.code}")
        if o.note:
            result += f" — {o.note}"
        lines.append(f"| {o.part.name} | {o.part.what} | {result} | {o.seconds:.0f} s | {o.headline or '–'} |")
    return "\n".join(lines) + "\n"


def parse_args(argv: Sequence[str] | None, names: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python run.py bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default="", help=f"comma-separated subset of {','.join(names)} (all)")
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
    args.hard_timeout = args.hard_timeout or (900.0 if args.quick else 1800.0)
    return args


def main(argv: Sequence[str] | None = None, *, selected: list[Part] | None = None, path: Path = BENCHMARKS_MD) -> int:
    names = [p.name for p in parts(argparse.Namespace(quick=False, seconds=0, no_write=False))]
    args = parse_args(argv, names)
    chosen = selected if selected is not None else [p for p in parts(args) if not args.only_list or p.name in args.only_list]
    shown = list(sys.argv[2:] if argv is None else argv)
    began = time.monotonic()
    deadline = began + args.hard_timeout
    machine = Machine(before_uptime=uptime_line(), before_busy=background_line(background_busy()), facts=versions())
    print(f"machine: {machine.before_uptime}; {machine.before_busy} busy", flush=True)
    outcomes = [Outcome(p) for p in chosen]
    try:
        for i, outcome in enumerate(outcomes, 1):
            left = deadline - time.monotonic()
            if left < 5:
                break
            print(f"\n[{i}/{len(outcomes)}] {outcome.part.name}: {' '.join(outcome.part.argv[1:])}", flush=True)
            t0 = time.monotonic()
            outcome.code, outcome.note = run_part(outcome.part, left)
            outcome.seconds = time.monotonic() - t0
            if outcome.code in (0, 1) and not args.no_write:  # it ran to the end and rewrote its section
                with contextlib.suppress(Exception):  # a headline is a courtesy; the section has the figures
                    outcome.headline = outcome.part.headline(read_section(outcome.part.name, path))
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
    return 0 if all(o.code == 0 for o in outcomes) else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
