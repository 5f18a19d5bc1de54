"""Segment expressions (客群表达式): a small language that picks customers, used by the console and campaigns.

    tag:意向-高 and rfm:重要价值客户 and not group:"VIP群" and last_active < 30d and channel:展会

Grammar (keywords are case-insensitive; Chinese punctuation ：（）“” works like its ASCII twin)::

    expression := term ( ("or" | "或") term )*
    term       := factor ( ("and" | "且") factor )*
    factor     := ("not" | "非") factor | "(" expression ")" | condition
    condition  := FIELD ":" VALUE          membership
                | FIELD OP NUMBER          comparison, OP one of  <  <=  >  >=  =  !=
    VALUE      := word | "double quoted" | 'single quoted'     (quotes for spaces, ( ) : < > = ! and a value
                                                                spelled like a keyword: tag:"and")

``and`` binds tighter than ``or``; use parentheses to say otherwise. Fields:

==================  ==================================================================================================
tag:名称            has the tag (any group); ``tag:"分组/名称"`` also matches a tag 名称 in group 分组. Alias 标签
rfm:重要价值客户    RFM segment, one of the 8 (the 客户 suffix may be left out). Alias RFM
activity:silent     activity segment: new 新客, active 活跃, silent 沉默, churn_risk 流失风险, lost 已流失. Alias 活跃度
group:"VIP群"       a current member of the customer group (name or chat id). Aliases 群, 客户群
channel:展会        came through the channel code (its name or its state). Alias 渠道
salesperson:zhangsan  followed now by the salesperson (userid or name). Alias 销售
last_active < 30d   time since the last message / order (or being added) — d days, h hours, w weeks; a bare number
                    is days; only < <= > >=. Alias 最近活跃
first_seen < 7d     time since first seen. Alias 首次添加
orders >= 3         confirmed orders in the RFM window (no orders = 0). Alias 订单数
spent > 1000        their amount in yuan (up to 2 decimals; 元 or ¥ allowed). Alias 消费
r / f / m >= 4      RFM scores 1–5 (customers without RFM never match)
==================  ==================================================================================================

Errors (:class:`SegmentSyntaxError`, code ``segment_syntax``) name the 1-based column where the problem is. This
module turns text into a tree of plain values (no I/O); :mod:`tagging.segments.sql` compiles the tree to SQL and
:mod:`tagging.segments.services` runs and stores expressions.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

from scrm.core.errors import DomainError
from scrm.core.money import parse_yuan
from tagging.activity.domain import SEGMENT_ZH as ACTIVITY_ZH
from tagging.rfm.domain import SEGMENT_NAMES

MAX_LENGTH = 1000  # characters of an expression
MAX_DEPTH = 16  # nested parentheses / not
MAX_CONDITIONS = 40
MAX_VALUE = 64


class SegmentSyntaxError(DomainError):
    code = "segment_syntax"
    status = 400

    def __init__(self, zh: str, en: str, column: int, *, field: str = "") -> None:
        # With ``field`` (an expression some form or body carries) the message says what it is about.
        where = f"客群表达式有误，第 {column} 列" if field else f"第 {column} 列"
        super().__init__(f"{where}：{zh} (column {column}: {en})", column=column, **({"field": field} if field else {}))
        self.zh, self.en, self.column = zh, en, column
        self.column = column


# ---- the tree ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Cond:
    field: str  # canonical field name
    op: str  # ":" or a comparison
    value: Any  # normalised: str, int, fen, or a timedelta
    column: int


@dataclass(frozen=True)
class Not:
    item: Node


@dataclass(frozen=True)
class And:
    items: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    items: tuple[Node, ...]


Node = Cond | Not | And | Or

MEMBERSHIP = {"tag", "rfm", "activity", "group", "channel", "salesperson"}
COMPARISON = {"last_active", "first_seen", "orders", "spent", "r", "f", "m"}
ALIASES = {
    "标签": "tag", "rfm": "rfm", "活跃度": "activity", "群": "group", "客户群": "group", "渠道": "channel",
    "销售": "salesperson", "最近活跃": "last_active", "首次添加": "first_seen", "订单数": "orders", "消费": "spent",
}  # fmt: skip
KEYWORDS = {"and": "and", "且": "and", "or": "or", "或": "or", "not": "not", "非": "not"}
ACTIVITY_NAMES = {**{k: k for k in ACTIVITY_ZH}, **{v: k for k, v in ACTIVITY_ZH.items()}}
FULL_WIDTH = str.maketrans({"：": ":", "（": "(", "）": ")", "“": '"', "”": '"', "‘": "'", "’": "'", "＜": "<", "＞": ">", "＝": "="})
_TOKEN = re.compile(r"\s+|(?P<op><=|>=|!=|==|<|>|=)|(?P<punct>[():])|(?P<quote>[\"'])|(?P<word>[^\s():<>=!\"']+)|(?P<bad>.)", re.S)
_DURATION = re.compile(r"(\d{1,6})(d|天|h|小时|w|周)?", re.I)
_UNIT_SECONDS = {"d": 86400, "天": 86400, "h": 3600, "小时": 3600, "w": 604800, "周": 604800}


# ---- parsing ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Token:
    kind: str  # op | ( | ) | : | string | word | end
    text: str
    column: int


def tokenize(text: str) -> list[Token]:
    """Split into tokens with their 1-based columns. Raises SegmentSyntaxError on a stray character or quote."""
    raw, text = text, text.translate(FULL_WIDTH)  # same length: columns agree; quoted values keep the raw text
    for k, ch in enumerate(text):
        if (ord(ch) < 32 and ch not in "\t\n\r") or ch == "\x7f":
            raise SegmentSyntaxError("表达式里有控制字符", f"control character {ch!r}", k + 1)
    out: list[Token] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        assert m is not None
        col = pos + 1
        if m.group("op"):
            out.append(Token("op", "=" if m.group("op") == "==" else m.group("op"), col))
        elif m.group("punct"):
            out.append(Token(m.group("punct"), m.group("punct"), col))
        elif m.group("quote"):
            q = m.group("quote")
            end, chars = pos + 1, []
            while end < len(text) and text[end] != q:
                if text[end] == "\\" and end + 1 < len(text):
                    end += 1
                chars.append(raw[end])  # tag:"（VIP）群" means that tag, not "(VIP)群"
                end += 1
            if end >= len(text):
                raise SegmentSyntaxError("引号没有结束", "unterminated quoted value", col)
            out.append(Token("string", "".join(chars), col))
            pos = end + 1
            continue
        elif m.group("word"):
            out.append(Token("word", m.group("word"), col))
        elif m.group("bad"):
            raise SegmentSyntaxError(f"无法识别的字符 “{m.group('bad')}”", f"unexpected character {m.group('bad')!r}", col)
        pos = m.end()
    out.append(Token("end", "", len(text) + 1))
    return out


class _Parser:
    def __init__(self, tokens: list[Token]) -> None:
        self.tokens, self.i, self.conditions = tokens, 0, 0

    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def keyword(self) -> str | None:
        return KEYWORDS.get(self.tok.text.lower()) if self.tok.kind == "word" else None

    def expression(self, depth: int) -> Node:
        if depth > MAX_DEPTH:
            raise SegmentSyntaxError(f"括号或 not 嵌套超过 {MAX_DEPTH} 层", f"nested deeper than {MAX_DEPTH}", self.tok.column)
        items = [self.term(depth)]
        while self.keyword() == "or":
            self.i += 1
            items.append(self.term(depth))
        return items[0] if len(items) == 1 else Or(tuple(items))

    def term(self, depth: int) -> Node:
        items = [self.factor(depth)]
        while self.keyword() == "and":
            self.i += 1
            items.append(self.factor(depth))
        return items[0] if len(items) == 1 else And(tuple(items))

    def factor(self, depth: int) -> Node:
        tok = self.tok
        if self.keyword() == "not":
            self.i += 1
            if depth + 1 > MAX_DEPTH:
                raise SegmentSyntaxError(f"括号或 not 嵌套超过 {MAX_DEPTH} 层", f"nested deeper than {MAX_DEPTH}", tok.column)
            return Not(self.factor(depth + 1))
        if tok.kind == "(":
            self.i += 1
            inner = self.expression(depth + 1)
            if self.tok.kind != ")":
                raise SegmentSyntaxError("缺少右括号 “)”", "missing ')'", self.tok.column)
            self.i += 1
            return inner
        if tok.kind == "end":
            raise SegmentSyntaxError("表达式不完整，这里还需要一个条件", "a condition is expected here", tok.column)
        if tok.kind != "word" or self.keyword():
            raise SegmentSyntaxError(f"这里需要一个条件，而不是 “{tok.text}”", f"expected a condition, found {tok.text!r}", tok.column)
        return self.condition()

    def condition(self) -> Cond:
        name = self.tok
        field = ALIASES.get(name.text, name.text.lower())
        if field not in MEMBERSHIP | COMPARISON:
            known = "tag, rfm, activity, group, channel, salesperson, last_active, first_seen, orders, spent, r, f, m"
            raise SegmentSyntaxError(f"未知的字段 “{name.text}”，可用：{known}", f"unknown field {name.text!r}", name.column)
        self.conditions += 1
        if self.conditions > MAX_CONDITIONS:
            raise SegmentSyntaxError(f"条件不能超过 {MAX_CONDITIONS} 个", f"more than {MAX_CONDITIONS} conditions", name.column)
        self.i += 1
        op = self.tok
        if field in MEMBERSHIP and op.kind != ":":
            raise SegmentSyntaxError(f"“{name.text}” 后面要用冒号，如 {field}:值", f"expected ':' after {field}", op.column)
        if field in COMPARISON and op.kind != "op":
            raise SegmentSyntaxError(f"“{name.text}” 后面要用比较符，如 {field} >= 3", f"expected < <= > >= = != after {field}", op.column)
        self.i += 1
        value = self.tok
        if value.kind not in ("word", "string") or not value.text.strip() or self.keyword():
            raise SegmentSyntaxError(f"“{name.text}{op.text}” 后面缺少值", f"a value is expected after {field}{op.text}", value.column)
        self.i += 1
        return Cond(field, op.text, _value(field, op, value), name.column)


def _value(field: str, op_token: Token, tok: Token) -> Any:
    """The value of ``field`` normalised (full RFM name, activity code, timedelta, fen, int) or a located error."""
    text, col, op = tok.text.strip(), tok.column, op_token.text
    if field in MEMBERSHIP:
        if len(text) > MAX_VALUE:
            raise SegmentSyntaxError(f"值不能超过 {MAX_VALUE} 个字", f"value longer than {MAX_VALUE}", col)
        if field == "rfm":
            full = text if text in SEGMENT_NAMES else text + "客户"
            if full not in SEGMENT_NAMES:
                raise SegmentSyntaxError(f"没有 RFM 分群 “{text}”，可用：{'、'.join(SEGMENT_NAMES)}", f"unknown RFM segment {text!r}", col)
            return full
        if field == "activity":
            if text.lower() not in ACTIVITY_NAMES:
                choices = "、".join(f"{k}（{v}）" for k, v in ACTIVITY_ZH.items())
                raise SegmentSyntaxError(f"没有活跃度分群 “{text}”，可用：{choices}", f"unknown activity segment {text!r}", col)
            return ACTIVITY_NAMES[text.lower()]
        return text
    if field in ("last_active", "first_seen"):
        if op in ("=", "!="):
            raise SegmentSyntaxError("时间只能用 < <= > >= 比较", "durations compare with < <= > >= only", op_token.column)
        m = _DURATION.fullmatch(text)
        if not m or int(m.group(1)) * _UNIT_SECONDS[(m.group(2) or "d").lower()] > 36500 * 86400:
            raise SegmentSyntaxError(f"“{text}” 不是时长，应写成如 30d、12h、2w", f"{text!r} is not a duration like 30d, 12h, 2w", col)
        return dt.timedelta(seconds=int(m.group(1)) * _UNIT_SECONDS[(m.group(2) or "d").lower()])
    if field == "spent":
        try:
            fen = parse_yuan(text.removesuffix("元"))
        except ValueError:
            fen = -1
        if fen < 0:
            raise SegmentSyntaxError(f"“{text}” 不是金额（元，最多两位小数）", f"{text!r} is not an amount in yuan", col)
        return fen
    limit = 10_000_000 if field == "orders" else 5
    if not text.isdecimal() or not (0 if field == "orders" else 1) <= int(text) <= limit:
        raise SegmentSyntaxError(
            f"“{text}” 不是有效的{'订单数' if field == 'orders' else ' 1–5 分数'}", f"{text!r} is not a valid {field}", col
        )
    return int(text)


def parse(text: str) -> Node:
    """Parse an expression into its tree; SegmentSyntaxError (with the column) on anything wrong."""
    if not isinstance(text, str) or not text.strip():
        raise SegmentSyntaxError("表达式不能为空", "the expression is empty", 1)
    if len(text) > MAX_LENGTH:
        raise SegmentSyntaxError(f"表达式不能超过 {MAX_LENGTH} 个字", f"longer than {MAX_LENGTH} characters", MAX_LENGTH + 1)
    parser = _Parser(tokenize(text))
    node = parser.expression(0)
    tok = parser.tok
    if tok.kind == ")":
        raise SegmentSyntaxError("多余的右括号 “)”", "unmatched ')'", tok.column)
    if tok.kind != "end" and tok.text in ("&", "&&", "|", "||"):
        raise SegmentSyntaxError(f"请用 and / or 代替 “{tok.text}”", f"write 'and' / 'or' instead of {tok.text!r}", tok.column)
    if tok.kind != "end":
        raise SegmentSyntaxError(f"这里缺少 and 或 or（在 “{tok.text}” 之前）", f"expected 'and' or 'or' before {tok.text!r}", tok.column)
    return node


def check_expression(text: str, field: str) -> str:
    """An expression that a campaign is about to store or run, stripped, once it parses. Every edge that takes one
    (API, console, services) calls this, so nothing that cannot run is ever stored or queued: a bad one raises
    :class:`SegmentSyntaxError` naming ``field`` and the column, with the message prefixed 客群表达式有误."""
    try:
        parse(text)
    except SegmentSyntaxError as exc:
        raise SegmentSyntaxError(exc.zh, exc.en, exc.column, field=field) from None
    return text.strip()
