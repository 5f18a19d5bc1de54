"""``run.py staff …``: console staff accounts from the command line (password from the terminal or stdin)."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from collections.abc import Sequence

from scrm.core import audit
from scrm.core.errors import Conflict, InvalidInput, NotFound
from scrm.core.runtime import Runtime
from scrm.crm.staff.accounts import create_staff, deactivate_staff, list_staff, update_staff
from scrm.crm.staff.domain import DATA_SCOPES_ZH, ROLE_NAMES_ZH, check_password


def _read_password(confirm: bool = True) -> str:
    """From the terminal (twice, hidden) or the first line of stdin when piped."""
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("密码 / password: ")
    if confirm and getpass.getpass("再次输入 / again: ") != first:
        raise InvalidInput("两次输入的密码不一致 (passwords differ)", field="password")
    return first


async def run_cli(rt: Runtime, argv: Sequence[str]) -> int:
    """``staff add USERNAME --role ROLE [--role …] [--name NAME]`` (password from the terminal or stdin),
    ``staff passwd USERNAME``, ``staff deactivate USERNAME``, ``staff list``. Returns the exit code."""
    parser = argparse.ArgumentParser(prog="run.py staff", description="console staff accounts / 控制台员工账号")
    sub = parser.add_subparsers(dest="action", required=True)
    add = sub.add_parser("add", help="create an account (password read from the terminal or stdin)")
    add.add_argument("username")
    add.add_argument("--role", action="append", required=True, choices=list(ROLE_NAMES_ZH))
    add.add_argument("--name", default="")
    add.add_argument("--wecom", default="", help="the person's WeCom member userid (approvals reach them in WeCom)")
    add.add_argument("--scope", choices=list(DATA_SCOPES_ZH), help="whose customers they see (default: own for sales, else all)")
    for name in ("passwd", "deactivate"):
        sub.add_parser(name).add_argument("username")
    sub.add_parser("list")
    args = parser.parse_args(list(argv))
    # Whoever runs the command line on the server: the audit trail names it, with the operating-system user.
    try:
        user = getpass.getuser()
    except (OSError, KeyError):  # no login name in this environment (a container without a passwd entry)
        user = "unknown"
    with audit.acting_as(audit.Actor("cli", f"run.py:{user}"[:64], "命令行")):
        return await _run(rt, args)


async def _run(rt: Runtime, args: argparse.Namespace) -> int:
    try:
        if args.action == "list":
            for u in await list_staff(rt):
                print(f"{u.username}\t{','.join(u.roles)}\t{'active' if u.active else 'inactive'}\t{u.display_name}")
            return 0
        if args.action == "add":
            user = await create_staff(
                rt,
                args.username,
                await asyncio.to_thread(_read_password),
                args.role,
                display_name=args.name,
                wecom_userid=args.wecom,
                data_scope=args.scope,
            )
            print(f"已创建 / created: {user.username} ({', '.join(user.roles)})")
            return 0
        found = [u for u in await list_staff(rt) if u.username == args.username.strip().lower()]
        if not found:
            raise NotFound(f"没有员工 {args.username} (no such staff account)")
        if args.action == "passwd":
            await update_staff(rt, found[0].id, password=check_password(await asyncio.to_thread(_read_password)))
        else:
            await deactivate_staff(rt, found[0].id)
        print(f"已更新 / updated: {found[0].username}")
        return 0
    except (InvalidInput, Conflict, NotFound) as exc:
        print(exc.message, file=sys.stderr)
        return 1
