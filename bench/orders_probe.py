"""Where PostgreSQL's time goes in confirmed order placement — the probe behind ``bench.orders``' numbers.

``python -m bench.orders_probe explain`` — EXPLAIN (ANALYZE, BUFFERS) of the placement statement (a batch of 1 and
of 16 orders) executed 7 times each as a prepared statement (rolled back), so the switch from custom to generic
plans after 5 executions shows, with the time in each FK trigger.

``python -m bench.orders_probe load [--variant NAME …]`` — the bench's workload (``bench.orders``: same catalog,
customers, tasks and seed; the real ``create_order``) for ``--seconds`` per variant, each on a fresh database, with
pg_stat_activity sampled every few ms: what the backends of the run were doing (on CPU, waiting for a row lock,
for the WAL flush, for the client …). Variants change one thing each (see ``VARIANTS``): the placement batcher's
limits, a session setting, an index or foreign key dropped in the scratch database — to measure what each costs.

Uses its own scratch database (``scrm_bench_orders_probe``); nothing is written to docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from bench.common import fmt_rate, percentile, pg_drop, pg_recreate
from bench.orders import RunResult, bench_settings, place_orders, seed, verify

DB_NAME = "scrm_bench_orders_probe"

_ALL_FKS = tuple(
    f"ALTER TABLE {table} DROP CONSTRAINT fk_{table}_{column}_{parent}"
    for table, column, parent in [
        ("order_lines", "order_id", "orders"),
        ("order_lines", "product_id", "products"),
        ("order_lines", "warehouse_id", "warehouses"),
        ("order_history", "order_id", "orders"),
        ("stock_movements", "product_id", "products"),
        ("stock_movements", "warehouse_id", "warehouses"),
    ]
)
_WAREHOUSE_FKS = _ALL_FKS[2], _ALL_FKS[5]
_REDUNDANT_INDEXES = ("DROP INDEX ix_orders_customer_id", "DROP INDEX ix_order_history_order_id")


@dataclass(frozen=True)
class Variant:
    """One change from the product as it is: batcher limits, database-level settings, DDL run after migrating."""

    max_batch: int | None = None
    max_in_flight: int | None = None
    settings: dict[str, str] = field(default_factory=dict)
    ddl: tuple[str, ...] = ()
    stock: int | None = None  # units per product instead of the bench's (e.g. never short: every order allocates)


VARIANTS: dict[str, Variant] = {
    "as-is": Variant(),
    "single": Variant(max_batch=1, max_in_flight=64),  # the same statement, one order each: no coalescing
    "batch-1x": Variant(max_in_flight=1),
    "batch-2x": Variant(max_in_flight=2),
    "batch-4x": Variant(max_in_flight=4),
    "batch-8x": Variant(max_in_flight=8),
    "batch-16": Variant(max_batch=16),
    "as-is-stocked": Variant(stock=10**9),
    "as-is-no-fk": Variant(ddl=_ALL_FKS),
    "as-is-no-wh-fk": Variant(ddl=_WAREHOUSE_FKS),
    "as-is-no-redundant-ix": Variant(ddl=_REDUNDANT_INDEXES),
    "as-is-generic": Variant(settings={"plan_cache_mode": "force_generic_plan"}),
    "as-is-custom": Variant(settings={"plan_cache_mode": "force_custom_plan"}),
}


async def sample_activity(dsn: str, datname: str, stop: asyncio.Event, seen: Counter[str], every: float = 0.005) -> None:
    """Count what each client backend of ``datname`` is doing, every ``every`` s, until ``stop``."""
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        query = (
            "SELECT state, coalesce(wait_event_type, '') AS wt, coalesce(wait_event, '') AS we, "
            "left(regexp_replace(query, '\\s+', ' ', 'g'), 48) AS q FROM pg_stat_activity "
            "WHERE datname = $1 AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
        )
        while not stop.is_set():
            for r in await conn.fetch(query, datname):
                if r["state"] == "idle":
                    seen["idle"] += 1
                elif r["wt"]:
                    seen[f"{r['state']}: {r['wt']}/{r['we']} [{r['q']}]"] += 1
                else:
                    seen[f"{r['state']}: on CPU [{r['q']}]"] += 1
            await asyncio.sleep(every)
    finally:
        await conn.close()


async def run_variant(name: str, variant: Variant, url: str, args: argparse.Namespace) -> str:
    import asyncpg

    from fulfillment.orders import placement
    from scrm.app.runtime import build_runtime

    dsn = url.replace("postgresql+asyncpg://", "postgresql://")
    datname = url.rsplit("/", 1)[-1]
    admin = await asyncpg.connect(dsn)
    try:
        for statement in variant.ddl:
            await admin.execute(statement)
        for setting, value in variant.settings.items():
            await admin.execute(f'ALTER DATABASE "{datname}" SET {setting} = {value}')
    finally:
        await admin.close()
    saved = placement.MAX_BATCH, placement.MAX_IN_FLIGHT
    placement.MAX_BATCH = variant.max_batch or saved[0]
    placement.MAX_IN_FLIGHT = variant.max_in_flight or saved[1]
    rt = await build_runtime(bench_settings(url))
    result = RunResult(backend="PostgreSQL", tasks=args.tasks)
    seen: Counter[str] = Counter()
    try:
        skus, customers = await seed(rt, args.skus, variant.stock or args.stock, args.customers)
        stop = asyncio.Event()
        sampler = asyncio.create_task(sample_activity(dsn, datname, stop, seen))
        await place_orders(rt, result, skus, customers, args.seconds, args.seed)
        stop.set()
        await sampler
        await verify(rt, result)
        batcher = rt.get(placement.PLACEMENTS) if rt.has(placement.PLACEMENTS) else None
    finally:
        await rt.close()
        placement.MAX_BATCH, placement.MAX_IN_FLIGHT = saved
    _, cpu_ms = result.per_order
    total = sum(seen.values()) or 1
    busy = {k: v for k, v in seen.items() if k != "idle"}
    busy_total = sum(busy.values()) or 1
    per_batch = f", {batcher.requests / max(batcher.batches, 1):.1f} orders/batch ({batcher.batches} batches)" if batcher else ""
    lines = [
        f"### {name}: {fmt_rate(result.rate)} orders/s, p50 {percentile(result.latencies, 50) * 1000:.1f} ms, "
        f"p99 {percentile(result.latencies, 99) * 1000:.1f} ms, client CPU {cpu_ms:.2f} ms/order, "
        f"database CPU {result.db_cpu_ms:.2f} ms/order, machine busy {result.machine_busy * 100:.0f} %, "
        f"backordered lines {result.backordered_lines}/{result.lines}, errors {dict(result.errors)}, "
        f"checks {'OK' if result.ok else result.checks}{per_batch}",
        f"backend samples: {total} ({seen['idle'] / total * 100:.0f} % idle); of the busy ones:",
    ]
    lines += [f"  {v / busy_total * 100:5.1f} %  {k}" for k, v in sorted(busy.items(), key=lambda kv: -kv[1])[:16]]
    return "\n".join(lines)


async def explain(url: str, args: argparse.Namespace) -> None:
    """EXPLAIN (ANALYZE, BUFFERS) of the prepared placement, 7 executions each (rolled back), after 3 s of the
    bench's orders so that the tables hold realistic data."""
    import asyncpg

    from fulfillment.inventory.services import DEFAULT_WAREHOUSE
    from fulfillment.orders import placement
    from fulfillment.orders.services import _fast_path_gates
    from scrm.app.runtime import build_runtime

    rt = await build_runtime(bench_settings(url))
    try:
        skus, customers = await seed(rt, args.skus, args.stock, args.customers)
        await place_orders(rt, RunResult(backend="PostgreSQL", tasks=args.tasks), skus, customers, 3.0, args.seed)
        gates = _fast_path_gates(rt)
        assert gates is not None
        warehouse_id = rt.get(DEFAULT_WAREHOUSE)
    finally:
        await rt.close()
    now = dt.datetime.now(dt.UTC)
    cases: list[tuple[str, str, list[Any]]] = []
    for size in args.explain_sizes:
        batch = [
            placement.Placement(customers[i % len(customers)], {skus[(7 * i) % len(skus)]: 2, skus[(7 * i + 3) % len(skus)]: 1},
                                "api", "bench", "", "bench", None, now)
            for i in range(size)
        ]  # fmt: skip
        params = [
            [p.customer_id for p in batch], [p.source for p in batch], [p.channel for p in batch],
            [p.salesperson_userid for p in batch], [p.actor for p in batch], [p.ref for p in batch],
            [p.now for p in batch], [now.date() for _ in batch],
            [k for k, p in enumerate(batch, 1) for _ in p.merged], [s for p in batch for s in p.merged],
            [q for p in batch for q in p.merged.values()], warehouse_id, "SO", 100000,
        ]  # fmt: skip
        cases.append((f"group placement, batch of {size}", placement.statement_for(*gates), params))
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        for n_case, (label, sql, params) in enumerate(cases):
            await conn.execute(f"PREPARE probe_{n_case} AS {sql}")
            listed = ", ".join(_literal(a) for a in params)
            for n in range(1, 8):
                tx = conn.transaction()
                await tx.start()
                t0 = time.perf_counter()
                rows = await conn.fetch(f"EXPLAIN (ANALYZE, BUFFERS, SETTINGS) EXECUTE probe_{n_case}({listed})")
                took = time.perf_counter() - t0
                await tx.rollback()
                plan = [r[0] for r in rows]
                tail = [ln.strip() for ln in plan if ln.lstrip().startswith(("Planning", "Execution", "Trigger", "JIT", "Settings"))]
                print(f"-- {label}, execution {n}: {took * 1000:.2f} ms round trip; " + "; ".join(tail), flush=True)
                if n in (1, 7) and args.plans:
                    print("\n".join(plan))
    finally:
        await conn.close()


def _literal(value: Any) -> str:
    """A parameter as a typed SQL literal for EXPLAIN EXECUTE (the probe's own values only)."""
    if isinstance(value, list):
        kinds = {type(v) for v in value if v is not None}
        kind = kinds.pop() if len(kinds) == 1 else str
        sql_type = {int: "bigint", dt.datetime: "timestamptz", dt.date: "date"}.get(kind, "text")
        return "ARRAY[" + ", ".join(_literal(v) for v in value) + f"]::{sql_type}[]"
    if value is None:
        return "NULL"
    if isinstance(value, bool | int):
        return str(value)
    if isinstance(value, dt.datetime | dt.date):
        return f"'{value.isoformat()}'"
    return "'" + str(value).replace("'", "''") + "'"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.orders_probe", description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", choices=["explain", "load"])
    parser.add_argument("--variant", action="append", default=[], choices=sorted(VARIANTS), help="load: variants to run (as-is)")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--tasks", type=int, default=64)
    parser.add_argument("--skus", type=int, default=100)
    parser.add_argument("--stock", type=int, default=20)
    parser.add_argument("--customers", type=int, default=500)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--explain-sizes", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--plans", action="store_true", help="explain: print the first and the seventh plan")
    args = parser.parse_args(argv)
    from scrm.core.logs import setup_logging

    setup_logging("WARNING", "text")
    try:
        if args.mode == "explain":
            asyncio.run(explain(asyncio.run(pg_recreate(DB_NAME)), args))
        else:
            for name in args.variant or ["as-is"]:
                url = asyncio.run(pg_recreate(DB_NAME))
                print(asyncio.run(run_variant(name, VARIANTS[name], url, args)), flush=True)
    finally:
        asyncio.run(pg_drop(DB_NAME))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
