"""General rules of the chat understanding (issue 14, third round): classes of phrasing found while the retired
held-out set was folded into tune, each tested with wording of its own — never the corpus's messages.

Plain values in, readings out: no DB, no network.
"""

from __future__ import annotations

import pytest

from bots.dialogue.intents import Clarify, Product
from bots.dialogue.parser import OrderParser
from bots.dialogue.understanding import understand
from tests.bots.reading import read

CATALOG = [
    Product("COLA", "可口可乐 500ml×12", ("可乐", "可口可乐"), "箱"),
    Product("SPRITE", "雪碧 500ml×12", ("雪碧",), "箱"),
    Product("BEER-QD", "青岛啤酒 500ml×12", ("啤酒", "青岛"), "箱"),
    Product("BEER-SNOW", "雪花啤酒 500ml×12", ("啤酒", "雪花"), "箱"),
    Product("RICE", "东北大米 5kg", ("大米",), "袋"),
    Product("EGGS", "鸡蛋 30枚", ("鸡蛋",), "盒"),
    Product("GREEN-TEA", "毛尖 散装", ("毛尖", "信阳毛尖"), "斤"),
    Product("FLOOR-TILE", "600×600 地砖", ("地砖", "地板砖"), "片"),
    Product("PIPE", "PVC管 DN25", ("水管", "pvc管"), "根"),
    Product("CAKE-6", "水果蛋糕 6寸", ("蛋糕", "水果蛋糕"), "个"),
    Product("CAKE-8", "水果蛋糕 8寸", ("蛋糕", "水果蛋糕"), "个"),
    Product("TART", "葡式蛋挞", ("蛋挞",), "个"),
]


@pytest.fixture(scope="module")
def parser() -> OrderParser:
    return OrderParser(CATALOG)


# -- rule 12: an amount in a measure the SKU is not sold by is asked, never converted ----------------------------


@pytest.mark.parametrize("text", ["客厅地砖要30平", "地板砖要25平米", "地砖铺12平方"])
def test_an_area_is_no_count_of_tiles(parser: OrderParser, text: str) -> None:
    assert read(parser, text) == ("clarify", [])


@pytest.mark.parametrize("text", ["毛尖称三两", "来5两信阳毛尖", "信阳毛尖 八两"])
def test_a_weight_in_tael_is_asked_in_the_unit_sold(parser: OrderParser, text: str) -> None:
    u = understand(parser, text)
    assert u.intent == "clarify" and isinstance(u.result, Clarify) and u.result.reason == "unit_mismatch"
    assert "几斤" in u.result.question and "是指" not in u.result.question  # never "3两是指3斤吗"


@pytest.mark.parametrize(("text", "qty"), [("毛尖要两斤", 2), ("可乐两箱", 2)])
def test_two_as_a_numeral_is_still_two(parser: OrderParser, text: str, qty: int) -> None:
    assert read(parser, text)[1][0][1] == qty


def test_one_or_two_days_is_no_weight(parser: OrderParser) -> None:
    assert read(parser, "毛尖一两天内能寄到吗")[0] == "delivery_question"


# -- rule 4: weighed or counted and found short is a complaint ---------------------------------------------------


@pytest.mark.parametrize("text", ["毛尖回家称了一下只有七两", "说是一盒鸡蛋30个 数了才26个", "地砖点了一下不到40片"])
def test_found_short_after_weighing_or_counting_is_a_complaint(parser: OrderParser, text: str) -> None:
    assert read(parser, text) == ("complaint", [])


# -- rule 2: a request with a delivery instruction or a tag question is still the request -----------------------


@pytest.mark.parametrize(
    ("text", "lines"),
    [
        ("大米三袋 雪碧一箱 一起拉过来", [("RICE", 3), ("SPRITE", 1)]),  # 一起送 / 一起拉: together, no 起送 rule asked
        ("给我拿两箱雪碧晚上送到店里记住了没", [("SPRITE", 2)]),  # 记住了没 checks the shop heard, asks nothing
        ("水管20根 明早八点前送工地可以吗", [("PIPE", 20)]),  # a time, put as a polite request
        ("上回那个大米挺香的 再给我送两袋 地址还是老地方", [("RICE", 2)]),  # 还是 = still, no choice offered
    ],
)
def test_an_order_with_a_delivery_instruction_is_an_order(parser: OrderParser, text: str, lines: list[tuple[str, int]]) -> None:
    assert read(parser, text) == ("order", lines)


@pytest.mark.parametrize("text", ["可乐两箱明天上午能送到吗", "满多少钱包送", "送大米是走京东还是顺丰"])
def test_a_real_delivery_question_stays_a_question(parser: OrderParser, text: str) -> None:
    assert read(parser, text) == ("delivery_question", [])


# -- rules 14-16: removals, additions and yes / no answers as customers put them ---------------------------------


@pytest.mark.parametrize("text", ["雪碧就不买了", "大米先不带了", "鸡蛋甭送了"])
def test_a_negated_ordering_verb_on_a_draft_item_removes_it(parser: OrderParser, text: str) -> None:
    u = understand(parser, text, has_draft=True)
    assert u.intent == "remove" and not u.lines


def test_a_negated_verb_without_a_draft_orders_nothing(parser: OrderParser) -> None:
    assert read(parser, "雪碧就不买了")[1] == []


def test_the_draft_line_pointed_at_is_removed_whole(parser: OrderParser) -> None:
    u = understand(parser, "鸡蛋那三盒去掉", has_draft=True)
    assert u.intent == "remove" and u.result.kind == "remove_item"
    assert read(parser, "啤酒这两箱删了吧", has_draft=True)[0] == "remove"  # which beer: asked by the dialogue


@pytest.mark.parametrize("text", ["多买两袋大米", "雪碧多带一箱"])
def test_more_with_an_ordering_verb_is_an_addition(parser: OrderParser, text: str) -> None:
    intent, lines = read(parser, text, has_draft=True)
    assert intent == "add" and len(lines) == 1


@pytest.mark.parametrize("text", ["不是不是", "不对 不对", "不要不要 我说错了"])
def test_no_said_twice_after_a_unit_question_asks_again(parser: OrderParser, text: str) -> None:
    assert read(parser, text, pending="unit") == ("clarify", [])


@pytest.mark.parametrize("text", ["好啦", "就这样啦 谢谢", "可以哒"])
def test_a_yes_with_a_common_particle_confirms_the_draft(parser: OrderParser, text: str) -> None:
    assert read(parser, text, has_draft=True) == ("confirm", [])


# -- rules 6, 7, 11, 12: sizes, corrections of a size, negation scoped to its item, typed homophones --------------


@pytest.mark.parametrize(
    ("text", "lines"),
    [
        ("要一个八寸的水果蛋糕", [("CAKE-8", 1)]),  # a size in Chinese numerals settles the name like 8寸
        ("六寸蛋糕两个", [("CAKE-6", 2)]),
        ("五百五十毫升的可乐要两箱", [("COLA", 2)]),  # 550毫升: a size, never the amount
    ],
)
def test_a_size_in_chinese_numerals_settles_the_product(parser: OrderParser, text: str, lines: list[tuple[str, int]]) -> None:
    assert read(parser, text) == ("order", lines)


@pytest.mark.parametrize(
    "text",
    ["蛋糕两个 8寸的 啊不对 6寸的", "要8寸蛋糕2个 说错了 应该是6寸的"],
)
def test_a_retracted_size_is_replaced_and_the_amount_kept(parser: OrderParser, text: str) -> None:
    assert read(parser, text) == ("order", [("CAKE-6", 2)])


def test_a_retraction_naming_another_product_is_still_asked(parser: OrderParser) -> None:
    assert read(parser, "蛋糕两个 不对 要蛋挞")[0] == "clarify"  # which cake? and the 蛋挞's amount: never a guess


@pytest.mark.parametrize("text", ["可乐3箱，大米这次先不买", "雪碧两箱 啤酒先不订"])
def test_not_now_scoped_to_one_item_is_negation_in_a_list(parser: OrderParser, text: str) -> None:
    intent, lines = read(parser, text)
    assert intent == "order" and len(lines) == 1


def test_not_now_with_nothing_else_firm_is_a_hedge(parser: OrderParser) -> None:
    assert read(parser, "先不买了 下周再说") == ("hedge", [])


@pytest.mark.parametrize(("text", "lines"), [("来两盒鸡旦", [("EGGS", 2)]), ("葡式蛋塔6个", [("TART", 6)])])
def test_a_homophone_typed_for_a_character_still_names_the_product(parser: OrderParser, text: str, lines: list[tuple[str, int]]) -> None:
    assert read(parser, text) == ("order", lines)


def test_homophone_pairs_are_well_formed() -> None:
    from bots.dialogue.cue_words import homophone_typos

    typos = homophone_typos()
    assert typos and all(len(right) == 1 and all(len(t) == 1 and t != right for t in wrong) for right, wrong in typos.items())


def test_to_go_with_is_an_ordering_verb(parser: OrderParser) -> None:
    assert read(parser, "8寸蛋糕一个 另外配4个蛋挞") == ("order", [("CAKE-8", 1), ("TART", 4)])


def test_two_sizes_share_a_one_character_name() -> None:
    wires = OrderParser([Product("W15", "BV1.5平方电线", ("线", "电线"), "卷"), Product("W6", "BV6平方电线", ("线", "电线"), "卷")])
    u = understand(wires, "1.5跟6平方的线各三卷")
    assert (u.intent, sorted(u.lines)) == ("order", [("W15", 3), ("W6", 3)])


# -- rule 3: discount, stock, delivery and hedges as customers word them ------------------------------------------


@pytest.mark.parametrize("text", ["大米有没有老客户价", "可乐拿货价多少", "一共二百零八 算二百吧"])
def test_a_special_price_tier_or_a_price_named_to_settle_at_is_a_discount_request(parser: OrderParser, text: str) -> None:
    assert read(parser, text) == ("discount_request", [])


@pytest.mark.parametrize(("text", "has_draft"), [("再送我一箱雪碧呗", True), ("送两个蛋挞嘛 老客户了", False)])
def test_goods_asked_for_free_are_a_discount_request(parser: OrderParser, text: str, has_draft: bool) -> None:
    assert read(parser, text, has_draft=has_draft) == ("discount_request", [])


def test_a_discount_word_in_an_if_clause_is_a_hedge(parser: OrderParser) -> None:
    assert read(parser, "如果有优惠的话 或许要20箱雪碧") == ("hedge", [])


@pytest.mark.parametrize("text", ["你们店有冇雪碧", "鸡蛋有莫得"])
def test_dialect_forms_of_do_you_have_ask_about_stock(parser: OrderParser, text: str) -> None:
    assert read(parser, text) == ("stock_question", [])


@pytest.mark.parametrize("text", ["可乐还有20箱吗 下午去拉", "鸡蛋还有5盒没 有的话我过来拿"])
def test_an_amount_asked_after_still_have_is_a_stock_question(parser: OrderParser, text: str) -> None:
    assert read(parser, text) == ("stock_question", [])


@pytest.mark.parametrize("text", ["蛋糕这么易坏的东西能寄吗", "鸡蛋怕碎的 怎么送"])
def test_fragile_is_a_property_not_a_complaint(parser: OrderParser, text: str) -> None:
    assert read(parser, text)[0] == "delivery_question"


def test_a_gift_to_choose_is_no_delivery_question(parser: OrderParser) -> None:
    assert read(parser, "我再琢磨琢磨送朋友啥好")[0] == "hedge"


def test_asking_someone_else_how_much_is_needed_is_a_hedge(parser: OrderParser) -> None:
    assert read(parser, "我问问师傅水管要多少") == ("hedge", [])
    assert read(parser, "我问一下 水管多少钱")[0] == "price_question"  # asking the shop is no hedge
    assert read(parser, "问一下水管要几块钱一根")[0] == "price_question"


# -- rule 17: small talk and adverts --------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["可乐真好喝 多谢推荐", "有空过来坐坐", "改天来你那喝茶"])
def test_thanks_and_a_promised_visit_are_small_talk(parser: OrderParser, text: str) -> None:
    assert read(parser, text) == ("chitchat", [])


@pytest.mark.parametrize("text", ["扫码领取优惠券 限时免费", "你好 我是某某装修公司的客户经理 了解一下吗"])
def test_an_advert_sent_to_the_shop_is_unknown(parser: OrderParser, text: str) -> None:
    assert read(parser, text) == ("unknown", [])


def test_a_customer_introducing_himself_still_orders(parser: OrderParser) -> None:
    assert read(parser, "我是隔壁小区的小王 要两箱雪碧") == ("order", [("SPRITE", 2)])


def test_not_this_amount_but_that_on_a_draft_is_a_change(parser: OrderParser) -> None:
    assert read(parser, "啤酒不是2箱 是4箱", has_draft=True) == ("change", [])


# -- rule 11: what the shop puts in with the goods is no product and its number no quantity ----------------------


@pytest.mark.parametrize("text", ["8寸蛋糕一个 要插8根蜡烛", "6寸蛋糕1个 配5套刀叉", "生日帽来一个，8寸蛋糕一个", "要两个袋子 蛋挞一个"])
def test_extras_put_in_with_the_goods_are_no_line(parser: OrderParser, text: str) -> None:
    intent, lines = read(parser, text)
    assert intent == "order" and len(lines) == 1 and lines[0][1] == 1


def test_extras_alone_order_nothing(parser: OrderParser) -> None:
    assert read(parser, "蜡烛要10根")[1] == []


# -- rule 2: an A-not-A question about the goods is the question; 能不能给我 + goods is a request -------------------


@pytest.mark.parametrize("text", ["大米2袋够不够四个人吃一星期", "鸡蛋3盒 新不新鲜啊", "可乐5箱 是不是今年的货"])
def test_an_a_not_a_question_about_the_goods_orders_nothing(parser: OrderParser, text: str) -> None:
    intent, lines = read(parser, text)
    assert lines == [] and intent not in ("order", "add", "complaint")


@pytest.mark.parametrize("text", ["雪碧2箱 不对不对 3箱", "大米3袋 不不不 4袋就行"])
def test_no_said_twice_inside_a_correction_is_no_question(parser: OrderParser, text: str) -> None:
    intent, lines = read(parser, text)
    assert intent == "order" and lines[0][1] in (3, 4)


def test_can_you_give_me_the_goods_is_a_request(parser: OrderParser) -> None:
    assert read(parser, "可不可以帮我拿两箱雪碧") == ("order", [("SPRITE", 2)])
    assert read(parser, "能不能帮我送到六楼")[0] == "delivery_question"  # no goods: asks whether they deliver there


@pytest.mark.parametrize("text", ["可乐还有8箱没有", "大米还剩3袋没有"])
def test_still_have_ending_in_meiyou_is_a_stock_question(parser: OrderParser, text: str) -> None:
    assert read(parser, text) == ("stock_question", [])


def test_there_is_some_at_home_is_negation_in_a_list(parser: OrderParser) -> None:
    assert read(parser, "雪碧拿3箱，大米家里还有") == ("order", [("SPRITE", 3)])


def test_calling_the_price_too_high_is_a_discount_request(parser: OrderParser) -> None:
    assert read(parser, "可乐50一箱有点贵 45卖不卖") == ("discount_request", [])
    assert read(parser, "雪碧贵不贵")[0] == "price_question"


def test_not_needed_any_more_removes_a_draft_item(parser: OrderParser) -> None:
    assert read(parser, "雪碧不需要了", has_draft=True) == ("remove", [])


def test_make_one_is_one(parser: OrderParser) -> None:
    assert read(parser, "帮我做个8寸蛋糕") == ("order", [("CAKE-8", 1)])


def test_actually_want_restates_the_draft_amount(parser: OrderParser) -> None:
    assert read(parser, "大米刚才说4袋 其实要5袋", has_draft=True) == ("change", [])


# -- rules 11-12: dimensions, kinds of one name said once, "the same as last time" ---------------------------------


def test_a_dimension_is_no_quantity() -> None:
    tiles = OrderParser([Product("T6", "600×600 地砖", ("地砖", "瓷砖"), "片"), Product("T3", "300×450 墙砖", ("墙砖", "瓷砖"), "片")])
    assert read(tiles, "瓷砖300x450的 要60片") == ("order", [("T3", 60)])
    assert read(tiles, "600*600的地砖 80片") == ("order", [("T6", 80)])


def test_kinds_of_a_name_said_once_are_each_an_item() -> None:
    beer = OrderParser(
        [
            Product("B-CAN", "啤酒 罐装 330ml×24", ("啤酒", "罐装啤酒"), "箱"),
            Product("B-BOT", "啤酒 瓶装 500ml×12", ("啤酒", "瓶装啤酒"), "箱"),
        ]
    )
    assert read(beer, "啤酒要罐装的3箱，瓶装的1箱") == ("order", [("B-BOT", 1), ("B-CAN", 3)])
    assert read(beer, "啤酒3箱 我的1箱")[0] == "clarify"  # 我的 names no kind: which beer is asked


@pytest.mark.parametrize("text", ["跟上回一样", "老规矩 送过来吧"])
def test_the_same_as_last_time_is_asked(parser: OrderParser, text: str) -> None:
    u = understand(parser, text)
    assert (u.intent, u.lines) == ("clarify", []) and isinstance(u.result, Clarify) and u.result.question


def test_an_alias_starting_a_longer_word_names_another_product(parser: OrderParser) -> None:
    tools = OrderParser([Product("CEM", "水泥 42.5", ("水泥",), "袋"), Product("SCREW", "自攻螺丝", ("螺丝",), "盒")])
    assert read(tools, "水泥钉来两盒") == ("clarify", [])  # a nail, not cement: never 2 bags of cement
    assert read(tools, "水泥两袋") == ("order", [("CEM", 2)])
    assert read(parser, "生日蛋糕要一个8寸的") == ("order", [("CAKE-8", 1)])  # ends in the alias: a kind of cake


# -- rules 2, 5, 14, 15: ready-yet questions, yes repeating the amount, "while you are at it", checks first ---------


def test_can_it_be_ready_by_a_time_is_a_question_not_an_order(parser: OrderParser) -> None:
    assert read(parser, "12个蛋挞后天中午能做好吗") == ("delivery_question", [])
    assert read(parser, "我订的蛋糕做好没")[0] == "order_status"  # an order placed: is it done yet


@pytest.mark.parametrize("text", ["是2箱没错", "对的 就是按箱", "嗯 要盒装的"])
def test_a_yes_that_repeats_the_amount_or_unit_anywhere_is_a_yes(parser: OrderParser, text: str) -> None:
    assert read(parser, text, pending="unit") == ("confirm", [])


def test_a_yes_opened_with_then_confirms(parser: OrderParser) -> None:
    assert read(parser, "那就这么办吧", has_draft=True) == ("confirm", [])


@pytest.mark.parametrize("text", ["顺便拿一箱雪碧", "顺带两袋大米"])
def test_while_you_are_at_it_adds_to_the_draft(parser: OrderParser, text: str) -> None:
    intent, lines = read(parser, text, has_draft=True)
    assert intent == "add" and len(lines) == 1


@pytest.mark.parametrize("text", ["我先量量客厅要多少片地砖", "先算一下要几根水管"])
def test_measuring_or_counting_first_is_a_hedge(parser: OrderParser, text: str) -> None:
    assert read(parser, text) == ("hedge", [])


def test_a_length_per_piece_is_no_quantity(parser: OrderParser) -> None:
    u = understand(parser, "4米一根的水管 要15根")
    assert (u.intent, u.lines) == ("order", [("PIPE", 15)])
    assert any(e.span == "4米一根" and "规格" in e.why for e in u.evidence)  # a size, not called a price


# -- rules 3, 4, 6, 12: found while probing delivery, discount, negation and units -----------------------------------


def test_less_by_an_amount_on_a_draft_is_asked(parser: OrderParser) -> None:
    assert read(parser, "雪碧再减一箱", has_draft=True) == ("clarify", [])  # never an order of 1 箱


def test_how_many_then_deliver_is_no_shortfall(parser: OrderParser) -> None:
    assert read(parser, "买满多少送货上门")[0] == "delivery_question"
    assert read(parser, "可乐少送了一箱")[0] == "complaint"


def test_the_size_of_the_truck_is_about_delivery(parser: OrderParser) -> None:
    assert read(parser, "你们的货车多大 进得了巷子吗")[0] == "delivery_question"


def test_free_extras_with_the_goods_asked_for_are_a_discount_request(parser: OrderParser) -> None:
    assert read(parser, "蛋糕配不配刀叉") == ("discount_request", [])


def test_a_negated_delivery_verb_scopes_over_its_item(parser: OrderParser) -> None:
    assert read(parser, "大米3袋，啤酒这回不拉") == ("order", [("RICE", 3)])


def test_a_measure_for_an_ambiguous_product_sold_in_one_unit_is_asked() -> None:
    wires = OrderParser([Product("W15", "BV1.5平方电线", ("电线",), "卷"), Product("W6", "BV6平方电线", ("电线",), "卷")])
    assert read(wires, "电线要50米") == ("clarify", [])


@pytest.mark.parametrize(("text", "lines"), [("不要8寸的 要6寸的两个", [("CAKE-6", 2)]), ("6寸不要了，要8寸的1个", [("CAKE-8", 1)])])
def test_not_this_size_but_that_one_orders_the_size_kept(parser: OrderParser, text: str, lines: list[tuple[str, int]]) -> None:
    assert read(parser, text) == ("order", lines)


def test_a_size_alone_in_another_unit_is_still_asked(parser: OrderParser) -> None:
    assert read(parser, "不要6寸的 要8寸的两箱")[0] == "clarify"  # cakes are sold by the 个


def test_a_slash_between_items_separates_them(parser: OrderParser) -> None:
    assert read(parser, "3箱雪碧/2袋大米") == ("order", [("RICE", 2), ("SPRITE", 3)])
    assert read(parser, "雪碧1/2箱")[0] == "clarify"  # a fraction stays vague


# -- rules 3-4: classes the rules left to the intent model, now given by structure ----------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "说好的6盒鸡蛋只送来5盒",  # ordered N, only M came
        "大米里全是小石子",  # full of what should not be there
        "蛋挞中间还没烤熟",  # not cooked through
        "一盒鸡蛋是拆开过的",  # opened before it came
        "打了三次电话一直没人接",  # no answer for a long time
        "可乐太淡了",  # too weak / dry / greasy
        "水管用了两天就裂开",  # broke at once
        "这批地砖厚度不够",  # an attribute short of what it should be
    ],
)
def test_complaints_by_their_shape(parser: OrderParser, text: str) -> None:
    assert read(parser, text) == ("complaint", [])


@pytest.mark.parametrize("text", ["你们店里卖不卖毛尖", "卖冰红茶吗", "有DN32的水管吗"])
def test_whether_it_is_sold_here_is_a_stock_question(parser: OrderParser, text: str) -> None:
    assert read(parser, text)[0] == "stock_question"


@pytest.mark.parametrize("text", ["毛尖咋个卖", "信阳毛尖怎么卖的呀", "两种水管差价多少"])
def test_how_is_it_sold_is_a_price_question(parser: OrderParser, text: str) -> None:
    assert read(parser, text)[0] == "price_question"


@pytest.mark.parametrize("text", ["能打个八五折不", "九折行不行"])
def test_a_discount_named_by_its_rate(parser: OrderParser, text: str) -> None:
    assert read(parser, text) == ("discount_request", [])


def test_whether_the_truck_gets_there_is_a_delivery_question(parser: OrderParser) -> None:
    assert read(parser, "我家在坡上 你们货车开得上去吗")[0] == "delivery_question"


def test_no_cue_word_is_swallowed_by_a_comment() -> None:
    """A TOML comment after the last cue word of a line hides every word after it on that line."""
    from bots.dialogue.cue_words import CUE_WORDS_PATH

    for n, line in enumerate(CUE_WORDS_PATH.read_text(encoding="utf-8").splitlines(), 1):
        code, _, comment = line.partition("  #")
        assert "'" not in comment or not code.strip(), f"cue_words.toml:{n}: a quoted word inside a comment"


# -- rule 12: a qualifier settles only the product nearest to it -------------------------------------------------------


def test_a_size_settles_only_its_own_product() -> None:
    shop = OrderParser(
        [
            Product("CAKE-6", "6寸蛋糕", ("蛋糕",), "个"),
            Product("CAKE-8", "8寸蛋糕", ("蛋糕",), "个"),
            Product("BOX-6", "点心礼盒 6个装", ("礼盒",), "盒"),
            Product("BOX-8", "点心礼盒 8个装", ("礼盒",), "盒"),
        ]
    )
    assert read(shop, "8寸蛋糕1个 礼盒3盒")[0] == "clarify"  # 8寸 is the cake's: which box is asked, never the 8个装
    assert read(shop, "蛋糕8寸的1个 6个装的礼盒3盒") == ("order", [("BOX-6", 3), ("CAKE-8", 1)])


def test_a_second_amount_of_the_plain_name_is_not_settled_by_the_first_item(parser: OrderParser) -> None:
    assert read(parser, "8寸蛋糕2个 蛋糕1个")[0] == "clarify"  # the second 蛋糕: which size? never 3 of the 8寸


def test_a_kind_named_after_the_plain_name_still_settles_it() -> None:
    sand = OrderParser([Product("RIVER", "河沙", ("沙子", "河沙"), "方"), Product("MACHINE", "机制砂", ("沙子", "机制砂"), "方")])
    assert read(sand, "沙子要机制砂 4方") == ("order", [("MACHINE", 4)])


# -- courtesy around a message changes nothing (a perturbation of every tune message found these) -------------------


@pytest.mark.parametrize(
    ("text", "has_draft", "pending", "intent"),
    [
        ("老板，不对", False, "unit", "clarify"),
        ("你好，是的", False, "unit", "confirm"),
        ("可以 就这样，辛苦了", True, None, "confirm"),
        ("师傅 有DN32的水管吗，麻烦了", False, None, "stock_question"),
        ("你好，👍", True, None, "confirm"),
        ("👌～", True, None, "confirm"),
    ],
)
def test_a_greeting_before_or_thanks_after_change_nothing(
    parser: OrderParser, text: str, has_draft: bool, pending: str | None, intent: str
) -> None:
    assert read(parser, text, has_draft=has_draft, pending=pending) == (intent, [])


def test_a_greeting_alone_is_still_small_talk(parser: OrderParser) -> None:
    assert read(parser, "你好，谢谢") == ("chitchat", [])
    assert read(parser, "在吗？") == ("chitchat", [])


def test_an_order_after_a_greeting_with_a_list(parser: OrderParser) -> None:
    assert read(parser, "老板 1. 雪碧 2箱\n2. 大米 1袋") == ("order", [("RICE", 1), ("SPRITE", 2)])


@pytest.mark.parametrize("text", ["雪碧还有6箱吗～", "大米还有10袋没啊"])
def test_still_have_with_a_trailing_particle_is_still_a_stock_question(parser: OrderParser, text: str) -> None:
    assert read(parser, text) == ("stock_question", [])


# -- run-on messages (dictated or typed without a sign): one item's clause ends where the next item starts -----------


@pytest.mark.parametrize(
    ("text", "lines"),
    [
        ("雪碧3箱大米就不要了", [("SPRITE", 3)]),  # "not" scoped to the next item, as with a comma
        ("可乐两箱鸡蛋不用了大米来一袋", [("COLA", 2), ("RICE", 1)]),
        ("8寸蛋糕一个不要写字", [("CAKE-8", 1)]),
        ("来两箱雪碧可乐我再想想", [("SPRITE", 2)]),  # amount first: the item ends after the product
        ("可乐3箱雪碧2箱", [("COLA", 3), ("SPRITE", 2)]),
    ],
)
def test_a_run_on_message_is_read_clause_by_clause(parser: OrderParser, text: str, lines: list[tuple[str, int]]) -> None:
    assert read(parser, text) == ("order", lines)


@pytest.mark.parametrize("text", ["雪碧还有6箱不我下午去拉", "鸡蛋还有3盒没我想要"])
def test_a_run_on_stock_question_stays_a_question(parser: OrderParser, text: str) -> None:
    assert read(parser, text) == ("stock_question", [])


def test_a_run_on_keeps_what_belongs_to_the_item(parser: OrderParser) -> None:
    assert read(parser, "送2箱可乐过来") == ("order", [("COLA", 2)])
    assert read(parser, "鸡蛋一盒能放几天")[0] == "price_question"  # what one unit does stays with it
    assert read(parser, "订20个蛋挞要等多久")[0] == "delivery_question"


@pytest.mark.parametrize(
    ("text", "lines"),
    [
        ("雪碧2箱就行可乐不要", [("SPRITE", 2)]),  # "that is enough" ends the item
        ("不要可乐了换雪碧两箱", [("SPRITE", 2)]),  # "not" opening the message scopes over its product
        ("不要青岛的要雪花啤酒3箱", [("BEER-SNOW", 3)]),
        ("大米两袋鸡蛋的话下周再说", [("RICE", 2)]),  # a hedge on the next item, run together
        ("可乐3箱呃4箱吧", [("COLA", 4)]),  # a hesitation between two amounts, run together
        ("大米5袋不6袋", [("RICE", 6)]),
    ],
)
def test_run_on_negation_hedge_and_correction_keep_their_scope(parser: OrderParser, text: str, lines: list[tuple[str, int]]) -> None:
    assert read(parser, text) == ("order", lines)


def test_a_run_on_no_then_what_was_meant_asks_again(parser: OrderParser) -> None:
    assert read(parser, "不对我要的是箱", pending="unit") == ("clarify", [])


def test_an_if_clause_that_goes_on_to_ask_is_a_discount_request(parser: OrderParser) -> None:
    assert read(parser, "要是拿20箱雪碧单价能便宜点不") == ("discount_request", [])
    assert read(parser, "要是便宜的话我就拿10箱可乐")[0] == "hedge"


def test_later_is_a_hedge_only_about_deciding(parser: OrderParser) -> None:
    assert read(parser, "给我留3箱可乐晚点下班来拿") == ("order", [("COLA", 3)])
    assert read(parser, "可乐晚点再说")[0] == "hedge"


# -- rule 13: the traditional forms of the characters customers type ----------------------------------------------------


@pytest.mark.parametrize(
    ("text", "lines"),
    [
        ("老闆 雪碧兩箱", [("SPRITE", 2)]),
        ("可樂貳箱", [("COLA", 2)]),
        ("蛋撻6個 蛋糕8寸的壹個", [("CAKE-8", 1), ("TART", 6)]),
    ],
)
def test_traditional_forms_read_as_simplified(parser: OrderParser, text: str, lines: list[tuple[str, int]]) -> None:
    assert read(parser, text) == ("order", lines)


@pytest.mark.parametrize("text", ["雪碧少瞭一箱", "可樂少了兩箱"])
def test_a_traditional_complaint_is_no_order(parser: OrderParser, text: str) -> None:
    assert read(parser, text) == ("complaint", [])


def test_cantonese_not_have_asks_about_stock(parser: OrderParser) -> None:
    assert read(parser, "有冇雪碧") == ("stock_question", [])


# -- rules 10, 15: any ordering verb after 都 / 各 or 多 ------------------------------------------------------------


@pytest.mark.parametrize("text", ["雪碧可乐都给我来2箱", "雪碧和可乐都搬2箱", "雪碧可乐各帮我拿2箱"])
def test_a_shared_amount_after_any_ordering_verb(parser: OrderParser, text: str) -> None:
    assert read(parser, text) == ("order", [("COLA", 2), ("SPRITE", 2)])


def test_more_with_give_me_adds(parser: OrderParser) -> None:
    assert read(parser, "雪碧多给我来1箱", has_draft=True) == ("add", [("SPRITE", 1)])


def test_whole_is_no_amount(parser: OrderParser) -> None:
    assert read(parser, "整个订单取消", has_draft=True) == ("cancel", [])


# -- synonyms of question particles and words (a perturbation of every tune message found these) ------------------


@pytest.mark.parametrize("text", ["下午能送没", "周末发货没", "可以预约时间送没"])
def test_can_you_with_mei_asks_what_the_shop_does(parser: OrderParser, text: str) -> None:
    assert read(parser, text) == ("delivery_question", [])


def test_done_yet_about_an_order_stays_order_status(parser: OrderParser) -> None:
    assert read(parser, "我的大米送了没")[0] == "order_status"
    assert read(parser, "前天拍的3箱雪碧发了么") == ("order_status", [])  # 拍 (online): ordered; never an order of 3


@pytest.mark.parametrize("text", ["不需要了", "都不需要了 谢谢"])
def test_not_needed_any_more_cancels_the_draft(parser: OrderParser, text: str) -> None:
    assert read(parser, text, has_draft=True) == ("cancel", [])


def test_not_needed_this_week_is_a_hedge(parser: OrderParser) -> None:
    assert read(parser, "这周先不需要了") == ("hedge", [])


@pytest.mark.parametrize("text", ["实惠点呗", "拿10箱雪碧能划算点不"])
def test_a_better_deal_is_a_discount_request(parser: OrderParser, text: str) -> None:
    assert read(parser, text) == ("discount_request", [])


@pytest.mark.parametrize("text", ["在嘛", "在不"])
def test_are_you_there_in_any_particle_is_small_talk(parser: OrderParser, text: str) -> None:
    assert read(parser, text) == ("chitchat", [])


@pytest.mark.parametrize("text", ["毛尖是今年的不", "蛋挞是现烤的伐"])
def test_is_it_x_with_any_particle_asks_what_it_is(parser: OrderParser, text: str) -> None:
    assert read(parser, text) == ("price_question", [])


@pytest.mark.parametrize("text", ["能否明早送到", "你们有木有车送货"])
def test_written_and_dialect_question_forms_ask(parser: OrderParser, text: str) -> None:
    assert read(parser, text) == ("delivery_question", [])


# -- rule 12: what may settle an ambiguous name, and what may not ----------------------------------------------------


def test_a_time_settles_no_size(parser: OrderParser) -> None:
    assert read(parser, "明早8点送2个水果蛋糕")[0] == "clarify"  # 8点 is a time: which cake is asked
    assert read(parser, "明早送2个8寸水果蛋糕") == ("order", [("CAKE-8", 2)])


def test_a_verb_before_the_name_settles_nothing() -> None:
    pipes = OrderParser([Product("FEED", "给水管", ("水管", "给水管"), "根"), Product("DRAIN", "排水管", ("水管", "排水管"), "根")])
    assert read(pipes, "帮我给水管来10根") == ("order", [("FEED", 10)])  # 给水管 named whole
    assert read(pipes, "麻烦给个水管 10根")[0] == "clarify"  # 给 here is "give": which pipe is asked


def test_a_run_on_with_a_kind_between_product_and_amount() -> None:
    shop = OrderParser(
        [
            Product("C-A", "水泥 普通", ("水泥", "普通水泥"), "袋"),
            Product("C-B", "水泥 复合", ("水泥", "复合水泥"), "袋"),
            Product("SAND", "河沙", ("河沙",), "方"),
        ]
    )
    assert read(shop, "水泥要复合的十袋河沙来三方") == ("order", [("C-B", 10), ("SAND", 3)])
    assert read(shop, "8个装的水泥3袋")[0] == "clarify"  # a pack size of no product here, and which cement: asked


# -- rule 5: a hedge word like 可能 holds everything after it; 其他的过两天再说 only the rest -----------------------------


@pytest.mark.parametrize("text", ["可能大米两袋 雪碧一箱", "估计可乐3箱，雪碧2箱", "打算要鸡蛋2盒 大米1袋 下周吧"])
def test_maybe_holds_every_item_after_it(parser: OrderParser, text: str) -> None:
    assert read(parser, text) == ("hedge", [])  # never an order of the items after the first


def test_a_firm_item_before_maybe_is_ordered(parser: OrderParser) -> None:
    assert read(parser, "先来2箱雪碧，可能还要3箱可乐") == ("order", [("SPRITE", 2)])
    assert read(parser, "雪碧2箱，其他的过两天再说") == ("order", [("SPRITE", 2)])


@pytest.mark.parametrize("text", ["下周再订雪碧2箱 大米1袋", "过几天再说吧 可乐3箱 雪碧1箱"])
def test_a_postponement_before_the_items_holds_them_all(parser: OrderParser, text: str) -> None:
    assert read(parser, text) == ("hedge", [])


def test_items_of_an_earlier_order_named_first_are_no_order(parser: OrderParser) -> None:
    intent, lines = read(parser, "上回买的雪碧2箱 大米1袋，都挺好")
    assert lines == [] and intent != "order"
    assert read(parser, "上回买的雪碧再来2箱") == ("order", [("SPRITE", 2)])  # 再来: a new order of it


@pytest.mark.parametrize(
    ("text", "lines"),
    [
        ("蛋挞不要，8寸蛋糕一个再要一箱雪碧", [("CAKE-8", 1), ("SPRITE", 1)]),  # "not" said of another item: no correction
        ("不要水果蛋糕了 周日送一个8寸的蛋糕", [("CAKE-8", 1)]),  # the 8寸 settles the cake wanted, not the one refused
    ],
)
def test_not_before_the_order_scopes_over_its_own_item(parser: OrderParser, text: str, lines: list[tuple[str, int]]) -> None:
    assert read(parser, text) == ("order", lines)


def test_after_also_a_pack_size_or_an_address_is_no_unknown_item(parser: OrderParser) -> None:
    shop = OrderParser([Product("BOX", "点心礼盒 6个装", ("礼盒",), "盒"), Product("RICE", "大米", ("大米",), "袋")])
    assert read(shop, "还要6个装的礼盒3盒", has_draft=True) == ("add", [("BOX", 3)])
    assert read(shop, "大米2袋 还要送到人民路88号") == ("order", [("RICE", 2)])
    assert read(shop, "大米2袋和5号电池")[0] == "clarify"  # a product not sold here: never a silent partial order


# -- rule 10: one amount for several products — 每样 / 分别 / 一样, and "the same" after a product ----------------


@pytest.mark.parametrize(
    ("text", "lines"),
    [
        ("雪碧 可乐 每样来三箱", [("COLA", 3), ("SPRITE", 3)]),
        ("可乐雪碧分别整4箱", [("COLA", 4), ("SPRITE", 4)]),
        ("可乐和雪碧一样拿两箱", [("COLA", 2), ("SPRITE", 2)]),
    ],
)
def test_each_word_spreads_one_amount_over_the_products_before_it(parser: OrderParser, text: str, lines: list[tuple[str, int]]) -> None:
    assert read(parser, text) == ("order", sorted(lines))


@pytest.mark.parametrize(
    ("text", "lines"),
    [
        ("整两箱雪碧 可乐也要", [("COLA", 2), ("SPRITE", 2)]),
        ("雪碧4箱 可乐一样", [("COLA", 4), ("SPRITE", 4)]),
        ("大米一袋，可乐五箱 雪碧也是哈", [("COLA", 5), ("RICE", 1), ("SPRITE", 5)]),
    ],
)
def test_a_product_saying_the_same_takes_the_amount_before_it(parser: OrderParser, text: str, lines: list[tuple[str, int]]) -> None:
    assert read(parser, text) == ("order", sorted(lines))


@pytest.mark.parametrize("text", ["大米三袋，鸡蛋也是", "可乐两箱 啤酒也要"])
def test_the_same_amount_is_still_checked_against_the_product(parser: OrderParser, text: str) -> None:
    assert read(parser, text) == ("clarify", [])  # 袋 of eggs sold by the 盒; 啤酒 of two brands


@pytest.mark.parametrize("text", ["可乐3箱 雪碧也不要", "可乐三箱 雪碧也要吗"])
def test_the_same_amount_needs_a_plain_yes_to_it(parser: OrderParser, text: str) -> None:
    assert ("SPRITE", 3) not in read(parser, text)[1]


@pytest.mark.parametrize("text", ["地砖 水管各二十", "蛋挞水管各二十个"])
def test_a_longer_numeral_after_each_is_never_cut_to_its_first_digit(parser: OrderParser, text: str) -> None:
    assert all(qty != 2 for _, qty in read(parser, text)[1])  # 各二十 is twenty (or asked), never 2


@pytest.mark.parametrize("text", ["可乐雪碧各两三箱", "蛋挞水管各一对"])
def test_each_before_a_vague_amount_or_a_pair_orders_nothing(parser: OrderParser, text: str) -> None:
    assert read(parser, text)[0] != "order"


# -- rule 7: with a draft, owning a slip first and then giving the line meant is a change ------------------------


@pytest.mark.parametrize("text", ["哎呀刚刚打错了 雪碧是5箱", "前面写错了，大米要四袋", "更正一下 可乐3箱"])
def test_a_slip_owned_before_the_line_changes_the_draft(parser: OrderParser, text: str) -> None:
    assert read(parser, text, has_draft=True) == ("change", [])


def test_a_slip_owned_without_a_draft_is_the_order(parser: OrderParser) -> None:
    assert read(parser, "哎呀刚刚打错了 雪碧是5箱") == ("order", [("SPRITE", 5)])


# -- rule 16: struck off the draft --------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["水管划掉", "把雪碧撤了吧", "蛋挞就免了"])
def test_striking_an_item_off_the_draft_removes_it(parser: OrderParser, text: str) -> None:
    assert read(parser, text, has_draft=True) == ("remove", [])


@pytest.mark.parametrize("text", ["配送费免了吧", "零头就免了"])
def test_waiving_a_charge_is_still_a_discount_request(parser: OrderParser, text: str) -> None:
    assert read(parser, text)[0] == "discount_request"


# -- rule 6: an item put off or not needed, beside one ordered -----------------------------------------------------


@pytest.mark.parametrize(
    "text",
    ["大米三袋 啤酒等下次", "大米三袋，啤酒下次吧", "大米三袋 啤酒没必要", "大米三袋 啤酒不着急", "雪碧免了 大米三袋"],
)
def test_an_item_put_off_is_left_out_of_the_order(parser: OrderParser, text: str) -> None:
    assert read(parser, text) == ("order", [("RICE", 3)])  # 啤酒 is of two brands: it does not matter, not ordered


# -- rule 14 / 16: "nothing more" said to a draft -------------------------------------------------------------------


@pytest.mark.parametrize("text", ["没了", "没有别的了 谢谢", "就这么多吧", "没毛病"])
def test_nothing_more_said_to_a_draft_confirms_it(parser: OrderParser, text: str) -> None:
    assert read(parser, text, has_draft=True) == ("confirm", [])


def test_a_fault_is_still_a_complaint(parser: OrderParser) -> None:
    assert read(parser, "这批水管有毛病")[0] == "complaint"


# -- rule 15 / 16: with a draft, "also each" adds; a removal beside an order is asked ----------------------------


def test_also_each_adds_to_the_draft(parser: OrderParser) -> None:
    assert read(parser, "可乐雪碧也各要两箱", has_draft=True) == ("add", [("COLA", 2), ("SPRITE", 2)])


@pytest.mark.parametrize("text", ["大米不要了 可乐再加两箱", "雪碧就不用了 再来一箱可乐"])
def test_a_removal_beside_an_addition_on_a_draft_is_asked(parser: OrderParser, text: str) -> None:
    assert read(parser, text, has_draft=True) == ("clarify", [])  # never the addition alone, the removal lost


def test_an_order_on_a_draft_leaves_the_negated_item_out_by_itself(parser: OrderParser) -> None:
    assert read(parser, "大米3袋，雪碧先不要", has_draft=True) == ("order", [("RICE", 3)])  # it sets the draft's lines


# -- rule 7: a retraction then only another product — that product, the same amount ----------------------------


@pytest.mark.parametrize(
    ("text", "lines"),
    [("雪碧3箱 哦不对 是可乐", [("COLA", 3)]), ("蛋挞十个 说错了 要葡式蛋挞", [("TART", 10)]), ("可乐两箱 不是，是雪碧", [("SPRITE", 2)])],
)
def test_a_retracted_product_keeps_its_amount(parser: OrderParser, text: str, lines: list[tuple[str, int]]) -> None:
    assert read(parser, text) == ("order", lines)


@pytest.mark.parametrize("text", ["可乐两箱 不是雪碧", "雪碧3箱 不对 是大米", "可乐两箱 不对是啤酒"])
def test_which_one_is_meant_or_a_unit_that_does_not_fit_is_never_swapped_in(parser: OrderParser, text: str) -> None:
    assert read(parser, text)[1] in ([], [("COLA", 2)])  # 不是雪碧 says it is cola; 袋 of 大米 / which 啤酒: asked


# -- rule 3: bargaining — two sums, a promotion's price, another shop held up, an exception to the delivery rule --


@pytest.mark.parametrize(
    "text",
    ["一共315 算300吧", "88块就算80呗", "有没有促销价", "地砖200片 最低能多少", "网上才卖25", "人家比你便宜好几块", "包个邮呗 拿得多"],
)
def test_bargaining_shapes_are_discount_requests(parser: OrderParser, text: str) -> None:
    assert read(parser, text)[0] == "discount_request"


@pytest.mark.parametrize(("text", "intent"), [("可乐和雪碧哪个便宜", "price_question"), ("包邮吗", "delivery_question")])
def test_comparing_goods_or_asking_the_rule_is_no_bargaining(parser: OrderParser, text: str, intent: str) -> None:
    assert read(parser, text)[0] == intent


def test_settling_on_an_amount_is_no_haggle(parser: OrderParser) -> None:
    assert read(parser, "可乐就算3箱吧") == ("order", [("COLA", 3)])


# -- rules 10 / 12: two kinds of one product named around it are never narrowed to the nearest --------------------


@pytest.mark.parametrize("text", ["青岛雪花的啤酒各一箱", "6寸8寸的蛋糕都来一个"])
def test_two_kinds_named_are_never_read_as_one(parser: OrderParser, text: str) -> None:
    intent, lines = read(parser, text)
    assert intent == "clarify" or {sku for sku, _ in lines} in ({"BEER-QD", "BEER-SNOW"}, {"CAKE-6", "CAKE-8"})


@pytest.mark.parametrize(("text", "sku"), [("雪花的啤酒一箱", "BEER-SNOW"), ("8寸的蛋糕一个 送到小区", "CAKE-8")])
def test_one_kind_named_still_settles_the_product(parser: OrderParser, text: str, sku: str) -> None:
    assert read(parser, text) == ("order", [(sku, 1)])


@pytest.mark.parametrize(
    ("text", "lines"),
    [
        ("各来三箱雪碧可乐", [("COLA", 3), ("SPRITE", 3)]),
        ("都要一个 蛋挞 6寸蛋糕", [("CAKE-6", 1), ("TART", 1)]),
        ("可乐雪碧全要两箱", [("COLA", 2), ("SPRITE", 2)]),
        ("雪碧可乐统统来3箱", [("COLA", 3), ("SPRITE", 3)]),
    ],
)
def test_each_word_with_the_products_after_or_all_of_them(parser: OrderParser, text: str, lines: list[tuple[str, int]]) -> None:
    assert read(parser, text) == ("order", sorted(lines))


@pytest.mark.parametrize("text", ["也来两箱可乐雪碧", "各来一箱可乐 雪碧两箱"])
def test_the_products_after_share_only_behind_each_and_nothing_else(parser: OrderParser, text: str) -> None:
    assert read(parser, text) != ("order", [("COLA", 2), ("SPRITE", 2)])
    assert ("SPRITE", 1) not in read(parser, text)[1]


@pytest.mark.parametrize(
    "text",
    ["这价格也太高了吧", "满200减20还有没", "地砖按进价给我", "大米45一袋卖不卖", "可乐50块一箱行不行", "配送费少收点"],
)
def test_more_bargaining_shapes(parser: OrderParser, text: str) -> None:
    assert read(parser, text)[0] == "discount_request"


@pytest.mark.parametrize(("text", "lines"), [("45一袋的大米要两袋", [("RICE", 2)]), ("大米45一袋 来两袋", [("RICE", 2)])])
def test_a_unit_price_beside_an_order_is_still_the_order(parser: OrderParser, text: str, lines: list[tuple[str, int]]) -> None:
    assert read(parser, text) == ("order", lines)


# -- rule 7: "not A but B" after an order — B is meant, never the amount denied ---------------------------------


@pytest.mark.parametrize("text", ["雪碧两箱 不是两箱是五箱", "雪碧2箱 不是2箱 要5箱"])
def test_the_amount_after_not_a_but_is_meant(parser: OrderParser, text: str) -> None:
    assert read(parser, text) == ("order", [("SPRITE", 5)])
    assert read(parser, text, has_draft=True) == ("change", [])


def test_the_product_named_at_the_change_word_is_the_one_changed(parser: OrderParser) -> None:
    assert read(parser, "雪碧可乐各两箱 雪碧改成4箱") == ("order", [("COLA", 2), ("SPRITE", 4)])


def test_a_shared_amount_retracted_with_each_is_asked(parser: OrderParser) -> None:
    assert read(parser, "雪碧可乐各两箱 哦不对 各四箱") == ("clarify", [])  # never only the last product at 4
