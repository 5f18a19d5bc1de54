"""The pure rules of leads and the public pool: phone numbers, which member a rule picks, who may claim what."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from scrm.core.clock import SHANGHAI as _SH
from scrm.core.errors import Conflict, InvalidInput


class LeadStatus:
    OPEN = "open"  # a salesperson owns it and works it (跟进中)
    POOL = "pool"  # in the public pool (公海): no owner, any salesperson may claim it
    CONVERTED = "converted"  # became a customer (and an opportunity) (已转化)
    INVALID = "invalid"  # not a real prospect: wrong number, spam, competitor (无效)


class LeadSource:
    FORM = "form"  # POST /api/v1/leads: a web form, a landing page, another system
    CHANNEL_CODE = "channel_code"  # a customer added a salesperson by scanning a channel code (渠道活码)
    KF = "kf"  # a first message in 微信客服
    MP = "mp"  # a first message to the Official Account (公众号)
    ARCHIVE = "archive"  # a first conversation seen in the chat archive (会话存档)
    IMPORT = "import"  # a CSV / xlsx file
    MANUAL = "manual"  # typed in by staff in the console or sidebar
    RECYCLE = "recycle"  # a customer their salesperson did not follow up: back to the pool (客户公海)


class MoveAction:
    CREATE = "create"  # arrived (to_owner = whom the rules gave it, or None: the pool)
    ASSIGN = "assign"  # a manager gave it to someone (分配)
    CLAIM = "claim"  # a salesperson took it from the pool (领取)
    RELEASE = "release"  # the owner gave it back to the pool (放弃 / 退回公海)
    RETURN = "return"  # no follow-up for N days: the pool took it back (自动回收)
    TRANSFER = "transfer"  # the customer was handed over to a colleague (交接)
    CONVERT = "convert"  # became a customer / opportunity
    INVALIDATE = "invalidate"  # marked invalid
    REPEAT = "repeat"  # the same person came again (a duplicate form post, a second scan): noted on the lead


class AssignMethod:
    ROUND_ROBIN = "round_robin"  # 轮流分配: the next member after the last one served
    LOAD = "load"  # 按负荷: the member with the fewest open leads


STATUS_NAMES_ZH = {
    LeadStatus.OPEN: "跟进中",
    LeadStatus.POOL: "公海",
    LeadStatus.CONVERTED: "已转化",
    LeadStatus.INVALID: "无效",
}
SOURCE_NAMES_ZH = {
    LeadSource.FORM: "表单",
    LeadSource.CHANNEL_CODE: "渠道活码",
    LeadSource.KF: "微信客服",
    LeadSource.MP: "公众号",
    LeadSource.ARCHIVE: "会话存档",
    LeadSource.IMPORT: "导入",
    LeadSource.MANUAL: "手工录入",
    LeadSource.RECYCLE: "客户回收",
}
METHOD_NAMES_ZH = {AssignMethod.ROUND_ROBIN: "轮流分配", AssignMethod.LOAD: "按负荷（未跟完的线索最少者）"}
MOVE_NAMES_ZH = {
    "create": "新建",
    "assign": "分配",
    "claim": "领取",
    "release": "退回公海",
    "return": "超期回收",
    "transfer": "交接",
    "convert": "转化",
    "invalidate": "标为无效",
    "repeat": "重复留资",
}

# The pool's rules until the admin changes them: back to the pool after 15 days without a follow-up, 20 claims per
# salesperson a day, and the previous owner waits 7 days before claiming a lead back.
DEFAULT_RETURN_AFTER_DAYS = 15
DEFAULT_CLAIM_DAILY_CAP = 20
DEFAULT_RECLAIM_BLOCK_DAYS = 7
# Customers are not pooled until the admin sets a period: pooling one starts a WeCom transfer when a colleague claims them.
DEFAULT_CUSTOMER_RETURN_AFTER_DAYS = 0

_PHONE_JUNK = re.compile(r"[\s\-()（）]")
_MOBILE = re.compile(r"1[3-9]\d{9}")


class PoolRefused(Conflict):
    """A claim the pool's rules refuse (daily cap, the previous owner too soon, already claimed)."""

    code = "pool_refused"


def normalize_phone(raw: str) -> str:
    """A phone number as digits only (+86 / 0086 removed); "" for none. Refuses what cannot be a number: a
    mainland mobile is 11 digits from 1[3-9]; a landline (with area code) or another country 7–15 digits."""
    text = _PHONE_JUNK.sub("", raw or "")
    if not text:
        return ""
    if text.startswith("+86"):
        text = text[3:]
    elif text.startswith("0086"):
        text = text[4:]
    elif text.startswith("+"):
        text = text[1:]
    if not text.isdecimal() or not text.isascii():
        raise InvalidInput(f"电话号码「{raw}」格式不对：只能是数字（可带 +86、空格或短横线）", field="phone")
    if text.startswith("1") and len(text) != 11:
        raise InvalidInput(f"手机号「{raw}」应为 11 位", field="phone")
    if text.startswith("1") and not _MOBILE.fullmatch(text):
        raise InvalidInput(f"手机号「{raw}」不是有效的手机号码", field="phone")
    if not 7 <= len(text) <= 15:
        raise InvalidInput(f"电话号码「{raw}」位数不对（7 到 15 位）", field="phone")
    return text


@dataclass(frozen=True)
class RuleView:
    """What assignment needs to know of a rule."""

    id: int
    sources: Sequence[str]
    regions: Sequence[str]
    tag_ids: Sequence[int]
    members: Sequence[str]
    method: str
    daily_cap: int
    cursor: int


def rule_matches(rule: RuleView, *, source: str, region: str, tag_ids: frozenset[int]) -> bool:
    """A rule takes a lead when every condition it sets holds (an empty list sets none)."""
    if rule.sources and source not in rule.sources:
        return False
    if rule.regions and not any(r and (r == region or region.startswith(r)) for r in rule.regions):
        return False
    return not (rule.tag_ids and not tag_ids.intersection(rule.tag_ids))


@dataclass(frozen=True)
class Pick:
    member: str
    next_cursor: int


def pick_member(rule: RuleView, *, eligible: Mapping[str, bool], open_leads: Mapping[str, int]) -> Pick | None:
    """The member ``rule`` gives the next lead to, among its members who are ``eligible`` (active, under the daily
    cap): round robin continues after the last one served; by load, the fewest open leads wins (ties: rule order).
    None when no member can take it."""
    members = list(rule.members)
    if not members:
        return None
    if rule.method == AssignMethod.LOAD:
        ranked = [(open_leads.get(m, 0), i, m) for i, m in enumerate(members) if eligible.get(m)]
        if not ranked:
            return None
        _, i, member = min(ranked)
        return Pick(member, rule.cursor)
    start = rule.cursor % len(members)
    for step in range(len(members)):
        i = (start + step) % len(members)
        if eligible.get(members[i]):
            return Pick(members[i], (i + 1) % len(members))
    return None


def check_claim(
    *,
    status: str,
    pooled_from: str | None,
    pooled_at: dt.datetime | None,
    claimer: str,
    claims_today: int,
    daily_cap: int,
    reclaim_block_days: int,
    now: dt.datetime,
) -> None:
    """Refuses a claim the pool's rules do not allow, saying which rule and until when."""
    if status != LeadStatus.POOL:
        raise PoolRefused("这条线索已不在公海中（可能已被他人领取），请刷新后再试")
    if daily_cap and claims_today >= daily_cap:
        raise PoolRefused(f"今天已领取 {claims_today} 条线索，已达每日上限 {daily_cap} 条，请明天再领")
    if reclaim_block_days and pooled_from == claimer and pooled_at is not None:
        until = pooled_at + dt.timedelta(days=reclaim_block_days)
        if now < until:
            raise PoolRefused(
                f"这条线索是从您名下退回公海的，{reclaim_block_days} 天内不能再领取（{until.astimezone(_SH):%m月%d日 %H:%M} 后可领）"
            )


def check_settings(return_after_days: int, claim_daily_cap: int, reclaim_block_days: int, customer_return_after_days: int = 0) -> None:
    for name, value, zh, top in (
        ("customer_return_after_days", customer_return_after_days, "客户未跟进回收天数", 3650),
        ("return_after_days", return_after_days, "未跟进回收天数", 3650),
        ("claim_daily_cap", claim_daily_cap, "每日领取上限", 10000),
        ("reclaim_block_days", reclaim_block_days, "原负责人不能领回的天数", 3650),
    ):
        if not 0 <= value <= top:
            raise InvalidInput(f"{zh}需在 0 到 {top} 之间（0 表示不限）", field=name)


def check_rule(
    *, name: str, members: Sequence[str], method: str, daily_cap: int, return_after_days: int | None, sources: Sequence[str]
) -> None:
    if not name.strip() or len(name) > 64:
        raise InvalidInput("规则名称需为 1 到 64 个字", field="name")
    if not members:
        raise InvalidInput("至少选择一位接收线索的成员", field="members")
    if len(set(members)) != len(members):
        raise InvalidInput("成员不能重复", field="members")
    if method not in METHOD_NAMES_ZH:
        raise InvalidInput("分配方式只能是 round_robin（轮流）或 load（按负荷）", field="method")
    if not 0 <= daily_cap <= 10000:
        raise InvalidInput("每人每日上限需在 0 到 10000 之间（0 表示不限）", field="daily_cap")
    if return_after_days is not None and not 1 <= return_after_days <= 3650:
        raise InvalidInput("回收天数需在 1 到 3650 之间（留空则用公海的默认值）", field="return_after_days")
    unknown = [s for s in sources if s not in SOURCE_NAMES_ZH]
    if unknown:
        raise InvalidInput(f"未知的线索来源：{'、'.join(unknown)}（可选：{'、'.join(SOURCE_NAMES_ZH)}）", field="sources")


def start_of_day(now: dt.datetime) -> dt.datetime:
    """Midnight of ``now``'s business day (Asia/Shanghai), as an aware instant."""
    local = now.astimezone(_SH)
    return local.replace(hour=0, minute=0, second=0, microsecond=0)
