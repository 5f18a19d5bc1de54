"""A referral campaign whose reward is a tag, in the sandbox: the tag goes on (and to WeCom with mark_tag) when the
goal is met, and comes off again (locally and in WeCom) when a leaving invitee claws the reward back — but a tag
the inviter already had from elsewhere is theirs and stays."""

from __future__ import annotations

import datetime as dt

from scrm.campaigns.referral import invites as referral_invites_svc
from scrm.campaigns.referral.models import referral_rewards
from scrm.crm.tags.models import TagSource
from scrm.crm.tags.services import create_tag, set_customer_tag, tags_of
from tests.campaigns.test_referral import code_of, leave, plain_add, rows, scan
from tests.conftest import SandboxHarness


async def tag_campaign(h: SandboxHarness, tag_id: int) -> int:
    now = h.rt.clock.now()
    body = {
        "name": "邀好友升级VIP",
        "goal": 1,
        "hold_hours": 1,
        "reward_tag_id": tag_id,
        "userids": ["sales01"],
        "starts_at": now.isoformat(),
        "ends_at": (now + dt.timedelta(days=14)).isoformat(),
        "status": "running",
    }
    status, campaign = await h.api("POST", "/referral-campaigns", json=body)
    assert status == 201, campaign
    return int(campaign["id"])


async def tag_ids(h: SandboxHarness, customer_id: int) -> dict[int, str]:
    async with h.rt.db.read() as conn:
        return {t.tag_id: t.source for t in await tags_of(conn, customer_id)}


async def test_a_clawed_back_tag_reward_comes_off_locally_and_in_wecom(sandbox: SandboxHarness) -> None:
    h, rt = sandbox, sandbox.rt
    h.state.add_member("sales01", "王销售")
    tag, _ = await create_tag(rt, name="裂变VIP", group="会员")
    assert tag.remote_id
    inviter = await plain_add(h, "wmTagInv", "小周")
    keeper = await plain_add(h, "wmTagKeeper", "老会员")
    await set_customer_tag(rt, customer_id=keeper, tag_id=tag.id, add=True, source=TagSource.MANUAL, evidence={"by": "sales01"})
    await h.settle()
    cid = await tag_campaign(h, tag.id)

    for ext, friend in (("wmTagInv", "wmTagF1"), ("wmTagKeeper", "wmTagF2")):
        code = await code_of(h, cid, ext)
        await scan(h, code["config_id"], friend, f"好友{friend}")
    rt.clock.advance(hours=2)  # type: ignore[attr-defined]
    assert await referral_invites_svc.qualify_due_invites(rt) == 2
    await h.settle()
    assert await tag_ids(h, inviter) == {tag.id: TagSource.CAMPAIGN}
    assert h.state.customers["wmTagInv"].follows["sales01"].tag_ids == [tag.remote_id]  # mirrored with mark_tag
    assert await tag_ids(h, keeper) == {tag.id: TagSource.MANUAL}  # already theirs: left as it was
    assert len(await rows(h, referral_rewards)) == 2

    await leave(h, "wmTagF1")  # inside the campaign: revoked, below the goal → the reward is clawed back
    await leave(h, "wmTagF2")
    await h.settle()
    assert all(r.revoked_at is not None for r in await rows(h, referral_rewards))
    assert await tag_ids(h, inviter) == {}
    assert h.state.customers["wmTagInv"].follows["sales01"].tag_ids == []  # mark_tag remove_tag reached WeCom
    assert await tag_ids(h, keeper) == {tag.id: TagSource.MANUAL}  # a tag the campaign did not give stays
    assert h.state.customers["wmTagKeeper"].follows["sales01"].tag_ids == [tag.remote_id]
