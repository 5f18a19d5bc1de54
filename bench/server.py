"""A real ``python run.py serve`` under callback load: memory of every server process, idle and under load.

``python -m bench.server [--seconds 10] [--workers 1,2] [--concurrency 64]``

For each ``--workers`` value, ``python run.py serve --workers N`` is started as it would be in production
(PostgreSQL database ``scrm_bench_server``: created, migrated, dropped; Redis DB 14, flushed; sandbox WeCom
credentials; the settings of ``bench.ingest``'s full path). Once it answers ``/readyz`` and its processes have
gone quiet (start-up work done), their memory is read from ``/proc/<pid>/smaps_rollup`` — RSS, and PSS, which
splits pages shared copy-on-write with the supervisor between the processes, so PSS adds up to what the machine
really spends — and where a server's RSS goes (``/proc/<pid>/smaps``: Python's objects vs libraries' code).
**Target: idle RSS ≤ 120 MiB for every server process.** Then ``bench.ingest``'s load generator, in a process of
its own, sends signed and encrypted callbacks (every MsgId new) for ``--seconds`` while memory is sampled every
0.25 s; peak and end figures are reported with the throughput the real server reached. Rows stored = 200s received is checked as in
``bench.ingest``, and the server must stop gracefully on SIGTERM (exit code 0). Results go to
``docs/BENCHMARKS.md`` between ``<!-- bench:server -->`` markers.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing as mp
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.common import (
    PROJECT_ROOT,
    ScratchDatabases,
    add_run_options,
    background_busy,
    background_line,
    command_line,
    fmt_ms,
    fmt_rate,
    generated_line,
    guarded,
    machine_lines,
    pg_version,
    proc_cpu_seconds,
    publish,
)
from bench.ingest import (
    HOST,
    RunSpec,
    ask,
    flush_redis,
    free_port,
    full_path_check,
    loadgen_main,
    pool_size,
    reset_full_state,
    server_env,
    settled_counts,
    wrk_binary,
)
from bench.verdict import Report, at_most, check

DB_NAME = "scrm_bench_server"
MIB = 2**20
IDLE_RSS_TARGET_MIB = 120  # per server process, idle (issue 21: one shared tokenizer, nothing loaded that idles)


# ---- /proc ------------------------------------------------------------------------------------------------
def memory_kib(pid: int) -> tuple[int, int]:
    """(RSS, PSS) of one process in KiB; (0, 0) when it is gone."""
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return 0, 0
    rss = re.search(r"^Rss:\s+(\d+) kB", text, re.M)
    pss = re.search(r"^Pss:\s+(\d+) kB", text, re.M)
    return (int(rss.group(1)) if rss else 0), (int(pss.group(1)) if pss else 0)


def rss_breakdown(pid: int) -> dict[str, int]:
    """Where a process's RSS goes, KiB: Python's objects (anonymous memory: the heap and pymalloc's arenas) and the
    code of each shared library mapped (file-backed; shared with every process that maps the same file)."""
    parts: dict[str, int] = {}
    name = ""
    try:
        lines = Path(f"/proc/{pid}/smaps").read_text().splitlines()
    except OSError:
        return parts
    for line in lines:
        head = re.match(r"^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \S+\s*(.*)$", line)
        if head:
            path = head.group(1)
            name = "Python objects and other anonymous memory" if not path or path.startswith("[") else Path(path).name
        elif line.startswith("Rss:"):
            parts[name] = parts.get(name, 0) + int(line.split()[1])
    return parts


def children_of(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


@dataclass
class Memory:
    """Per-process (RSS, PSS) KiB at one moment; ``servers`` are the processes that answer requests."""

    supervisor: tuple[int, int] | None
    servers: list[tuple[int, int]]

    @property
    def rss(self) -> int:
        return sum(r for r, _ in self.all())

    @property
    def pss(self) -> int:
        return sum(p for _, p in self.all())

    def all(self) -> list[tuple[int, int]]:
        return ([self.supervisor] if self.supervisor else []) + self.servers


def read_memory(parent: int, servers: list[int]) -> Memory:
    supervisor = memory_kib(parent) if servers != [parent] else None
    return Memory(supervisor, [memory_kib(p) for p in servers])


@dataclass
class Sampler:
    parent: int
    servers: list[int]
    peak: Memory | None = None
    samples: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        def loop() -> None:
            while not self._stop.wait(0.25):
                now = read_memory(self.parent, self.servers)
                self.samples += 1
                if self.peak is None or now.rss > self.peak.rss:
                    self.peak = now

        self._thread = threading.Thread(target=loop, name="memory-sampler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2)


# ---- one server -------------------------------------------------------------------------------------------
@dataclass
class Phase:
    workers: int
    ready_s: float = 0.0
    idle: Memory | None = None
    breakdown: dict[str, int] = field(default_factory=dict)  # one idle server's RSS by mapping, KiB
    peak: Memory | None = None
    end: Memory | None = None
    load: dict[str, Any] = field(default_factory=dict)
    checks: list[str] = field(default_factory=list)
    ok: bool = True
    exit_code: int | None = None
    stop_s: float = 0.0


def http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:  # loopback: our own server
            return int(resp.status)
    except OSError:
        return 0


def wait_quiet(pids: list[int], *, within: float = 30.0) -> None:
    """Until the processes use < 5 % of a core for a second (start-up work such as loading jieba is over)."""
    deadline = time.monotonic() + within
    before = sum(proc_cpu_seconds(p) for p in pids)
    while time.monotonic() < deadline:
        time.sleep(1.0)
        now = sum(proc_cpu_seconds(p) for p in pids)
        if now - before < 0.05:
            return
        before = now


def run_phase(workers: int, database_url: str, args: argparse.Namespace, loadgen: Any, pool: str, logs: Path) -> Phase:
    phase = Phase(workers)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCRM_")}
    env.update(server_env(port, database_url), SCRM_CONFIG_FILE=os.devnull, PYTHONUNBUFFERED="1")
    log_path = logs / f"serve-{workers}.log"
    with log_path.open("wb") as out:
        t0 = time.monotonic()
        proc = subprocess.Popen([sys.executable, "run.py", "serve", "--workers", str(workers)], cwd=PROJECT_ROOT, env=env,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    try:
        deadline = t0 + 90
        servers: list[int] = []
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"run.py serve exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
            servers = children_of(proc.pid) if workers > 1 else [proc.pid]
            if len(servers) == workers and http_status(f"http://{HOST}:{port}/readyz") == 200:
                break
            time.sleep(0.2)
        else:
            raise TimeoutError(f"run.py serve --workers {workers} not ready within 90 s")
        phase.ready_s = time.monotonic() - t0
        wait_quiet([proc.pid, *servers])
        phase.idle = read_memory(proc.pid, servers)
        phase.breakdown = rss_breakdown(servers[0])
        sampler = Sampler(proc.pid, servers)
        sampler.start()
        try:
            spec = RunSpec(
                "full", workers, port, pool, True, args.seconds, args.warmup, args.concurrency, servers, args.client, args.wrk_threads
            )
            phase.load = ask(loadgen, ("run", spec), args.seconds + args.warmup + 90)
        finally:
            sampler.stop()
        phase.peak = sampler.peak
        phase.end = read_memory(proc.pid, servers)
        phase.checks, phase.ok = full_path_check(phase.load, asyncio.run(settled_counts(database_url)))
    finally:
        t_stop = time.monotonic()
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            phase.exit_code = proc.wait(30)
        except subprocess.TimeoutExpired:
            phase.exit_code = None
        phase.stop_s = time.monotonic() - t_stop
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)  # the session we started: anything left of it
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(5)
    if phase.exit_code != 0:
        phase.ok = False
        phase.checks.append(f"run.py serve --workers {workers} did not stop cleanly on SIGTERM (exit {phase.exit_code})")
    return phase


# ---- report -----------------------------------------------------------------------------------------------
def mib(kib: int) -> str:
    return f"{kib * 1024 / MIB:.0f}"


def per_process(mem: Memory | None) -> str:
    if mem is None:
        return "–"
    parts = [f"sup {mib(mem.supervisor[0])}"] if mem.supervisor else []
    parts += [mib(r) for r, _ in mem.servers]
    return " + ".join(parts)


def render(phases: list[Phase], argv: list[str], extra: dict[str, str], args: argparse.Namespace, wall: float) -> str:
    lines = [
        "## Server memory (a real `run.py serve`)",
        "",
        generated_line(argv),
        "",
        *machine_lines(extra),
        "",
        f"Load: `bench.ingest`'s generator ({args.client}) in a second process, {args.concurrency} connections, full callback path "
        f"(every MsgId new), {args.warmup:g} s warm-up + {args.seconds:g} s; memory from `/proc/<pid>/smaps_rollup`, "
        "sampled every 0.25 s. Totals include the supervisor when there is one (`sup`).",
        "",
        "| server procs | ready after | idle RSS MiB | idle PSS MiB | peak RSS MiB (load) | peak PSS MiB | RSS per process idle → peak MiB "
        "| req/s | p50 ms | p99 ms | non-200 | SIGTERM → exit |",
        "|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|",
    ]
    for p in phases:
        r = p.load
        lines.append(
            f"| {p.workers} | {p.ready_s:.1f} s | {mib(p.idle.rss) if p.idle else '–'} | {mib(p.idle.pss) if p.idle else '–'} "
            f"| {mib(p.peak.rss) if p.peak else '–'} | {mib(p.peak.pss) if p.peak else '–'} "
            f"| {per_process(p.idle)} → {per_process(p.peak)} | {fmt_rate(r.get('rps', 0.0))} | {fmt_ms(r.get('p50', float('nan')))} "
            f"| {fmt_ms(r.get('p99', float('nan')))} | {r.get('timed_non200', 0) + sum(r.get('errors', {}).values())} "
            f"| {p.stop_s:.1f} s (code {p.exit_code}) |"
        )
    lines += ["", "Checks:", ""]
    lines += [f"- {c}" for p in phases for c in p.checks]
    lines += ["", "Where an idle server process's RSS goes (`/proc/<pid>/smaps`, MiB; the first server of each run):", ""]
    lines += [f"- {p.workers} proc: {breakdown_line(p.breakdown)}" for p in phases if p.breakdown]
    lines += [
        "",
        "Notes:",
        "",
        "- RSS counts every page a process maps, shared ones included; PSS divides shared pages among the processes "
        "sharing them. With `--workers N` the supervisor imports the app's modules and freezes them out of the garbage "
        "collector (`gc.freeze`) before forking, so the servers share those pages (copy-on-write; CPython's reference "
        "counting un-shares some over time). A forked server's RSS leaves out library code it has not run since the "
        "fork, so it is a little below a lone server's.",
        "- The server processes are the real `create_app(settings)`: database pool, arq pool, HTTP clients. With Redis "
        "the customers' messages are read by `run.py worker` processes (which load jieba's dictionary and build the order "
        "parser and the tagger, sharing one tokenizer), so an idle server holds no jieba, openpyxl, numpy, alembic or "
        "Pillow: each loads on first use (a console page that tests tag rules, a catalog sheet, a referral poster). "
        "Nothing consumes the arq queue during the run.",
        f"- Total wall time {wall:.0f} s.",
    ]
    return "\n".join(lines) + "\n"


def breakdown_line(parts: dict[str, int], shown: int = 4) -> str:
    """``Python objects … 95 · libraries' code 27 (_rust.abi3.so 6.3, …)``, MiB."""
    anon = parts.get("Python objects and other anonymous memory", 0)
    libs = sorted(((k, v) for k, v in parts.items() if k != "Python objects and other anonymous memory"), key=lambda kv: -kv[1])
    top = ", ".join(f"{k} {v / 1024:.1f}" for k, v in libs[:shown])
    total = sum(parts.values())
    return (
        f"total {total / 1024:.0f} = Python objects and other anonymous memory {anon / 1024:.0f} "
        f"+ files mapped (libraries' code, shared with other processes) {sum(v for _, v in libs) / 1024:.0f} ({top}, …)"
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.server", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="timed load per run (10)")
    parser.add_argument("--warmup", type=float, default=1.0, help="untimed warm-up before each run (1)")
    parser.add_argument("--concurrency", type=int, default=64, help="client connections (64)")
    parser.add_argument("--workers", default="1,2", help="server process counts, comma-separated (1,2)")
    parser.add_argument("--pool-rate", type=int, default=6000, help="req/s the pre-built unique bodies can sustain (6000)")
    parser.add_argument("--client", choices=("auto", "wrk", "python"), default="auto", help="load generator (auto: wrk when on PATH)")
    parser.add_argument("--wrk-threads", type=int, default=1, help="wrk threads (1)")
    add_run_options(parser)
    args = parser.parse_args(argv)
    if args.client == "auto":
        args.client = "wrk" if wrk_binary() else "python"
    elif args.client == "wrk" and not wrk_binary():
        parser.error("--client wrk: wrk is not on PATH (Debian: apt-get install wrk)")
    try:
        args.workers_list = [int(w) for w in str(args.workers).split(",") if w.strip()]
    except ValueError:
        parser.error("--workers takes integers, e.g. 1,2")
    if not args.workers_list or any(not 1 <= w <= 16 for w in args.workers_list):
        parser.error("--workers: 1..16")
    if not 0 < args.seconds <= 600 or not 1 <= args.concurrency <= 4096:
        parser.error("--seconds 0..600, --concurrency 1..4096")
    if not args.hard_timeout:
        args.hard_timeout = 120 + len(args.workers_list) * (args.seconds + args.warmup + 150)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    shown = command_line("bench.server", argv)
    began = time.monotonic()
    scratch = ScratchDatabases()
    ctx = mp.get_context("spawn")
    loadgen_proc: list[Any] = []
    extra: dict[str, str] = {}
    phases: list[Phase] = []

    def run() -> None:
        import tempfile

        extra["machine busy before start"] = background_line(background_busy())
        print(f"creating and migrating PostgreSQL database {DB_NAME} …", flush=True)
        url = scratch.create(DB_NAME)
        extra["postgresql"] = asyncio.run(pg_version())
        asyncio.run(flush_redis())
        parent_conn, child_conn = ctx.Pipe()
        proc = ctx.Process(target=loadgen_main, args=(child_conn,), name="bench-loadgen", daemon=True)
        proc.start()
        loadgen_proc.append(proc)
        child_conn.close()
        size = pool_size(args)
        with tempfile.TemporaryDirectory(prefix="scrm_bench_server_") as tmp:
            for n, workers in enumerate(args.workers_list):
                name = f"server{workers}"
                ask(parent_conn, ("build", (name, size, 3 * 10**12 + n * 10**11)), 600)
                asyncio.run(reset_full_state(url))
                print(f"run.py serve --workers {workers}: start, idle, {args.seconds:g} s of callbacks …", flush=True)
                phase = run_phase(workers, url, args, parent_conn, name, Path(tmp))
                phases.append(phase)
                idle = f"{mib(phase.idle.rss)} MiB RSS / {mib(phase.idle.pss)} MiB PSS" if phase.idle else "–"
                peak = f"{mib(phase.peak.rss)} MiB RSS" if phase.peak else "–"
                print(f"  ready after {phase.ready_s:.1f} s; idle {idle}; peak {peak}; "
                      f"{fmt_rate(phase.load.get('rps', 0.0))} req/s; {'OK' if phase.ok else phase.checks}", flush=True)  # fmt: skip
        parent_conn.send(("quit", None))

    def stop_loadgen() -> None:
        for proc in loadgen_proc:
            proc.join(5)
            if proc.is_alive():
                proc.terminate()
                proc.join(3)

    def flush() -> None:
        asyncio.run(flush_redis())

    code, _ = guarded(run, hard_timeout=args.hard_timeout, cleanup=[stop_loadgen, scratch.drop_all, flush])
    if code is not None:
        return code
    text = render(phases, shown, extra, args, time.monotonic() - began)
    return publish("server", text, report_of(phases), write=not args.no_write and bool(phases), results=args.results)


def report_of(phases: list[Phase]) -> Report:
    """Per ``--workers`` value: every 200 stored and queued, and a clean stop on SIGTERM."""
    report = Report("server")
    for p in phases:
        report.add(check(f"--workers {p.workers}: every 200 stored and queued; exit 0 on SIGTERM", p.ok, "; ".join(p.checks)))
    for p in phases:
        largest = max((r for r, _ in p.idle.servers), default=0) / 1024 if p.idle else float("nan")
        report.add(at_most(f"--workers {p.workers}: idle RSS of each server process", round(largest, 1), IDLE_RSS_TARGET_MIB, " MiB"))
    report.headline = "; ".join(
        f"{p.workers} proc: idle {mib(p.idle.rss) if p.idle else '–'} MiB RSS ({mib(p.idle.pss) if p.idle else '–'} PSS), "
        f"peak {mib(p.peak.rss) if p.peak else '–'} MiB RSS, {fmt_rate(p.load.get('rps', 0.0))} req/s"
        for p in phases
    )
    report.figures = {
        str(p.workers): {
            "rps": p.load.get("rps", 0.0),
            "idle_rss_kib": p.idle.rss if p.idle else None,
            "idle_pss_kib": p.idle.pss if p.idle else None,
            "idle_server_rss_kib": [r for r, _ in p.idle.servers] if p.idle else None,
            "ok": p.ok,
        }
        for p in phases
    }
    return report


if __name__ == "__main__":
    raise SystemExit(main())
