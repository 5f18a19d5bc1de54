"""The sales pipeline, the pure part: stages as values, the default stages, and the rules of a stage change.

An opportunity moves between any two active stages (a deal can go back from 谈判 to 需求确认); moving to a won or
lost stage closes it (``closed_at``) and needs a reason (赢单/输单原因) — a won stage may also be reached by a quote
accepted, whose reason says so. A closed opportunity reopens only by moving it to an open stage again. Probability
follows the stage unless someone set it by hand.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from scrm.core.errors import Conflict, InvalidInput, NotFound

REASON_MAX = 300
TITLE_MAX = 100


class StageInvalid(InvalidInput):
    code = "stage_invalid"


class ReasonRequired(InvalidInput):
    code = "reason_required"


class OpportunityNotFound(NotFound):
    code = "opportunity_not_found"


class StaleOpportunity(Conflict):
    code = "stale_opportunity"


@dataclass(frozen=True)
class Stage:
    key: str
    name: str
    position: int
    probability_pct: int
    is_won: bool = False
    is_lost: bool = False
    active: bool = True

    @property
    def closed(self) -> bool:
        return self.is_won or self.is_lost


# 初步接触 → 需求确认 → 报价 → 谈判 → 赢单 / 输单 (seeded by the migration; the admin may rename and re-weight them).
DEFAULT_STAGES: tuple[Stage, ...] = (
    Stage("initial", "初步接触", 10, 10),
    Stage("qualified", "需求确认", 20, 30),
    Stage("quoted", "报价", 30, 50),
    Stage("negotiation", "谈判", 40, 70),
    Stage("won", "赢单", 50, 100, is_won=True),
    Stage("lost", "输单", 60, 0, is_lost=True),
)


def stage_named(stages: Sequence[Stage], key: str) -> Stage:
    """The active stage ``key``; StageInvalid lists the ones there are."""
    for s in stages:
        if s.key == key and s.active:
            return s
    names = "、".join(f"{s.key}（{s.name}）" for s in stages if s.active)
    raise StageInvalid(f"没有这个阶段：{key[:32]}，可选 {names} (unknown stage)", field="stage")


def first_open_stage(stages: Sequence[Stage]) -> Stage:
    return min((s for s in stages if s.active and not s.closed), key=lambda s: s.position)


def won_stage(stages: Sequence[Stage]) -> Stage:
    for s in sorted(stages, key=lambda s: s.position):
        if s.is_won and s.active:
            return s
    raise StageInvalid("没有启用的赢单阶段，请管理员在商机阶段中设置 (no won stage)", field="stage")


def check_reason(target: Stage, reason: str) -> str:
    """The win/loss reason a move to ``target`` needs (stripped), or "" for an open stage."""
    reason = reason.strip()
    if not target.closed:
        return ""
    if not reason:
        what = "赢单" if target.is_won else "输单"
        raise ReasonRequired(f"改为「{target.name}」需要填写{what}原因 (a reason is required to close an opportunity)", field="reason")
    if len(reason) > REASON_MAX:
        raise InvalidInput(f"原因最多 {REASON_MAX} 字 (reason too long)", field="reason")
    return reason


def check_probability(value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 100:
        raise InvalidInput("成交概率需为 0 到 100 的整数 (probability must be 0..100)", field="probability")
    return value


def check_title(title: str) -> str:
    title = title.strip()
    if not 0 < len(title) <= TITLE_MAX:
        raise InvalidInput(f"商机名称需为 1–{TITLE_MAX} 个字 (title)", field="title")
    return title


def check_stage_fields(key: str, name: str, probability: int, is_won: bool, is_lost: bool) -> None:
    """A stage the admin writes: a short ASCII key, a name, 0..100 %, not both won and lost."""
    if not key or len(key) > 32 or not all(c.isascii() and (c.isalnum() or c in "_-") for c in key):
        raise InvalidInput("阶段代码需为 1–32 位字母、数字、_ 或 - (key)", field="key")
    if not 0 < len(name.strip()) <= 32:
        raise InvalidInput("阶段名称需为 1–32 个字 (name)", field="name")
    check_probability(probability)
    if is_won and is_lost:
        raise InvalidInput("一个阶段不能既是赢单又是输单 (won and lost)", field="is_lost")


def weighted_fen(amount_fen: int, probability_pct: int) -> int:
    """Amount × probability, in whole fen (rounded half up)."""
    return (amount_fen * probability_pct + 50) // 100
