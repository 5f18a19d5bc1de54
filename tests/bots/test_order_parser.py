"""Chat order parsing with plain values: a fixture catalog in, result dataclasses out (no DB, no network)."""

from __future__ import annotations

from fractions import Fraction

import jieba
import pytest

from bots.dialogue.intents import AddSameAsLast, Cancel, Clarify, Confirm, Correction, Line, NotAnOrder, OrderLines, Product, RemoveItem
from bots.dialogue.numerals import (
    QuantityScanner,
    chinese_to_int,
    parse_number,
    parse_quantity,
    parse_quantity_with_unit,
)
from bots.dialogue.parser import OrderParser, normalize_text

CATALOG = [
    Product("WATER-550", "矿泉水 550ml×24", ("矿泉水", "农夫山泉"), "箱"),
    Product("COLA", "可口可乐 330ml", ("可乐", "可口可乐"), "瓶"),
    Product("TISSUE", "维达抽纸", ("纸巾", "抽纸", "餐巾纸"), "包"),
    Product("RICE", "东北大米 5kg", ("大米", "东北大米"), "袋"),
    Product("SOY-LIGHT", "海天生抽 500ml", ("酱油", "生抽"), "瓶"),
    Product("SOY-DARK", "海天老抽 500ml", ("酱油", "老抽"), "瓶"),
]
SOY = ["SOY-LIGHT", "SOY-DARK"]


@pytest.fixture(scope="module")
def parser() -> OrderParser:
    # jieba's dictionary load costs ~1 s: one parser per module, as production builds one per catalog version.
    return OrderParser(CATALOG)


# -- orders ---------------------------------------------------------------------------------------

ORDERS: list[tuple[str, list[tuple[str, int]]]] = [
    ("要3箱矿泉水", [("WATER-550", 3)]),
    ("矿泉水3箱", [("WATER-550", 3)]),
    ("来两箱矿泉水", [("WATER-550", 2)]),
    ("要俩箱矿泉水", [("WATER-550", 2)]),
    ("仨箱农夫山泉", [("WATER-550", 3)]),
    ("矿泉水要3箱", [("WATER-550", 3)]),
    ("订3箱矿泉水", [("WATER-550", 3)]),
    ("买 3 箱 矿泉水", [("WATER-550", 3)]),
    ("矿泉水 x3", [("WATER-550", 3)]),
    ("矿泉水*3", [("WATER-550", 3)]),
    ("矿泉水×3", [("WATER-550", 3)]),
    ("矿泉水3", [("WATER-550", 3)]),
    ("给我拿十二瓶可乐", [("COLA", 12)]),
    ("要二十瓶可乐", [("COLA", 20)]),
    ("要二十五瓶可乐", [("COLA", 25)]),
    ("来一百瓶可口可乐", [("COLA", 100)]),
    ("要两百瓶可乐", [("COLA", 200)]),
    ("要一百零五袋大米", [("RICE", 105)]),
    ("三千二瓶可乐", [("COLA", 3200)]),
    ("一打可乐", [("COLA", 12)]),
    ("我想要2袋东北大米", [("RICE", 2)]),
    ("帮我订5包抽纸", [("TISSUE", 5)]),
    ("要十包餐巾纸", [("TISSUE", 10)]),
    ("3箱矿泉水，5包纸巾", [("WATER-550", 3), ("TISSUE", 5)]),
    ("2箱矿泉水和5包纸巾", [("WATER-550", 2), ("TISSUE", 5)]),
    ("3箱矿泉水、2包纸巾、4瓶可乐", [("WATER-550", 3), ("TISSUE", 2), ("COLA", 4)]),
    ("2箱矿泉水跟3瓶可乐", [("WATER-550", 2), ("COLA", 3)]),
    ("3箱矿泉水还有5包纸巾", [("WATER-550", 3), ("TISSUE", 5)]),
    ("3箱矿泉水 5包纸巾", [("WATER-550", 3), ("TISSUE", 5)]),
    ("矿泉水3箱纸巾5包", [("WATER-550", 3), ("TISSUE", 5)]),
    ("3箱矿泉水5包纸巾", [("WATER-550", 3), ("TISSUE", 5)]),
    ("矿泉水 3 纸巾 5", [("WATER-550", 3), ("TISSUE", 5)]),
    ("可乐和纸巾各2", [("COLA", 2), ("TISSUE", 2)]),
    ("2箱矿泉水，再来3箱农夫山泉", [("WATER-550", 5)]),
    ("要3瓶生抽", [("SOY-LIGHT", 3)]),
    ("要3瓶生抽酱油", [("SOY-LIGHT", 3)]),
    ("老抽来两瓶", [("SOY-DARK", 2)]),
    ("农夫山泉矿泉水2箱", [("WATER-550", 2)]),
    # noise: greetings, politeness, emoji, WeChat emoji codes, punctuation, full-width characters
    ("老板你好，帮我送3箱矿泉水过来，谢谢！", [("WATER-550", 3)]),
    ("要３箱矿泉水😀😀", [("WATER-550", 3)]),
    ("要10瓶可乐[微笑][抱拳]", [("COLA", 10)]),
    ("ｘ３  矿泉水！！！", [("WATER-550", 3)]),
    ("【下单】矿泉水　２箱～～", [("WATER-550", 2)]),
    ("在吗？明天下午3点送3箱矿泉水", [("WATER-550", 3)]),
    ("我电话13800138000，要2包纸巾", [("TISSUE", 2)]),
    ("麻烦加急送3箱矿泉水", [("WATER-550", 3)]),
    ("3箱矿泉水\n5包纸巾", [("WATER-550", 3), ("TISSUE", 5)]),
    ("要3箱[矿泉水][微笑]", [("WATER-550", 3)]),
    ("我要3箱矿泉水，地址改成人民路", [("WATER-550", 3)]),
]


@pytest.mark.parametrize(("text", "expected"), ORDERS)
def test_order_lines(parser: OrderParser, text: str, expected: list[tuple[str, int]]) -> None:
    result = parser.parse(text)
    assert isinstance(result, OrderLines), result
    assert result.kind == "order_lines"
    assert result.mode == "new"
    assert [(line.sku, line.qty) for line in result.lines] == expected
    units = {p.sku: p.unit for p in CATALOG}
    assert all(line.unit == units[line.sku] for line in result.lines)


def test_line_keeps_the_matched_alias(parser: OrderParser) -> None:
    result = parser.parse("要两瓶可口可乐，3包餐巾纸")
    assert result == OrderLines([Line("COLA", 2, "瓶", "可口可乐"), Line("TISSUE", 3, "包", "餐巾纸")], "new")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("再来一箱矿泉水", [("WATER-550", 1)]),
        ("再加2包纸巾", [("TISSUE", 2)]),
        ("我还要3瓶可乐", [("COLA", 3)]),
        ("好的，再加两袋大米和一打可乐", [("RICE", 2), ("COLA", 12)]),
        ("另外要5包纸巾", [("TISSUE", 5)]),
    ],
)
def test_add_to_draft(parser: OrderParser, text: str, expected: list[tuple[str, int]]) -> None:
    result = parser.parse(text, has_draft=True)
    assert isinstance(result, OrderLines), result
    assert result.mode == "add"
    assert [(line.sku, line.qty) for line in result.lines] == expected


@pytest.mark.parametrize(
    ("text", "qty", "unit"),
    [("还要一箱", 1, "箱"), ("再来两个", 2, "个"), ("再加3", 3, None), ("再来一打", 12, None)],
)
def test_more_of_the_last_product(parser: OrderParser, text: str, qty: int, unit: str | None) -> None:
    assert parser.parse(text, has_draft=True) == AddSameAsLast(qty, unit)


# -- corrections, removal, confirm, cancel --------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("改成4箱", Correction(None, 4, "箱")),
        ("改为4箱", Correction(None, 4, "箱")),
        ("换成5包", Correction(None, 5, "包")),
        ("改成十个", Correction(None, 10, "个")),
        ("不要3箱了，要4箱", Correction(None, 4, "箱")),
        ("不是3箱，是4箱", Correction(None, 4, "箱")),
        ("矿泉水改成4箱", Correction("WATER-550", 4, "箱", "矿泉水")),
        ("把纸巾改为两包吧", Correction("TISSUE", 2, "包", "纸巾")),
        ("可乐改成20", Correction("COLA", 20, "瓶", "可乐")),
        ("生抽换成3瓶", Correction("SOY-LIGHT", 3, "瓶", "生抽")),
    ],
)
def test_corrections(parser: OrderParser, text: str, expected: Correction) -> None:
    assert parser.parse(text, has_draft=True) == expected


@pytest.mark.parametrize(
    ("text", "skus"),
    [
        ("纸巾不要了", ("TISSUE",)),
        ("去掉纸巾", ("TISSUE",)),
        ("把抽纸删掉", ("TISSUE",)),
        ("可乐取消", ("COLA",)),
        ("纸巾和可乐都不要了", ("TISSUE", "COLA")),
    ],
)
def test_removals(parser: OrderParser, text: str, skus: tuple[str, ...]) -> None:
    result = parser.parse(text, has_draft=True)
    assert isinstance(result, RemoveItem), result
    assert result.skus == skus


@pytest.mark.parametrize(
    "text",
    ["确认", "确定", "好的", "对", "没问题", "是的", "ok", "OK👌", "下单", "好的，确认下单！", "确认订单"],
)
def test_confirm_only_with_a_draft(parser: OrderParser, text: str) -> None:
    assert parser.parse(text, has_draft=True) == Confirm()
    assert parser.parse(text, has_draft=False) == NotAnOrder()


@pytest.mark.parametrize("text", ["不对", "好的，再想想吗？", "可以吗"])
def test_not_a_confirmation(parser: OrderParser, text: str) -> None:
    assert parser.parse(text, has_draft=True) == NotAnOrder()


@pytest.mark.parametrize("text", ["取消", "不要了", "算了", "不买了", "算了算了，不买了😂", "取消订单"])
@pytest.mark.parametrize("has_draft", [True, False])
def test_cancel(parser: OrderParser, text: str, has_draft: bool) -> None:
    assert parser.parse(text, has_draft=has_draft) == Cancel()


# -- clarifications -------------------------------------------------------------------------------

CLARIFY: list[tuple[str, str, list[str]]] = [
    ("要3瓶酱油", "ambiguous_product", SOY),
    ("酱油来两瓶，3包纸巾", "ambiguous_product", SOY),
    ("要矿泉水", "missing_quantity", ["WATER-550"]),
    ("3包纸巾，再来点可乐", "missing_quantity", ["COLA"]),
    ("要3箱雪碧", "unknown_product", []),
    ("雪碧要两箱", "unknown_product", []),
    ("要3箱矿泉水，2箱雪碧", "unknown_product", []),
    ("3瓶矿泉水", "unit_mismatch", ["WATER-550"]),
    ("矿泉水和纸巾各3箱", "unit_mismatch", ["TISSUE"]),
    ("0箱矿泉水", "invalid_quantity", ["WATER-550"]),
    ("要零箱矿泉水", "invalid_quantity", ["WATER-550"]),
    ("-3箱矿泉水", "invalid_quantity", ["WATER-550"]),
    ("负三箱矿泉水", "invalid_quantity", ["WATER-550"]),
    ("99999箱矿泉水", "invalid_quantity", ["WATER-550"]),
    ("1万瓶可乐", "invalid_quantity", ["COLA"]),
    ("半箱矿泉水", "invalid_quantity", ["WATER-550"]),
    ("1.5箱矿泉水", "invalid_quantity", ["WATER-550"]),
    ("一箱半矿泉水", "invalid_quantity", ["WATER-550"]),
    ("要三四箱矿泉水", "invalid_quantity", ["WATER-550"]),
    ("要3-5箱矿泉水", "invalid_quantity", ["WATER-550"]),
    ("要3箱", "missing_product", []),
    ("修改", "unclear_correction", []),
    ("把矿泉水换成可乐", "unclear_correction", ["WATER-550", "COLA"]),
    ("减掉2箱矿泉水", "unclear_correction", ["WATER-550"]),
    ("矿泉水改成4瓶", "unit_mismatch", ["WATER-550"]),
    ("改成0箱", "invalid_quantity", []),
    ("酱油不要了", "ambiguous_product", SOY),
    ("酱油改成3瓶", "ambiguous_product", SOY),
    ("矿泉水改一下", "missing_quantity", ["WATER-550"]),
    ("要½箱矿泉水", "invalid_quantity", ["WATER-550"]),
    ("要1/2箱矿泉水", "invalid_quantity", ["WATER-550"]),
    ("要3箱[微笑]", "missing_product", []),
]


@pytest.mark.parametrize(("text", "reason", "candidates"), CLARIFY)
def test_clarify(parser: OrderParser, text: str, reason: str, candidates: list[str]) -> None:
    result = parser.parse(text, has_draft=True)
    assert isinstance(result, Clarify), result
    assert result.kind == "clarify"
    assert (result.reason, result.candidates) == (reason, candidates)
    assert result.question


def test_ambiguity_lists_the_candidates_by_name(parser: OrderParser) -> None:
    result = parser.parse("要3瓶酱油")
    assert result == Clarify("ambiguous_product", "请问您要哪一种酱油：1. 海天生抽 500ml 2. 海天老抽 500ml？", SOY, "酱油", 3, "瓶")


def test_missing_quantity_asks_in_the_products_unit(parser: OrderParser) -> None:
    result = parser.parse("我要矿泉水")
    assert isinstance(result, Clarify)
    assert result.question == "请问矿泉水要几箱？"


def test_questions_follow_the_intent(parser: OrderParser) -> None:
    correction, removal = parser.parse("酱油改成3瓶"), parser.parse("酱油不要了")
    assert isinstance(correction, Clarify) and isinstance(removal, Clarify)
    assert correction.question.startswith("请问您要修改哪一种酱油：1. 海天生抽 500ml")
    assert (correction.qty, correction.unit) == (3, "瓶")
    assert removal.question.startswith("请问您要去掉哪一种酱油：")


def test_unknown_product_names_what_was_written(parser: OrderParser) -> None:
    result = parser.parse("老板，帮我送3箱雪碧过来")
    assert isinstance(result, Clarify)
    assert result.product_text == "雪碧"
    assert result.question.startswith("抱歉，我们暂时没有“雪碧”。")


def test_unit_mismatch_offers_the_skus_unit_without_converting(parser: OrderParser) -> None:
    result = parser.parse("要3瓶矿泉水")
    assert result == Clarify("unit_mismatch", "矿泉水是按箱卖的，请问您说的3瓶是指3箱吗？", ["WATER-550"], "矿泉水", 3, "箱")


def test_bare_quantity_keeps_the_amount_for_the_dialogue(parser: OrderParser) -> None:
    result = parser.parse("3箱")
    assert isinstance(result, Clarify)
    assert (result.reason, result.qty, result.unit) == ("missing_product", 3, "箱")


def test_max_qty_is_configurable() -> None:
    small = OrderParser(CATALOG[:1], jieba.Tokenizer(), max_qty=50)
    assert isinstance(small.parse("要50箱矿泉水"), OrderLines)
    result = small.parse("要51箱矿泉水")
    assert isinstance(result, Clarify)
    assert result.reason == "invalid_quantity"
    assert "50箱" in result.question


# -- not orders, stock questions ------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "你好",
        "谢谢",
        "[微笑]",
        "我的订单到哪了",
        "有没有矿泉水",
        "矿泉水还有货吗",
        "矿泉水库存",
        "有没有3箱矿泉水",
        "矿泉水多少钱一箱",
        "矿泉水",
        "帮我看一下",
        "我明天3点到",
        "我们有2个人",
        "我的电话是13800138000",
        "改天再说",
        "我昨天买了3箱矿泉水",
        "我想问一个问题",
        "矿泉水送了没",
    ],
)
def test_not_an_order(parser: OrderParser, text: str) -> None:
    assert parser.parse(text) == NotAnOrder()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("有没有矿泉水", ["WATER-550"]),
        ("矿泉水还有货吗", ["WATER-550"]),
        ("矿泉水库存", ["WATER-550"]),
        ("可乐还有吗？", ["COLA"]),
        ("有没有酱油", SOY),
        ("有没有雪碧", []),
        ("矿泉水多少钱", ["WATER-550"]),
        ("矿泉水怎么卖", ["WATER-550"]),
        ("纸巾多少钱一提", ["TISSUE"]),
        ("一共多少钱", None),
        ("雪碧多少钱", None),
        ("要3箱矿泉水", None),
        ("你好", None),
    ],
)
def test_stock_query_product(parser: OrderParser, text: str, expected: list[str] | None) -> None:
    assert parser.stock_query_product(text) == expected


@pytest.mark.parametrize(
    ("text", "nothing"),
    [("还有多少库存", True), ("有货吗？", True), ("你们还有货吗", True), ("有没有雪碧", False), ("雪碧还有吗", False)],
)
def test_stock_question_naming_nothing(parser: OrderParser, text: str, nothing: bool) -> None:
    assert parser.stock_query_product(text) == []
    assert parser.names_no_product(text) is nothing


# -- catalog with look-alike SKUs and one-character aliases ---------------------------------------


@pytest.fixture(scope="module")
def lookalikes() -> OrderParser:
    tokenizer = jieba.Tokenizer()
    parser = OrderParser(
        [
            Product("W550", "矿泉水 550ml×24", ("矿泉水", "水"), "箱"),
            Product("W1500", "矿泉水 1.5L×12", ("矿泉水", "水"), "箱"),
            Product("OIL", "花生油 5L", ("花生油", "油"), "桶"),
            Product("SOY", "生抽 500ml", ("生抽", "酱油"), "瓶"),
        ],
        tokenizer,
    )
    assert tokenizer.user_word_tag_tab["花生油"] == "nz"  # aliases went into the given tokenizer
    return parser


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("要3箱550ml矿泉水", [("W550", 3)]),
        ("矿泉水1.5L要2箱", [("W1500", 2)]),
        ("来一桶油", [("OIL", 1)]),
        ("要2瓶酱油", [("SOY", 2)]),
        ("要2瓶生抽和1桶花生油", [("SOY", 2), ("OIL", 1)]),
    ],
)
def test_lookalikes_resolved_by_name_words(lookalikes: OrderParser, text: str, expected: list[tuple[str, int]]) -> None:
    result = lookalikes.parse(text)
    assert isinstance(result, OrderLines), result
    assert [(line.sku, line.qty) for line in result.lines] == expected


@pytest.mark.parametrize("text", ["要2箱矿泉水", "2箱水"])
def test_lookalikes_without_a_distinguishing_word_ask(lookalikes: OrderParser, text: str) -> None:
    result = lookalikes.parse(text)
    assert isinstance(result, Clarify)
    assert (result.reason, result.candidates) == ("ambiguous_product", ["W550", "W1500"])
    assert "1. 矿泉水 550ml×24 2. 矿泉水 1.5L×12" in result.question


def test_duplicate_sku_is_refused() -> None:
    with pytest.raises(ValueError, match="duplicate sku"):
        OrderParser([CATALOG[0], CATALOG[0]], jieba.Tokenizer())


# -- numerals -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("十", 10),
        ("十二", 12),
        ("二十", 20),
        ("二十五", 25),
        ("一百", 100),
        ("一百零五", 105),
        ("一百一十", 110),
        ("一百二", 120),
        ("两百", 200),
        ("三千二", 3200),
        ("一千零一", 1001),
        ("一万", 10000),
        ("两万五", 25000),
        ("零", 0),
        ("三四", None),
        ("一百一千", None),
        ("万", None),
        ("十十", None),
        ("abc", None),
    ],
)
def test_chinese_to_int(text: str, value: int | None) -> None:
    assert chinese_to_int(text) == value


@pytest.mark.parametrize(
    ("text", "qty"),
    [
        ("3", 3),
        ("３", 3),
        ("１２", 12),
        ("两", 2),
        ("俩", 2),
        ("仨", 3),
        ("十二", 12),
        ("1万", 10000),
        ("一打", 12),
        ("两打", 24),
        ("3箱", 3),
        ("要两箱吧", 2),
        ("x3", 3),
        ("一百零五袋。", 105),
        ("0", None),
        ("0箱", None),
        ("半箱", None),
        ("三四箱", None),
        ("3箱矿泉水", None),
        ("3点", None),
        ("-3", None),
        ("负三", None),
        ("半", None),
        ("1.5", None),
        ("一个半", None),
        ("", None),
        ("几", None),
    ],
)
def test_parse_quantity(text: str, qty: int | None) -> None:
    assert parse_quantity(text) == qty


def test_parse_quantity_with_unit_reports_the_written_unit() -> None:
    assert parse_quantity_with_unit("要3瓶") == (3, "瓶")
    assert parse_quantity_with_unit("十二") == (12, None)
    assert parse_quantity_with_unit("2提", units=["提"]) == (2, "提")
    assert parse_quantity_with_unit("你好") is None


def test_parse_number_keeps_invalid_values_exact() -> None:
    assert parse_number("半") == Fraction(1, 2)
    assert parse_number("一个半") == Fraction(3, 2)
    assert parse_number("-3") == -3
    assert parse_number("三四") is None


def test_scanner_ignores_sizes_times_and_ordinals() -> None:
    found = QuantityScanner(["箱"]).find("550ml的第2箱 3点前送5箱 一下")
    assert [(q.text, q.value, q.unit) for q in found] == [("5箱", 5, "箱")]


def test_normalize_text() -> None:
    assert normalize_text("  老板：要３箱【矿泉水】😀[微笑]！ ") == "老板:要3箱【矿泉水】 !"
