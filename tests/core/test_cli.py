"""run.py as an operator uses it: migrate, refusing an unmigrated PostgreSQL, half-configured channels."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

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
