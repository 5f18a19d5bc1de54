"""Property-based tests (hypothesis) for the two languages customers and staff type into the product:

* the chat order parser (:mod:`bots.dialogue.parser`): never raises on any text; every quantity it returns is
  a positive int within ``max_qty``; a well-formed order sentence built from catalog aliases and numerals (Arabic,
  full-width, Chinese, 两) parses back to exactly those items and quantities.
* the segment language (imported from :mod:`tagging.segments.services` only): any text either parses or raises
  ``SegmentSyntaxError`` with a column inside the text; generated valid expressions parse, and their canonical
  rendering parses back to the same tree (round trip, a fixed point); the compiled SQL, on SQLite and
  PostgreSQL, carries every value as a bound parameter, never as SQL text.
"""

from __future__ import annotations

import datetime as dt
import re
from collections import Counter
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from sqlalchemy.dialects import postgresql, sqlite

from bots.dialogue.intents import AddSameAsLast, Cancel, Clarify, Confirm, Correction, NotAnOrder, OrderLines, Product, RemoveItem
from bots.dialogue.numerals import chinese_to_int
from bots.dialogue.parser import OrderParser
from tagging.segments.sql import segment_select
from tagging.segments.syntax import And, Cond, Not, SegmentSyntaxError, parse

pytestmark = pytest.mark.security

PROPS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

CATALOG = [
    Product("WATER-550", "矿泉水 550ml×24", ("矿泉水", "农夫山泉"), "箱"),
    Product("COLA", "可口可乐 330ml", ("可乐", "可口可乐"), "瓶"),
    Product("TISSUE", "维达抽纸", ("纸巾", "抽纸", "餐巾纸"), "包"),
    Product("RICE", "东北大米 5kg", ("大米", "东北大米"), "袋"),
    Product("SOY-LIGHT", "海天生抽 500ml", ("酱油", "生抽"), "瓶"),
    Product("SOY-DARK", "海天老抽 500ml", ("酱油", "老抽"), "瓶"),
    Product("OIL", "花生油 5L", ("花生油", "油"), "桶"),
]
# Aliases naming exactly one SKU (酱油 is both soy sauces: the parser asks, by design).
UNAMBIGUOUS = {
    "WATER-550": ["矿泉水", "农夫山泉"],
    "COLA": ["可乐", "可口可乐"],
    "TISSUE": ["纸巾", "抽纸", "餐巾纸"],
    "RICE": ["大米", "东北大米"],
    "SOY-LIGHT": ["生抽"],
    "SOY-DARK": ["老抽"],
    "OIL": ["花生油"],
}
UNIT = {p.sku: p.unit for p in CATALOG}
RESULT_TYPES = (OrderLines, AddSameAsLast, Correction, RemoveItem, Confirm, Cancel, Clarify, NotAnOrder)


@pytest.fixture(scope="module")
def parser() -> OrderParser:
    return OrderParser(CATALOG)  # loads jieba once per module


_D = "零一二三四五六七八九"


def chinese(n: int, *, liang: bool = False) -> str:
    """1..9999 as a Chinese numeral (一千零五, 一百一十, 十二); 两 for a leading 2 when asked."""
    out, gap = "", False
    for value, place in ((1000, "千"), (100, "百"), (10, "十")):
        d, n = divmod(n, value)
        if d:
            out += ("零" if gap else "") + (("两" if liang and not out and d == 2 and place != "十" else _D[d]) + place)
            gap = False
        elif out:
            gap = True
    if n:
        out += ("零" if gap else "") + ("两" if liang and not out and n == 2 else _D[n])
    return out[1:] if out.startswith("一十") else out


def numeral(n: int, style: str) -> str:
    if style == "arabic":
        return str(n)
    if style == "fullwidth":
        return "".join(chr(ord(c) - ord("0") + ord("０")) for c in str(n))
    return chinese(n, liang=style == "liang")


def test_chinese_numeral_helper_matches_the_product(parser: OrderParser) -> None:
    for n in range(1, 10000):
        assert chinese_to_int(chinese(n)) == n, (n, chinese(n))
        assert chinese_to_int(chinese(n, liang=True)) == n, (n, chinese(n, liang=True))


def check_result(result: Any, parser: OrderParser) -> None:
    assert isinstance(result, RESULT_TYPES)
    if isinstance(result, OrderLines):
        assert result.lines
        for line in result.lines:
            assert type(line.qty) is int and 1 <= line.qty <= parser.max_qty, line
            assert line.sku in parser.products and line.unit == parser.products[line.sku].unit
    if isinstance(result, AddSameAsLast):
        assert type(result.qty) is int and 1 <= result.qty <= parser.max_qty
    if isinstance(result, Correction):
        assert type(result.qty) is int and 1 <= result.qty <= parser.max_qty, result
        assert result.sku is None or result.sku in parser.products
    if isinstance(result, RemoveItem):
        assert all(s in parser.products for s in result.skus)
    if isinstance(result, Clarify):
        assert result.question and re.search(r"[\u4e00-\u9fff]", result.question)  # a Chinese question
        assert result.qty is None or type(result.qty) is int
        assert all(s in parser.products for s in result.candidates)


CHAT_WORDS = (
    "要来买订再加还改成不要了去掉确认取消和跟、，,。！？ 0123456789０１２３４５６７８９一二两俩仨三四五六七八九十百千万零半打个箱瓶包袋桶"
)
CHAT_ALPHABET = st.sampled_from(
    [
        *CHAT_WORDS,
        "矿泉水",
        "可乐",
        "纸巾",
        "酱油",
        "生抽",
        "花生油",
        "油",
        "x",
        "×",
        "*",
        "-",
        "/",
        "½",
        "²",
        "①",
        "[微笑]",
        "😀",
        "\u200b",
        "\x00",
    ]
)


@PROPS
@given(text=st.text(max_size=200))
def test_parser_never_raises_on_arbitrary_unicode(parser: OrderParser, text: str) -> None:
    for has_draft in (False, True):
        check_result(parser.parse(text, has_draft=has_draft), parser)
    assert parser.stock_query_product(text) is None or isinstance(parser.stock_query_product(text), list)


@PROPS
@given(parts=st.lists(CHAT_ALPHABET, max_size=30))
def test_parser_never_raises_on_chat_like_noise(parser: OrderParser, parts: list[str]) -> None:
    """Arbitrary text rarely hits the interesting paths; shop vocabulary in random order does."""
    text = "".join(parts)
    for has_draft in (False, True):
        check_result(parser.parse(text, has_draft=has_draft), parser)


ORDER_ITEM = st.tuples(
    st.sampled_from(sorted(UNAMBIGUOUS)),
    st.integers(min_value=1, max_value=999),
    st.sampled_from(["arabic", "fullwidth", "chinese", "liang"]),
    st.integers(min_value=0, max_value=2),  # which alias
    st.sampled_from(["qty_first", "product_first"]),
)


def phrase(sku: str, qty: int, style: str, alias_index: int, order: str) -> str:
    aliases = UNAMBIGUOUS[sku]
    alias, q = aliases[alias_index % len(aliases)], numeral(qty, style) + UNIT[sku]
    return f"{q}{alias}" if order == "qty_first" else f"{alias}{q}"


@PROPS
@given(
    items=st.lists(ORDER_ITEM, min_size=1, max_size=3, unique_by=lambda i: i[0]),
    verb=st.sampled_from(["要", "来", "买", "订", "我要", ""]),
    sep=st.sampled_from(["，", "、", "和", "，还有", " ", ","]),
    tail=st.sampled_from(["", "。", "！", " 谢谢"]),
)
def test_a_well_formed_order_parses_back_to_its_items(parser: OrderParser, items: list[Any], verb: str, sep: str, tail: str) -> None:
    if len(items) > 1:
        assume(all(i[4] == items[0][4] for i in items))  # one word order per sentence, as people write
    text = verb + sep.join(phrase(*i) for i in items) + tail
    result = parser.parse(text)
    assert isinstance(result, OrderLines), (text, result)
    assert result.mode == "new"
    assert Counter((ln.sku, ln.qty) for ln in result.lines) == Counter((i[0], i[1]) for i in items), text


# ---- the segment language -----------------------------------------------------------------------------------
SEGMENT_FIELDS = [
    "tag",
    "rfm",
    "activity",
    "group",
    "channel",
    "salesperson",
    "last_active",
    "first_seen",
    "orders",
    "spent",
    "r",
    "f",
    "m",
]
SEGMENT_ALPHABET = st.sampled_from(
    [
        *SEGMENT_FIELDS,
        *["标签", "渠道", "消费", "and", "or", "not", "且", "或", "非", "AND", "Not"],
        *":：()（）\"“”'<>=!&| \t\n",
        *["<=", ">=", "!=", "==", "30d", "12h", "2w", "3", "1000", "1.5", "元", "¥", "x", "意向-高"],
        *["重要价值客户", "silent", "沉默", "\\", "\x00", "\x7f", "😀", "²", "①", "'; DROP TABLE customers; --", '" OR 1=1 --'],
    ]
)


def check_parse(text: str) -> Any:
    try:
        return parse(text)
    except SegmentSyntaxError as exc:
        assert exc.code == "segment_syntax" and exc.status == 400
        assert isinstance(exc.column, int) and 1 <= exc.column <= max(len(text), 1000) + 1, (text, exc.column)
        assert f"第 {exc.column} 列" in exc.message
        return None


@PROPS
@given(text=st.text(max_size=300))
def test_any_text_parses_or_raises_the_documented_error_with_a_column(text: str) -> None:
    check_parse(text)


@PROPS
@given(parts=st.lists(SEGMENT_ALPHABET, max_size=40))
def test_segment_like_noise_parses_or_raises_the_documented_error(parts: list[str]) -> None:
    text = " ".join(parts) if len(parts) % 2 else "".join(parts)
    node = check_parse(text)
    if node is not None:
        compile_both(node)


# A generator of valid expressions (trees), a canonical renderer, and the round trip.
VALUE_TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=20).filter(
    lambda s: s.strip() == s and s.strip() != ""
)
MEMBERSHIP_VALUE = {
    "tag": VALUE_TEXT,
    "group": VALUE_TEXT,
    "channel": VALUE_TEXT,
    "salesperson": VALUE_TEXT,
    "rfm": st.sampled_from(["重要价值客户", "重要价值", "一般挽留客户"]),
    "activity": st.sampled_from(["silent", "沉默", "new", "lost", "churn_risk"]),
}


def condition() -> st.SearchStrategy[str]:
    membership = st.sampled_from(sorted(MEMBERSHIP_VALUE)).flatmap(lambda f: MEMBERSHIP_VALUE[f].map(lambda v, f=f: f"{f}:{quote(v)}"))
    durations = st.tuples(
        st.sampled_from(["last_active", "first_seen", "最近活跃"]),
        st.sampled_from(["<", "<=", ">", ">="]),
        st.integers(1, 999),
        st.sampled_from(["d", "h", "w", "天", ""]),
    ).map(lambda t: f"{t[0]} {t[1]} {t[2]}{t[3]}")
    numbers = st.tuples(
        st.sampled_from(["orders", "r", "f", "m"]), st.sampled_from(["<", "<=", ">", ">=", "=", "!="]), st.integers(1, 5)
    ).map(lambda t: f"{t[0]} {t[1]} {t[2]}")
    spent = st.tuples(st.sampled_from(["<", ">=", "="]), st.integers(0, 10**6), st.sampled_from(["", ".5", ".25", "元"])).map(
        lambda t: f"spent {t[0]} {t[1]}{t[2]}"
    )
    return st.one_of(membership, durations, numbers, spent)


def quote(value: str) -> str:
    if re.fullmatch(r"[^\s():<>=!\"'：（）“”‘’＜＞＝\\]+", value) and value.lower() not in ("and", "or", "not", "且", "或", "非"):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


EXPRESSION = st.recursive(
    condition(),
    lambda inner: st.one_of(
        st.lists(inner, min_size=2, max_size=3).map(lambda xs: "(" + " and ".join(xs) + ")"),
        st.lists(inner, min_size=2, max_size=3).map(lambda xs: "(" + " or ".join(xs) + ")"),
        inner.map(lambda x: "not " + x),
    ),
    max_leaves=8,
)


def strip(node: Any) -> Any:
    """The tree without columns (positions differ between renderings)."""
    if isinstance(node, Cond):
        return ("cond", node.field, node.op, node.value)
    if isinstance(node, Not):
        return ("not", strip(node.item))
    return (type(node).__name__, tuple(strip(n) for n in node.items))


def render(node: Any) -> str:
    """Canonical text of a tree: fields by their English name, values quoted when needed, full parentheses."""
    if isinstance(node, Cond):
        value = node.value
        if isinstance(value, dt.timedelta):
            text = f"{int(value.total_seconds()) // 3600}h" if value.total_seconds() % 86400 else f"{value.days}d"
            assert int(value.total_seconds()) % 3600 == 0
            return f"{node.field} {node.op} {text}"
        if node.field == "spent":
            return f"spent {node.op} {value // 100}.{value % 100:02d}"
        if node.op == ":":
            return f"{node.field}:{quote(str(value))}"
        return f"{node.field} {node.op} {value}"
    if isinstance(node, Not):
        return f"not ({render(node.item)})"
    word = " and " if isinstance(node, And) else " or "
    return "(" + word.join(render(n) for n in node.items) + ")"


def compile_both(node: Any) -> list[str]:
    out = []
    for dialect in (sqlite.dialect(), postgresql.dialect()):
        out.append(str(segment_select(node, dt.datetime(2026, 11, 23, tzinfo=dt.UTC)).compile(dialect=dialect)))
    return out


def values_of(node: Any) -> list[Any]:
    if isinstance(node, Cond):
        return [node.value]
    if isinstance(node, Not):
        return values_of(node.item)
    return [v for n in node.items for v in values_of(n)]


@PROPS
@given(text=EXPRESSION)
def test_valid_expressions_parse_compile_and_round_trip(text: str) -> None:
    assume(len(text) <= 1000)
    try:
        node = parse(text)
    except SegmentSyntaxError as exc:
        if "超过" in exc.message:  # the documented size limits (depth, conditions) may be hit by a big tree
            return
        raise
    canonical = render(node)
    again = parse(canonical)
    assert strip(again) == strip(node), (text, canonical)
    assert render(again) == canonical  # a fixed point
    for sql in compile_both(node):
        for value in values_of(node):
            if isinstance(value, str) and len(value) > 2 and not value.isalnum():
                assert value not in sql, (value, sql)  # a bound parameter, never SQL text


@PROPS
@example(value="（VIP）群")  # full-width punctuation inside quotes was turned into ASCII: another tag
@example(value="客户：重要")
@example(value="他说“好”")
@given(value=st.text(min_size=1, max_size=30).filter(lambda s: s.strip() and len(s.strip()) <= 64))
def test_any_quoted_value_is_data_never_sql(value: str) -> None:
    """Quoted, any text is the value verbatim (full-width punctuation included) and a bound parameter in SQL."""
    text = 'tag:"' + re.sub(r'(["“”\\])', r"\\\1", value) + '"'  # a backslash before \ and before any double quote
    node = check_parse(text)
    if node is None:  # control characters are refused, with a column
        return
    assert isinstance(node, Cond) and node.value == value.strip()
    for sql in compile_both(node):
        assert value.strip() not in sql or value.strip().isalnum() or len(value.strip()) < 3
