from __future__ import annotations

from pathlib import Path

import pytest

from fulfillment.catalog import import_rows, parse_catalog_csv
from scrm.core.runtime import Runtime
from scrm.customers.services import ensure_customer

SAMPLE = Path(__file__).resolve().parents[2] / "config" / "catalog.sample.csv"


@pytest.fixture
async def catalog(rt: Runtime) -> Runtime:
    rows, errors = parse_catalog_csv(SAMPLE.read_text(encoding="utf-8"))
    assert not errors
    async with rt.db.write() as conn:
        await import_rows(conn, rt.db.dialect, rows, rt.clock.now())
    return rt


async def make_customer(rt: Runtime, external_userid: str) -> int:
    async with rt.db.write() as conn:
        return await ensure_customer(conn, rt.db.dialect, kind="external_userid", value=external_userid, now=rt.clock.now())
