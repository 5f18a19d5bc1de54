"""Field permissions (字段权限), the pure part: the protected fields, what each role may do with them by default, and
how a phone number is masked.

Three fields carry the rules businesses write ("只有财务人员才能修改信用额度", "销售看不到进价", "客户电话对营销打码"):
- ``phone`` — customers' phone numbers (personal data; a supplier's number is business data and not governed):
  visible, masked (138****1234) or hidden;
- ``credit_limit`` — a customer's credit limit and what a credit hold shows of it: edit, read or hidden;
- ``cost`` — purchase prices (进价) on purchase orders and reorder suggestions: visible or hidden.
A person with several roles gets the most their roles allow. The admin can change any role's mode per field.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass

from scrm.core.errors import InvalidInput
from scrm.crm.staff.domain import ROLE_ADMIN, ROLE_FINANCE, ROLE_MARKETER, ROLE_NAMES_ZH, ROLE_OPERATIONS, ROLE_SALES


@dataclass(frozen=True)
class FieldSpec:
    label: str
    modes: tuple[str, ...]  # most open first


FIELDS: dict[str, FieldSpec] = {
    "phone": FieldSpec("客户电话号码", ("visible", "masked", "hidden")),
    "credit_limit": FieldSpec("信用额度", ("edit", "read", "hidden")),
    "cost": FieldSpec("采购成本（进价）", ("visible", "hidden")),
}
MODES_ZH = {"visible": "可见", "masked": "打码显示", "hidden": "隐藏", "edit": "可查看和修改", "read": "只读"}
DEFAULTS: dict[str, dict[str, str]] = {
    ROLE_ADMIN: {"phone": "visible", "credit_limit": "edit", "cost": "visible"},
    ROLE_SALES: {"phone": "visible", "credit_limit": "read", "cost": "hidden"},
    ROLE_FINANCE: {"phone": "visible", "credit_limit": "edit", "cost": "visible"},
    ROLE_OPERATIONS: {"phone": "masked", "credit_limit": "read", "cost": "visible"},
    ROLE_MARKETER: {"phone": "masked", "credit_limit": "hidden", "cost": "hidden"},
}
OPEN = {field: spec.modes[0] for field, spec in FIELDS.items()}  # no person behind the work (jobs, chat): nothing to hide

# A mainland mobile (11 digits from 1[3-9]) or a landline with its area code; digits inside longer numbers are left.
PHONE = re.compile(r"(?<!\d)(?:1[3-9]\d{9}|0\d{2,3}-?\d{7,8})(?!\d)")


def mask_phone(text: str) -> str:
    """Every phone number in ``text`` with its middle hidden: 13812341234 → 138****1234, 021-12345678 → 021****5678."""
    return PHONE.sub(lambda m: m.group(0)[:3] + "****" + m.group(0)[-4:], text)


def strip_phone(text: str) -> str:
    return PHONE.sub("（已隐藏）", text)


def resolve(roles: Collection[str], overrides: Mapping[tuple[str, str], str]) -> dict[str, str]:
    """Field → the most open mode any of ``roles`` has (an override replaces a role's default)."""
    out: dict[str, str] = {}
    for field, spec in FIELDS.items():
        modes = [overrides.get((role, field), DEFAULTS.get(role, {}).get(field, spec.modes[-1])) for role in roles]
        out[field] = min(modes, key=spec.modes.index) if modes else spec.modes[-1]
    return out


def check_mode(role: str, field: str, mode: str) -> None:
    if role not in ROLE_NAMES_ZH:
        raise InvalidInput(f"没有这个角色：{role} (role)", field="role")
    if field not in FIELDS:
        raise InvalidInput(f"没有这个受控字段：{field} (field)", field="field")
    if mode not in FIELDS[field].modes:
        allowed = "、".join(MODES_ZH[m] for m in FIELDS[field].modes)
        raise InvalidInput(f"{FIELDS[field].label}只能设为：{allowed} (mode)", field="mode")
    if role == ROLE_ADMIN and mode != FIELDS[field].modes[0]:
        raise InvalidInput("管理员的字段权限不能收窄（管理员须能看到并修改一切，才能管理权限）(admin stays open)", field="role")
