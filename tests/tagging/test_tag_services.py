"""Rule tags on real databases (SQLite and PostgreSQL): evidence, idempotency, decay with a frozen clock, manual tags
left alone, rules reloaded from an edited file, the outbox handlers, the sandbox end to end, and the dry run."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import io
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from bots.gateway.models import inbound_events
from scrm.app.cli import tags_dry_run
from scrm.core import outbox
from scrm.core.clock import SHANGHAI, FrozenClock
from scrm.core.runtime import Runtime
from scrm.crm.archive.services import ingest
from scrm.crm.customers.services import find_customer, merge_customers
from scrm.crm.tags.models import TagSource
from scrm.crm.tags.services import CUSTOMER_TAG_CHANGED, AppliedTag, apply_tag, ensure_tag, tags_of
from scrm.crm.timeline.services import entries
from tagging.rules import dryrun
from tagging.rules.domain import parse_rules
from tagging.rules.engine import RULES_FILE, TAGGER_CACHE, TaggerCache
from tagging.rules.jobs import tag_archive_text, tag_inbound_text, tag_score_decay
from tagging.rules.models import tag_scores
from tagging.rules.services import decay_scores, merge_scores, tag_message
from tests.conftest import SandboxHarness, make_customer

PRICE_ASK = "老板，矿泉水批发价多少钱？给个价格表"


def read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def write(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")


def exists(path: Path) -> bool:
    return path.exists()


@pytest.fixture
def rules_file(tmp_path: Path) -> Path:
    path = tmp_path / "tag_rules.toml"
    shutil.copy(RULES_FILE, path)
    return path


@pytest.fixture
def tagged(rt: Runtime, rules_file: Path) -> Runtime:
    rt.put(TAGGER_CACHE, TaggerCache(rules_file))
    return rt


async def rule_tags(rt: Runtime, customer_id: int) -> dict[str, AppliedTag]:
    async with rt.db.read() as conn:
        return {t.name: t for t in await tags_of(conn, customer_id)}


async def score_row(rt: Runtime, customer_id: int, rule: str) -> Any:
    async with rt.db.read() as conn:
        q = sa.select(tag_scores).where(tag_scores.c.customer_id == customer_id, tag_scores.c.rule == rule)
        return (await conn.execute(q)).first()


async def outbox_payloads(rt: Runtime, topic: str) -> list[dict[str, Any]]:
    async with rt.db.read() as conn:
        q = sa.select(outbox.outbox.c.payload).where(outbox.outbox.c.topic == topic).order_by(outbox.outbox.c.id)
        return [dict(r.payload) for r in await conn.execute(q)]


async def test_a_price_inquiry_puts_the_tag_on_with_its_evidence(tagged: Runtime) -> None:
    rt = tagged
    cid = await make_customer(rt, "wmPrice")
    at = rt.clock.now() - dt.timedelta(minutes=5)
    outcome = await tag_message(rt, cid, PRICE_ASK, "inbound:41", at)
    assert outcome.applied == ("意向-高",) and not outcome.duplicate
    tag = (await rule_tags(rt, cid))["意向-高"]
    assert tag.group == "购买意向" and tag.source == TagSource.RULE
    assert tag.evidence["words"] == ["批发", "多少钱", "价格表"]
    assert tag.evidence["message_ref"] == "inbound:41" and tag.evidence["rule"] == "意向-高"
    assert tag.evidence["at"] == at.isoformat() and tag.evidence["score"] == pytest.approx(3.0, abs=1e-3)
    async with rt.db.read() as conn:
        timeline = await entries(conn, cid)
    assert any(e.title == "打上标签“意向-高”" and e.data["evidence"]["message_ref"] == "inbound:41" for e in timeline)
    pushes = await outbox_payloads(rt, CUSTOMER_TAG_CHANGED)
    assert pushes == [{"customer_id": cid, "tag_id": pushes[0]["tag_id"], "add": True, "by": "rule:意向-高"}]
    # Nothing matched: nothing written.
    quiet = await tag_message(rt, cid, "好的，谢谢", "inbound:42", at)
    assert quiet.matches == () and await score_row(rt, cid, "投诉") is None


async def test_the_same_message_twice_counts_once(tagged: Runtime) -> None:
    rt = tagged
    cid = await make_customer(rt, "wmTwice")
    now = rt.clock.now()
    first = await tag_message(rt, cid, "多少钱？", "archive:m1", now)
    again = await tag_message(rt, cid, "多少钱？", "archive:m1", now)
    assert not first.duplicate and again.duplicate and first.applied == () == again.applied
    row = await score_row(rt, cid, "意向-高")
    assert (row.score, row.matches, row.last_message_ref) == (1.0, 1, "archive:m1")
    assert "意向-高" not in await rule_tags(rt, cid)  # 1.0 < threshold 2
    # A second, different message the same day reaches the threshold: repeated interest.
    second = await tag_message(rt, cid, "报个价吧", "archive:m2", now)
    assert second.applied == ("意向-高",)
    row = await score_row(rt, cid, "意向-高")
    assert (row.score, row.matches, row.last_words) == (2.0, 2, ["报个价"])


async def test_scores_decay_and_the_daily_cron_takes_the_tag_off(tagged: Runtime, clock: FrozenClock) -> None:
    rt = tagged
    cid = await make_customer(rt, "wmDecay")
    await tag_message(rt, cid, PRICE_ASK, "inbound:1", clock.now())  # 3.0; half-life 14 d, remove below 1.0
    clock.advance(days=14)
    report = await decay_scores(rt)
    assert report.removed == 0 and "意向-高" in await rule_tags(rt, cid)  # 1.5 left
    # A new match refreshes the evidence and adds to the decayed score.
    await tag_message(rt, cid, "价目表呢？", "inbound:2", clock.now())
    tag = (await rule_tags(rt, cid))["意向-高"]
    assert tag.evidence["message_ref"] == "inbound:2" and tag.evidence["score"] == pytest.approx(2.5, abs=1e-3)
    clock.advance(days=28)  # 2.5 → 0.625
    await tag_score_decay(type("Ctx", (), {"rt": rt})())  # the cron itself
    assert "意向-高" not in await rule_tags(rt, cid)
    async with rt.db.read() as conn:
        assert (await entries(conn, cid, limit=1))[0].title == "移除标签“意向-高”"
    assert (await outbox_payloads(rt, CUSTOMER_TAG_CHANGED))[-1]["add"] is False
    assert (await decay_scores(rt)).removed == 0  # a second run changes nothing
    clock.advance(days=120)
    assert (await decay_scores(rt)).pruned == 1 and await score_row(rt, cid, "意向-高") is None


async def test_an_old_message_replayed_late_does_not_put_a_stale_tag_on(tagged: Runtime, clock: FrozenClock) -> None:
    rt = tagged
    cid = await make_customer(rt, "wmLate")
    outcome = await tag_message(rt, cid, PRICE_ASK, "archive:old", clock.now() - dt.timedelta(days=60))
    assert outcome.applied == () and (await score_row(rt, cid, "意向-高")).score == 3.0  # stated at its own time


async def test_one_complaint_hit_tags_at_once_with_whole_second_timestamps(tagged: Runtime, clock: FrozenClock) -> None:
    """投诉 has threshold = weight (2.0, "一次就打上"). A kf message carries a whole-second timestamp and is handled a
    moment later; the single hit must still put the tag on (it is compared at the message's own time)."""
    rt = tagged
    clock.set(dt.datetime(2026, 11, 23, 2, 0, 5, 730_000, tzinfo=dt.UTC))
    cid = await make_customer(rt, "wmBeer")
    at = dt.datetime(2026, 11, 23, 2, 0, 4, tzinfo=dt.UTC)  # kf send_time, whole seconds
    outcome = await tag_message(rt, cid, "送来的啤酒坏了", "inbound:77", at)
    assert [m.score for m in outcome.matches] == [2.0] and outcome.applied == ("投诉",)
    tag = (await rule_tags(rt, cid))["投诉"]
    assert tag.evidence["score"] == 2.0 and tag.evidence["words"] == ["坏了"] and tag.evidence["reasons"] == ["“坏了”命中"]
    # The evidence says why each word counted or not: 投诉 is excluded in its own clause only.
    other = await make_customer(rt, "wmBeer2")
    await tag_message(rt, other, "不要投诉，就是啤酒又坏了", "inbound:78", at)
    assert (await rule_tags(rt, other))["投诉"].evidence["reasons"] == ["“投诉”所在分句有排除词“不要投诉”，不计", "“坏了”命中"]


async def test_tags_put_on_by_people_are_never_changed(tagged: Runtime, clock: FrozenClock) -> None:
    rt = tagged
    cid = await make_customer(rt, "wmManual")
    now = clock.now()
    async with rt.db.write() as conn:
        tag_id = await ensure_tag(conn, rt.db.dialect, "投诉", now, group="服务跟进")
        await apply_tag(conn, rt.db.dialect, customer_id=cid, tag_id=tag_id, source=TagSource.MANUAL, evidence={"by": "sales01"}, now=now)
    outcome = await tag_message(rt, cid, "箱子坏了，要退货", "inbound:9", now)
    assert outcome.applied == () and (await score_row(rt, cid, "投诉")).score == 4.0
    clock.advance(days=365)
    await decay_scores(rt)
    tag = (await rule_tags(rt, cid))["投诉"]
    assert tag.source == TagSource.MANUAL and tag.evidence == {"by": "sales01"}


async def test_scores_follow_a_merged_customer(tagged: Runtime) -> None:
    rt = tagged
    a, b = await make_customer(rt, "wmMergeA"), await make_customer(rt, "wmMergeB")
    now = rt.clock.now()
    await tag_message(rt, a, "多少钱", "inbound:1", now)
    await tag_message(rt, b, "价格表发我", "inbound:2", now)
    async with rt.db.write() as conn:
        survivor = await merge_customers(conn, rt.db.dialect, a, b, now)
    other = b if survivor == a else a
    assert await merge_scores(rt, other, survivor) == 1
    assert await merge_scores(rt, other, survivor) == 0
    row = await score_row(rt, survivor, "意向-高")
    assert (row.score, row.matches) == (2.0, 2) and await score_row(rt, other, "意向-高") is None


async def insert_inbound(rt: Runtime, channel: str, kind: str, content: str, *, ext: str = "", sender: str = "") -> int:
    now = rt.clock.now()
    async with rt.db.write() as conn:
        q = inbound_events.insert().values(
            channel=channel,
            kind=kind,
            dedupe_key=f"test:{channel}:{content}:{ext}:{sender}",
            from_user=sender or ext,
            external_userid=ext,
            content=content,
            payload={},
            raw="",
            occurred_at=now - dt.timedelta(minutes=1),
            received_at=now,
        )
        return int((await conn.execute(q.returning(inbound_events.c.id))).scalar_one())


async def test_inbound_handler_tags_customer_texts_only(tagged: Runtime) -> None:
    rt = tagged
    mp_id = await insert_inbound(rt, "mp", "message.text", "东西坏了，我要投诉", sender="oOpenid01")
    await tag_inbound_text(rt, {"inbound_id": mp_id})
    async with rt.db.read() as conn:
        cid = await find_customer(conn, "openid", "oOpenid01")
    assert cid is not None and (await rule_tags(rt, cid))["投诉"].evidence["message_ref"] == f"inbound:{mp_id}"
    member = await insert_inbound(rt, "wecom", "message.text", "东西坏了，我要投诉", sender="sales01")
    await tag_inbound_text(rt, {"inbound_id": member})
    async with rt.db.read() as conn:
        assert await find_customer(conn, "external_userid", "sales01") is None
        assert (await conn.execute(sa.select(sa.func.count()).select_from(tag_scores))).scalar_one() == 1


async def test_archive_handler_tags_what_the_customer_wrote(tagged: Runtime) -> None:
    rt = tagged
    when = dt.datetime(2026, 11, 23, 9, 0, tzinfo=SHANGHAI)

    def rec(msgid: str, sender: str, to: list[str], text: str) -> dict[str, Any]:
        ms = int(when.timestamp() * 1000)
        return {
            "msgid": msgid,
            "action": "send",
            "from": sender,
            "tolist": to,
            "roomid": "",
            "msgtime": ms,
            "msgtype": "text",
            "text": {"content": text},
        }

    await ingest(
        rt, [(1, rec("a1", "wmArchive", ["sales01"], "上次的水漏了，要退货")), (2, rec("a2", "sales01", ["wmArchive"], "投诉我们收到了"))]
    )
    for msgid in ("a1", "a2", "a1"):
        await tag_archive_text(rt, {"msgid": msgid})
    async with rt.db.read() as conn:
        cid = await find_customer(conn, "external_userid", "wmArchive")
    assert cid is not None
    tag = (await rule_tags(rt, cid))["投诉"]
    assert tag.evidence["message_ref"] == "archive:a1" and tag.evidence["words"] == ["漏", "退货"]
    assert tag.evidence["at"] == when.isoformat() or dt.datetime.fromisoformat(tag.evidence["at"]) == when
    assert (await score_row(rt, cid, "投诉")).matches == 1  # the salesperson's line is not the customer's


async def test_a_customer_text_in_the_sandbox_gets_the_tag_with_evidence(sandbox: SandboxHarness) -> None:
    await sandbox.customer_says("wmSandboxTag", PRICE_ASK, name="王老板")
    rt = sandbox.rt
    async with rt.db.read() as conn:
        cid = await find_customer(conn, "external_userid", "wmSandboxTag")
        q = sa.select(inbound_events.c.id).where(
            inbound_events.c.kind == "kf.customer.text", inbound_events.c.external_userid == "wmSandboxTag"
        )
        inbound_id = (await conn.execute(q)).scalar_one()
    assert cid is not None
    tag = (await rule_tags(rt, cid))["意向-高"]
    assert tag.source == TagSource.RULE and tag.evidence["message_ref"] == f"inbound:{inbound_id}"
    assert tag.evidence["words"] == ["批发", "多少钱", "价格表"]
    assert sandbox.replies("wmSandboxTag")  # the bot still answered


async def test_dry_run_reports_gains_and_losses_with_evidence(tagged: Runtime, tmp_path: Path) -> None:
    rt = tagged
    now = rt.clock.now()
    keep, lose = await make_customer(rt, "wmKeep"), await make_customer(rt, "wmLose")
    gain = await make_customer(rt, "wmGain")
    async with rt.db.write() as conn:
        from scrm.crm.customers.models import customers

        await conn.execute(sa.update(customers).where(customers.c.id == gain).values(name="<b>张三</b>"))
    await insert_inbound(rt, "kf", "kf.customer.text", PRICE_ASK, ext="wmKeep")
    await tag_message(rt, keep, PRICE_ASK, "inbound:x", now)
    await tag_message(rt, lose, "箱子坏了", "inbound:y", now)  # 投诉 by rule now …
    await insert_inbound(rt, "kf", "kf.customer.text", "你好，在吗", ext="wmLose")  # … but the replay finds no complaint
    await insert_inbound(rt, "kf", "kf.customer.text", "我们公司采购两百箱", ext="wmGain")
    candidate = parse_rules(RULES_FILE.read_text(encoding="utf-8"))
    report = await dryrun.replay(rt, candidate)
    changes = {c.rule.tag: c for c in report.changes}
    assert report.messages == 3 and report.customers == 3 and report.sources == {"inbound": 3}
    assert (changes["意向-高"].gained, changes["意向-高"].kept, changes["意向-高"].lost) == (0, 1, 0)
    assert changes["投诉"].lost == 1 and changes["投诉"].lose == [lose]
    big = changes["大客户"]
    assert big.gained == 1 and big.gain[0].customer_id == gain and big.gain[0].words == ("公司采购", "两百箱")
    text = dryrun.format_report(report, source="config/tag_rules.toml")
    assert f"+ #{gain} <b>张三</b>  得分 3.00" in text and "“我们公司采购两百箱” [公司采购 两百箱]" in text
    assert "[公司采购 两百箱] (inbound:" in text and ") · “公司采购”命中；“两百箱”命中" in text
    assert f"- #{lose}  窗口内没有命中本规则的消息" in text and "将新增 0 位 · 将移除 0 位 · 保持 1 位" in text
    # Nothing was written by the replay.
    assert "大客户" not in await rule_tags(rt, gain)
    # The command: the same report from the configured database; a broken file is refused with its problems.
    out, err = io.StringIO(), io.StringIO()
    args = argparse.Namespace(rules=str(RULES_FILE), since="2026-11-01", limit=100, top=5)
    assert await asyncio.to_thread(tags_dry_run, args, rt.settings, out=out, err=err) == 0
    assert "回放2026-11-01 00:00 起的 3 条客户消息" in out.getvalue() and "【大客户】" in out.getvalue()
    bad = tmp_path / "bad.toml"
    bad.write_text('[[rules]]\ntag = "x"\n', encoding="utf-8")
    args = argparse.Namespace(rules=str(bad), since=None, limit=None, top=10)
    assert await asyncio.to_thread(tags_dry_run, args, rt.settings, out=out, err=err) == 2
    assert "规则“x” · keywords: 至少需要一个关键词或意图模式" in err.getvalue()
    assert json.dumps(report.sources) == '{"inbound": 3}'
