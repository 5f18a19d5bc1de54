"""Statement import (对账单导入): a bank or WeChat Pay CSV of money received becomes payments, row by row.

The file: UTF-8 (with or without BOM; a GBK export is refused with a hint to re-save as "CSV UTF-8"), one header
row, columns in any order, English or Chinese names:

=========  =======================  ==========================================================================
column     also accepted            content
=========  =======================  ==========================================================================
date       日期 交易时间 入账日期   2026-11-20 · 2026/11/20 · 2026-11-20 14:33[:05] · 20261120 (Asia/Shanghai)
reference  流水号 交易单号 交易流水号 the bank / WeChat Pay transaction id — the idempotency key (required)
amount     金额 收款金额 入账金额   yuan as text: 1,234.50 · ¥1234.5 · 88 (must be > 0; outgoing rows are errors)
payer      付款方 付款人 对方户名   informational, kept in the payment's note
method     方式 支付方式 收款方式   bank/银行/转账 · wechat_pay/微信/微信支付 · alipay/支付宝 · cash/现金; other
                                    text → other; empty → bank
memo       备注 摘要 附言           invoice numbers in it (INV100001) say which invoices are paid
customer   客户                     the customer's external_userid (optional)
=========  =======================  ==========================================================================

Who paid: the ``customer`` column when given, else the customer of the invoices named in the memo (all one
customer). Neither → the row is reported and nothing is recorded for it.

Each row is recorded by :func:`record_payment` in its own transaction, so a bad row never loses the good ones.
Re-importing a file changes nothing (every row reports "duplicate"); a reference already recorded with another
amount reports "conflict" and is left alone. Every import is kept in payment_imports with its report.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import hashlib
import io
import re
import unicodedata
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from fulfillment.billing.domain import MAX_AMOUNT_FEN, CustomerNotFound, PaymentConflict, StatementUnreadable
from fulfillment.billing.models import invoices, payment_imports
from fulfillment.billing.payments import record_payment
from scrm.core.clock import SHANGHAI
from scrm.core.errors import DomainError, InvalidInput, NotFound
from scrm.core.money import parse_yuan
from scrm.core.runtime import Runtime

MAX_BYTES = 2 * 1024 * 1024
MAX_ROWS = 5000
INVOICE_NO = re.compile(r"INV\d{6,}", re.IGNORECASE)
HEADERS = {
    "date": ("date", "日期", "交易时间", "交易日期", "入账日期", "入账时间"),
    "reference": ("reference", "ref", "流水号", "交易单号", "交易流水号", "商户订单号"),
    "amount": ("amount", "金额", "收款金额", "入账金额", "交易金额"),
    "payer": ("payer", "付款方", "付款人", "对方户名", "对方账户名"),
    "method": ("method", "方式", "支付方式", "收款方式"),
    "memo": ("memo", "备注", "摘要", "附言", "用途"),
    "customer": ("customer", "客户", "external_userid"),
}
REQUIRED = ("date", "reference", "amount")
METHODS = {
    "bank": "bank",
    "银行": "bank",
    "转账": "bank",
    "银行转账": "bank",
    "wechat_pay": "wechat_pay",
    "wechat": "wechat_pay",
    "微信": "wechat_pay",
    "微信支付": "wechat_pay",
    "alipay": "alipay",
    "支付宝": "alipay",
    "cash": "cash",
    "现金": "cash",
    "other": "other",
}
DATE_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d", "%Y/%m/%d %H:%M:%S", "%Y/%m/%d %H:%M", "%Y/%m/%d", "%Y%m%d")

CustomerResolver = Callable[[AsyncConnection, str], Awaitable[int | None]]


# ---- parsing (pure) -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class StatementRow:
    line: int
    received_at: dt.datetime
    reference: str
    amount_fen: int
    payer: str
    method: str
    memo: str
    customer: str
    invoices: tuple[str, ...]  # invoice numbers found in the memo


@dataclass(frozen=True)
class RowError:
    line: int
    reference: str
    message: str


def decode_statement(data: bytes) -> str:
    """UTF-8 with or without BOM; anything else is refused with a clear hint (no guessing at money files)."""
    if data.startswith(b"PK\x03\x04"):  # a zip: what Excel saves as .xlsx
        raise StatementUnreadable(
            "这是 Excel 工作簿（xlsx），不是 CSV：请在 Excel 中“另存为 → CSV UTF-8”后再导入 (xlsx, not CSV; save as CSV UTF-8)"
        )
    if data.startswith(codecs.BOM_UTF16_LE) or data.startswith(codecs.BOM_UTF16_BE):
        raise StatementUnreadable("文件是 UTF-16 编码，请另存为“CSV UTF-8”后再导入 (file is UTF-16; save as CSV UTF-8)")
    if b"\x00" in data[:4096]:  # no CSV has NUL bytes: an image, a PDF, a .xls …
        raise StatementUnreadable("这不是 CSV 文本文件：请上传银行或微信支付导出的对账单 CSV（UTF-8） (not a CSV text file)")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise StatementUnreadable(
            "文件不是 UTF-8 编码（可能是 GBK）：请在 Excel 中“另存为 → CSV UTF-8”后再导入 (file is not UTF-8; save as CSV UTF-8)"
        ) from None


def _column(name: str) -> str | None:
    key = unicodedata.normalize("NFKC", name).strip().lower()
    return next((col for col, names in HEADERS.items() if key in names), None)


def parse_received_at(text: str) -> dt.datetime:
    text = unicodedata.normalize("NFKC", text).strip()
    for fmt in DATE_FORMATS:
        try:
            return dt.datetime.strptime(text, fmt).replace(tzinfo=SHANGHAI)
        except ValueError:
            continue
    raise ValueError(f"日期格式不对：{text!r}（例如 2026-11-20 或 2026-11-20 14:33）")


def parse_method(text: str) -> str:
    key = unicodedata.normalize("NFKC", text).strip().lower()
    return METHODS.get(key, "other") if key else "bank"


def parse_statement(text: str) -> tuple[list[StatementRow], list[RowError]]:
    """The rows of a statement and the errors by line (line 1 = the header). A header without date, reference
    and amount makes the whole file unreadable; a bad row is reported and the others are kept."""
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise StatementUnreadable("文件是空的 (the file is empty)") from None
    except csv.Error as exc:
        raise StatementUnreadable(f"表头无法解析：{exc} (unreadable header)") from None
    columns = [_column(h) for h in header]
    named = [c for c in columns if c]
    if len(set(named)) != len(named):
        raise StatementUnreadable("表头有重复的列 (a column appears twice in the header)")
    missing = [c for c in REQUIRED if c not in named]
    if missing:
        raise StatementUnreadable(
            f"缺少必需的列：{', '.join(missing)}；表头应包含 date,reference,amount（可选 payer,method,memo,customer）"
            f" (missing columns: {', '.join(missing)})",
            missing=missing,
        )
    rows: list[StatementRow] = []
    errors: list[RowError] = []
    last = reader.line_num
    while True:
        try:
            raw = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            errors.append(RowError(last + 1, "", f"无法解析的行：{exc}"))
            break
        line, last = last + 1, reader.line_num
        if not any(cell.strip() for cell in raw):
            continue
        if len(rows) + len(errors) >= MAX_ROWS:
            errors.append(RowError(line, "", f"超过 {MAX_ROWS} 行，其余未导入 (more than {MAX_ROWS} rows)"))
            break
        if len(raw) != len(header):
            errors.append(RowError(line, "", f"列数不对：表头 {len(header)} 列，这一行 {len(raw)} 列"))
            continue
        values = {c: v.strip() for c, v in zip(columns, raw, strict=True) if c}
        try:
            rows.append(_row(line, values))
        except ValueError as exc:
            errors.append(RowError(line, values.get("reference", "")[:128], str(exc)))
    return rows, errors


def _row(line: int, v: dict[str, str]) -> StatementRow:
    reference = v.get("reference", "")
    if not reference or len(reference) > 128:
        raise ValueError("流水号（reference）必填，且不超过 128 个字符")
    try:
        amount = parse_yuan(v.get("amount", ""))
    except ValueError:
        raise ValueError(f"金额无法识别：{v.get('amount', '')!r}（例如 1,234.50）") from None
    if amount <= 0:
        raise ValueError(f"金额必须大于 0（{v.get('amount', '')}）：付出或冲正的流水不是收款")
    if amount > MAX_AMOUNT_FEN:
        raise ValueError("金额过大")
    memo = v.get("memo", "")
    return StatementRow(
        line,
        parse_received_at(v.get("date", "")),
        reference,
        amount,
        v.get("payer", "")[:128],
        parse_method(v.get("method", "")),
        memo[:500],
        v.get("customer", "")[:128],
        tuple(dict.fromkeys(m.upper() for m in INVOICE_NO.findall(memo))),
    )


# ---- importing ------------------------------------------------------------------------------------------
@dataclass
class RowOutcome:
    line: int
    reference: str
    status: str  # recorded | duplicate | conflict | error
    message: str
    amount_fen: int | None = None
    customer_id: int | None = None
    allocations: list[tuple[str, int]] = field(default_factory=list)
    credit_fen: int = 0

    def to_json(self) -> dict[str, Any]:
        return {**self.__dict__, "allocations": [{"invoice": n, "amount_fen": f} for n, f in self.allocations]}


@dataclass
class ImportReport:
    import_id: int
    filename: str
    file_sha256: str
    imported_at: dt.datetime
    imported_by: str
    previously_imported: list[int]  # earlier imports of the very same file
    rows: list[RowOutcome]

    @property
    def counts(self) -> dict[str, int]:
        out = dict.fromkeys(("recorded", "duplicate", "conflict", "error"), 0)
        for r in self.rows:
            out[r.status] += 1
        return out

    @property
    def recorded_fen(self) -> int:
        return sum(r.amount_fen or 0 for r in self.rows if r.status == "recorded")

    @classmethod
    def from_json(cls, data: dict[str, Any], import_id: int) -> ImportReport:
        """The report as :meth:`to_json` stored it (payment_imports.report)."""
        rows = [
            RowOutcome(
                int(r["line"]),
                str(r["reference"]),
                str(r["status"]),
                str(r["message"]),
                r.get("amount_fen"),
                r.get("customer_id"),
                [(str(a["invoice"]), int(a["amount_fen"])) for a in r.get("allocations", [])],
                int(r.get("credit_fen", 0)),
            )
            for r in data.get("rows", [])
        ]
        imported_at = dt.datetime.fromisoformat(data["imported_at"])
        return cls(
            import_id, data["filename"], data["file_sha256"], imported_at, data["imported_by"], list(data["previously_imported"]), rows
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "import_id": self.import_id,
            "filename": self.filename,
            "file_sha256": self.file_sha256,
            "imported_at": self.imported_at.isoformat(),
            "imported_by": self.imported_by,
            "previously_imported": self.previously_imported,
            "counts": self.counts,
            "recorded_fen": self.recorded_fen,
            "rows": [r.to_json() for r in self.rows],
        }


async def import_statement(
    rt: Runtime, data: bytes, *, filename: str = "", resolve_customer: CustomerResolver, actor: str = ""
) -> ImportReport:
    """Record every good row of a statement as a payment (idempotent by reference) and report each row by line:
    recorded, duplicate (already recorded — nothing changed), conflict (reference recorded with another amount —
    nothing changed) or error (malformed, unknown customer, void invoice … — nothing recorded). An unreadable file
    (encoding, header) raises StatementUnreadable and records nothing. The report is stored in payment_imports."""
    if len(data) > MAX_BYTES:
        raise StatementUnreadable(f"文件超过 {MAX_BYTES // 1024 // 1024} MB，请分批导入 (file too large)")
    sha = hashlib.sha256(data).hexdigest()
    rows, errors = parse_statement(decode_statement(data))
    outcomes = [RowOutcome(e.line, e.reference, "error", e.message) for e in errors]
    async with rt.db.read() as conn:
        previous = [
            int(i) for i in (await conn.execute(sa.select(payment_imports.c.id).where(payment_imports.c.file_sha256 == sha))).scalars()
        ]
    for row in rows:
        outcomes.append(await _import_row(rt, row, resolve_customer, actor))
    outcomes.sort(key=lambda o: o.line)
    now = rt.clock.now()
    report = ImportReport(0, filename[:256], sha, now, actor[:64], previous, outcomes)
    async with rt.db.write() as conn:
        report.import_id = int(
            (
                await conn.execute(
                    payment_imports.insert()
                    .values(
                        file_sha256=sha, filename=report.filename, report=report.to_json(), imported_at=now, imported_by=report.imported_by
                    )
                    .returning(payment_imports.c.id)
                )
            ).scalar_one()
        )
    return report


async def _import_row(rt: Runtime, row: StatementRow, resolve_customer: CustomerResolver, actor: str) -> RowOutcome:
    out = RowOutcome(row.line, row.reference, "error", "", amount_fen=row.amount_fen)
    try:
        out.customer_id = await _payer(rt, row, resolve_customer)
        note = " ".join(p for p in (f"付款方：{row.payer}" if row.payer else "", row.memo) if p)
        result = await record_payment(
            rt,
            customer_id=out.customer_id,
            amount_fen=row.amount_fen,
            reference=row.reference,
            method=row.method,
            source="import",
            received_at=row.received_at,
            invoices_named=row.invoices or None,
            actor=actor,
            note=note,
        )
    except PaymentConflict as exc:
        out.status, out.message = "conflict", exc.message
        return out
    except DomainError as exc:
        out.message = exc.message
        return out
    out.allocations, out.credit_fen = list(result.allocations), result.credit_fen
    if result.duplicate:
        out.status, out.message = "duplicate", "已导入过，未做更改 (already recorded)"
    else:
        out.status, out.message = "recorded", "已登记"
    return out


async def _payer(rt: Runtime, row: StatementRow, resolve_customer: CustomerResolver) -> int:
    async with rt.db.read() as conn:
        by_column = await resolve_customer(conn, row.customer) if row.customer else None
        if row.customer and by_column is None:
            raise CustomerNotFound(f"没有这个客户：{row.customer} (unknown customer)", customer=row.customer)
        owners: dict[str, int] = {}
        if row.invoices:
            found = await conn.execute(sa.select(invoices.c.number, invoices.c.customer_id).where(invoices.c.number.in_(row.invoices)))
            owners = {r.number: int(r.customer_id) for r in found}
    unknown = [n for n in row.invoices if n not in owners]
    if unknown and by_column is None:
        raise InvalidInput(f"备注中的发票不存在：{', '.join(unknown)} (unknown invoice in memo)")
    by_memo = set(owners.values())
    if by_column is not None:
        if by_memo - {by_column}:
            raise InvalidInput("备注中的发票不属于 customer 列的客户 (memo invoices belong to another customer)")
        return by_column
    if len(by_memo) == 1:
        return by_memo.pop()
    if len(by_memo) > 1:
        raise InvalidInput("备注中的发票属于不同客户，请分开登记 (memo invoices of several customers)")
    raise CustomerNotFound("无法确定付款客户：请填写 customer 列（客户 external_userid）或在备注中写发票号（如 INV100001）")


@dataclass(frozen=True)
class ImportSummary:
    id: int
    filename: str
    imported_at: dt.datetime
    imported_by: str
    counts: dict[str, int]


async def list_imports(rt: Runtime, *, limit: int = 20) -> list[ImportSummary]:
    async with rt.db.read() as conn:
        rows = await conn.execute(sa.select(payment_imports).order_by(payment_imports.c.id.desc()).limit(limit))
        return [ImportSummary(int(r.id), r.filename, r.imported_at, r.imported_by, dict(r.report.get("counts", {}))) for r in rows]


async def get_import(rt: Runtime, import_id: int) -> dict[str, Any]:
    """The stored report of one import (as returned by the import)."""
    async with rt.db.read() as conn:
        row = (await conn.execute(sa.select(payment_imports).where(payment_imports.c.id == import_id))).first()
    if row is None:
        raise NotFound(f"没有这次导入 #{import_id} (import not found)", import_id=import_id)
    return {**dict(row.report), "import_id": int(row.id)}


async def get_import_report(rt: Runtime, import_id: int) -> ImportReport:
    """:func:`get_import` as its typed value (the console's import page)."""
    stored = await get_import(rt, import_id)
    return ImportReport.from_json(stored, int(stored["import_id"]))
