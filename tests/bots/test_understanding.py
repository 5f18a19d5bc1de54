"""Intent before items (bots.dialogue.understanding): plain values in, readings out — no DB, no network.

Each weak spot of issue 14 has its own block: questions that carry numbers, hedges, negation and corrections
inside one message, colloquial numerals, shared quantities, numbers that are not quantities, list markers, 打,
yes-words after a clarifying question, traditional characters, bad input.
"""

from __future__ import annotations

import time

import pytest

from bots.dialogue.intents import Clarify, Confirm, Correction, NotAnOrder, OrderLines, Product
from bots.dialogue.parser import OrderParser
from bots.dialogue.understanding import INTENT_NAMES, understand

CATALOG = [
    Product("WATER-550", "矿泉水 550ml×24", ("矿泉水", "农夫山泉"), "箱"),
    Product("WATER-1500", "矿泉水 1.5L×12", ("矿泉水", "大瓶水"), "箱"),
    Product("COLA", "可乐 330ml×24", ("可乐", "可口可乐"), "箱"),
    Product("SPRITE", "雪碧 330ml×24", ("雪碧",), "箱"),
    Product("RICE", "东北大米 5kg", ("大米", "东北大米"), "袋"),
    Product("FLOUR", "面粉 5kg", ("面粉", "白面"), "袋"),
    Product("OIL-PEANUT", "花生油 5L", ("花生油", "油"), "桶"),
    Product("OIL-BLEND", "调和油 5L", ("调和油", "油"), "桶"),
    Product("SOY", "酱油 500ml", ("酱油", "生抽"), "瓶"),
    Product("BEER", "啤酒 500ml×12", ("啤酒",), "箱"),
    Product("EGG", "鸡蛋 30枚", ("鸡蛋",), "盒"),
    Product("DUCK-EGG", "咸鸭蛋", ("咸鸭蛋", "鸭蛋"), "个"),
    Product("TISSUE", "抽纸 3层×10包", ("纸巾", "抽纸"), "提"),
    # look-alikes told apart by a size, a unit or a qualifier named elsewhere in the message
    Product("CEMENT-425", "水泥 42.5", ("水泥",), "袋"),
    Product("CEMENT-325", "水泥 32.5", ("水泥",), "袋"),
    Product("TEA-TIN", "龙井 250g 罐装", ("龙井",), "罐"),
    Product("TEA-BAG", "龙井 500g 袋装", ("龙井",), "袋"),
    Product("CAKE-6", "水果蛋糕 6寸", ("蛋糕", "水果蛋糕"), "个"),
    Product("CAKE-8", "水果蛋糕 8寸", ("蛋糕", "水果蛋糕"), "个"),
    Product("MOON-CANTON", "广式月饼 8个装", ("月饼", "广式月饼", "广式"), "盒"),
    Product("MOON-ICE", "冰皮月饼 6个装", ("月饼", "冰皮月饼", "冰皮"), "盒"),
]


@pytest.fixture(scope="module")
def parser() -> OrderParser:
    return OrderParser(CATALOG)  # jieba's dictionary: once per module


def read(parser: OrderParser, text: str, *, has_draft: bool = False, pending: str | None = None) -> tuple[str, list[tuple[str, int]]]:
    u = understand(parser, text, has_draft=has_draft, pending=pending)
    assert u.intent in INTENT_NAMES
    assert not u.lines or u.intent in ("order", "add"), u  # lines only for an order or an addition
    return u.intent, sorted(u.lines)


# -- questions that carry numbers are the questions ------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "intent"),
    [
        ("5箱可乐什么价", "price_question"),
        ("3箱雪碧多少钱", "price_question"),
        ("要是买4袋大米一共多少钱", "price_question"),
        ("一箱啤酒有几瓶", "price_question"),
        ("鸡蛋一盒多少个", "price_question"),
        ("买10箱能打折吗", "discount_request"),
        ("拿20箱可乐便宜点不", "discount_request"),
        ("花生油还有8桶没", "stock_question"),
        ("可乐还有货吗", "stock_question"),
        ("有没有5袋面粉", "stock_question"),
        ("有冰红茶不", "stock_question"),
        ("2袋大米明天能送到吗", "delivery_question"),
        ("满多少包邮", "delivery_question"),
        ("前天订的4箱水还没到", "order_status"),
        ("我早上订的可乐发了没", "order_status"),
        ("送来的6个鸭蛋碎了3个", "complaint"),
        ("少送了一箱啤酒", "complaint"),
    ],
)
def test_a_question_with_a_number_is_the_question(parser: OrderParser, text: str, intent: str) -> None:
    assert read(parser, text) == (intent, [])
    u = understand(parser, text)
    assert isinstance(u.result, NotAnOrder)  # nothing the dialogue could turn into a draft
    assert u.evidence and u.evidence[0].span  # what decided it


def test_a_price_question_keeps_the_product_and_amount_for_the_answer(parser: OrderParser) -> None:
    u = understand(parser, "5箱可乐什么价")
    assert (u.intent, u.skus, u.quantity) == ("price_question", ("COLA",), (5, "箱"))


# -- hedges ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["过两天再订", "我先问问家里", "可能要5箱可乐", "大米先不急，月底再买", "看看再说吧", "考虑一下"])
def test_hedges_are_not_orders(parser: OrderParser, text: str) -> None:
    assert read(parser, text) == ("hedge", [])


def test_the_firm_part_of_a_half_hedged_message_is_the_order(parser: OrderParser) -> None:
    assert read(parser, "先来2箱可乐，雪碧过两天再说") == ("order", [("COLA", 2)])


# -- negation and corrections inside one message --------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "lines"),
    [
        ("大米2袋，油先不要", [("RICE", 2)]),  # 油 is even ambiguous: not wanted, so it does not matter
        ("可乐3箱 雪碧这次不要", [("COLA", 3)]),
        ("不要可乐了 换雪碧2箱", [("SPRITE", 2)]),
        ("面粉两袋 酱油家里还有不用买", [("FLOUR", 2)]),
    ],
)
def test_negated_items_are_left_out_of_the_order(parser: OrderParser, text: str, lines: list[tuple[str, int]]) -> None:
    assert read(parser, text) == ("order", lines)


def test_negation_names_what_was_excluded(parser: OrderParser) -> None:
    result = parser.parse("大米2袋，花生油先不要")
    assert isinstance(result, OrderLines) and result.excluded == ("OIL-PEANUT",)


@pytest.mark.parametrize(
    ("text", "lines"),
    [
        ("要2袋大米…不对，改成4袋", [("RICE", 4)]),
        ("要2袋大米 不对 3袋", [("RICE", 3)]),
        ("大米不是2袋是3袋", [("RICE", 3)]),
        ("可乐3箱，不是，是2箱雪碧", [("SPRITE", 2)]),
    ],
)
def test_a_message_that_corrects_itself_is_the_order_it_ends_with(parser: OrderParser, text: str, lines: list[tuple[str, int]]) -> None:
    assert read(parser, text) == ("order", lines)


def test_with_a_draft_a_correction_is_a_change(parser: OrderParser) -> None:
    u = understand(parser, "不是2袋是3袋", has_draft=True)
    assert u.intent == "change" and u.result == Correction(None, 3, "袋")
    assert read(parser, "不是2袋是3袋") == ("clarify", [])  # no draft, no product: what are the 3袋?


# -- numbers ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "lines"),
    [
        ("可乐来仨箱", [("COLA", 3)]),
        ("大米俩袋", [("RICE", 2)]),
        ("雪碧叁箱", [("SPRITE", 3)]),
        ("要壹拾贰箱啤酒", [("BEER", 12)]),
        ("廿箱可乐", [("COLA", 20)]),
        ("咸鸭蛋卅个", [("DUCK-EGG", 30)]),
        ("廿五个鸭蛋", [("DUCK-EGG", 25)]),
        ("可乐要3十箱", [("COLA", 30)]),
        ("大米和面粉各2袋", [("FLOUR", 2), ("RICE", 2)]),
        ("可乐雪碧都要3箱", [("COLA", 3), ("SPRITE", 3)]),
        ("花生油 调和油 各一桶", [("OIL-BLEND", 1), ("OIL-PEANUT", 1)]),
        ("40一袋的大米来2袋", [("RICE", 2)]),
        ("36元/箱的可乐要3箱", [("COLA", 3)]),
        ("12瓶装的啤酒要3箱", [("BEER", 3)]),
        ("550的矿泉水来5箱", [("WATER-550", 5)]),
        ("1.5升的矿泉水要2箱 送3号楼502", [("WATER-1500", 2)]),
        ("①可乐2箱②雪碧1箱", [("COLA", 2), ("SPRITE", 1)]),
        ("1. 可乐 3箱\n2. 雪碧 2箱", [("COLA", 3), ("SPRITE", 2)]),
        ("1、大米1袋 2、面粉2袋 3、纸巾2提", [("FLOUR", 2), ("RICE", 1), ("TISSUE", 2)]),
        ("(1)可乐1箱 (2)啤酒2箱", [("BEER", 2), ("COLA", 1)]),
        ("咸鸭蛋来一打", [("DUCK-EGG", 12)]),  # sold by the piece: a dozen is 12
    ],
)
def test_numbers(parser: OrderParser, text: str, lines: list[tuple[str, int]]) -> None:
    assert read(parser, text) == ("order", lines)


@pytest.mark.parametrize("text", ["要一打鸡蛋", "一打啤酒", "可乐要一打"])
def test_a_dozen_of_something_sold_by_the_pack_is_asked(parser: OrderParser, text: str) -> None:
    u = understand(parser, text)
    assert u.intent == "clarify" and isinstance(u.result, Clarify) and u.result.reason == "unit_mismatch"
    assert "12" in u.result.question


@pytest.mark.parametrize("text", ["可乐来三四箱", "大米要几袋吧", "花生油来一两桶", "半箱可乐"])
def test_vague_amounts_are_asked(parser: OrderParser, text: str) -> None:
    assert read(parser, text)[0] == "clarify"


# -- never a partial order in silence ---------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["要2袋大米和冰红茶", "可乐3箱，还有一些饼干", "大米一袋 矿泉水两箱"])
def test_an_item_not_understood_makes_the_whole_message_a_question(parser: OrderParser, text: str) -> None:
    u = understand(parser, text)
    assert u.intent == "clarify" and isinstance(u.result, Clarify) and not u.lines


def test_the_question_names_what_was_not_understood(parser: OrderParser) -> None:
    result = parser.parse("要2袋大米和冰红茶")
    assert isinstance(result, Clarify) and "冰红茶" in result.question


@pytest.mark.parametrize(
    ("text", "lines"),
    [
        ("要兩箱可樂", [("COLA", 2)]),
        ("大米2袋 醬油1瓶", [("RICE", 2), ("SOY", 1)]),
        ("鹹鴨蛋六個，麵粉一袋", [("DUCK-EGG", 6), ("FLOUR", 1)]),
    ],
)
def test_traditional_characters_read_as_simplified(parser: OrderParser, text: str, lines: list[tuple[str, int]]) -> None:
    assert read(parser, text) == ("order", sorted(lines))
    assert read(parser, "雞蛋多少錢一盒") == ("price_question", [])


# -- yes-words after a clarifying question ----------------------------------------------------------------------


@pytest.mark.parametrize("text", ["确认", "是的", "对", "嗯嗯", "没错", "是的是的 箱", "可以"])
def test_yes_answers_a_yes_no_question(parser: OrderParser, text: str) -> None:
    u = understand(parser, text, pending="unit")
    assert (u.intent, u.result) == ("confirm", Confirm())


def test_yes_that_answers_nothing_is_asked_again(parser: OrderParser) -> None:
    u = understand(parser, "好的", pending="quantity")
    assert u.intent == "clarify" and u.reask
    no = understand(parser, "不是 我要的是瓶", pending="unit")
    assert no.intent == "clarify" and no.reask


def test_yes_words_without_a_draft_or_question_are_small_talk(parser: OrderParser) -> None:
    assert read(parser, "好的") == ("chitchat", [])
    assert read(parser, "好的", has_draft=True) == ("confirm", [])


# -- drafts: add, remove, cancel ----------------------------------------------------------------------------------


def test_add_needs_a_draft(parser: OrderParser) -> None:
    assert read(parser, "再来2箱可乐", has_draft=True) == ("add", [("COLA", 2)])
    assert read(parser, "雪碧多来一箱", has_draft=True) == ("add", [("SPRITE", 1)])
    assert read(parser, "再来2箱可乐") == ("order", [("COLA", 2)])


def test_remove_and_cancel_with_a_draft(parser: OrderParser) -> None:
    assert read(parser, "纸巾不要了", has_draft=True) == ("remove", [])
    assert read(parser, "都不要了 下次再说", has_draft=True) == ("cancel", [])


# -- bad input --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "intent"),
    [
        ("要3箱可乐" * 2000, "unknown"),  # 10 k characters: never read as an order
        ("😶", "unknown"),
        ("😀😀😀", "unknown"),
        ("[微笑][抱拳]", "chitchat"),
        ("[图片]", "unknown"),
        ("<script>alert(1)</script>要3箱可乐", "unknown"),
        ("？？？", "unknown"),
        ("1111111", "unknown"),
        ("", "unknown"),
    ],
)
def test_bad_input(parser: OrderParser, text: str, intent: str) -> None:
    assert read(parser, text) == (intent, [])


def test_evidence_says_what_matched_and_why(parser: OrderParser) -> None:
    u = understand(parser, "40一袋的大米来2袋")
    text = u.explain()
    assert text.startswith("order：") and "“40一袋”：单价，不是数量" in text and "RICE × 2袋" in text


def test_understanding_is_fast(parser: OrderParser) -> None:
    texts = ["要3箱可乐", "5箱可乐什么价", "大米2袋，油先不要", "1. 可乐 3箱\n2. 雪碧 2箱", "要2袋大米…不对，改成4袋"] * 40
    understand(parser, texts[0])
    start = time.perf_counter()
    for t in texts:
        understand(parser, t)
    per_message = (time.perf_counter() - start) / len(texts)
    assert per_message < 0.003, per_message  # a fraction of a millisecond typically; generous for a shared CI box


# -- look-alikes, vague and implied amounts, conditions and reports ---------------------------------------------


@pytest.mark.parametrize(
    ("text", "lines"),
    [
        ("要20袋42.5的水泥", [("CEMENT-425", 20)]),
        ("32.5水泥拉10袋过来", [("CEMENT-325", 10)]),
        ("龙井来2罐", [("TEA-TIN", 2)]),  # only one 龙井 comes in 罐
        ("8寸蛋糕一个", [("CAKE-8", 1)]),
        ("冰皮的月饼3盒", [("MOON-ICE", 3)]),
        ("月饼要4盒 广式的", [("MOON-CANTON", 4)]),  # named again without a quantity: which one, not a second item
        ("再要个蛋糕 6寸的", [("CAKE-6", 1)]),  # 要个: one
        ("来俩8寸蛋糕", [("CAKE-8", 2)]),
        ("可乐 雪碧 各两箱", [("COLA", 2), ("SPRITE", 2)]),
        ("蛋糕一个8寸的 不要写字", [("CAKE-8", 1)]),  # a negated clause without a product leaves the order
        ("牛奶不要了 可乐来5箱，算了 4箱就行", [("COLA", 4)]),
    ],
)
def test_look_alikes_and_implied_amounts(parser: OrderParser, text: str, lines: list[tuple[str, int]]) -> None:
    assert read(parser, text) == ("order", sorted(lines))


@pytest.mark.parametrize("text", ["要水泥", "水泥要20袋", "龙井要一斤", "大米十几袋", "可乐二十多箱", "啤酒来几箱"])
def test_what_cannot_be_settled_is_asked(parser: OrderParser, text: str) -> None:
    assert read(parser, text)[0] == "clarify"


@pytest.mark.parametrize("text", ["如果便宜的话要10箱可乐", "要是明天能到的话来5袋大米", "上次买过3箱可乐"])
def test_conditions_and_reports_are_not_orders(parser: OrderParser, text: str) -> None:
    intent, lines = read(parser, text)
    assert intent != "order" and lines == []


def test_a_size_names_the_product_after_which_one(parser: OrderParser) -> None:
    assert read(parser, "42.5的 30袋", pending="product") == ("order", [("CEMENT-425", 30)])
    assert read(parser, "都行", pending="product")[0] == "clarify"  # the shop never picks for them


# -- structural cues (bots.dialogue.cues): the shape of a question, not a listed phrasing ---------------------


@pytest.mark.parametrize(
    ("text", "intent"),
    [
        # delivery: a delivery verb and a question in one clause (particle, A-not-A, interrogative), with a time
        ("晚上九点前能到不", "delivery_question"),
        ("多久能给送来呀", "delivery_question"),
        ("你们寄得到海南吗", "delivery_question"),
        ("送到城西要多长时间", "delivery_question"),
        ("中午前送得到不", "delivery_question"),
        ("能发韵达不", "delivery_question"),
        # price: 多少 beside a per-unit amount, 卖多少, 贵不, a comparison (not a discount), 是…的吗
        ("可乐多少一箱", "price_question"),
        ("大米一袋多少", "price_question"),
        ("花生油现在卖多少", "price_question"),
        ("调和油贵不", "price_question"),
        ("雪碧和可乐哪个便宜", "price_question"),
        ("啤酒是罐装的吗", "price_question"),
        # complaints: damage that happened, a mismatch, a shortfall, a wrong attribute, a reproach for lateness
        ("鸡蛋碎成一片了", "complaint"),
        ("纸巾湿透了", "complaint"),
        ("我订的大米送来的是面粉", "complaint"),
        ("少寄了一瓶酱油", "complaint"),
        ("酱油的味道不对", "complaint"),
        ("可乐里有个虫子", "complaint"),
        ("说好上午到 拖到晚上", "complaint"),
        # postponement: a decision after a condition, asking someone first
        ("喝完了再买", "hedge"),
        ("等装修完再定", "hedge"),
        ("回去问下我媳妇", "hedge"),
        ("我再琢磨琢磨", "hedge"),
    ],
)
def test_questions_complaints_and_hedges_are_read_by_their_shape(parser: OrderParser, text: str, intent: str) -> None:
    assert read(parser, text) == (intent, [])


@pytest.mark.parametrize(
    ("text", "lines"),
    [
        ("在吗 送3箱可乐", [("COLA", 3)]),  # 在吗 greets; the delivery verb's clause asks nothing
        ("3箱可乐送过来行不", [("COLA", 3)]),  # a polite tag beside goods and an amount is a request
        ("明天上午送2袋大米", [("RICE", 2)]),  # a time is no question
        ("大米3袋，油先不用", [("RICE", 3)]),  # negation in a list, not a postponement
        ("大米2袋 鸡蛋我再想想", [("RICE", 2)]),  # the firm part of a half-hedged message
    ],
)
def test_orders_with_a_time_or_a_polite_tag_stay_orders(parser: OrderParser, text: str, lines: list[tuple[str, int]]) -> None:
    assert read(parser, text) == ("order", lines)


@pytest.mark.parametrize("text", ["蛋糕寄过去会不会压坏", "路上会不会化"])
def test_damage_that_may_happen_is_a_delivery_question_not_a_complaint(parser: OrderParser, text: str) -> None:
    assert read(parser, text) == ("delivery_question", [])


def test_a_price_question_worded_by_shape_is_never_an_order(parser: OrderParser) -> None:
    assert read(parser, "生抽多少一瓶") == ("price_question", [])
    assert read(parser, "能便宜多少") == ("discount_request", [])  # how much cheaper they'd make it: a discount


@pytest.mark.parametrize(
    ("text", "lines"),
    [
        ("大米4袋 嗯不 5袋", [("RICE", 5)]),
        ("可乐2箱 不 3箱", [("COLA", 3)]),
        ("雪碧5箱 呃…还是4箱吧", [("SPRITE", 4)]),
        ("面粉3袋 写错了 4袋", [("FLOUR", 4)]),  # 写错 before the amount meant: a correction, not a complaint
    ],
)
def test_a_retraction_by_shape_leaves_the_last_amount(parser: OrderParser, text: str, lines: list[tuple[str, int]]) -> None:
    assert read(parser, text) == ("order", lines)


def test_with_a_draft_a_slip_or_an_enough_is_a_change(parser: OrderParser) -> None:
    assert read(parser, "可乐要3箱 刚才说错了", has_draft=True) == ("change", [])
    assert read(parser, "鸡蛋不要4盒了 3盒就够", has_draft=True) == ("change", [])


def test_a_kind_described_settles_an_ambiguous_alias(parser: OrderParser) -> None:
    assert read(parser, "矿泉水要大瓶的 2箱") == ("order", [("WATER-1500", 2)])
    assert read(parser, "8寸的 一个", pending="product") == ("order", [("CAKE-8", 1)])  # not the box of 8 mooncakes


def test_the_statistical_fallback_never_orders_and_keeps_its_evidence(parser: OrderParser) -> None:
    for text in ("嗯嗯嗯", "可乐", "3箱", "今天天气不错", "老板 送货师傅电话多少"):
        u = understand(parser, text)
        assert u.lines == [] or u.intent in ("order", "add")
        if any("统计模型" in e.why for e in u.evidence):
            assert u.intent not in ("order", "add", "unknown") and not u.lines


@pytest.mark.parametrize("text", ["订10个鸭蛋要提前几天", "3箱可乐什么时候能有", "2袋大米怎么付款"])
def test_a_question_word_no_rule_placed_is_never_an_order(parser: OrderParser, text: str) -> None:
    u = understand(parser, text)
    assert u.intent not in ("order", "add") and u.lines == []


def test_a_polite_request_with_a_question_tag_is_still_an_order(parser: OrderParser) -> None:
    assert read(parser, "来3箱可乐 可以吗") == ("order", [("COLA", 3)])


@pytest.mark.parametrize(
    ("text", "intent"), [("我的大米拉走没", "order_status"), ("我的东西寄出去了吗", "order_status"), ("能送到五楼吗", "delivery_question")]
)
def test_a_delivery_question_about_goods_already_ordered_is_order_status(parser: OrderParser, text: str, intent: str) -> None:
    assert read(parser, text) == (intent, [])


@pytest.mark.parametrize("text", ["买得多能送几个鸭蛋不", "买10箱可乐送1箱吗"])
def test_goods_free_with_a_purchase_are_a_discount_request(parser: OrderParser, text: str) -> None:
    assert read(parser, text) == ("discount_request", [])


@pytest.mark.parametrize(
    ("text", "intent"),
    [
        ("可乐胀包了", "complaint"),
        ("搬的时候把墙角刮花了", "complaint"),
        ("喝了你家牛奶拉肚子", "complaint"),
        ("纸巾一提里面几包", "price_question"),
        ("送货师傅明天上午还有空不", "delivery_question"),  # 还有空: the driver's time, not stock
    ],
)
def test_more_shapes_of_complaints_and_questions(parser: OrderParser, text: str, intent: str) -> None:
    assert read(parser, text) == (intent, [])


def test_a_restated_amount_with_a_draft_is_a_change(parser: OrderParser) -> None:
    assert read(parser, "大米数量错了 应该是6袋", has_draft=True) == ("change", [])


@pytest.mark.parametrize(
    ("text", "intent"),
    [
        ("鸡蛋臭得要命", "complaint"),
        ("送来的是雪碧 我要的可乐", "complaint"),  # what came, then what was asked
        ("我定的大米明天还来不来", "order_status"),  # 定 for 订, and an A-not-A question about it
        ("可乐整箱拿多少", "price_question"),
    ],
)
def test_shapes_from_the_sixth_batch(parser: OrderParser, text: str, intent: str) -> None:
    assert read(parser, text) == (intent, [])


def test_a_decided_thing_is_no_order_placed(parser: OrderParser) -> None:
    assert read(parser, "确定的话要3箱可乐") == ("order", [("COLA", 3)])


def test_delivery_words_beside_an_order_without_a_question_are_an_instruction(parser: OrderParser) -> None:
    assert read(parser, "大米两袋 可乐一箱 送货上门啊") == ("order", [("COLA", 1), ("RICE", 2)])
    assert read(parser, "你们最远送到哪") == ("delivery_question", [])  # where they deliver, not where an order is
