"""Broadcast planning for a large segment: time and peak memory.

``python -m bench.broadcast [--recipients 100000] [--backends sqlite,postgresql] [--batch 1000]``

Seeds ``--recipients`` customers with a mix of channels (every customer an external_userid; 30 % a 微信客服
window — two thirds open, some with the marketing budget spent; 25 % an Official Account openid; 40 % an active
follow of one of 20 salespeople, a few with this month's task cap used by notices) into a temporary SQLite file
and/or a scratch PostgreSQL database (``scrm_bench_broadcast``: created, migrated, dropped). Then plans one
broadcast over all of them through ``scrm.campaigns.broadcasts.services.plan_broadcast`` (the real batch planner: facts
gathered set-based per batch, recipients insert-ignored, cursor advanced, ``broadcast.send`` outbox rows written)
and reports wall time and recipients/s (untraced run), then peak memory: ``tracemalloc`` peak of Python
allocations while planning a tenth of the segment and all of it again as new broadcasts (flat memory = about the
same figure), and the process's peak RSS (``resource.getrusage``).

Checked: every customer of the segment is planned (each full run plans ``--recipients``). Targets: memory is flat
in the segment's size — the tracemalloc peak of planning all of it ≤ 2 × that of planning a tenth; and, when both
backends ran, planning on PostgreSQL (production) takes no longer than on SQLite — the untraced runs' wall times in
this run, PostgreSQL / SQLite ≤ 1.0. Exit code 0 only when all hold.

The segment goes through the real segment language and its SQL (``tagging.segments``), exactly as in production:
``SEGMENT`` below. Every recipient carries the tag 会员 and an RFM row in one of the seven segments it keeps; beside
them a tenth as many non-recipients are seeded — 会员 in 一般挽留客户, or tagged 路人 only — so the query really
filters, and the bench checks that exactly ``--recipients`` customers were planned.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import random
import resource
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

from bench.common import ScratchDatabases, add_run_options, guarded, machine_lines, publish, shown_args
from bench.verdict import Report, at_most, check

PG_NAME = "scrm_bench_broadcast"
SEGMENT = "tag:会员 and not rfm:一般挽留客户"  # the recipients: every 会员 except those in 一般挽留客户
KEPT_RFM = ("重要价值客户", "重要发展客户", "重要保持客户", "重要挽留客户", "一般价值客户", "一般发展客户", "一般保持客户")


def bench_settings(database_url: str) -> Any:
    from config import load_settings

    env = {"SCRM_DATABASE_URL": database_url, "SCRM_SANDBOX": "1", "SCRM_LOG_LEVEL": "WARNING", "SCRM_LOG_FORMAT": "text"}
    return load_settings(env, config_file=os.devnull)


async def seed(rt: Any, n: int, rnd: random.Random) -> None:
    """``n`` recipients of :data:`SEGMENT` and ``n // 10`` customers it must leave out, interleaved in id order."""
    from bots.outbound.models import kf_windows
    from scrm.crm.customers.models import customer_identities, customers, follows
    from scrm.crm.tags.models import customer_tags
    from scrm.crm.tags.services import ensure_tag
    from tagging.rfm.models import customer_rfm

    now = rt.clock.now()
    kfid = rt.settings.kf_open_kfid
    async with rt.db.write() as conn:
        member = await ensure_tag(conn, rt.db.dialect, "会员", now, group="客户类型")
        passerby = await ensure_tag(conn, rt.db.dialect, "路人", now, group="客户类型")
    total = n + n // 10
    outsiders = set(rnd.sample(range(1, total + 1), total - n))
    step = 5000
    for start in range(1, total + 1, step):
        ids = range(start, min(start + step, total + 1))
        cs, idents, windows, fols, tagged, rfm = [], [], [], [], [], []
        for i in ids:
            ext = f"wmbench{i:08d}"
            cs.append({"id": i, "first_seen_at": now, "last_seen_at": now, "created_at": now, "updated_at": now, "custom_fields": {}})
            idents.append({"customer_id": i, "kind": "external_userid", "value": ext, "created_at": now})
            left_out_by_rfm = i in outsiders and rnd.random() < 0.5
            tag = passerby if i in outsiders and not left_out_by_rfm else member
            tagged.append({"customer_id": i, "tag_id": tag, "source": "manual", "evidence": {}, "applied_at": now})
            if i not in outsiders or left_out_by_rfm:
                segment = "一般挽留客户" if left_out_by_rfm else rnd.choice(KEPT_RFM)
                rfm.append({"customer_id": i, "recency_days": rnd.randint(1, 200), "frequency": rnd.randint(1, 9),
                            "monetary_fen": rnd.randint(1000, 500_000), "r": rnd.randint(1, 5), "f": rnd.randint(1, 5),
                            "m": rnd.randint(1, 5), "segment": segment, "computed_on": now.date()})  # fmt: skip
            r = rnd.random()
            if r < 0.30:
                hours = rnd.choice([1, 5, 20, 47, 60, 200])
                windows.append({"open_kfid": kfid, "external_userid": ext, "last_customer_msg_at": now - dt.timedelta(hours=hours),
                                "sent_since_customer_msg": rnd.choice([0, 0, 1, 2, 4, 5])})  # fmt: skip
            if rnd.random() < 0.25:
                idents.append({"customer_id": i, "kind": "openid", "value": f"obench{i:08d}", "created_at": now})
            if rnd.random() < 0.40:
                fols.append({"customer_id": i, "userid": f"sales{i % 20:02d}", "external_userid": ext, "status": "active",
                             "started_at": now - dt.timedelta(days=30), "updated_at": now})  # fmt: skip
        async with rt.db.write() as conn:
            await conn.execute(customers.insert(), cs)
            await conn.execute(customer_identities.insert(), idents)
            if windows:
                await conn.execute(kf_windows.insert(), windows)
            if fols:
                await conn.execute(follows.insert(), fols)
            await conn.execute(customer_tags.insert(), tagged)
            if rfm:
                await conn.execute(customer_rfm.insert(), rfm)
    if rt.db.dialect == "postgresql":
        import sqlalchemy as sa

        async with rt.db.write() as conn:
            await conn.execute(sa.text("SELECT setval('customers_id_seq', (SELECT max(id) FROM customers))"))
        # VACUUM, not only ANALYZE: a database that has been running is vacuumed, and a freshly loaded one is not —
        # the first reads of just-inserted rows set their hint bits (writing pages) and autovacuum's insert
        # threshold fires on every seeded table, both inside the timed plan unless done here.
        async with rt.db.engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(sa.text("VACUUM ANALYZE"))


async def plan_once(rt: Any, name: str, batch: int, limit_batches: int | None, *, trace: bool) -> tuple[int, float, int]:
    """Plan one broadcast; with ``trace`` under tracemalloc (≈3× slower, so the timed run is untraced)."""
    from scrm.campaigns.broadcasts import services as broadcasts

    view = await broadcasts.create_broadcast(rt, {"name": name, "segment": SEGMENT, "text": "双11 全场满100减20"})
    await broadcasts.start_broadcast(rt, view.id)
    if trace:
        tracemalloc.start()
    started = time.perf_counter()
    planned = await broadcasts.plan_broadcast(rt, view.id, batch=batch, max_batches=limit_batches)
    wall = time.perf_counter() - started
    peak = 0
    if trace:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return planned, wall, peak


async def run_backend(backend: str, url: str, n: int, batch: int) -> dict[str, Any]:
    from scrm.app.runtime import build_runtime

    rt = await build_runtime(bench_settings(url))
    try:
        t0 = time.perf_counter()
        await seed(rt, n, random.Random(7))
        seeded = time.perf_counter() - t0
        tenth = max(1, n // 10 // batch)
        timed = await plan_once(rt, "full", batch, None, trace=False)
        if timed[0] != n:  # the segment SQL picked the wrong set: the figures would be about something else
            raise SystemExit(f"{SEGMENT!r} planned {timed[0]:,} recipients, expected {n:,}")
        small = await plan_once(rt, "tenth-traced", batch, tenth, trace=True)
        full = await plan_once(rt, "full-traced", batch, None, trace=True)
        async with rt.db.read() as conn:
            import sqlalchemy as sa

            from scrm.campaigns.broadcasts.models import broadcasts as table

            totals = (await conn.execute(sa.select(table.c.totals).where(table.c.name == "full"))).scalar_one()
    finally:
        await rt.close()
    return {"backend": backend, "seed_s": seeded, "timed": timed, "small": small, "full": full, "totals": totals}


def render(results: list[dict[str, Any]], n: int, batch: int, argv: list[str]) -> str:
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    lines = [
        "## Broadcast planning",
        "",
        f"`python -m bench.broadcast {' '.join(shown_args(argv))}` — {n:,} recipients of `{SEGMENT}` (among {n + n // 10:,} customers),"
        f" batches of {batch}.",
        "",
        "| backend | recipients | plan time | recipients/s | tracemalloc peak (1/10 of segment) | tracemalloc peak (all) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        planned, wall, _ = r["timed"]
        lines.append(
            f"| {r['backend']} | {planned:,} | {wall:.1f} s | {planned / wall:,.0f} | {r['small'][2] / 2**20:.1f} MiB "
            f"({r['small'][0]:,}) | {r['full'][2] / 2**20:.1f} MiB ({r['full'][0]:,}) |"
        )
    lines += ["", f"Peak RSS of the whole process (seeding included): {rss_mb:.0f} MiB.", ""]
    for r in results:
        t = r["totals"]
        lines.append(f"- {r['backend']} plan: channels {t['channels']}, skipped {t['skipped']}; seeding took {r['seed_s']:.1f} s.")
    lines += ["", *machine_lines()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="python -m bench.broadcast", description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipients", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--backends", default="sqlite", help="sqlite,postgresql (default sqlite)")
    add_run_options(parser, hard_timeout=1800)
    args = parser.parse_args(argv)
    backends = [b for b in args.backends.split(",") if b]
    if not 1 <= args.recipients <= 2_000_000 or any(b not in ("sqlite", "postgresql") for b in backends):
        parser.error("--recipients 1..2,000,000; --backends a subset of sqlite,postgresql")
    results = []
    scratch = ScratchDatabases()

    def run() -> None:
        for backend in backends:
            print(f"{backend}: seeding {args.recipients:,} customers and planning…", flush=True)
            if backend == "postgresql":
                url = scratch.create(PG_NAME)
                results.append(asyncio.run(run_backend(backend, url, args.recipients, args.batch)))
                scratch.drop(PG_NAME)
            else:
                from bench.orders import sqlite_database

                with tempfile.TemporaryDirectory() as tmp:
                    url = asyncio.run(sqlite_database(Path(tmp) / "bench.db"))
                    results.append(asyncio.run(run_backend(backend, url, args.recipients, args.batch)))

    code, _ = guarded(run, hard_timeout=args.hard_timeout, cleanup=[scratch.drop_all])
    if code is not None:
        return code
    text = render(results, args.recipients, args.batch, argv)
    return publish("broadcast", text, report_of(results, args.recipients), write=not args.no_write, results=args.results)


FLAT_MEMORY = 2.0  # peak(all) / peak(a tenth): planning streams batches, so ten times the segment is not ten times the memory
PG_OVER_SQLITE = 1.0  # production runs on PostgreSQL: planning there must not be slower than on the embedded SQLite


def report_of(results: list[dict[str, Any]], n: int) -> Report:
    report = Report("broadcast")
    for r in results:
        planned = [r["timed"][0], r["full"][0]]
        report.add(
            check(f"{r['backend']}: every recipient planned", all(p == n for p in planned), f"{planned[0]:,} and {planned[1]:,} of {n:,}")
        )
        report.add(at_most(f"{r['backend']}: tracemalloc peak, all / a tenth", r["full"][2] / max(r["small"][2], 1), FLAT_MEMORY, "×"))
    seconds = {r["backend"]: r["timed"][1] for r in results}
    if {"sqlite", "postgresql"} <= seconds.keys():  # only when both ran in this run: ratios across runs mean little here
        report.add(at_most("plan time, PostgreSQL / SQLite", seconds["postgresql"] / seconds["sqlite"], PG_OVER_SQLITE, "×"))
    report.headline = "; ".join(f"{r['backend']} {r['timed'][0]:,} recipients in {r['timed'][1]:.1f} s" for r in results)
    report.figures = {
        r["backend"]: {"planned": r["timed"][0], "seconds": r["timed"][1], "peak_all": r["full"][2], "peak_tenth": r["small"][2]}
        for r in results
    }
    return report


if __name__ == "__main__":
    raise SystemExit(main())
