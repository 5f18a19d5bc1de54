"""Coupon rules (优惠券) with plain values: which lines a coupon covers, how much it takes off, which coupons an
order should use, whether a template may still issue, and when a coupon is usable. No I/O.

Rules
* Eligible lines: a template with neither SKUs nor categories covers every line; otherwise a line is covered
  when its SKU is listed *or* its category is listed.
* 满减 (fixed): ``amount_off`` once the eligible subtotal reaches ``threshold`` (≥), never more than that subtotal.
* 折扣 (percent): ``percent_off``% of the eligible subtotal, rounded *down* to the fen, capped by ``max_off``;
  it also needs the eligible subtotal to reach ``threshold``.
* Stacking: by default one coupon per order. Coupons whose template is ``stackable`` combine with each other
  (one per template), never with a non-stackable one. Each coupon is computed on the undiscounted lines; the sum
  is capped at the order subtotal. The best choice is the larger of (best single coupon, best stackable set);
  ties go to fewer coupons, then the one expiring first.
* Budget: a template issues while ``issued_count + 1 ≤ budget_count`` and ``issued_fen + face ≤ budget_fen``;
  the face value of a percent coupon is its cap.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from scrm.campaigns.coupons.models import CouponKind
from scrm.core.errors import Conflict, InvalidInput

MAX_SKUS = 500
KIND_ZH = {CouponKind.FIXED: "满减", CouponKind.PERCENT: "折扣"}  # the kinds a template may have, in the order forms offer them
DEFAULT_KIND = CouponKind.FIXED  # what a new template starts as
# A distribution to a segment's status as staff read it (models.IssueRunStatus).
ISSUE_RUN_STATUS_ZH = {"queued": "排队中", "running": "发放中", "done": "已完成", "partial": "部分失败", "failed": "已失败"}


class CouponUnavailable(Conflict):
    """The template cannot issue now: inactive, outside its validity, budget spent or per-customer limit reached."""

    code = "coupon_unavailable"


class TemplateInUse(Conflict):
    """The discount terms of a template cannot change once coupons of it are out."""

    code = "template_in_use"


@dataclass(frozen=True)
class CouponRule:
    """The discount terms of a template (the parts that decide the maths)."""

    kind: str
    amount_off_fen: int = 0
    percent_off: int = 0
    max_off_fen: int | None = None
    threshold_fen: int = 0
    skus: frozenset[str] = frozenset()
    categories: frozenset[str] = frozenset()
    stackable: bool = False

    @property
    def face_fen(self) -> int:
        """The most one coupon can take off: what it costs the budget."""
        return self.amount_off_fen if self.kind == CouponKind.FIXED else int(self.max_off_fen or 0)

    @property
    def label(self) -> str:
        """Short Chinese description: 满100减10 / 立减5 / 9折 最高减20 / 满50享8.5折 最高减20."""
        if self.kind == CouponKind.FIXED:
            off = yuan_text(self.amount_off_fen)
            return f"满{yuan_text(self.threshold_fen)}减{off}" if self.threshold_fen else f"立减{off}"
        zhe = (100 - self.percent_off) / 10
        rate = f"{zhe:g}折"
        cap = f" 最高减{yuan_text(self.max_off_fen)}" if self.max_off_fen else ""
        return (f"满{yuan_text(self.threshold_fen)}享{rate}" if self.threshold_fen else rate) + cap


@dataclass(frozen=True)
class Line:
    sku: str
    category: str
    line_total_fen: int


@dataclass(frozen=True)
class Candidate:
    """A coupon in the customer's wallet that an order could use."""

    coupon_id: int
    template_id: int
    rule: CouponRule
    expires_at: dt.datetime | None = None


@dataclass(frozen=True)
class Choice:
    coupons: tuple[Candidate, ...] = ()
    amounts: tuple[int, ...] = ()  # discount of each chosen coupon, same order
    discount_fen: int = 0

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(c.rule.label for c in self.coupons)


@dataclass(frozen=True)
class Budget:
    budget_count: int | None
    budget_fen: int | None
    issued_count: int
    issued_fen: int


@dataclass(frozen=True)
class Validity:
    valid_from: dt.datetime | None = None
    valid_until: dt.datetime | None = None
    valid_days: int | None = None


@dataclass
class TemplateTerms:
    """A template being created or changed, validated by :func:`validate_terms`."""

    name: str
    rule: CouponRule
    budget_count: int | None = None
    budget_fen: int | None = None
    per_customer_limit: int = 1
    validity: Validity = field(default_factory=Validity)


def yuan_text(fen: int | None) -> str:
    """1000 → '10', 1050 → '10.5', 1005 → '10.05' (labels, not amounts to compute with)."""
    yuan, cents = divmod(int(fen or 0), 100)
    return str(yuan) if not cents else f"{yuan}.{cents:02d}".rstrip("0")


# ---- discount maths -------------------------------------------------------------------------------------
def covers(rule: CouponRule, line: Line) -> bool:
    if not rule.skus and not rule.categories:
        return True
    return line.sku in rule.skus or (bool(line.category) and line.category in rule.categories)


def eligible_subtotal(rule: CouponRule, lines: Iterable[Line]) -> int:
    return sum(ln.line_total_fen for ln in lines if covers(rule, ln))


def discount_for(rule: CouponRule, lines: Sequence[Line]) -> int:
    """What this coupon takes off these lines, in fen (0 when it does not apply)."""
    base = eligible_subtotal(rule, lines)
    if base <= 0 or base < rule.threshold_fen:
        return 0
    if rule.kind == CouponKind.FIXED:
        return min(rule.amount_off_fen, base)
    if rule.kind == CouponKind.PERCENT:
        off = base * rule.percent_off // 100  # round down to the fen: never give more than promised
        if rule.max_off_fen is not None:
            off = min(off, rule.max_off_fen)
        return min(off, base)
    return 0


def usable_at(candidate_expires_at: dt.datetime | None, valid_from: dt.datetime | None, now: dt.datetime) -> bool:
    return (valid_from is None or valid_from <= now) and (candidate_expires_at is None or now < candidate_expires_at)


def _rank(choice: Choice) -> tuple[int, int, float]:
    far = dt.datetime.max.replace(tzinfo=dt.UTC).timestamp()
    first_expiry = min((c.expires_at.timestamp() if c.expires_at else far for c in choice.coupons), default=far)
    return (choice.discount_fen, -len(choice.coupons), -first_expiry)


def best_choice(candidates: Sequence[Candidate], lines: Sequence[Line]) -> Choice:
    """The coupons this order should use (see the module's stacking rules); empty when none applies."""
    subtotal = sum(ln.line_total_fen for ln in lines)
    if subtotal <= 0:
        return Choice()
    options: list[Choice] = []
    for cand in candidates:
        off = discount_for(cand.rule, lines)
        if off > 0:
            options.append(Choice((cand,), (min(off, subtotal),), min(off, subtotal)))
    # Stackable: the best coupon of each template (largest, then expiring first), biggest first until the cap.
    per_template: dict[int, tuple[Candidate, int]] = {}
    for cand in candidates:
        if not cand.rule.stackable:
            continue
        off = discount_for(cand.rule, lines)
        if off <= 0:
            continue
        held = per_template.get(cand.template_id)
        if held is None or _rank(Choice((cand,), (off,), off)) > _rank(Choice((held[0],), (held[1],), held[1])):
            per_template[cand.template_id] = (cand, off)
    if len(per_template) > 1:
        chosen: list[Candidate] = []
        amounts: list[int] = []
        left = subtotal
        for cand, off in sorted(per_template.values(), key=lambda p: (-p[1], p[0].coupon_id)):
            if left <= 0:
                break
            take = min(off, left)
            chosen.append(cand)
            amounts.append(take)
            left -= take
        options.append(Choice(tuple(chosen), tuple(amounts), sum(amounts)))
    if not options:
        return Choice()
    return max(options, key=_rank)


# ---- issuing ---------------------------------------------------------------------------------------------
def within_budget(budget: Budget, face_fen: int) -> bool:
    if budget.budget_count is not None and budget.issued_count + 1 > budget.budget_count:
        return False
    return budget.budget_fen is None or budget.issued_fen + face_fen <= budget.budget_fen


def expiry_for(validity: Validity, issued_at: dt.datetime) -> dt.datetime | None:
    """When a coupon issued at ``issued_at`` stops being usable: the earlier of the absolute end and N days."""
    ends = [validity.valid_until] if validity.valid_until else []
    if validity.valid_days:
        ends.append(issued_at + dt.timedelta(days=validity.valid_days))
    return min(ends) if ends else None


def check_can_issue(
    active: bool, validity: Validity, budget: Budget, face_fen: int, held_by_customer: int, limit: int, now: dt.datetime
) -> None:
    """Raise CouponUnavailable (with a reason) unless one more coupon may be issued to this customer now."""
    if not active:
        raise CouponUnavailable("该优惠券已停用 (template inactive)", reason="inactive")
    if validity.valid_until is not None and now >= validity.valid_until:
        raise CouponUnavailable("该优惠券已过期 (template expired)", reason="expired")
    if held_by_customer >= limit:
        raise CouponUnavailable(f"每位客户限领 {limit} 张 (per-customer limit reached)", reason="per_customer_limit")
    if not within_budget(budget, face_fen):
        raise CouponUnavailable("优惠券预算已用完 (budget exhausted)", reason="budget")


# ---- template validation ---------------------------------------------------------------------------------
def _positive_or_none(value: int | None, name: str) -> None:
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value <= 0):
        raise InvalidInput(f"{name} 必须是正整数或留空 ({name} must be a positive integer or null)", field=name)


def validate_terms(terms: TemplateTerms) -> None:
    """Refuse terms that cannot be honoured; messages name the field."""
    r = terms.rule
    if not terms.name.strip() or len(terms.name) > 64:
        raise InvalidInput("名称不能为空且不超过 64 字 (name is required, ≤ 64)", field="name")
    if r.threshold_fen < 0:
        raise InvalidInput("门槛不能为负 (threshold_fen must be ≥ 0)", field="threshold_fen")
    if r.kind == CouponKind.FIXED:
        if r.amount_off_fen <= 0:
            raise InvalidInput("满减金额必须大于 0 (amount_off_fen must be > 0)", field="amount_off_fen")
        if r.threshold_fen and r.threshold_fen < r.amount_off_fen:
            raise InvalidInput("使用门槛不能低于减免金额：满减券要“满 X 元减 Y 元”，X 须不小于 Y", field="threshold_fen")
    elif r.kind == CouponKind.PERCENT:
        if not 1 <= r.percent_off <= 99:
            raise InvalidInput("折扣比例须在 1–99 之间 (percent_off must be 1–99)", field="percent_off")
        if r.max_off_fen is None or r.max_off_fen <= 0:
            raise InvalidInput("折扣券必须设置最高优惠金额 (max_off_fen is required for percent coupons)", field="max_off_fen")
    else:
        raise InvalidInput("券类型只能是 fixed（满减）或 percent（折扣） (kind must be fixed or percent)", field="kind")
    if len(r.skus) > MAX_SKUS or len(r.categories) > MAX_SKUS:
        raise InvalidInput(f"商品/类目最多 {MAX_SKUS} 个 (at most {MAX_SKUS} skus/categories)", field="skus")
    _positive_or_none(terms.budget_count, "budget_count")
    _positive_or_none(terms.budget_fen, "budget_fen")
    if terms.budget_fen is not None and terms.budget_fen < r.face_fen:
        raise InvalidInput("预算金额不足一张券的面额 (budget_fen below one coupon's face value)", field="budget_fen")
    if terms.per_customer_limit < 1:
        raise InvalidInput("每人限领至少 1 张 (per_customer_limit must be ≥ 1)", field="per_customer_limit")
    v = terms.validity
    _positive_or_none(v.valid_days, "valid_days")
    if v.valid_from and v.valid_until and v.valid_from >= v.valid_until:
        raise InvalidInput("开始时间须早于结束时间 (valid_from must be before valid_until)", field="valid_until")
    for moment in (v.valid_from, v.valid_until):
        if moment is not None and moment.tzinfo is None:
            raise InvalidInput("时间须带时区 (times must carry a timezone)", field="valid_until")
