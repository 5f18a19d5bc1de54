"""The tag rules' versions in the database: the one in force, saving, rolling back, history with diffs, the seed.

Guarantees:

* Every change is a new version (``tag_rule_versions``, numbered 1, 2, 3 …) recording the text, who and when;
  nothing is ever updated or deleted, so any version can be restored. A roll back is itself a new version (with
  ``restored_from``), never a rewrite of history. The highest version is the one in force.
* A save names the version the editor started from (``base_version``); when someone saved meanwhile it is refused
  with :class:`Conflict` and nothing is written. Two saves racing for the same number: the primary key lets one
  win, the other gets :class:`Conflict`.
* A text that does not validate is never stored (:class:`RulesFileError`, every problem by rule and field).
* The first version is seeded from ``config/tag_rules.toml`` when the table is empty (once, whatever the number of
  processes starting at the same time: the insert ignores a version 1 already there).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import difflib
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from scrm.core.db import insert_ignore
from scrm.core.errors import Conflict, NotFound
from scrm.core.runtime import Runtime
from tagging.rules.domain import RuleSet, RulesFileError, load_rules, parse_rules
from tagging.rules.form import forms_of, to_toml
from tagging.rules.models import tag_rule_versions

MAX_DIFF_LINES = 2000


class VersionAction(StrEnum):
    SEED = "seed"  # 首次启动时从 config/tag_rules.toml 导入
    SAVE = "save"  # 在控制台保存
    IMPORT = "import"  # 导入 TOML（控制台或 run.py tags import）
    ROLLBACK = "rollback"  # 回滚到某个旧版本（本身是一个新版本）


ACTION_ZH: dict[str, str] = {
    VersionAction.SEED: "初始导入",
    VersionAction.SAVE: "保存",
    VersionAction.IMPORT: "导入 TOML",
    VersionAction.ROLLBACK: "回滚",
}


@dataclass(frozen=True)
class RuleVersion:
    """One stored version (without its text)."""

    version: int
    digest: str
    rules: int
    action: str
    restored_from: int | None
    created_by: str
    created_at: dt.datetime

    @property
    def action_zh(self) -> str:
        label = ACTION_ZH.get(self.action, self.action)  # a StrEnum key equals its value
        return f"{label}（恢复版本 {self.restored_from}）" if self.restored_from else label


@dataclass(frozen=True)
class RuleVersionText:
    meta: RuleVersion
    text: str


_META = (
    tag_rule_versions.c.version,
    tag_rule_versions.c.digest,
    tag_rule_versions.c.rules,
    tag_rule_versions.c.action,
    tag_rule_versions.c.restored_from,
    tag_rule_versions.c.created_by,
    tag_rule_versions.c.created_at,
)


def _meta(row: Any) -> RuleVersion:  # a row with the _META columns
    return RuleVersion(int(row.version), row.digest, int(row.rules), row.action, row.restored_from, row.created_by, row.created_at)


# ---- reading --------------------------------------------------------------------------------------------------
async def current_number(conn: AsyncConnection) -> int:
    """The version in force (0 when there is none yet). One index lookup: checked on every message."""
    return int((await conn.execute(sa.select(sa.func.max(tag_rule_versions.c.version)))).scalar() or 0)


async def get_version(conn: AsyncConnection, version: int) -> RuleVersionText | None:
    row = (await conn.execute(sa.select(*_META, tag_rule_versions.c.text).where(tag_rule_versions.c.version == version))).first()
    return RuleVersionText(_meta(row), row.text) if row is not None else None


async def current_version(conn: AsyncConnection) -> RuleVersionText | None:
    """The version in force with its text (None before the seed)."""
    number = await current_number(conn)
    return await get_version(conn, number) if number else None


async def list_versions(conn: AsyncConnection, *, limit: int = 50) -> list[RuleVersion]:
    """The newest versions first."""
    q = sa.select(*_META).order_by(tag_rule_versions.c.version.desc()).limit(limit)
    return [_meta(r) for r in await conn.execute(q)]


def text_diff(before: str, after: str, *, before_name: str = "", after_name: str = "") -> list[str]:
    """A unified diff of two rule texts, line by line (no trailing newlines), capped at MAX_DIFF_LINES."""
    lines = list(difflib.unified_diff(before.splitlines(), after.splitlines(), before_name, after_name, lineterm="", n=2))
    return lines[:MAX_DIFF_LINES]


def _as_form_writes(text: str) -> str | None:
    """The rules of ``text`` as the console form writes them (every value explicit, no ``[defaults]``, no comments),
    or None when it does not parse."""
    try:
        return to_toml(forms_of(parse_rules(text)), header="# rules")[0]
    except RulesFileError:
        return None


def rules_diff(before: str, after: str, *, before_name: str = "", after_name: str = "") -> list[str]:
    """What changed between two rule texts. The form writes every value explicit and keeps only the leading comments,
    so a text diff of a form save after an import shows the ``[defaults]`` block and the comments as removed when one
    keyword changed: the rules are compared as the form writes them, showing only the rules that really changed. A
    change only the text shows (comments, layout) — or a text that does not parse — falls back to the text diff."""
    canonical_before, canonical_after = _as_form_writes(before), _as_form_writes(after)
    if before and canonical_before is not None and canonical_after is not None:
        if lines := text_diff(canonical_before, canonical_after, before_name=before_name, after_name=after_name):
            return lines
    return text_diff(before, after, before_name=before_name, after_name=after_name)


async def version_diff(conn: AsyncConnection, version: int) -> tuple[RuleVersionText, list[str]]:
    """A version and its diff against the version before it (against nothing for the first): :func:`rules_diff`."""
    found = await get_version(conn, version)
    if found is None:
        raise NotFound(f"没有版本 {version} (no such rules version)")
    previous = await get_version(conn, version - 1) if version > 1 else None
    before = previous.text if previous is not None else ""
    return found, rules_diff(before, found.text, before_name=f"版本 {version - 1}" if previous else "（空）", after_name=f"版本 {version}")


# ---- writing --------------------------------------------------------------------------------------------------
async def _insert(
    conn: AsyncConnection,
    *,
    number: int,
    text: str,
    rules: RuleSet,
    action: VersionAction,
    by: str,
    now: dt.datetime,
    restored_from: int | None = None,
) -> RuleVersion:
    values = {
        "version": number,
        "text": text,
        "digest": rules.version,
        "rules": len(rules.rules),
        "action": action.value,
        "restored_from": restored_from,
        "created_by": by[:64],
        "created_at": now,
    }
    await conn.execute(tag_rule_versions.insert().values(**values))
    return RuleVersion(number, rules.version, len(rules.rules), action.value, restored_from, by[:64], now)


async def save_rules(
    rt: Runtime,
    text: str,
    *,
    by: str,
    base_version: int | None,
    action: VersionAction = VersionAction.SAVE,
    restored_from: int | None = None,
) -> RuleVersion:
    """Validate ``text`` and store it as the next version, in force on every process's next message. Raises
    :class:`RulesFileError` (nothing stored) when it does not validate, :class:`Conflict` when the version in force
    is no longer ``base_version`` (None: save over whatever is there, as an import does)."""
    rules = parse_rules(text)
    now = rt.clock.now()
    try:
        async with rt.db.write() as conn:
            number = await current_number(conn)
            if base_version is not None and number != base_version:
                raise Conflict(
                    f"规则在您编辑期间已被他人保存为版本 {number}，请重新打开页面后再改 (saved meanwhile as version {number})",
                    version=number,
                )
            return await _insert(
                conn, number=number + 1, text=text, rules=rules, action=action, by=by, now=now, restored_from=restored_from
            )
    except IntegrityError:
        raise Conflict("规则刚刚被他人保存，请重新打开页面后再改 (saved meanwhile)") from None


async def roll_back(rt: Runtime, to_version: int, *, by: str, base_version: int | None) -> RuleVersion:
    """Put the text of ``to_version`` back in force as a new version (history is never rewritten)."""
    async with rt.db.read() as conn:
        old = await get_version(conn, to_version)
    if old is None:
        raise NotFound(f"没有版本 {to_version} (no such rules version)")
    return await save_rules(rt, old.text, by=by, base_version=base_version, action=VersionAction.ROLLBACK, restored_from=to_version)


async def seed_if_empty(rt: Runtime, path: Path) -> bool:
    """Store ``path`` (config/tag_rules.toml) as version 1 when there is no version yet. Returns whether this call
    stored it. Safe with several processes starting at once (version 1 is inserted once)."""
    async with rt.db.read() as conn:
        if await current_number(conn):
            return False
    rules = await asyncio.to_thread(load_rules, path)  # RulesFileError: the shipped file is broken — say so
    text = await asyncio.to_thread(path.read_text, encoding="utf-8")
    values = {
        "version": 1,
        "text": text,
        "digest": rules.version,
        "rules": len(rules.rules),
        "action": VersionAction.SEED.value,
        "restored_from": None,
        "created_by": "system",
        "created_at": rt.clock.now(),
    }
    async with rt.db.write() as conn:
        result = await conn.execute(insert_ignore(tag_rule_versions, rt.db.dialect).values(**values))
    return bool(result.rowcount)
