"""Lead files (线索导入): CSV (UTF-8 or GBK, as Excel saves it) or xlsx with a header row in Chinese or English; each
row checked on its own so that a bad row is reported with its line and the good ones still arrive."""

from __future__ import annotations

from dataclasses import dataclass, field

from fulfillment.catalog.files import MAX_FILE_BYTES, CatalogFileError, csv_table, decode_csv, is_xlsx, xlsx_table
from scrm.core.errors import DomainError
from scrm.core.runtime import Runtime
from scrm.sales.leads.domain import LeadSource
from scrm.sales.leads.services import NewLead, create_lead

# Header → field. The first row names the columns; any order; unknown columns are ignored (and reported).
COLUMNS = {
    "姓名": "name",
    "name": "name",
    "联系人": "name",
    "电话": "phone",
    "手机": "phone",
    "手机号": "phone",
    "phone": "phone",
    "公司": "corp_name",
    "公司名称": "corp_name",
    "corp_name": "corp_name",
    "地区": "region",
    "区域": "region",
    "region": "region",
    "备注": "remark",
    "需求": "remark",
    "remark": "remark",
    "负责人": "owner",
    "owner": "owner",
    "来源说明": "source_ref",
    "source_ref": "source_ref",
}
TEMPLATE_HEADER = "姓名,电话,公司,地区,备注,负责人"


class LeadFileError(CatalogFileError):
    """The file as a whole cannot be read; the message is Chinese."""


@dataclass
class ImportReport:
    read_as: str
    created: int = 0
    duplicates: int = 0
    errors: list[tuple[int, str]] = field(default_factory=list)
    ignored_columns: list[str] = field(default_factory=list)

    @property
    def summary(self) -> str:
        text = f"已导入 {self.created} 条线索"
        if self.duplicates:
            text += f"，{self.duplicates} 条与已有线索或客户重复（已记在原线索上）"
        if self.errors:
            text += f"，{len(self.errors)} 行有误未导入：" + "；".join(f"第 {n} 行 {why}" for n, why in self.errors[:20])
            if len(self.errors) > 20:
                text += f"……（共 {len(self.errors)} 行）"
        if self.ignored_columns:
            text += f"。未识别的列已忽略：{'、'.join(self.ignored_columns)}"
        return text


def read_table(filename: str, raw: bytes) -> tuple[list[tuple[int, list[str]]], str]:
    if len(raw) > MAX_FILE_BYTES:
        raise LeadFileError(f"文件太大（最多 {MAX_FILE_BYTES // 1024 // 1024} MB）")
    if not raw.strip():
        raise LeadFileError("文件是空的")
    if is_xlsx(filename, raw):
        return xlsx_table(raw), "xlsx"
    text, encoding = decode_csv(raw)
    return csv_table(text), f"{encoding} CSV"


def header_map(header: list[str]) -> tuple[dict[int, str], list[str]]:
    mapping: dict[int, str] = {}
    ignored = []
    for i, name in enumerate(header):
        key = name.strip().lstrip("\ufeff").lower() if name.strip().isascii() else name.strip()
        if key in COLUMNS:
            mapping[i] = COLUMNS[key]
        elif key:
            ignored.append(name.strip())
    if not {"name", "phone", "corp_name"} & set(mapping.values()):
        raise LeadFileError(f"第一行应是列名，至少包含“姓名”“电话”“公司”之一（模板：{TEMPLATE_HEADER}）")
    return mapping, ignored


async def import_leads(rt: Runtime, filename: str, raw: bytes, *, actor: str) -> ImportReport:
    """Each row becomes a lead (source ``import``) in its own transaction: de-duplicated and assigned like any other."""
    table, read_as = read_table(filename, raw)
    if not table:
        raise LeadFileError("文件是空的")
    mapping, ignored = header_map(table[0][1])
    report = ImportReport(read_as, ignored_columns=ignored)
    for number, cells in table[1:]:
        values = {field: cells[i].strip() for i, field in mapping.items() if i < len(cells) and cells[i].strip()}
        if not values:
            continue  # a blank line
        owner = values.pop("owner", None)
        new = NewLead(source=LeadSource.IMPORT, source_ref=values.pop("source_ref", filename[:128]), owner=owner, **values)
        try:
            async with rt.db.write() as conn:
                arrived = await create_lead(conn, new, rt.clock.now(), actor=actor)
        except DomainError as exc:
            report.errors.append((number, exc.message))
            continue
        if arrived.duplicate:
            report.duplicates += 1
        else:
            report.created += 1
    return report
