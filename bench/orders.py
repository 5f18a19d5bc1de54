"""Order placement under contention: the real ``fulfillment.orders.services.create_order(..., confirm=True)``.

``python -m bench.orders [--seconds 10] [--tasks 64] [--skus 100]``

A catalog of ``--skus`` products with ``--stock`` units each (so stock runs out during the run and later orders
are backordered) and ``--customers`` customers are created first. Then ``--tasks`` asyncio tasks in this process
place orders of 1–3 random SKUs (quantity 1–3 each) through the real service on a Runtime from
``scrm.app.runtime.build_runtime`` (in-process job queue, not started: nothing consumes jobs) for ``--seconds``.

Runs on PostgreSQL (database ``scrm_bench_orders``: created, migrated, dropped) and then on SQLite (a temporary
file, ``--sqlite-tasks`` tasks) for comparison. After each run the stock invariants are checked: no
``stock_levels`` row has allocated > on_hand, the order lines' allocated quantities sum per product to
``stock_levels.allocated``, and ``inventory.reconcile`` finds no drift between counters and ledger.

On PostgreSQL the run first measures the raw ceiling (:func:`raw_ceiling`: a bare conditional stock UPDATE per
order with asyncpg, same tasks, as many connections as the app's pool) and the database backends' CPU; the targets
are orders/s ≥ RAW_SHARE × that rate and ≤ CPU_MS_PER_ORDER client CPU per order.
Results are printed as Markdown and written to ``docs/BENCHMARKS.md`` between ``<!-- bench:orders -->`` markers.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import resource
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
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
    percentile,
    pg_version,
    publish,
)
from bench.verdict import Report, at_least, at_most, check

DB_NAME = "scrm_bench_orders"


@dataclass
class RunResult:
    backend: str
    tasks: int
    seconds: float = 0.0
    orders: int = 0
    lines: int = 0
    backordered_lines: int = 0
    ordered_units: int = 0
    allocated_units: int = 0
    first_backorder_at: float | None = None  # seconds into the run when stock first ran short
    latencies: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    statements: int = 0  # SQL statements sent during the run (all orders)
    connects: int = 0  # connections the app's pool opened during the run (overflow ones are closed again on return)
    process_cpu: float = 0.0  # cores used by this process during the run
    machine_busy: float = 0.0  # fraction of all cores busy
    checks: dict[str, str] = field(default_factory=dict)
    ok: bool = False
    raw: RawCeiling | None = None  # PostgreSQL: the bare conditional UPDATE measured in the same run
    db_cpu_s: float = 0.0  # PostgreSQL: CPU of the database's backends during the run (database_cpu_seconds)

    @property
    def db_cpu_ms(self) -> float:
        return self.db_cpu_s / self.orders * 1000 if self.orders else float("nan")

    @property
    def of_raw(self) -> float:
        """Orders/s as a fraction of the raw conditional UPDATE's rate (NaN without one)."""
        return self.rate / self.raw.rate if self.raw and self.raw.rate else float("nan")

    @property
    def rate(self) -> float:
        return self.orders / self.seconds if self.seconds else 0.0

    @property
    def per_order(self) -> tuple[float, float]:
        """(SQL statements, client CPU ms) per successful order."""
        if not self.orders:
            return float("nan"), float("nan")
        return self.statements / self.orders, self.process_cpu * self.seconds / self.orders * 1000


@dataclass
class RawCeiling:
    """The database's ceiling for the one thing placement cannot avoid: a conditional stock UPDATE per order, sent
    bare with asyncpg (prepared, autocommit) by the same number of tasks over as many connections as the app's pool."""

    tasks: int
    connections: int
    seconds: float = 0.0
    updates: int = 0
    refused: int = 0  # rowcount 0: not enough left (never, with the stock given)
    process_cpu_s: float = 0.0
    db_cpu_s: float = 0.0  # the database's backends (database_cpu_seconds) during the run

    @property
    def rate(self) -> float:
        return self.updates / self.seconds if self.seconds else 0.0

    @property
    def db_cpu_ms(self) -> float:
        return self.db_cpu_s / self.updates * 1000 if self.updates else float("nan")

    @property
    def cpu_ms(self) -> float:
        return self.process_cpu_s / self.updates * 1000 if self.updates else float("nan")


def database_cpu_seconds(database_url: str) -> float:
    """CPU time (user + system) so far of the PostgreSQL backends serving the URL's database (their command line
    names it: ``postgres: postgres scrm_bench_orders_123 127.0.0.1(…) idle``). The WAL writer and other shared
    server processes are not included; nor is a backend that already exited."""
    needle = f" {database_url.rsplit('/', 1)[-1]} ".encode()
    ticks = 0
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes()
            if not cmd.startswith(b"postgres:") or needle not in cmd:
                continue
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
        except (OSError, IndexError, ValueError):
            continue
    return ticks / os.sysconf("SC_CLK_TCK")


RAW_TABLE = "bench_raw_stock"
RAW_UPDATE = f"UPDATE {RAW_TABLE} SET available = available - $1 WHERE sku = $2 AND available >= $1"


async def raw_ceiling(database_url: str, skus: list[str], tasks: int, connections: int, seconds: float, seed_value: int) -> RawCeiling:
    """Conditional UPDATEs on a stock table of the same SKUs (its own table, so the orders' stock is untouched)."""
    import asyncpg

    dsn = database_url.replace("postgresql+asyncpg://", "postgresql://")
    result = RawCeiling(tasks=tasks, connections=connections)
    conns = [await asyncpg.connect(dsn) for _ in range(connections)]
    try:
        await conns[0].execute(f"CREATE TABLE {RAW_TABLE} (sku text PRIMARY KEY, available bigint NOT NULL CHECK (available >= 0))")
        await conns[0].executemany(f"INSERT INTO {RAW_TABLE} VALUES ($1, $2)", [(sku, 10**12) for sku in skus])
        idle: asyncio.Queue[Any] = asyncio.Queue()
        for c in conns:
            idle.put_nowait(c)
        deadline = time.perf_counter() + seconds

        async def worker(k: int) -> None:
            rnd = random.Random(seed_value * 10_000 + k)
            while time.perf_counter() < deadline:
                qty, sku = rnd.randint(1, 3), rnd.choice(skus)
                conn = await idle.get()
                try:
                    status = await conn.execute(RAW_UPDATE, qty, sku)
                finally:
                    idle.put_nowait(conn)
                if status == "UPDATE 1":
                    result.updates += 1
                else:
                    result.refused += 1

        usage0 = resource.getrusage(resource.RUSAGE_SELF)
        db0 = database_cpu_seconds(database_url)
        start = time.perf_counter()
        await asyncio.wait_for(asyncio.gather(*(worker(k) for k in range(tasks))), seconds + 60)
        result.seconds = time.perf_counter() - start
        usage1 = resource.getrusage(resource.RUSAGE_SELF)
        result.db_cpu_s = database_cpu_seconds(database_url) - db0
        result.process_cpu_s = usage1.ru_utime + usage1.ru_stime - usage0.ru_utime - usage0.ru_stime
        await conns[0].execute(f"DROP TABLE {RAW_TABLE}")
    finally:
        for c in conns:
            await c.close()
    return result


def bench_settings(database_url: str) -> Any:
    from config import load_settings

    env = {"SCRM_DATABASE_URL": database_url, "SCRM_SANDBOX": "1", "SCRM_LOG_LEVEL": "WARNING", "SCRM_LOG_FORMAT": "text"}
    return load_settings(env, config_file=os.devnull)


async def seed(rt: Any, skus: int, stock: int, customers: int) -> tuple[list[str], list[int]]:
    """The catalog (through the real CSV import path) and the customers."""
    from fulfillment.catalog.services import CatalogRow, import_rows
    from scrm.crm.customers.services import ensure_customer

    rows = [
        CatalogRow(line=i + 2, sku=f"BENCH-{i:04d}", name=f"压测商品{i:04d}", aliases=(), unit="箱", price_fen=1000 + 10 * i, stock=stock)
        for i in range(skus)
    ]
    now = rt.clock.now()
    async with rt.db.write() as conn:
        report = await import_rows(conn, rt.db.dialect, rows, now)
    if report.errors:
        raise RuntimeError(f"catalog import failed: {report.errors[:3]}")
    ids: list[int] = []
    async with rt.db.write() as conn:
        for i in range(customers):
            ids.append(await ensure_customer(conn, rt.db.dialect, kind="external_userid", value=f"wmBenchCustomer{i:05d}", now=now))
    return [r.sku for r in rows], ids


async def place_orders(rt: Any, result: RunResult, skus: list[str], customer_ids: list[int], seconds: float, seed_value: int) -> None:
    from sqlalchemy import event

    from fulfillment.orders.services import create_order

    def count_statement(*_args: Any) -> None:
        result.statements += 1

    # Statements sent with the driver itself (one-statement placement) pass no SQLAlchemy event: a query logger
    # on each asyncpg connection counts them. SQLAlchemy's own go through asyncpg prepared statements, which the
    # logger does not see, so nothing is counted twice; its BEGIN/COMMIT and pool pings are left out, as above.
    logged: list[Any] = []

    def count_driver_query(query: Any) -> None:
        text = query.query.lstrip().upper()
        if text and text != ";" and not text.startswith(("BEGIN", "COMMIT", "ROLLBACK")):
            result.statements += 1

    def on_checkout(dbapi_conn: Any, *_args: Any) -> None:
        driver = getattr(dbapi_conn, "driver_connection", None)
        if driver is not None and hasattr(driver, "add_query_logger") and all(d is not driver for d in logged):
            driver.add_query_logger(count_driver_query)
            logged.append(driver)

    def count_connect(*_args: Any) -> None:
        result.connects += 1

    if rt.db.dialect == "postgresql":  # open the pool's connections first, as a server that has been up a while has
        held = [await rt.db.engine.connect() for _ in range(rt.db.engine.pool.size())]  # type: ignore[attr-defined]
        for conn in held:
            await conn.close()
    event.listen(rt.db.engine.sync_engine, "before_cursor_execute", count_statement)
    event.listen(rt.db.engine.sync_engine, "checkout", on_checkout)
    event.listen(rt.db.engine.sync_engine, "connect", count_connect)
    start = time.perf_counter()
    deadline = start + seconds

    async def worker(k: int) -> None:
        rnd = random.Random(seed_value * 10_000 + k)
        while time.perf_counter() < deadline:
            items = [(sku, rnd.randint(1, 3)) for sku in rnd.sample(skus, rnd.randint(1, 3))]
            t0 = time.perf_counter()
            try:
                view = await create_order(
                    rt, customer_id=rnd.choice(customer_ids), items=items, source="api", channel="bench", actor="bench", confirm=True
                )
            except Exception as exc:  # counted and reported; the run goes on
                result.errors[type(exc).__name__] += 1
                continue
            t1 = time.perf_counter()
            result.latencies.append(t1 - t0)
            result.orders += 1
            result.lines += len(view.lines)
            short = [ln for ln in view.lines if ln.backordered_qty > 0]
            result.backordered_lines += len(short)
            if short and result.first_backorder_at is None:
                result.first_backorder_at = t1 - start
            result.ordered_units += sum(ln.qty for ln in view.lines)
            result.allocated_units += sum(ln.allocated_qty for ln in view.lines)

    usage0 = resource.getrusage(resource.RUSAGE_SELF)
    busy0, total0 = machine_cpu_ticks()
    db0 = database_cpu_seconds(rt.db.url) if rt.db.dialect == "postgresql" else 0.0
    workers = [asyncio.create_task(worker(k)) for k in range(result.tasks)]
    try:
        # Tasks stop by themselves at the deadline; the extra minute only guards against a stuck database.
        await asyncio.wait_for(asyncio.gather(*workers), seconds + 60)
    except TimeoutError:
        result.errors["HardTimeout(run)"] += 1
    elapsed = time.perf_counter() - start
    usage1 = resource.getrusage(resource.RUSAGE_SELF)
    busy1, total1 = machine_cpu_ticks()
    if rt.db.dialect == "postgresql":
        result.db_cpu_s = database_cpu_seconds(rt.db.url) - db0
    result.seconds = elapsed
    result.process_cpu = (usage1.ru_utime + usage1.ru_stime - usage0.ru_utime - usage0.ru_stime) / elapsed
    result.machine_busy = (busy1 - busy0) / (total1 - total0) if total1 > total0 else float("nan")
    result.latencies.sort()
    event.remove(rt.db.engine.sync_engine, "before_cursor_execute", count_statement)
    event.remove(rt.db.engine.sync_engine, "checkout", on_checkout)
    event.remove(rt.db.engine.sync_engine, "connect", count_connect)
    for driver in logged:
        driver.remove_query_logger(count_driver_query)


async def verify(rt: Any, result: RunResult) -> None:
    """The oversell check and the ledger reconciliation, straight from the tables."""
    import sqlalchemy as sa

    from fulfillment.inventory.models import stock_levels
    from fulfillment.inventory.services import reconcile
    from fulfillment.orders.models import order_lines, orders

    async with rt.db.read() as conn:
        oversold = int(
            (
                await conn.execute(
                    sa.select(sa.func.count()).select_from(stock_levels).where(stock_levels.c.allocated > stock_levels.c.on_hand)
                )
            ).scalar_one()
        )
        by_lines = {
            int(p): int(q or 0)
            for p, q in await conn.execute(
                sa.select(order_lines.c.product_id, sa.func.sum(order_lines.c.allocated_qty)).group_by(order_lines.c.product_id)
            )
        }
        by_levels = {
            int(p): int(q or 0)
            for p, q in await conn.execute(
                sa.select(stock_levels.c.product_id, sa.func.sum(stock_levels.c.allocated)).group_by(stock_levels.c.product_id)
            )
        }
        on_hand = int((await conn.execute(sa.select(sa.func.coalesce(sa.func.sum(stock_levels.c.on_hand), 0)))).scalar_one())
        confirmed = int(
            (await conn.execute(sa.select(sa.func.count()).select_from(orders).where(orders.c.status == "confirmed"))).scalar_one()
        )
        drifts = await reconcile(conn)
    products = set(by_lines) | set(by_levels)
    mismatched = [p for p in products if by_lines.get(p, 0) != by_levels.get(p, 0)]
    allocated = sum(by_levels.values())
    result.checks = {
        "allocated ≤ on_hand": "OK" if oversold == 0 else f"FAILED on {oversold} row(s)",
        "Σ line allocations = stock_levels.allocated": ("OK" if not mismatched else f"FAILED for {len(mismatched)} product(s)"),
        "reconcile (counters = ledger)": "OK" if not drifts else f"FAILED: {len(drifts)} drift(s)",
        "confirmed orders = successful calls": ("OK" if confirmed == result.orders else f"FAILED: {confirmed} in DB vs {result.orders}"),
        "allocated units (DB = client tally)": (
            f"{allocated:,} of {on_hand:,} on hand"
            + ("" if allocated == result.allocated_units else f" — FAILED: client saw {result.allocated_units:,}")
        ),
    }
    result.ok = oversold == 0 and not mismatched and not drifts and confirmed == result.orders and allocated == result.allocated_units


async def run_backend(backend: str, database_url: str, args: argparse.Namespace, tasks: int) -> RunResult:
    from scrm.app.runtime import build_runtime

    rt = await build_runtime(bench_settings(database_url))
    result = RunResult(backend=backend, tasks=tasks)
    try:
        skus, customers = await seed(rt, args.skus, args.stock, args.customers)
        if backend == "PostgreSQL" and args.raw_seconds > 0:
            connections = rt.db.engine.pool.size() + rt.db.engine.pool._max_overflow  # type: ignore[attr-defined]  # as many as the app's pool
            print(f"  raw ceiling: conditional UPDATE, {tasks} tasks on {connections} connections for {args.raw_seconds:g} s …", flush=True)
            result.raw = await raw_ceiling(database_url, skus, tasks, connections, args.raw_seconds, args.seed)
        await place_orders(rt, result, skus, customers, args.seconds, args.seed)
        await verify(rt, result)
    finally:
        await rt.close()
    return result


async def sqlite_database(path: Path) -> str:
    from scrm.core import migrate
    from scrm.core.db import Database

    url = f"sqlite+aiosqlite:///{path}"
    db = Database(url)
    try:
        await migrate.upgrade(db)
    finally:
        await db.dispose()
    return url


def render(results: list[RunResult], argv: list[str], args: argparse.Namespace, extra: dict[str, str], wall: float) -> str:
    lines = [
        "## Orders",
        "",
        generated_line(argv),
        "",
        *machine_lines(extra),
        "",
        f"Workload: {args.skus} SKUs × {args.stock} units, {args.customers} customers; each task loops "
        "`create_order(..., confirm=True)` with 1–3 random SKUs × qty 1–3 "
        f"for {args.seconds:g} s.",
        "",
        "| backend | tasks | orders/s | p50 ms | p99 ms | orders | lines | backordered lines | stock short after "
        "| errors | SQL stmts / order | client CPU ms / order | process CPU | machine busy | no oversell |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in results:
        short = f"{r.first_backorder_at:.1f} s" if r.first_backorder_at is not None else "never"
        errors = sum(r.errors.values())
        stmts, cpu_ms = r.per_order
        lines.append(
            f"| {r.backend} | {r.tasks} | {fmt_rate(r.rate)} | {fmt_ms(percentile(r.latencies, 50))} "
            f"| {fmt_ms(percentile(r.latencies, 99))} | {r.orders:,} | {r.lines:,} | {r.backordered_lines:,} "
            f"| {short} | {errors} | {stmts:.1f} | {cpu_ms:.1f} | {r.process_cpu * 100:.0f} % "
            f"| {r.machine_busy * 100:.0f} % | {'✔' if r.ok else '✘'} |"
        )
    for r in results:
        if r.raw is not None:
            raw = r.raw
            lines += [
                "",
                f"Raw ceiling ({r.backend}, same run, just before the orders): `{RAW_UPDATE}` with asyncpg, prepared, "
                f"autocommit, {raw.tasks} tasks over {raw.connections} connections for {raw.seconds:.1f} s: "
                f"**{fmt_rate(raw.rate)} updates/s** ({raw.refused} refused), client CPU {raw.cpu_ms:.3f} ms and "
                f"database CPU {raw.db_cpu_ms:.3f} ms per update. Orders: **{r.of_raw:.2f}×** the raw rate; "
                f"database CPU {r.db_cpu_ms:.2f} ms per order ({r.db_cpu_ms / raw.db_cpu_ms:.1f}× an update's).",
            ]
    lines += ["", "Invariant checks after each run:", ""]
    for r in results:
        detail = "; ".join(f"{k}: {v}" for k, v in r.checks.items())
        lines.append(f"- {r.backend}: {detail}")
        if r.errors:
            lines.append(f"  - errors by type: {dict(r.errors)}")
        if r.backend == "PostgreSQL":
            lines.append(f"  - connections the app's pool opened during the run: {r.connects}")
    lines += [
        "",
        "Notes:",
        "",
        "- Latency is per `create_order(confirm=True)` call as the caller sees it. On PostgreSQL a customer with "
        "no credit limit and no coupon is placed by group placement (`fulfillment/orders/placement.py`: the orders "
        "arriving while earlier ones are in the database share one statement and one commit — order, stock locks "
        "and allocation, ledger, lines, history, outbox — each order still all-or-nothing), plus a low-stock check "
        "in a transaction of its own when a product ran short and was not alerted today; SQLite takes the general "
        "path (one transaction, about ten statements).",
        "- Process CPU is % of one core used by the benchmark process (the service's Python code: SQLAlchemy "
        "Core + driver); machine busy is % of all cores (the database included). SQL statements are counted "
        "at the driver (BEGIN/COMMIT and pool pings not included), failed attempts included. Database CPU "
        "(PostgreSQL) is the scratch database's backends only, read from /proc: the WAL writer and other shared "
        "server processes are not in it.",
        "- PostgreSQL: the app's engine pool (20 connections, opened before the run) is shared by all tasks. SQLite "
        "serialises writers (`BEGIN IMMEDIATE`), so its tasks queue on the write lock.",
        f"- Total wall time {wall:.0f} s.",
    ]
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.orders", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each run (10)")
    parser.add_argument("--tasks", type=int, default=64, help="concurrent tasks on PostgreSQL (64)")
    parser.add_argument("--sqlite-tasks", type=int, default=64, help="concurrent tasks on SQLite (64)")
    parser.add_argument("--skus", type=int, default=100, help="products in the catalog (100)")
    parser.add_argument("--stock", type=int, default=20, help="units on hand per product at start (20)")
    parser.add_argument("--customers", type=int, default=500, help="customers created first (500)")
    parser.add_argument("--backends", default="postgresql,sqlite", help="postgresql,sqlite (both)")
    parser.add_argument("--seed", type=int, default=1, help="random seed (1)")
    parser.add_argument("--raw-seconds", type=float, default=None, help="raw UPDATE run on PostgreSQL, s (min(5, --seconds); 0 = skip)")
    add_run_options(parser)
    args = parser.parse_args(argv)
    args.backend_list = [b.strip() for b in str(args.backends).split(",") if b.strip()]
    if args.raw_seconds is None:
        args.raw_seconds = min(5.0, args.seconds)
    if not args.backend_list or any(b not in ("postgresql", "sqlite") for b in args.backend_list):
        parser.error("--backends: a subset of postgresql,sqlite")
    if not 0 < args.seconds <= 600 or not 1 <= args.tasks <= 1024 or not 1 <= args.sqlite_tasks <= 1024:
        parser.error("--seconds 0..600, --tasks and --sqlite-tasks 1..1024")
    if args.skus < 3 or args.stock < 0 or args.customers < 1:
        parser.error("--skus ≥ 3, --stock ≥ 0, --customers ≥ 1")
    if not args.hard_timeout:
        args.hard_timeout = 120 + args.raw_seconds + len(args.backend_list) * (args.seconds + 90)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    shown = command_line("bench.orders", argv)
    results: list[RunResult] = []
    extra: dict[str, str] = {}
    began = time.monotonic()
    scratch = ScratchDatabases()

    def run() -> None:
        from scrm.core.logs import setup_logging

        setup_logging("WARNING", "text")
        extra["machine busy before start"] = background_line(background_busy())
        for backend in args.backend_list:
            if backend == "postgresql":
                print(f"creating and migrating PostgreSQL database {DB_NAME} …", flush=True)
                url = scratch.create(DB_NAME)
                extra["postgresql"] = asyncio.run(pg_version())
                tasks = args.tasks
                print(f"placing orders on PostgreSQL with {tasks} tasks for {args.seconds:g} s …", flush=True)
                results.append(asyncio.run(run_backend("PostgreSQL", url, args, tasks)))
                scratch.drop(DB_NAME)
            else:
                import sqlite3

                extra["sqlite"] = sqlite3.sqlite_version
                with tempfile.TemporaryDirectory(prefix="scrm_bench_orders_") as tmp:
                    url = asyncio.run(sqlite_database(Path(tmp) / "bench.db"))
                    tasks = args.sqlite_tasks
                    print(f"placing orders on SQLite with {tasks} tasks for {args.seconds:g} s …", flush=True)
                    results.append(asyncio.run(run_backend("SQLite", url, args, tasks)))
            r = results[-1]
            print(
                f"  {fmt_rate(r.rate)} orders/s, p50 {fmt_ms(percentile(r.latencies, 50))} ms, "
                f"p99 {fmt_ms(percentile(r.latencies, 99))} ms, {r.backordered_lines} backordered lines, "
                f"errors {dict(r.errors)}, checks {'OK' if r.ok else r.checks}",
                flush=True,
            )

    code, _ = guarded(run, hard_timeout=args.hard_timeout, cleanup=[scratch.drop_all])
    if code is not None:
        return code
    return publish("orders", render(results, shown, args, extra, time.monotonic() - began), report_of(results),
                   write=not args.no_write and bool(results), results=args.results)  # fmt: skip


RAW_SHARE = 0.25  # PostgreSQL orders/s ≥ this × the raw conditional UPDATE's rate in the same run (issue 21)
CPU_MS_PER_ORDER = 1.0  # PostgreSQL: client CPU per order (SQLite serialises writers; its path is not the hot one)


def report_of(results: list[RunResult]) -> Report:
    """Each backend's run: every check held (no oversell, counters = ledger, confirmed = successful calls …);
    on PostgreSQL the targets: ≥ RAW_SHARE × the raw conditional UPDATE, ≤ CPU_MS_PER_ORDER client CPU per order."""
    report = Report("orders")
    for r in results:
        failed = [f"{name}: {value}" for name, value in r.checks.items() if "FAILED" in value]
        report.add(check(f"{r.backend}: stock and order invariants", r.ok, "; ".join(failed) or f"{len(r.checks)} invariants hold"))
        if r.backend == "PostgreSQL":
            if r.raw is not None:
                report.add(at_least(f"{r.backend}: orders/s vs raw conditional UPDATE (same run)", r.of_raw, RAW_SHARE, "×"))
            report.add(at_most(f"{r.backend}: client CPU per order", r.per_order[1], CPU_MS_PER_ORDER, " ms"))
    report.headline = "; ".join(f"{r.backend} {fmt_rate(r.rate)} orders/s (p99 {fmt_ms(percentile(r.latencies, 99))} ms)" for r in results)
    report.figures = {
        r.backend: {
            "orders_per_s": r.rate,
            "p99_s": percentile(r.latencies, 99),
            "ok": r.ok,
            "statements_per_order": r.per_order[0],
            "client_cpu_ms_per_order": r.per_order[1],
            "raw_updates_per_s": r.raw.rate if r.raw else None,
            "of_raw": None if r.raw is None else r.of_raw,
            "db_cpu_ms_per_order": r.db_cpu_ms if r.backend == "PostgreSQL" else None,
            "raw_db_cpu_ms_per_update": r.raw.db_cpu_ms if r.raw else None,
        }
        for r in results
    }
    return report


if __name__ == "__main__":
    raise SystemExit(main())
