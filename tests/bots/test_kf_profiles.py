"""微信客服 customers get their WeChat nickname and avatar (kf/customer/batchget through the emulator): fetched when
first seen, cached for a day, 100 ids per call, then shown by name wherever the record is read."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from bots.kf import profiles
from bots.kf.models import kf_profile_fetches
from scrm.core.jobs import RetryLater
from scrm.crm.customers.models import customers
from scrm.crm.customers.services import find_customer
from tests.conftest import SandboxHarness


async def name_of(h: SandboxHarness, ext: str) -> tuple[str, str]:
    async with h.rt.db.read() as conn:
        cid = await find_customer(conn, "external_userid", ext)
        assert cid is not None
        row = (await conn.execute(sa.select(customers.c.name, customers.c.avatar).where(customers.c.id == cid))).one()
    return row.name, row.avatar


async def test_a_chat_customer_gets_their_nickname_once_a_day(sandbox: SandboxHarness) -> None:
    h = sandbox
    # the chat page's 昵称 is the customer's WeChat nickname as the emulator's kf/customer/batchget answers it
    await h.customer_says("wmNamed", "帮助", name="王小明")
    assert (await name_of(h, "wmNamed"))[0] == "王小明"
    assert h.state.call_count("kf/customer/batchget") == 1
    await h.customer_says("wmNamed", "我的订单", name="王小明")  # fetched today already: no second call
    assert h.state.call_count("kf/customer/batchget") == 1
    # the customer renames themselves in WeChat; the next day's message brings the new nickname
    await h.customer_says("wmNamed", "在吗", name="王大明")
    assert (await name_of(h, "wmNamed"))[0] == "王小明"
    h.rt.clock.advance(hours=25)  # type: ignore[attr-defined]
    await h.customer_says("wmNamed", "在吗", name="")  # a blank 昵称 on the page keeps the WeChat nickname
    assert (await name_of(h, "wmNamed"))[0] == "王大明"
    assert h.state.call_count("kf/customer/batchget") == 2


async def test_batches_of_at_most_100_and_unknown_ids_are_remembered(sandbox: SandboxHarness) -> None:
    h = sandbox
    ids = [f"wmBatch{k:03d}" for k in range(230)]
    for k, ext in enumerate(ids[:200]):
        h.state.add_customer(ext, f"客户{k}")
    assert [len(b) for b in profiles.batches([*ids, *ids[:5]])] == [100, 100, 30]
    changed = await profiles.fetch_profiles(h.rt, ids)
    assert changed == 200 and h.state.call_count("kf/customer/batchget") == 3
    assert (await name_of(h, "wmBatch007"))[0] == "客户7"
    async with h.rt.db.read() as conn:
        rows = {r.external_userid: r.found for r in await conn.execute(sa.select(kf_profile_fetches))}
    assert len(rows) == 230 and rows["wmBatch007"] and not rows["wmBatch229"]
    assert await profiles.fetch_profiles(h.rt, ids) == 0 and h.state.call_count("kf/customer/batchget") == 3
    assert await profiles.due_for_fetch(h.rt, ["wmBatch001", "wmNever"]) == ["wmNever"]
    h.rt.clock.advance(hours=24, minutes=1)  # type: ignore[attr-defined]
    assert len(await profiles.due_for_fetch(h.rt, ids)) == 230


async def test_rate_limited_batchget_is_retried_later(sandbox: SandboxHarness) -> None:
    h = sandbox
    h.state.add_customer("wmLimited", "限流客户")
    resp = await h.client.post("/sandbox/api/faults", json={"path": "kf/customer/batchget", "errcode": 45009, "times": 1})
    assert resp.status == 200, await resp.text()
    with pytest.raises(RetryLater) as exc:
        await profiles.fetch_profiles(h.rt, ["wmLimited"])
    assert exc.value.defer > 0
    async with h.rt.db.read() as conn:
        assert (await conn.execute(sa.select(kf_profile_fetches))).first() is None  # not marked fetched
    assert await profiles.fetch_profiles(h.rt, ["wmLimited"]) == 1
    assert (await name_of(h, "wmLimited"))[0] == "限流客户"


def test_profile_from_the_api_answer() -> None:
    p = profiles.KfProfile.from_api({"external_userid": "wmX", "nickname": "张三", "avatar": "http://a/b.png", "gender": 1})
    assert p == profiles.KfProfile("wmX", "张三", "http://a/b.png", 1)
    assert profiles.KfProfile.from_api({"nickname": "no id"}) is None
    assert profiles.KfProfile.from_api({"external_userid": "wmY", "gender": 7}) == profiles.KfProfile("wmY", "", "", 0)
