"""A soak run: the production shape under mixed load for a long time — does memory stay flat and do the queues keep up?

``python -m bench.soak [--minutes 30] [--interval 10] [--no-write] [--results FILE]``

``python run.py serve --workers 2`` and two ``python run.py worker`` processes on one PostgreSQL database
(``scrm_bench_soak``: created, migrated, dropped) and one Redis DB (14, or ``SCRM_BENCH_REDIS``; flushed), WeCom
played by the sandbox emulator, which this process serves on a port of its own (``SCRM_WECOM_API_BASE`` points
there, as in ``tests/scaleout``). For ``--minutes`` a fixed, moderate mix — not saturation — runs against them:

* **callbacks** — signed, encrypted app text messages (every MsgId new) at ``--callback-rate`` per second, each on a
  connection of its own, so the kernel spreads them over both server processes;
* **chat** — every ``--chat-every`` seconds a new 微信客服 customer writes "要3箱矿泉水" (one of a few such
  orders): the emulator announces it with a ``kf_msg_or_event`` callback, a worker syncs the message, the real
  dialogue quotes a draft, the customer answers "确认" and the order is placed;
* **orders** — ``--order-rate`` API orders per second (``POST /api/v1/orders``, confirmed) for customers the chat
  has created;
* **broadcasts** — every ``--broadcast-every`` seconds a segment broadcast is created and started over the REST API
  (``last_active < 1d``: the chat's customers, reached through 微信客服).

Every ``--interval`` seconds it samples the RSS and PSS (``/proc/<pid>/smaps_rollup``) of the supervisor, both
server processes and both workers, the p99 of the callbacks answered in the interval (app messages and the
emulator's kf notices), the arq queue depth and the outbox backlog (rows neither dispatched nor failed). Then the
load stops, the queues must drain, and the bars of :mod:`bench.soak_series` are judged: memory flat, queues not
growing, callback p99; the checks: every accepted callback stored, every chat answered and its order placed,
every API order placed, every broadcast done, nothing oversold, stock counters = ledger, every process still the
one started and a clean exit on SIGTERM. The series are drawn in ``docs/soak.svg``; the section goes between
``<!-- bench:soak -->`` markers of ``docs/BENCHMARKS.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
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
    generated_line,
    guarded,
    machine_lines,
    percentile,
    pg_version,
    publish,
)
from bench.ingest import ARQ_QUEUE, HOST, REDIS_URL, flush_redis, free_port
from bench.server import children_of, memory_kib, wait_quiet
from bench.soak_load import Emulator, Tally, api_order, app_callback, broadcast, chat, every
from bench.soak_series import (
    BACKLOG_BOUND,
    P99_BOUND,
    RSS_GROWTH,
    RSS_SLACK_MIB,
    RSS_SLOPE_MIB_PER_MIN,
    Sample,
    interval_p99,
    memory_trend,
    queue_trend,
    soak_panels,
    svg_chart,
    verdicts,
)
from bench.verdict import Report, check

DB_NAME = "scrm_bench_soak"
SVG_PATH = PROJECT_ROOT / "docs" / "soak.svg"
ADMIN_TOKEN = "bench-soak-admin-token"
STOCK = 1_000_000  # per product: the soak measures steady state, not running out
CATALOG = (
    "sku,name,aliases,unit,price_fen,stock\n"
    f"WATER-550,矿泉水 550ml×24,矿泉水|农夫山泉,箱,3600,{STOCK}\n"
    f"COLA-330,可乐 330ml×24,可乐|可口可乐,箱,5280,{STOCK}\n"
    f"TISSUE-3,抽纸 3层×10包,纸巾|抽纸,提,2590,{STOCK}\n"
    f"RICE-5KG,东北大米 5kg,大米|东北大米,袋,4990,{STOCK}\n"
)
DRAIN_WAIT = 120.0  # s after the load for the queues to empty and the last conversations to finish


# ---- the processes ----------------------------------------------------------------------------------------
def product_env(database_url: str, serve_port: int, emulator_port: int) -> dict[str, str]:
    from bench.ingest import server_env
    from config.settings import SANDBOX_KF_OPEN_KFID

    env = {k: v for k, v in os.environ.items() if not k.startswith("SCRM_")}
    env.update(
        server_env(serve_port, database_url),
        SCRM_WECOM_API_BASE=f"http://{HOST}:{emulator_port}/sandbox/wecom/cgi-bin/",
        SCRM_KF_OPEN_KFID=SANDBOX_KF_OPEN_KFID,
        SCRM_ADMIN_TOKEN=ADMIN_TOKEN,
        SCRM_CALLBACK_MAX_SKEW="300",
        SCRM_CONFIG_FILE=os.devnull,
        PYTHONUNBUFFERED="1",
    )
    return env


@dataclass
class Processes:
    """``run.py serve --workers 2`` and the two workers: each in a session of its own, logs in files."""

    logs: Path
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    codes: dict[str, int | None] = field(default_factory=dict)

    def start(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        with (self.logs / f"{name}.log").open("wb") as out:
            self.procs[name] = subprocess.Popen(
                [sys.executable, "run.py", *argv], cwd=PROJECT_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )

    def log(self, name: str) -> str:
        try:
            return (self.logs / f"{name}.log").read_text(errors="replace")
        except OSError:
            return ""

    def dead(self) -> list[str]:
        return [name for name, p in self.procs.items() if p.poll() is not None]

    def stop_all(self) -> None:
        """SIGTERM to each (the supervisor forwards it to its servers), then SIGKILL to what is left of its session."""
        for p in self.procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 30
        for name, p in self.procs.items():
            try:
                self.codes[name] = p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.codes[name] = None
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(p.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(5)


def run_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "run.py", *args], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=120)


# ---- sampling ---------------------------------------------------------------------------------------------
@dataclass
class Watched:
    roles: dict[str, int]  # role → pid, as found once everything was up

    def memory(self) -> tuple[dict[str, int], dict[str, int]]:
        both = {role: memory_kib(pid) for role, pid in self.roles.items()}
        return {r: m[0] for r, m in both.items()}, {r: m[1] for r, m in both.items()}


async def queue_depths(redis: Any, pg: Any) -> tuple[int, int]:
    queued = int(await redis.zcard(ARQ_QUEUE))
    backlog = int(await pg.fetchval("SELECT count(*) FROM outbox WHERE done_at IS NULL AND failed_at IS NULL"))
    return queued, backlog


async def sampler(watched: Watched, tally: Tally, redis: Any, pg: Any, interval: float, until: float, samples: list[Sample]) -> None:
    last = 0.0
    k = 1
    while k * interval <= until + 1e-6:
        await asyncio.sleep(max(0.0, k * interval - tally.now()))
        now = tally.now()
        rss, pss = watched.memory()
        count, p99 = interval_p99(tally.callbacks, last, now)
        queued, backlog = await queue_depths(redis, pg)
        sample = Sample(now, rss, pss, count, p99, queued, backlog, tally.counts())
        samples.append(sample)
        print(
            f"  {now / 60:5.1f} min: RSS {sample.rss_total_mib:6.0f} MiB (PSS {sample.pss_total_mib:.0f}); {count} callbacks, "
            f"p99 {fmt_ms(p99)} ms; queue {queued}, outbox backlog {backlog}; {sample.counts}",
            flush=True,
        )
        last = now
        k += 1


# ---- the run ----------------------------------------------------------------------------------------------
@dataclass
class Outcome:
    samples: list[Sample] = field(default_factory=list)
    tally: Tally = field(default_factory=Tally)
    roles: dict[str, int] = field(default_factory=dict)
    ready_s: float = 0.0
    drained_s: float = float("nan")
    facts: dict[str, Any] = field(default_factory=dict)
    dead: list[str] = field(default_factory=list)  # processes that had died or been replaced by the end
    codes: dict[str, int | None] = field(default_factory=dict)
    reconcile: str = ""
    unfinished: Counter[str] = field(default_factory=Counter)  # load tasks cancelled when the drain time ran out
    wall: float = 0.0


async def soak(args: argparse.Namespace, env: dict[str, str], procs: Processes, serve_port: int, emulator_port: int, out: Outcome) -> None:
    import aiohttp
    import asyncpg
    import redis.asyncio as aioredis

    base = f"http://{HOST}:{serve_port}"
    tally = out.tally
    emu = Emulator(f"{base}/callback/wecom", tally)
    await emu.start(emulator_port)
    redis = aioredis.Redis.from_url(REDIS_URL)
    pg = await asyncpg.connect(env["SCRM_DATABASE_URL"].replace("postgresql+asyncpg://", "postgresql://"))
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    api = aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True), timeout=aiohttp.ClientTimeout(total=30), headers=headers)
    try:
        t_start = time.monotonic()
        procs.start("serve", ["serve", "--workers", "2"], env)
        procs.start("worker-a", ["worker"], env)
        procs.start("worker-b", ["worker"], env)
        deadline = t_start + 120
        servers: list[int] = []
        while True:
            if procs.dead():
                name = procs.dead()[0]
                raise RuntimeError(f"{name} exited with {procs.procs[name].returncode}:\n{procs.log(name)[-3000:]}")
            servers = sorted(children_of(procs.procs["serve"].pid))
            if len(servers) == 2:
                with contextlib.suppress(aiohttp.ClientError, OSError, TimeoutError):
                    async with api.get(f"{base}/readyz") as resp:
                        if resp.status == 200:
                            break
            if time.monotonic() > deadline:
                raise TimeoutError("run.py serve --workers 2 not ready within 120 s")
            await asyncio.sleep(0.2)
        workers = [procs.procs["worker-a"].pid, procs.procs["worker-b"].pid]
        await asyncio.to_thread(wait_quiet, [procs.procs["serve"].pid, *servers, *workers], within=60)
        out.ready_s = time.monotonic() - t_start
        out.roles = {"supervisor": procs.procs["serve"].pid, "server-1": servers[0], "server-2": servers[1]}
        out.roles |= {"worker-a": workers[0], "worker-b": workers[1]}
        print(f"ready after {out.ready_s:.1f} s: {out.roles}; load for {args.minutes:g} min …", flush=True)

        seconds = args.minutes * 60
        nonce = os.getpid()
        tally.t0 = time.monotonic()
        starters = [
            every("callback", 1 / args.callback_rate, seconds, tally, lambda n: app_callback(emu, n)),
            every("chat", args.chat_every, seconds, tally, lambda n: chat(emu, n, nonce)),
            every("order", 1 / args.order_rate, seconds, tally, lambda n: api_order(api, base, tally, n), first=1.0),
            every(
                "broadcast", args.broadcast_every, seconds, tally, lambda n: broadcast(api, base, tally, n), first=min(30.0, seconds / 4)
            ),
        ]
        sampling = asyncio.create_task(sampler(Watched(out.roles), tally, redis, pg, args.interval, seconds, out.samples))
        started = await asyncio.gather(*starters)
        await sampling
        print("load stopped; waiting for the last conversations and for the queues to drain …", flush=True)
        t_end = time.monotonic()
        pending = [t for tasks in started for t in tasks]
        done, late = await asyncio.wait(pending, timeout=DRAIN_WAIT) if pending else (set(), set())
        for task in late:
            task.cancel()
            out.unfinished[task.get_name()] += 1
        for task in done:
            if task.exception() is not None:
                raise task.exception()  # type: ignore[misc]
        while time.monotonic() - t_end < DRAIN_WAIT:
            queued, backlog = await queue_depths(redis, pg)
            running = await pg.fetchval("SELECT count(*) FROM broadcasts WHERE status IN ('running', 'scheduled')")
            if queued == 0 and backlog == 0 and running == 0:
                out.drained_s = time.monotonic() - t_end
                break
            await asyncio.sleep(0.5)
        out.facts = await db_facts(pg, tally)
        out.facts["queued"], out.facts["backlog"] = await queue_depths(redis, pg)
        alive_servers = sorted(children_of(procs.procs["serve"].pid))
        out.dead = procs.dead() + ([f"server processes {servers} → {alive_servers}"] if alive_servers != servers else [])
    finally:
        await api.close()
        await pg.close()
        await redis.aclose()
        await emu.close()


async def db_facts(pg: Any, tally: Tally) -> dict[str, Any]:
    q = pg.fetchval
    facts: dict[str, Any] = {
        "app_events": await q("SELECT count(*) FROM inbound_events WHERE channel = 'wecom' AND kind = 'message.text'"),
        "kf_notices": await q("SELECT count(*) FROM inbound_events WHERE kind = 'kf_msg_or_event'"),
        "kf_texts": await q("SELECT count(*) FROM inbound_events WHERE kind = 'kf.customer.text'"),
        "unprocessed": await q("SELECT count(*) FROM inbound_events WHERE status = 'pending'"),
        "outbox_failed": await q("SELECT count(*) FROM outbox WHERE failed_at IS NOT NULL"),
        "oversold": await q("SELECT count(*) FROM stock_levels WHERE allocated > on_hand"),
    }
    for source in ("chat", "api"):
        rows = await pg.fetch(
            "SELECT l.sku, sum(l.qty) AS qty, count(DISTINCT o.id) AS orders FROM orders o JOIN order_lines l ON l.order_id = o.id "
            "WHERE o.source = $1 AND o.status = 'confirmed' GROUP BY l.sku",
            source,
        )
        facts[f"{source}_qty"] = {r["sku"]: int(r["qty"]) for r in rows}
        facts[f"{source}_orders"] = await q("SELECT count(*) FROM orders WHERE source = $1 AND status = 'confirmed'", source)
    if tally.broadcasts:
        rows = await pg.fetch("SELECT id, status FROM broadcasts WHERE id = ANY($1::bigint[])", tally.broadcasts)
        facts["broadcasts"] = dict(Counter(r["status"] for r in rows))
        facts["broadcast_sent"] = await q(
            "SELECT count(*) FROM broadcast_recipients WHERE broadcast_id = ANY($1::bigint[]) AND status = 'sent'", tally.broadcasts
        )
    return facts


# ---- verdict and report -----------------------------------------------------------------------------------
def checks_of(out: Outcome) -> list[Any]:
    t, f = out.tally, out.facts
    app_sent = sum(v for k, v in t.callback_status.items() if k.startswith("app "))
    bad_callbacks = {k: v for k, v in t.callback_status.items() if not k.endswith(" 200")}
    bcast = f.get("broadcasts", {})
    return [
        check(
            "every callback answered 200 and stored once",
            not bad_callbacks and f.get("app_events") == t.app_ok == app_sent and f.get("kf_notices") == t.kf_notices_ok == t.kf_messages,
            f"app messages: {t.app_ok:,} × 200 of {app_sent:,} sent, {f.get('app_events', 0):,} stored; kf notices: "
            f"{t.kf_notices_ok:,} × 200 of {t.kf_messages:,}, {f.get('kf_notices', 0):,} stored"
            + (f"; other answers {dict(bad_callbacks)}" if bad_callbacks else ""),
        ),
        check(
            "every customer message synced once and every chat order placed",
            t.chats_started > 0
            and t.chats_done == t.chats_started
            and f.get("kf_texts") == t.kf_messages
            and f.get("chat_orders") == t.chats_done
            and f.get("chat_qty") == dict(t.chat_qty),
            f"{t.chats_done:,} of {t.chats_started:,} conversations quoted and confirmed"
            + (f" (failed: {dict(t.chat_failures)})" if t.chat_failures else "")
            + f"; {f.get('kf_texts', 0):,} customer messages stored of {t.kf_messages:,} written; {f.get('chat_orders', 0):,} "
            f"confirmed chat orders, units {f.get('chat_qty', {})} (asked {dict(t.chat_qty)})",
        ),
        check(
            "every API order placed",
            t.orders_tried > 0 and t.orders_ok == t.orders_tried == f.get("api_orders") and f.get("api_qty") == dict(t.order_qty),
            f"{t.orders_ok:,} of {t.orders_tried:,} × 201 confirmed, {f.get('api_orders', 0):,} confirmed API orders in the database"
            + (f"; answers {dict(t.order_status)}" if set(t.order_status) - {"201 confirmed", "skipped: no customer yet"} else ""),
        ),
        check(
            "every broadcast created, started and done",
            bool(t.broadcasts) and bcast == {"done": len(t.broadcasts)} and set(t.broadcast_status) == {"start 200"},
            f"{len(t.broadcasts)} started ({dict(t.broadcast_status)}); statuses {bcast}; {f.get('broadcast_sent', 0):,} recipients sent",
        ),
        check(
            "queues drained after the load, nothing failed, nothing left pending",
            out.drained_s == out.drained_s and f.get("outbox_failed") == 0 and f.get("unprocessed") == 0 and not out.unfinished,
            (f"drained in {out.drained_s:.1f} s" if out.drained_s == out.drained_s else f"not drained within {DRAIN_WAIT:.0f} s")
            + f" (queue {f.get('queued')}, backlog {f.get('backlog')}); {f.get('outbox_failed', '–')} failed outbox rows, "
            f"{f.get('unprocessed', '–')} inbound events pending"
            + (f"; still running when the drain time ran out: {dict(out.unfinished)}" if out.unfinished else ""),
        ),
        check(
            "no oversell; stock counters = ledger",
            f.get("oversold") == 0 and out.reconcile == "ok",
            f"{f.get('oversold')} oversold rows; reconcile: {out.reconcile}",
        ),
        check(
            "every process up from start to end; exit 0 on SIGTERM",
            not out.dead and bool(out.codes) and all(c == 0 for c in out.codes.values()),
            f"exit codes {out.codes}" + (f"; died or replaced: {out.dead}" if out.dead else ""),
        ),
    ]


def report_of(out: Outcome, args: argparse.Namespace) -> Report:
    report = Report("soak")
    report.add(*checks_of(out))
    after_warmup = [lat for at, lat in out.tally.callbacks if at >= args.warmup]
    report.add(*verdicts(out.samples, args.warmup, after_warmup))
    mem = memory_trend(out.samples, args.warmup) if out.samples else None
    p99 = percentile(sorted(after_warmup), 99)
    report.headline = (
        f"{args.minutes:g} min: RSS {mem.warm_mib:.0f} → {mem.end_mib:.0f} MiB ({mem.slope_mib_per_min:+.2f} MiB/min), "
        f"callback p99 {fmt_ms(p99)} ms, {out.tally.chats_done:,} chat + {out.tally.orders_ok:,} API orders"
        if mem
        else "no samples"
    )
    report.figures = {
        "minutes": args.minutes,
        "rss_warm_mib": mem.warm_mib if mem else None,
        "rss_end_mib": mem.end_mib if mem else None,
        "rss_slope_mib_per_min": mem.slope_mib_per_min if mem else None,
        "p99_ms": p99 * 1000,
        "samples": [
            {"t": s.t, "rss_kib": s.rss_kib, "pss_kib": s.pss_kib, "p99": s.p99, "queued": s.queued, "backlog": s.backlog}
            for s in out.samples
        ],
    }
    return report


def render(out: Outcome, args: argparse.Namespace, argv: list[str], extra: dict[str, str], svg: str) -> str:
    t = out.tally
    samples = out.samples
    mem = memory_trend(samples, args.warmup) if samples else None
    after_warmup = sorted(lat for at, lat in t.callbacks if at >= args.warmup)
    orders = sorted(s for _, s in t.order_s)
    replies = sorted(t.chat_reply_s)
    lines = [
        "## Soak (`serve --workers 2` + 2 workers under mixed load)",
        "",
        generated_line(argv),
        "",
        *machine_lines(extra),
        "",
        f"Load for {args.minutes:g} min at a fixed, moderate rate (not saturation): {args.callback_rate:g} app-message callbacks/s, "
        f'a new 微信客服 customer every {args.chat_every:g} s ordering in chat ("要3箱矿泉水" → quote → "确认", through the '
        f"emulator's kf callbacks, a worker's sync and the real dialogue), {args.order_rate:g} API orders/s, a broadcast every "
        f"{args.broadcast_every:g} s. Sampled every {args.interval:g} s; the first {args.warmup:g} s are warm-up (shaded). "
        f"Processes were ready {out.ready_s:.1f} s after start.",
        "",
        f"![RSS per process, callback p99 and queue depths over the run]({svg})",
        "",
        "| | value |",
        "|---|---|",
    ]
    if mem:
        lines += [
            f"| total RSS after warm-up → end (5 processes) | {mem.warm_mib:.0f} → {mem.end_mib:.0f} MiB (limit {mem.limit_mib:.0f}) |",
            f"| total PSS at the end | {samples[-1].pss_total_mib:.0f} MiB |",
            f"| RSS slope over the second half | {mem.slope_mib_per_min:+.2f} MiB/min (≤ {RSS_SLOPE_MIB_PER_MIN:g}) |",
        ]
        warm = next((s for s in samples if s.t >= args.warmup), samples[0])
        per = ", ".join(f"{role} {warm.rss_kib.get(role, 0) / 1024:.0f} → {kib / 1024:.0f}" for role, kib in samples[-1].rss_kib.items())
        lines.append(f"| RSS per process, after warm-up → last sample | {per} MiB |")
        for name, label in (("queued", "arq queue depth"), ("backlog", "outbox backlog")):
            q = queue_trend(samples, name)
            lines.append(f"| {label}: peak / tail mean / rise of trend, 2nd half | {q.peak} / {q.tail_mean:.1f} / {q.half_rise:+.1f} |")
    worst = max((s.p99 for s in samples if s.t >= args.warmup and s.p99 == s.p99), default=float("nan"))
    lines += [
        f"| callbacks answered (app messages + kf notices) | {len(t.callbacks):,}; p50 {fmt_ms(percentile(after_warmup, 50))} ms, "
        f"p99 {fmt_ms(percentile(after_warmup, 99))} ms after warm-up; worst interval p99 {fmt_ms(worst)} ms |",
        f"| chat conversations | {t.chats_done:,} of {t.chats_started:,}; reply p50 {percentile(replies, 50):.2f} s, "
        f"p99 {percentile(replies, 99):.2f} s |",
        f"| API orders | {t.orders_ok:,} of {t.orders_tried:,}; p50 {fmt_ms(percentile(orders, 50))} ms, "
        f"p99 {fmt_ms(percentile(orders, 99))} ms |",
        f"| broadcasts | {len(t.broadcasts)} ({out.facts.get('broadcast_sent', 0):,} messages sent through 微信客服) |",
        f"| queues drained after the load | {f'in {out.drained_s:.1f} s' if out.drained_s == out.drained_s else 'no'} |",
        "",
        "Notes:",
        "",
        f"- The bars: memory flat = total RSS at the end ≤ after warm-up × {RSS_GROWTH:g} + {RSS_SLACK_MIB:g} MiB and its "
        f"least-squares slope over the second half ≤ {RSS_SLOPE_MIB_PER_MIN:g} MiB/min; queues not growing = mean depth over the "
        f"last 5 minutes (the last third of a shorter run) ≤ {BACKLOG_BOUND:g} and the trend's rise over the second half ≤ "
        f"{BACKLOG_BOUND:g}, for the arq queue and the outbox backlog each; callback p99 after warm-up ≤ {P99_BOUND * 1000:g} ms.",
        "- RSS counts shared pages in every process that maps them (the servers share the supervisor's copy-on-write pages); "
        "PSS splits them, so the PSS total is what the machine spends.",
        "- The load generator and the emulator (the WeCom API the product calls) run in the bench's own process on the same "
        "cores; a 30-minute soak is meant for a quiet machine (`python -m bench.soak`, or `python run.py bench --only soak`).",
        f"- Total wall time {out.wall:.0f} s.",
    ]
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0, help="how long the load runs (30)")
    parser.add_argument("--interval", type=float, default=10.0, help="seconds between samples (10)")
    parser.add_argument("--warmup", type=float, default=0.0, help="seconds of warm-up the bars leave out (auto: a sixth of the run, ≤ 300)")
    parser.add_argument("--callback-rate", type=float, default=5.0, help="app-message callbacks per second (5)")
    parser.add_argument("--chat-every", type=float, default=2.0, help="seconds between new chat customers (2)")
    parser.add_argument("--order-rate", type=float, default=1.0, help="API orders per second (1)")
    parser.add_argument("--broadcast-every", type=float, default=300.0, help="seconds between broadcasts (300; the first after 30 s)")
    parser.add_argument("--svg", default=str(SVG_PATH), help=f"where the chart goes ({SVG_PATH.relative_to(PROJECT_ROOT)})")
    add_run_options(parser)
    args = parser.parse_args(argv)
    if not 0.5 <= args.minutes <= 240 or not 1 <= args.interval <= 300:
        parser.error("--minutes 0.5..240, --interval 1..300")
    if args.minutes * 60 < 6 * args.interval:
        parser.error("--minutes must give at least 6 samples (--interval)")
    if min(args.callback_rate, args.order_rate, args.chat_every, args.broadcast_every) <= 0:
        parser.error("rates and periods must be positive")
    args.warmup = args.warmup or min(300.0, args.minutes * 60 / 6)
    if not args.hard_timeout:
        args.hard_timeout = args.minutes * 60 + 600
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    shown = command_line("bench.soak", argv)
    began = time.monotonic()
    scratch = ScratchDatabases()
    out = Outcome()
    extra: dict[str, str] = {}
    holder: list[Processes] = []

    def run() -> None:
        extra["machine busy before start"] = background_line(background_busy())
        print(f"creating and migrating PostgreSQL database {DB_NAME} …", flush=True)
        url = scratch.create(DB_NAME)
        extra["postgresql"] = asyncio.run(pg_version())
        asyncio.run(flush_redis())
        serve_port, emulator_port = free_port(), free_port()
        env = product_env(url, serve_port, emulator_port)
        with tempfile.TemporaryDirectory(prefix="scrm_bench_soak_") as tmp:
            catalog = Path(tmp) / "catalog.csv"
            catalog.write_text(CATALOG, encoding="utf-8")
            imported = run_cli(env, "catalog", "import", str(catalog))
            if imported.returncode != 0:
                raise RuntimeError(f"catalog import failed: {imported.stdout}{imported.stderr}")
            procs = Processes(Path(tmp))
            holder.append(procs)
            try:
                asyncio.run(soak(args, env, procs, serve_port, emulator_port, out))
            finally:
                procs.stop_all()
                out.codes = dict(procs.codes)
                for name, code in procs.codes.items():
                    if code != 0:
                        print(f"{name} exit {code}:\n{procs.log(name)[-2000:]}", file=sys.stderr)
                holder.clear()
            reconciled = run_cli(env, "stock", "reconcile")
            out.reconcile = "ok" if reconciled.returncode == 0 else (reconciled.stdout + reconciled.stderr).strip()[-300:]

    def stop_processes() -> None:
        for procs in holder:
            procs.stop_all()

    def flush() -> None:
        asyncio.run(flush_redis())

    code, _ = guarded(run, hard_timeout=args.hard_timeout, cleanup=[stop_processes, scratch.drop_all, flush])
    if code is not None:
        return code
    out.wall = time.monotonic() - began
    svg_path = Path(args.svg)
    chart = svg_chart(soak_panels(out.samples), title=f"Soak: {args.minutes:g} min of mixed load", shade_until=args.warmup / 60)
    write = not args.no_write and bool(out.samples)
    if write:
        svg_path.parent.mkdir(parents=True, exist_ok=True)
        svg_path.write_text(chart, encoding="utf-8")
        print(f"chart written to {svg_path}")
    try:
        shown_svg = os.path.relpath(svg_path, PROJECT_ROOT / "docs")
    except ValueError:
        shown_svg = str(svg_path)
    text = render(out, args, shown, extra, shown_svg)
    return publish("soak", text, report_of(out, args), write=write, results=args.results)


if __name__ == "__main__":
    raise SystemExit(main())
