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

Errors (:class:`SegmentSyntaxError`, code ``segment_syntax``) name the 1-based column where the problem is. The
compiler turns the tree into a SQLAlchemy condition over ``customers`` (EXISTS sub-queries); every value is a bound
parameter, never text in the SQL. Merged-away customers never match.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from scrm.channels.models import channel_codes
from scrm.core.errors import Conflict, DomainError, InvalidInput, NotFound
from scrm.core.money import parse_yuan
from scrm.core.runtime import Runtime
from scrm.customers.models import FollowStatus, customers, follows, salespeople
from scrm.groups.models import group_members, groups
from scrm.tags.models import customer_tags, tag_groups, tags
from tagging.activity import SEGMENT_ZH as ACTIVITY_ZH
from tagging.models import customer_activity, customer_order_stats, customer_rfm, segments
from tagging.rfm import SEGMENT_NAMES

MAX_LENGTH = 1000  # characters of an expression
MAX_DEPTH = 16  # nested parentheses / not
MAX_CONDITIONS = 40
MAX_VALUE = 64


class SegmentSyntaxError(DomainError):
    code = "segment_syntax"
    status = 400

    def __init__(self, zh: str, en: str, column: int) -> None:
        super().__init__(f"第 {column} 列：{zh} (column {column}: {en})", column=column)
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


# ---- compiling --------------------------------------------------------------------------------------------
_OPS = {"<": "__lt__", "<=": "__le__", ">": "__gt__", ">=": "__ge__", "=": "__eq__", "!=": "__ne__"}


def _compare(left: Any, op: str, value: Any) -> Any:
    return getattr(left, _OPS[op])(value)


def _active_after(at: dt.datetime, strict: bool) -> Any:
    """last_active > at (strict) or ≥ at: a message, an order, or being first seen then or later."""
    ca, c = customer_activity.c, customers.c

    def after(col: Any) -> Any:
        return col > at if strict else col >= at

    recent = sa.select(sa.literal(1)).where(ca.customer_id == c.id, sa.or_(after(ca.last_message_at), after(ca.last_order_at)))
    return sa.or_(after(c.first_seen_at), sa.exists(recent))


def _since(column_after: Any, op: str, ago: dt.timedelta, now: dt.datetime) -> Any:
    """``time since X  op  ago``: less time since ⇔ X after the cut (``column_after(cut, strict)``)."""
    cut = now - ago
    return {
        "<": lambda: column_after(cut, True),
        "<=": lambda: column_after(cut, False),
        ">": lambda: ~column_after(cut, False),
        ">=": lambda: ~column_after(cut, True),
    }[op]()


def _membership(field: str, value: str) -> Any:
    c = customers.c
    if field == "tag":
        ct, t, g = customer_tags.c, tags.c, tag_groups.c
        group, _, name = value.partition("/")
        named = sa.or_(t.name == value, sa.and_(g.name == group, t.name == name)) if name else t.name == value
        q = sa.select(sa.literal(1)).select_from(customer_tags.join(tags, t.id == ct.tag_id).join(tag_groups, g.id == t.group_id))
        return sa.exists(q.where(ct.customer_id == c.id, t.deleted_at.is_(None), named))
    if field in ("rfm", "activity"):
        table = customer_rfm if field == "rfm" else customer_activity
        return sa.exists(sa.select(sa.literal(1)).where(table.c.customer_id == c.id, table.c.segment == value))
    if field == "group":
        gm, gr = group_members.c, groups.c
        q = sa.select(sa.literal(1)).select_from(group_members.join(groups, gr.chat_id == gm.chat_id))
        return sa.exists(
            q.where(gm.customer_id == c.id, gm.active.is_(True), gr.dismissed_at.is_(None), sa.or_(gr.name == value, gr.chat_id == value))
        )
    f = follows.c
    if field == "channel":
        states = sa.select(channel_codes.c.state).where(channel_codes.c.name == value)
        return sa.exists(sa.select(sa.literal(1)).where(f.customer_id == c.id, sa.or_(f.state == value, f.state.in_(states))))
    by_name = sa.select(salespeople.c.userid).where(salespeople.c.name == value)
    return sa.exists(
        sa.select(sa.literal(1)).where(
            f.customer_id == c.id, f.status != FollowStatus.ENDED, sa.or_(f.userid == value, f.userid.in_(by_name))
        )
    )


def _condition(cond: Cond, now: dt.datetime) -> Any:
    c = customers.c
    if cond.field in MEMBERSHIP:
        return _membership(cond.field, cond.value)
    if cond.field == "last_active":
        return _since(_active_after, cond.op, cond.value, now)
    if cond.field == "first_seen":
        return _since(lambda at, strict: c.first_seen_at > at if strict else c.first_seen_at >= at, cond.op, cond.value, now)
    if cond.field in ("orders", "spent"):
        s = customer_order_stats.c
        column = s.orders if cond.field == "orders" else s.monetary_fen
        own = sa.select(column).where(s.customer_id == c.id).scalar_subquery()
        return _compare(sa.func.coalesce(own, 0), cond.op, cond.value)
    score = sa.select(customer_rfm.c[cond.field]).where(customer_rfm.c.customer_id == c.id).scalar_subquery()
    return _compare(score, cond.op, cond.value)


def compile_condition(node: Node, now: dt.datetime) -> Any:
    """The WHERE condition over ``customers`` for a parsed expression (bound parameters only)."""
    if isinstance(node, Cond):
        return _condition(node, now)
    if isinstance(node, Not):
        return sa.not_(compile_condition(node.item, now))
    parts = [compile_condition(n, now) for n in node.items]
    return sa.and_(*parts) if isinstance(node, And) else sa.or_(*parts)


def segment_select(node: Node, now: dt.datetime) -> Any:
    """SELECT customers.id of every current (not merged-away) customer the expression picks, id order."""
    return sa.select(customers.c.id).where(customers.c.merged_into.is_(None), compile_condition(node, now)).order_by(customers.c.id)


# ---- use cases --------------------------------------------------------------------------------------------
async def count_segment(rt: Runtime, expression: str) -> int:
    """How many customers the expression picks now. SegmentSyntaxError when it does not parse."""
    q = segment_select(parse(expression), rt.clock.now()).order_by(None)
    async with rt.db.read() as conn:
        return int((await conn.execute(sa.select(sa.func.count()).select_from(q.subquery()))).scalar_one())


async def sample_segment(rt: Runtime, expression: str, limit: int = 10) -> list[dict[str, Any]]:
    """The first ``limit`` customers picked (lowest ids): id and name, for a preview."""
    ids = segment_select(parse(expression), rt.clock.now()).limit(limit).subquery()
    async with rt.db.read() as conn:
        rows = await conn.execute(
            sa.select(customers.c.id, customers.c.name).where(customers.c.id.in_(sa.select(ids.c.id))).order_by(customers.c.id)
        )
        return [{"id": int(r.id), "name": r.name} for r in rows]


async def iter_segment_batches(rt: Runtime, expression: str, batch: int = 1000) -> AsyncIterator[list[int]]:
    """Customer ids picked by the expression, ascending, in lists of at most ``batch``. Each batch is its own short
    read (keyset paging on the id), so memory stays flat and no transaction stays open between batches; "now" is
    fixed at the start. Customers changing meanwhile may enter or leave; each id comes at most once."""
    if not 1 <= batch <= 100_000:
        raise ValueError("batch must be 1..100000")
    query, last = segment_select(parse(expression), rt.clock.now()), 0
    while True:
        async with rt.db.read() as conn:
            ids = [int(i) for (i,) in await conn.execute(query.where(customers.c.id > last).limit(batch))]
        if ids:
            yield ids
        if len(ids) < batch:
            return
        last = ids[-1]


async def iter_segment(rt: Runtime, expression: str, batch: int = 1000) -> AsyncIterator[int]:
    """Customer ids one by one (see :func:`iter_segment_batches`)."""
    async for ids in iter_segment_batches(rt, expression, batch):
        for customer_id in ids:
            yield customer_id


# ---- saved segments ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SavedSegment:
    id: int
    name: str
    expression: str
    description: str
    created_by: str
    created_at: dt.datetime
    updated_at: dt.datetime

    def to_json(self) -> dict[str, Any]:
        return {**self.__dict__, "created_at": self.created_at.isoformat(), "updated_at": self.updated_at.isoformat()}


def _saved(row: Any) -> SavedSegment:
    return SavedSegment(int(row.id), row.name, row.expression, row.description, row.created_by, row.created_at, row.updated_at)


def _checked(name: str | None, expression: str | None, description: str | None) -> dict[str, str]:
    values: dict[str, str] = {}
    if name is not None:
        if not isinstance(name, str) or not 0 < len(name.strip()) <= 64:
            raise InvalidInput("客群名称需为 1 到 64 个字 (name: 1–64 characters)", field="name")
        values["name"] = name.strip()
    if expression is not None:
        parse(expression)
        values["expression"] = expression.strip()
    if description is not None:
        if not isinstance(description, str) or len(description) > 500:
            raise InvalidInput("说明不超过 500 字 (description ≤ 500 characters)", field="description")
        values["description"] = description.strip()
    return values


async def list_segments(conn: AsyncConnection) -> list[SavedSegment]:
    return [_saved(r) for r in await conn.execute(sa.select(segments).order_by(segments.c.name))]


async def get_segment(conn: AsyncConnection, segment_id: int) -> SavedSegment:
    row = (await conn.execute(sa.select(segments).where(segments.c.id == segment_id))).first()
    if row is None:
        raise NotFound("没有这个客群 (no such segment)", segment_id=segment_id)
    return _saved(row)


async def save_segment(
    rt: Runtime, *, name: str, expression: str, description: str = "", created_by: str = "", segment_id: int | None = None
) -> SavedSegment:
    """Create (``segment_id`` None) or replace a saved segment. The expression must parse; names are unique
    (Conflict otherwise); NotFound for an unknown id."""
    values, now = _checked(name, expression, description), rt.clock.now()
    try:
        async with rt.db.write() as conn:
            if segment_id is None:
                q = segments.insert().values(**values, created_by=created_by[:64], created_at=now, updated_at=now)
                segment_id = int((await conn.execute(q.returning(segments.c.id))).scalar_one())
            elif not (await conn.execute(segments.update().where(segments.c.id == segment_id).values(**values, updated_at=now))).rowcount:
                raise NotFound("没有这个客群 (no such segment)", segment_id=segment_id)
            return await get_segment(conn, segment_id)
    except IntegrityError:
        raise Conflict(f"已有同名客群 “{values['name']}” (a segment with this name exists)", field="name") from None


async def delete_segment(rt: Runtime, segment_id: int) -> None:
    """Delete a saved segment; NotFound when there is none."""
    async with rt.db.write() as conn:
        if not (await conn.execute(sa.delete(segments).where(segments.c.id == segment_id))).rowcount:
            raise NotFound("没有这个客群 (no such segment)", segment_id=segment_id)
