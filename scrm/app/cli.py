"""The command line behind ``run.py``: ``serve`` (default), ``worker``, ``migrate``, ``demo``, ``catalog``, ``stock``, ``sync``,
``archive``, ``tags``, ``rfm``, ``billing``, ``staff``, ``bench`` — each builds what it needs (the composition root's job;
imports are lazy so that e.g. ``serve --workers`` can set up Prometheus' multiprocess mode before anything loads it)."""

from __future__ import annotations

import argparse
import asyncio
import errno
import gc
import logging
import sys
import time
from typing import IO, Any

from config import ConfigError, Settings, load_settings
from scrm.core.logs import setup_logging

log = logging.getLogger("scrm")


def _settings() -> Settings:
    try:
        return load_settings()
    except ConfigError as exc:
        print(f"配置错误 / configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def _with_port(settings: Settings, args: argparse.Namespace) -> Settings:
    """``--port N`` over SCRM_PORT; a port outside 1..65535 ends the command with one line and exit code 2."""
    port = getattr(args, "port", None)
    if port is None:
        return settings
    if not 0 < port < 65536:
        print(f"端口无效 / invalid port: {port}（应为 1–65535）", file=sys.stderr)
        raise SystemExit(2)
    return settings.replace(port=port)


def _port_number(text: str) -> int:
    """``--port`` as given; "abc" ends with one Chinese line and exit code 2 instead of argparse's English usage."""
    try:
        return int(text)
    except ValueError:
        print(f"端口无效 / invalid port: {text!r}（应为 1–65535 的整数）", file=sys.stderr)
        raise SystemExit(2) from None


def _port_in_use(host: str, port: int) -> str | None:
    """Why ``host:port`` cannot be listened on (in Chinese), or None when it can — checked before saying "serving on"."""
    from scrm.app.supervisor import bind

    try:
        bind(host, port).close()
    except PermissionError:
        return f"无权监听 {host}:{port}（1024 以下的端口需要管理员权限）/ permission denied"
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            return f"端口 {port} 已被占用，请换一个端口（--port N 或 SCRM_PORT）/ {host}:{port} is already in use"
        return f"无法监听 {host}:{port}：{exc.strerror or exc}"
    return None


def cmd_serve(args: argparse.Namespace) -> int:
    from scrm.app.supervisor import multiprocess_metrics_dir, refuse_reason

    settings = _with_port(_settings(), args)
    workers = max(1, int(getattr(args, "workers", 1) or 1))
    reason = refuse_reason(settings, workers)
    if reason:
        print(f"配置错误 / configuration error: {reason}", file=sys.stderr)
        return 2
    metrics_dir = multiprocess_metrics_dir() if workers > 1 else None  # before anything imports prometheus_client

    from aiohttp import web

    from scrm.app.runtime import NotMigrated
    from scrm.app.webapp import create_app
    from scrm.core.http.limits import KEEPALIVE_TIMEOUT

    busy = _port_in_use(settings.host, settings.port)
    if busy:
        print(busy, file=sys.stderr)
        return 2
    setup_logging(settings.log_level, settings.log_format)
    mode = "sandbox (WeCom and WeChat are emulated locally)" if settings.is_sandbox else "production"
    procs = f"; {workers} server processes" if workers > 1 else ""
    print(f"SCRM serving on {settings.base_url}/ — {mode}; jobs: {settings.jobs_backend}{procs}", flush=True)
    if settings.is_sandbox:
        print(f"打开沙箱聊天页 / open the sandbox chat: {settings.base_url}/sandbox/", flush=True)
        print(f"API token (sandbox): {settings.admin_token.get()}", flush=True)

    def serve_one(sock: object = None) -> int:
        try:
            options = {"sock": sock} if sock is not None else {"host": settings.host, "port": settings.port}
            web.run_app(
                create_app(settings),
                print=None,
                access_log=None,
                shutdown_timeout=5,
                keepalive_timeout=KEEPALIVE_TIMEOUT,  # also closes connections whose headers never finish
                **options,  # type: ignore[arg-type]
            )
        except NotMigrated as exc:
            print(f"数据库未迁移 / database not migrated: {exc}", file=sys.stderr)
            return 2
        except OSError as exc:  # the port was taken between the check and the bind
            print(f"无法监听 {settings.host}:{settings.port}：{exc.strerror or exc}", file=sys.stderr)
            return 2
        return 0

    if metrics_dir is None:
        return serve_one()
    try:
        return _serve_supervised(settings, workers, serve_one)
    finally:
        metrics_dir.cleanup()


def _serve_supervised(settings: Settings, workers: int, serve_one) -> int:  # type: ignore[no-untyped-def]
    """Load the app once, fork ``workers`` servers on the port and supervise them (scrm.app.supervisor). jieba's
    dictionary is not loaded here: with several servers the jobs run in ``run.py worker`` processes, which read the
    customers' messages; a server loads it only if a console page asks (webapp's warm-up)."""
    from prometheus_client import multiprocess

    from scrm.app.supervisor import Supervisor, bind
    from scrm.app.webapp import create_app

    started = time.monotonic()
    create_app(settings)  # imports every route module once (nothing opens before the app starts)
    gc.freeze()  # the servers' collections leave these objects (and so their pages) alone: shared copy-on-write
    took = round(time.monotonic() - started, 2)
    log.info("app modules loaded before forking", extra={"seconds": took, "workers": workers})
    sup = Supervisor(workers, serve_one, lambda: bind(settings.host, settings.port), on_exit=multiprocess.mark_process_dead)
    return sup.run()


def cmd_migrate(args: argparse.Namespace) -> int:
    from scrm.core import migrate
    from scrm.core.db import Database

    settings = _settings()

    async def run() -> None:
        db = Database(settings.database_url)
        try:
            before = await migrate.current_revision(db)
            await migrate.upgrade(db)
            after = await migrate.current_revision(db)
        finally:
            await db.dispose()
        print(f"migrated {db.dialect} database: {before or 'empty'} → {after}")

    asyncio.run(run())
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from scrm.app.worker import run_worker

    settings = _settings()
    setup_logging(settings.log_level, settings.log_format)
    if not settings.redis_url:
        print("SCRM_REDIS_URL is not set: jobs run inside `python run.py serve` (in-process engine).", file=sys.stderr)
        return 2
    asyncio.run(run_worker(settings))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from scrm.app.demo import run_demo

    settings = _settings()
    setup_logging("WARNING", "text")
    return asyncio.run(run_demo(settings, keep_db=args.keep_db))


def _with_runtime(coro_fn):  # type: ignore[no-untyped-def]
    """Run ``coro_fn(rt)`` with a runtime on the configured database (migrating the embedded SQLite)."""
    from scrm.app.runtime import NotMigrated, build_runtime

    settings = _settings()
    setup_logging("WARNING", "text")

    async def run() -> int:
        rt = await build_runtime(settings)
        try:
            return int(await coro_fn(rt))
        finally:
            await rt.close()

    try:
        return asyncio.run(run())
    except NotMigrated as exc:
        print(f"数据库未迁移 / database not migrated: {exc}", file=sys.stderr)
        return 2


def cmd_catalog(args: argparse.Namespace) -> int:
    from pathlib import Path

    from fulfillment.catalog.files import CatalogFileError, catalog_xlsx, read_catalog_file
    from fulfillment.catalog.services import export_csv, export_records, import_rows

    if args.action == "export":
        to_xlsx = bool(args.file) and args.file.lower().endswith(".xlsx")
        out: list[str] = []
        records: list[list[object]] = []

        async def export(rt) -> int:  # type: ignore[no-untyped-def]
            async with rt.db.read() as conn:
                if to_xlsx:
                    records.extend(await export_records(conn, rt.db.dialect))
                else:
                    out.append(await export_csv(conn, rt.db.dialect))
            return 0

        code = _with_runtime(export)
        if to_xlsx:
            Path(args.file).write_bytes(catalog_xlsx(records))
        elif args.file and args.file != "-":
            Path(args.file).write_text("".join(out), encoding="utf-8")
        else:
            sys.stdout.write("".join(out))
        return code
    path = Path(args.file)
    try:
        rows, errors, kind = read_catalog_file(path.name, path.read_bytes())
    except FileNotFoundError:
        print(f"找不到文件 / no such file: {path}", file=sys.stderr)
        return 2
    except CatalogFileError as exc:
        print(f"{path}: {exc}", file=sys.stderr)
        return 2
    print(f"{path}: 按 {kind} 读取，{len(rows)} 行可导入，{len(errors)} 行有问题")
    for line, message in errors:
        print(f"{path}:{line}: {message}", file=sys.stderr)

    async def run_import(rt) -> int:  # type: ignore[no-untyped-def]
        from fulfillment.orders.backorders import fill_backorders

        total = len(rows)
        async with rt.db.write() as conn:
            report = await import_rows(conn, rt.db.dialect, rows, rt.clock.now(), progress=_progress(total))
        for product_id in report.product_ids:
            await fill_backorders(rt, product_id)
        for line, message in report.errors:
            print(f"\n{path}:{line}: {message}", file=sys.stderr)
        bad = len(errors) + len(report.errors)
        print(f"\n导入完成 / imported: {report.created} created, {report.updated} updated, {bad} rows with problems")
        return 1 if bad else 0

    return _with_runtime(run_import)


def _progress(total: int):  # type: ignore[no-untyped-def]
    def show(done: int) -> None:
        if total and (done == total or done % 50 == 0):
            width = 30
            filled = int(width * done / total)
            print(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total}", end="", flush=True)

    return show


def cmd_stock(args: argparse.Namespace) -> int:
    from fulfillment.inventory.services import reconcile

    async def run(rt) -> int:  # type: ignore[no-untyped-def]
        async with rt.db.read() as conn:
            drifts = await reconcile(conn)
        if not drifts:
            print("库存计数与流水一致 / stock counters equal the ledger: no drift")
            return 0
        for d in drifts:
            print(
                f"product {d.product_id} warehouse {d.warehouse_id}: counters on_hand={d.counters.on_hand} "
                f"allocated={d.counters.allocated}; ledger on_hand={d.ledger.on_hand} allocated={d.ledger.allocated}"
            )
        return 1

    return _with_runtime(run)


def cmd_archive(args: argparse.Namespace) -> int:
    from scrm.app.archive_import import main as archive_main

    setup_logging("WARNING", "text")
    return archive_main(args.file, _settings())


def cmd_billing(args: argparse.Namespace) -> int:
    from pathlib import Path

    from fulfillment.billing import receivables, statements
    from fulfillment.billing.web import resolve_customer

    if args.action == "import-statement" and not args.file:
        print("billing import-statement needs FILE.csv", file=sys.stderr)
        return 2
    statement = b""
    if args.action == "import-statement":
        try:
            statement = Path(args.file).read_bytes()
        except FileNotFoundError:
            print(f"找不到文件 / no such file: {args.file}", file=sys.stderr)
            return 2

    async def run(rt) -> int:  # type: ignore[no-untyped-def]
        if args.action == "dunning":
            result = await receivables.run_dunning(rt)
            print(f"催款提醒 / reminders queued: {result.sent}; superseded levels skipped: {result.skipped}")
            return 0
        name = Path(args.file).name
        report = await statements.import_statement(rt, statement, filename=name, resolve_customer=resolve_customer, actor="cli")
        for row in report.rows:
            print(f"{args.file}:{row.line}: {row.status} {row.reference} {row.message}")
        print(report.counts)
        return 1 if report.counts["error"] or report.counts["conflict"] else 0

    return _with_runtime(run)


def cmd_tags(args: argparse.Namespace) -> int:
    setup_logging("WARNING", "text")
    if args.action == "dry-run":
        return tags_dry_run(args, _settings())
    return tags_versions(args, _settings())


def cmd_staff(args: argparse.Namespace) -> int:
    from scrm.app import staff_cli

    return _with_runtime(lambda rt: staff_cli.run_cli(rt, args.rest))


def cmd_rfm(args: argparse.Namespace) -> int:
    setup_logging("WARNING", "text")
    return rfm_command(args, _settings())


def cmd_sync(args: argparse.Namespace) -> int:
    # --port: in sandbox mode the emulated WeCom is the running server's, at SCRM_PORT unless told otherwise
    setup_logging("WARNING", "text")
    return sync_command(_with_port(_settings(), args), args)


# ---- commands that need a runtime of their own -----------------------------------------------------------
def rfm_command(args: argparse.Namespace, settings: Settings) -> int:
    """``run.py rfm [--rebuild-stats]``: the full recompute now, with a progress bar. 0 done, 2 not migrated."""
    from scrm.app.runtime import NotMigrated, build_runtime
    from tagging.segments import jobs as rfm_jobs

    async def go() -> int:
        rt = await build_runtime(settings)
        try:
            report = await rfm_jobs.recompute_all(
                rt, rebuild_stats=bool(getattr(args, "rebuild_stats", False)), progress=rfm_jobs.progress_bar(sys.stdout)
            )
        finally:
            await rt.close()
        rfm_jobs.print_report(report, sys.stdout)
        return 0

    try:
        return asyncio.run(go())
    except NotMigrated as exc:
        print(f"数据库未迁移 / database not migrated: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:  # config/segments.toml is wrong
        print(f"配置错误 / configuration error: {exc}", file=sys.stderr)
        return 2


def sync_command(settings: Settings, args: argparse.Namespace) -> int:
    """``run.py sync``: 0 done, 1 interrupted (run it again to resume), 2 not configured / not migrated."""
    from bots.contacts import sync as wecom_sync
    from scrm.app.runtime import NotMigrated, build_runtime

    if not settings.wecom_enabled:
        print("未配置企业微信 / WeCom is not configured (SCRM_WECOM_CORP_ID, SCRM_WECOM_SECRET)", file=sys.stderr)
        return 2
    if settings.is_sandbox:
        print(f"沙箱模式：同步来自 {settings.base_url}/sandbox/ 的模拟企业微信（需先运行 run.py serve）", flush=True)

    async def go() -> int:
        rt = await build_runtime(settings)
        options = wecom_sync.SyncOptions(use_batch=not getattr(args, "no_batch", False))
        last = [""]

        def show(step: str, done: int, total: int | None, note: str) -> None:
            if last[0] and step != last[0] and last[0] in wecom_sync.LABELS:
                print()
            last[0] = step
            wecom_sync.print_progress(step, done, total, note)

        try:
            steps = (args.step,) if getattr(args, "step", None) else wecom_sync.STEPS
            await wecom_sync.run_sync(rt, steps=steps, progress=show, options=options, restart=getattr(args, "restart", False))
            print("\n同步完成 / sync finished")
            return 0
        except wecom_sync.SyncInterrupted as exc:
            print(f"\n同步中断 / sync interrupted at {exc.step}: {exc.cause}\n再次运行即可从中断处继续 / run it again to resume")
            return 1
        finally:
            await rt.close()

    try:
        return asyncio.run(go())
    except NotMigrated as exc:
        print(f"数据库未迁移 / database not migrated: {exc}", file=sys.stderr)
        return 2


async def _tags_runtime(settings: Settings, err: IO[str]) -> Any:
    """A runtime on the configured database for the ``tags`` commands (only the database is needed), or None when
    the database is not migrated (said on ``err``)."""
    from scrm.core import migrate
    from scrm.core.clock import Clock
    from scrm.core.db import Database
    from scrm.core.jobs import make_queue
    from scrm.core.runtime import Runtime

    db = Database(settings.database_url)
    if not await migrate.is_current(db):
        await db.dispose()
        print("数据库未迁移 / database not migrated: run `python run.py migrate` first", file=err)
        return None
    return Runtime(settings=settings, db=db, clock=Clock(), jobs=make_queue(settings))


async def _tags_dry_run(args: argparse.Namespace, settings: Settings, out: IO[str], err: IO[str]) -> int:
    from pathlib import Path

    from tagging.rules import dryrun, versions
    from tagging.rules.domain import RulesFileError, load_rules, parse_rules
    from tagging.rules.engine import RULES_FILE

    try:
        since = dryrun._parse_since(getattr(args, "since", None))
    except ValueError:
        print(f"--since 应为日期 YYYY-MM-DD (not a date): {args.since}", file=err)
        return 2
    path = Path(args.rules) if getattr(args, "rules", None) else None
    if path is not None:
        try:
            rules = load_rules(path)
        except RulesFileError as exc:
            for problem in exc.problems:
                print(f"{path}: {problem}", file=err)
            return 2
    rt = await _tags_runtime(settings, err)
    if rt is None:
        return 2
    # A dry run reads messages and writes nothing.
    try:
        source = str(path)
        if path is None:  # the rules in force: the newest stored version (the seed file before the first start)
            async with rt.db.read() as conn:
                stored = await versions.current_version(conn)
            if stored is not None:
                rules, source = parse_rules(stored.text), f"数据库中生效的版本 {stored.meta.version}"
            else:
                rules, source = load_rules(RULES_FILE), f"{RULES_FILE}（数据库中还没有规则版本）"
        bar = dryrun._bar(err) if err.isatty() else None
        report = await dryrun.replay(
            rt, rules, since=since, limit=getattr(args, "limit", None), top=getattr(args, "top", 10) or 10, progress=bar
        )
        if bar is not None:
            print(file=err)
    except RulesFileError as exc:
        print(f"{source}: {exc}", file=err)
        return 2
    finally:
        await rt.close()
    print(dryrun.format_report(report, source=source), file=out)
    return 0


def tags_dry_run(args: argparse.Namespace, settings: Settings, *, out: IO[str] | None = None, err: IO[str] | None = None) -> int:
    """``run.py tags dry-run``: 0 printed the report, 2 the rules file is invalid, bad arguments or no migrated database."""
    return asyncio.run(_tags_dry_run(args, settings, out or sys.stdout, err or sys.stderr))


async def _tags_versions(args: argparse.Namespace, settings: Settings, out: IO[str], err: IO[str]) -> int:
    from pathlib import Path

    from scrm.core.clock import local
    from scrm.core.errors import DomainError
    from tagging.rules import versions
    from tagging.rules.domain import RulesFileError
    from tagging.rules.engine import tagger_cache

    text = ""
    if args.action == "import":
        try:
            text = await asyncio.to_thread(Path(args.file).read_text, encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            print(f"读不了文件 (cannot read) {args.file}: {exc}", file=err)
            return 2
    rt = await _tags_runtime(settings, err)
    if rt is None:
        return 2
    try:
        if args.action == "import":
            await tagger_cache(rt).get(rt)  # the seed goes first, so the import is the version after it
            try:
                made = await versions.save_rules(
                    rt, text, by=(getattr(args, "by", None) or "cli")[:64], base_version=None, action=versions.VersionAction.IMPORT
                )
            except RulesFileError as exc:
                for problem in exc.problems:
                    print(f"{args.file}: {problem}", file=err)
                return 2
            print(f"已导入为版本 {made.version}（{made.rules} 条规则），所有进程收到下一条消息时生效", file=out)
            return 0
        async with rt.db.read() as conn:
            if args.action == "versions":
                for v in await versions.list_versions(conn, limit=getattr(args, "limit", 20) or 20):
                    print(f"{v.version}\t{local(v.created_at):%Y-%m-%d %H:%M}\t{v.created_by}\t{v.action_zh}\t{v.rules} 条规则", file=out)
                return 0
            number = getattr(args, "version", None) or await versions.current_number(conn)
            found = await versions.get_version(conn, number) if number else None
        if found is None:
            print(f"没有规则版本 {number or ''}（先启动一次服务或 tags import）(no such version)", file=err)
            return 2
        if getattr(args, "out", None):
            await asyncio.to_thread(Path(args.out).write_text, found.text, encoding="utf-8")
            print(f"版本 {found.meta.version} 已导出到 {args.out}", file=err)
        else:
            out.write(found.text)
        return 0
    except DomainError as exc:
        print(exc.message, file=err)
        return 2
    finally:
        await rt.close()


def tags_versions(args: argparse.Namespace, settings: Settings, *, out: IO[str] | None = None, err: IO[str] | None = None) -> int:
    """``run.py tags export|import|versions``: the stored rule versions as TOML. 0 done, 2 refused (problems on err)."""
    return asyncio.run(_tags_versions(args, settings, out or sys.stdout, err or sys.stderr))


def cmd_bench(args: argparse.Namespace) -> int:
    from bench.suite import main as bench_main

    return bench_main(args.rest)


def main(argv: list[str] | None = None) -> int:
    given = list(sys.argv[1:] if argv is None else argv)
    if given[:1] == ["bench"]:  # its options (--help included) are the suite's own: argparse's REMAINDER drops "--x" first
        return cmd_bench(argparse.Namespace(rest=given[1:]))
    parser = argparse.ArgumentParser(prog="run.py", description="SCRM + order-fulfilment bot platform")
    sub = parser.add_subparsers(dest="command")
    serve = sub.add_parser("serve", help="serve the web app, callbacks, sidebar, console (default)")
    serve.add_argument("--port", type=_port_number, default=None, help="override SCRM_PORT")
    serve.add_argument(
        "--workers", type=int, default=1, metavar="N", help="N server processes on one port, supervised (PostgreSQL + Redis; default 1)"
    )
    sub.add_parser("worker", help="run an arq worker (needs SCRM_REDIS_URL)")
    sub.add_parser("migrate", help="apply database migrations")
    demo = sub.add_parser("demo", help="scripted end-to-end scenario in the sandbox, printing what happened")
    demo.add_argument("--keep-db", action="store_true", help="use the configured database instead of a temp one")
    cat = sub.add_parser(
        "catalog", help="catalog import FILE.csv|FILE.xlsx (UTF-8 or GBK; price in 元 or price_fen) / catalog export [FILE.csv|FILE.xlsx]"
    )
    cat.add_argument("action", choices=["import", "export"])
    cat.add_argument("file", nargs="?", default="-")
    sync = sub.add_parser("sync", help="initial / repair sync from WeCom: members, tags, customers, groups (resumable)")
    sync.add_argument("--step", choices=["members", "tags", "customers", "groups"], help="run only this step")
    sync.add_argument("--restart", action="store_true", help="ignore an interrupted run and start from scratch")
    sync.add_argument("--port", type=_port_number, default=None, help="sandbox: the port `run.py serve` listens on (default SCRM_PORT)")
    sync.add_argument("--no-batch", action="store_true", help="externalcontact/list + get instead of batch/get_by_user")
    tags = sub.add_parser("tags", help="tag rules: dry-run | export | import FILE | versions (the rules live in the database, versioned)")
    tags_sub = tags.add_subparsers(dest="action", required=True)
    dry = tags_sub.add_parser("dry-run", help="replay history against the rules in force (or --rules FILE) without writing anything")
    dry.add_argument("--rules", help="a TOML rules file to try (default: the version in force in the database)")
    dry.add_argument("--since", help="only messages from this day on (YYYY-MM-DD, Beijing time)")
    dry.add_argument("--limit", type=int, help="at most the N most recent messages")
    dry.add_argument("--top", type=int, default=10, help="customers listed per tag (default 10)")
    exp = tags_sub.add_parser("export", help="print a stored rules version as TOML (default: the one in force)")
    exp.add_argument("--version", type=int, help="version number (default: in force)")
    exp.add_argument("--out", help="write to this file instead of stdout")
    imp = tags_sub.add_parser("import", help="validate a TOML rules file and store it as a new version (in force at once)")
    imp.add_argument("file")
    imp.add_argument("--by", help="who, as recorded with the version (default: cli)")
    ver = tags_sub.add_parser("versions", help="list the stored rules versions, newest first")
    ver.add_argument("--limit", type=int, default=20)
    st = sub.add_parser(
        "staff",
        help="staff add USERNAME --role ROLE [--role …] [--name NAME] | staff passwd USERNAME | staff deactivate USERNAME | staff list",
    )
    st.add_argument("rest", nargs=argparse.REMAINDER)
    rfm = sub.add_parser("rfm", help="recompute RFM scores and segments for every customer (progress bar)")
    rfm.add_argument("--rebuild-stats", action="store_true", help="re-aggregate every customer's orders first")
    bill = sub.add_parser("billing", help="billing dunning | billing import-statement FILE.csv")
    bill.add_argument("action", choices=["dunning", "import-statement"])
    bill.add_argument("file", nargs="?")
    arc = sub.add_parser("archive", help="archive import FILE.jsonl: load decrypted chat-archive records")
    arc.add_argument("action", choices=["import"])
    arc.add_argument("file")
    stock = sub.add_parser("stock", help="stock reconcile: compare counters with the ledger")
    stock.add_argument("action", choices=["reconcile"])
    bench = sub.add_parser(
        "bench",
        add_help=False,
        help="every benchmark in one run, summary + sections in docs/BENCHMARKS.md (bench --help for its options)",
    )
    bench.add_argument("rest", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command or "serve"
    if command == "serve" and not hasattr(args, "port"):
        args.port, args.workers = None, 1
    if command == "serve" and not 1 <= args.workers <= 64:
        parser.error("--workers: 1..64")
    if command == "catalog" and args.action == "import" and args.file == "-":
        parser.error("catalog import needs FILE.csv")
    handlers = {
        "serve": cmd_serve,
        "worker": cmd_worker,
        "migrate": cmd_migrate,
        "demo": cmd_demo,
        "catalog": cmd_catalog,
        "stock": cmd_stock,
        "sync": cmd_sync,
        "archive": cmd_archive,
        "billing": cmd_billing,
        "tags": cmd_tags,
        "staff": cmd_staff,
        "rfm": cmd_rfm,
        "bench": cmd_bench,
    }
    return handlers[command](args)
