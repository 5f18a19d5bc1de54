#!/usr/bin/env python3
"""Command line: ``python run.py [serve|worker|migrate|demo]`` (serve is the default)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from config import ConfigError, Settings, load_settings
from scrm.core.logs import setup_logging

log = logging.getLogger("scrm")


def _settings() -> Settings:
    try:
        return load_settings()
    except ConfigError as exc:
        print(f"配置错误 / configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def cmd_serve(args: argparse.Namespace) -> int:
    from aiohttp import web

    from scrm.web.app import create_app
    from scrm.web.runtime import NotMigrated

    settings = _settings()
    if args.port:
        settings = settings.replace(port=args.port)
    setup_logging(settings.log_level, settings.log_format)
    mode = "sandbox (WeCom and WeChat are emulated locally)" if settings.is_sandbox else "production"
    print(f"SCRM serving on {settings.base_url}/ — {mode}; jobs: {settings.jobs_backend}", flush=True)
    if settings.is_sandbox:
        print(f"打开沙箱聊天页 / open the sandbox chat: {settings.base_url}/sandbox/", flush=True)
        print(f"API token (sandbox): {settings.admin_token.get()}", flush=True)
    try:
        web.run_app(create_app(settings), host=settings.host, port=settings.port, print=None,
                    access_log=None, shutdown_timeout=5)
    except NotMigrated as exc:
        print(f"数据库未迁移 / database not migrated: {exc}", file=sys.stderr)
        return 2
    return 0


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
    from scrm.worker import run_worker

    settings = _settings()
    setup_logging(settings.log_level, settings.log_format)
    if not settings.redis_url:
        print("SCRM_REDIS_URL is not set: jobs run inside `python run.py serve` (in-process engine).", file=sys.stderr)
        return 2
    asyncio.run(run_worker(settings))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from scrm.demo import run_demo

    settings = _settings()
    setup_logging("WARNING", "text")
    return asyncio.run(run_demo(settings, keep_db=args.keep_db))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="run.py", description="SCRM + order-fulfilment bot platform")
    sub = parser.add_subparsers(dest="command")
    serve = sub.add_parser("serve", help="serve the web app, callbacks, sidebar, console (default)")
    serve.add_argument("--port", type=int, default=0, help="override SCRM_PORT")
    sub.add_parser("worker", help="run an arq worker (needs SCRM_REDIS_URL)")
    sub.add_parser("migrate", help="apply database migrations")
    demo = sub.add_parser("demo", help="scripted end-to-end scenario in the sandbox, printing what happened")
    demo.add_argument("--keep-db", action="store_true", help="use the configured database instead of a temp one")
    args = parser.parse_args(argv)
    command = args.command or "serve"
    if command == "serve" and not hasattr(args, "port"):
        args.port = 0
    handlers = {"serve": cmd_serve, "worker": cmd_worker, "migrate": cmd_migrate, "demo": cmd_demo}
    return handlers[command](args)


if __name__ == "__main__":
    raise SystemExit(main())
