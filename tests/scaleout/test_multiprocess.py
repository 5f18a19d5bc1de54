"""Production shape on one machine: ``run.py serve --workers 2`` and two ``run.py worker`` processes on one
PostgreSQL database and one Redis DB, WeCom played by the emulator in a process of its own.

* every 微信客服 callback delivered 3 times at once, on separate connections, to both server processes → one
  stored event, one sync, one reply per customer message; both server processes took callbacks, and
  ``/metrics`` adds up both, whichever process answers;
* many concurrent API orders and confirmations for scarce stock through both server processes → allocated ≤ on
  hand, order lines = counters, counters = ledger (``run.py stock reconcile``), confirmed orders = successes;
* crons: every tick seen in the two workers' logs started exactly once (arq job ids + kept results).

Selected with ``-m multiprocess``; bounded (every wait has a deadline, < 90 s in all) and every process it
starts is stopped in ``finally``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from config.settings import SANDBOX_AES_KEY, SANDBOX_AGENT_ID, SANDBOX_CORP_ID, SANDBOX_KF_OPEN_KFID, SANDBOX_SECRET, SANDBOX_TOKEN
from tests.conftest import PG_ADMIN_DSN
from tests.helpers import free_port

pytestmark = [pytest.mark.multiprocess, pytest.mark.postgres, pytest.mark.redis]

ROOT = Path(__file__).resolve().parents[2]
DB_NAME = f"scrm_scaleout_{os.getpid()}"
ADMIN_TOKEN = "scaleout-admin-token"
CUSTOMERS = [f"wmScale{i:02d}" for i in range(8)]
SCARCE_STOCK = 20
# arq logs a cron job's start as "<time> INFO arq.worker:   0.96s → <name>()" (other jobs: "→ <id>:<name>(…)").
CRON_START = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),\d{3} INFO arq\.worker: +[\d.]+s → ([\w.]+)\(\)", re.M)


class Processes:
    """The processes this test starts, each in a session of its own, logs in files."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.metrics_dir = logs / "metrics"  # PROMETHEUS_MULTIPROC_DIR of the servers
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        out = (self.logs / f"{name}.log").open("wb")
        proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        out.close()
        self.procs[name] = proc
        return proc

    def log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text(encoding="utf-8", errors="replace")

    def check_alive(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise AssertionError(f"{name} exited with {proc.returncode}:\n{self.log(name)[-3000:]}")

    def stop_all(self) -> dict[str, int | None]:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 15
        codes: dict[str, int | None] = {}
        for name, proc in self.procs.items():
            try:
                codes[name] = proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                codes[name] = None
        for proc in self.procs.values():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)  # the session we started: the process and anything it forked
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(5)
        return codes


def product_env(redis_url: str, serve_port: int, emulator_port: int) -> dict[str, str]:
    """Production settings (PostgreSQL + Redis, sandbox off) with the sandbox's credentials, as bench/ingest.py."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCRM_")}
    env.update(
        SCRM_DATABASE_URL=f"postgresql+asyncpg://postgres@127.0.0.1:5432/{DB_NAME}",
        SCRM_REDIS_URL=redis_url,
        SCRM_SANDBOX="0",
        SCRM_WECOM_CORP_ID=SANDBOX_CORP_ID,
        SCRM_WECOM_AGENT_ID=SANDBOX_AGENT_ID,
        SCRM_WECOM_SECRET=SANDBOX_SECRET,
        SCRM_WECOM_TOKEN=SANDBOX_TOKEN,
        SCRM_WECOM_AES_KEY=SANDBOX_AES_KEY,
        SCRM_WECOM_API_BASE=f"http://127.0.0.1:{emulator_port}/sandbox/wecom/cgi-bin/",
        SCRM_KF_OPEN_KFID=SANDBOX_KF_OPEN_KFID,
        SCRM_ADMIN_TOKEN=ADMIN_TOKEN,
        SCRM_HOST="127.0.0.1",
        SCRM_PORT=str(serve_port),
        SCRM_LOG_LEVEL="INFO",
        SCRM_LOG_FORMAT="text",
        SCRM_CONFIG_FILE=os.devnull,
        PYTHONUNBUFFERED="1",
    )
    return env


async def _admin(sql: str) -> None:
    conn = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture
def scratch_db() -> Iterator[str]:
    asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)'))
    asyncio.run(_admin(f'CREATE DATABASE "{DB_NAME}"'))
    try:
        yield DB_NAME
    finally:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)'))


def cli(env: dict[str, str], *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "run.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


async def fetch(method: str, url: str, **kw: object) -> tuple[int, object]:
    """One request on a connection of its own, so the kernel hands it to either server process."""
    connector = aiohttp.TCPConnector(force_close=True)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=20)) as session:
        async with session.request(method, url, **kw) as resp:  # type: ignore[arg-type]
            body = await resp.read()
            try:
                return resp.status, await resp.json(content_type=None)
            except ValueError:
                return resp.status, body.decode("utf-8", "replace")


async def wait_until(what: str, check, within: float, procs: Processes) -> object:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + within
    while True:
        procs.check_alive()
        with contextlib.suppress(aiohttp.ClientError, OSError, asyncio.TimeoutError):
            value = await check()
            if value:
                return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within:.0f} s waiting for {what}")
        await asyncio.sleep(0.2)


def callbacks_per_process(metrics_dir: Path, pids: list[int]) -> dict[int, tuple[float, float]]:
    """(stored, duplicate) per server process, from its own prometheus_client multiprocess file."""
    import shutil
    import tempfile

    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.multiprocess import MultiProcessCollector

    out = {}
    for pid in pids:
        file = metrics_dir / f"counter_{pid}.db"
        if not file.exists():
            continue
        with tempfile.TemporaryDirectory() as one:
            shutil.copy(file, one)
            registry = CollectorRegistry()
            MultiProcessCollector(registry, path=one)
            out[pid] = callback_counts(generate_latest(registry).decode())
    return out


def callback_counts(metrics_text: str) -> tuple[float, float]:
    """(stored, duplicate) kf/WeCom callbacks one server process has counted."""
    values = {"stored": 0.0, "duplicate": 0.0}
    for line in metrics_text.splitlines():
        m = re.match(r'scrm_callbacks_total\{channel="wecom",outcome="(stored|duplicate)"\} ([0-9.e+]+)', line)
        if m:
            values[m.group(1)] = float(m.group(2))
    return values["stored"], values["duplicate"]


async def db_facts() -> dict[str, int]:
    conn = await asyncpg.connect(f"postgresql://postgres@127.0.0.1:5432/{DB_NAME}")
    try:
        q = conn.fetchval
        return {
            "kf_notices": await q("SELECT count(*) FROM inbound_events WHERE kind = 'kf_msg_or_event'"),
            "customer_texts": await q("SELECT count(*) FROM inbound_events WHERE kind = 'kf.customer.text'"),
            "outbound": await q("SELECT count(*) FROM outbound_messages"),
            "oversold": await q("SELECT count(*) FROM stock_levels WHERE allocated > on_hand"),
            "on_hand": await q(
                "SELECT coalesce(sum(s.on_hand), 0) FROM stock_levels s JOIN products p ON p.id = s.product_id WHERE p.sku = 'SCARCE-1'"
            ),
            "allocated": await q(
                "SELECT coalesce(sum(s.allocated), 0) FROM stock_levels s JOIN products p ON p.id = s.product_id WHERE p.sku = 'SCARCE-1'"
            ),
            "line_allocated": await q(
                "SELECT coalesce(sum(l.allocated_qty), 0) FROM order_lines l JOIN products p ON p.id = l.product_id "
                "WHERE p.sku = 'SCARCE-1'"
            ),
            "confirmed": await q("SELECT count(*) FROM orders WHERE status = 'confirmed'"),
        }
    finally:
        await conn.close()


def test_two_servers_two_workers_one_database(scratch_db: str, redis_url: str, tmp_path: Path) -> None:
    began = time.monotonic()
    serve_port, emulator_port = free_port(), free_port()
    env = product_env(redis_url, serve_port, emulator_port)
    base = f"http://127.0.0.1:{serve_port}"
    emulator = f"http://127.0.0.1:{emulator_port}"

    migrated = cli(env, "migrate")
    assert migrated.returncode == 0, migrated.stderr
    catalog = tmp_path / "catalog.csv"
    catalog.write_text("sku,name,aliases,unit,price_fen,stock\nSCARCE-1,限量礼盒,礼盒,盒,9900,20\n", encoding="utf-8")
    imported = cli(env, "catalog", "import", str(catalog))
    assert imported.returncode == 0, imported.stdout + imported.stderr

    procs = Processes(tmp_path)
    try:
        procs.start(
            "emulator", [sys.executable, "-m", "tests.scaleout.emulator_server", str(emulator_port), f"{base}/callback/wecom", "3"], env
        )
        serve_env = env | {"PROMETHEUS_MULTIPROC_DIR": str(procs.metrics_dir)}
        procs.start("serve", [sys.executable, "run.py", "serve", "--workers", "2"], serve_env)
        procs.start("worker-a", [sys.executable, "run.py", "worker"], env)
        procs.start("worker-b", [sys.executable, "run.py", "worker"], env)
        asyncio.run(scenario(procs, base, emulator, began))
        reconciled = cli(env, "stock", "reconcile")
        assert reconciled.returncode == 0, reconciled.stdout + reconciled.stderr
        check_crons_ran_once(procs)
    finally:
        codes = procs.stop_all()
    # Graceful shutdown: the supervisor forwards SIGTERM and exits 0 once its servers have stopped.
    assert codes["serve"] == 0, procs.log("serve")[-3000:]
    assert codes["worker-a"] == codes["worker-b"] == 0, (codes, procs.log("worker-a")[-2000:])
    assert time.monotonic() - began < 90


async def scenario(procs: Processes, base: str, emulator: str, began: float) -> None:
    async def ready() -> bool:
        status, _ = await fetch("GET", f"{base}/readyz")
        status_e, _ = await fetch("GET", f"{emulator}/deliveries")
        workers_up = all("Starting worker" in procs.log(n) for n in ("worker-a", "worker-b"))
        return status == 200 and status_e == 200 and workers_up

    await wait_until("the servers, the workers and the emulator", ready, 45, procs)
    servers = children_of(procs.procs["serve"].pid)
    assert len(servers) == 2, f"serve --workers 2 runs {servers}"

    # ---- 1. each callback delivered 3 times at once → once ------------------------------------------------
    async def say(ext: str) -> None:
        status, body = await fetch("POST", f"{emulator}/sandbox/api/kf/customer-message", json={"external_userid": ext, "text": "帮助"})
        assert status == 200 and isinstance(body, dict) and body["delivered"], body

    await asyncio.gather(*(say(ext) for ext in CUSTOMERS))

    async def replies(ext: str) -> list[str]:
        status, body = await fetch("GET", f"{emulator}/sandbox/api/kf/conversation", params={"external_userid": ext})
        assert status == 200 and isinstance(body, dict)
        return [m["text"] for m in body["messages"] if m["origin"] == 5]

    async def everyone_answered() -> bool:
        return all(await asyncio.gather(*(replies(ext) for ext in CUSTOMERS)))

    await wait_until("a reply to every customer", everyone_answered, 30, procs)
    await asyncio.sleep(1.5)  # a duplicate reply would show up by now (jobs are polled every 50 ms)
    counts = {ext: len(await replies(ext)) for ext in CUSTOMERS}
    assert counts == dict.fromkeys(CUSTOMERS, 1), counts
    _, deliveries = await fetch("GET", f"{emulator}/deliveries")
    assert isinstance(deliveries, dict) and deliveries["statuses"] == [200] * 3 * len(CUSTOMERS), deliveries["statuses"]
    facts = await db_facts()
    assert (facts["kf_notices"], facts["customer_texts"], facts["outbound"]) == (len(CUSTOMERS),) * 3, facts

    # /metrics combines both server processes, whichever answers; their files show each took its share.
    total = 3 * len(CUSTOMERS)
    for _ in range(6):
        status, text = await fetch("GET", f"{base}/metrics")
        assert status == 200 and isinstance(text, str)
        assert callback_counts(text) == (len(CUSTOMERS), total - len(CUSTOMERS)), callback_counts(text)
    per_process = callbacks_per_process(procs.metrics_dir, servers)
    assert len(per_process) == 2 and all(s + d > 0 for s, d in per_process.values()), f"callbacks per server process: {per_process}"
    assert sum(s + d for s, d in per_process.values()) == total, per_process

    # ---- 2. orders and confirmations racing for 20 units, through both processes -----------------------
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    rnd = random.Random(8)
    plans = [(CUSTOMERS[i % len(CUSTOMERS)], rnd.randint(1, 3), i % 2 == 0) for i in range(40)]
    successes = 0

    async def place(ext: str, qty: int, confirm_now: bool) -> int:
        body = {"customer": ext, "lines": [{"sku": "SCARCE-1", "qty": qty}], "confirm": confirm_now}
        status, order = await fetch("POST", f"{base}/api/v1/orders", json=body, headers=headers)
        assert status == 201 and isinstance(order, dict), (status, order)
        if confirm_now:
            return int(order["status"] == "confirmed")
        status, order = await fetch("POST", f"{base}/api/v1/orders/{order['number']}/confirm", headers=headers)
        assert status == 200 and isinstance(order, dict), (status, order)
        return int(order["status"] == "confirmed")

    successes = sum(await asyncio.gather(*(place(*p) for p in plans)))
    facts = await db_facts()
    requested = sum(q for _, q, _ in plans)
    assert facts["oversold"] == 0, facts
    assert facts["allocated"] == facts["line_allocated"] == min(requested, SCARCE_STOCK) <= facts["on_hand"] == SCARCE_STOCK, facts
    assert facts["confirmed"] == successes == len(plans), (facts, successes)
    status, product = await fetch("GET", f"{base}/api/v1/products/SCARCE-1", headers=headers)
    assert status == 200 and isinstance(product, dict) and product["allocated"] <= product["on_hand"], product

    # ---- 3. a cron tick after both workers were up (one every 15 s: the minute crons at :00 :15 :30 :45) ---
    both_up = time.time()

    async def tick_after_both_up() -> bool:
        return any(at > both_up for at, _ in cron_starts(procs))

    await wait_until("a cron tick run by one of the workers", tick_after_both_up, max(5.0, 85 - (time.monotonic() - began)), procs)


def cron_starts(procs: Processes) -> list[tuple[float, str]]:
    """(start time, cron name) of every cron job either worker started."""
    return [
        (dt.datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S").timestamp(), name)
        for worker in ("worker-a", "worker-b")
        for stamp, name in CRON_START.findall(procs.log(worker))
    ]


def children_of(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def check_crons_ran_once(procs: Processes) -> None:
    """Every cron here runs at most once a minute: two starts of one cron less than 30 s apart are one tick run twice."""
    starts = sorted(cron_starts(procs))
    assert starts, "no cron tick ran"
    last: dict[str, float] = {}
    for at, name in starts:
        assert at - last.get(name, -1e9) > 30, f"cron {name} started twice for one tick: {[s for s in starts if s[1] == name]}"
        last[name] = at
    jobs = {worker: procs.log(worker).count(" → ") for worker in ("worker-a", "worker-b")}
    assert all(jobs.values()), f"jobs per worker: {jobs} — one worker did nothing"
