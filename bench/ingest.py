"""Callback ingest throughput: bare aiohttp vs decrypt+parse vs the full ``POST /callback/wecom`` path.

``python -m bench.ingest [--seconds 10] [--concurrency 64] [--processes 1,2]``

Three servers, each run with 1 and with 2 processes (``reuse_port``), all on loopback:

1. **bare** — an aiohttp handler that reads the body and answers 200: the ceiling of the HTTP stack.
2. **decrypt-only** — the gateway's checks (query parse, timestamp, envelope XML, signature, AES decrypt with
   the receive-id check, plaintext XML) and 200; nothing stored.
3. **full** — the real ``create_app(settings)`` on PostgreSQL (database ``scrm_bench``, created, migrated and
   dropped here) and Redis DB 14 (flushed): each request stores the inbound event and its outbox row in one
   transaction and enqueues an arq job (no worker consumes; this measures ingest).

Servers and the load generator are separate ``spawn`` processes. The load generator pre-builds every signed
and encrypted body before the timed part (each full-path request carries a MsgId never used before, so dedupe
never short-circuits), warms up, then runs ``--concurrency`` tasks over one ``aiohttp.ClientSession`` for
``--seconds``. After each full-path run the rows in ``inbound_events`` must equal the 200 responses the client
received. Results are printed as Markdown and written to ``docs/BENCHMARKS.md`` between
``<!-- bench:ingest -->`` markers.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import multiprocessing as mp
import os
import pstats
import queue
import resource
import shutil
import socket
import subprocess
import tempfile
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from multiprocessing.synchronize import Event as EventType
from pathlib import Path
from typing import Any

from bench.common import (
    ScratchDatabases,
    add_run_options,
    background_busy,
    background_line,
    command_line,
    fmt_ms,
    fmt_rate,
    generated_line,
    guarded,
    machine_cpu_ticks,
    machine_lines,
    machine_steal_ticks,
    nproc,
    percentile,
    pg_version,
    proc_cpu_seconds,
    publish,
    ratio,
    wait_for_quiet,
)
from bench.verdict import Report, at_most, check

DB_NAME = "scrm_bench"
# SCRM_BENCH_REDIS lets two people on one machine run the bench without flushing each other's queue.
REDIS_URL = os.environ.get("SCRM_BENCH_REDIS", "redis://127.0.0.1:6379/14")
ARQ_QUEUE = "scrm:jobs"  # scrm.core.jobs.ArqQueue's queue name
PATH = "/callback/wecom"
HOST = "127.0.0.1"
MAX_SKEW = 3600  # seconds: the pre-built timestamps stay valid for the whole run, however long it is
CASES = ("bare", "decrypt", "full", "low")
LABELS = {
    "bare": "bare aiohttp (read body → 200)",
    "decrypt": "decrypt + parse only",
    "full": "full callback path (PG + outbox + arq)",
    "low": "full path, low load",
}
STORING = ("full", "low")  # the cases that run the real app (and are checked against the database)
LOW_P99_TARGET = 0.020  # s: p99 of the full path at low load (2 concurrent callbacks)
QUIET_BUSY = 0.10  # each run starts once at most this share of all cores has been busy over half a second …
QUIET_MAX_WAIT = 20.0  # … or after this many seconds (then its "busy before" says the machine was not quiet)
WRK_SCRIPT = Path(__file__).with_name("callbacks.lua")
CYCLE_POOL = 20_000  # bodies reused round-robin by the bare and decrypt-only servers (they store nothing)


# =========================================================================================================
# Servers (child processes)
# =========================================================================================================
def server_env(port: int, database_url: str) -> dict[str, str]:
    """Settings for the full-path app: production mode (PostgreSQL + Redis), sandbox WeCom credentials."""
    from config.settings import (
        SANDBOX_AES_KEY,
        SANDBOX_AGENT_ID,
        SANDBOX_CORP_ID,
        SANDBOX_SECRET,
        SANDBOX_TOKEN,
    )

    return {
        "SCRM_DATABASE_URL": database_url,
        "SCRM_REDIS_URL": REDIS_URL,
        "SCRM_SANDBOX": "0",
        "SCRM_WECOM_CORP_ID": SANDBOX_CORP_ID,
        "SCRM_WECOM_AGENT_ID": SANDBOX_AGENT_ID,
        "SCRM_WECOM_SECRET": SANDBOX_SECRET,
        "SCRM_WECOM_TOKEN": SANDBOX_TOKEN,
        "SCRM_WECOM_AES_KEY": SANDBOX_AES_KEY,
        "SCRM_ADMIN_TOKEN": "bench-admin-token",
        "SCRM_CALLBACK_MAX_SKEW": str(MAX_SKEW),
        "SCRM_LOG_LEVEL": "WARNING",
        "SCRM_LOG_FORMAT": "text",
        "SCRM_HOST": HOST,
        "SCRM_PORT": str(port),
    }


def simple_app(case: str) -> Any:
    """The bare and the decrypt-only servers."""
    from aiohttp import web

    from bots.gateway.crypto import (
        CallbackCrypto,
        CallbackRejected,
        check_signature,
        check_timestamp,
        parse_query,
        require,
    )
    from bots.gateway.xmlparse import BadXml, parse_xml
    from config.settings import SANDBOX_AES_KEY, SANDBOX_CORP_ID, SANDBOX_TOKEN

    max_body = 256 * 1024
    crypto = CallbackCrypto(SANDBOX_TOKEN, SANDBOX_AES_KEY, SANDBOX_CORP_ID, work=True)

    async def bare(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(status=200, body=b"")

    async def decrypt_only(request: web.Request) -> web.Response:
        # The steps of bots.gateway.web.wecom_callback, in its order, up to (not including) normalise + store.
        try:
            query = parse_query(request.query_string)
            sig, ts, nonce = require(query, "msg_signature", "timestamp", "nonce")
            check_timestamp(ts, int(time.time()), MAX_SKEW)
            if request.content_length is not None and request.content_length > max_body:
                return web.Response(status=413)
            body = (await request.read()).decode("utf-8")
            envelope = parse_xml(body)
            encrypted = envelope.get("Encrypt")
            if not isinstance(encrypted, str) or not encrypted.strip():
                raise CallbackRejected(400, "bad_request", "envelope has no Encrypt element")
            check_signature(sig, crypto.token, ts, nonce, encrypted.strip())
            fields = parse_xml(crypto.decrypt(encrypted.strip()))
        except CallbackRejected as exc:
            return web.Response(status=exc.status)
        except (BadXml, UnicodeDecodeError):
            return web.Response(status=400)
        if not fields.get("MsgId"):
            return web.Response(status=400)
        return web.Response(status=200, body=b"")

    app = web.Application(client_max_size=max_body)
    app.router.add_post(PATH, bare if case == "bare" else decrypt_only)
    return app


async def _serve(case: str, port: int, env: dict[str, str], ready: Any, stop: EventType, parent: int, profile: str) -> None:
    from aiohttp import web

    if case in STORING:
        from config import load_settings
        from scrm.app.webapp import create_app

        app = create_app(load_settings(env, config_file=os.devnull))
    else:
        app = simple_app(case)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()  # runs the app's startup: the runtime (database pool, arq pool) opens here
    try:
        site = web.TCPSite(runner, HOST, port, reuse_port=True, backlog=4096)
        await site.start()
        # The app loads jieba in a thread at start (≈1–2 s of CPU); let it finish before anyone measures.
        warm = [t for t in asyncio.all_tasks() if t.get_name() == "warm-up-parser"]
        if warm:
            await asyncio.wait(warm, timeout=60)
        profiler = cProfile.Profile(time.thread_time) if profile else None  # CPU time: waiting in epoll is not cost
        if profiler:  # from ready on: start-up (imports, migrations, jieba) is not what a callback costs
            profiler.enable()
        ready.put(("ready", os.getpid(), ""))
        await asyncio.to_thread(_wait_for_stop, stop, parent)
        if profiler:
            profiler.disable()
            profiler.dump_stats(f"{profile}.{os.getpid()}")
    finally:
        await runner.cleanup()


def _wait_for_stop(stop: EventType, parent: int) -> None:
    """Block until told to stop, or until the parent process is gone (no orphans)."""
    while not stop.wait(0.2) and os.getppid() == parent:
        pass


def server_main(case: str, port: int, env: dict[str, str], ready: Any, stop: EventType, parent: int, profile: str = "") -> None:
    """Entry point of one server process; ``profile``: a path prefix for its cProfile statistics (none when empty)."""
    from scrm.core.logs import setup_logging

    setup_logging("WARNING", "text")
    try:
        asyncio.run(_serve(case, port, env, ready, stop, parent, profile))
    except Exception:
        ready.put(("error", os.getpid(), traceback.format_exc()))
        raise SystemExit(1) from None


# =========================================================================================================
# Load generator (child process)
# =========================================================================================================
def build_pool(count: int, first_msg_id: int) -> list[tuple[str, bytes]]:
    """``count`` signed + encrypted text callbacks as (query string, body), MsgIds from ``first_msg_id`` on."""
    from bots.gateway.crypto import CallbackCrypto, signature
    from config.settings import SANDBOX_AES_KEY, SANDBOX_AGENT_ID, SANDBOX_CORP_ID, SANDBOX_TOKEN

    crypto = CallbackCrypto(SANDBOX_TOKEN, SANDBOX_AES_KEY, SANDBOX_CORP_ID, work=True)
    ts = str(int(time.time()))
    contents = ["要3箱矿泉水", "你好，我想问一下昨天的订单到哪了", "再来两包纸巾", "我还欠多少钱？", "有没有5L的花生油"]
    out: list[tuple[str, bytes]] = []
    for i in range(count):
        msg_id = first_msg_id + i
        xml = (
            f"<xml><ToUserName><![CDATA[{SANDBOX_CORP_ID}]]></ToUserName>"
            f"<FromUserName><![CDATA[wmBenchUser{i % 5000:05d}]]></FromUserName><CreateTime>{ts}</CreateTime>"
            f"<MsgType><![CDATA[text]]></MsgType><Content><![CDATA[{contents[i % len(contents)]}]]></Content>"
            f"<MsgId>{msg_id}</MsgId><AgentID>{SANDBOX_AGENT_ID}</AgentID></xml>"
        )
        encrypted = crypto.encrypt(xml)
        nonce = str(100_000_000 + i)
        sig = signature(crypto.token, ts, nonce, encrypted)
        body = (
            f"<xml><ToUserName><![CDATA[{SANDBOX_CORP_ID}]]></ToUserName><AgentID><![CDATA[{SANDBOX_AGENT_ID}]]>"
            f"</AgentID><Encrypt><![CDATA[{encrypted}]]></Encrypt></xml>"
        ).encode()
        out.append((f"msg_signature={sig}&timestamp={ts}&nonce={nonce}", body))
    return out


@dataclass
class RunSpec:
    case: str
    procs: int
    port: int
    pool: str
    unique: bool  # every request a fresh body (full path) or round-robin over the pool
    seconds: float
    warmup: float
    concurrency: int
    server_pids: list[int]
    client: str = "python"  # "wrk" (compiled, bench/callbacks.lua) or "python" (aiohttp, this process)
    threads: int = 1  # wrk threads


@dataclass
class _Cursor:
    next: int = 0  # index of the next body to send
    exhausted_at: float = 0.0  # perf_counter when the unique bodies ran out (0: they did not)


def _snapshot(server_pids: list[int]) -> tuple[float, float, float, int, int, int]:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    busy, total = machine_cpu_ticks()
    servers = sum(proc_cpu_seconds(p) for p in server_pids)
    return time.perf_counter(), servers, usage.ru_utime + usage.ru_stime, busy, total, machine_steal_ticks()


async def run_load(spec: RunSpec, pool: list[tuple[str, bytes]]) -> dict[str, Any]:
    import aiohttp
    from yarl import URL

    base = f"http://{HOST}:{spec.port}{PATH}?"
    urls = [URL(base + qs, encoded=True) for qs, _ in pool]
    bodies = [b for _, b in pool]
    n = len(bodies)
    headers = {"Content-Type": "text/xml"}
    latencies: list[float] = []
    statuses: Counter[int] = Counter()  # every response, warm-up and tail included (for the row-count check)
    timed: Counter[int] = Counter()
    errors: Counter[str] = Counter()
    state = _Cursor()
    finished = asyncio.Event()

    connector = aiohttp.TCPConnector(limit=spec.concurrency, limit_per_host=spec.concurrency)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        t_start = time.perf_counter() + spec.warmup
        t_end = t_start + spec.seconds

        async def worker() -> None:
            while True:
                t0 = time.perf_counter()
                if t0 >= t_end:
                    return
                i = state.next
                if i >= n:
                    if spec.unique:
                        if not state.exhausted_at:
                            state.exhausted_at = t0
                            finished.set()
                        return
                    i = i % n
                state.next += 1
                try:
                    async with session.post(urls[i], data=bodies[i], headers=headers) as resp:
                        await resp.read()
                        status = resp.status
                except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                    errors[type(exc).__name__] += 1
                    await asyncio.sleep(0.01)
                    continue
                t1 = time.perf_counter()
                statuses[status] += 1
                if t_start <= t1 < t_end:
                    timed[status] += 1
                    latencies.append(t1 - t0)

        async def sampler() -> tuple[Any, Any]:
            await asyncio.sleep(max(0.0, t_start - time.perf_counter()))
            first = _snapshot(spec.server_pids)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(finished.wait(), max(0.0, t_end - time.perf_counter()))
            return first, _snapshot(spec.server_pids)

        sampling = asyncio.create_task(sampler())
        await asyncio.gather(*(worker() for _ in range(spec.concurrency)))
        finished.set()
        (w0, s0, c0, b0, tot0, st0), (w1, s1, c1, b1, tot1, st1) = await sampling
    window = (min(t_end, state.exhausted_at) if state.exhausted_at else t_end) - t_start
    latencies.sort()
    count = sum(timed.values())
    wall = max(w1 - w0, 1e-9)
    return {
        "case": spec.case,
        "procs": spec.procs,
        "client": "Python aiohttp (1 process)",
        "concurrency": spec.concurrency,
        "in_flight_at_stop": 0,  # every task reads its last answer before it stops
        "window": window,
        "count": count,
        "rps": count / window if window > 0 else 0.0,
        "p50": percentile(latencies, 50),
        "p99": percentile(latencies, 99),
        "timed_non200": sum(v for k, v in timed.items() if k != 200),
        "ok_total": statuses.get(200, 0),
        "statuses": dict(statuses),
        "errors": dict(errors),
        "exhausted": bool(state.exhausted_at),
        "duplicates_sent": False,  # the tasks stop when the bodies run out
        "server_cpu": (s1 - s0) / wall,
        "client_cpu": (c1 - c0) / wall,
        "machine_busy": (b1 - b0) / (tot1 - tot0) if tot1 > tot0 else float("nan"),
        "steal": (st1 - st0) / (tot1 - tot0) if tot1 > tot0 else float("nan"),
        "ncpu": nproc(),
    }


def wrk_binary() -> str | None:
    return shutil.which("wrk")


def write_pool_file(pool: list[tuple[str, bytes]], path: Path) -> None:
    """One callback a line, ``query<TAB>body`` (bodies are one-line XML), for bench/callbacks.lua."""
    with path.open("wb") as out:
        for query, body in pool:
            out.write(query.encode() + b"\t" + body + b"\n")


def parse_wrk(stdout: str) -> dict[str, int]:
    """The ``SCRM_RESULT k=v …`` line bench/callbacks.lua prints."""
    for line in stdout.splitlines():
        if line.startswith("SCRM_RESULT "):
            return {k: int(v) for k, v in (item.split("=", 1) for item in line.split()[1:])}
    raise RuntimeError(f"wrk printed no SCRM_RESULT line:\n{stdout[-2000:]}")


def _wrk(spec: RunSpec, pool_file: Path, first: int, last: int, seconds: float) -> dict[str, int]:
    url = f"http://{HOST}:{spec.port}{PATH}"
    threads = max(1, min(spec.threads, spec.concurrency))
    duration = f"{max(1, round(seconds))}s"  # wrk takes whole seconds
    argv = [wrk_binary() or "wrk", "-t", str(threads), "-c", str(spec.concurrency), "-d", duration,
            "--timeout", "30s", "-s", str(WRK_SCRIPT), url, "--", str(pool_file), str(first), str(last),
            "1" if spec.unique else "0", str(threads)]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 120, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"wrk exited {done.returncode}: {done.stderr[-2000:]}")
    return parse_wrk(done.stdout)


def run_wrk(spec: RunSpec, pool_file: Path, n: int) -> dict[str, Any]:
    """The same run as :func:`run_load`, driven by wrk: a warm-up invocation, then the timed one. With unique bodies
    the warm-up and the timed run take disjoint parts of the pool, so no MsgId is sent twice."""
    split = int(n * (spec.warmup + 1) / (spec.warmup + spec.seconds + 2)) if spec.unique else 0
    warm = _wrk(spec, pool_file, 0, split if spec.unique else n, spec.warmup) if spec.warmup > 0 else {}
    children0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    w0, s0, _, b0, tot0, st0 = _snapshot(spec.server_pids)
    timed = _wrk(spec, pool_file, split, n, spec.seconds)
    w1, s1, _, b1, tot1, st1 = _snapshot(spec.server_pids)
    children1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall = max(w1 - w0, 1e-9)
    window = timed["duration_us"] / 1e6
    errors = {k: warm.get(k, 0) + timed[k] for k in ("connect", "read", "write", "timeout") if warm.get(k, 0) + timed[k]}
    answered = timed["ok"] + timed["other"] + warm.get("ok", 0) + warm.get("other", 0)
    other = timed["other"] + warm.get("other", 0)
    return {
        "case": spec.case,
        "procs": spec.procs,
        "client": f"wrk ({spec.threads} thread{'s' if spec.threads > 1 else ''})",
        "concurrency": spec.concurrency,
        "window": window,
        "count": timed["requests"],
        "rps": timed["requests"] / window if window > 0 else 0.0,
        "p50": timed["p50_us"] / 1e6,
        "p99": timed["p99_us"] / 1e6,
        "timed_non200": timed["other"],
        "ok_total": timed["ok"] + warm.get("ok", 0),
        "statuses": {200: timed["ok"] + warm.get("ok", 0), **({"non-200": other} if other else {})},
        "errors": errors,
        "in_flight_at_stop": timed["sent"] + warm.get("sent", 0) - answered,
        "exhausted": bool(timed["exhausted"] or warm.get("exhausted", 0)),
        "duplicates_sent": bool(timed["exhausted"] or warm.get("exhausted", 0)),  # wrk cannot stop early: it sent again
        "server_cpu": (s1 - s0) / wall,
        "client_cpu": (children1.ru_utime + children1.ru_stime - children0.ru_utime - children0.ru_stime) / wall,
        "machine_busy": (b1 - b0) / (tot1 - tot0) if tot1 > tot0 else float("nan"),
        "steal": (st1 - st0) / (tot1 - tot0) if tot1 > tot0 else float("nan"),
        "ncpu": nproc(),
    }


def loadgen_main(conn: Connection) -> None:
    """Entry point of the load-generator process: commands arrive over ``conn``."""
    pools: dict[str, list[tuple[str, bytes]]] = {}
    files: dict[str, Path] = {}
    workdir = Path(tempfile.mkdtemp(prefix="scrm_bench_loadgen_"))
    try:
        while True:
            if not conn.poll(600):
                return  # the parent is gone or stuck: do not linger
            command, payload = conn.recv()
            if command == "quit":
                return
            if command == "build":
                name, count, first = payload
                t0 = time.perf_counter()
                pools[name] = build_pool(count, first)
                conn.send(("built", time.perf_counter() - t0))
            elif command == "run":
                spec: RunSpec = payload
                if spec.client == "wrk":
                    if spec.pool not in files:
                        files[spec.pool] = workdir / f"{spec.pool}.tsv"
                        write_pool_file(pools[spec.pool], files[spec.pool])
                    conn.send(("result", run_wrk(spec, files[spec.pool], len(pools[spec.pool]))))
                else:
                    conn.send(("result", asyncio.run(run_load(spec, pools[spec.pool]))))
    except (EOFError, KeyboardInterrupt, BrokenPipeError):
        return
    except Exception:
        with contextlib.suppress(Exception):
            conn.send(("error", traceback.format_exc()))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


# =========================================================================================================
# Orchestration (main process)
# =========================================================================================================
@dataclass
class Children:
    ctx: Any
    procs: list[BaseProcess] = field(default_factory=list)

    def start(self, target: Any, args: tuple[Any, ...], name: str) -> BaseProcess:
        proc = self.ctx.Process(target=target, args=args, name=name, daemon=True)
        proc.start()
        self.procs.append(proc)
        return proc

    def stop(self, procs: list[BaseProcess], grace: float = 10.0) -> None:
        deadline = time.monotonic() + grace
        for proc in procs:
            proc.join(max(0.0, deadline - time.monotonic()))
        for proc in procs:
            if proc.is_alive():
                proc.terminate()
                proc.join(3)
            if proc.is_alive():
                proc.kill()
                proc.join(3)
            if proc in self.procs:
                self.procs.remove(proc)

    def stop_all(self) -> None:
        self.stop(list(self.procs), grace=2.0)


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def ask(conn: Connection, message: tuple[str, Any], timeout: float) -> Any:
    conn.send(message)
    if not conn.poll(timeout):
        raise TimeoutError(f"load generator did not answer {message[0]!r} within {timeout:.0f} s")
    kind, value = conn.recv()
    if kind == "error":
        raise RuntimeError(f"load generator failed:\n{value}")
    return value


async def reset_full_state(url: str) -> None:
    """Empty what the full path writes, so each full run is verified on its own, and start it from a checkpointed
    database: without the CHECKPOINT the run after a heavy one (tens of thousands of rows a few seconds earlier)
    pays for the previous run's dirty pages — measured here: the low-load case's p99 was 35 ms right after the
    2-process full run and 4.6–6.2 ms on its own."""
    import redis.asyncio as aioredis
    import sqlalchemy as sa

    from scrm.core.db import Database

    db = Database(url)
    try:
        async with db.write() as conn:
            await conn.execute(sa.text("TRUNCATE inbound_events, outbox RESTART IDENTITY CASCADE"))
        async with db.read() as conn:
            await conn.execute(sa.text("CHECKPOINT"))
    finally:
        await db.dispose()
    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        await client.flushdb()
    finally:
        await client.aclose()


async def count_full_state(url: str) -> dict[str, int]:
    """Rows in inbound_events, inbound.received outbox rows (one statement: one snapshot) and arq jobs queued."""
    import redis.asyncio as aioredis
    import sqlalchemy as sa

    from scrm.core.db import Database

    db = Database(url)
    try:
        async with db.read() as conn:
            query = sa.text("SELECT (SELECT count(*) FROM inbound_events), (SELECT count(*) FROM outbox WHERE topic = 'inbound.received')")
            inbound, outbox_rows = (int(v) for v in (await conn.execute(query)).one())
    finally:
        await db.dispose()
    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        queued = int(await client.zcard(ARQ_QUEUE))
    finally:
        await client.aclose()
    return {"inbound": inbound, "outbox": outbox_rows, "queued": queued}


ENQUEUE_SETTLE = 5.0  # seconds the server may take, after the last response, to store and queue what it still had


async def settled_counts(url: str, within: float = ENQUEUE_SETTLE, *, quiet: float = 0.3) -> dict[str, Any]:
    """The counts once the server is done: a callback is answered after its commit and its job is queued just
    after, and requests wrk abandoned in flight when it stopped may still be committing — counting at the last
    response would race both. Polls until the counts have not changed for ``quiet`` seconds and jobs queued =
    outbox rows, or ``within`` seconds pass; ``settle_s`` says how long it took."""
    t0 = time.monotonic()
    last: dict[str, Any] = {}
    since = t0
    while True:
        counts: dict[str, Any] = await count_full_state(url)
        now = time.monotonic()
        if counts != last:
            last, since = dict(counts), now
        if (counts["queued"] >= counts["outbox"] and now - since >= quiet) or now - t0 >= within:
            counts["settle_s"] = since - t0
            return counts
        await asyncio.sleep(0.05)


async def flush_redis() -> None:
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        await client.flushdb()
    finally:
        await client.aclose()


def run_phase(
    children: Children, loadgen: Connection, case: str, procs: int, args: argparse.Namespace, database_url: str, pool: str
) -> dict[str, Any]:
    port = free_port()
    env = server_env(port, database_url) if case in STORING else {}
    ready: Any = children.ctx.Queue()
    stop = children.ctx.Event()
    profile = str(Path(args.profile_dir) / f"{case}{procs}") if args.profile and case in args.profile_cases else ""
    servers = [children.start(server_main, (case, port, env, ready, stop, os.getpid(), profile), f"bench-{case}-{i}") for i in range(procs)]
    try:
        pids: list[int] = []
        deadline = time.monotonic() + 90
        while len(pids) < procs:
            try:
                kind, pid, detail = ready.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                raise TimeoutError(f"{case} server(s) not ready within 90 s") from None
            if kind == "error":
                raise RuntimeError(f"{case} server {pid} failed to start:\n{detail}")
            pids.append(pid)
        concurrency = args.low_concurrency if case == "low" else args.concurrency
        spec = RunSpec(
            case, procs, port, pool, case in STORING, args.seconds, args.warmup, concurrency, pids, args.client, args.wrk_threads
        )
        result: dict[str, Any] = ask(loadgen, ("run", spec), args.seconds + args.warmup + 90)
    finally:
        stop.set()
        children.stop(servers, grace=15)
        ready.close()
    return result


PROFILE_TOP = 25  # functions shown per profiled run
# Parts of the callback path, each the cumulative time of these functions (a coroutine's, while it runs).
PROFILE_AREAS = (
    ("whole request in aiohttp (parse, app, response write)", ("aiohttp/web_protocol.py", "_handle_request")),
    ("app middleware chain around the handler", ("http/proxy.py", "forwarded_middleware")),
    ("handler: wecom_callback", ("gateway/web.py", "wecom_callback")),
    ("  query + timestamp checks", ("gateway/web.py", "_fresh_query")),
    ("  body read", ("gateway/web.py", "_read_body")),
    ("  XML parse (envelope and plaintext)", ("gateway/web.py", "_parse")),
    ("  signature + AES decrypt", ("gateway/web.py", "_open_envelope")),
    ("  normalise", ("gateway/domain.py", "normalize_wecom")),
    ("  store: hand to the writer, wait, answer", ("gateway/web.py", "_store")),
    ("writer: one batch's rows + statement (SQLAlchemy + asyncpg)", ("gateway/ingest.py", "_write")),
    ("enqueue the arq jobs (outbox kick)", ("core/outbox.py", "kick")),
    ("metrics: label look-ups (prometheus_client)", ("prometheus_client/metrics.py", "labels")),
)


def profile_lines(prefix: str, requests: int) -> list[str]:
    """The profiled servers' statistics (one file per process, ``prefix.<pid>``) merged: the top functions by their
    own CPU time, in µs per request answered, with their cumulative time (what they and their callees took)."""
    files = sorted(str(f) for f in Path(prefix).parent.glob(Path(prefix).name + ".*"))
    if not files or requests <= 0:
        return [f"(no profile: {len(files)} statistics file(s), {requests} requests)"]
    stats = pstats.Stats(*files)
    per = 1e6 / requests
    rows = sorted(stats.stats.items(), key=lambda kv: kv[1][2], reverse=True)  # type: ignore[attr-defined]
    total = sum(v[2] for _, v in rows)
    lines = [
        f"cProfile of the server over the warm-up and timed run: {total * per:,.0f} µs of profiled CPU per request "
        f"({requests:,} requests; cProfile's own overhead included — read the shares, not the absolute figures)"
    ]
    lines += ["", "| part of the path | cumulative µs/req | % |", "|---|---:|---:|"]
    for label, (suffix, func) in PROFILE_AREAS:
        cum = sum(v[3] for (path, _, name), v in rows if name == func and path.endswith(suffix))
        lines.append(f"| {label} | {cum * per:,.1f} | {100 * cum / total:.1f} % |")
    lines += ["", "| own µs/req | own % | cumulative µs/req | calls/req | function |", "|---:|---:|---:|---:|---|"]
    for (path, line, name), (_, ncalls, own, cumulative, _) in rows[:PROFILE_TOP]:
        where = path if path.startswith("<") else f"{'/'.join(Path(path).parts[-2:])}:{line}"
        lines.append(
            f"| {own * per:,.1f} | {100 * own / total:.1f} % | {cumulative * per:,.1f} | {ncalls / requests:.2f} | `{name}` ({where}) |"
        )
    return lines


def pool_size(args: argparse.Namespace) -> int:
    return int((args.seconds + args.warmup + 2) * args.pool_rate)


def cpu_per_request(r: dict[str, Any]) -> float:
    """Server CPU seconds per request in the timed window: on a busy machine a steadier figure than req/s, which
    then also measures how much CPU the server was given."""
    return float(r["server_cpu"] / r["rps"]) if r["rps"] > 0 else float("nan")


def fmt_cpu_ms(seconds: float) -> str:
    return "–" if seconds != seconds else f"{seconds * 1000:.2f}"  # NaN check


def render(results: list[dict[str, Any]], checks: list[str], notes: list[str], argv: list[str], extra_info: dict[str, str]) -> str:
    by = {(r["case"], r["procs"]): r for r in results}
    lines = [
        "## Ingest",
        "",
        generated_line(argv),
        "",
        *machine_lines(extra_info),
        "",
        "| path | server procs | connections | req/s | p50 ms | p99 ms | non-200 | vs 1 proc | server CPU | server CPU ms/req "
        "| client CPU | other CPU | machine busy | stolen by the host |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        one = by.get((r["case"], 1))
        scale = ratio(r["rps"], one["rps"]) if one and r["procs"] != 1 else "–"
        other = r["machine_busy"] * r["ncpu"] - r["server_cpu"] - r["client_cpu"]
        lines.append(
            f"| {LABELS[r['case']]} | {r['procs']} | {r['concurrency']} | {fmt_rate(r['rps'])} | {fmt_ms(r['p50'])} "
            f"| {fmt_ms(r['p99'])} | {r['timed_non200'] + sum(r['errors'].values())} | {scale} "
            f"| {r['server_cpu'] * 100:.0f} % | {fmt_cpu_ms(cpu_per_request(r))} | {r['client_cpu'] * 100:.0f} % "
            f"| {max(0.0, other) * 100:.0f} % | {r['machine_busy'] * 100:.0f} % | {r.get('steal', 0.0) * 100:.0f} % |"
        )
    lines += [
        "",
        "| server procs | full / bare | full / decrypt-only | decrypt-only / bare | server CPU ms/req, full − decrypt-only |",
        "|---:|---:|---:|---:|---:|",
    ]
    for procs in sorted({r["procs"] for r in results}):
        bare, dec, full = by.get(("bare", procs)), by.get(("decrypt", procs)), by.get(("full", procs))
        lines.append(
            f"| {procs} | {ratio(full['rps'], bare['rps']) if full and bare else '–'} "
            f"| {ratio(full['rps'], dec['rps']) if full and dec else '–'} "
            f"| {ratio(dec['rps'], bare['rps']) if dec and bare else '–'} "
            f"| {fmt_cpu_ms(cpu_per_request(full) - cpu_per_request(dec)) if full and dec else '–'} |"
        )
    lines += [
        "",
        "Correctness (full path): rows stored = 200 responses received (warm-up and tail included) = outbox rows = arq jobs queued:",
        "",
    ]
    lines += [f"- {c}" for c in checks]
    lines += ["", "Notes:", ""] + [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.ingest", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="timed part of each run (10)")
    parser.add_argument("--warmup", type=float, default=1.0, help="untimed warm-up before each run (1)")
    parser.add_argument("--concurrency", type=int, default=64, help="concurrent client connections (64)")
    parser.add_argument("--processes", default="1,2", help="server process counts, comma-separated (1,2)")
    parser.add_argument("--cases", default=",".join(CASES), help="subset of bare,decrypt,full (all)")
    parser.add_argument("--pool-rate", type=int, default=6000, help="full-path req/s the pre-built unique bodies can sustain (6000)")
    parser.add_argument("--client", choices=("auto", "wrk", "python"), default="auto",
                        help="load generator: wrk (bench/callbacks.lua) or python (aiohttp); auto = wrk when on PATH")  # fmt: skip
    parser.add_argument("--wrk-threads", type=int, default=1, help="wrk threads (1: leaves the other core to the server)")
    parser.add_argument("--low-concurrency", type=int, default=2, help="connections of the low-load case (2)")
    parser.add_argument("--profile", action="store_true",
                        help="run the full-path servers under cProfile and print where their CPU goes per request "
                        "(slows them: figures of a profiled run are not written to docs/BENCHMARKS.md)")  # fmt: skip
    add_run_options(parser)
    args = parser.parse_args(argv)
    args.profile_cases = ("full",)
    args.profile_dir = ""
    if args.client == "auto":
        args.client = "wrk" if wrk_binary() else "python"
    elif args.client == "wrk" and not wrk_binary():
        parser.error("--client wrk: wrk is not on PATH (Debian: apt-get install wrk)")
    if not 1 <= args.wrk_threads <= 64 or not 1 <= args.low_concurrency <= 64:
        parser.error("--wrk-threads 1..64, --low-concurrency 1..64")
    try:
        args.procs_list = [int(p) for p in str(args.processes).split(",") if p.strip()]
    except ValueError:
        parser.error("--processes takes integers, e.g. 1,2")
    args.case_list = [c.strip() for c in str(args.cases).split(",") if c.strip()]
    if not args.procs_list or any(p < 1 or p > 16 for p in args.procs_list):
        parser.error("--processes: 1..16")
    if not args.case_list or any(c not in CASES for c in args.case_list):
        parser.error(f"--cases: a subset of {','.join(CASES)}")
    if args.seconds <= 0 or args.seconds > 600 or args.warmup < 0 or not 1 <= args.concurrency <= 4096:
        parser.error("--seconds 0..600, --warmup ≥ 0, --concurrency 1..4096")
    if not args.hard_timeout:
        phases = len(args.procs_list) * len(args.case_list)
        args.hard_timeout = 120 + phases * (args.seconds + args.warmup + 45)
    return args


def full_path_check(result: dict[str, Any], counts: dict[str, Any]) -> tuple[list[str], bool]:
    """Every 200 has its row: rows stored = 200s received (+ at most the requests wrk abandoned in flight when it
    stopped, which the server may have stored) = outbox rows = arq jobs queued (within ``ENQUEUE_SETTLE`` s of the
    last response); nothing but 200s; the pre-built bodies did not run out (no MsgId sent twice)."""
    procs = result["procs"]
    in_flight = int(result.get("in_flight_at_stop", 0))
    stored_ok = result["ok_total"] <= counts["inbound"] <= result["ok_total"] + in_flight
    good = (
        stored_ok
        and counts["inbound"] == counts["outbox"] == counts["queued"]
        and not result["errors"]
        and set(result["statuses"]) <= {200}
        and not result.get("duplicates_sent")
    )
    verdict = "OK" if good else f"MISMATCH (statuses {result['statuses']}, errors {result['errors']})"
    abandoned = f" (+ {in_flight} in flight when the client stopped)" if in_flight else ""
    lines = [
        f"{LABELS[result['case']]}, {procs} process(es): {result['ok_total']:,} × 200 received{abandoned}; {counts['inbound']:,} rows "
        f"in inbound_events, {counts['outbox']:,} outbox rows, {counts['queued']:,} arq jobs "
        f"queued{settle_note(counts)} — {verdict}"
    ]
    if result.get("duplicates_sent"):
        lines.append(
            f"{procs} process(es): the pre-built bodies ran out and wrk sent MsgIds again (counts not to be trusted): raise --pool-rate"
        )
    elif result["exhausted"]:
        lines.append(
            f"{procs} process(es): the pre-built bodies ran out after "
            f"{result['window']:.1f} s; req/s is over that window (raise --pool-rate)"
        )
    return lines, good


def settle_note(counts: dict[str, Any]) -> str:
    settle = counts.get("settle_s")
    return "" if settle is None else f" {settle:.2f} s after the last response"


def client_line(args: argparse.Namespace) -> str:
    if args.client == "wrk":
        return f"wrk ({args.wrk_threads} thread(s), bench/callbacks.lua over pre-built bodies), {args.concurrency} connections"
    return f"1 process, aiohttp ClientSession, {args.concurrency} connections"


def report_of(results: list[dict[str, Any]], checked: list[tuple[dict[str, Any], bool, str]]) -> Report:
    """Checks: every full-path run's rows = 200s = outbox rows = jobs queued. Target: the low-load p99."""
    report = Report("ingest")
    for result, good, line in checked:
        report.add(
            check(f"{LABELS[result['case']]}, {result['procs']} proc(s): every 200 stored and queued", good, line.split(": ", 1)[-1])
        )
    for r in results:
        if r["case"] == "low":
            report.add(
                at_most(
                    f"p99 of the full path at {r['concurrency']} concurrent callbacks",
                    r["p99"] * 1000,
                    LOW_P99_TARGET * 1000,
                    " ms",
                    strict=True,
                )
            )
    by = {(r["case"], r["procs"]): r for r in results}
    parts = []
    for label, key in (("full path", "full"), ("decrypt+parse", "decrypt"), ("bare", "bare")):
        values = [fmt_rate(by[(key, p)]["rps"]) for p in sorted({r["procs"] for r in results}) if (key, p) in by]
        if values:
            parts.append(f"{label} {' / '.join(values)} req/s")
    procs = " / ".join(str(p) for p in sorted({r["procs"] for r in results if r["case"] != "low"}))
    report.headline = "; ".join(parts) + (f" ({procs} procs)" if parts else "")
    low = by.get(("low", 1))
    if low:
        report.headline += f"; low load ({low['concurrency']} conc.) p99 {fmt_ms(low['p99'])} ms"
    clients = {r["client"] for r in results}
    report.headline += f"; client {', '.join(sorted(clients))}, CPU ≤ {max((r['client_cpu'] for r in results), default=0) * 100:.0f} %"
    report.figures = {
        f"{r['case']}/{r['procs']}": {k: r[k] for k in ("rps", "p50", "p99", "server_cpu", "client_cpu", "concurrency")}
        | {"server_cpu_per_request": cpu_per_request(r)}
        for r in results
    }
    return report


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    shown_cmd = command_line("bench.ingest", argv)
    ctx = mp.get_context("spawn")
    children = Children(ctx)
    results: list[dict[str, Any]] = []
    checks: list[str] = []
    checked: list[tuple[dict[str, Any], bool, str]] = []
    needs_db = any(c in STORING for c in args.case_list)
    scratch = ScratchDatabases()
    extra: dict[str, str] = {}
    t_begin = time.monotonic()

    def run() -> None:
        database_url = ""
        if args.profile:
            args.profile_dir = tempfile.mkdtemp(prefix="scrm_bench_profile_")
        extra["load generator"] = client_line(args)
        extra["machine busy before start"] = background_line(background_busy())
        if needs_db:
            print(f"creating and migrating PostgreSQL database {DB_NAME} …", flush=True)
            database_url = scratch.create(DB_NAME)
            asyncio.run(flush_redis())
            extra["postgresql"] = asyncio.run(pg_version())
        parent_conn, child_conn = ctx.Pipe()
        children.start(loadgen_main, (child_conn,), "bench-loadgen")
        child_conn.close()
        loadgen_conn = parent_conn
        pools: dict[tuple[str, int], str] = {}
        built = 0.0
        if "bare" in args.case_list or "decrypt" in args.case_list:
            built += ask(loadgen_conn, ("build", ("cycle", CYCLE_POOL, 1)), 300)
        runs = [(case, procs) for case in args.case_list for procs in ([1] if case == "low" else args.procs_list)]
        size = pool_size(args)
        for n, (case, procs) in enumerate(r for r in runs if r[0] in STORING):
            name = f"{case}{procs}"
            built += ask(loadgen_conn, ("build", (name, size, 10**12 * (n + 1))), 600)
            pools[(case, procs)] = name
        print(f"pre-built signed + encrypted bodies in {built:.1f} s; client: {client_line(args)}", flush=True)
        for case, procs in runs:
            if case in STORING:
                asyncio.run(reset_full_state(database_url))
            waited, busy = wait_for_quiet(QUIET_BUSY, max_wait=QUIET_MAX_WAIT)
            print(f"running {case} with {procs} server process(es) for {args.seconds:g} s …", flush=True)
            result = run_phase(children, loadgen_conn, case, procs, args, database_url, pools.get((case, procs), "cycle"))
            result["quiet_wait"], result["busy_before"] = waited, busy
            results.append(result)
            print(
                f"  {fmt_rate(result['rps'])} req/s, p50 {fmt_ms(result['p50'])} ms, "
                f"p99 {fmt_ms(result['p99'])} ms, statuses {result['statuses']}, "
                f"errors {result['errors']}, client CPU {result['client_cpu'] * 100:.0f} %",
                flush=True,
            )
            if args.profile and case in args.profile_cases:
                breakdown = profile_lines(str(Path(args.profile_dir) / f"{case}{procs}"), result["ok_total"])
                print("\n".join([f"  profile of {LABELS[case]}, {procs} process(es):", "", *breakdown, ""]), flush=True)
            if case in STORING:
                check_lines, good = full_path_check(result, asyncio.run(settled_counts(database_url)))
                checked.append((result, good, check_lines[0]))
                checks.extend(check_lines)
                print(f"  check: {check_lines[0]}", flush=True)
        loadgen_conn.send(("quit", None))

    def flush_and_tidy() -> None:
        if needs_db:
            asyncio.run(flush_redis())
        if args.profile_dir:
            shutil.rmtree(args.profile_dir, ignore_errors=True)

    code, _ = guarded(run, hard_timeout=args.hard_timeout, cleanup=[children.stop_all, scratch.drop_all, flush_and_tidy])
    if code is not None:
        return code
    client_bound = [r for r in results if r["client_cpu"] >= 0.9 * (args.wrk_threads if args.client == "wrk" else 1)]
    notes = [
        (
            f"Load generator: {client_line(args)}; it shares the cores with the servers, PostgreSQL and Redis. Its CPU "
            "column says whether it, not the server, was the limit (≈ 100 % per client thread = saturated)"
            + (
                " — it was in " + ", ".join(f"{LABELS[r['case']]} / {r['procs']}" for r in client_bound) + ": those req/s are lower bounds."
                if client_bound
                else " — it was not in any run."
            )
        ),
        "CPU columns are % of one core during the timed window: server = sum over server processes, other = "
        "everything else on the machine (PostgreSQL, Redis, kernel softirq, anything else running); machine "
        "busy is % of all cores; stolen by the host is % of all cores the hypervisor gave to other guests while this one "
        "wanted to run (`steal` in /proc/stat, inside other CPU and machine busy) — on a shared host the figures of a run "
        "with steal are perturbed. Server CPU ms/req = server CPU over the requests answered in the window; full − "
        "decrypt-only is what storing, queueing and the app's middleware add to each callback.",
        "Full path: production settings (PostgreSQL + Redis, sandbox WeCom credentials, callback skew "
        f"{MAX_SKEW} s so pre-built timestamps stay valid); every request has a MsgId never sent before; "
        "nothing consumes the arq queue during the run.",
        f"Low load: the full path, 1 server process, {args.low_concurrency} concurrent callbacks — the latency a callback "
        f"sees when the server is not saturated; target p99 < {LOW_P99_TARGET * 1000:.0f} ms.",
        f"Each run: {args.warmup:g} s warm-up (not counted), then {args.seconds:g} s timed; latency is per "
        "request at the client (send → response read), p50/p99 over responses completed in the timed window. "
        "Each full-path run starts on emptied tables after a CHECKPOINT, so it does not pay for the dirty pages of "
        "the run before it.",
        f"Each run starts once the machine is quiet (≤ {QUIET_BUSY * 100:.0f} % of all cores busy over 0.5 s, waited "
        f"for up to {QUIET_MAX_WAIT:.0f} s): "
        + "; ".join(f"{LABELS[r['case']]} / {r['procs']} after {r['quiet_wait']:.1f} s at {r['busy_before'] * 100:.0f} %" for r in results)
        + (
            " — not quiet before " + ", ".join(f"{LABELS[r['case']]} / {r['procs']}" for r in noisy) + ": its figures are perturbed."
            if (noisy := [r for r in results if r["busy_before"] > QUIET_BUSY])
            else "."
        ),
        f"Total wall time {time.monotonic() - t_begin:.0f} s.",
    ]
    return publish("ingest", render(results, checks, notes, shown_cmd, extra), report_of(results, checked),
                   write=not args.no_write and not args.profile and bool(results), results=args.results)  # fmt: skip


if __name__ == "__main__":
    raise SystemExit(main())
