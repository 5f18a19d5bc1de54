"""General rules of the chat understanding (issue 14, sixth round): classes of phrasing found when the fifth
held-out set and four new blind-written tune sets (a plain mix, long chatty messages, terse and pinyin messages,
messages beside a draft) were folded into tune, each tested with wording of its own — never the corpus's messages.

Plain values in, readings out: no DB, no network.
"""

from __future__ import annotations

import pytest

from bots.dialogue.intents import Correction, Product
from bots.dialogue.parser import OrderParser
from bots.dialogue.pinyin_input import dictionary, from_pinyin, spellings
from bots.dialogue.understanding import understand
from tests.bots.reading import read

CATALOG = [
    Product("COLA", "可口可乐 500ml×12", ("可乐",), "箱"),
    Product("SPRITE", "雪碧 500ml×12", ("雪碧",), "箱"),
    Product("BEER-QD", "青岛啤酒 500ml×12", ("青岛", "啤酒", "青岛啤酒"), "箱"),
    Product("BEER-XH", "雪花啤酒 500ml×12", ("雪花", "啤酒", "雪花啤酒"), "箱"),
    Product("WATER-S", "怡宝纯净水 555ml×24", ("纯净水", "怡宝", "小瓶水"), "箱"),
    Product("WATER-L", "怡宝纯净水 1.555L×12", ("纯净水", "怡宝", "大瓶水"), "箱"),
    Product("RICE", "东北大米 5kg", ("大米",), "袋"),
    Product("FLOUR", "富强面粉 5kg", ("面粉",), "袋"),
    Product("OIL-A", "鲁花花生油 5L", ("鲁花", "花生油", "油"), "桶"),
    Product("OIL-B", "金龙鱼调和油 5L", ("金龙鱼", "调和油", "油"), "桶"),
    Product("TISSUE", "清风抽纸 10包", ("抽纸", "纸巾"), "提"),
    Product("EGG", "土鸡蛋 30枚", ("鸡蛋",), "盒"),
    Product("DUCK-EGG", "高邮咸鸭蛋", ("咸鸭蛋",), "个"),
    Product("CEMENT-425", "普通水泥 P.O 42.5", ("水泥", "42.5水泥"), "袋"),
    Product("CEMENT-325", "复合水泥 P.C 32.5", ("水泥", "32.5水泥"), "袋"),
    Product("PAINT", "立邦乳胶漆 18L", ("乳胶漆",), "桶"),
    Product("SEALANT", "JS防水涂料 20kg", ("防水涂料", "防水"), "桶"),
    Product("CAKE-8", "8寸奶油蛋糕", ("蛋糕", "奶油蛋糕"), "个"),
    Product("CAKE-10", "10寸奶油蛋糕", ("蛋糕", "奶油蛋糕"), "个"),
    Product("TART", "葡式蛋挞", ("蛋挞",), "个"),
    Product("PUFF", "奶油泡芙", ("泡芙",), "个"),
    Product("TEA-TIN", "明前龙井 250g 罐装", ("龙井", "罐装龙井"), "罐"),
    Product("PUER-SHU", "云南熟普 357g 茶饼", ("熟普", "茶饼"), "饼"),
    Product("PUER-SHENG", "云南生普 357g 茶饼", ("生普", "茶饼"), "饼"),
    Product("CUP", "青瓷品茗杯", ("品茗杯", "茶杯"), "个"),
    Product("GREEN", "碧螺春 礼盒", ("碧螺春",), "盒"),
    Product("TILE", "地砖 800×800", ("地砖", "800地砖"), "片"),
]


@pytest.fixture(scope="module")
def parser() -> OrderParser:
    return OrderParser(CATALOG)


# -- shared amounts ---------------------------------------------------------------------------------------------


def test_kinds_summed_up_under_their_common_name_share_the_amount(parser: OrderParser) -> None:
    assert read(parser, "青岛雪花两种啤酒各来3箱") == ("order", [("BEER-QD", 3), ("BEER-XH", 3)])
    assert read(parser, "鲁花和金龙鱼 这两种油都拿一桶") == ("order", [("OIL-A", 1), ("OIL-B", 1)])


def test_two_sizes_side_by_side_share_the_name_and_the_amount(parser: OrderParser) -> None:
    assert read(parser, "8寸10寸的奶油蛋糕各要一个") == ("order", [("CAKE-10", 1), ("CAKE-8", 1)])
    assert read(parser, "42.5 32.5的水泥各来15袋") == ("order", [("CEMENT-325", 15), ("CEMENT-425", 15)])
    assert read(parser, "水泥32.5和42.5 都要8袋") == ("order", [("CEMENT-325", 8), ("CEMENT-425", 8)])


# -- corrections and negation inside one message -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "lines"),
    [
        ("雪花 哦不 青岛 要5箱", [("BEER-QD", 5)]),
        ("大米 啊不是 面粉 来3袋", [("FLOUR", 3)]),
        ("蛋挞不要 换成泡芙6个", [("PUFF", 6)]),
        ("可乐按4箱来，之前说的3箱作废", [("COLA", 4)]),
        ("面粉不打算要了 大米来两袋", [("RICE", 2)]),
        ("雪碧要4箱 周末聚会用，不对，6箱", [("SPRITE", 6)]),
        ("8寸蛋糕一个 哦改10寸的", [("CAKE-10", 1)]),
    ],
)
def test_what_is_taken_back_in_the_message_is_not_ordered(parser: OrderParser, text: str, lines: list[tuple[str, int]]) -> None:
    assert read(parser, text) == ("order", lines)


@pytest.mark.parametrize(
    ("text", "lines"),
    [
        ("大米两袋送到三楼 莫搞错了哈，面粉家里还有", [("RICE", 2)]),  # a slip warned against takes nothing back
        ("可乐雪碧都来两箱 同事一共八个", [("COLA", 2), ("SPRITE", 2)]),  # people counted are no amount
        ("来3箱青岛 别拿雪花 那几个兄弟一喝雪花就头疼", [("BEER-QD", 3)]),  # the unwanted one named again
        ("面粉要两袋 大米这次不要了 上回买的还没拆", [("FLOUR", 2)]),  # what is left from before is a reason
        ("品茗杯要俩 一个自己泡茶一个给我爸", [("CUP", 2)]),  # how the amount is shared out
        ("可乐来两箱 跟其他的一起送", [("COLA", 2)]),  # with the rest of the order
        ("雪碧三箱 周末同学聚会", [("SPRITE", 3)]),  # 同学 is no joiner
        ("生普来两饼 放个几年再喝", [("PUER-SHENG", 2)]),  # 几年 after 放个 asks nothing
    ],
)
def test_what_is_said_around_the_order_adds_nothing_to_it(parser: OrderParser, text: str, lines: list[tuple[str, int]]) -> None:
    assert read(parser, text) == ("order", lines)


def test_the_amount_settled_after_weighing_keeps_the_kind_named_first(parser: OrderParser) -> None:
    assert read(parser, "32.5的水泥先报了10袋 算了算不够 得要14袋") == ("order", [("CEMENT-325", 14)])


def test_a_not_said_of_the_delivery_drops_no_item(parser: OrderParser) -> None:
    assert read(parser, "大米两袋面粉一袋明天上午送就行不着急") == ("order", [("FLOUR", 1), ("RICE", 2)])
    assert read(parser, "大米两袋 面粉不着急") == ("order", [("RICE", 2)])


def test_a_reason_after_the_item_reports_no_complaint(parser: OrderParser) -> None:
    assert read(parser, "鸡蛋来两盒就行 多了吃不完放坏了") == ("order", [("EGG", 2)])
    assert read(parser, "收到的鸡蛋 两盒都碎了")[0] == "complaint"


# -- with a draft: more, fewer, all or nothing ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "lines"),
    [
        ("纸巾两提也给我捎上", [("TISSUE", 2)]),
        ("鸡蛋还得要一盒", [("EGG", 1)]),
        ("再拿5袋42.5的", [("CEMENT-425", 5)]),
    ],
)
def test_more_said_after_the_item_or_by_size_alone_adds(parser: OrderParser, text: str, lines: list[tuple[str, int]]) -> None:
    assert read(parser, text, has_draft=True) == ("add", lines)


def test_an_addition_before_the_yes_is_still_the_addition(parser: OrderParser) -> None:
    assert read(parser, "还要两箱可乐 加上再确认", has_draft=True, pending="confirm") == ("add", [("COLA", 2)])


@pytest.mark.parametrize("text", ["可乐雪碧那单 全都不要了", "所有的都撤回吧", "这单不做了"])
def test_the_order_itself_pointed_at_is_cancelled(parser: OrderParser, text: str) -> None:
    assert read(parser, text, has_draft=True) == ("cancel", [])


@pytest.mark.parametrize("text", ["鸡蛋别给我带了", "纸巾那项去了吧", "泡芙那项撤下来", "乳胶漆先别算进去"])
def test_one_item_struck_off_the_draft_is_removed(parser: OrderParser, text: str) -> None:
    assert read(parser, text, has_draft=True) == ("remove", [])


def test_the_amount_said_too_small_is_changed_to_the_one_after_it(parser: OrderParser) -> None:
    u = understand(parser, "刚才报的大米5袋少了，要8", has_draft=True)
    assert u.intent == "change" and isinstance(u.result, Correction) and (u.result.sku, u.result.qty) == ("RICE", 8)


@pytest.mark.parametrize(
    "text",
    ["就这样吧 没什么要加的了", "好 下单吧 钱我等下转你", "就这几样 其他的不要了 帮我下单", "嗯嗯 没啥要改的", "都对 按这个送"],
)
def test_a_yes_with_how_to_pay_or_hand_over_confirms_the_draft(parser: OrderParser, text: str) -> None:
    assert read(parser, text, has_draft=True) == ("confirm", [])


def test_a_yes_that_restates_the_unit_answers_the_unit_question(parser: OrderParser) -> None:
    assert read(parser, "对的 我说的瓶就是箱", pending="unit") == ("confirm", [])
    assert read(parser, "不对哦", pending="unit")[0] == "clarify"


def test_leaving_the_choice_to_the_shop_is_asked_again(parser: OrderParser) -> None:
    assert read(parser, "哪种好卖就拿哪种", pending="product") == ("clarify", [])


# -- questions, complaints and small talk --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "intent"),
    [
        ("前天订的面粉到现在也没见送来", "order_status"),
        ("刚下了单 你们收到单了没", "order_status"),
        ("泡芙出炉了没 我那单的", "order_status"),
        ("纸巾一提是10包吧", "price_question"),
        ("一盒鸡蛋几个", "price_question"),
        ("乳胶漆一桶刷得了多少平", "price_question"),
        ("现在下单后天能到货不", "delivery_question"),
        ("可乐还有10箱木", "stock_question"),
        ("今年的新米到了没", "stock_question"),
        ("这趟拉了十几车 运费就别算了吧", "discount_request"),
        ("满多少能减啊", "discount_request"),
        ("天太热了 都不想出门", "chitchat"),
        ("送货的跟我吵起来了", "complaint"),
        ('{"type":"text"}', "unknown"),
    ],
)
def test_a_question_complaint_or_small_talk_is_read_as_such(parser: OrderParser, text: str, intent: str) -> None:
    assert read(parser, text) == (intent, [])


# -- numbers that are no amounts, names that are no products -------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "lines"),
    [
        ("电话13900001111 要两袋大米", [("RICE", 2)]),
        ("送到建设路12号 来一箱可乐", [("COLA", 1)]),
        ("纯净水 24瓶一箱那种 来3箱", [("WATER-S", 3)]),
        ("小瓶怡宝来4箱", [("WATER-S", 4)]),
        ("357克的熟茶饼要3饼", [("PUER-SHU", 3)]),
        ("咸鸭蛋来十个 要流油的", [("DUCK-EGG", 10)]),
        ("可乐两箱 打电话叫人送一下", [("COLA", 2)]),
        ("品茗杯来俩 装个茶台", [("CUP", 2)]),
        ("仨月进一次货 这次面粉要十袋", [("FLOUR", 10)]),
        ("来3桶防水图料", [("SEALANT", 3)]),
    ],
)
def test_numbers_and_words_that_are_not_the_order_leave_it_alone(parser: OrderParser, text: str, lines: list[tuple[str, int]]) -> None:
    assert read(parser, text) == ("order", lines)


def test_a_dozen_of_a_tin_is_asked() -> None:
    assert read(OrderParser(CATALOG), "罐装龙井要半打") == ("clarify", [])


@pytest.mark.parametrize(
    ("text", "lines"),
    [
        ("我是三号楼上回订过水的那个 再送两箱可乐", [("COLA", 2)]),
        ("能帮我拿三袋面粉过来不", [("FLOUR", 3)]),
        ("可乐三箱下午送过来 孩子等着喝呢", [("COLA", 3)]),
        ("要两袋大米然后再要一桶金龙鱼", [("OIL-B", 1), ("RICE", 2)]),
    ],
)
def test_a_polite_or_run_on_request_is_an_order(parser: OrderParser, text: str, lines: list[tuple[str, int]]) -> None:
    assert read(parser, text) == ("order", lines)


def test_asking_whether_they_deliver_somewhere_is_no_request(parser: OrderParser) -> None:
    assert read(parser, "两袋大米明天能给我送到郊区那边吗") == ("delivery_question", [])


# -- regional writing, capacity, waiting, the wrong kind -----------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "has_draft", "pending", "intent", "lines"),
    [
        ("鸡蛋覅了", True, None, "remove", []),  # Shanghai 覅: not wanted
        ("可乐一箱 雪碧莫要 大米拿两袋", False, None, "order", [("COLA", 1), ("RICE", 2)]),  # Sichuan 莫要
        ("就噉啦", True, None, "confirm", []),  # Cantonese: that's it
        ("好额 就搿能", True, "confirm", "confirm", []),  # Shanghai: yes, like that
        ("中，就恁弄吧", True, "confirm", "confirm", []),  # Henan 中: fine
        ("早上落嘅单出咗车未", False, None, "order_status", []),  # …未: yet?
        ("送去城西嘅话要几耐", False, None, "delivery_question", []),  # 几耐: how long
        ("订单作罢", True, None, "cancel", []),
        ("泡芙多烤5个", True, None, "add", [("PUFF", 5)]),
        ("明天还能做出来2个10寸的吗", False, None, "stock_question", []),  # what the shop can make
        ("42.5水泥今天能出50袋吗", False, None, "stock_question", []),
        ("水泥几点能到 工人都等着呢", False, None, "order_status", []),  # waiting for an order placed
        ("订的8寸给我装成10寸了", False, None, "complaint", []),
        ("说好的42.5给我拉的32.5", False, None, "complaint", []),
        ("说好9点送的 现在还没来", False, None, "order_status", []),  # lateness alone is no complaint
        ("隔壁店青岛比你便宜5块 能一样吗", False, None, "discount_request", []),
        ("运费那30你们出吧", False, None, "discount_request", []),
        ("看业主怎么说吧", False, None, "hedge", []),
        ("送到了打我电话 可乐两箱", False, None, "order", [("COLA", 2)]),
        ("中午给我送：\n大米2袋\n鸡蛋1盒\n中不？", False, None, "order", [("EGG", 1), ("RICE", 2)]),
    ],
)
def test_regional_words_and_the_shop_s_side_are_read_as_meant(
    parser: OrderParser, text: str, has_draft: bool, pending: str | None, intent: str, lines: list[tuple[str, int]]
) -> None:
    assert read(parser, text, has_draft=has_draft, pending=pending) == (intent, lines)


@pytest.mark.parametrize(
    ("text", "lines"),
    [
        ("来一盒碧螺春 等下 换熟普 一饼", [("PUER-SHU", 1)]),  # 等下 before a switch takes the first back
        ("先来4桶防水 哦不是防水 是乳胶漆 4桶", [("PAINT", 4)]),  # the product after 是 is meant
        ("花生油一桶金龙鱼莫要大米拿两袋", [("OIL-A", 1), ("RICE", 2)]),  # a run-on "not" scoped to one product
        ("可乐3箱不要雪碧再带一提纸巾", [("COLA", 3), ("TISSUE", 1)]),
        ("要20袋42.5的水泥 复合水泥就不要了", [("CEMENT-425", 20)]),
    ],
)
def test_a_retraction_or_a_not_in_a_run_on_keeps_every_item_meant(parser: OrderParser, text: str, lines: list[tuple[str, int]]) -> None:
    assert read(parser, text) == ("order", lines)


@pytest.mark.parametrize(
    ("text", "intent", "lines"),
    [
        ("泡芙今天算了 家里还有一个没吃完 蛋挞来6个", "order", [("TART", 6)]),  # 算了 after a product lets it go
        ("不是纯净水哈 可乐3箱", "order", [("COLA", 3)]),  # 不是X opening: not that product
        ("品茗杯要一打 配那个茶饼用", "order", [("CUP", 12)]),  # what the cups go with
        ("8寸蛋糕一个 蛋糕上写生日快乐", "order", [("CAKE-8", 1)]),  # where the words go
        ("蛋挞两打 帮忙打包成三份", "order", [("TART", 24)]),  # how to pack it
        ("大米3袋，哦记岔了，5袋", "order", [("RICE", 5)]),  # 记岔: said wrong
        ("青岛、雪花各来五箱 两个牌子都要", "order", [("BEER-QD", 5), ("BEER-XH", 5)]),  # brands counted, no amount
        ("等家里商量下再定几寸的", "hedge", []),  # the size put off
        ("8寸的多少钱 我比较一下再定", "price_question", []),  # a price asked beside the put-off
    ],
)
def test_what_a_product_goes_with_and_what_is_put_off_are_read_as_meant(
    parser: OrderParser, text: str, intent: str, lines: list[tuple[str, int]]
) -> None:
    assert read(parser, text) == (intent, lines)


@pytest.mark.parametrize(
    ("text", "has_draft", "intent", "lines"),
    [
        ("大米来个百把袋", False, "clarify", []),  # a vague amount, and 来个 before it is no "one"
        ("可乐拉个十几二十箱", False, "clarify", []),
        ("8寸的大概能分多少块", False, "price_question", []),  # 大概 before a question word hedges nothing
        ("同城配送一般要多久", False, "delivery_question", []),  # 送一般 is no gift
        ("雪碧3箱今天送，可乐那个下周再看", False, "order", [("SPRITE", 3)]),  # 再看 puts the cola off
        ("蛋挞泡芙一起买 能给个打包价吗", False, "discount_request", []),
        ("256的 给个250得了", True, "discount_request", []),
        ("聚会不办了 蛋糕那些都不用订了", True, "cancel", []),
        ("送水师傅大概几点能到", False, "order_status", []),  # someone already bringing it
        ("辛苦师傅了 大热天还送货", False, "chitchat", []),
        ("排水管拿8根 sorry 12根", False, "clarify", []),  # 排水管 is no product here: asked, never guessed
        ("可乐拿8箱 sorry 12箱", False, "order", [("COLA", 12)]),
        ("没了 这样就行", True, "confirm", []),
        ("雪碧和可乐 统一拿三箱", False, "order", [("COLA", 3), ("SPRITE", 3)]),
        ("我十点下的单，这都快十二点了", False, "order_status", []),
        ("你家米比对面超市贵两块，便宜点呗", False, "discount_request", []),
        ("我先喝喝试用装 好喝再订", False, "hedge", []),
        ("先不订了 取消", True, "cancel", []),  # an explicit cancel beside "not for now"
        ("还想要两箱雪碧", True, "add", [("SPRITE", 2)]),
        ("熟普那两饼划了吧", True, "remove", []),
        ("零头不要了吧", False, "discount_request", []),  # the odd amount dropped is asked
        ("面粉拿3袋，噢说少了，5袋", False, "order", [("FLOUR", 5)]),
        ("我拍的是生普，寄来的是熟的", False, "complaint", []),
        ("周末店里开门吗 想过去自己拿", False, "delivery_question", []),
        ("龙井两罐 茶饼太贵先不买", False, "order", [("TEA-TIN", 2)]),  # too dear is why one is left out
        ("前天下的30袋水泥什么时候到", False, "order_status", []),
        ("送几包纸巾呗 这回买了好几千", False, "discount_request", []),
        ("最低多少钱起送", False, "delivery_question", []),
        ("你家有王老吉卖没得", False, "stock_question", []),
        ("先这样吧，我看看家里还剩多少米再说", True, "hedge", []),
        ("纯净水是一箱24瓶的吗", False, "price_question", []),  # an amount inside 是…的吗 is asked about
        ("大米两袋还有面粉一袋别忘了，其他的过两天再说", False, "order", [("FLOUR", 1), ("RICE", 2)]),  # 别忘了 negates nothing
        ("鸡蛋日期都快过了还送给我", False, "complaint", []),
        ("你家还有10箱可乐吗 公司搞活动要", False, "stock_question", []),
        ("可乐雪壁各一箱", False, "order", [("COLA", 1), ("SPRITE", 1)]),
        ("要是拿20箱可乐能便宜点不公司团建用", False, "discount_request", []),
        ("茶饼要生普 2饼", False, "order", [("PUER-SHENG", 2)]),  # the family named first, then the kind with its amount
        ("纸巾买了一千多 茶杯能不能送一个", True, "discount_request", []),  # a gift asked as a question
        ("可乐店里有6箱没有", False, "stock_question", []),  # 有…没有 asks, it orders nothing
        ("800×800地砖 150片", False, "order", [("TILE", 150)]),  # the first 800 is the dimension
        ("订单帮我作罢 谢谢", True, "cancel", []),
        ("另外追加两箱可乐", True, "add", [("COLA", 2)]),
        ("那个什么 可乐来2箱", False, "order", [("COLA", 2)]),  # 那个什么: a filler, no question
        ("可能下周要10袋水泥，价钱合适的话", False, "hedge", []),  # the price is the hedge's condition
        ("42.5、32.5两种水泥 每种15袋", False, "order", [("CEMENT-325", 15), ("CEMENT-425", 15)]),
        ("铁观音给我称2斤嘛 我晚上过来拿", False, "clarify", []),  # 铁观音 is not in this catalog: asked
        ("可乐给我拿2箱嘛 我晚上过来拿", False, "order", [("COLA", 2)]),  # 嘛 after the amount: a request
    ],
)
def test_the_latest_blind_sets_classes_are_read_as_meant(
    parser: OrderParser, text: str, has_draft: bool, intent: str, lines: list[tuple[str, int]]
) -> None:
    assert read(parser, text, has_draft=has_draft) == (intent, lines)


def test_another_size_named_with_no_amount_is_asked_never_dropped(parser: OrderParser) -> None:
    u = understand(parser, "8寸的奶油蛋糕跟10寸的 一样一个")  # the 10寸 would have been dropped: asked instead
    assert (u.intent, u.lines) == ("clarify", []) and "CAKE-10" in u.explain()
    assert read(parser, "357克的熟普要2饼") == ("order", [("PUER-SHU", 2)])  # a size both kinds have names no other


def test_asking_when_goods_would_arrive_by_post_is_no_order(parser: OrderParser) -> None:
    assert read(parser, "2盒碧螺春寄上海 周五前能收到不") == ("delivery_question", [])


# -- pinyin letters ------------------------------------------------------------------------------------------------


def test_every_spelling_of_a_name_is_in_the_catalogs_pinyin_dictionary(parser: OrderParser) -> None:
    assert "kele" in spellings("可乐") and spellings("abc") == []
    words = dictionary(["可乐", "雪碧"])
    assert words["kele"] == "可乐" and words["quxiao"] == "取消"
    assert from_pinyin("kele 2xiang ok", words) == "可乐 2箱 ok"  # English stays English
    assert from_pinyin("wanglaoji", words) == "wanglaoji"  # a name not in the catalog is never guessed


@pytest.mark.parametrize(
    ("text", "has_draft", "pending", "intent", "lines"),
    [
        ("kele 2xiang", False, None, "order", [("COLA", 2)]),
        ("dami 3dai mianfen 1dai", False, None, "order", [("FLOUR", 1), ("RICE", 3)]),
        ("quxiao", True, None, "cancel", []),
        ("dui", False, "unit", "confirm", []),
        ("dami duoshao qian", False, None, "price_question", []),
        ("zaijia 1xiang xuebi", True, None, "add", [("SPRITE", 1)]),
    ],
)
def test_a_message_in_pinyin_letters_is_read_as_its_characters(
    parser: OrderParser, text: str, has_draft: bool, pending: str | None, intent: str, lines: list[tuple[str, int]]
) -> None:
    u = understand(parser, text, has_draft=has_draft, pending=pending)
    assert (u.intent, sorted(u.lines)) == (intent, lines)
    assert "拼音输入" in u.explain()
