"""Corp tags mirrored both ways with the sandbox WeCom: pull, create (add_corp_tag), change_external_tag callbacks,
customer tags pushed with mark_tag (mirrored only), and tags found in WeCom applied / removed with source wecom."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestClient, TestServer

from bots.contacts.tags import pull_corp_tags, refresh_customer_tags
from bots.outbound.client import WECOM_API
from bots.sandbox.keys import SANDBOX_STATE
from bots.sandbox.simulator import CallbackSimulator, change_external_tag
from scrm.app.runtime import build_runtime
from scrm.core.clock import FrozenClock
from scrm.core.runtime import Runtime
from scrm.crm.customers.models import FollowStatus
from scrm.crm.customers.services import ensure_customer
from scrm.crm.staff.services import end_follow, start_follow
from scrm.crm.tags.models import TagSource, customer_tags, tag_groups, tags
from scrm.crm.tags.services import ensure_tag, mirror_corp_tags, set_customer_tag, tags_of
from tests.conftest import SandboxHarness, make_settings
from tests.helpers import free_port


def mount_routes(app: Any) -> None:
    """Our API routes, unless the app factory registers them already."""
    from scrm.crm.channels import web as channels_web
    from scrm.crm.tags import web as tags_web

    known = {getattr(r.resource, "canonical", "") for r in app.router.routes()}
    if "/api/v1/tags" not in known:
        tags_web.setup_routes(app)
    if "/api/v1/channel-codes" not in known:
        channels_web.setup_routes(app)


@pytest.fixture
async def h(database_url: str, clock: FrozenClock) -> AsyncIterator[SandboxHarness]:
    """The sandbox harness (whole app on a real port, emulator mounted) plus the tag and channel-code routes."""
    from scrm.app.webapp import create_app

    port = free_port()
    settings = make_settings(database_url=database_url, port=port)
    runtime = await build_runtime(settings, clock)
    await runtime.jobs.start(runtime)
    app = create_app(settings, runtime=runtime)
    mount_routes(app)
    async with TestClient(TestServer(app, port=port)) as client:
        yield SandboxHarness(runtime, client, app[SANDBOX_STATE])
    await runtime.close()


async def deliver(h: SandboxHarness, xml: str, times: int = 1) -> None:
    rt = h.rt
    sim = CallbackSimulator(rt.settings.wecom_token.get(), rt.settings.wecom_aes_key.get(), rt.settings.wecom_corp_id, now=rt.clock.now)
    query, body = sim.encrypt_post(xml)
    for _ in range(times):  # WeCom retries: the same signed callback more than once
        resp = await h.client.post("/callback/wecom", params=query, data=body)
        assert resp.status == 200, await resp.text()
    await h.settle()


def tag_event(h: SandboxHarness, change: str, remote_id: str, tag_type: str = "tag") -> str:
    return change_external_tag(change, remote_id, tag_type, h.rt.clock.timestamp(), corp_id=h.rt.settings.wecom_corp_id)


async def local_tags(rt: Runtime) -> dict[str, Any]:
    """remote id → row (live and deleted)."""
    async with rt.db.read() as conn:
        q = sa.select(tags, tag_groups.c.name.label("group_name"), tag_groups.c.deleted_at.label("group_deleted_at"))
        rows = await conn.execute(q.join(tag_groups, tag_groups.c.id == tags.c.group_id).where(tags.c.remote_id.is_not(None)))
        return {r.remote_id: r for r in rows}


async def test_pull_create_and_change_events_mirror_corp_tags(h: SandboxHarness, clock: FrozenClock) -> None:
    level = h.state.tag_groups[0]  # 客户等级: 重要客户, 普通客户 (seed_demo)
    important, normal = level.tags
    report = await pull_corp_tags(h.rt)
    assert (report.created, report.deleted) == (3, 0)  # the group and its two tags
    assert (await pull_corp_tags(h.rt)).created == 0  # a second pull changes nothing
    mirror = await local_tags(h.rt)
    assert mirror[important.id].name == "重要客户" and mirror[important.id].group_name == "客户等级"

    # Created from us: add_corp_tag in the existing group, remote id stored; asking again returns the same tag.
    status, made = await h.api("POST", "/tags", json={"name": "意向客户", "group": "客户等级", "mirror": True})
    assert status == 201 and made["mirrored"] and made["group"] == "客户等级"
    assert made["remote_id"] in {t.id for t in level.tags}
    assert await h.api("POST", "/tags", json={"name": "意向客户", "group": "客户等级"}) == (200, made)
    status, local = await h.api("POST", "/tags", json={"name": "爱喝茶", "mirror": False})
    assert status == 201 and not local["mirrored"] and local["group"] == "本地标签" and local["remote_id"] is None
    assert h.state.call_count("externalcontact/add_corp_tag") == 1  # the local-only tag never reached WeCom
    status, err = await h.api("POST", "/tags", json={"name": "x" * 31})
    assert status == 400 and err["error"]["code"] == "invalid_input"

    # Changes made in WeCom arrive as change_external_tag callbacks (each delivered three times).
    clock.advance(minutes=1)
    await h.rt.get(WECOM_API).call("externalcontact/edit_corp_tag", {"id": important.id, "name": "VIP客户"})
    await deliver(h, tag_event(h, "update", important.id), times=3)
    fresh = h.state.add_tag_group("兴趣", ["矿泉水", "茶"])
    await deliver(h, tag_event(h, "create", fresh.group_id, "tag_group"))
    level.tags.remove(normal)
    await deliver(h, tag_event(h, "delete", normal.id))
    mirror = await local_tags(h.rt)
    assert mirror[important.id].name == "VIP客户" and mirror[important.id].deleted_at is None
    assert mirror[normal.id].deleted_at is not None
    assert {mirror[t.id].name for t in fresh.tags} == {"矿泉水", "茶"}
    status, listed = await h.api("GET", "/tags")
    names = {(t["group"], t["name"], t["mirrored"]) for t in listed["items"]}
    assert names == {
        ("客户等级", "VIP客户", True),
        ("客户等级", "意向客户", True),
        ("兴趣", "矿泉水", True),
        ("兴趣", "茶", True),
        ("本地标签", "爱喝茶", False),
    }
    # Reorder (shuffle) within a group, then the whole group deleted in WeCom.
    fresh.tags[1].order = 10
    await deliver(h, tag_event(h, "shuffle", fresh.group_id, "tag_group"))
    status, listed = await h.api("GET", "/tags")
    assert [t["name"] for t in listed["items"] if t["group"] == "兴趣"] == ["茶", "矿泉水"]
    h.state.tag_groups.remove(fresh)
    await deliver(h, tag_event(h, "delete", fresh.group_id, "tag_group"))
    mirror = await local_tags(h.rt)
    assert all(mirror[t.id].deleted_at is not None and mirror[t.id].group_deleted_at is not None for t in fresh.tags)
    async with h.rt.db.read() as conn:
        notes = [r.note for r in await conn.execute(sa.text("SELECT note FROM inbound_events WHERE kind LIKE 'change_external_tag.%'"))]
    assert len(notes) == 5 and all(n.startswith("corp tags re-pulled") for n in notes)


async def test_mirror_renames_swaps_and_adopts_local_tags(rt: Runtime) -> None:
    now = rt.clock.now()

    def answer(*pairs: tuple[str, str]) -> list[dict[str, Any]]:
        return [{"group_id": "etG", "group_name": "等级", "order": 0, "tag": [{"id": i, "name": n, "order": 0} for i, n in pairs]}]

    async with rt.db.write() as conn:
        await mirror_corp_tags(conn, answer(("etA", "甲"), ("etB", "乙")), now)
        group_id = (await conn.execute(sa.select(tag_groups.c.id).where(tag_groups.c.remote_id == "etG"))).scalar_one()
        # A local-only tag in the mirrored group whose name WeCom now uses becomes the mirror (customers keep it).
        local_id = (
            await conn.execute(tags.insert().values(group_id=group_id, name="丙", updated_at=now).returning(tags.c.id))
        ).scalar_one()
        # Names swapped in WeCom: both rows keep their remote ids and take the new names.
        report = await mirror_corp_tags(conn, answer(("etA", "乙"), ("etB", "甲"), ("etC", "丙")), now)
        rows = {r.remote_id: (r.id, r.name) for r in await conn.execute(sa.select(tags).where(tags.c.deleted_at.is_(None)))}
        assert rows["etA"][1] == "乙" and rows["etB"][1] == "甲" and rows["etC"] == (local_id, "丙")
        assert report.created == 0
        # Scoped: a tag-scoped answer without etB deletes only etB.
        await mirror_corp_tags(conn, [], now, tag_ids=["etB"])
        live = {r.remote_id for r in await conn.execute(sa.select(tags.c.remote_id).where(tags.c.deleted_at.is_(None)))}
        assert live == {"etA", "etC"}


async def seed_customer(rt: Runtime, ext: str, *userids: str, ended: tuple[str, ...] = ()) -> int:
    now = rt.clock.now()
    async with rt.db.write() as conn:
        cid = await ensure_customer(conn, rt.db.dialect, kind="external_userid", value=ext, now=now)
        for u in (*userids, *ended):
            await start_follow(
                conn, rt.db.dialect, customer_id=cid, userid=u, external_userid=ext, status=FollowStatus.ACTIVE, at=now, now=now
            )
        for u in ended:
            await end_follow(conn, rt.db.dialect, customer_id=cid, userid=u, external_userid=ext, ended_by="customer", at=now, now=now)
    return cid


async def test_customer_tags_pushed_with_mark_tag_only_when_mirrored(h: SandboxHarness) -> None:
    h.state.add_member("sales02", "赵销售")
    h.state.add_member("sales03", "钱销售")
    h.state.add_customer("wmTag", "标签客户", ["sales01", "sales02", "sales03"])
    cid = await seed_customer(h.rt, "wmTag", "sales01", "sales02", ended=("sales03",))
    await pull_corp_tags(h.rt)
    important = h.state.tag_groups[0].tags[0]
    status, local = await h.api("POST", "/tags", json={"name": "爱喝茶", "mirror": False})
    async with h.rt.db.read() as conn:
        vip = (await conn.execute(sa.select(tags.c.id).where(tags.c.remote_id == important.id))).scalar_one()

    status, body = await h.api("POST", "/customers/wmTag/tags", json={"tag_id": vip, "by": "sales01"})
    assert status == 200 and body["changed"] and [(t["name"], t["source"]) for t in body["tags"]] == [("重要客户", "manual")]
    await h.settle()
    follows = h.state.customers["wmTag"].follows
    # Both active follows carry it in WeCom; the ended one (sales03) was not touched.
    assert follows["sales01"].tag_ids == [important.id] and follows["sales02"].tag_ids == [important.id]
    assert follows["sales03"].tag_ids == [] and h.state.call_count("externalcontact/mark_tag") == 2

    # Local-only tags never leave; a tag put on twice changes nothing the second time.
    status, body = await h.api("POST", "/customers/wmTag/tags", json={"tag_id": local["id"]})
    assert status == 200 and body["changed"] and {t["name"] for t in body["tags"]} == {"重要客户", "爱喝茶"}
    status, body = await h.api("POST", "/customers/wmTag/tags", json={"tag_id": vip})
    assert status == 200 and not body["changed"]
    await h.settle()
    assert h.state.call_count("externalcontact/mark_tag") == 2

    # The sidebar's way (set_customer_tag) removes it: removed in WeCom on each follow.
    assert await set_customer_tag(h.rt, customer_id=cid, tag_id=vip, add=False, source=TagSource.MANUAL, evidence={}, by="sales01")
    await h.settle()
    assert follows["sales01"].tag_ids == [] and follows["sales02"].tag_ids == []
    assert h.state.call_count("externalcontact/mark_tag") == 4
    status, body = await h.api("DELETE", f"/customers/wmTag/tags/{local['id']}")
    assert status == 200 and body["changed"] and body["tags"] == []
    await h.settle()
    assert h.state.call_count("externalcontact/mark_tag") == 4
    assert (await h.api("POST", "/customers/wmNobody/tags", json={"tag_id": vip}))[0] == 404
    assert (await h.api("POST", "/customers/wmTag/tags", json={"tag_id": 99999}))[0] == 404
    assert (await h.api("POST", "/customers/wmTag/tags", json={"tag_id": "x"}))[0] == 400


async def test_tags_found_in_wecom_are_applied_and_removed_with_source_wecom(h: SandboxHarness) -> None:
    h.state.add_member("sales02", "赵销售")
    important, normal = h.state.tag_groups[0].tags
    h.state.add_customer("wmW", "企微客户", ["sales01"], tag_ids=[important.id])
    h.state.add_customer("wmW", "企微客户", ["sales02"], tag_ids=[important.id, normal.id])
    cid = await seed_customer(h.rt, "wmW", "sales01", "sales02")
    await pull_corp_tags(h.rt)
    async with h.rt.db.write() as conn:
        manual = await ensure_tag(conn, h.rt.db.dialect, "手工标签", h.rt.clock.now())
    await set_customer_tag(h.rt, customer_id=cid, tag_id=manual, add=True, source=TagSource.MANUAL, evidence={"by": "sales01"})
    await h.settle()

    diffs = await refresh_customer_tags(h.rt, "wmW")
    assert len(diffs["sales01"].added) == 1 and len(diffs["sales02"].added) == 1
    async with h.rt.db.read() as conn:
        applied = {t.name: t for t in await tags_of(conn, cid)}
    assert applied["重要客户"].source == TagSource.WECOM and applied["重要客户"].evidence == {"followers": ["sales01", "sales02"]}
    assert applied["普通客户"].evidence == {"followers": ["sales02"]} and applied["手工标签"].source == TagSource.MANUAL
    again = await refresh_customer_tags(h.rt, "wmW")  # idempotent
    assert not any(d.added or d.removed for d in again.values())

    # Gone from one follow: still carried by the other. Gone from both: removed here too. Manual tags stay.
    h.state.customers["wmW"].follows["sales02"].tag_ids = []
    await refresh_customer_tags(h.rt, "wmW")
    async with h.rt.db.read() as conn:
        applied = {t.name: t for t in await tags_of(conn, cid)}
    assert set(applied) == {"重要客户", "手工标签"} and applied["重要客户"].evidence == {"followers": ["sales01"]}
    h.state.customers["wmW"].follows["sales01"].tag_ids = []
    # A tag made in WeCom after the last pull is pulled and applied on sight.
    newer = h.state.add_tag_group("来源", ["展会"]).tags[0]
    h.state.customers["wmW"].follows["sales02"].tag_ids = [newer.id]
    await refresh_customer_tags(h.rt, "wmW")
    async with h.rt.db.read() as conn:
        assert {t.name for t in await tags_of(conn, cid)} == {"展会", "手工标签"}
        sources = dict((await conn.execute(sa.select(customer_tags.c.tag_id, customer_tags.c.source))).all())
    assert sorted(sources.values()) == ["manual", "wecom"]
    # None of this went back to WeCom: only the manual tag's outbox row existed, and it is local-only.
    assert h.state.call_count("externalcontact/mark_tag") == 0
