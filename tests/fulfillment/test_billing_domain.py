"""Billing's pure rules with plain values: allocation, invoice states, aging buckets, the dunning schedule, the
credit check and the settings. Property-based where the rule is arithmetic."""

from __future__ import annotations

import datetime as dt
import tomllib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fulfillment.billing import domain as d
from fulfillment.billing.models import InvoiceStatus as I
from fulfillment.billing.services import CONFIG_FILE, load_billing_config
from fulfillment.orders import domain as orders_domain  # the credit check is an order rule (billing supplies the exposure)
from scrm.core import errors as d_errors

DAY0 = dt.date(2026, 11, 23)
dates = st.integers(min_value=-200, max_value=200).map(lambda n: DAY0 + dt.timedelta(days=n))
items = st.lists(
    st.builds(d.OpenItem, st.integers(min_value=1, max_value=10_000), dates, st.integers(min_value=0, max_value=10**7)),
    max_size=12,
    unique_by=lambda it: it.invoice_id,
)
amounts = st.integers(min_value=1, max_value=10**8)


# ---- allocation -------------------------------------------------------------------------------------------
@given(amounts, items)
def test_allocation_conserves_money_and_never_overpays(amount: int, pool: list[d.OpenItem]) -> None:
    plan = d.allocate(amount, pool)
    balances = {it.invoice_id: it.balance_fen for it in pool}
    assert plan.allocated_fen + plan.remainder_fen == amount
    assert plan.remainder_fen >= 0
    assert len({i for i, _ in plan.parts}) == len(plan.parts)
    for invoice_id, fen in plan.parts:
        assert 0 < fen <= balances[invoice_id]
    # The remainder exists only when every invoice is fully paid.
    if plan.remainder_fen:
        assert plan.allocated_fen == sum(balances.values())


@given(amounts, items)
def test_allocation_is_oldest_due_first(amount: int, pool: list[d.OpenItem]) -> None:
    plan = d.allocate(amount, pool)
    got = dict(plan.parts)
    for it in pool:
        if got.get(it.invoice_id):
            # Whatever falls due earlier (ties: lower id) is fully paid before this one gets anything.
            for other in pool:
                if (other.due_on, other.invoice_id) < (it.due_on, it.invoice_id):
                    assert got.get(other.invoice_id, 0) == other.balance_fen


@given(amounts, items, st.data())
def test_allocation_to_named_invoices_only_in_given_order(amount: int, pool: list[d.OpenItem], data: st.DataObject) -> None:
    named = data.draw(st.lists(st.sampled_from([it.invoice_id for it in pool]), unique=True) if pool else st.just([]))
    plan = d.allocate(amount, pool, named)
    assert {i for i, _ in plan.parts} <= set(named)
    positions = [named.index(i) for i, _ in plan.parts]
    assert positions == sorted(positions)
    assert plan.allocated_fen + plan.remainder_fen == amount


@pytest.mark.parametrize("bad", [0, -1, -10_000, 1.5, "100", True, None, 10**13])
def test_amount_must_be_positive_integer_fen(bad: object) -> None:
    with pytest.raises(d.InvalidAmount) as err:
        d.check_amount(bad)
    assert err.value.code == "invalid_amount"
    with pytest.raises(d.InvalidAmount):
        d.allocate(bad, [])  # type: ignore[arg-type]


def test_allocation_example() -> None:
    pool = [d.OpenItem(1, DAY0, 5000), d.OpenItem(2, DAY0 - dt.timedelta(days=5), 3000), d.OpenItem(3, DAY0, 0)]
    assert d.allocate(6000, pool) == d.Allocation(((2, 3000), (1, 3000)), 0)
    assert d.allocate(9000, pool) == d.Allocation(((2, 3000), (1, 5000)), 1000)
    assert d.allocate(4000, pool, [1]) == d.Allocation(((1, 4000),), 0)
    assert d.allocate(4000, pool, [3, 2]) == d.Allocation(((2, 3000),), 1000)


# ---- invoice states ---------------------------------------------------------------------------------------
@given(st.integers(min_value=0, max_value=10**9), st.data())
def test_invoice_status_follows_the_amounts(total: int, data: st.DataObject) -> None:
    paid = data.draw(st.integers(min_value=0, max_value=total))
    status = d.invoice_status(total, paid)
    assert status == (I.PAID if paid == total else I.PARTIALLY_PAID if paid else I.OPEN)
    with pytest.raises(ValueError):
        d.invoice_status(total, total + 1)
    with pytest.raises(ValueError):
        d.invoice_status(total, -1)


def test_due_date_and_numbers() -> None:
    assert d.due_date(DAY0, 0) == DAY0
    assert d.due_date(DAY0, 30) == dt.date(2026, 12, 23)
    with pytest.raises(d_errors.InvalidInput):
        d.due_date(DAY0, -1)
    assert d.invoice_number(1) == "INV100001"


@given(st.integers(min_value=0, max_value=10**6), st.lists(st.integers(min_value=0, max_value=10**6), max_size=6))
def test_order_discount_is_spent_once_over_its_invoices(discount: int, subtotals: list[int]) -> None:
    used = 0
    for sub in subtotals:
        took = d.invoice_discount(discount, used, sub)
        assert 0 <= took <= sub
        used += took
    assert used == min(discount, sum(subtotals))


# ---- aging ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("days_past", "bucket"),
    [
        (-30, "not_due"),
        (-1, "not_due"),
        (0, "not_due"),
        (1, "1-30"),
        (30, "1-30"),
        (31, "31-60"),
        (60, "31-60"),
        (61, "61-90"),
        (90, "61-90"),
        (91, "90+"),
    ],
)
def test_aging_bucket_boundaries(days_past: int, bucket: str) -> None:
    assert d.aging_bucket(DAY0 - dt.timedelta(days=days_past), DAY0) == bucket


@given(st.lists(st.tuples(st.sampled_from("abc"), dates, st.integers(min_value=-5, max_value=10**6)), max_size=30))
def test_aging_sums_every_open_balance_once(rows: list[tuple[str, dt.date, int]]) -> None:
    aged = d.age(rows, DAY0)
    for key in "abc":
        mine = [(due, b) for k, due, b in rows if k == key and b > 0]
        if not mine:
            assert key not in aged
            continue
        assert aged[key].total_fen == sum(b for _, b in mine)
        assert aged[key].overdue_fen == sum(b for due, b in mine if due < DAY0)
        assert aged[key].buckets["not_due"] == sum(b for due, b in mine if due >= DAY0)
        assert aged[key].overdue_fen == sum(aged[key].buckets[b] for b in d.OVERDUE_BUCKETS)
        assert aged[key].count == len(mine)


# ---- dunning ----------------------------------------------------------------------------------------------
LEVELS = d.DEFAULT_DUNNING


def simulate(due_on: dt.date, issued_on: dt.date, run_days: list[dt.date]) -> tuple[list[tuple[dt.date, str]], set[str]]:
    done: set[str] = set()
    sent = []
    for day in run_days:
        send, skip = d.dunning_plan(LEVELS, due_on=due_on, issued_on=issued_on, today=day, done=done)
        done |= {lv.name for lv in skip}
        if send is not None:
            assert send.name not in done
            done.add(send.name)
            sent.append((day, send.name))
    return sent, done


def test_daily_runs_send_each_level_on_its_day() -> None:
    issued = DAY0
    due = DAY0 + dt.timedelta(days=30)
    days = [issued + dt.timedelta(days=n) for n in range(90)]
    sent, _ = simulate(due, issued, days + days)  # the same days again: nothing more
    assert sent == [
        (due - dt.timedelta(days=3), "d-3"),
        (due + dt.timedelta(days=1), "d+1"),
        (due + dt.timedelta(days=15), "d+15"),
        (due + dt.timedelta(days=30), "d+30"),
    ]


def test_due_on_issue_skips_the_before_due_reminder() -> None:
    sent, done = simulate(DAY0, DAY0, [DAY0 + dt.timedelta(days=n) for n in range(3)])
    assert sent == [(DAY0 + dt.timedelta(days=1), "d+1")]
    assert "d-3" in done  # recorded as skipped, never sent later


def test_a_missed_week_sends_only_the_latest_level() -> None:
    due = DAY0
    sent, done = simulate(due, due - dt.timedelta(days=30), [due + dt.timedelta(days=20)])
    assert sent == [(due + dt.timedelta(days=20), "d+15")]
    assert done == {"d-3", "d+1", "d+15"}


@given(st.integers(min_value=0, max_value=60), st.lists(st.integers(min_value=-10, max_value=120), max_size=40))
def test_dunning_never_sends_a_level_twice(terms: int, offsets: list[int]) -> None:
    due = DAY0 + dt.timedelta(days=terms)
    sent, _ = simulate(due, DAY0, [DAY0 + dt.timedelta(days=o) for o in sorted(offsets)])
    names = [n for _, n in sent]
    assert len(names) == len(set(names))
    for day, name in sent:
        level = next(lv for lv in LEVELS if lv.name == name)
        assert due + dt.timedelta(days=level.days) <= day  # never early
        assert due + dt.timedelta(days=level.days) >= DAY0  # never a moment that passed before the invoice existed


# ---- credit limit -----------------------------------------------------------------------------------------
@given(
    st.one_of(st.none(), st.integers(min_value=0, max_value=10**7)),
    st.integers(min_value=0, max_value=10**7),
    st.integers(min_value=0, max_value=10**7),
    st.integers(min_value=0, max_value=10**7),
    st.integers(min_value=0, max_value=10**7),
)
def test_credit_check(limit: int | None, receivables: int, open_orders: int, credit: int, order: int) -> None:
    exposure = orders_domain.CreditExposure(limit, receivables, open_orders, credit)
    over = orders_domain.exceeds_credit_limit(exposure, order)
    assert over == (limit is not None and receivables + open_orders + order - credit > limit)


def test_credit_check_example() -> None:
    exposure = orders_domain.CreditExposure(100_000, 60_000, 30_000, 0)
    assert not orders_domain.exceeds_credit_limit(exposure, 10_000)  # exactly at the limit is fine
    assert orders_domain.exceeds_credit_limit(exposure, 10_001)
    assert not orders_domain.exceeds_credit_limit(orders_domain.CreditExposure(100_000, 60_000, 30_000, 5_000), 15_000)  # credit counts


# ---- settings ---------------------------------------------------------------------------------------------
def test_shipped_config_file_parses() -> None:
    cfg = load_billing_config(CONFIG_FILE)
    assert cfg.invoice_on == "shipment" and cfg.default_terms_days == 0
    assert [lv.name for lv in cfg.dunning] == ["d-3", "d+1", "d+15", "d+30"]
    assert tomllib.loads(CONFIG_FILE.read_text(encoding="utf-8"))["dunning"][0]["template"] == "dunning_upcoming"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"invoice_on": "delivery"}, "invoice_on"),
        ({"default_payment_terms_days": -1}, "default_payment_terms_days"),
        ({"default_payment_terms_days": "30"}, "default_payment_terms_days"),
        ({"dunning": [{"name": "x", "days": "1", "template": "t"}]}, "dunning[0].days"),
        ({"dunning": [{"name": "", "days": 1, "template": "t"}]}, "dunning[0].name"),
        ({"dunning": [{"name": "a", "days": 1, "template": "t"}, {"name": "a", "days": 2, "template": "t"}]}, "unique"),
        ({"dunning_hours": [20, 9]}, "dunning_hours"),
        ({"surprise": 1}, "unknown keys"),
    ],
)
def test_bad_config_names_the_key(data: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        d.parse_billing_config(data)
