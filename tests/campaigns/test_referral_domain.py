"""Referral rules with plain values: who counts, the hold, revocation, the goal, the funnel, the leaderboard."""

from __future__ import annotations

import datetime as dt

import pytest

from scrm.campaigns.referral import domain as r
from scrm.campaigns.referral.models import InviteStatus
from scrm.core.errors import InvalidInput

T0 = dt.datetime(2026, 11, 23, 2, 0, tzinfo=dt.UTC)
START, END = T0 - dt.timedelta(days=1), T0 + dt.timedelta(days=7)


def judge(**kw: object) -> r.AddDecision:
    args: dict[str, object] = dict(
        inviter_id=1, invitee_id=2, was_new=True, campaign_status="running", starts_at=START, ends_at=END, added_at=T0, hold_hours=24
    )
    args.update(kw)
    return r.judge_add(**args)  # type: ignore[arg-type]


def test_a_new_friend_is_pending_for_the_hold() -> None:
    d = judge()
    assert (d.status, d.reason, d.qualifies_at) == (InviteStatus.PENDING, "", T0 + dt.timedelta(hours=24))


@pytest.mark.parametrize(
    ("kw", "reason"),
    [
        ({"invitee_id": 1}, r.RejectReason.SELF_INVITE),
        ({"invitee_id": 1, "was_new": False}, r.RejectReason.SELF_INVITE),  # self-invite is named, not "re-add"
        ({"was_new": False}, r.RejectReason.RE_ADD),
        ({"campaign_status": "paused"}, r.RejectReason.CAMPAIGN_CLOSED),
        ({"added_at": END}, r.RejectReason.CAMPAIGN_CLOSED),
        ({"added_at": START - dt.timedelta(seconds=1)}, r.RejectReason.CAMPAIGN_CLOSED),
    ],
)
def test_adds_that_do_not_count(kw: dict[str, object], reason: str) -> None:
    d = judge(**kw)
    assert (d.status, d.reason) == (InviteStatus.REJECTED, reason)


def test_merge_rejects_counting_invites_only() -> None:
    assert r.judge_merge(status=InviteStatus.PENDING, survivor_id=9, inviter_id=1) == r.RejectReason.MERGED_IDENTITY
    assert r.judge_merge(status=InviteStatus.QUALIFIED, survivor_id=1, inviter_id=1) == r.RejectReason.SELF_INVITE
    assert r.judge_merge(status=InviteStatus.REVOKED, survivor_id=9, inviter_id=1) is None


@pytest.mark.parametrize(
    ("now", "follow", "merged", "expected"),
    [
        (T0, "active", False, (r.Qualify.WAIT, "")),
        (T0 + dt.timedelta(hours=24), "active", False, (r.Qualify.QUALIFY, "")),
        (T0 + dt.timedelta(hours=24), "ended", False, (r.Qualify.REVOKE, "")),
        (T0 + dt.timedelta(hours=24), None, False, (r.Qualify.REVOKE, "")),
        (T0 + dt.timedelta(hours=24), "half", False, (r.Qualify.WAIT, "")),
        (END, "half", False, (r.Qualify.REJECT, r.RejectReason.NOT_CONFIRMED)),
        (T0, "active", True, (r.Qualify.REJECT, r.RejectReason.MERGED_IDENTITY)),
    ],
)
def test_qualification(now: dt.datetime, follow: str | None, merged: bool, expected: tuple[str, str]) -> None:
    got = r.judge_qualification(
        now=now, qualifies_at=T0 + dt.timedelta(hours=24), follow_status=follow, merged_away=merged, campaign_ends_at=END
    )
    assert got == expected


def test_leaving_revokes_inside_the_window_only() -> None:
    hold = T0 + dt.timedelta(hours=24)
    assert r.revokes(status=InviteStatus.PENDING, left_at=T0, qualifies_at=hold, campaign_ends_at=END)
    assert r.revokes(status=InviteStatus.QUALIFIED, left_at=END - dt.timedelta(seconds=1), qualifies_at=hold, campaign_ends_at=END)
    assert not r.revokes(status=InviteStatus.QUALIFIED, left_at=END, qualifies_at=hold, campaign_ends_at=END)
    # a hold reaching past the campaign's end keeps the window open until the hold ends
    late = END + dt.timedelta(hours=5)
    assert r.revokes(status=InviteStatus.QUALIFIED, left_at=END + dt.timedelta(hours=1), qualifies_at=late, campaign_ends_at=END)
    assert not r.revokes(status=InviteStatus.REJECTED, left_at=T0, qualifies_at=hold, campaign_ends_at=END)


def test_goal_and_clawback() -> None:
    assert not r.goal_reached(1, 2) and r.goal_reached(2, 2) and r.goal_reached(3, 2)
    assert r.still_needed(0, 3) == 3 and r.still_needed(5, 3) == 0
    assert r.claws_back(qualified=1, goal=2, reward_active=True)
    assert not r.claws_back(qualified=2, goal=2, reward_active=True)
    assert not r.claws_back(qualified=0, goal=2, reward_active=False)


def test_progress_texts() -> None:
    assert "还差2位好友就能获得奖励" in r.progress_text(campaign="邀好友", qualified=1, goal=3, event="qualified")
    assert "奖励已发放" in r.progress_text(campaign="邀好友", qualified=3, goal=3, event="rewarded")
    assert "已收回" in r.progress_text(campaign="邀好友", qualified=2, goal=3, event="clawed_back")


def test_campaign_validation() -> None:
    ok = r.check_campaign(
        {"name": " 邀请有礼 ", "goal": 3, "userids": ["sales01", "sales01"], "reward_template_id": 7,
         "starts_at": "2026-11-23T08:00:00+08:00", "ends_at": "2026-12-01T00:00:00+08:00"}
    )  # fmt: skip
    assert ok["name"] == "邀请有礼" and ok["userids"] == ["sales01"] and ok["starts_at"] == dt.datetime(2026, 11, 23, 0, 0, tzinfo=dt.UTC)
    base = {
        "name": "x",
        "goal": 3,
        "userids": ["s"],
        "reward_template_id": 1,
        "starts_at": "2026-11-23T00:00:00+00:00",
        "ends_at": "2026-12-01T00:00:00+00:00",
    }
    for bad, field in [
        ({"goal": 0}, "goal"),
        ({"goal": True}, "goal"),
        ({"userids": []}, "userids"),
        ({"reward_template_id": None}, "reward_template_id"),
        ({"starts_at": "2026-11-23T00:00:00"}, "starts_at"),  # naive
        ({"hold_hours": 10_000}, "hold_hours"),
    ]:
        with pytest.raises(InvalidInput) as err:
            r.check_campaign({**base, **bad})
        assert err.value.details["field"] == field
    with pytest.raises(InvalidInput):
        r.check_window(T0, T0)
    assert r.check_campaign({"poster_text": "扫码加好友"}, partial=True) == {"poster_text": "扫码加好友"}


def test_status_transitions() -> None:
    assert r.can_transition("draft", "running") and r.can_transition("paused", "running")
    assert not r.can_transition("ended", "running") and not r.can_transition("draft", "paused")


def test_funnel_rates() -> None:
    f = r.Funnel(codes_issued=10, adds=8, qualified=4, rewarded=1, first_orders=2, revenue_fen=12_000)
    steps = f.steps()
    assert [s.count for s in steps] == [10, 8, 4, 1, 2]
    # shares of the step each comes from, never above 100 %: adds (any number per inviter) have none
    assert [s.rate for s in steps] == [None, None, 0.5, 0.1, 0.5]
    assert r.Funnel(codes_issued=1, adds=3, qualified=0, rewarded=0, first_orders=0, revenue_fen=0).steps()[1].rate is None
    assert r.Funnel(0, 0, 0, 0, 0, 0).steps()[2].rate is None
    assert f.to_json()["revenue_fen"] == 12_000


def test_leaderboard_ties_go_to_who_got_there_first() -> None:
    t = T0
    rows = [
        r.LeaderRow(5, 2, 0, t + dt.timedelta(hours=2), False),
        r.LeaderRow(3, 3, 1, t + dt.timedelta(hours=5), True),
        r.LeaderRow(4, 2, 0, t + dt.timedelta(hours=1), False),
        r.LeaderRow(6, 2, 0, t + dt.timedelta(hours=1), False),
        r.LeaderRow(7, 0, 2, None, False),
    ]
    ranked = r.rank_leaderboard(rows)
    assert [(x.rank, x.row.inviter_id) for x in ranked] == [(1, 3), (2, 4), (2, 6), (4, 5), (5, 7)]
    assert len(r.rank_leaderboard(rows, limit=2)) == 2


def test_referral_states() -> None:
    assert r.is_referral_state("rf:abc") and not r.is_referral_state("ch-abc") and not r.is_referral_state("rf:" + "x" * 28)
