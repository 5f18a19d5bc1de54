"""Tag rules in the database, versioned (SQLite and PostgreSQL): seeded once from config/tag_rules.toml, each save a
new version with who and when and a diff, stale and invalid saves refused, roll back as a new version, every tagger
(another process) in step on its next message, and the ``tags`` commands (export, import, versions, dry-run)."""

from __future__ import annotations

import argparse
import asyncio
import io
from pathlib import Path

import pytest

from scrm.app.cli import tags_dry_run, tags_versions
from scrm.core.errors import Conflict
from scrm.core.runtime import Runtime
from tagging.rules import versions
from tagging.rules.domain import RulesFileError, version_of
from tagging.rules.engine import RULES_FILE, TAGGER_CACHE, TaggerCache, tagger_cache
from tagging.rules.models import tag_rule_versions
from tagging.rules.services import tag_message
from tests.conftest import make_customer

SEED = RULES_FILE.read_text(encoding="utf-8")
INVOICE = '\n[[rules]]\ntag = "要发票"\ngroup = "财务"\nkeywords = ["发票", "开票"]\n'


async def stored(rt: Runtime) -> list[versions.RuleVersion]:
    async with rt.db.read() as conn:
        return await versions.list_versions(conn)


async def test_the_first_use_seeds_version_1_from_the_file_once(rt: Runtime) -> None:
    assert await stored(rt) == []
    # Two processes starting at once: one version 1.
    one, two = TaggerCache(), TaggerCache()
    a, b = await asyncio.gather(one.get(rt), two.get(rt))
    assert a.rules == b.rules and len(a.rules.rules) == 7 and a.rules_number == 1
    [v1] = await stored(rt)
    assert (v1.version, v1.action, v1.created_by, v1.rules, v1.digest) == (1, "seed", "system", 7, version_of(SEED))
    async with rt.db.read() as conn:
        assert (await versions.current_version(conn)).text == SEED  # type: ignore[union-attr]
    assert one.status().number == 1 and one.status().error == ""


async def test_a_save_is_a_new_version_in_force_in_every_process_without_restart(rt: Runtime) -> None:
    here, elsewhere = TaggerCache(), TaggerCache()  # two processes' caches on one database
    cid = await make_customer(rt, "wmVersions")
    rt.put(TAGGER_CACHE, elsewhere)
    assert (await tag_message(rt, cid, "麻烦开发票", "inbound:1", rt.clock.now())).matches == ()
    await here.get(rt)
    made = await versions.save_rules(rt, SEED + INVOICE, by="console:marketer1", base_version=1)
    assert (made.version, made.action, made.created_by, made.rules) == (2, "save", "console:marketer1", 8)
    assert made.created_at == rt.clock.now()
    # The other process picks it up on its next message: no restart, no file.
    outcome = await tag_message(rt, cid, "麻烦开发票", "inbound:2", rt.clock.now())
    assert outcome.applied == ("要发票",) and elsewhere.status().number == 2
    async with rt.db.read() as conn:
        found, diff = await versions.version_diff(conn, 2)
    assert found.meta.version == 2 and diff[:2] == ["--- 版本 1", "+++ 版本 2"]
    assert '+tag = "要发票"' in diff and not any(line.startswith("-") and not line.startswith("---") for line in diff)


async def test_stale_and_invalid_saves_store_nothing(rt: Runtime) -> None:
    await tagger_cache(rt).get(rt)
    await versions.save_rules(rt, SEED + INVOICE, by="console:a", base_version=1)
    with pytest.raises(Conflict, match="版本 2"):
        await versions.save_rules(rt, SEED, by="console:b", base_version=1)  # b opened the editor at version 1
    with pytest.raises(RulesFileError) as info:
        await versions.save_rules(rt, '[[rules]]\ntag = "x"\nthreshold = "高"\n', by="console:b", base_version=2)
    assert {(p.rule, p.field) for p in info.value.problems} == {("x", "threshold"), ("x", "keywords")}
    assert [v.version for v in await stored(rt)] == [2, 1]


async def test_roll_back_is_itself_a_new_version(rt: Runtime) -> None:
    cid = await make_customer(rt, "wmRollBack")
    await tagger_cache(rt).get(rt)
    await versions.save_rules(rt, SEED + INVOICE, by="console:a", base_version=1)
    assert (await tag_message(rt, cid, "开票", "inbound:1", rt.clock.now())).applied == ("要发票",)
    back = await versions.roll_back(rt, 1, by="console:b", base_version=2)
    assert (back.version, back.action, back.restored_from, back.created_by) == (3, "rollback", 1, "console:b")
    assert back.action_zh == "回滚（恢复版本 1）" and back.digest == version_of(SEED)
    assert (await tag_message(rt, cid, "开票", "inbound:2", rt.clock.now())).matches == ()
    assert [v.version for v in await stored(rt)] == [3, 2, 1]  # history is never rewritten
    with pytest.raises(Conflict):
        await versions.roll_back(rt, 2, by="console:c", base_version=2)


async def test_a_stored_version_that_no_longer_validates_leaves_the_last_good_rules(rt: Runtime) -> None:
    cache = tagger_cache(rt)
    await cache.get(rt)
    async with rt.db.write() as conn:  # e.g. written by a newer release with a field this one does not know
        await conn.execute(
            tag_rule_versions.insert().values(
                version=2, text='[[rules]]\ntag = "x"\nkeywords = ["y"]\nbonus = 1\n', digest="x", rules=1, action="save",
                created_by="console:a", created_at=rt.clock.now(),
            )
        )  # fmt: skip
    tagger = await cache.get(rt)
    assert len(tagger.rules.rules) == 7 and cache.status().number == 1
    assert cache.status().error.startswith("版本 2: 规则“x” · bonus")


async def test_the_commands_export_import_list_and_dry_run_the_version_in_force(rt: Runtime, tmp_path: Path) -> None:
    out, err = io.StringIO(), io.StringIO()
    good = tmp_path / "rules.toml"
    good.write_text(SEED + INVOICE, encoding="utf-8")
    args = argparse.Namespace(action="import", file=str(good), by="ops")
    assert await asyncio.to_thread(tags_versions, args, rt.settings, out=out, err=err) == 0
    assert "已导入为版本 2（8 条规则）" in out.getvalue()  # the seed went in first as version 1
    [v2, v1] = await stored(rt)
    assert (v2.action, v2.created_by, v1.action) == ("import", "ops", "seed")
    bad = tmp_path / "bad.toml"
    bad.write_text('[[rules]]\ntag = "x"\n', encoding="utf-8")
    args = argparse.Namespace(action="import", file=str(bad), by=None)
    assert await asyncio.to_thread(tags_versions, args, rt.settings, out=out, err=err) == 2
    assert "规则“x” · keywords: 至少需要一个关键词或意图模式" in err.getvalue() and len(await stored(rt)) == 2

    out = io.StringIO()
    assert await asyncio.to_thread(tags_versions, argparse.Namespace(action="export", version=None, out=None), rt.settings, out=out) == 0
    assert out.getvalue() == SEED + INVOICE
    target = tmp_path / "v1.toml"
    args = argparse.Namespace(action="export", version=1, out=str(target))
    assert await asyncio.to_thread(tags_versions, args, rt.settings, out=out, err=err) == 0
    assert target.read_text(encoding="utf-8") == SEED
    args = argparse.Namespace(action="export", version=9, out=None)
    assert await asyncio.to_thread(tags_versions, args, rt.settings, out=out, err=err) == 2

    out = io.StringIO()
    assert await asyncio.to_thread(tags_versions, argparse.Namespace(action="versions", limit=10), rt.settings, out=out) == 0
    lines = out.getvalue().splitlines()
    assert len(lines) == 2 and lines[0].startswith("2\t") and "\tops\t导入 TOML\t8 条规则" in lines[0] and "初始导入" in lines[1]

    out = io.StringIO()
    args = argparse.Namespace(rules=None, since=None, limit=None, top=3)
    assert await asyncio.to_thread(tags_dry_run, args, rt.settings, out=out, err=err) == 0
    assert "规则文件：数据库中生效的版本 2（8 条规则" in out.getvalue() and "【要发票】" in out.getvalue()


async def test_a_broken_seed_file_tags_nothing_and_says_why(rt: Runtime, tmp_path: Path) -> None:
    seed = tmp_path / "tag_rules.toml"
    seed.write_text('[[rules]]\ntag = "x"\n', encoding="utf-8")
    cache = TaggerCache(seed)
    rt.put(TAGGER_CACHE, cache)
    cid = await make_customer(rt, "wmNoSeed")
    assert (await tag_message(rt, cid, "送来的啤酒坏了", "inbound:1", rt.clock.now())).matches == ()
    assert cache.status().error.startswith("初始规则文件无法导入") and "keywords" in cache.status().error
    assert await stored(rt) == []
    # A version stored later (console, import) is picked up on the next message.
    await versions.save_rules(rt, SEED, by="cli", base_version=0)
    assert (await tag_message(rt, cid, "送来的啤酒坏了", "inbound:2", rt.clock.now())).applied == ("投诉",)
    assert cache.status().error == "" and cache.status().number == 1
