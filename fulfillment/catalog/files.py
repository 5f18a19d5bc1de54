"""Catalog files as people make them: CSV in UTF-8 (with or without BOM) or GBK/GB18030 (what Excel saves on
Chinese Windows), and xlsx sheets — read into the table :func:`services.parse_catalog_table` checks; and the
catalog written back as xlsx. Pure file handling: no database here."""

from __future__ import annotations

import csv
import datetime as dt
import io
import zipfile
from collections.abc import Sequence

from fulfillment.catalog.services import CSV_COLUMNS, OPTIONAL_COLUMNS, CatalogRow, parse_catalog_table

MAX_FILE_BYTES = 5 * 1024 * 1024  # a catalog of tens of thousands of rows; bigger is a mistake
MAX_ROWS = 50_000
XLSX_MAGIC = b"PK\x03\x04"
EXPORT_COLUMNS = [*CSV_COLUMNS[:4], "price", *CSV_COLUMNS[4:], *OPTIONAL_COLUMNS]


class CatalogFileError(ValueError):
    """The file as a whole cannot be read (encoding, not a spreadsheet, too big); the message is Chinese."""


def decode_csv(raw: bytes) -> tuple[str, str]:
    """The text of a CSV file and the encoding it was read as: UTF-8 (a BOM is dropped) first, else GB18030 (a
    superset of GBK and GB2312). Bytes that are neither are refused rather than read as mojibake."""
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise CatalogFileError("文件是 UTF-16 编码（Excel 的“Unicode 文本”）：请另存为“CSV UTF-8”或 xlsx 后再导入")
    if b"\x00" in raw[:4096]:  # no CSV has NUL bytes (GB18030 would read an image or a .xls as garbage text)
        raise CatalogFileError("这不是 CSV 或 xlsx 文件：请上传 CSV（UTF-8 或 GBK）或 xlsx 商品表")
    if raw.startswith(b"\xef\xbb\xbf"):
        try:
            return raw[3:].decode("utf-8"), "UTF-8"
        except UnicodeDecodeError as exc:
            line = raw[: exc.start + 3].count(b"\n") + 1
            raise CatalogFileError(f"文件以 UTF-8 标记开头，但第 {line} 行不是 UTF-8 编码") from None
    try:
        return raw.decode("utf-8"), "UTF-8"
    except UnicodeDecodeError:
        pass
    try:
        return raw.decode("gb18030"), "GB18030"
    except UnicodeDecodeError:
        raise CatalogFileError("无法识别文件编码：请另存为 UTF-8 或 GBK 编码的 CSV，或 xlsx") from None


def is_xlsx(filename: str, raw: bytes) -> bool:
    return raw.startswith(XLSX_MAGIC) or filename.lower().endswith(".xlsx")


def _cell_text(value: object) -> str:
    """A spreadsheet cell as the text a person typed: 36 stays 36, 36.5 → 36.5, a float with a binary tail (36.1
    stored as 36.100000000000001) → its shortest form; dates as ISO; empty → ''."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return str(value)


def xlsx_table(raw: bytes) -> list[tuple[int, list[str]]]:
    """The first sheet as ``[(row number, cells)]`` (row numbers as Excel shows them)."""
    # openpyxl (with numpy, which it imports when installed: ≈20 MiB) loads when a sheet is read or written, not in
    # every server at start.
    from openpyxl import load_workbook
    from openpyxl.utils.exceptions import InvalidFileException

    try:
        book = load_workbook(io.BytesIO(raw), read_only=True, data_only=True)
    except (InvalidFileException, zipfile.BadZipFile, KeyError, OSError) as exc:
        raise CatalogFileError("不是有效的 xlsx 文件（请用 Excel 另存为 .xlsx）") from exc
    try:
        sheet = book.worksheets[0]
        table: list[tuple[int, list[str]]] = []
        for number, values in enumerate(sheet.iter_rows(values_only=True), start=1):
            if number > MAX_ROWS + 1:
                raise CatalogFileError(f"文件超过 {MAX_ROWS} 行")
            table.append((number, [_cell_text(v) for v in values]))
        return table
    finally:
        book.close()


def csv_table(text: str) -> list[tuple[int, list[str]]]:
    reader = csv.reader(io.StringIO(text))
    table: list[tuple[int, list[str]]] = []
    for record in reader:
        table.append((reader.line_num, record))
        if len(table) > MAX_ROWS + 1:
            raise CatalogFileError(f"文件超过 {MAX_ROWS} 行")
    return table


def read_catalog_file(filename: str, raw: bytes) -> tuple[list[CatalogRow], list[tuple[int, str]], str]:
    """Good rows, (line, Chinese reason) for bad ones, and what the file was read as (``xlsx``, ``UTF-8 CSV``,
    ``GB18030 CSV``). Raises :class:`CatalogFileError` when the file itself cannot be read."""
    if len(raw) > MAX_FILE_BYTES:
        raise CatalogFileError(f"文件太大（最多 {MAX_FILE_BYTES // 1024 // 1024} MB）")
    if not raw.strip():
        raise CatalogFileError("文件是空的")
    if is_xlsx(filename, raw):
        table, kind = xlsx_table(raw), "xlsx"
    else:
        text, encoding = decode_csv(raw)
        table, kind = csv_table(text), f"{encoding} CSV"
    rows, errors = parse_catalog_table(table)
    return rows, errors, kind


def catalog_xlsx(records: Sequence[Sequence[object]]) -> bytes:
    """The catalog as an xlsx sheet: :data:`EXPORT_COLUMNS` (price in 元 as text ``36.00`` beside ``price_fen``),
    one row per record in that order. Reads back with :func:`read_catalog_file`."""
    from openpyxl import Workbook  # on first use, as in xlsx_table

    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "商品目录"
    sheet.append(EXPORT_COLUMNS)
    for record in records:
        sheet.append(list(record))
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
