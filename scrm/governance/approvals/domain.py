"""Approval rules (审批规则), the pure part: what a rule may say, whether it can ever match, whether a document
matches it, and how a chain of steps advances.

A rule = a document type + conditions (all must hold) + an approver chain. Conditions compare the document's
facts: ``{"field": "amount_fen", "op": ">=", "value": 10000000}`` ("超过10万元的订单"). A rule whose conditions can
never all hold (金额 ≥ 10万 且 金额 < 5万) is refused with the reason: a rule nobody can trigger is a mistake
its author wants to hear about, not a silent no-op. Steps: ``{"role": "finance"}`` (anyone holding the role),
``{"lead": true}`` (the requester's 直属上级 in WeCom) or ``{"member": "userid"}``; ``mode`` "sequential" needs each
step in order, "any" one approval from any of them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from scrm.core.errors import Conflict, Forbidden, InvalidInput
from scrm.crm.staff.domain import ROLE_NAMES_ZH

MODES = {"sequential": "依次审批", "any": "任一人审批"}
NUMBER_OPS = (">", ">=", "<", "<=", "==", "!=")
TEXT_OPS = ("==", "!=", "in", "not_in")
LIST_OPS = ("contains", "not_contains")
MAX_CONDITIONS = 10
MAX_STEPS = 5


@dataclass(frozen=True)
class FactSpec:
    label: str  # how people call it, in the reasons
    kind: str  # number | text | list
    unit: str = ""


# What each document type offers to conditions, and its name. A type is listed only once its documents wait for
# approval (their service asks :func:`scrm.governance.approvals.services.request_approval`).
DOC_TYPES: dict[str, tuple[str, dict[str, FactSpec]]] = {
    "order": (
        "订单",
        {
            "amount_fen": FactSpec("订单金额", "number", "分"),
            "qty": FactSpec("商品件数", "number", "件"),
            "category": FactSpec("商品分类", "list"),
            "source": FactSpec("下单来源", "text"),
        },
    ),
    "purchase_order": (
        "采购单",
        {
            "amount_fen": FactSpec("采购金额", "number", "分"),
            "supplier": FactSpec("供应商", "text"),
        },
    ),
    "price_change": (
        "改价",
        {
            "change_pct": FactSpec("调价幅度（%，降价为负）", "number", "%"),
            "new_price_fen": FactSpec("新售价", "number", "分"),
            "category": FactSpec("商品分类", "list"),
        },
    ),
    "refund": (
        "退款",
        {
            "amount_fen": FactSpec("退款金额", "number", "分"),
        },
    ),
    "quote": (
        "报价单",
        {
            "amount_fen": FactSpec("报价金额", "number", "分"),
            "discount_pct": FactSpec("最大折扣（%）", "number", "%"),
        },
    ),
    "credit_release": (
        "信用放行",
        {
            "amount_fen": FactSpec("订单金额", "number", "分"),
            "over_limit_fen": FactSpec("超出额度", "number", "分"),
        },
    ),
}
OPS_ZH = {">": "大于", ">=": "不小于", "<": "小于", "<=": "不大于", "==": "等于", "!=": "不等于", "in": "属于", "not_in": "不属于"}
OPS_ZH.update(contains="包含", not_contains="不包含")


class ApprovalRuleInvalid(InvalidInput):
    code = "approval_rule_invalid"


class NotYourApproval(Forbidden):
    code = "not_your_approval"


class ApprovalClosed(Conflict):
    code = "approval_closed"


@dataclass(frozen=True)
class Condition:
    field: str
    op: str
    value: Any

    def to_json(self) -> dict[str, Any]:
        return {"field": self.field, "op": self.op, "value": self.value}

    def describe(self, doc_type: str) -> str:
        spec = DOC_TYPES[doc_type][1][self.field]
        value = self.value
        if spec.unit == "分" and isinstance(value, int):
            value = f"{value / 100:,.2f} 元"
        elif isinstance(value, list):
            value = "、".join(str(v) for v in value)
        return f"{spec.label}{OPS_ZH[self.op]} {value}"


def check_conditions(doc_type: str, raw: Iterable[Mapping[str, Any]]) -> tuple[Condition, ...]:
    """The conditions as typed values; ApprovalRuleInvalid names the first one that is malformed, and refuses a set
    that no document could ever meet (with the reason)."""
    if doc_type not in DOC_TYPES:
        kinds = "、".join(f"{k}（{v[0]}）" for k, v in DOC_TYPES.items())
        raise ApprovalRuleInvalid(f"单据类型需为 {kinds} 之一 (doc_type)", field="doc_type")
    facts = DOC_TYPES[doc_type][1]
    out: list[Condition] = []
    items = list(raw)
    if len(items) > MAX_CONDITIONS:
        raise ApprovalRuleInvalid(f"条件最多 {MAX_CONDITIONS} 个 (conditions)", field="conditions")
    for i, item in enumerate(items):
        name, op, value = item.get("field"), item.get("op"), item.get("value")
        where = f"第 {i + 1} 个条件"
        if name not in facts:
            names = "、".join(f"{k}（{s.label}）" for k, s in facts.items())
            raise ApprovalRuleInvalid(f"{where}：{DOC_TYPES[doc_type][0]}可用的字段是 {names} (unknown field {name!r})", field="conditions")
        spec = facts[str(name)]
        ops = {"number": NUMBER_OPS, "text": TEXT_OPS, "list": LIST_OPS + TEXT_OPS[2:]}[spec.kind]
        if op not in ops:
            raise ApprovalRuleInvalid(f"{where}：{spec.label}只能用 {' '.join(ops)} 比较 (op)", field="conditions")
        if spec.kind == "number":
            if not isinstance(value, int) or isinstance(value, bool) or abs(value) > 10**15:
                raise ApprovalRuleInvalid(f"{where}：{spec.label}要写整数（{spec.unit}）(value must be an integer)", field="conditions")
        elif op in ("in", "not_in"):
            if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value) or len(value) > 50:
                raise ApprovalRuleInvalid(
                    f'{where}：{OPS_ZH[str(op)]}需要一组文字，如 ["饮料", "粮油"] (value must be a list)', field="conditions"
                )
            value = [v.strip() for v in value]
        elif not isinstance(value, str) or not value.strip() or len(value) > 64:
            raise ApprovalRuleInvalid(f"{where}：{spec.label}要写一段文字 (value must be text)", field="conditions")
        else:
            value = value.strip()
        out.append(Condition(str(name), str(op), value))
    _refuse_impossible(doc_type, out)
    return tuple(out)


def _refuse_impossible(doc_type: str, conditions: list[Condition]) -> None:
    """ApprovalRuleInvalid when the conditions contradict each other (or a fact's own range)."""
    by_field: dict[str, list[Condition]] = {}
    for c in conditions:
        by_field.setdefault(c.field, []).append(c)
    for name, group in by_field.items():
        spec = DOC_TYPES[doc_type][1][name]
        reason = " 且 ".join(c.describe(doc_type) for c in group)
        impossible = ApprovalRuleInvalid(
            f"条件不可能同时满足：{reason}。请检查数值和比较方向 (conditions can never all hold)", field="conditions"
        )
        if spec.kind == "number":
            low, high = (0.0 if spec.unit in ("分", "件") else -math.inf), math.inf  # amounts and counts are never negative
            excluded: set[int] = set()
            for c in group:
                v = float(c.value)
                if c.op == ">":
                    low = max(low, v + 1)
                elif c.op == ">=":
                    low = max(low, v)
                elif c.op == "<":
                    high = min(high, v - 1)
                elif c.op == "<=":
                    high = min(high, v)
                elif c.op == "==":
                    low, high = max(low, v), min(high, v)
                else:
                    excluded.add(int(c.value))
            if low > high or (low == high and int(low) in excluded):
                raise impossible
        else:
            equal = {c.value for c in group if c.op == "=="}
            allowed_sets = [set(c.value) for c in group if c.op == "in"]
            denied = {c.value for c in group if c.op == "!="} | {v for c in group if c.op == "not_in" for v in c.value}
            if len(equal) > 1 or equal & denied:
                raise impossible
            if allowed_sets:
                common = set.intersection(*allowed_sets) - denied
                if not common or (equal and not equal <= common):
                    raise impossible
            present = {c.value for c in group if c.op == "contains"}
            absent = {c.value for c in group if c.op == "not_contains"}
            if present & absent:
                raise impossible


@dataclass(frozen=True)
class StepSpec:
    kind: str  # role | lead | member
    value: str = ""  # the role, or the member's userid

    def to_json(self) -> dict[str, Any]:
        return {"lead": True} if self.kind == "lead" else {self.kind: self.value}

    @property
    def label(self) -> str:
        if self.kind == "role":
            return f"{ROLE_NAMES_ZH[self.value]}角色"
        if self.kind == "lead":
            return "申请人的直属上级"
        return f"成员 {self.value}"


def check_steps(raw: Iterable[Mapping[str, Any]], mode: str) -> tuple[StepSpec, ...]:
    if mode not in MODES:
        raise ApprovalRuleInvalid("审批方式需为 sequential（依次）或 any（任一人）(mode)", field="mode")
    items = list(raw)
    if not 1 <= len(items) <= MAX_STEPS:
        raise ApprovalRuleInvalid(f"审批人需为 1 到 {MAX_STEPS} 步 (steps)", field="steps")
    out: list[StepSpec] = []
    for i, item in enumerate(items):
        where = f"第 {i + 1} 步审批人"
        if set(item) == {"role"} and item["role"] in ROLE_NAMES_ZH:
            out.append(StepSpec("role", str(item["role"])))
        elif set(item) == {"lead"} and item["lead"] is True:
            out.append(StepSpec("lead"))
        elif set(item) == {"member"} and isinstance(item["member"], str) and 0 < len(item["member"].strip()) <= 64:
            out.append(StepSpec("member", item["member"].strip()))
        else:
            roles = "、".join(ROLE_NAMES_ZH)
            raise ApprovalRuleInvalid(
                f'{where}需为 {{"role": {roles} 之一}}、{{"lead": true}} 或 {{"member": 成员账号}} (steps)', field="steps"
            )
    return tuple(out)


def matches(conditions: Iterable[Condition], facts: Mapping[str, Any]) -> bool:
    """True when the document's facts meet every condition (a fact the document lacks meets none)."""
    for c in conditions:
        have = facts.get(c.field)
        if have is None:
            return False
        if isinstance(have, list | tuple):
            items = {str(x) for x in have}
            ok = {
                "contains": c.value in items,
                "not_contains": c.value not in items,
                "in": bool(items & set(c.value)),
                "not_in": not (items & set(c.value)),
            }.get(c.op, False)
        elif c.op in ("in", "not_in"):
            ok = (str(have) in c.value) == (c.op == "in")
        else:
            ok = {
                ">": have > c.value,
                ">=": have >= c.value,
                "<": have < c.value,
                "<=": have <= c.value,
                "==": have == c.value,
                "!=": have != c.value,
            }[c.op]
        if not ok:
            return False
    return True


def next_after_approval(mode: str, steps: list[dict[str, Any]], current: int) -> int | None:
    """The step that waits next once ``current`` is approved, or None when the approval is complete."""
    if mode == "any":
        return None
    return current + 1 if current + 1 < len(steps) else None
