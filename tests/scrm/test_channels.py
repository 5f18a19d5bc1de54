"""Channel codes (渠道活码) against the sandbox WeCom: add_contact_way with our state, QR stored, changes of
salespeople, deactivation, bad input leaving nothing behind, and adds/deletes stats per day from the follows."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from bots.contacts.channel_codes import create_channel_code
from scrm.core.clock import UTC, FrozenClock
from scrm.crm.channels.models import channel_codes
from scrm.crm.customers.models import FollowStatus
from scrm.crm.customers.services import ensure_customer
from scrm.crm.staff.services import end_follow, start_follow
from tests.conftest import SandboxHarness
from tests.scrm.test_tags import h  # noqa: F401 - the harness fixture with our routes


async def test_create_list_update_and_deactivate(h: SandboxHarness) -> None:  # noqa: F811
    h.state.add_member("sales02", "赵销售")
    status, tag = await h.api("POST", "/tags", json={"name": "展会客户", "mirror": False})
    body = {"name": "展会 2026", "userids": ["sales01"], "welcome_text": "欢迎来到展会！", "tag_ids": [tag["id"]]}
    status, code = await h.api("POST", "/channel-codes", json=body)
    assert status == 201, code
    assert code["state"].startswith("ch-") and len(code["state"]) <= 30 and code["active"]
    way = h.state.contact_ways[code["config_id"]]
    assert (way.type, way.scene, way.state, way.users, way.skip_verify) == (1, 2, code["state"], ["sales01"], True)
    # a real QR image the sandbox serves itself (tests/bots/test_sandbox_tester.py scans it)
    assert code["qr_code"] == way.qr_code == f"{h.rt.settings.base_url}/sandbox/qr/contact-way/{code['config_id']}.png"
    assert (code["welcome_text"], code["tag_ids"]) == ("欢迎来到展会！", [tag["id"]])

    shared = await create_channel_code(h.rt, "门店", ("sales01", "sales02"))
    assert h.state.contact_ways[shared.config_id].type == 2 and shared.state != code["state"]
    status, listed = await h.api("GET", "/channel-codes")
    assert [c["id"] for c in listed["items"]] == [shared.id, code["id"]]

    # One salesperson → several: a new multi-person contact way with the same state (stats go on), old one deleted.
    status, changed = await h.api("PATCH", f"/channel-codes/{code['id']}", json={"userids": ["sales01", "sales02"], "welcome_text": "你好"})
    assert status == 200 and changed["state"] == code["state"] and changed["config_id"] != code["config_id"]
    assert code["config_id"] not in h.state.contact_ways
    new_way = h.state.contact_ways[changed["config_id"]]
    assert (new_way.type, new_way.state, new_way.users) == (2, code["state"], ["sales01", "sales02"])
    assert changed["welcome_text"] == "你好" and changed["qr_code"] == new_way.qr_code
    # Several → one: the same contact way is updated in place.
    status, back = await h.api("PATCH", f"/channel-codes/{code['id']}", json={"userids": ["sales02"], "tag_ids": []})
    assert status == 200 and back["config_id"] == changed["config_id"] and new_way.users == ["sales02"] and back["tag_ids"] == []
    assert (await h.api("PATCH", f"/channel-codes/{code['id']}", json={"state": "x"}))[0] == 400

    status, off = await h.api("POST", f"/channel-codes/{code['id']}/deactivate")
    assert status == 200 and not off["active"] and changed["config_id"] not in h.state.contact_ways
    assert (await h.api("POST", f"/channel-codes/{code['id']}/deactivate"))[1]["active"] is False  # twice = once
    status, active = await h.api("GET", "/channel-codes", params={"active": "true"})
    assert [c["id"] for c in active["items"]] == [shared.id]


async def test_bad_input_leaves_nothing_behind(h: SandboxHarness) -> None:  # noqa: F811
    cases = [
        ({"name": "x", "userids": ["ghost"]}, 400, "userids"),  # WeCom does not know the member (60111)
        ({"name": "x", "userids": []}, 400, "userids"),
        ({"name": "", "userids": ["sales01"]}, 400, "name"),
        ({"name": "x", "userids": ["sales01"], "tag_ids": [12345]}, 404, None),
        ({"name": "x", "userids": ["sales01"], "welcome_text": "长" * 1001}, 400, "welcome_text"),
    ]
    for body, want, field in cases:
        status, err = await h.api("POST", "/channel-codes", json=body)
        assert status == want, (body, err)
        if field:
            assert err["error"]["details"]["field"] == field
    h.state.inject("externalcontact/add_contact_way", 45009)
    status, err = await h.api("POST", "/channel-codes", json={"name": "限流", "userids": ["sales01"]})
    assert status == 503 and err["error"]["code"] == "unavailable"
    async with h.rt.db.read() as conn:
        assert (await conn.execute(sa.select(sa.func.count()).select_from(channel_codes))).scalar_one() == 0
    assert h.state.contact_ways == {}
    assert (await h.api("GET", "/channel-codes/999"))[0] == 404


async def test_stats_by_day_from_follows(h: SandboxHarness, clock: FrozenClock) -> None:  # noqa: F811
    code = await create_channel_code(h.rt, "地推", ["sales01"])
    rt = h.rt
    day1 = dt.datetime(2026, 11, 20, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai
    day2 = dt.datetime(2026, 11, 21, 17, 0, tzinfo=UTC)  # 01:00 on the 22nd in Shanghai

    async def follow(ext: str, at: dt.datetime, state: str = code.state) -> int:
        async with rt.db.write() as conn:
            cid = await ensure_customer(conn, rt.db.dialect, kind="external_userid", value=ext, now=at)
            await start_follow(
                conn,
                rt.db.dialect,
                customer_id=cid,
                userid="sales01",
                external_userid=ext,
                status=FollowStatus.ACTIVE,
                at=at,
                now=at,
                state=state,
            )
            return cid

    async def end(ext: str, cid: int, by: str, at: dt.datetime) -> None:
        async with rt.db.write() as conn:
            await end_follow(conn, rt.db.dialect, customer_id=cid, userid="sales01", external_userid=ext, ended_by=by, at=at, now=at)

    ids = {ext: await follow(ext, day1) for ext in ("wmS1", "wmS2", "wmS3", "wmS4")}
    await follow("wmOther", day1, state="other")
    await end("wmS1", ids["wmS1"], "customer", day2)
    await end("wmS2", ids["wmS2"], "salesperson", day2)
    await follow("wmS5", day2)

    status, got = await h.api("GET", f"/channel-codes/{code.id}")
    assert status == 200
    stats = got["stats"]
    assert (stats["adds"], stats["deletes"], stats["deleted_by_customer"], stats["deleted_by_salesperson"], stats["net"]) == (5, 2, 1, 1, 3)
    assert stats["active"] == 3
    assert [(d["day"], d["adds"], d["deletes"], d["net"]) for d in stats["days"]] == [("2026-11-20", 4, 0, 4), ("2026-11-22", 1, 2, -1)]
    status, only = await h.api("GET", f"/channel-codes/{code.id}", params={"since": "2026-11-21"})
    assert (only["stats"]["adds"], only["stats"]["deletes"]) == (1, 2)
    assert (await h.api("GET", f"/channel-codes/{code.id}", params={"since": "yesterday"}))[0] == 400
