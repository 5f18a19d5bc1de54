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

from bots.dialogue import cues
from bots.dialogue.intent_model import load_model
from bots.dialogue.intents import (
    AddSameAsLast,
    Cancel,
    Clarify,
    Confirm,
    Correction,
    Line,
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
    r"少了 送少了 碎了 是碎的 碎的 坏了 破了 是破的 破的 破损 漏了 漏液 烂了 就烂 过期 变质 发霉 霉了 霉味 臭了 有虫 长虫 少送 少发 少给 "
    r"漏发 发错 送错 拿错 写错(?!了?\s*(?:是|\x00)) 送成 发成 不新鲜 质量 投诉 差评 态度 摔坏 瘪了 划痕 退货 退款 换货 赔偿 受潮 结块 裂了 "
    r"不够数 缺斤 短斤 难吃 味道不对 假货 假的 骗人 太差 什么服务 是凉的 不酥 硬了 化了 色差 不一样 差太多 跟图片 "
    r"显示签收 签收了.{0,8}没收到 一股 不是.{1,6}的吧 不满意 差劲 怎么回事 搞什么 坑人 垃圾 失望 气死 脏了 太脏 湿了 有问题 "
    r"出问题 毛病 不能用 用不了 断了 歪了 发黄 变色 异味 怪味 难闻 不好用 质量差 不合格 以次充好 不靠谱 缺了 丢了 不见了 "
    r"调包 次品 残次 瑕疵 生锈 锈了 掉漆 开裂 渗水 漏水 不亮 馊了 太咸 骂人 不理人 爱答不理 送晚了 送迟了 坏的 烂的 裂的 "
    r"漏的 怎么搞的 不新鲜 变味 有异物 头发 虫子 短了 少给"
)
_ORDER_STATUS = _words(
    r"(?<![卸放搬堆])到哪 物流 发货了吗 发了没 发了吗 发货没 发货了没 发没发 什么时候发 啥时候发 几时发 还没到 怎么还没 咋还没 "
    r"还没送 还没来 "
    r"都没送 还没收到 没收到 订单状态 查订单 查一下订单 我的订单 运单 单号 出发了 出发没 出门了 走了没 送出来了吗 "
    r"送出了吗 发出来 寄出来 寄出了 派送了吗 在路上 签收 等半天 等了 催一下 催催 快点送 做好了 好了吗 好了没 处理了吗 "
    r"可以来拿 能来拿 可以取 能取了 骑手 司机.{0,4}(?:出发|到哪|电话)"
)
_PAST_ORDER = _words(
    r"订的 (?<![确决一肯固稳特指])定的 买的 下的单 下单的 点的 要的那 我要的(?!是) "
    r"我的货 我的订单 刚才的单 上次的 之前的 早上订 昨天订 我那单 那单 我那 俺那 单子"
)
_ASKING = re.compile(r"吗|没|么|呢|啥时候|什么时候|几时|多久|怎么|咋|[?？]")
_DISCOUNT = _words(
    r"打折 打个折 打几折 折扣 优惠 便宜 少点 少一点 少算 让点 让利 抹零 抹个零 零头 券 满减 满\d+减 赠品 送点 "
    r"送个 送一 搭点 批发价 团购 最低价 降价 特价 会员价 能少 减点 减免 返现 红包 低点 再低 减不减 能免 免了 免个 免掉 "
    r"额外送 多送 实在价 给个价 优惠价 能商量 还能商量 便宜些"
)
_PRICE = _words(
    r"多少钱 什么价 啥价 价格 价钱 怎么卖 咋卖 几块 几毛 单价 多钱 报价 贵不贵 一共多少 总共多少 合计多少 "
    r"价位 涨价 规格 保质期 几斤 几克 多重 多大 多厚 多长 多宽 多少米 什么牌子 啥牌子 产地 哪年 年份 行情 口味 "
    r"甜不甜 辣不辣 能吃 什么材质 啥材质 成分 配料 尺寸 区别 多少个 多少瓶 多少包 多少斤 几升 几个装 够几个人 几个人吃 "
    r"贵吗 怎么算 原价 现价 价目表 价格表 报个价 几块钱 一斤多少 净含量 含量 几毫升 多少毫升 多大的 型号 品牌 哪产的 "
    r"哪里产的 生产日期 新鲜吗 好喝吗 好吃吗 好用吗 耐用吗 什么味 口感 甜吗 辣吗 有糖吗 无糖吗 适合 能放多久 怎么保存 "
    r"怎么泡 怎么用 用法 有什么不同 哪个好 推荐"
)
_CONTENT = re.compile(r"(?:有|一\S{0,3}?|里面|里头|里边)(?:几|多少)(?!钱)|够几")  # 一箱有几瓶 / 纸巾一提几包 / 一盒多少个 / 够几个人吃
_STOCK = _words(
    r"有没有 有木有 有无 有货 没货 现货 库存 还剩 剩多少 缺货 断货 有卖 卖不卖 卖吗 有得卖 够不够 能供 到货 卖完 "
    r"做不做 上市了 还能拉 还能供 有没得 "
    r"还有(?!空|时间|人手)[^,.!?。，]{0,6}?(?:吗|么|嘛|没|不|伐)(?=[\s?!。，,]|$)"
)
_STOCK_SHAPE = re.compile(r"(?:请问|老板|你们|今天)*\s*有[^,.!?。，\s]{1,12}(?:吗|么|嘛|不|没|伐)[?？!]*$")
_DELIVERY = _words(
    r"送货 配送 能送 送吗 送不送 送到吗 送不到 几天到 多久到 多久能到 多长时间 什么时候送 什么时候能 啥时候能 几点送 几点能 "
    r"能不能送 上门 自提 起送 包邮 运费 邮费 快递吗 到付 当天能 今天能 明天能 送过来吗 能到.{0,6}吗 能送.{0,6}吗 能送到 "
    r"路上会 会不会化 卸车 搬上楼 上楼 车能 车拉 拉得了 拉完 能进 要多久 要几天 寄到.{0,10}(?:要|多久|几天|吗) "
    r"自提 什么快递 哪家快递 发什么 能.{0,3}发吗 "
    r"今天发吗 送货吗 你们送 送得到 配送范围 多远 远不远 几点到 几天能到 多久发货 发货快 快递几天 物流几天 隔天到 次日达 "
    r"当日达 同城 闪送 跑腿 怎么收运费 发顺丰 顺丰吗 哪里发货 从哪发 什么时候发货 几点发 送上门"
)
_HEDGE = _words(
    r"过两天 过几天 过段时间 改天(?!请|一起) 下回 回头 再说 先问问 问问(?:家里|老婆|老公|家人|领导|老板|同事|他|她) 商量 考虑 想想 "
    r"看看再 到时候 等我 等.{0,6}再 可能 也许 大概要 估计 打算 晚点 以后再 有需要再 不急 再看看 还没想好 不确定 说不定 "
    r"看情况 月底再 下周再 明天再订 下个月 下礼拜 年后 节后 开工再 再找你(?!喝|吃|玩) (?:前|后|时候|以后|之后)\S{0,4}再(?:订|定|买|要|拿) "
    r"先不订 先不买 暂时不用 暂时不要 后面要 再等等 过阵子 过一阵 到时 再联系 明天再说 下次再 等通知 还在考虑 犹豫 "
    r"比较一下 货比三家 先了解 了解一下 先看看 看一看再 回去再 商量下 没定 还没定 不一定 或许 大概 应该会 拿不准 定不下来 "
    r"如果 假如 万一 要是.{1,10}的话 到时候再"
)
# Stronger than a question in the same message: 先不订了 我看家里还剩多少 / 我回家问问老婆要什么口味 / 等量完尺寸再订.
_HEDGE_FIRST = _words(r"先不订 先不买 还没想好 问问(?:家里|老婆|老公|家人|领导|老板|同事|他|她) 先问问 等.{0,8}再(?:订|定|买|说)")
_CHOICE = re.compile(r"是.{1,8}还是")  # 蛋糕是动物奶油还是植物奶油: what the product is
_ARRIVED = re.compile(r"到了(?:吗|没)")  # 冰皮月饼到了吗: in stock yet; 我的水到了没: an order
_CHITCHAT = _words(
    r"你好 您好 在吗 在不在 在么 谢谢 多谢 感谢 谢啦 辛苦 早上好 早安 中午好 下午好 晚上好 晚安 哈哈 嘿嘿 "
    r"拜拜 再见 收到 知道了 晓得了 明白 好的 好滴 好嘞 ok 嗯 哦 新年快乐 节日快乐 周末愉快 愉快 天气 好热 好冷 谢了 "
    r"早呀 早啊 早哇 老板好 老板娘好 \S{1,3}好$ 亲 哇 真香 好香 绝了 真好 真会说话 忙不 忙吗 明天见 下次还来 喝酒 哥们 厉害 棒 "
    r"辛苦了 麻烦了 客气 没事 好吧 嘻嘻 呵呵 在忙 吃了吗 生意 兴隆 发财 新年好 快乐 下雨 周末 放假 哈喽 hello hi 嗨 比心 点赞"
)
_CHITCHAT_ONLY = re.compile(rf"(?:{_CHITCHAT.pattern}|老板|师傅|啦|了|啊|呀|哈|的|呢|哦|噢|吧|呗|[\s,.!~、。;:?])+")
_YES = re.compile(
    r"(?:确认|确定|无误|好的?|好滴|好嘞|对的?|对滴|没问题|是的?|是滴|ok|okay|嗯+|行|可以的?|没错|就这样|就这些|要的|要得|中|妥|"
    r"对头|就是|按这个(?:单子)?(?:来|送)?|就按这个(?:单子)?(?:来|送)?|发货|发吧|送过来|送来|送吧|来吧|下单|提交|吧|了|啊|呀|哈|"
    r"呢|哦|亲|老板|谢谢|[\s,.!~、。;:👌👍])+"
)
_YES_TAIL = re.compile(r"(?:按)?(?:\d+|[一二两三四五六七八九十]+)?\s*(?:箱|瓶|袋|包|桶|盒|提|个|斤|卷|根|片|张|方|吨|饼|罐|套|条)?(?:算)?$")
_THUMBS = re.compile(r"^[\s👌👍🙏✅]+$")
_ANY_WILL_DO = _words("都行 都可以 随便 你看着办 看着办 你推荐 推荐一个 哪个好 哪个都")
_NO = re.compile(r"^(?:不是|不对|不|不要|错了|没有)(?:的|啊|呀|吧)?(?:[\s,.!~、。;:]|$)")
_STICKER = re.compile(r"\[([\u4e00-\u9fffA-Za-z ]{1,8})\]")
_MEDIA_PLACEHOLDER = frozenset({"图片", "语音", "视频", "文件", "链接", "位置", "名片", "红包", "转账", "表情"})
_EMOJI = re.compile("[\U0001f300-\U0001faff\u2600-\u27bf\u2b50\u2764\ufe0f]")
_MARKUP = re.compile(r"<\s*/?\s*[a-z][^>]*>|&[a-z]+;|\bjavascript:", re.IGNORECASE)
_SEPARATORS = re.compile(r"[,!?;:、。~\n\s]+|(?<!\d)\.|\.(?!\d)|然后|其他的?|其余的?|别的")


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
        if _THUMBS.match(raw) and (has_draft or pending in YES_NO_PENDING):  # 👌 after 确认下单吗？
            return Understanding("confirm", [], Confirm(), [Evidence(raw.strip()[:4], "表情表示同意"), *base])
        return _empty_message(raw, base)

    def question(intent: str, match: re.Match[str], why: str) -> Understanding:
        return Understanding(intent, [], NotAnOrder(), [Evidence(match.group(0), why), *base], skus, _first_quantity(survey))

    # 1. Answers to the question the bot just asked.
    if pending is not None:
        answered = _answer_to_pending(parser, raw, t, pending, has_draft, base)
        if answered is not None:
            return answered
    if m := _HEDGE_FIRST.search(masked) or cues.checks_first(masked):  # 先不订了 我看家里还剩多少: asks nothing of the shop
        return Understanding("hedge", [], NotAnOrder(), [Evidence(m.group(0), "暂不下单"), *base], skus)
    if _ORDER_NO.search(t) and isinstance(parser.parse(raw, has_draft=has_draft), Cancel):  # 取消订单 SO100001
        return Understanding("cancel", [], Cancel(), [Evidence(_ORDER_NO.search(t).group(0), "取消已下的订单"), *base])  # type: ignore[union-attr]
    # 2. Complaints, then where an order already placed is: about the past, whatever numbers they carry.
    if m := _COMPLAINT.search(masked):
        return question("complaint", m, "投诉：商品或送货有问题")
    if m := cues.complaint_cue(masked):  # 碎成渣了 / 订的8寸送来的是6寸 / 少寄了 / 颜色不对
        return question("complaint", m, "投诉：货物损坏、送错、少了或迟到")
    status = _ORDER_STATUS.search(masked)
    if status is not None and not _DELIVERY_FUTURE.search(masked):
        return question("order_status", status, "问已下订单的进度")
    if _ORDER_NO.search(t):
        return question("order_status", _ORDER_NO.search(t), "订单号")  # type: ignore[arg-type]
    # 3. Questions that carry numbers are the questions.
    if m := cues.comparison_cue(masked):  # 雪花跟青岛哪个便宜: a price, not a discount
        return question("price_question", m, "比较价格")
    if m := _DISCOUNT.search(masked) or cues.free_extra_cue(masked):
        return question("discount_request", m, "要优惠/折扣")
    if m := _DELIVERY_FEE.search(masked):  # 满多少包邮: about delivery, though it says 多少
        return question("delivery_question", m, "问运费/起送")
    if m := _STOCK.search(masked) or _STOCK_SHAPE.match(masked):
        return question("stock_question", m, "问有没有货")
    if m := cues.delivery_time_cue(masked):  # 送到幸福小区要多长时间 / 下午三点前能到不: when, not a size
        if _PAST_ORDER.search(masked) or cues.about_an_order_placed(masked):
            return question("order_status", m, "问已下订单何时送到")
        return question("delivery_question", m, "问什么时候能送到")
    if ((m := _PRICE.search(masked)) or (m := _CONTENT.search(t)) or (m := cues.price_cue(masked))) and not (
        m.group(0) in _SIZE_WORDS and cues.delivery_cue(masked)  # 多大的车送货: the truck, not the goods
    ):
        return question("price_question", m, "问价格/规格")
    if m := _ARRIVED.search(masked):
        if skus and not _PAST_ORDER.search(masked):
            return question("stock_question", m, "问商品到货没有")
        return question("order_status", m, "问已下订单到了没有")
    delivery = _DELIVERY.search(masked) or cues.delivery_cue(masked)
    if (m := delivery) and (survey.quantities == [] or cues.question_cue(masked)):  # 大米两袋 送货上门啊: an order
        placed = status is not None and not _DELIVERY_FUTURE.search(masked)  # 你们最远送到哪: where they deliver
        if placed or _PAST_ORDER.search(masked) or cues.about_an_order_placed(masked):
            return question("order_status", m, "问已下订单何时送到")
        return question("delivery_question", m, "问配送时间/方式")
    if m := _CHOICE.search(masked):
        return question("price_question", m, "问是哪一种")
    if (m := _PAST_ORDER.search(masked)) and (
        _ASKING.search(masked, m.end()) or cues.question_cue(masked[m.end() :])
    ):  # 我中午订的6提纸巾啥时候到
        return question("order_status", m, "问已下订单")
    if skus and (m := _STOCK_SHAPE.search(masked)):  # 今天有鸡蛋不
        return question("stock_question", m, "问有没有货")
    if status is not None:
        return question("order_status", status, "问已下订单的进度")
    # 4. Hedges: the firm part, if any, is the order.
    if m := _HEDGE.search(masked) or cues.postpone_cue(masked):
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
        if _CHITCHAT.search(t) and (_CHITCHAT_ONLY.fullmatch(t) or not survey.quantities):
            return Understanding("chitchat", [], result, [Evidence(t[:20], "寒暄/客气话"), *base])
        if (guess := _model_guess(masked)) is not None:  # no cue at all: the statistical fallback, never an order
            intent, p = guess
            return Understanding(intent, [], result, [Evidence(t[:20], f"统计模型判断（{p:.0%}），无明确关键词"), *base], skus)
        return Understanding("unknown", [], result, [Evidence("", "没有看懂：既没有商品和数量，也不是已知的问题"), *base], skus)
    if isinstance(result, OrderLines) and (m := cues.interrogative_cue(masked)) and not cues.permission_only(masked):
        # 订20个蛋挞要提前几天: a question word no rule placed — asked, never ordered (a question with a number is
        # the question); the model names the topic when it can
        guess = _model_guess(masked)
        intent = guess[0] if guess is not None else "unknown"
        return Understanding(
            intent, [], NotAnOrder(), [Evidence(m.group(0), "有疑问词，是在问，不下单"), *base], skus, _first_quantity(survey)
        )
    return _from_result(result, has_draft, base, skus, pending, t)


_SIZE_WORDS: Final = frozenset({"多大", "多长", "多重", "多宽", "多厚", "多高"})
_ORDER_NO = re.compile(r"订单号|单号|\bso\s*-?\s*\d{6,}\b")
_DELIVERY_FEE = _words("包邮 运费 邮费 配送费 送货费 起送 免配送 免运费")
_DELIVERY_FUTURE = _words("能送 能到 送吗 送不送 几点送 几点能 包邮 运费 配送费 起送 最远 多远")


MODEL_MIN_P: Final = 0.8  # below this the fallback keeps "unknown"
MODEL_MIN_P_STATEMENT: Final = 0.95  # a complaint with no question in it: naive Bayes is over-confident


def _model_guess(masked: str) -> tuple[str, float] | None:
    """The intent model's reading of a message the rules found no cue in, gated by the message's form: a
    question's topic only when it has the form of a question (今天天气不错 is no delivery question, however
    sure the model is), a complaint only when very sure; never a hedge or small talk (those have their words)."""
    model = load_model()
    if model is None:
        return None
    intent, p = model.best(masked)
    if intent in QUESTION_INTENTS and intent != "complaint":
        ok = p >= MODEL_MIN_P and cues.question_cue(masked) is not None
    else:
        ok = intent == "complaint" and p >= MODEL_MIN_P_STATEMENT
    return (intent, p) if ok else None


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
    不是 / 不对 after 您说的3瓶是指3箱吗？ asks again; 8寸的 一个 after 要哪一种？ names the product by its size."""
    bare = re.sub(r"[\s,.!~、。;:?]", "", t)
    if _NO.match(t) and pending in YES_NO_PENDING:
        if pending == "confirm" and (parser.parse(raw, has_draft=True).kind in ("cancel", "remove_item")):
            return None
        return Understanding(
            "clarify",
            [],
            Clarify("unit_mismatch", "好的，请问您要的是多少、按什么单位？"),
            [Evidence(t[:10], "否定了刚才的问题，需要再问"), *base],
            reask=True,
        )
    yes_text = _YES_TAIL.sub("", bare)  # 是的是的 箱 / 对的对的 3箱 / 对 按卷: a yes that repeats the reading
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
    if pending == "product":
        if m := _ANY_WILL_DO.search(t):  # 都行 / 你推荐一个: the shop never picks for them
            return Understanding(
                "clarify", [], Clarify("ambiguous_product", "请您选一种"), [Evidence(m.group(0), "没有选定哪一种"), *base], reask=True
            )
        survey = parser.survey(raw)
        named = parser.skus_named_by_spec(raw)
        if not survey.mentions and len(named) == 1 and len(survey.quantities) == 1:  # 8寸的 一个
            q = survey.quantities[0]
            if q.value is not None and q.value.denominator == 1 and q.value > 0:
                sku, qty = named[0], int(q.value)
                line = Line(sku, qty, parser.products[sku].unit, t)
                return Understanding("order", [(sku, qty)], OrderLines([line], "new"), [Evidence(t[:20], f"按规格选定 {sku}"), *base])
    return None


def _firm_part(parser: OrderParser, raw: str, t: str, has_draft: bool) -> tuple[ParseResult, str] | None:
    """先来2箱，其他的过两天再说: the clauses without a hedge word, if they order something on their own."""
    clauses = [c for c in _SEPARATORS.split(t) if c]
    firm = [c for c in clauses if not _HEDGE.search(c) and not cues.postpone_cue(c)]
    if not firm or len(firm) == len(clauses):
        return None
    text = "，".join(firm)
    result = parser.parse(text, has_draft=has_draft)
    return (result, text) if isinstance(result, OrderLines) else None


def _from_result(
    result: ParseResult, has_draft: bool, evidence: list[Evidence], skus: Sequence[str], pending: str | None = None, text: str = ""
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
    if isinstance(result, Clarify) and has_draft and result.reason == "ambiguous_product" and _CHANGE.search(text):
        change = Correction(None, result.qty or 0, result.unit, result.product_text, tuple(result.candidates))
        if result.qty:  # 月饼改到10盒: the draft holds one of them — the dialogue settles which
            return Understanding("change", [], change, [Evidence(result.product_text, "改草稿里这种商品的数量"), *evidence], tuple(skus))
    if isinstance(result, Clarify):
        return Understanding("clarify", [], result, [Evidence(result.product_text, f"需要先问：{result.reason}"), *evidence], tuple(skus))
    return Understanding("unknown", [], result, evidence, tuple(skus))


_CHANGE = _words("改成 改为 改到 换成 调成 调到 变成 应该是")


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
