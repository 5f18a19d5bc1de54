"""General rules of the chat understanding (issue 14, fourth round): classes of phrasing found when the third
held-out set was folded into tune, each tested with wording of its own — never the corpus's messages.

Plain values in, readings out: no DB, no network.
"""

from __future__ import annotations

import pytest

from bots.dialogue.intents import Correction, Product
from bots.dialogue.parser import OrderParser
from bots.dialogue.understanding import understand
from tests.bots.reading import read

CATALOG = [
    Product("COLA", "可口可乐 500ml×12", ("可乐",), "箱"),
    Product("SPRITE", "雪碧 500ml×12", ("雪碧",), "箱"),
    Product("WATER-S", "矿泉水 550ml×24", ("矿泉水", "小瓶水"), "箱"),
    Product("MILK", "纯牛奶 250ml×12", ("纯奶", "牛奶"), "箱"),
    Product("RICE", "东北大米 5kg", ("大米",), "袋"),
    Product("SUGAR", "白砂糖 1kg", ("白糖", "白砂糖"), "袋"),
    Product("CEMENT-425", "水泥 42.5", ("水泥",), "袋"),
    Product("CEMENT-325", "水泥 32.5", ("水泥",), "袋"),
    Product("BOARD", "石膏板", ("石膏板",), "张"),
    Product("WALL-TILE", "墙砖 300×600", ("墙砖",), "片"),
    Product("FLOOR-TILE", "地砖 800×800", ("地砖",), "片"),
    Product("TART", "葡式蛋挞", ("蛋挞",), "个"),
    Product("PUFF", "奶油泡芙", ("泡芙",), "个"),
    Product("OOLONG", "铁观音 散装", ("铁观音",), "斤"),
    Product("JASMINE", "茉莉花茶 散装", ("茉莉花茶",), "斤"),
]


@pytest.fixture(scope="module")
def parser() -> OrderParser:
    return OrderParser(CATALOG)


# -- one amount shared: only by products joined as one list ---------------------------------------------------


@pytest.mark.parametrize(
    ("text", "lines"),
    [
        ("麻烦三箱矿泉水然后牛奶也来一箱", [("MILK", 1), ("WATER-S", 3)]),
        ("可乐两箱 接着雪碧也要一箱", [("COLA", 2), ("SPRITE", 1)]),
    ],
)
def test_also_gives_its_amount_only_to_the_product_beside_it(parser: OrderParser, text: str, lines: list[tuple[str, int]]) -> None:
    assert read(parser, text) == ("order", sorted(lines))


@pytest.mark.parametrize(
    ("text", "lines"),
    [("泡芙同蛋挞同样8个", [("PUFF", 8), ("TART", 8)]), ("42.5的水泥和32.5的水泥都来10袋", [("CEMENT-325", 10), ("CEMENT-425", 10)])],
)
def test_products_of_one_list_share_the_amount(parser: OrderParser, text: str, lines: list[tuple[str, int]]) -> None:
    assert read(parser, text) == ("order", sorted(lines))


# -- with a draft: an item dropped, whatever verb is negated or reason given --------------------------------------


@pytest.mark.parametrize(
    ("text", "sku"),
    [("白糖先别拿", "SUGAR"), ("把茉莉花茶去掉吧", "JASMINE"), ("铁观音这回不称了", "OOLONG"), ("泡芙不要了 太甜", "PUFF")],
)
def test_a_dropped_item_of_the_draft_is_a_removal(parser: OrderParser, text: str, sku: str) -> None:
    u = understand(parser, text, has_draft=True)
    assert u.intent == "remove" and u.result.sku == sku and u.result.also == ()  # type: ignore[attr-defined]


def test_only_the_clause_that_drops_an_item_removes_it(parser: OrderParser) -> None:
    u = understand(parser, "地砖这次先不进 墙砖照常", has_draft=True)
    assert u.intent == "remove" and (u.result.sku, u.result.also) == ("FLOOR-TILE", ())  # type: ignore[attr-defined]


@pytest.mark.parametrize("text", ["这些全都别送了", "那这单就撤了吧"])
def test_the_whole_draft_withdrawn_is_a_cancel(parser: OrderParser, text: str) -> None:
    assert read(parser, text, has_draft=True) == ("cancel", [])
    assert read(parser, text)[0] != "order"


# -- with a draft: a slip owned anywhere, or the amount said to need adjusting, is a change --------------------------


@pytest.mark.parametrize(
    ("text", "sku", "qty"),
    [("可乐刚才打错了 应该要6箱", "COLA", 6), ("石膏板要30张 前面算错了", "BOARD", 30), ("白糖的数量改一下 3袋", "SUGAR", 3)],
)
def test_a_slip_owned_with_a_draft_changes_the_line(parser: OrderParser, text: str, sku: str, qty: int) -> None:
    u = understand(parser, text, has_draft=True)
    assert u.intent == "change" and isinstance(u.result, Correction) and (u.result.sku, u.result.qty) == (sku, qty)


def test_a_changed_amount_of_an_ambiguous_name_leaves_the_draft_to_settle_which(parser: OrderParser) -> None:
    u = understand(parser, "水泥数量报错了 要60袋", has_draft=True)
    assert u.intent == "change" and isinstance(u.result, Correction)
    assert (u.result.sku, u.result.qty, set(u.result.candidates)) == (None, 60, {"CEMENT-425", "CEMENT-325"})


def test_a_slip_owned_without_a_draft_orders_the_last_amount(parser: OrderParser) -> None:
    assert read(parser, "墙砖80片 手滑了 90片") == ("order", [("WALL-TILE", 90)])


# -- add cues: 补 / 也得 / 另外 with a verb of fetching --------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "lines"),
    [
        ("泡芙再补4个", [("PUFF", 4)]),
        ("白糖也得两袋", [("SUGAR", 2)]),
        ("另外帮忙捎一箱牛奶", [("MILK", 1)]),
        ("另外称两斤茉莉花茶", [("JASMINE", 2)]),
    ],
)
def test_more_for_the_draft(parser: OrderParser, text: str, lines: list[tuple[str, int]]) -> None:
    assert read(parser, text, has_draft=True) == ("add", lines)


@pytest.mark.parametrize("text", ["蛋挞8个 后天一早来拿", "明天下午 泡芙6个 自取", "蛋挞8个 十点左右过来取"])
def test_when_and_how_it_is_fetched_is_no_product(parser: OrderParser, text: str) -> None:
    assert read(parser, text)[0] == "order"


# -- yes to the draft with how to send it --------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["确认 发京东", "行 就按这样弄", "没了 尽快发货"])
def test_a_yes_with_how_to_send_confirms_the_draft(parser: OrderParser, text: str) -> None:
    assert read(parser, text, has_draft=True) == ("confirm", [])


# -- questions placed: the driver on the way, fetching it oneself, free delivery, 包邮 after a vague sum ---------------


@pytest.mark.parametrize(
    ("text", "intent"),
    [
        ("送货的师傅还有多久能到", "order_status"),
        ("我骑车过来拿货可以吗", "delivery_question"),
        ("消费满多少能免费送货", "delivery_question"),
        ("满一两百包邮吗", "delivery_question"),
        ("铁观音大概能冲几泡", "price_question"),
    ],
)
def test_questions_placed(parser: OrderParser, text: str, intent: str) -> None:
    assert read(parser, text)[0] == intent


# -- bargaining: a tier price, a promotion, a lower sum, a gift asked as a favour -------------------------------------


@pytest.mark.parametrize("text", ["单位采购有大客户价不", "有没有买二送一", "860 给个800呗", "送我两袋白糖呗", "拿这么多 送两袋白糖呗"])
def test_more_discount_requests(parser: OrderParser, text: str) -> None:
    assert read(parser, text)[0] == "discount_request"


# -- complaints, forwarded texts, placeholders ----------------------------------------------------------------------


def test_reproaching_the_shop_is_a_complaint(parser: OrderParser) -> None:
    assert read(parser, "一上午了都没送来 还想不想做了")[0] == "complaint"


@pytest.mark.parametrize("text", ["【京东物流】您的订单已出库，运单号JD0012345", "[小程序]", "[聊天记录]"])
def test_forwarded_notices_and_placeholders_are_unknown(parser: OrderParser, text: str) -> None:
    assert read(parser, text) == ("unknown", [])


def test_more_of_an_item_with_no_amount_is_asked(parser: OrderParser) -> None:
    u = understand(parser, "蛋挞多准备些")
    assert u.intent == "clarify" and u.result.reason == "missing_quantity"  # type: ignore[attr-defined]


# -- a discount asked inside an if-clause is still asked; an extra declined asks nothing; 买多少 is no "buying a lot" --


def test_a_discount_asked_under_a_condition_is_the_question(parser: OrderParser) -> None:
    assert read(parser, "假如拿50袋白糖能便宜多少") == ("discount_request", [])
    assert read(parser, "要是便宜的话可能要10箱可乐")[0] == "hedge"  # the condition of a hedge asks nothing


def test_an_extra_declined_leaves_the_order(parser: OrderParser) -> None:
    assert read(parser, "铁观音两斤，礼品袋就不用了") == ("order", [("OOLONG", 2)])


def test_how_much_to_buy_for_free_delivery_asks_the_rule(parser: OrderParser) -> None:
    assert read(parser, "要买多少才能免费送货")[0] == "delivery_question"


# -- a bare unit after a fetching verb is one; the customer's own supply is no item --------------------------------


def test_a_bare_unit_after_a_fetching_verb_is_one(parser: OrderParser) -> None:
    assert read(parser, "带箱雪碧 再捎箱牛奶") == ("order", [("MILK", 1), ("SPRITE", 1)])


def test_what_the_customer_has_already_is_not_ordered(parser: OrderParser) -> None:
    assert read(parser, "水泥我们自己有 石膏板来12张") == ("order", [("BOARD", 12)])


def test_an_item_dropped_beside_someone_saying_there_is_some_left(parser: OrderParser) -> None:
    u = understand(parser, "白糖先别拿了 我老婆说家里还有", has_draft=True)
    assert u.intent == "remove" and u.result.sku == "SUGAR"  # type: ignore[attr-defined]
