"""Coupon notices end to end through the sandbox: a coupon issued to a customer reaches their 微信客服 chat once; a
segment distribution tells each customer who got one (or, with 同时通知客户 off, nobody); a broadcast that carries a
coupon sends its own message and no second one."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from bots.notices.coupons import on_coupon_issued, validity_text
from scrm.campaigns.broadcasts import services as broadcasts
from scrm.campaigns.coupons import services as coupons
from scrm.campaigns.coupons.domain import CouponRule, TemplateTerms, Validity
from scrm.core import outbox
from scrm.core.clock import SHANGHAI
from scrm.core.runtime import Runtime
from scrm.crm.customers.models import FollowStatus, follows
from scrm.crm.tags.models import TagSource
from scrm.crm.tags.services import apply_tag, ensure_tag
from tests.campaigns.test_coupons import tagged
from tests.conftest import SandboxHarness, make_customer

NOTICE = "您获得一张优惠券：满100减10，有效期至12月31日。下单时自动使用，发送“我的优惠券”查看。"


async def template(rt: Runtime, name: str = "年终券") -> int:
    """满100减10, usable until the end of 31 December (business time): valid_until is 1 January 00:00."""
    terms = TemplateTerms(
        name=name,
        rule=CouponRule("fixed", amount_off_fen=1000, threshold_fen=10000),
        validity=Validity(valid_until=dt.datetime(2027, 1, 1, tzinfo=SHANGHAI)),
    )
    return (await coupons.create_template(rt, terms)).id


async def kf_member(h: SandboxHarness, ext: str, name: str) -> int:
    """A customer who wrote in 微信客服 (window open; the bot answered once) and carries the tag 会员."""
    await h.customer_says(ext, "你好", name=name)
    cid = await make_customer(h.rt, ext)
    now = h.rt.clock.now()
    async with h.rt.db.write() as conn:
        tag_id = await ensure_tag(conn, h.rt.db.dialect, "会员", now, group="客户类型")
        await apply_tag(conn, h.rt.db.dialect, customer_id=cid, tag_id=tag_id, source=TagSource.MANUAL, evidence={}, now=now)
    return cid


async def notices_written(rt: Runtime) -> list[dict[str, object]]:
    async with rt.db.read() as conn:
        rows = await conn.execute(sa.select(outbox.outbox.c.payload).where(outbox.outbox.c.topic == coupons.ISSUED_TOPIC))
        return [dict(r.payload) for r in rows]


async def test_a_coupon_issued_to_a_customer_reaches_their_chat_once(sandbox: SandboxHarness) -> None:
    await kf_member(sandbox, "wm_zhang", "小张")
    before = sandbox.replies("wm_zhang")
    tid = await template(sandbox.rt)
    status, body = await sandbox.api("POST", "/coupons/issue", json={"template_id": tid, "customer": "wm_zhang", "source_ref": "r1"})
    assert status == 201, body
    await sandbox.settle()
    assert sandbox.replies("wm_zhang") == [*before, NOTICE]
    # The same request again finds the same coupon and tells nobody twice; the handler run again sends nothing new.
    status, again = await sandbox.api("POST", "/coupons/issue", json={"template_id": tid, "customer": "wm_zhang", "source_ref": "r1"})
    assert status == 201 and again["code"] == body["code"]
    (payload,) = await notices_written(sandbox.rt)
    await on_coupon_issued(sandbox.rt, payload)
    await sandbox.settle()
    assert sandbox.replies("wm_zhang") == [*before, NOTICE]


async def test_a_segment_issue_tells_each_customer_unless_notify_is_off(sandbox: SandboxHarness) -> None:
    ids = {ext: await kf_member(sandbox, ext, name) for ext, name in (("wm_a", "小A"), ("wm_b", "小B"))}
    before = {ext: sandbox.replies(ext) for ext in ids}
    quiet, told = await template(sandbox.rt, "静默券"), await template(sandbox.rt, "通知券")

    status, body = await sandbox.api("POST", "/coupons/issue", json={"template_id": quiet, "segment": "tag:会员", "notify": False})
    assert status == 202, body
    await sandbox.settle()
    for ext, cid in ids.items():
        assert [c.template_id for c in await coupons.coupons_of_customer(sandbox.rt, cid)] == [quiet]
        assert sandbox.replies(ext) == before[ext]  # nothing sent
    assert await notices_written(sandbox.rt) == []

    status, body = await sandbox.api("POST", "/coupons/issue", json={"template_id": told, "segment": "tag:会员"})  # notify: default on
    assert status == 202, body
    await sandbox.settle()
    for ext in ids:
        assert sandbox.replies(ext) == [*before[ext], NOTICE]  # one notice each
    run = (await coupons.list_issue_runs(sandbox.rt, told))[0]
    assert (run.status, run.issued) == ("done", 2)


async def test_a_coupon_carried_by_a_broadcast_sends_no_second_message(sandbox: SandboxHarness) -> None:
    cid = await kf_member(sandbox, "wm_li", "小李")
    before = sandbox.replies("wm_li")
    tid = await template(sandbox.rt)
    spec = {"name": "发券", "segment": "tag:会员", "text": "年终回馈", "coupon_template_id": tid}
    view = await broadcasts.create_broadcast(sandbox.rt, spec)
    await broadcasts.start_broadcast(sandbox.rt, view.id)
    await broadcasts.plan_broadcast(sandbox.rt, view.id)
    await sandbox.settle()
    await sandbox.settle()
    assert [c.template_id for c in await coupons.coupons_of_customer(sandbox.rt, cid)] == [tid]
    (message,) = sandbox.replies("wm_li")[len(before) :]  # the broadcast's own text, which names the coupon
    assert message.startswith("年终回馈") and "满100减10" in message
    assert await notices_written(sandbox.rt) == []


def test_validity_text_in_business_time() -> None:
    now = dt.datetime(2026, 11, 23, 2, 0, tzinfo=dt.UTC)
    assert validity_text(None, None, now) == "长期有效"
    assert validity_text(dt.datetime(2027, 1, 1, tzinfo=SHANGHAI), None, now) == "有效期至12月31日"  # ends at midnight
    assert validity_text(dt.datetime(2026, 12, 31, 20, 0, tzinfo=dt.UTC), None, now) == "有效期至2027年1月1日"  # 04:00 in Shanghai
    starts = dt.datetime(2026, 12, 1, tzinfo=SHANGHAI)
    assert validity_text(None, starts, now) == "12月1日起可用，长期有效"


async def test_a_segment_issue_to_a_salespersons_customers_makes_a_task_each_and_one_alert(sandbox: SandboxHarness) -> None:
    """Customers no bot can reach (no 微信客服 window, no Official Account): each gets a confirm-to-send task of their
    salesperson, and the salesperson is alerted once for the distribution, not once per customer."""
    rt, state = sandbox.rt, sandbox.state
    state.add_member("sales01", "王销售")
    now = rt.clock.now()
    for ext in ("wm_t1", "wm_t2"):
        state.add_customer(ext, ext, ["sales01"])
        cid = (await tagged(rt, [ext], "会员"))[0]
        async with rt.db.write() as conn:
            await conn.execute(
                follows.insert().values(
                    customer_id=cid, userid="sales01", external_userid=ext, status=FollowStatus.ACTIVE, started_at=now, updated_at=now
                )
            )
    status, body = await sandbox.api("POST", "/coupons/issue", json={"template_id": await template(rt), "segment": "tag:会员"})
    assert status == 202, body
    await sandbox.settle()
    assert sorted((t["sender"], t["external_userid"], t["text"]) for t in state.msg_templates) == [
        ("sales01", ["wm_t1"], NOTICE),
        ("sales01", ["wm_t2"], NOTICE),
    ]
    assert state.app_messages_to("sales01") == [f"请在企业微信中确认发送给客户的通知：\n{NOTICE}"]


async def test_a_coupon_taken_back_before_the_notice_ran_is_not_announced(sandbox: SandboxHarness) -> None:
    await kf_member(sandbox, "wm_back", "小赵")
    before = sandbox.replies("wm_back")
    status, body = await sandbox.api("POST", "/coupons/issue", json={"template_id": await template(sandbox.rt), "customer": "wm_back"})
    assert status == 201, body
    (payload,) = await notices_written(sandbox.rt)
    assert await coupons.revoke_coupon(sandbox.rt, int(payload["coupon_id"]), actor="test")
    await sandbox.settle()
    assert sandbox.replies("wm_back") == before
