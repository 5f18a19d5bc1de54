"""Leads (线索) and the public pool (公海): arrival with de-duplication and assignment rules, claim caps and the
previous owner's wait on a controllable clock, the pool taking back what nobody followed up, scopes, bad input."""

from __future__ import annotations

import asyncio

import sqlalchemy as sa

from scrm.core.jobs import JobContext
from scrm.crm.customers.models import customers
from scrm.crm.customers.services import set_custom_fields
from scrm.crm.staff.services import upsert_salesperson
from scrm.sales.leads.jobs import return_to_pool_cron
from scrm.sales.leads.models import lead_moves, leads
from scrm.sales.leads.ownership import touch_lead
from tests.conftest import SandboxHarness
from tests.scrm.test_sidebar import seed_follow


async def people(h: SandboxHarness) -> None:
    """张经理 (boss01) leads 王销售 (sales01) and 刘销售 (sales02); 孙销售 (sales03) is elsewhere; 离职 (gone01) left."""
    now = h.rt.clock.now()
    async with h.rt.db.write() as conn:
        await upsert_salesperson(conn, h.rt.db.dialect, "boss01", now, name="张经理", active=True)
        for userid, name in (("sales01", "王销售"), ("sales02", "刘销售")):
            await upsert_salesperson(conn, h.rt.db.dialect, userid, now, name=name, leader_userid="boss01", active=True)
        await upsert_salesperson(conn, h.rt.db.dialect, "sales03", now, name="孙销售", active=True)
        await upsert_salesperson(conn, h.rt.db.dialect, "gone01", now, name="离职者", active=False)


async def moves(h: SandboxHarness, lead_id: int) -> list[tuple[str, str | None, str | None]]:
    async with h.rt.db.read() as conn:
        rows = await conn.execute(sa.select(lead_moves).where(lead_moves.c.lead_id == lead_id).order_by(lead_moves.c.id))
        return [(r.action, r.from_owner, r.to_owner) for r in rows]


async def post_lead(h: SandboxHarness, **body: object) -> tuple[int, dict]:
    return await h.api("POST", "/leads", json=body)


async def test_round_robin_with_a_daily_cap_skips_inactive_members_and_fills_the_pool(sandbox: SandboxHarness) -> None:
    h = sandbox
    await people(h)
    status, rule = await h.api(
        "POST", "/lead-rules", json={"name": "表单轮流", "members": ["sales01", "sales02"], "daily_cap": 2, "sources": ["form"]}
    )
    assert status == 201, rule
    owners = []
    for i in range(5):
        status, lead = await post_lead(h, name=f"客户{i}", phone=f"1380000000{i}", remark="想要 100 箱矿泉水")
        assert status == 201, lead
        assert set(lead) >= {"id", "status", "owner"}
        owners.append((lead["status"], lead["owner"]))
    assert owners == [("open", "sales01"), ("open", "sales02"), ("open", "sales01"), ("open", "sales02"), ("pool", None)]
    # An import is not a form: the rule does not take it.
    status, lead = await post_lead(h, name="导入的", phone="13800000099", source="import")
    assert (status, lead["status"]) == (201, "pool")
    # The next business day (Asia/Shanghai) the caps start again.
    h.rt.clock.advance(days=1)
    status, lead = await post_lead(h, name="明天的", phone="13800000100")
    assert (lead["status"], lead["owner"]) == ("open", "sales01")
    # The member told by app message, without the phone number.
    await h.settle()
    told = h.state.app_messages_to("sales01")
    assert any("【新线索】客户0" in m for m in told), told
    assert not any("13800000000" in m for m in told)


async def test_a_rule_with_an_inactive_member_and_by_load(sandbox: SandboxHarness) -> None:
    h = sandbox
    await people(h)
    status, err = await h.api("POST", "/lead-rules", json={"name": "坏规则", "members": ["sales01", "gone01"]})
    assert status == 400 and "离职" in err["error"]["message"], err
    status, _ = await h.api("POST", "/lead-rules", json={"name": "按负荷", "members": ["sales01", "sales02"], "method": "load"})
    assert status == 201
    first = (await post_lead(h, name="A", phone="13900000001"))[1]
    second = (await post_lead(h, name="B", phone="13900000002"))[1]
    assert {first["owner"], second["owner"]} == {"sales01", "sales02"}
    # sales01 closes theirs: they carry fewer open leads, so they get the next one.
    holder = first["owner"]
    status, _ = await h.api("POST", f"/leads/{first['id']}/invalidate", json={"reason": "空号"})
    assert status == 200
    assert (await post_lead(h, name="C", phone="13900000003"))[1]["owner"] == holder


async def test_a_known_person_is_not_a_second_lead_and_a_customer_keeps_their_salesperson(sandbox: SandboxHarness) -> None:
    h = sandbox
    await people(h)
    status, first = await post_lead(h, name="王老板", phone="+86 139-1234-5678", corp_name="王记超市")
    assert (status, first["status"], first["phone"]) == (201, "pool", "13912345678")
    status, again = await post_lead(h, name="王老板", phone="13912345678", remark="又来问价", source_ref="官网")
    assert (status, again["id"], again["duplicate"]) == (200, first["id"], True)
    assert "又来问价" in again["remark"]
    assert [m[0] for m in await moves(h, first["id"])] == ["create", "repeat"]
    # Someone sales02 already serves in WeCom, with the number in a custom field: the lead is theirs, and linked.
    cid = await seed_follow(h.rt, "sales02", "wmKnown", name="老客户")
    async with h.rt.db.write() as conn:
        await set_custom_fields(conn, cid, {"电话": "手机 13611112222"}, h.rt.clock.now())
    status, lead = await post_lead(h, name="老客户", phone="136 1111 2222")
    assert (status, lead["owner"], lead["customer_id"]) == (201, "sales02", cid)
    status, by_id = await post_lead(h, external_userid="wmKnown", remark="扫码进来的")
    assert (status, by_id["id"], by_id["duplicate"]) == (200, lead["id"], True)


async def test_claim_caps_the_previous_owner_waits_and_two_claimers_cannot_both_win(sandbox: SandboxHarness) -> None:
    h = sandbox
    await people(h)
    status, _ = await h.api("PUT", "/lead-pool", json={"return_after_days": 15, "claim_daily_cap": 2, "reclaim_block_days": 7})
    assert status == 200
    ids = [(await post_lead(h, name=f"公海{i}", phone=f"1370000000{i}"))[1]["id"] for i in range(4)]
    wang = await h.staff_token("wang", ["sales"], wecom_userid="sales01", data_scope="own")
    liu = await h.staff_token("liu", ["sales"], wecom_userid="sales02", data_scope="own")
    for lead_id in ids[:2]:
        status, lead = await h.as_token(wang, "POST", f"/leads/{lead_id}/claim")
        assert (status, lead["owner"], lead["status"]) == (200, "sales01", "open"), lead
    status, err = await h.as_token(wang, "POST", f"/leads/{ids[2]}/claim")
    assert status == 409 and "每日上限 2 条" in err["error"]["message"], err
    async with h.rt.db.read() as conn:
        assert (await conn.execute(sa.select(leads.c.status).where(leads.c.id == ids[2]))).scalar_one() == "pool"
    # Released back: sales01 may not claim it again for 7 days; sales02 may at once.
    status, err = await h.as_token(wang, "POST", f"/leads/{ids[0]}/release", json={})
    assert status == 400 and "原因" in err["error"]["message"]
    status, lead = await h.as_token(wang, "POST", f"/leads/{ids[0]}/release", json={"reason": "客户暂无需求"})
    assert (status, lead["status"], lead["owner"], lead["pooled_from"]) == (200, "pool", None, "sales01")
    h.rt.clock.advance(days=1)
    status, err = await h.as_token(wang, "POST", f"/leads/{ids[0]}/claim")
    assert status == 409 and "7 天内不能再领取" in err["error"]["message"], err
    h.rt.clock.advance(days=6, minutes=1)
    status, lead = await h.as_token(wang, "POST", f"/leads/{ids[0]}/claim")
    assert (status, lead["owner"]) == (200, "sales01")
    assert [m[0] for m in await moves(h, ids[0])] == ["create", "claim", "release", "claim"]
    # Two salespeople reach for the last lead at once: exactly one has it.
    results = await asyncio.gather(h.as_token(wang, "POST", f"/leads/{ids[3]}/claim"), h.as_token(liu, "POST", f"/leads/{ids[3]}/claim"))
    assert sorted(status for status, _ in results) == [200, 409], results
    assert [m[0] for m in await moves(h, ids[3])] == ["create", "claim"]


async def test_the_pool_takes_back_what_nobody_followed_up(sandbox: SandboxHarness) -> None:
    h = sandbox
    await people(h)
    await h.api("POST", "/lead-rules", json={"name": "快速回收", "members": ["sales02"], "sources": ["manual"], "return_after_days": 3})
    await h.api("POST", "/lead-rules", json={"name": "其余", "members": ["sales01"]})
    slow = (await post_lead(h, name="默认期限", phone="13500000001"))[1]
    fast = (await post_lead(h, name="三天期限", phone="13500000002", source="manual"))[1]
    kept = (await post_lead(h, name="有跟进", phone="13500000003"))[1]
    assert (slow["owner"], fast["owner"], kept["owner"]) == ("sales01", "sales02", "sales01")
    ctx = JobContext(h.rt, "test", 1, 1)
    h.rt.clock.advance(days=3, minutes=1)
    await return_to_pool_cron(ctx)
    assert (await h.api("GET", f"/leads/{fast['id']}"))[1]["status"] == "pool"
    assert (await h.api("GET", f"/leads/{slow['id']}"))[1]["status"] == "open"
    async with h.rt.db.write() as conn:
        await touch_lead(conn, kept["id"], h.rt.clock.now())
    h.rt.clock.advance(days=12)
    await return_to_pool_cron(ctx)
    await return_to_pool_cron(ctx)  # a second run changes nothing
    _, back = await h.api("GET", f"/leads/{slow['id']}")
    assert (back["status"], back["pooled_from"]) == ("pool", "sales01")
    assert [(m["action"], m["reason"]) for m in back["moves"]][-1] == ("return", "15 天未跟进，自动回收公海")
    assert (await h.api("GET", f"/leads/{kept['id']}"))[1]["status"] == "open"


async def test_scopes_a_salesperson_sees_their_own_and_the_pool(sandbox: SandboxHarness) -> None:
    h = sandbox
    await people(h)
    mine = (await post_lead(h, name="我的", phone="13300000001", owner="sales01"))[1]
    theirs = (await post_lead(h, name="别人的", phone="13300000002", owner="sales03"))[1]
    pooled = (await post_lead(h, name="公海的", phone="13300000003"))[1]
    wang = await h.staff_token("wang", ["sales"], wecom_userid="sales01", data_scope="own")
    boss = await h.staff_token("zhang", ["sales"], wecom_userid="boss01", data_scope="team")
    status, page = await h.as_token(wang, "GET", "/leads")
    assert status == 200 and {row["id"] for row in page["items"]} == {mine["id"], pooled["id"]}
    status, err = await h.as_token(wang, "GET", f"/leads/{theirs['id']}")
    assert status == 404 and err["error"]["code"] == "lead_not_found"
    status, _ = await h.as_token(wang, "POST", f"/leads/{theirs['id']}/release", json={"reason": "抢"})
    assert status == 404
    # A lead may hand their team's leads around, not someone else's; the salesperson may not.
    status, err = await h.as_token(wang, "POST", f"/leads/{mine['id']}/assign", json={"to": "sales02"})
    assert status == 409 and "管理的成员" in err["error"]["message"]
    status, lead = await h.as_token(boss, "POST", f"/leads/{mine['id']}/assign", json={"to": "sales02", "reason": "按区域调整"})
    assert (status, lead["owner"]) == (200, "sales02")
    status, _ = await h.as_token(boss, "POST", f"/leads/{theirs['id']}/assign", json={"to": "sales02"})
    assert status == 404
    # Assignment rules and the pool's settings are the admin's.
    status, _ = await h.as_token(wang, "GET", "/lead-rules")
    assert status == 403


async def test_bad_input_is_refused_and_changes_nothing(sandbox: SandboxHarness) -> None:
    h = sandbox
    await people(h)
    for body, words in (
        ({"name": "甲", "phone": "1381234567"}, "11 位"),
        ({"name": "甲", "phone": "abc123"}, "只能是数字"),
        ({"name": "甲", "phone": "12012345678"}, "不是有效的手机号码"),
        ({"remark": "只有备注"}, "姓名、电话或公司名"),
        ({"name": "甲", "source": "tv"}, "未知的线索来源"),
        ({"name": "甲", "owner": "gone01"}, "离职"),
        ({"name": "甲", "owner": "nobody"}, "不存在"),
    ):
        status, err = await post_lead(h, **body)
        assert status == 400 and words in err["error"]["message"], (body, err)
    lead = (await post_lead(h, name="乙", phone="13700001111", owner="sales01"))[1]
    status, err = await h.api("POST", f"/leads/{lead['id']}/assign", json={"to": "gone01"})
    assert status == 400 and "离职" in err["error"]["message"]
    status, err = await h.api("PUT", "/lead-pool", json={"return_after_days": -1, "claim_daily_cap": 1, "reclaim_block_days": 1})
    assert status == 400
    async with h.rt.db.read() as conn:
        assert (await conn.execute(sa.select(sa.func.count()).select_from(leads))).scalar_one() == 1
        assert (await conn.execute(sa.select(leads.c.owner).where(leads.c.id == lead["id"]))).scalar_one() == "sales01"
    assert (await h.api("GET", "/lead-pool"))[1]["return_after_days"] == 15


async def test_convert_makes_a_customer_with_the_phone(sandbox: SandboxHarness) -> None:
    h = sandbox
    await people(h)
    lead = (await post_lead(h, name="新客户", phone="13788889999", corp_name="新开的店", region="上海", owner="sales01"))[1]
    status, done = await h.api("POST", f"/leads/{lead['id']}/convert")
    assert (status, done["status"]) == (200, "converted") and done["customer_id"]
    async with h.rt.db.read() as conn:
        row = (await conn.execute(sa.select(customers).where(customers.c.id == done["customer_id"]))).one()
    assert (row.name, row.corp_name, row.custom_fields) == ("新客户", "新开的店", {"电话": "13788889999", "地区": "上海"})
    status, err = await h.api("POST", f"/leads/{lead['id']}/convert")
    assert status == 409 and "只有跟进中的线索" in err["error"]["message"]
    # The customer directory finds them by the number.
    status, page = await h.api("GET", "/customers?q=13788889999")
    assert status == 200 and [c["name"] for c in page["items"]] == ["新客户"], page
    # A lead converted with an opportunity: the owner's, at the first stage, linked to the lead.
    second = (await post_lead(h, name="大客户", phone="13788880000", owner="sales01"))[1]
    status, err = await h.api("POST", f"/leads/{second['id']}/convert", json={"opportunity": {"title": "  ", "amount_fen": 1}})
    assert status == 400
    assert (await h.api("GET", f"/leads/{second['id']}"))[1]["status"] == "open"  # refused whole: nothing changed
    status, done = await h.api(
        "POST", f"/leads/{second['id']}/convert", json={"opportunity": {"title": "年度采购", "amount_fen": 5_000_000}}
    )
    assert status == 200 and done["opportunity_id"], done
    status, opp = await h.api("GET", f"/opportunities/{done['opportunity_id']}")
    assert (opp["customer_id"], opp["owner"], opp["stage"], opp["amount_fen"], opp["lead_id"]) == (
        done["customer_id"],
        "sales01",
        "initial",
        5_000_000,
        second["id"],
    ), opp
