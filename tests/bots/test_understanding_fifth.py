"""General rules of the chat understanding (issue 14, fifth round): classes of phrasing found when the fourth
held-out set and two new blind-written tune sets were folded into tune, each tested with wording of its own —
never the corpus's messages.

Plain values in, readings out: no DB, no network.
"""

from __future__ import annotations

import pytest

from bots.dialogue.homophones import common, homophones
from bots.dialogue.intents import Correction, Product
from bots.dialogue.parser import OrderParser
from bots.dialogue.understanding import understand
from tests.bots.reading import read

CATALOG = [
    Product("COLA", "可口可乐 500ml×12", ("可乐",), "箱"),
    Product("SPRITE", "雪碧 500ml×12", ("雪碧",), "箱"),
    Product("NOODLE", "方便面 12包", ("方便面", "泡面"), "箱"),
    Product("RICE", "东北大米 5kg", ("大米",), "袋"),
    Product("SUGAR", "白砂糖 1kg", ("白糖", "白砂糖"), "袋"),
    Product("CEMENT-425", "普通水泥 P.O 42.5", ("水泥", "42.5水泥"), "袋"),
    Product("CEMENT-325", "复合水泥 P.C 32.5", ("水泥", "32.5水泥"), "袋"),
    Product("PIPE-25", "PVC给水管 DN25", ("pvc管", "给水管"), "根"),
    Product("PIPE-40", "PVC排水管 DN40", ("pvc管", "排水管"), "根"),
    Product("CAKE-6", "6寸奶油蛋糕", ("蛋糕", "奶油蛋糕"), "个"),
    Product("CAKE-8", "8寸奶油蛋糕", ("蛋糕", "奶油蛋糕"), "个"),
    Product("TART", "葡式蛋挞", ("蛋挞",), "个"),
    Product("PUFF", "奶油泡芙", ("泡芙",), "个"),
    Product("CROISSANT", "黄油可颂", ("可颂", "牛角包"), "个"),
    Product("OOLONG", "铁观音 散装", ("铁观音",), "斤"),
    Product("JASMINE", "茉莉花茶 散装", ("茉莉花茶",), "斤"),
    Product("GREEN", "碧螺春 礼盒", ("碧螺春",), "盒"),
]


@pytest.fixture(scope="module")
def parser() -> OrderParser:
    return OrderParser(CATALOG)


# -- names typed with a homophone from pinyin input ---------------------------------------------------------------


def test_the_homophone_table_knows_the_common_characters() -> None:
    assert common("碧") and common("冠") and not common("\u9fa5")
    like = homophones("观碧")
    assert {"关", "官", "冠"} <= like["观"] and {"必", "壁"} <= like["碧"] and "观" not in like["观"]


@pytest.mark.parametrize(
    ("text", "sku", "qty"),
    [("铁冠音来2斤", "OOLONG", 2), ("碧罗春拿3盒", "GREEN", 3), ("两箱雪必", "SPRITE", 2), ("雪必来一箱", "SPRITE", 1)],
)
def test_a_name_typed_with_a_homophone_is_still_that_product(parser: OrderParser, text: str, sku: str, qty: int) -> None:
    u = understand(parser, text)
    assert (u.intent, u.lines) == ("order", [(sku, qty)])


def test_a_two_character_homophone_outside_an_orders_place_names_nothing(parser: OrderParser) -> None:
    # 可送 sounds like 可颂, but asks whether they deliver — no croissant is named
    assert read(parser, "明天可送吗") == ("delivery_question", [])
    assert read(parser, "雪必 好喝不")[1] == []


# -- negation, put off for one item; the customer's own stock is a reason, not an item --------------------------------


def test_an_item_put_off_for_now_leaves_the_rest_ordered(parser: OrderParser) -> None:
    assert read(parser, "白糖这回先不要 大米来一袋") == ("order", [("RICE", 1)])
    assert read(parser, "泡芙暂时不要 蛋挞八个") == ("order", [("TART", 8)])


def test_what_is_left_at_home_beside_a_dropped_item(parser: OrderParser) -> None:
    assert read(parser, "大米算了 家里还剩一袋", has_draft=True) == ("remove", [])
    assert read(parser, "可乐两箱 雪碧先不拿 上回的还没喝完") == ("order", [("COLA", 2)])
    assert read(parser, "蛋挞六个 泡芙今天不要 屋里还剩半盒") == ("order", [("TART", 6)])


def test_an_ambiguous_item_put_off_with_a_draft_is_a_removal(parser: OrderParser) -> None:
    assert read(parser, "水泥先不订了 别的照旧", has_draft=True) == ("remove", [])


# -- amounts weighed aloud, then settled; sizes switched after a slip ---------------------------------------------------


def test_the_amount_settled_on_last_is_the_order(parser: OrderParser) -> None:
    assert read(parser, "可乐先来三箱 我算算人头 四箱才够 那就四箱") == ("order", [("COLA", 4)])


def test_a_size_named_after_a_slip_switches_the_kind(parser: OrderParser) -> None:
    assert read(parser, "42.5的水泥10袋 哦不对是32.5的 10袋") == ("order", [("CEMENT-325", 10)])
    assert read(parser, "32.5水泥8袋 说错了 是42.5的") == ("order", [("CEMENT-425", 8)])
    assert read(parser, "8寸的 不对 6寸的奶油蛋糕一个") == ("order", [("CAKE-6", 1)])


def test_a_product_switched_after_a_slip_keeps_the_amount(parser: OrderParser) -> None:
    assert read(parser, "3箱可乐 不对不对 换成雪碧") == ("order", [("SPRITE", 3)])
    assert read(parser, "茉莉花茶1斤 等下 换成铁观音2斤") == ("order", [("OOLONG", 2)])


# -- with a draft: a line swapped for another kind or product -----------------------------------------------------------


def test_a_kind_named_after_a_change_word_swaps_the_drafts_line(parser: OrderParser) -> None:
    u = understand(parser, "蛋糕要换成8寸的", has_draft=True)
    assert u.intent == "change" and isinstance(u.result, Correction)
    assert (u.result.sku, u.result.qty, u.result.replaces) == ("CAKE-8", 0, ("CAKE-6",))


def test_not_this_but_that_product_swaps_the_drafts_line(parser: OrderParser) -> None:
    u = understand(parser, "不是可乐是雪碧", has_draft=True)
    assert u.intent == "change" and isinstance(u.result, Correction)
    assert (u.result.sku, u.result.qty, u.result.replaces) == ("SPRITE", 0, ("COLA",))
    swapped = understand(parser, "泡芙换成蛋挞 6个", has_draft=True)
    assert isinstance(swapped.result, Correction) and (swapped.result.sku, swapped.result.qty) == ("TART", 6)


def test_a_plain_amount_change_is_no_swap(parser: OrderParser) -> None:
    u = understand(parser, "可乐改成5箱", has_draft=True)
    assert isinstance(u.result, Correction) and (u.result.sku, u.result.qty, u.result.replaces) == ("COLA", 5, ())


# -- products named by a size, or by the pack their name has ----------------------------------------------------------


def test_a_size_only_one_product_has_names_it_with_a_common_word(parser: OrderParser) -> None:
    assert read(parser, "DN25的管子拿6根") == ("order", [("PIPE-25", 6)])
    assert read(parser, "8寸奶油的来一个") == ("order", [("CAKE-8", 1)])


def test_the_pack_a_name_has_said_before_it_is_the_kind(parser: OrderParser) -> None:
    assert read(parser, "12包那种方便面拿两箱") == ("order", [("NOODLE", 2)])
    assert read(parser, "泡面12包")[0] == "clarify"  # 12 packs of a product sold by the 箱: asked


# -- amounts shared, said many ways; list markers in brackets ---------------------------------------------------------


@pytest.mark.parametrize("text", ["蛋挞泡芙每种八个", "泡芙蛋挞 each 8个", "蛋挞也要泡芙也要 都是8个", "蛋挞和泡芙一样拿8个"])
def test_one_amount_for_every_product_of_the_list(parser: OrderParser, text: str) -> None:
    assert read(parser, text) == ("order", [("PUFF", 8), ("TART", 8)])


def test_two_sizes_of_one_name_each_with_its_own_size_share_an_amount(parser: OrderParser) -> None:
    assert read(parser, "42.5的水泥 32.5的水泥 两种都拉五袋") == ("order", [("CEMENT-325", 5), ("CEMENT-425", 5)])


def test_bracketed_list_markers_are_no_amounts(parser: OrderParser) -> None:
    assert read(parser, "【1】可乐 2箱【2】雪碧 1箱") == ("order", [("COLA", 2), ("SPRITE", 1)])
    assert read(parser, "（1）大米 3袋（2）白糖 2袋") == ("order", [("RICE", 3), ("SUGAR", 2)])


# -- yes first, then how or when; drafts withdrawn in other words --------------------------------------------------------


@pytest.mark.parametrize("text", ["行 就这么着 下午送过来", "嗯 按单子发", "对 没毛病 老地方", "确认 还是上次那个地址"])
def test_a_yes_followed_by_how_or_when_confirms(parser: OrderParser, text: str) -> None:
    assert read(parser, text, has_draft=True) == ("confirm", [])


@pytest.mark.parametrize("text", ["好的 我再想想", "嗯 不过先别发", "行 多少钱一共"])
def test_a_yes_taken_back_or_followed_by_a_question_is_no_confirmation(parser: OrderParser, text: str) -> None:
    assert read(parser, text, has_draft=True)[0] != "confirm"


@pytest.mark.parametrize("text", ["订单帮我删了吧", "cancel吧 谢谢", "下的单不作数了"])
def test_the_order_withdrawn_in_other_words_is_a_cancel(parser: OrderParser, text: str) -> None:
    assert read(parser, text, has_draft=True) == ("cancel", [])


def test_adding_with_tian_or_bu_is_an_addition(parser: OrderParser) -> None:
    assert read(parser, "可乐再添一箱", has_draft=True) == ("add", [("COLA", 1)])
    assert read(parser, "补六个蛋挞", has_draft=True) == ("add", [("TART", 6)])


# -- questions, complaints and small talk that carry amounts or order words ------------------------------------------------


def test_counts_in_a_unit_the_product_is_not_sold_by_are_asked(parser: OrderParser) -> None:
    assert read(parser, "白糖来300粒")[0] == "clarify"  # a classifier no product here is sold by: never 300 bags
    assert read(parser, "蛋挞两块")[0] == "clarify"  # 块 right after the product: pieces asked, not yuan
    assert read(parser, "白糖我算了下要3公斤")[0] == "clarify"  # 算了下 is no 算了


def test_a_price_with_duo_before_the_product_is_no_amount(parser: OrderParser) -> None:
    assert read(parser, "三十多一袋的大米来两袋") == ("order", [("RICE", 2)])


@pytest.mark.parametrize(
    ("text", "intent"),
    [
        ("仓库能凑齐40袋大米不", "stock_question"),
        ("店里现货够不够20袋水泥", "stock_question"),
        ("前天那三箱可乐今天能到吧", "order_status"),
        ("等了一上午了 什么时候能送到", "order_status"),
        ("上周订的水泥还没拉来 啥情况", "order_status"),
        ("订的是雪碧 送来的全是可乐", "complaint"),
        ("送货的师傅太横了 往门口一扔就走", "complaint"),
        ("大米拿20袋 单价能降点吗", "discount_request"),
        ("一袋水泥能砌多少砖", "price_question"),
        ("铁观音放了几年了", "price_question"),
        ("满多少钱能送上门", "delivery_question"),
        ("店在哪 我过去拿", "delivery_question"),
        ("谢谢啊 上次帮我搬上楼", "chitchat"),
        ("我再想想吧 有点贵", "hedge"),
    ],
)
def test_questions_and_talk_that_carry_order_words(parser: OrderParser, text: str, intent: str) -> None:
    assert read(parser, text) == (intent, [])


def test_a_breakfast_shop_is_no_past_order(parser: OrderParser) -> None:
    # 卖早点的: 点的 here is no "ordered"; the order stands
    assert read(parser, "我是卖早点的 可乐给我送两箱过来") == ("order", [("COLA", 2)])


def test_the_fee_waived_for_a_big_order_is_a_discount(parser: OrderParser) -> None:
    assert read(parser, "这么多货 运费就别收了吧", has_draft=True) == ("discount_request", [])


# -- what is left from before, lists in more formats, amounts settled after, counts of other things ----------------------


def test_what_is_left_from_before_is_a_reason_not_a_question(parser: OrderParser) -> None:
    assert read(parser, "可乐三箱 雪碧这回不拿 上次的还剩好多") == ("order", [("COLA", 3)])
    assert read(parser, "大米两袋 白糖先不要 家里柜子里还有") == ("order", [("RICE", 2)])


@pytest.mark.parametrize(
    ("text", "lines"),
    [
        ("#1 可乐 2箱 #2 雪碧 1箱", [("COLA", 2), ("SPRITE", 1)]),
        ("a) 大米 2袋 b) 白糖 1袋", [("RICE", 2), ("SUGAR", 1)]),
        ("可乐、雪碧分别两箱", [("COLA", 2), ("SPRITE", 2)]),
        ("大米/白糖 每样两袋", [("RICE", 2), ("SUGAR", 2)]),
        ("大米10袋 白糖5袋 一车拉过来", [("RICE", 10), ("SUGAR", 5)]),
        ("可乐两箱 包装好看一点", [("COLA", 2)]),
    ],
)
def test_lists_in_more_formats(parser: OrderParser, text: str, lines: list[tuple[str, int]]) -> None:
    assert read(parser, text) == ("order", sorted(lines))


def test_an_amount_settled_after_it_is_said_or_counting_something_else(parser: OrderParser) -> None:
    assert read(parser, "大米5袋……3袋就够了") == ("order", [("RICE", 3)])
    assert read(parser, "蛋挞30个 两个部门 得40个") == ("order", [("TART", 40)])
    assert read(parser, "8寸蛋糕一个 上面写生日快乐18") == ("order", [("CAKE-8", 1)])
    assert read(parser, "一袋30块那个大米 来两袋") == ("order", [("RICE", 2)])
    assert read(parser, "可颂仨打包") == ("order", [("CROISSANT", 3)])


def test_more_of_an_item_left_to_the_shop_is_asked(parser: OrderParser) -> None:
    assert read(parser, "泡芙多拿点")[0] == "clarify"


def test_slips_owned_with_an_interjection_or_an_apology(parser: OrderParser) -> None:
    assert read(parser, "要两箱可乐 啊不是 雪碧") == ("order", [("SPRITE", 2)])
    assert read(parser, "蛋挞要六个 不好意思 是八个") == ("order", [("TART", 8)])


@pytest.mark.parametrize(
    ("text", "lines"),
    [
        ("要五个蛋挞不要泡芙再要两个可颂", [("CROISSANT", 2), ("TART", 5)]),
        ("大米两袋白糖这次先不拿可乐一箱", [("COLA", 1), ("RICE", 2)]),
    ],
)
def test_run_on_lists_with_an_item_said_not(parser: OrderParser, text: str, lines: list[tuple[str, int]]) -> None:
    assert read(parser, text) == ("order", sorted(lines))


# -- with a draft: withdrawn, confirmed and swapped in other words -------------------------------------------------------


@pytest.mark.parametrize("text", ["订的那些统统不要了", "这单就别弄了", "全部撤回吧"])
def test_everything_withdrawn_is_a_cancel(parser: OrderParser, text: str) -> None:
    assert read(parser, text, has_draft=True) == ("cancel", [])


@pytest.mark.parametrize("text", ["东西就这些了 尽快送", "核对过了 发货吧", "OK的 就这几样"])
def test_the_list_said_complete_confirms(parser: OrderParser, text: str) -> None:
    assert read(parser, text, has_draft=True) == ("confirm", [])


@pytest.mark.parametrize(
    ("text", "sku", "replaced"),
    [
        ("水泥改一下 42.5的换成32.5的", "CEMENT-325", ("CEMENT-425",)),
        ("蛋糕说错了 不是6寸 应该是8寸", "CAKE-8", ("CAKE-6",)),
        ("水泥换成32.5的 42.5的不要了", "CEMENT-325", ("CEMENT-425",)),
    ],
)
def test_more_ways_to_swap_a_kind(parser: OrderParser, text: str, sku: str, replaced: tuple[str, ...]) -> None:
    u = understand(parser, text, has_draft=True)
    assert u.intent == "change" and isinstance(u.result, Correction)
    assert (u.result.sku, u.result.replaces) == (sku, replaced)


@pytest.mark.parametrize(
    ("text", "intent"),
    [
        ("我订的是雪碧 怎么给我可乐", "complaint"),
        ("说好的8寸送来的明显是6寸", "complaint"),
        ("送货的师傅还有多久到", "order_status"),
        ("两箱可乐的话 搭两个蛋挞送我呗", "discount_request"),
        ("今年生意不好做啊", "chitchat"),
    ],
)
def test_more_questions_and_talk(parser: OrderParser, text: str, intent: str) -> None:
    assert read(parser, text) == (intent, [])


# -- written Cantonese, read as the Mandarin it says ----------------------------------------------------------------


def test_written_cantonese_is_read_as_mandarin() -> None:
    from bots.dialogue.dialect import from_cantonese

    assert from_cantonese("有冇可乐卖呀") == "有没有可乐卖呀"
    assert from_cantonese("十个蛋挞几多钱") == "十个蛋挞多少钱"
    assert from_cantonese("唔系两箱系三箱") == "不是两箱是三箱"
    assert from_cantonese("关系好") == "关系好"  # no Cantonese in it: as it was


@pytest.mark.parametrize(
    ("text", "intent"),
    [
        ("有冇雪碧卖呀", "stock_question"),
        ("十个蛋挞要俾几多", "price_question"),
        ("两箱可乐有冇平啲", "discount_request"),
        ("头先落咗单嘅大米发咗未", "order_status"),
        ("铁观音系唔系今年嘅", "price_question"),
    ],
)
def test_cantonese_questions_carry_no_order(parser: OrderParser, text: str, intent: str) -> None:
    assert read(parser, text) == (intent, [])


def test_cantonese_orders_and_changes(parser: OrderParser) -> None:
    assert read(parser, "要两箱可乐 同埋三袋大米 唔该") == ("order", [("COLA", 2), ("RICE", 3)])
    u = understand(parser, "大米写错了 唔系两袋系三袋", has_draft=True)
    assert u.intent == "change" and isinstance(u.result, Correction) and (u.result.sku, u.result.qty) == ("RICE", 3)


# -- with a draft: the whole order withdrawn while an item is named; the shop's own slip; sizes alone ---------------------


def test_the_order_withdrawn_while_naming_an_item_is_a_cancel(parser: OrderParser) -> None:
    assert read(parser, "蛋糕订单取消吧 不办了", has_draft=True) == ("cancel", [])
    assert read(parser, "算了 一个都不要了", has_draft=True) == ("cancel", [])


def test_the_amount_the_shop_wrote_down_wrong(parser: OrderParser) -> None:
    u = understand(parser, "大米我说的是5袋 你记成3袋了", has_draft=True)
    assert u.intent == "change" and isinstance(u.result, Correction) and (u.result.sku, u.result.qty) == ("RICE", 5)


def test_sizes_alone_swap_the_drafts_item(parser: OrderParser) -> None:
    u = understand(parser, "不是六寸 是八寸", has_draft=True)
    assert u.intent == "change" and isinstance(u.result, Correction) and u.result.sku == "CAKE-8"
    assert "CAKE-6" in u.result.replaces


def test_a_kind_alone_with_an_amount_in_its_unit_is_an_order(parser: OrderParser) -> None:
    assert read(parser, "32.5的来10袋 送到工地") == ("order", [("CEMENT-325", 10)])


def test_a_pickup_time_is_no_hedge(parser: OrderParser) -> None:
    assert read(parser, "蛋挞十个泡芙六个到时候大概九点来拿") == ("order", [("PUFF", 6), ("TART", 10)])
