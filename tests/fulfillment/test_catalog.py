"""Catalog CSV import/export and the run.py commands around it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import sqlalchemy as sa

from fulfillment.catalog.models import product_aliases, products
from fulfillment.catalog.services import export_csv, import_rows, parse_catalog_csv
from fulfillment.inventory import services as inventory
from fulfillment.inventory.models import stock_movements
from scrm.core.money import format_fen, parse_yuan
from scrm.core.runtime import Runtime

ROOT = Path(__file__).resolve().parents[2]
GOOD = "sku,name,aliases,unit,price_fen,stock\nW1,矿泉水,水|农夫山泉,箱,3600,10\nC1,可乐,可口可乐,箱,5280,\n"


def test_parse_reports_bad_rows_by_line_and_keeps_the_rest() -> None:
    text = (
        "\ufeffsku,name,aliases,unit,price_fen,stock\n"
        "W1,矿泉水,水,箱,3600,10\n"
        ",无编号,,箱,100,1\n"
        "W2,价格错,,箱,12.5,1\n"
        "W3,负库存,,箱,100,-1\n"
        "W1,重复,,箱,100,1\n"
        "W4,多一列,,箱,100,1,extra\n"
        "W5,没单位,,,100,1\n"
        "W6,好的,纸巾|抽纸 ,提,2590,\n"
    )
    rows, errors = parse_catalog_csv(text)
    assert [r.sku for r in rows] == ["W1", "W6"]
    assert [line for line, _ in errors] == [3, 4, 5, 6, 7, 8]
    assert "price_fen" in errors[1][1] and "与第 2 行重复" in errors[3][1]
    assert rows[1].aliases == ("纸巾", "抽纸") and rows[1].stock is None


def test_missing_columns_are_named() -> None:
    rows, errors = parse_catalog_csv("sku,name\nA,B\n")
    assert rows == [] and "aliases" in errors[0][1] and "price_fen" in errors[0][1]


async def test_reimport_updates_never_duplicates_and_ledger_explains_stock(rt: Runtime) -> None:
    rows, _ = parse_catalog_csv(GOOD)
    async with rt.db.write() as conn:
        first = await import_rows(conn, rt.db.dialect, rows, rt.clock.now())
    assert (first.created, first.updated) == (2, 0)
    rows2, _ = parse_catalog_csv(GOOD.replace("3600,10", "3800,25"))
    async with rt.db.write() as conn:
        second = await import_rows(conn, rt.db.dialect, rows2, rt.clock.now())
    assert (second.created, second.updated) == (0, 2)
    async with rt.db.read() as conn:
        assert (await conn.execute(sa.select(sa.func.count()).select_from(products))).scalar_one() == 2
        price = (await conn.execute(sa.select(products.c.price_fen).where(products.c.sku == "W1"))).scalar_one()
        pid = (await conn.execute(sa.select(products.c.id).where(products.c.sku == "W1"))).scalar_one()
        level = await inventory.level(conn, rt.db.dialect, pid)
        moves = (await conn.execute(sa.select(stock_movements.c.on_hand_delta).where(stock_movements.c.product_id == pid))).scalars().all()
        aliases = set((await conn.execute(sa.select(product_aliases.c.alias).where(product_aliases.c.product_id == pid))).scalars())
        assert await inventory.reconcile(conn) == []
        exported = await export_csv(conn, rt.db.dialect)
    assert price == 3800 and level.on_hand == 25 and list(moves) == [10, 15]
    assert aliases == {"矿泉水", "水", "农夫山泉"}
    assert "W1,矿泉水,农夫山泉|水,箱,3800,25" in exported or "W1,矿泉水,水|农夫山泉,箱,3800,25" in exported


def test_money_formatting() -> None:
    assert format_fen(123450) == "¥1,234.50"
    assert format_fen(5) == "¥0.05" and format_fen(-300) == "-¥3.00"
    assert parse_yuan("¥1,234.5") == 123450 and parse_yuan("0.05") == 5


def test_cli_import_reports_lines_and_reconcile(tmp_path: Path) -> None:
    csv_file = tmp_path / "catalog.csv"
    csv_file.write_text(GOOD + "BAD,,,箱,1,1\n", encoding="utf-8-sig")
    env = {"SCRM_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}", "PATH": "/usr/bin:/bin", "SCRM_CONFIG_FILE": "/dev/null"}
    run = subprocess.run(
        [sys.executable, "run.py", "catalog", "import", str(csv_file)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 1, run.stderr
    assert f"{csv_file}:4:" in run.stderr and "2 created" in run.stdout
    again = subprocess.run(
        [sys.executable, "run.py", "catalog", "import", str(csv_file)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert "0 created, 2 updated" in again.stdout
    rec = subprocess.run(
        [sys.executable, "run.py", "stock", "reconcile"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert rec.returncode == 0 and "no drift" in rec.stdout
    export = subprocess.run(
        [sys.executable, "run.py", "catalog", "export"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert export.stdout.splitlines()[0].startswith("sku,name,aliases,unit,price_fen,stock")


async def test_optional_columns_and_product_update(rt: Runtime) -> None:
    from fulfillment.catalog.services import update_product

    rows, errors = parse_catalog_csv("sku,name,aliases,unit,price_fen,stock,reorder_point,category\nW1,矿泉水,,箱,3600,10,5,饮料\n")
    assert not errors and rows[0].reorder_point == 5 and rows[0].category == "饮料"
    _, bad = parse_catalog_csv("sku,name,aliases,unit,price_fen,stock,reorder_point\nW1,矿泉水,,箱,3600,10,lots\n")
    assert bad and bad[0][0] == 2 and "reorder_point" in bad[0][1]
    async with rt.db.write() as conn:
        await import_rows(conn, rt.db.dialect, rows, rt.clock.now())
        changed = await update_product(conn, "W1", rt.clock.now(), reorder_point=None, price_fen=3900)
        exported = await export_csv(conn, rt.db.dialect)
    assert changed.reorder_point is None and changed.price_fen == 3900
    assert exported.splitlines()[0] == "sku,name,aliases,unit,price_fen,stock,reorder_point,category"
    assert exported.splitlines()[1] == "W1,矿泉水,,箱,3900,10,,饮料"


def test_cli_imports_gbk_csv_with_yuan_prices_and_exports_xlsx(tmp_path: Path) -> None:
    from openpyxl import load_workbook

    csv_file = tmp_path / "目录.csv"
    csv_file.write_bytes("编码,名称,别名,单位,价格,库存\nW1,矿泉水,水|农夫山泉,箱,36.00,10\nW2,可乐,,箱,36.001,5\n".encode("gbk"))
    env = {"SCRM_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}", "PATH": "/usr/bin:/bin", "SCRM_CONFIG_FILE": "/dev/null"}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "run.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False
        )

    imported = run("catalog", "import", str(csv_file))
    assert imported.returncode == 1 and "GB18030 CSV" in imported.stdout and "1 created" in imported.stdout
    assert f"{csv_file}:3: 价格必须是最多两位小数的金额" in imported.stderr
    xlsx_file = tmp_path / "out.xlsx"
    assert run("catalog", "export", str(xlsx_file)).returncode == 0
    book = load_workbook(xlsx_file, read_only=True)  # read-only keeps the file open until closed
    try:
        table = list(book.worksheets[0].iter_rows(values_only=True))
    finally:
        book.close()
    assert table[0][:6] == ("sku", "name", "aliases", "unit", "price", "price_fen")
    assert table[1][:7] == ("W1", "矿泉水", "农夫山泉|水", "箱", "36.00", 3600, 10)
    again = run("catalog", "import", str(xlsx_file))
    assert again.returncode == 0 and "0 created, 1 updated" in again.stdout
    not_text = tmp_path / "x.csv"
    not_text.write_bytes(b"\xff\xfe\x00\xd8bad")
    refused = run("catalog", "import", str(not_text))
    assert refused.returncode == 2 and "编码" in refused.stderr
