"""Intent before items: what one customer message is for, decided before any order line is read from it.

A message that carries a number is not therefore an order: 5箱可乐什么价 asks a price, 花生油还有8桶没 asks
about stock, 前天订的4箱水还没到 asks where an order is, 可能要5箱 is a hedge. :func:`understand` first
classifies the message by its cue words (looked for with products and quantities blanked out, so 加多宝 is no
"add" cue and 5箱 no price), and only an ordering message goes on to :class:`OrderParser` for its lines.
Pure and fast (no I/O): the dialogue calls it on every message, the corpus bench (``bench/chat.py``) too.

Every reading carries its evidence — the spans that decided it and why — which the dialogue writes to the
customer's timeline so staff can see why the bot answered as it did.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final, Literal, TypeAlias

from bots.dialogue.intents import (
    AddSameAsLast,
    Cancel,
    Clarify,
    Confirm,
    Correction,
    NotAnOrder,
    OrderLines,
    ParseResult,
    RemoveItem,
)
from bots.dialogue.parser import OrderParser, Survey

IntentName: TypeAlias = Literal[
    "order",  # new lines (with a draft: sets those lines)
    "add",  # more on the draft (再来 / 还要 / 加), needs a draft
    "change",  # a draft line's quantity changed (改成4箱 / 不是2袋是3袋)
    "remove",  # an item dropped from the draft
    "cancel",  # the whole draft dropped
    "confirm",  # yes to the draft or to the yes/no question asked
    "clarify",  # the bot must ask first (ambiguous, vague, unit, unknown item, a yes that answers nothing)
    "price_question",  # price, and what a product is (规格, 一箱几瓶, 保质期)
    "stock_question",  # in stock / sold here at all
    "delivery_question",  # when / where / how delivery works, before ordering
    "order_status",  # where an order already placed is (发了没, 怎么还没到)
    "complaint",  # broken, expired, wrong or missing goods, a rude courier
    "discount_request",  # cheaper, a coupon, 抹零, free extras
    "hedge",  # 过两天再订 / 我先问问家里 / 可能要5箱
    "chitchat",  # greetings, thanks, stickers
    "unknown",  # unreadable or not for the shop
]
INTENT_NAMES: Final[tuple[str, ...]] = IntentName.__args__  # type: ignore[attr-defined]
QUESTION_INTENTS: Final = frozenset(
    {"price_question", "stock_question", "delivery_question", "order_status", "complaint", "discount_request"}
)
# The question the bot asked last and waits on (the dialogue's ``awaiting``): a yes/no question is answered by
# 对 / 是的, a "which one" or "how many" question is not.
YES_NO_PENDING: Final = frozenset({"unit", "confirm"})
MAX_CHARS: Final = 500  # longer messages are not read as orders (a pasted document, a 10 k-character flood)


@dataclass(frozen=True)
class Evidence:
    """One reason for a reading: the text that matched (normalised) and why it counted."""

    span: str
    why: str

    def __str__(self) -> str:
        return f"“{self.span}”：{self.why}" if self.span else self.why


@dataclass(frozen=True)
class Understanding:
    intent: str  # one of INTENT_NAMES
    lines: list[tuple[str, int]]  # (sku, qty) for "order" / "add", else []
    result: ParseResult  # what the dialogue acts on (NotAnOrder for questions, hedges, small talk)
    evidence: list[Evidence] = field(default_factory=list)
    skus: tuple[str, ...] = ()  # products the message names (what a question is about), in text order
    quantity: tuple[int, str | None] | None = None  # the first whole quantity written, for questions (5箱可乐什么价)
    reask: bool = False  # it answers the pending question with nothing usable (好的 after 要几箱？): ask it again

    def explain(self) -> str:
        """One line for staff: the intent, then each piece of evidence."""
        return f"{self.intent}：" + "；".join(str(e) for e in self.evidence)


def _words(words: str) -> re.Pattern[str]:
    return re.compile("|".join(words.split()))


# Cue words, looked for in the text with products and quantities masked. Order of the checks is in understand().
_COMPLAINT = _words(
    r"碎了 坏了 破了 破损 漏了 漏液 烂了 过期 变质 发霉 霉了 臭了 有虫 长虫 少送 少发 少给 少了 漏发 发错 送错 拿错 "
    r"送成 发成 不新鲜 质量 投诉 差评 态度 摔坏 瘪了 划痕 退货 退款 换货 赔偿 受潮 结块 裂了 不够数 缺斤 短斤 "
    r"难吃 味道不对 假货 骗人 太差"
)
_ORDER_STATUS = _words(
    r"到哪 物流 发货了吗 发了没 发了吗 发货没 发没发 什么时候发 啥时候发 几时发 还没到 怎么还没 还没送 "
    r"还没收到 没收到 订单状态 查订单 查一下订单 我的订单 运单 单号 到了没 出发了 送出来了吗 送出了吗 "
    r"派送了吗 在路上 签收 等半天 等了 催一下 催催 快点送"
)
_PAST_ORDER = _words(r"订的 买的 下的单 下单的 点的 要的那 我的货 我的订单 刚才的单 上次的 之前的 早上订 昨天订")
_DISCOUNT = _words(
    r"打折 打个折 打几折 折扣 优惠 便宜 少点 少一点 少算 让点 让利 抹零 抹个零 零头 券 满减 满\d+减 赠品 送点 "
    r"送个 送一 搭点 批发价 团购 最低价 降价 特价 会员价 能少 减点 减免 返现 红包 低点 再低 减不减"
)
_PRICE = _words(
    r"多少钱 什么价 啥价 价格 价钱 怎么卖 咋卖 几块 几毛 单价 多钱 报价 贵不贵 一共多少 总共多少 合计多少 "
    r"价位 涨价 规格 保质期 几包 几瓶 几个 几斤 几克 多重 多大 什么牌子 啥牌子 产地 有多少(?!货|库存) "
    r"多少个 多少瓶 多少包 多少斤 几升"
)
_STOCK = _words(
    r"有没有 有木有 有无 有货 没货 现货 库存 还剩 剩多少 缺货 断货 有卖 卖不卖 卖吗 有得卖 够不够 能供 到货了 "
    r"还有[^,.!?。，]{0,6}?(?:吗|么|嘛|没|不)(?=[\s?!。，,]|$)"
)
_STOCK_SHAPE = re.compile(r"^(?:请问|老板|你们)*(?:有|还有)[^,.!?。，]{1,12}(?:吗|么|嘛|不|没)[?？!]*$")
_DELIVERY = _words(
    r"送货 配送 能送 送吗 送不送 送到吗 送不到 几天到 多久到 多久能到 多长时间 什么时候送 什么时候能 啥时候能 几点送 几点能 "
    r"能不能送 上门 自提 起送 包邮 运费 邮费 快递吗 到付 当天能 今天能 明天能 送过来吗 能到吗 能送到"
)
_HEDGE = _words(
    r"过两天 过几天 过段时间 改天 下次 下回 回头 再说 先问问 问问(?:家里|老婆|老公|家人|领导|老板|同事|他|她) 商量 考虑 想想 "
    r"看看再 到时候 等我 等.{0,6}再 "
    r"可能 也许 大概要 估计 打算 晚点 以后再 有需要再 不急 再看看 还没想好 不确定 说不定 看情况 月底再 下周再 明天再订"
)
_CHITCHAT = _words(
    r"你好 您好 在吗 在不在 在么 谢谢 多谢 感谢 谢啦 辛苦 早上好 早安 中午好 下午好 晚上好 晚安 哈哈 嘿嘿 "
    r"拜拜 再见 收到 知道了 明白 好的 好滴 好嘞 ok 嗯 哦 新年快乐 节日快乐 天气"
)
_CHITCHAT_ONLY = re.compile(rf"(?:{_CHITCHAT.pattern}|老板|师傅|啦|了|啊|呀|哈|的|呢|哦|噢|吧|呗|[\s,.!~、。;:?])+")
_YES = re.compile(
    r"(?:确认|确定|好的?|好滴|好嘞|对的?|没问题|是的?|ok|okay|嗯+|行|可以|没错|就这样|就这些|要的|中|妥|对头|"
    r"下单|提交|送吧|吧|了|啊|呀|哈|呢|哦|老板|谢谢|[\s,.!~、。;:])+"
)
_NO = re.compile(r"^(?:不是|不对|不|不要|错了|没有)(?:的|啊|呀|吧)?(?:[\s,.!~、。;:]|$)")
_STICKER = re.compile(r"\[([\u4e00-\u9fffA-Za-z ]{1,8})\]")
_MEDIA_PLACEHOLDER = frozenset({"图片", "语音", "视频", "文件", "链接", "位置", "名片", "红包", "转账", "表情"})
_EMOJI = re.compile("[\U0001f300-\U0001faff\u2600-\u27bf\u2b50\u2764\ufe0f]")
_MARKUP = re.compile(r"<\s*/?\s*[a-z][^>]*>|&[a-z]+;|\bjavascript:", re.IGNORECASE)
_SEPARATORS = re.compile(r"[,.!?;:、。~\n\s]+|然后|其他的?|其余的?|别的")


def understand(parser: OrderParser, text: str, *, has_draft: bool = False, pending: str | None = None) -> Understanding:
    """What one message is for, and — for an order or an addition — its lines.

    ``has_draft``: the customer has an unconfirmed draft order. ``pending``: the question the bot asked last
    ("unit", "product", "quantity", "confirm" or None). Never raises; never returns lines for anything but
    "order" / "add"; a message with a question, a complaint or a hedge in it is never read as an order
    (a firm order beside a hedge — 先来2箱，其他的过两天再说 — is the firm part).
    """
    raw = text or ""
    if len(raw) > MAX_CHARS:
        return Understanding("unknown", [], NotAnOrder(), [Evidence("", f"消息过长（{len(raw)} 字），不按订单读取")])
    if _MARKUP.search(raw):
        return Understanding("unknown", [], NotAnOrder(), [Evidence(_MARKUP.search(raw).group(0)[:20], "网页代码/标记，不是订单")])  # type: ignore[union-attr]
    survey = parser.survey(raw)
    t, masked = survey.text, survey.masked
    skus = tuple(dict.fromkeys(s for m in survey.mentions for s in m.skus))
    base = _base_evidence(survey)
    if not _has_content(t):
        return _empty_message(raw, base)

    def question(intent: str, match: re.Match[str], why: str) -> Understanding:
        return Understanding(intent, [], NotAnOrder(), [Evidence(match.group(0), why), *base], skus, _first_quantity(survey))

    # 1. Answers to the question the bot just asked.
    if pending is not None:
        answered = _answer_to_pending(parser, raw, t, pending, has_draft, base)
        if answered is not None:
            return answered
    if _ORDER_NO.search(t) and isinstance(parser.parse(raw, has_draft=has_draft), Cancel):  # 取消订单 SO100001
        return Understanding("cancel", [], Cancel(), [Evidence(_ORDER_NO.search(t).group(0), "取消已下的订单"), *base])  # type: ignore[union-attr]
    # 2. Complaints, then where an order already placed is: about the past, whatever numbers they carry.
    if m := _COMPLAINT.search(masked):
        return question("complaint", m, "投诉：商品或送货有问题")
    status = _ORDER_STATUS.search(masked)
    if status is not None and not _DELIVERY_FUTURE.search(masked):
        return question("order_status", status, "问已下订单的进度")
    if _ORDER_NO.search(t):
        return question("order_status", _ORDER_NO.search(t), "订单号")  # type: ignore[arg-type]
    # 3. Questions that carry numbers are the questions.
    if m := _DISCOUNT.search(masked):
        return question("discount_request", m, "要优惠/折扣")
    if m := _DELIVERY_FEE.search(masked):  # 满多少包邮: about delivery, though it says 多少
        return question("delivery_question", m, "问运费/起送")
    if m := _PRICE.search(masked):
        return question("price_question", m, "问价格/规格")
    if m := _STOCK.search(masked) or _STOCK_SHAPE.search(masked):
        return question("stock_question", m, "问有没有货")
    if m := _DELIVERY.search(masked):
        if status is not None or _PAST_ORDER.search(masked):
            return question("order_status", m, "问已下订单何时送到")
        return question("delivery_question", m, "问配送时间/方式")
    if status is not None:
        return question("order_status", status, "问已下订单的进度")
    # 4. Hedges: the firm part, if any, is the order.
    if m := _HEDGE.search(masked):
        dropped = parser.parse(raw, has_draft=has_draft)
        if has_draft and isinstance(dropped, Cancel | RemoveItem):  # 都不要了 下次再说: the draft is dropped now
            return _from_result(dropped, has_draft, base, skus)
        firm = _firm_part(parser, raw, t, has_draft)
        if firm is not None:
            return _from_result(
                firm[0], has_draft, [Evidence(m.group(0), "犹豫的部分不下单"), Evidence(firm[1], "确定要的部分"), *base], skus
            )
        return Understanding("hedge", [], NotAnOrder(), [Evidence(m.group(0), "还没决定（以后再订/先问问/可能）"), *base], skus)
    # 5. Everything else is read by the order parser.
    result = parser.parse(raw, has_draft=has_draft)
    if isinstance(result, NotAnOrder):
        if has_draft and _YES.fullmatch(re.sub(r"[\s,.!~、。;:?]", "", t)):
            return Understanding("confirm", [], Confirm(), [Evidence(t[:20], "对待确认订单说“好”"), *base])
        if _CHITCHAT_ONLY.fullmatch(t) and _CHITCHAT.search(t):
            return Understanding("chitchat", [], result, [Evidence(t[:20], "寒暄/客气话"), *base])
        return Understanding("unknown", [], result, [Evidence("", "没有看懂：既没有商品和数量，也不是已知的问题"), *base], skus)
    return _from_result(result, has_draft, base, skus, pending)


_ORDER_NO = re.compile(r"订单号|单号|\bso\s*-?\s*\d{6,}\b")
_DELIVERY_FEE = _words("包邮 运费 邮费 配送费 送货费 起送 免配送 免运费")
_DELIVERY_FUTURE = _words("能送 能到 送吗 送不送 几点送 几点能 包邮 运费 配送费 起送")


def _has_content(t: str) -> bool:
    return bool(re.search(r"[0-9a-z\u3400-\u9fff]", t))


def _empty_message(raw: str, base: list[Evidence]) -> Understanding:
    """Nothing readable after normalising: stickers are small talk; emoji alone, ？？？ and the like are unknown."""
    stickers = [s for s in _STICKER.findall(raw) if s not in _MEDIA_PLACEHOLDER]
    if stickers:
        return Understanding("chitchat", [], NotAnOrder(), [Evidence(f"[{stickers[0]}]", "表情，寒暄")])
    if _EMOJI.search(raw):
        return Understanding("unknown", [], NotAnOrder(), [Evidence("", "只有表情符号，无法判断意思")])
    return Understanding("unknown", [], NotAnOrder(), [Evidence("", "没有可读的文字")])


def _answer_to_pending(parser: OrderParser, raw: str, t: str, pending: str, has_draft: bool, base: list[Evidence]) -> Understanding | None:
    """对 / 是的 after a yes/no question is a yes; after 要几箱？ / 要哪一种？ it answers nothing (→ clarify);
    不是 / 不对 after 您说的3瓶是指3箱吗？ asks again."""
    bare = re.sub(r"[\s,.!~、。;:?]", "", t)
    if _NO.match(t) and pending in YES_NO_PENDING:
        if pending == "confirm" and (parser.parse(raw, has_draft=True).kind == "cancel"):
            return None
        return Understanding(
            "clarify",
            [],
            Clarify("unit_mismatch", "好的，请问您要的是多少、按什么单位？"),
            [Evidence(t[:10], "否定了刚才的问题，需要再问"), *base],
            reask=True,
        )
    yes_text = re.sub(r"(?:箱|瓶|袋|包|桶|盒|提|个|斤)$", "", bare)  # 是的是的 箱: a yes that repeats the unit
    if yes_text and _YES.fullmatch(yes_text):
        if pending in YES_NO_PENDING:
            return Understanding("confirm", [], Confirm(), [Evidence(t[:10], f"对刚才的问题（{pending}）回答“是”"), *base])
        return Understanding(
            "clarify",
            [],
            Clarify("missing_quantity", "请问具体要哪一种、要多少？"),
            [Evidence(t[:10], "“好的”没有回答刚才的问题"), *base],
            reask=True,
        )
    return None


def _firm_part(parser: OrderParser, raw: str, t: str, has_draft: bool) -> tuple[ParseResult, str] | None:
    """先来2箱，其他的过两天再说: the clauses without a hedge word, if they order something on their own."""
    clauses = [c for c in _SEPARATORS.split(t) if c]
    firm = [c for c in clauses if not _HEDGE.search(c)]
    if not firm or len(firm) == len(clauses):
        return None
    text = "，".join(firm)
    result = parser.parse(text, has_draft=has_draft)
    return (result, text) if isinstance(result, OrderLines) else None


def _from_result(
    result: ParseResult, has_draft: bool, evidence: list[Evidence], skus: Sequence[str], pending: str | None = None
) -> Understanding:
    if isinstance(result, OrderLines):
        lines = [(ln.sku, ln.qty) for ln in result.lines]
        why = [Evidence(ln.matched, f"{ln.sku} × {ln.qty}{ln.unit}") for ln in result.lines]
        why += [Evidence(s, "同一句里说了不要") for s in result.excluded]
        intent = "add" if result.mode == "add" and has_draft else "order"
        return Understanding(intent, lines, result, [*why, *evidence], tuple(skus))
    if isinstance(result, AddSameAsLast):
        if has_draft:
            return Understanding(
                "add", [], result, [Evidence("", f"再来 {result.qty}{result.unit or ''}（上一个商品）"), *evidence], tuple(skus)
            )
        return Understanding("clarify", [], result, [Evidence("", "没有说是什么商品"), *evidence], tuple(skus))
    if isinstance(result, Correction):
        if has_draft:
            return Understanding(
                "change", [], result, [Evidence(result.matched, f"改成 {result.qty}{result.unit or ''}"), *evidence], tuple(skus)
            )
        if result.sku is not None:  # 可乐改成5箱 with no draft: the last value wins
            return Understanding(
                "order",
                [(result.sku, result.qty)],
                result,
                [Evidence(result.matched, f"没有待确认订单，按 {result.qty} 下单"), *evidence],
                tuple(skus),
            )
        return Understanding("clarify", [], result, [Evidence("", "要改的订单不存在"), *evidence], tuple(skus))
    if isinstance(result, RemoveItem):
        intent = "remove" if has_draft or pending == "confirm" else "unknown"
        return Understanding(intent, [], result, [Evidence("", f"去掉 {'、'.join(result.skus)}"), *evidence], tuple(skus))
    if isinstance(result, Cancel):
        return Understanding(
            "cancel" if has_draft or pending == "confirm" else "unknown", [], result, [Evidence("", "不要整张订单"), *evidence], tuple(skus)
        )
    if isinstance(result, Confirm):
        return Understanding("confirm", [], result, [Evidence("", "确认订单"), *evidence], tuple(skus))
    if isinstance(result, Clarify):
        return Understanding("clarify", [], result, [Evidence(result.product_text, f"需要先问：{result.reason}"), *evidence], tuple(skus))
    return Understanding("unknown", [], result, evidence, tuple(skus))


def _base_evidence(survey: Survey) -> list[Evidence]:
    found = [Evidence(m.text, "商品 " + "/".join(m.skus)) for m in survey.mentions]
    found += [Evidence(q.text.strip(), "数量") for q in survey.quantities]
    found += [Evidence(survey.text[s:e], "单价，不是数量" if why == "price" else "规格，不是数量") for s, e, why in survey.not_quantities]
    return found


def _first_quantity(survey: Survey) -> tuple[int, str | None] | None:
    for q in survey.quantities:
        if q.value is not None and q.value.denominator == 1 and q.value > 0:
            return int(q.value), q.unit
    return None
