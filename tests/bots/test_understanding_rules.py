"""General rules of the chat understanding (issue 14, second round): each test names the rule of
``bench/chat_corpus/README.md`` it follows, with wording of its own — not the corpus's messages.

Plain values in, readings out: no DB, no network.
"""

from __future__ import annotations

import re

import pytest

from bots.dialogue.cue_words import CUE_WORDS_PATH, cue
from bots.dialogue.intents import Clarify, Correction, OrderLines, Product
from bots.dialogue.parser import OrderParser
from bots.dialogue.understanding import understand
from tests.bots.reading import read

CATALOG = [
    Product("COLA", "可口可乐 500ml×12", ("可乐", "可口可乐"), "箱"),
    Product("SPRITE", "雪碧 500ml×12", ("雪碧",), "箱"),
    Product("BEER-QD", "青岛啤酒 500ml×12", ("啤酒", "青岛", "青岛啤酒"), "箱"),
    Product("BEER-SNOW", "雪花啤酒 500ml×12", ("啤酒", "雪花", "雪花啤酒"), "箱"),
    Product("RICE", "东北大米 5kg", ("大米",), "袋"),
    Product("FLOUR", "面粉 5kg", ("面粉",), "袋"),
    Product("TISSUE", "抽纸 10包", ("纸巾", "抽纸"), "提"),
    Product("CEMENT-425", "水泥 42.5", ("水泥",), "袋"),
    Product("CEMENT-325", "水泥 32.5", ("水泥",), "袋"),
    Product("WIRE-25", "电线 2.5平方", ("电线", "2.5电线"), "卷"),
    Product("PUER-RIPE", "普洱熟茶饼 357g", ("普洱", "熟普"), "饼"),
    Product("PUER-RAW", "普洱生茶饼 357g", ("普洱", "生普"), "饼"),
    Product("CAKE-6", "水果蛋糕 6寸", ("蛋糕",), "个"),
    Product("CAKE-8", "水果蛋糕 8寸", ("蛋糕",), "个"),
    Product("CUP", "品茗杯", ("茶杯", "品茗杯"), "个"),
]


@pytest.fixture(scope="module")
def parser() -> OrderParser:
    return OrderParser(CATALOG)


# -- rule 7: a correction inside one message, without a draft — the last value wins ---------------------------


@pytest.mark.parametrize(
    ("text", "lines"),
    [
        ("可乐3箱 呃 4箱吧", [("COLA", 4)]),  # a hesitation between two amounts of one product
        ("大米5袋 额… 6袋", [("RICE", 6)]),
        ("大米3袋 啊不是 4袋", [("RICE", 4)]),  # an interjection before 不是: the earlier amount is taken back
        ("大米3袋 不是 4袋", [("RICE", 4)]),  # 不是 standing alone between the amounts
        ("大米要3袋 不是2袋", [("RICE", 3)]),  # 不是2袋 negates the amount it is written against
        ("大米2袋 嗯 可乐3箱", [("COLA", 3), ("RICE", 2)]),  # a pause before a second item takes nothing back
    ],
)
def test_last_value_wins_in_a_self_correction(parser: OrderParser, text: str, lines: list[tuple[str, int]]) -> None:
    assert read(parser, text) == ("order", lines)


def test_the_parser_alone_reads_the_correction(parser: OrderParser) -> None:
    result = parser.parse("可乐3箱 呃 4箱吧")
    assert isinstance(result, OrderLines) and [(ln.sku, ln.qty) for ln in result.lines] == [("COLA", 4)]
    with_draft = parser.parse("可乐3箱 哦不是 4箱", has_draft=True)  # with a draft: a change of that line
    assert isinstance(with_draft, Correction) and (with_draft.sku, with_draft.qty) == ("COLA", 4)


def test_reduced_to_is_a_change(parser: OrderParser) -> None:
    u = understand(parser, "可乐减到2箱", has_draft=True)
    assert u.intent == "change" and isinstance(u.result, Correction) and (u.result.sku, u.result.qty) == ("COLA", 2)


def test_with_a_draft_amount_wrong_then_the_amount_is_a_change(parser: OrderParser) -> None:
    u = understand(parser, "可乐数量不对 要6箱", has_draft=True)
    assert u.intent == "change" and isinstance(u.result, Correction)
    assert (u.result.sku, u.result.qty) == ("COLA", 6)
    assert read(parser, "收到的可乐数量不对")[0] == "complaint"  # about goods received: a complaint (rule 4)


# -- rule 8: numbers ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "lines"),
    [
        ("纸巾来个10提", [("TISSUE", 10)]),  # 来个 before an amount is a filler, not "one"
        ("雪碧要个廿箱", [("SPRITE", 20)]),
        ("可乐来个", [("COLA", 1)]),  # 来个 alone is still one
        ("来箱可乐", [("COLA", 1)]),  # a unit right after the verb: one of it
        ("可乐来箱", [("COLA", 1)]),
        ("靑島啤酒三箱", [("BEER-QD", 3)]),  # a variant form of 青 (rule 13)
    ],
)
def test_colloquial_amounts(parser: OrderParser, text: str, lines: list[tuple[str, int]]) -> None:
    assert read(parser, text) == ("order", lines)


# -- rules 10 and 11: a shared product, sizes that are not quantities -------------------------------------------


def test_two_sizes_share_one_product_name(parser: OrderParser) -> None:
    assert read(parser, "42.5和32.5的水泥各20袋") == ("order", [("CEMENT-325", 20), ("CEMENT-425", 20)])
    assert read(parser, "32.5跟42.5的水泥都要10袋") == ("order", [("CEMENT-325", 10), ("CEMENT-425", 10)])


def test_the_survey_sees_both_sizes(parser: OrderParser) -> None:
    survey = parser.survey("42.5和32.5的水泥各20袋")
    assert [m.text for m in survey.mentions] == ["水泥", "水泥"]
    assert parser.skus_named_by_spec("32.5的") == ["CEMENT-325"]


def test_a_vague_amount_is_still_asked(parser: OrderParser) -> None:
    assert read(parser, "32.5水泥几十袋吧") == ("clarify", [])  # rule 8, not a question about the product
    assert read(parser, "要几个蛋糕") == ("clarify", [])


@pytest.mark.parametrize("text", ["可乐20箱左右", "可乐最少20箱", "大约10箱可乐", "可乐至少5箱吧"])
def test_an_amount_given_as_a_bound_or_an_estimate_is_asked(parser: OrderParser, text: str) -> None:
    assert read(parser, text)[0] in ("clarify", "hedge")  # rule 8: never an order of the number written
    assert not read(parser, text)[1]


def test_a_size_standing_before_a_shared_name_is_no_item_left_out(parser: OrderParser) -> None:
    assert read(parser, "6寸和8寸的蛋糕各一个") == ("order", [("CAKE-6", 1), ("CAKE-8", 1)])


def test_a_later_not_takes_an_earlier_line_back(parser: OrderParser) -> None:
    assert read(parser, "可乐2箱 雪碧3箱 雪碧不要了") == ("order", [("COLA", 2)])  # rules 6 and 7


def test_less_of_it_on_a_draft_is_asked(parser: OrderParser) -> None:
    assert read(parser, "可乐少要2箱", has_draft=True) == ("clarify", [])  # by 2 or to 2? never guessed


def test_the_amount_of_an_order_already_placed_orders_nothing(parser: OrderParser) -> None:
    intent, lines = read(parser, "上次买的2饼普洱很好喝")
    assert intent != "order" and not lines
    assert read(parser, "上次买的2箱可乐不错 再来2箱") == ("order", [("COLA", 2)])


def test_people_and_months_are_no_amount_of_goods(parser: OrderParser) -> None:
    assert not read(parser, "6寸蛋糕 4个人吃")[1]
    assert read(parser, "6寸蛋糕够4个人吃吗") == ("price_question", [])
    assert read(parser, "蛋糕8寸的一个 4个人吃") == ("order", [("CAKE-8", 1)])


def test_a_decimal_point_ends_no_negated_clause(parser: OrderParser) -> None:
    # rule 6: the negated item may be ambiguous — it does not matter; 32.5 is one number, not "32" and "5"
    assert read(parser, "不要32.5的水泥 只要大米2袋") == ("order", [("RICE", 2)])


def test_an_amount_in_a_measure_the_product_is_not_sold_by_is_asked(parser: OrderParser) -> None:
    u = understand(parser, "电线200米")
    assert u.intent == "clarify" and isinstance(u.result, Clarify) and u.result.reason == "unit_mismatch"


# -- rules 2-3: questions -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "intent"),
    [
        ("10袋面粉批发神马价", "price_question"),  # internet spelling of 什么
        ("可乐一箱几钱", "price_question"),
        ("蛋糕是几寸的", "price_question"),  # 几X的: which size
        ("普洱能存几年", "price_question"),  # shelf life: what the product is
        ("走顺丰还是京东", "delivery_question"),  # A还是B is a question
        ("你们有没有车送货", "delivery_question"),  # 有没有 about delivery, not goods
        ("一车能拉多少袋水泥", "delivery_question"),  # what a truck takes
        ("我的茶叶发快递了没", "order_status"),  # goods of mine: an order placed
        ("说好10点送的 现在还没来", "order_status"),  # lateness alone (rule 4)
        ("这个大米是几斤装的", "price_question"),  # a pack size asked, not a vague amount
        ("纸巾几包一提", "price_question"),
        ("普洱几片茶叶", "price_question"),  # the product, 几 + a unit, a noun: what it holds
        ("水泥是啥颜色的", "price_question"),  # what an attribute is
        ("2.5的电线有吗", "stock_question"),  # 有吗 closing the message, a spec number and all
        ("我们工地的水泥什么时候到", "order_status"),  # goods of ours: an order placed
        ("水泥送到了没", "order_status"),  # on its way to me, not a new stock arrival
        ("订单什么时候能到", "order_status"),
        ("刚下的单 帮我看下", "order_status"),
        ("保质期到什么时候", "price_question"),  # 到什么时候: until when, no delivery
        ("配送范围到哪", "delivery_question"),  # where they deliver, not where my order is
        ("蛋糕可以自己来店里拿吗", "delivery_question"),  # picking up is how it gets to me
        ("下周要50箱可乐 现在能订吗", "stock_question"),  # can it be ordered: sold here now
    ],
)
def test_questions(parser: OrderParser, text: str, intent: str) -> None:
    assert read(parser, text) == (intent, [])


def test_a_repeated_question_word_means_whichever(parser: OrderParser) -> None:
    assert read(parser, "要5箱可乐 啥时候方便啥时候送") == ("order", [("COLA", 5)])
    assert read(parser, "大米2袋 哪天有空哪天送") == ("order", [("RICE", 2)])


def test_a_question_word_beside_an_ambiguous_product_is_the_question(parser: OrderParser) -> None:
    intent, lines = read(parser, "生日蛋糕要提前几天订")
    assert intent != "clarify" and not lines


# -- rule 4: complaints ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "说好10点送 拖到下午才来",  # late, with a reproach
        "可乐喝着有股怪味",  # how it tastes once used
        "茶杯上的污渍洗不掉",  # a mark that will not come off
        "上周买的5袋大米生虫了",  # numbers and all: never an order
        "收到的普洱是熟的 我订的生的",  # what came is not what was ordered
        "送来的啤酒是雪花不是青岛",
        "蛋糕硬得咬不动",
        "我要退2箱可乐",  # a return, numbers and all (rule 4)
    ],
)
def test_complaints(parser: OrderParser, text: str) -> None:
    assert read(parser, text) == ("complaint", [])


# -- rule 5: hedges -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "先报个价 我跟老婆商量下",
        "回头量好尺寸告诉你",
        "有空再过来看看",
        "看情况吧",
        "等发了工资再买",
        "看看家里还剩多少再说",
        "暂时够用了",
        "我先喝喝看 好喝再来买",
    ],
)
def test_hedges(parser: OrderParser, text: str) -> None:
    assert read(parser, text) == ("hedge", [])


def test_a_firm_part_beside_a_postponement_is_ordered(parser: OrderParser) -> None:
    assert read(parser, "先来2箱可乐 其余的等等再说") == ("order", [("COLA", 2)])


def test_an_unclear_firm_part_is_asked_not_hedged(parser: OrderParser) -> None:
    assert read(parser, "先来2箱啤酒 其他的过两天再说") == ("clarify", [])  # which beer? (rule 12)


def test_one_character_before_an_ambiguous_name_can_settle_it(parser: OrderParser) -> None:
    assert read(parser, "生普洱三饼") == ("order", [("PUER-RAW", 3)])  # 生 is in one candidate's names only
    assert read(parser, "普洱三饼") == ("clarify", [])


def test_should_need_opening_a_message_is_a_hedge(parser: OrderParser) -> None:
    assert read(parser, "应该要3箱可乐") == ("hedge", [])  # probably — never an order (rule 5)


def test_a_request_put_as_may_i_is_an_order(parser: OrderParser) -> None:
    assert read(parser, "可乐三箱 送过来行不") == ("order", [("COLA", 3)])  # rule 2
    assert read(parser, "可乐三箱 今天能送到吗") == ("delivery_question", [])


def test_asking_someone_first_holds_the_whole_message(parser: OrderParser) -> None:
    assert read(parser, "想要5箱可乐 不过得先问下老板") == ("hedge", [])  # no firm part: it is about the same goods


def test_a_complaint_word_warned_against_is_an_instruction(parser: OrderParser) -> None:
    assert read(parser, "可乐3箱 别送错了") == ("order", [("COLA", 3)])


def test_an_order_number_beside_a_product_places_no_new_order(parser: OrderParser) -> None:
    intent, lines = read(parser, "订单SO123456的可乐改成3箱")
    assert intent == "order_status" and not lines


def test_a_return_on_a_draft_is_still_a_removal(parser: OrderParser) -> None:
    assert read(parser, "可乐退掉", has_draft=True) == ("remove", [])


def test_a_farewell_is_no_hedge(parser: OrderParser) -> None:
    assert read(parser, "老板辛苦啦 下次再来") == ("chitchat", [])


# -- rule 14: yes-words and answers to "which one?" -------------------------------------------------------------


@pytest.mark.parametrize("text", ["嗯呐", "恩恩", "好哒", "没毛病", "可以啊 安排"])
def test_yes_words_after_a_yes_no_question(parser: OrderParser, text: str) -> None:
    assert read(parser, text, pending="unit") == ("confirm", [])
    assert read(parser, text, pending="quantity") == ("clarify", [])  # answers nothing


def test_a_yes_that_repeats_the_unit(parser: OrderParser) -> None:
    assert read(parser, "对的 就按饼", pending="unit") == ("confirm", [])
    assert read(parser, "对的 要箱", pending="unit") == ("confirm", [])


@pytest.mark.parametrize("text", ["随你", "无所谓", "你帮我挑一个"])
def test_leaving_the_choice_to_the_shop_is_asked_again(parser: OrderParser, text: str) -> None:
    assert read(parser, text, pending="product") == ("clarify", [])


def test_a_word_only_one_product_has_answers_which_one(parser: OrderParser) -> None:
    assert read(parser, "熟的 2饼", pending="product") == ("order", [("PUER-RIPE", 2)])


# -- rule 16: with a draft, an ambiguous product dropped is a removal ------------------------------------------


def test_removing_an_ambiguous_product_asks_which(parser: OrderParser) -> None:
    u = understand(parser, "水泥不要了", has_draft=True)
    assert u.intent == "remove" and isinstance(u.result, Clarify) and set(u.result.candidates) == {"CEMENT-425", "CEMENT-325"}


# -- rule 17: bad input ---------------------------------------------------------------------------------------


def test_media_placeholders_are_unknown_and_stickers_small_talk(parser: OrderParser) -> None:
    assert read(parser, "[动画表情]") == ("unknown", [])
    assert read(parser, "[微笑]") == ("chitchat", [])


# -- evidence (issue 14 item 3) -------------------------------------------------------------------------------


def test_evidence_names_the_rule_that_matched(parser: OrderParser) -> None:
    u = understand(parser, "5箱可乐什么价")
    assert u.intent == "price_question" and u.evidence[0].rule == "price"
    assert "［price］" in u.explain()
    structural = understand(parser, "可乐碎成渣了")  # a pattern of cues.py, named after it
    assert structural.intent == "complaint" and structural.evidence[0].rule == "damaged"


def test_every_cue_word_table_compiles() -> None:
    import tomllib

    tables = tomllib.loads(CUE_WORDS_PATH.read_text(encoding="utf-8"))
    assert tables
    for name in (n for n, table in tables.items() if "words" in table):  # [homophone_typos] holds pairs, no cue words
        words = cue(name)
        assert words.words and all(w.strip() == w and w for w in words.words), name
        assert isinstance(words.pattern, re.Pattern)
