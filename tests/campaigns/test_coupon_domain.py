"""Coupon rules with plain values: thresholds, caps, SKU/category filters, rounding to the fen, stacking,
budgets, validity and template validation."""

from __future__ import annotations

import datetime as dt

import pytest

from scrm.campaigns.coupons.domain import (
    Budget,
    Candidate,
    CouponRule,
    CouponUnavailable,
    Line,
    TemplateTerms,
    Validity,
    best_choice,
    check_can_issue,
    discount_for,
    expiry_for,
    validate_terms,
    within_budget,
)
from scrm.core.clock import UTC
from scrm.core.errors import InvalidInput

NOW = dt.datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
WATER = Line("WATER-550", "饮料", 10800)  # 3箱 × ¥36
COLA = Line("COLA-330", "饮料", 5280)
RICE = Line("RICE-5KG", "粮油", 6990)
MAN100_10 = CouponRule("fixed", amount_off_fen=1000, threshold_fen=10000)


def cand(cid: int, rule: CouponRule, tid: int | None = None, expires: dt.datetime | None = None) -> Candidate:
    return Candidate(cid, tid if tid is not None else cid, rule, expires)


def test_fixed_applies_from_the_threshold_inclusive() -> None:
    assert discount_for(MAN100_10, [WATER]) == 1000
    assert discount_for(MAN100_10, [Line("X", "", 10000)]) == 1000
    assert discount_for(MAN100_10, [Line("X", "", 9999)]) == 0
    assert MAN100_10.label == "满100减10"
    # Never more than what it applies to.
    assert discount_for(CouponRule("fixed", amount_off_fen=500), [Line("X", "", 300)]) == 300
    assert CouponRule("fixed", amount_off_fen=550).label == "立减5.5"


def test_percent_rounds_down_to_the_fen_and_is_capped() -> None:
    ninety = CouponRule("percent", percent_off=10, max_off_fen=2000)
    assert discount_for(ninety, [Line("X", "", 10999)]) == 1099  # 1099.9 fen → 1099
    assert discount_for(ninety, [Line("X", "", 33333)]) == 2000  # cap
    assert discount_for(CouponRule("percent", percent_off=15, max_off_fen=10**6), [Line("X", "", 199)]) == 29  # 29.85 → 29
    assert ninety.label == "9折 最高减20"
    assert CouponRule("percent", percent_off=15, max_off_fen=2000, threshold_fen=5000).label == "满50享8.5折 最高减20"
    assert discount_for(CouponRule("percent", percent_off=10, max_off_fen=2000, threshold_fen=20000), [WATER]) == 0


def test_sku_and_category_filters_decide_the_eligible_subtotal() -> None:
    only_water = CouponRule("fixed", amount_off_fen=500, threshold_fen=10000, skus=frozenset({"WATER-550"}))
    assert discount_for(only_water, [WATER, RICE]) == 500
    assert discount_for(only_water, [COLA, RICE]) == 0  # ¥122.70 of other goods does not reach the threshold
    drinks = CouponRule("percent", percent_off=20, max_off_fen=100000, categories=frozenset({"饮料"}))
    assert discount_for(drinks, [WATER, COLA, RICE]) == (10800 + 5280) * 20 // 100
    either = CouponRule("fixed", amount_off_fen=100, skus=frozenset({"RICE-5KG"}), categories=frozenset({"饮料"}))
    assert discount_for(either, [Line("OIL", "粮油", 9000)]) == 0
    assert discount_for(either, [RICE]) == 100


def test_one_coupon_per_order_by_default_the_best_wins() -> None:
    small = cand(1, CouponRule("fixed", amount_off_fen=500, threshold_fen=5000))
    big = cand(2, MAN100_10)
    choice = best_choice([small, big], [WATER])
    assert [c.coupon_id for c in choice.coupons] == [2] and choice.discount_fen == 1000
    assert best_choice([small, big], [Line("X", "", 100)]).discount_fen == 0


def test_stackable_coupons_combine_but_never_with_a_non_stackable_one() -> None:
    s5 = cand(1, CouponRule("fixed", amount_off_fen=500, stackable=True))
    s8 = cand(2, CouponRule("fixed", amount_off_fen=800, stackable=True))
    s8_again = cand(3, CouponRule("fixed", amount_off_fen=800, stackable=True), tid=2)  # same template: one of them
    alone12 = cand(4, CouponRule("fixed", amount_off_fen=1200))
    choice = best_choice([s5, s8, s8_again, alone12], [WATER])
    assert choice.discount_fen == 1300 and {c.coupon_id for c in choice.coupons} in ({1, 2}, {1, 3})
    alone15 = cand(5, CouponRule("fixed", amount_off_fen=1500))
    assert [c.coupon_id for c in best_choice([s5, s8, alone15], [WATER]).coupons] == [5]
    # The sum is capped at the subtotal; a coupon adding nothing is not used up.
    tiny = [Line("X", "", 600)]
    capped = best_choice([s5, s8], tiny)
    assert capped.discount_fen == 600 and [c.coupon_id for c in capped.coupons] == [2]


def test_ties_prefer_the_coupon_expiring_first() -> None:
    later = cand(1, MAN100_10, tid=1, expires=NOW + dt.timedelta(days=9))
    sooner = cand(2, MAN100_10, tid=1, expires=NOW + dt.timedelta(days=2))
    assert [c.coupon_id for c in best_choice([later, sooner], [WATER]).coupons] == [2]


def test_budget_in_count_and_fen() -> None:
    assert within_budget(Budget(10, None, 9, 0), 1000)
    assert not within_budget(Budget(10, None, 10, 0), 1000)
    assert within_budget(Budget(None, 5000, 4, 4000), 1000)
    assert not within_budget(Budget(None, 5000, 4, 4500), 1000)
    assert within_budget(Budget(None, None, 10**6, 10**9), 1000)


def test_validity_absolute_or_days_after_issue_whichever_first() -> None:
    until = NOW + dt.timedelta(days=5)
    assert expiry_for(Validity(valid_until=until), NOW) == until
    assert expiry_for(Validity(valid_days=7), NOW) == NOW + dt.timedelta(days=7)
    assert expiry_for(Validity(valid_until=until, valid_days=7), NOW) == until
    assert expiry_for(Validity(), NOW) is None


def test_can_issue_names_the_reason() -> None:
    ok = Budget(10, None, 0, 0)
    check_can_issue(True, Validity(), ok, 1000, 0, 1, NOW)
    cases = [
        (False, Validity(), ok, 0, "inactive"),
        (True, Validity(valid_until=NOW), ok, 0, "expired"),
        (True, Validity(), ok, 1, "per_customer_limit"),
        (True, Validity(), Budget(10, None, 10, 0), 0, "budget"),
    ]
    for active, validity, budget, held, reason in cases:
        with pytest.raises(CouponUnavailable) as err:
            check_can_issue(active, validity, budget, 1000, held, 1, NOW)
        assert err.value.details["reason"] == reason


@pytest.mark.parametrize(
    ("rule", "extra", "field"),
    [
        (CouponRule("fixed"), {}, "amount_off_fen"),
        (CouponRule("fixed", amount_off_fen=1000, threshold_fen=500), {}, "threshold_fen"),
        (CouponRule("percent", percent_off=10), {}, "max_off_fen"),
        (CouponRule("percent", percent_off=100, max_off_fen=100), {}, "percent_off"),
        (CouponRule("gift"), {}, "kind"),
        (MAN100_10, {"budget_count": 0}, "budget_count"),
        (MAN100_10, {"budget_fen": 500}, "budget_fen"),
        (MAN100_10, {"validity": Validity(valid_from=NOW, valid_until=NOW)}, "valid_until"),
        (MAN100_10, {"name": " "}, "name"),
    ],
)
def test_template_validation(rule: CouponRule, extra: dict[str, object], field: str) -> None:
    terms = TemplateTerms(name="双十一", rule=rule)
    for k, v in extra.items():
        setattr(terms, k, v)
    with pytest.raises(InvalidInput) as err:
        validate_terms(terms)
    assert err.value.details["field"] == field


def test_valid_terms_pass() -> None:
    validate_terms(TemplateTerms("满100减10", MAN100_10, budget_count=10, budget_fen=10000, validity=Validity(valid_days=30)))
    validate_terms(TemplateTerms("饮料9折", CouponRule("percent", percent_off=10, max_off_fen=2000, categories=frozenset({"饮料"}))))
