"""run.py as an operator uses it: migrate, refusing an unmigrated PostgreSQL, half-configured channels."""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from config import load_settings
from scrm.app import cli
from tests.conftest import PG_ADMIN_DSN, _run

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "SCRM_CONFIG_FILE": "/dev/null", "SCRM_LOG_FORMAT": "text"}
    return subprocess.run(
        [sys.executable, "run.py", *args], cwd=ROOT, env={**base, **env}, capture_output=True, text=True, timeout=120, check=False
    )


@pytest.fixture
def empty_pg() -> Iterator[str]:
    name = f"scrm_cli_{uuid.uuid4().hex[:8]}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(PG_ADMIN_DSN)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    _run(admin(f'CREATE DATABASE "{name}"'))
    yield f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
    _run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def test_serve_refuses_an_unmigrated_postgresql_then_migrate_fixes_it(empty_pg: str) -> None:
    refused = run("serve", env={"SCRM_DATABASE_URL": empty_pg, "SCRM_PORT": "1"})
    assert refused.returncode == 2
    assert "python run.py migrate" in refused.stderr
    migrated = run("migrate", env={"SCRM_DATABASE_URL": empty_pg})
    assert migrated.returncode == 0 and "empty →" in migrated.stdout
    again = run("migrate", env={"SCRM_DATABASE_URL": empty_pg})
    assert again.returncode == 0


def test_half_configured_channel_is_refused_at_start() -> None:
    result = run("serve", env={"SCRM_WECOM_TOKEN": "t", "SCRM_ADMIN_TOKEN": "x"})
    assert result.returncode == 2
    assert "SCRM_WECOM_AES_KEY" in result.stderr and "SCRM_WECOM_CORP_ID" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("port", ["70000", "-1", "0", "abc"])
def test_serve_on_an_invalid_port_says_so_in_one_line(port: str) -> None:
    result = run("serve", "--port", port, env={})
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [result.stderr.strip()] and "端口无效" in result.stderr
    assert "Traceback" not in result.stderr and "serving on" not in result.stdout


def test_serve_on_a_busy_port_says_so_before_claiming_to_serve(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run("serve", "--port", str(port), env={"SCRM_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'scrm.db'}"})
    assert result.returncode == 2
    assert f"端口 {port} 已被占用" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr and "serving on" not in result.stdout


def test_sync_port_points_the_sandbox_sync_at_that_server() -> None:
    settings = load_settings({"SCRM_SANDBOX": "1"}, config_file="/dev/null")
    moved = cli._with_port(settings, argparse.Namespace(port=18123))
    assert moved.port == 18123 and moved.base_url == "http://127.0.0.1:18123"
    assert cli._with_port(settings, argparse.Namespace(port=None)).port == settings.port
    with pytest.raises(SystemExit) as exc:
        cli._with_port(settings, argparse.Namespace(port=99999))
    assert exc.value.code == 2
    refused = run("sync", "--port", "0", env={})  # sync has --port, checked like serve's
    assert refused.returncode == 2 and "端口无效" in refused.stderr
