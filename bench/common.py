"""Helpers shared by the benchmarks: machine facts, percentiles, CPU accounting, scratch PostgreSQL databases,
the run harness (hard timeout, error reporting, cleanup, exit codes) and writing one section of
``docs/BENCHMARKS.md``."""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import os
import platform
import re
import signal
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

from bench.verdict import Report, verdict_lines, write_report

T = TypeVar("T")

PROJECT_ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS_MD = PROJECT_ROOT / "docs" / "BENCHMARKS.md"
PG_ADMIN_DSN = os.environ.get("SCRM_BENCH_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres")
PG_HOST_DSN = "postgresql+asyncpg://postgres@127.0.0.1:5432"
CLK_TCK = os.sysconf("SC_CLK_TCK")


# ---- machine ----------------------------------------------------------------------------------------------
def cpu_model() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or "unknown"
    match = re.search(r"^model name\s*:\s*(.+)$", text, re.M)
    return match.group(1).strip() if match else "unknown"


def nproc() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def memory_total() -> str:
    try:
        match = re.search(r"^MemTotal:\s+(\d+) kB", Path("/proc/meminfo").read_text(), re.M)
    except OSError:
        return "unknown"
    return f"{int(match.group(1)) / 2**20:.1f} GiB" if match else "unknown"


def load_average() -> str:
    try:
        one, five, fifteen = os.getloadavg()
    except OSError:
        return "unknown"
    return f"{one:.2f} / {five:.2f} / {fifteen:.2f} (1 / 5 / 15 min)"


def machine_info() -> dict[str, str]:
    return {
        "nproc": str(nproc()),
        "cpu": cpu_model(),
        "memory": memory_total(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "os": f"{platform.system()} {platform.release()}",
    }


def machine_lines(extra: dict[str, str] | None = None) -> list[str]:
    info = machine_info() | (extra or {})
    return [f"- {k}: {v}" for k, v in info.items()]


# ---- statistics -------------------------------------------------------------------------------------------
def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of already sorted values (``q`` in 0..100); NaN when there are none."""
    if not sorted_values:
        return float("nan")
    rank = max(0, min(len(sorted_values) - 1, math.ceil(q / 100 * len(sorted_values)) - 1))
    return float(sorted_values[rank])


def fmt_ms(seconds: float) -> str:
    return "–" if seconds != seconds else f"{seconds * 1000:.1f}"  # NaN check


def fmt_rate(value: float) -> str:
    return f"{value:,.0f}"


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}×" if b else "–"


# ---- CPU accounting (Linux /proc) -------------------------------------------------------------------------
def proc_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of one process (0 when it is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime (fields 14 and 15 of the line)


def machine_cpu_ticks() -> tuple[int, int]:
    """(busy, total) jiffies over all CPUs since boot."""
    try:
        first = Path("/proc/stat").read_text().splitlines()[0].split()
    except OSError:
        return 0, 0
    values = [int(v) for v in first[1:9]]
    idle = values[3] + values[4]  # idle + iowait
    total = sum(values)
    return total - idle, total


def machine_steal_ticks() -> int:
    """Jiffies over all CPUs since boot that the hypervisor gave to other guests while this one wanted to run
    (``steal`` in /proc/stat): on a shared host, CPU this machine's processes waited for — counted in busy."""
    try:
        first = Path("/proc/stat").read_text().splitlines()[0].split()
    except OSError:
        return 0
    return int(first[8]) if len(first) > 8 else 0


def background_busy(seconds: float = 1.0) -> float:
    """Fraction of all cores busy over ``seconds`` before a benchmark starts (other work on the machine)."""
    import time

    b0, t0 = machine_cpu_ticks()
    time.sleep(seconds)
    b1, t1 = machine_cpu_ticks()
    return (b1 - b0) / (t1 - t0) if t1 > t0 else 0.0


def wait_for_quiet(threshold: float = 0.10, window: float = 0.5, max_wait: float = 20.0) -> tuple[float, float]:
    """Wait until the machine is quiet — at most ``threshold`` of all cores busy over ``window`` s — or ``max_wait``
    s have passed: what one run leaves behind (PostgreSQL writing back, a server process exiting, the kernel freeing
    sockets) must not land in the next run's window. Returns (seconds waited, the last busy fraction)."""
    import time

    t0 = time.monotonic()
    while True:
        busy = background_busy(window)
        if busy <= threshold or time.monotonic() - t0 >= max_wait:
            return time.monotonic() - t0, busy


def background_line(busy: float) -> str:
    note = " — other work was running; figures are perturbed" if busy > 0.15 else ""
    return f"{busy * 100:.0f} % of all cores{note}"


# ---- time limits ------------------------------------------------------------------------------------------
class HardTimeout(Exception):
    pass


def arm_hard_timeout(seconds: float) -> None:
    """Raise :class:`HardTimeout` in the main thread after ``seconds`` (SIGALRM); SIGTERM becomes SystemExit
    so ``finally`` blocks run and children are cleaned up."""

    def on_alarm(signum: int, frame: FrameType | None) -> None:
        raise HardTimeout(f"hard timeout of {seconds:.0f} s reached")

    def on_term(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGALRM, on_alarm)
    signal.signal(signal.SIGTERM, on_term)
    signal.setitimer(signal.ITIMER_REAL, seconds)


def disarm_hard_timeout() -> None:
    signal.setitimer(signal.ITIMER_REAL, 0)


# ---- the run harness --------------------------------------------------------------------------------------
FAILED = 1  # exit codes of every benchmark: 0 ran and every check passed, 1 a check failed or the run broke,
TIMED_OUT = 2  # 2 hard timeout, 130 interrupted
INTERRUPTED = 130


def guarded(body: Callable[[], T], *, hard_timeout: float, cleanup: Sequence[Callable[[], Any]] = ()) -> tuple[int | None, T | None]:
    """Run ``body()`` under a hard timeout; returns ``(None, result)``, or ``(exit code, None)`` after printing
    what went wrong. ``cleanup`` runs in every case (drop scratch databases, stop child processes); a failing
    cleanup step is reported and does not hide the others."""
    arm_hard_timeout(hard_timeout)
    try:
        return None, body()
    except HardTimeout as exc:
        print(f"aborted: {exc}", file=sys.stderr)
        return TIMED_OUT, None
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return INTERRUPTED, None
    except Exception:
        traceback.print_exc()
        print("benchmark failed", file=sys.stderr)
        return FAILED, None
    finally:
        disarm_hard_timeout()
        for step in cleanup:
            try:
                step()
            except Exception as exc:
                print(f"cleanup step {getattr(step, '__name__', step)!r} failed: {exc}", file=sys.stderr)


class ScratchDatabases:
    """The scratch PostgreSQL databases one benchmark run creates; :meth:`drop_all` is its cleanup step.

    Each gets this process's id after its name (``scrm_bench_rfm_12345``): several people run benchmarks against
    the one PostgreSQL of a shared machine, and ``pg_recreate`` drops a database of the same name with FORCE."""

    def __init__(self) -> None:
        self.names: dict[str, str] = {}  # the script's name → the database's

    def create(self, name: str) -> str:
        """Drop, create and migrate ``name`` (made unique to this run); returns its SQLAlchemy URL."""
        actual = self.names.setdefault(name, f"{name}_{os.getpid()}")
        return asyncio.run(pg_recreate(actual))

    def drop(self, name: str) -> None:
        asyncio.run(pg_drop(self.names.get(name, name)))
        self.names.pop(name, None)

    def drop_all(self) -> None:
        for name in list(self.names):
            try:
                self.drop(name)
            except Exception as exc:
                print(f"could not drop {self.names.get(name, name)}: {exc}", file=sys.stderr)


def add_run_options(parser: Any, *, hard_timeout: float = 0.0) -> None:
    """The options every benchmark takes: ``--hard-timeout`` (0 = the script's own estimate) and ``--no-write``."""
    shown = f"{hard_timeout:.0f}" if hard_timeout else "auto"
    parser.add_argument("--hard-timeout", type=float, default=hard_timeout, help=f"abort after this many s ({shown})")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/BENCHMARKS.md alone")
    parser.add_argument("--results", default="", help="also write the run's checks, targets and headline figures as JSON here")


def publish(name: str, table: str, report: Report, *, write: bool, results: str = "") -> int:
    """Print a benchmark's Markdown with its verdict (every check and target, ✔ or ✘, from ``report``), put it in
    its section of docs/BENCHMARKS.md (unless ``--no-write``), write ``report`` as JSON to ``results`` (``run.py
    bench`` reads it for its summary); returns the exit code the report decides (0 only when all held)."""
    text = table.rstrip("\n") + "\n\nVerdict:\n\n" + "\n".join(verdict_lines(report)) + "\n"
    print()
    print(text)
    if write:
        print(f"written to {write_section(name, text)}")
    write_report(report, results)
    return report.exit_code()


# ---- scratch PostgreSQL databases -------------------------------------------------------------------------
def pg_url(name: str) -> str:
    return f"{PG_HOST_DSN}/{name}"


async def pg_recreate(name: str) -> str:
    """Drop and create database ``name``, migrate it to head; returns its SQLAlchemy URL."""
    import asyncpg

    from scrm.core import migrate
    from scrm.core.db import Database

    conn = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    url = pg_url(name)
    db = Database(url)
    try:
        await migrate.upgrade(db)
    finally:
        await db.dispose()
    return url


async def pg_drop(name: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def read_section(name: str, path: Path = BENCHMARKS_MD) -> str:
    """The text of one section of docs/BENCHMARKS.md ('' when absent)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return ""
    match = re.search(re.escape(f"<!-- bench:{name} -->") + r"(.*?)" + re.escape(f"<!-- /bench:{name} -->"), text, re.S)
    return match.group(1) if match else ""


async def pg_version() -> str:
    import asyncpg

    conn = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        return str(await conn.fetchval("SHOW server_version"))
    finally:
        await conn.close()


# ---- docs/BENCHMARKS.md -----------------------------------------------------------------------------------
def write_section(name: str, markdown: str, path: Path = BENCHMARKS_MD, *, first: bool = False) -> Path:
    """Replace the text between ``<!-- bench:NAME -->`` and ``<!-- /bench:NAME -->`` (add the section when it is
    not there yet — at the end, or before every other section with ``first`` — and create the file when it does
    not exist); other sections are kept as they are."""
    start, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    block = f"{start}\n{markdown.strip()}\n{end}"
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        text = path.read_text(encoding="utf-8")
    else:
        text = (
            "# Benchmarks\n\nGenerated by the scripts in `bench/` (see `bench/README.md`). Each section is "
            "rewritten by its script; compare ratios measured in one run rather than absolute figures across "
            "runs.\n"
        )
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _m: block, text, count=1)
    elif first and "<!-- bench:" in text:
        at = text.index("<!-- bench:")
        text = text[:at] + block + "\n\n" + text[at:]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path


def generated_line(command: Sequence[str]) -> str:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"Measured {stamp} with `{' '.join(command)}`."


RUNNER_OPTIONS = ("--results", "--hard-timeout")  # what `run.py bench` adds for its own bookkeeping


def shown_args(argv: Sequence[str]) -> list[str]:
    """The options that shaped the measurement, as a reader would retype them: without the runner's bookkeeping
    (a temporary results path and the time budget), so the documented command stands alone."""
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg in RUNNER_OPTIONS:
            skip = True
        elif not arg.startswith(tuple(f"{o}=" for o in RUNNER_OPTIONS)):
            out.append(arg)
    return out


def command_line(module: str, argv: Sequence[str] | None) -> list[str]:
    args = list(sys.argv[1:] if argv is None else argv)
    return ["python", "-m", module, *shown_args(args)]
