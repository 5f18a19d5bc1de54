"""Broadcast channel planning with plain values and a controllable clock."""

from __future__ import annotations

import datetime as dt

import pytest

from scrm.campaigns.broadcasts import domain as D

NOW = dt.datetime(2026, 11, 23, 2, 0, tzinfo=dt.UTC)
Q = D.Quotas(kf_window_hours=48, kf_max_messages=5, msg_template_monthly_cap=4)


def kf(hours_ago: float, sent: int = 0, ext: str = "wm1") -> D.KfWindow:
    return D.KfWindow(ext, NOW - dt.timedelta(hours=hours_ago), sent)


def follow(userid: str = "sales01", ext: str = "wm1", days_ago: int = 10) -> D.FollowFact:
    return D.FollowFact(userid, ext, NOW - dt.timedelta(days=days_ago))


def test_kf_inside_the_48h_window() -> None:
    plan = D.plan_recipient(D.RecipientFacts(1, kf_windows=(kf(47.9),)), NOW, Q)
    assert (plan.channel, plan.address, plan.status) == ("kf", "wm1", "planned")


def test_kf_window_closed_at_48h_falls_back_or_skips() -> None:
    closed = D.RecipientFacts(1, kf_windows=(kf(48),))
    assert D.plan_recipient(closed, NOW, Q).reason == D.SkipReason.KF_WINDOW_CLOSED
    with_openid = D.RecipientFacts(1, kf_windows=(kf(48),), openids=("o1",))
    assert D.plan_recipient(with_openid, NOW, Q).channel == "mp_template"


def test_marketing_keeps_the_fifth_kf_message_for_order_notices() -> None:
    assert Q.kf_marketing_max == 4
    assert D.plan_recipient(D.RecipientFacts(1, kf_windows=(kf(1, sent=3),)), NOW, Q).channel == "kf"
    fourth_used = D.plan_recipient(D.RecipientFacts(1, kf_windows=(kf(1, sent=4),)), NOW, Q)
    assert (fourth_used.channel, fourth_used.reason) == ("none", D.SkipReason.KF_BUDGET_RESERVED)
    # another channel still reaches them
    assert D.plan_recipient(D.RecipientFacts(1, kf_windows=(kf(1, sent=4),), follows=(follow(),)), NOW, Q).channel == "msg_template"


def test_a_newer_open_window_wins_over_a_closed_one() -> None:
    facts = D.RecipientFacts(1, kf_windows=(kf(100, ext="old"), kf(2, ext="new")))
    assert D.plan_recipient(facts, NOW, Q).address == "new"


def test_official_account_follower_gets_a_template_message() -> None:
    plan = D.plan_recipient(D.RecipientFacts(1, openids=("o2", "o1"), follows=(follow(),)), NOW, Q)
    assert (plan.channel, plan.address) == ("mp_template", "o1")


def test_salesperson_task_respects_the_monthly_cap_with_one_kept_for_notices() -> None:
    ok = D.plan_recipient(
        D.RecipientFacts(1, follows=(follow("b", days_ago=2), follow("a", "wm9", days_ago=30)), msg_templates_this_month=2), NOW, Q
    )
    assert (ok.channel, ok.salesperson_userid, ok.address) == ("msg_template", "a", "wm9")
    capped = D.plan_recipient(D.RecipientFacts(1, follows=(follow(),), msg_templates_this_month=3), NOW, Q)
    assert (capped.status, capped.reason) == ("skipped", D.SkipReason.MONTHLY_CAP)


def test_nothing_reaches_them() -> None:
    assert D.plan_recipient(D.RecipientFacts(1), NOW, Q).reason == D.SkipReason.NO_CHANNEL
    assert D.plan_recipient(D.RecipientFacts(1, merged=True, openids=("o",)), NOW, Q).reason == D.SkipReason.MERGED


def test_month_start_is_china_time() -> None:
    assert D.month_start(dt.datetime(2026, 11, 30, 17, 0, tzinfo=dt.UTC)) == dt.datetime(2026, 11, 30, 16, 0, tzinfo=dt.UTC)
    assert D.month_start(NOW) == dt.datetime(2026, 10, 31, 16, 0, tzinfo=dt.UTC)


def test_chunks_group_tasks_per_salesperson() -> None:
    plans = [
        D.Delivery(1, "msg_template", "w1", "a"),
        D.Delivery(2, "kf", "w2"),
        D.Delivery(3, "msg_template", "w3", "b"),
        D.Delivery(4, "msg_template", "w4", "a"),
        D.Delivery(5, "none", reason="no_reachable_channel"),
        D.Delivery(6, "kf", "w6"),
    ]
    chunks = D.chunk_deliveries(plans, size=1)
    assert [(c.channel, c.salesperson_userid, c.items) for c in D.chunk_deliveries(plans, size=10)] == [
        ("kf", "", ((2, "w2"), (6, "w6"))),
        ("msg_template", "a", ((1, "w1"), (4, "w4"))),
        ("msg_template", "b", ((3, "w3"),)),
    ]
    assert len(chunks) == 5
    assert chunks[0].to_payload(7) == {"broadcast_id": 7, "channel": "kf", "salesperson_userid": "", "items": [[2, "w2"]]}


def test_totals_and_throttling() -> None:
    totals = D.PlanTotals.from_json({})
    totals.add([D.Delivery(1, "kf", "w"), D.Delivery(2, "none", reason="x"), D.Delivery(3, "none", reason="x")])
    assert D.PlanTotals.from_json(totals.to_json()).to_json() == {"recipients": 3, "channels": {"kf": 1, "none": 2}, "skipped": {"x": 2}}
    assert D.batches_per_tick(rate_per_minute=6000, batch=1000) == 6
    assert D.batches_per_tick(rate_per_minute=10, batch=1000) == 1
    assert D.eta_seconds(remaining=12000, rate_per_minute=6000) == 120
    with pytest.raises(ValueError):
        D.batches_per_tick(rate_per_minute=0, batch=1)
