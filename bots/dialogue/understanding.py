"""Intent before items: what one customer message is for, decided before any order line is read from it.

A message that carries a number is not therefore an order: 5箱可乐什么价 asks a price, 花生油还有8桶没 asks
about stock, 前天订的4箱水还没到 asks where an order is, 可能要5箱 is a hedge. :func:`understand` first
classifies the message by its cue words (looked for with products and quantities blanked out, so 加多宝 is no
"add" cue and 5箱 no price), and only an ordering message goes on to :class:`OrderParser` for its lines. The word
lists are data, one table per rule in ``cue_words.toml``; the shapes of questions, complaints and postponements are
in :mod:`bots.dialogue.cues`.
Pure and fast (no I/O): the dialogue calls it on every message, the corpus bench (``bench/chat.py``) too.

Every reading carries its evidence — the spans that decided it and why — which the dialogue writes to the
customer's timeline so staff can see why the bot answered as it did.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import cache
from typing import Final, Literal, TypeAlias

from bots.dialogue import cues
from bots.dialogue.cue_words import cue, rule_of
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
from bots.dialogue.numerals import QuantityMatch
from bots.dialogue.parser import OrderParser, Survey, without_leftovers
from bots.dialogue.pinyin_input import from_pinyin

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
    rule: str = ""  # the list or pattern that matched (a table of cue_words.toml, a pattern of cues.py)

    def __str__(self) -> str:
        text = f"“{self.span}”：{self.why}" if self.span else self.why
        return f"{text}［{self.rule}］" if self.rule else text


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


# Cue words are data (cue_words.toml, one table per rule); the structural regexes stay here. The order of the
# checks is in understand().
_ASKING = re.compile(r"吗|没|么|呢|啥时候|什么时候|几时|多久|怎么|咋|[?？]")
_CONTENT = re.compile(
    r"(?:有|一\S{0,5}?|里面|里头|里边)(?:几|多少)(?!钱)(?!个?(?:人|同事|朋友|孩子|小孩|客人|位|家|亲戚))|够几|几\S{0,2}装|几\S[一每](?:提|箱|盒|袋|包|件|桶|罐|套|条|瓶|饼|卷)"
    r"|(?:能|可以)(?:泡|冲|煮|喝|用|吃|放|存|保存|铺|刷|贴)(?:几|多少|多久|好多)"
    # 腻子粉一袋刷得了几个平方 / 一饼泡得了多少次: what one takes or lasts
    r"|(?:泡|冲|煮|喝|用|吃|放|存|铺|刷|贴|装)(?:得了|得)(?:几|多少|多久)"
    # 10寸的大概分多少块 / 一卷是足100米不: how many pieces it makes, whether it is full measure
    r"|分(?:多少|几)(?:块|份|片|牙)|(?:是|有)?足\s*(?:\d|[一二两三四五六七八九十百])\S{0,4}(?:吗|不|没|么|吧)"
)  # 一箱有几瓶 / 纸巾一提几包 / 一盒多少个 / 够几个人吃 / 几斤装 / 几包一提 / 能冲几泡 / 能放多久
# 有 + what is asked about (up to 12 signs; 9.5厚的 keeps its decimal point), then the particle that asks
_HAS_WHAT = r"有(?:[^,.!?。，\s]|(?<=\d)\.(?=\d)){1,12}"
_ASKED_END = r"[?？!~啊呀哈呢]*"
_STOCK_SHAPE = re.compile(rf"(?:请问|老板|你们|今天)*\s*{_HAS_WHAT}(?:吗|么|嘛|不|没有?|没得|伐){_ASKED_END}$")
# …or opening the message, whatever follows (你家还有10箱550的农夫山泉吗 社区搞活动要 / 请问有小包装的白糖吗 500克那种)
_STOCK_OPENING = re.compile(
    rf"(?:请问|老板|你们|你家|店里|今天|现在)*\s*(?:还)?{_HAS_WHAT}(?:吗|么|不|没有?|伐){_ASKED_END}(?=[\s,，。]|$)"
)
_VEHICLE = re.compile(r"车")
_LOOK_IT_UP = re.compile(r"(?:帮|给)(?:我|忙)?(?:看|查)(?:一?下|看|查)")  # beside an order placed: where is it
# A product, then an amount in a measure (米, 公斤 …) that QuantityScanner leaves out as a size: 电线200米.
_MEASURED = re.compile(
    # the product, a few words at most (白漆我算了下得36升), then an amount in a measure — or in 块 right after it
    # (芝士蛋糕两块: pieces, not yuan)
    r"(?<=\x00)[^\x00\d\s,，。;；!！?？]{0,8}?\s*(?:要|来|买|拿|铺|贴|刷)?\s*(?:\d+(?:\.\d+)?|[一二两三四五六七八九十俩仨]+)\s*"
    r"(?P<unit>米|公斤|千克|斤|克|吨|平方米|平米|平方|平|升|块(?=\s*$))(?![\u4e00-\u9fff]{0,4}[的装])"
)
_CHOICE = re.compile(r"(?<!不)是.{1,8}还是")  # 蛋糕是动物奶油还是植物奶油: what the product is
_EXPLICIT_CANCEL = re.compile(r"取消|删掉|撤(?:了|掉|回)|作废|退单")
_CAPACITY = re.compile(r"做出|能出")  # 还能做出来2个10寸的吗: what the shop can make, not delivery
_IF_SO = re.compile(r"\S{0,4}?的话")
_CHOSEN_LATER = re.compile(r"尺寸|(?:订|要)?几寸|多大|大小|(?:要)?(?:什么|啥)?口味|款式|(?:来|有)?几个人|几多")
_THAT_ONE = re.compile(r"那个|那种|那款|这个|这种")
_DECLINE_AFTER = re.compile(r"\S{0,2}?(?:先|就|也)?(?:不买|不要|算了|不拿|不订)")
_SAMPLE = re.compile(r"小样|试(?:用|吃|喝|饮)装?")
_OTHER_SHOP = re.compile(r"隔壁|别人家|别家|人家店|网上|外面|对面|超市|别的店")  # 隔壁家大红袍比你便宜20: the price matched, a discount
_MY_ORDER = re.compile(r"我(?:那|的)(?:单|订单|单子)|我那份|我订的|^订的那")
_CAN_ARRIVE = re.compile(r"(?:能|可以|会|几天|多久|什么时候|啥时候)\S{0,2}到货")
_NEW_GOODS = re.compile(r"新茶|新货|新品|新款|新米|新到")  # 今年的新茶到了没: the season's goods in the shop yet
_ARRIVED = re.compile(r"到了(?:吗|么|嘛|没|不|伐)")  # 冰皮月饼到了吗: in stock yet; 我的水到了没: an order
_DELIVERY_BEFORE = re.compile(r"(?:送|发|寄|拉|运)$")


@cache
def _chitchat_only() -> re.Pattern[str]:
    """Nothing but small talk and particles (老板好啊 / 谢谢老板)."""
    return re.compile(rf"(?:{cue('chitchat').alternation}|老板|师傅|啦|了|啊|呀|哈|的|呢|哦|噢|吧|呗|[\s,.!~、。;:?])+")


def _rule(match: re.Match[str]) -> str:
    """Which rule decided: the cue list's or the pattern's name, for the evidence."""
    return rule_of(match, cues, sys.modules[__name__])


@cache
def _yes() -> re.Pattern[str]:
    """A message made of yes-words (cue_words.toml [yes]), particles and punctuation only: 对的对的 / 好滴👌."""
    return re.compile(rf"(?:{cue('yes').alternation}|[\s,.!~、。;:👌👍])+")


# A yes said first, then how or when (行 就这样 明天上午来拿 / 确认 地址没变 / 对的 没错 送到老地方): a yes, unless what
# follows takes it back, puts it off or asks (好的 我再想想 / 嗯 不过太贵了 / 行 多少钱).
_YES_HEAD = re.compile(
    r"^(?:确认|确定|对的?|没错|是的|好的?|好滴|好嘞|行|可以|嗯+|恩+|嗯呐|ok(?:的|了)?|ok晒|要得|没问题|没毛病|妥|就这样|中)+(?:[\s,.!~、。;:👌👍]+|$)",
    re.IGNORECASE,
)
# Said beside a yes to the draft, asking nothing and taking nothing back: nothing more wanted, how to pay, how and when
# to hand it over (钱我先微信转给你 / 麻烦到时候帮我打包好 / 放门卫那就行 / 早点送过来哈 工人等着呢)
_SAID_WITH_YES = re.compile(
    r"不用(?:再)?(?:加|添|要)?(?:别的|其他的?)了?|别的(?:都)?不(?:要|用)了?|其他(?:的)?(?:都)?不(?:要|用)了?"
    r"|(?:钱|款)?我?(?:先|等下|等会儿?|晚点|回头)?(?:微信|支付宝)?(?:转|付)(?:给你|你|过去)?|你?查收一?下"
    r"|(?:麻烦)?(?:到时候)?(?:帮我|给我)?(?:打包|装|包)好?|放(?:门卫|门口|前台)\S{0,2}就行"
    r"|(?:明早|明天|今天|下午|上午|早点|尽快)\S{0,4}(?:送|到|拿|来)\S{0,4}(?:就行|就好|哈|吧)?|\S{0,4}等着(?:呢|用)"
    # after 您说的3瓶是指3箱吗？: the unit said again (我说的个就是盒 / 就是袋 我们这边习惯叫包 你按袋算就行 / 打字太快打错了)
    r"|我说的\S{0,3}?(?:就是|其实是|是)\S{1,3}|就是(?:这个|那个)意思|(?:你)?按\S{1,2}算就(?:行|好|对了)|(?:我们|咱)(?:这边|这里)?(?:习惯|一般)?(?:叫|说)\S{1,2}"
    r"|打字太快\S{0,4}|(?:打|写|说)错了|不好意思(?:哈|啊)?|一\S一\S的(?:那种)?|(?:送人)?当然要整\S的"
)
_YES_UNDONE = re.compile(r"不(?!好意思|用谢|客气|错)|别|甭|取消|算了|等等|等下(?!转|付|给)|稍等|先|再|但|不过|可是|就是(?!这)")
# The list said to be complete, or the go-ahead given, anywhere in a message to a draft (对对就这么多赶紧安排车吧 /
# 核对过了 没问题 / 就这几样 齐了 / OK的 东西就这些了)
_GO_AHEAD = re.compile(
    r"就(?:是)?这(?:些|几样|么多|几个)(?:了)?|(?:东西)?就这些了|齐了|核对过了|没问题|下单吧|安排(?:车|送货|发货)|尽快送(?:过来)?|发货吧|按单子(?:送|发)"
    # nothing more to add or change (就这样吧 没有要加的了 / 嗯嗯 没啥要改的了 / 够了够了)
    r"|就这样(?:吧|了)?|没(?:有|啥|什么)?(?:要|需要|可)?(?:加|改|添|补|变)的了|没(?:有)?别的了|(?:够了)+"
    # the go-ahead said outright (就这么办 / ok没毛病 / 单子我看过了 都对 / 按这个发货 / 可以下单了 / 帮我下单吧)
    r"|就这么(?:办|定了?|弄|搞)|没毛病|都对|按这个(?:发|送|来|做)|可以下单|帮我下单|确认的|下单(?:吧|啦|呗)|^没了|这样就行|就这么下"
)


def _yes_head(t: str) -> bool:
    head = _YES_HEAD.match(t) or _GO_AHEAD.search(t)
    if head is None:
        return False
    rest = t[head.end() :] if head.re is _YES_HEAD else t[: head.start()] + " " + t[head.end() :]
    rest = _GO_AHEAD.sub(" ", _SAID_WITH_YES.sub(" ", rest))  # 就这些啦 不用别的了 麻烦帮我装好: how to hand it over
    if not rest.strip():
        return True
    return not (
        _YES_UNDONE.search(rest) or cues.question_cue(rest) or cue("hedge").search(rest) or cues.postpone_cue(rest) or _complaint_word(rest)
    )


_YES_TAIL = re.compile(
    r"(?:就)?(?:按|要)?(?:\d+|[一二两三四五六七八九十]+)?\s*(?:箱|瓶|袋|包|桶|盒|提|个|斤|卷|根|片|张|方|吨|饼|罐|套|条)?(?:算)?[啊呀吧哈呢的]*$"
)
# The amount or unit repeated inside a yes (是3箱没错 / 对的，要罐装的 / 嗯对，就是个): taken out before the yes-words
# are checked, wherever it stands — it repeats the reading asked about.
_YES_AMOUNT = re.compile(
    r"(?:就是|就|按|要|是)?(?:\d+|[一二两三四五六七八九十]+)?\s*(?:箱|瓶|袋|包|桶|盒|提|个|斤|卷|根|片|张|方|吨|饼|罐|套|条)(?:装)?(?:的)?"
)
# 👌 / 👍 / ✅, alone or among other emoji and signs (👌～ / 👌 😊): a yes
_THUMBS = re.compile("^[\\s~～!！.。🙏\U0001f300-\U0001faff]*[👌👍✅][\\s~～!！.。👌👍✅🙏\U0001f300-\U0001faff]*$")
# …also run straight into what is meant instead (不对我说的是包 / 不是我要的是瓶 / 不对是克)
_NO = re.compile(
    r"^(?:nope|no)?[\s,]*(?:(?:也|都)?(?:不是|不对|不|不要|错了|没有)(?:的|啊|呀|吧|呢|哦|噢|喔|诶|欸)*[\s,.!~、。;:]*){1,3}(?:[\s,.!~、。;:]|$|(?=我|是|要的|说的))"
)  # 不对不对: said twice
# A sender's tag in 【】 opening the message (【顺丰速运】 / 【美团】 / 【XX银行】): an SMS or app notice pasted in
_FORWARDED = re.compile(
    r"^【[^】]{2,12}】"
    # what WeChat writes itself, forwarded or copied: a recall, a new contact, a file or a link sent
    r"|^[\"“]?[^\"”\s]{1,12}[\"”]?\s*撤回了一条消息|^你已添加了|现在可以开始聊天了|^\[(?:文件|链接|位置|聊天记录|小程序|名片|视频号|公众号)\]"
)
_LATIN_RUN = re.compile(r"[a-z]{2}", re.IGNORECASE)
_STICKER = re.compile(r"\[([\u4e00-\u9fffA-Za-z ]{1,8})\]")
_EMOJI = re.compile("[\U0001f300-\U0001faff\u2600-\u27bf\u2b50\u2764\ufe0f]")
_MARKUP = re.compile(  # tags, entities, {"msg":…} JSON, {{name}} template placeholders
    r"<\s*/?\s*[a-z][^>]*>|&[a-z]+;|\bjavascript:|\{\{\s*\w+\s*\}\}|^\s*[\[{]\s*\"[^\"]*\"\s*:", re.IGNORECASE
)
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
    if _LATIN_RUN.search(raw) and (typed := from_pinyin(raw, parser.pinyin_words)) != raw:
        # kele 3xiang / quxiao ba / 香米jg: pinyin letters for the characters — read as if typed in characters
        inner = understand(parser, typed, has_draft=has_draft, pending=pending)
        return replace(inner, evidence=[Evidence(raw.strip()[:20], f"拼音输入，按“{typed.strip()[:20]}”理解"), *inner.evidence])
    if m := _FORWARDED.match(raw.strip()):  # 【顺丰速运】您的快件已签收…: a system text forwarded, not the customer's words
        return Understanding("unknown", [], NotAnOrder(), [Evidence(m.group(0), "转发的系统通知/短信，不是顾客要办的事")])
    if _MARKUP.search(raw):
        return Understanding("unknown", [], NotAnOrder(), [Evidence(_MARKUP.search(raw).group(0)[:20], "网页代码/标记，不是订单")])  # type: ignore[union-attr]
    core = _without_courtesy(raw)
    if core != raw and (_has_content(core.lower()) or _THUMBS.match(core)):  # 老板，不是的 / 有8寸的吗，麻烦了: read without the courtesy
        inner = understand(parser, core, has_draft=has_draft, pending=pending)
        said = Evidence(raw.replace(core, " … ").strip()[:20], "称呼或客气话，不改变意思")
        return replace(inner, evidence=[*inner.evidence, said])
    if not has_draft and pending is None and (retyped := _with_trailing_fix(parser, raw)) is not None:
        # …，不对，22个 at the end of a message naming one product and one amount: the last value wins (rule 7) —
        # the message is read with the amount meant in its place
        inner = understand(parser, retyped[0], has_draft=has_draft, pending=pending)
        return replace(inner, evidence=[Evidence(retyped[1], "最后更正的数量为准"), *inner.evidence])
    survey = parser.survey(raw)
    t, masked = survey.text, cues.without_free_choice(survey.masked)  # 啥时候方便啥时候送 asks nothing
    masked = without_leftovers(masked)  # 上次的还没吃完 / 上回拉的还剩不少: a reason, no question about stock
    skus = tuple(dict.fromkeys(s for m in survey.mentions for s in m.skus))
    base = _base_evidence(survey)
    if not _has_content(t):
        if _THUMBS.match(raw) and (has_draft or pending in YES_NO_PENDING):  # 👌 after 确认下单吗？
            return Understanding("confirm", [], Confirm(), [Evidence(raw.strip()[:4], "表情表示同意"), *base])
        return _empty_message(raw, base)

    def question(intent: str, match: re.Match[str], why: str) -> Understanding:
        evidence = Evidence(match.group(0), why, _rule(match))
        return Understanding(intent, [], NotAnOrder(), [evidence, *base], skus, _first_quantity(survey))

    # 1. Answers to the question the bot just asked.
    if pending is not None:
        answered = _answer_to_pending(parser, raw, t, pending, has_draft, base)
        if answered is not None:
            return answered
    loose = [q for q in survey.quantities if not any(g.start() <= q.start < g.end() for g in _GO_AHEAD.finditer(t))]  # 就这几样
    if has_draft and not survey.mentions and not loose and (_yes().fullmatch(re.sub(r"[\s,.!~、。;:]", "", t)) or _yes_head(t)):
        # 就这么多 安排送货 / 确认 发顺丰: yes-words and how to send it, said to the draft — before any question word
        return Understanding("confirm", [], Confirm(), [Evidence(t[:20], "对待确认订单说“好”"), *base])
    if has_draft and _EXPLICIT_CANCEL.search(t) and isinstance(parser.parse(raw, has_draft=True), Cancel):
        # 先不订了 取消 / 这次先不订了，单子给我删掉吧: the order dropped outright, whatever "for now" says
        return Understanding("cancel", [], Cancel(), [Evidence(_EXPLICIT_CANCEL.search(t).group(0), "明确取消订单"), *base])  # type: ignore[union-attr]
    hedge_first = cue("hedge_first").search(masked)
    if hedge_first is not None and not _GENERAL_DEFER.search(hedge_first.group(0)) and _names_its_item(masked, hedge_first):
        hedge_first = None  # 大米2袋 油先不买: "not" scoped to the item its clause names — negation in a list (rule 6)
    check_first = cues.checks_first(masked)
    if check_first is not None and _names_its_item(masked, check_first) and survey.quantities:
        check_first = None  # 可乐3箱今天送，雪碧等我盘完冰柜再说: the check is about that item
    if m := hedge_first or check_first:  # 先不订了 我看家里还剩多少: asks nothing of the shop
        firm = _firm_part(parser, raw, t, has_draft, scoped=True)
        if firm is not None and cues.question_cue(cues.without_free_choice(parser.survey(firm[1]).masked)) is None:
            evidence = [Evidence(m.group(0), "犹豫的部分不下单", _rule(m)), Evidence(firm[1], "确定要的部分"), *base]
            return _from_result(firm[0], has_draft, evidence, skus)  # 先拉5方河沙 其余的等等再说
        return Understanding("hedge", [], NotAnOrder(), [Evidence(m.group(0), "暂不下单", _rule(m)), *base], skus)
    if _ORDER_NO.search(t) and isinstance(parser.parse(raw, has_draft=has_draft), Cancel):  # 取消订单 SO100001
        return Understanding("cancel", [], Cancel(), [Evidence(_ORDER_NO.search(t).group(0), "取消已下的订单"), *base])  # type: ignore[union-attr]
    if not survey.quantities and cues.question_cue(masked) is None and (m := _THANKS_FOR_PAST.search(t)):
        return Understanding("chitchat", [], NotAnOrder(), [Evidence(m.group(0), "道谢（为以前的事）"), *base], skus)
    if not survey.mentions and not survey.quantities and (m := cue("solicitation").search(masked)):
        return Understanding("unknown", [], NotAnOrder(), [Evidence(m.group(0), "广告/推销，不是顾客的消息", _rule(m)), *base])
    # 2. Complaints, then where an order already placed is: about the past, whatever numbers they carry — but with a
    # draft open, an item of it dropped is the removal whatever reason is given (牛角包不要了吧 太腻).
    if has_draft and (swap := _draft_swap(parser, raw, survey)) is not None:
        swapped, said = swap  # 蛋糕要改成10寸的 / 不是茉莉花茶是白茶: a line of the draft becomes another product
        return Understanding("change", [], swapped, [Evidence(said, f"草稿里换成 {swapped.sku}"), *base], skus)
    fee_waived = cue("delivery_fee").search(masked) is not None  # 运费总得免了吧: the fee is what is dropped, no item
    if has_draft and not fee_waived and cues.question_cue(masked) is None and _drops(dropped := parser.parse(raw, has_draft=True), t):
        return _from_result(dropped, has_draft, base, skus, text=t)
    if has_draft and (slip := _SHOP_SLIP.search(t)) and (fixed := _shop_slip(parser, survey, slip, base, skus)) is not None:
        return fixed  # 茶杯我说的是12个 你记成10个了: the amount the shop wrote is the wrong one
    if (
        has_draft
        and not _ADD_FIRST.match(t)  # 补5片800地砖 之前算少了: more, with the reason
        and (m := cues.amount_wrong(masked) or _SLIP_ANY.search(masked))
        and (fixed := _draft_fix(parser, t, m, base, skus)) is not None
    ):
        return fixed  # 可乐数量不对 要6箱: with a draft, the amount after it is a change of that line (rule 7)
    reported = _without_asides(masked, survey)  # 鸡蛋要十个就行 多了放坏了可惜: a reason said after the item reports nothing
    if (m := _complaint_word(reported)) and _ASKING_WHAT.fullmatch(m.group(0)) and (late := cue("order_status").search(masked)):
        return question("order_status", late, "问已下订单（催，没有指责）")  # 还没拉来呢 啥情况: where is it
    if m:
        return question("complaint", m, "投诉：商品或送货有问题")
    if (m := cues.complaint_cue(reported)) and m.group(0).startswith("就") and cue("discount").search(masked):
        m = None  # 零头抹了吧 3020就给3000: the lower sum asked for, nothing short
    if m:  # 碎成渣了 / 订的8寸送来的是6寸 / 少寄了 / 颜色不对
        return question("complaint", m, "投诉：货物损坏、送错、少了或迟到")
    status = cue("order_status").search(masked)
    if status is not None and status.group(0) == "快点送" and survey.mentions and survey.quantities:
        status = None  # 雪花啤酒拾箱 快点送: an order in a hurry
    if status is not None and status.group(0).endswith(("没", "没有")) and cues.can_or_later(masked, status.start()):
        status = None  # 周末发货没 / 能发货没: asks what the shop can do, no order placed
    if status is not None and (
        not cue("delivery_future").search(masked) or _WAITED.search(masked) or _STRONG_STATUS.search(status.group(0))
    ):
        return question("order_status", status, "问已下订单的进度")  # 等好久了 啥时候能送到: waiting for an order
    if _ORDER_NO.search(t):
        return question("order_status", _ORDER_NO.search(t), "订单号")  # type: ignore[arg-type]
    # 3. Questions that carry numbers are the questions.
    if (m := cues.comparison_cue(masked)) and not _OTHER_SHOP.search(masked):  # 雪花跟青岛哪个便宜: a price, not a discount
        return question("price_question", m, "比较价格")
    m = cue("discount").search(masked) or cues.free_extra_cue(masked) or cues.gift_asked(masked, has_draft) or cues.haggle_cue(t)
    if m is None and (fee := cue("delivery_fee").search(masked)) and cues.buys_a_lot(masked):
        m = fee  # 能包邮不 买的多: an exception to the delivery rule asked for, not the rule (rule 3)
    if m and _DECLINED.match(masked, m.end()) and "零" not in m.group(0):  # 零头不要了: the odd amount dropped, asked
        m = None  # 礼品袋不用 / 赠品就不要了: the extra declined, nothing asked
    if m and _TOO_DEAR.search(m.group(0)) and (later := cue("hedge").search(masked)) and later.group(0) in _THINK_IT_OVER:
        m = None  # 我再考虑考虑吧 有点贵: the price is the reason to think it over — a hedge, no haggling
    if m and _TOO_DEAR.search(m.group(0)) and _DECLINE_AFTER.match(masked, m.end()):
        m = None  # 明前的太贵先不买: too dear is the reason that item is left out, nothing asked
    if m and _SAMPLE.search(m.group(0)) and cues.postpone_cue(masked):
        m = None  # 我先喝喝试用装 好喝再订: the sample is to decide by — a hedge, no request
    if m and not _in_condition(masked, m):  # 要是便宜的话可能拿10箱: a condition of a hedge, no request
        return question("discount_request", m, "要优惠/折扣")
    if m := cue("delivery_fee").search(masked):  # 满多少包邮: about delivery, though it says 多少
        return question("delivery_question", m, "问运费/起送")
    if m := cue("stock").search(masked) or _STOCK_SHAPE.match(masked) or _STOCK_OPENING.match(masked):
        if not skus and not _CAPACITY.search(m.group(0)) and (d := cues.delivery_cue(masked[m.start() :])):  # 你们有没有小货车送
            return question("delivery_question", d, "问能不能配送")
        if _VEHICLE.search(m.group(0)):  # 你们有小货车吗 巷子窄: whether they can deliver there
            return question("delivery_question", m, "问有没有车送货")
        if mine := _MY_ORDER.search(masked):  # 蛋挞出炉了没 我那单: the customer's own order, not the shelf
            return question("order_status", mine, "问自己的订单")
        if arrive := _CAN_ARRIVE.search(masked):  # 今天下单明天能到货不: when it would reach them
            return question("delivery_question", arrive, "问多久能到货")
        return question("stock_question", m, "问有没有货")
    if m := cues.delivery_time_cue(masked):  # 送到幸福小区要多长时间 / 下午三点前能到不: when, not a size
        if cue("past_order").search(masked) or cues.about_an_order_placed(masked) or _WAITED.search(masked):
            return question("order_status", m, "问已下订单何时送到")
        return question("delivery_question", m, "问什么时候能送到")
    if (
        (m := cue("price").search(masked))
        or (m := _CONTENT.search(t))
        or (m := cues.price_cue(masked))
        or (m := _contents_asked(survey))
        or (m := _pack_asked(survey))
    ) and not (
        m.group(0) in cue("size_words") and cues.delivery_cue(masked)  # 多大的车送货: the truck, not the goods
    ):
        later = cue("hedge").search(masked) or cues.postpone_cue(masked)
        if later is not None and _IF_SO.match(masked, m.end()):
            # 可能下周要3吨钢筋，价钱合适的话: the price is the condition of a hedge, nothing asked
            return Understanding("hedge", [], NotAnOrder(), [Evidence(later.group(0), "价钱合适再定", _rule(later)), *base], skus)
        unasked = _CHOSEN_LATER.sub(lambda k: " " * len(k.group(0)), masked)
        if later is not None and unasked != masked and cues.question_cue(cues.without_free_choice(unasked)) is None:
            # 等人数定了再定尺寸 / 商量下订几寸的: which size is what is put off — a hedge, nothing asked of the shop
            return Understanding("hedge", [], NotAnOrder(), [Evidence(later.group(0), "尺寸/数量以后再定", _rule(later)), *base], skus)
        if "包装" in m.group(0) and (d := cues.delivery_cue(masked)):  # 你们寄的时候有防震包装吗: how it travels
            return question("delivery_question", d, "问寄送时怎么包装")
        if _VEHICLE.search(m.group(0)) or (m.group(0) in cue("size_words") and _VEHICLE.search(masked)):
            # 一车能装多少袋 / 你们车多大: what a truck takes, or its size, is about delivery
            return question("delivery_question", m, "问一车能装多少")
        return question("price_question", m, "问价格/规格")
    if m := _ARRIVED.search(masked):
        delivered = _DELIVERY_BEFORE.search(masked, 0, m.start())  # 水泥送到了没: goods on their way to me
        if (skus or _NEW_GOODS.search(masked, 0, m.start())) and not cue("past_order").search(masked) and not delivered:
            return question("stock_question", m, "问商品到货没有")
        return question("order_status", m, "问已下订单到了没有")
    delivery = cue("delivery").search(masked) or cues.delivery_cue(masked)
    asked = cues.question_cue(masked) is not None and not cues.permission_only(masked)  # 下班过来拿 可以吗: a request
    if delivery and not asked and cue("chitchat").search(t) and not survey.quantities:
        delivery = None  # 辛苦师傅了 下雨天还送货👍: thanks for a delivery, nothing asked
    if (m := delivery) and (survey.quantities == [] or asked):  # 大米两袋 送货上门啊: an order
        placed = status is not None and not cue("delivery_future").search(masked)  # 你们最远送到哪: where they deliver
        if placed or cue("past_order").search(masked) or cues.about_an_order_placed(masked):
            return question("order_status", m, "问已下订单何时送到")
        return question("delivery_question", m, "问配送时间/方式")
    if m := _CHOICE.search(masked):
        return question("price_question", m, "问是哪一种")
    if (m := cue("past_order").search(masked)) and (
        _ASKING.search(masked, m.end()) or cues.question_cue(masked[m.end() :]) or _LOOK_IT_UP.search(masked)
    ):  # 我中午订的6提纸巾啥时候到 / 刚下的单 帮我看下
        return question("order_status", m, "问已下订单")
    if skus and (m := _STOCK_SHAPE.search(masked)):  # 今天有鸡蛋不
        return question("stock_question", m, "问有没有货")
    if status is not None:
        return question("order_status", status, "问已下订单的进度")
    if (settled := _settled(parser, survey, has_draft)) is not None:
        line, m = settled  # 品茗杯要八个 … 那就十个吧: weighed aloud, then settled — the last value wins (rule 7)
        result = OrderLines([line], "new")
        return _from_result(result, has_draft, [Evidence(m, f"最后定下的数量：{line.qty}{line.unit}"), *base], skus)
    # 4. Hedges: the firm part, if any, is the order.
    if m := cue("hedge").search(masked) or cues.postpone_cue(masked):
        dropped = parser.parse(raw, has_draft=has_draft)
        if has_draft and _drops(dropped, t):  # 都不要了 下次再说: the draft is dropped now
            return _from_result(dropped, has_draft, base, skus, text=t)
        put_off = _PUT_OFF.match(m.group(0)) or masked[max(m.start() - 1, 0) : m.start()] == "不"  # 不打算买了: no hedge, a no
        if put_off and _names_its_item(masked, m) and isinstance(dropped, OrderLines):
            # 法棍暂时不要 牛角包五个: "not for now" said of the item its clause names — negation in a list (rule 6,
            # judgement call 9), the rest is ordered
            return _from_result(dropped, has_draft, [Evidence(m.group(0), "这一样暂时不要，其余照订"), *base], skus)
        # A hedge holds everything after it (可能大米两袋 面粉一袋 / 下个月再订蛋挞6个 牛角包4个 order nothing): only what
        # comes before its clause can be firm — unless the message sets the firm part apart itself (先来2箱 /
        # 其他的过两天再说), when every clause without a hedge is firm
        before = None if _THE_REST.search(t) else _clause_start(masked, m.start())
        firm = _firm_part(parser, raw, t, has_draft, before=before)
        if firm is not None:
            return _from_result(
                firm[0], has_draft, [Evidence(m.group(0), "犹豫的部分不下单"), Evidence(firm[1], "确定要的部分"), *base], skus
            )
        return Understanding("hedge", [], NotAnOrder(), [Evidence(m.group(0), "还没决定（以后再订/先问问/可能）", _rule(m)), *base], skus)
    # 5. Everything else is read by the order parser.
    result = parser.parse(raw, has_draft=has_draft)
    if has_draft and isinstance(result, OrderLines) and len(result.lines) == 1 and (m := _SLIP_OWNED.match(masked)):
        # 刚才说错了 可乐是4箱 (with a draft): the slip owned first, then the line meant — a change of it (rule 7)
        line = result.lines[0]
        evidence = [Evidence(m.group(0).strip(), f"说错了：草稿改成 {line.qty}{line.unit}", _rule(m)), *base]
        return Understanding("change", [], Correction(line.sku, line.qty, line.unit, line.matched), evidence, skus)
    if not has_draft and pending is None and isinstance(result, Clarify | NotAnOrder | OrderLines) and cues.question_cue(masked) is None:
        # 不要6寸了 要8寸的一个: the size names the cake — and 2.5的线别拿4平方的拿3卷 orders no 2.5 (the line the
        # parser paired across the "not" is the very product said not to be wanted)
        if (line := parser.order_by_size_alone(raw)) is not None and not (isinstance(result, OrderLines) and _same_lines(result, line)):
            evidence = [Evidence(line.matched, f"只有 {line.sku} 是这个规格，按 {line.qty}{line.unit} 下单"), *base]
            return Understanding("order", [(line.sku, line.qty)], OrderLines([line], "new"), evidence, skus)
    if isinstance(result, AddSameAsLast) and (line := parser.order_by_size_alone(raw)) is not None:
        # 再来10袋32.5的: no product named, but the size names one — that product, not the last one again
        evidence = [Evidence(line.matched, f"只有 {line.sku} 是这个规格，按 {line.qty}{line.unit}"), *base]
        return Understanding("add" if has_draft else "order", [(line.sku, line.qty)], OrderLines([line], "add"), evidence, skus)
    units = {parser.products[s].unit for s in skus}
    if isinstance(result, NotAnOrder) and len(survey.mentions) == 1 and len(units) == 1 and (m := _MEASURED.search(masked)):
        # 2.5平方线200米 / 电线100米: an amount in a measure the product (every candidate of it) is not sold by —
        # asked, never converted (rule 12)
        unit = units.pop()
        if m.group("unit") != unit:
            ask = Clarify("unit_mismatch", f"这个是按{unit}卖的，请问您说的{m.group(0).strip()}要几{unit}？", list(skus), unit=unit)
            return Understanding("clarify", [], ask, [Evidence(m.group(0).strip(), f"按{unit}卖，不换算", _rule(m)), *base], skus)
    if isinstance(result, NotAnOrder) and survey.mentions and not survey.quantities and (m := _VAGUE_MORE.search(masked)):
        # 河沙多拉点 / 品茗杯看着给一些: goods with an amount left to the shop — asked, never guessed (rule 8)
        ask = Clarify("missing_quantity", "好的，请问具体要多少？", list(skus))
        return Understanding("clarify", [], ask, [Evidence(m.group(0), "数量没说清：先问", _rule(m)), *base], skus)
    if isinstance(result, NotAnOrder) and not survey.mentions and not survey.quantities and (m := cue("repeat_order").search(masked)):
        ask = Clarify("missing_product", "好的，请问这次要哪些商品、各要多少？")
        return Understanding("clarify", [], ask, [Evidence(m.group(0), "照上次下单：先问清商品和数量", _rule(m)), *base], skus)
    if isinstance(result, NotAnOrder):
        if has_draft and _yes().fullmatch(re.sub(r"[\s,.!~、。;:?]", "", t)):
            return Understanding("confirm", [], Confirm(), [Evidence(t[:20], "对待确认订单说“好”"), *base])
        if cue("chitchat").search(t) and (_chitchat_only().fullmatch(t) or not survey.quantities):
            return Understanding("chitchat", [], result, [Evidence(t[:20], "寒暄/客气话"), *base])
        if (guess := _model_guess(masked)) is not None:  # no cue at all: the statistical fallback, never an order
            intent, p = guess
            return Understanding(intent, [], result, [Evidence(t[:20], f"统计模型判断（{p:.0%}），无明确关键词"), *base], skus)
        return Understanding("unknown", [], result, [Evidence("", "没有看懂：既没有商品和数量，也不是已知的问题"), *base], skus)
    asked_about = isinstance(result, OrderLines) or (
        isinstance(result, Clarify) and result.reason in ("ambiguous_product", "missing_quantity") and pending is None
    )  # 生日蛋糕要提前几天订: which cake is beside the point, it is a question
    if asked_about and (m := cues.interrogative_cue(masked) or cues.a_not_a_question(masked)) and not cues.permission_only(masked):
        # 订20个蛋挞要提前几天: a question word no rule placed — asked, never ordered (a question with a number is
        # the question); the model names the topic when it can
        guess = _model_guess(masked)
        if guess is not None and guess[0] == "complaint":
            guess = None  # a question about the goods (新不新鲜) reports nothing wrong
        # 够不够 / 新不新鲜 / 甜不甜 with nothing else placing it: what the product is — a price_question (rule 2)
        intent = guess[0] if guess is not None else ("unknown" if cues.interrogative_cue(masked) else "price_question")
        return Understanding(
            intent, [], NotAnOrder(), [Evidence(m.group(0), "有疑问词，是在问，不下单"), *base], skus, _first_quantity(survey)
        )
    if isinstance(result, OrderLines) and (left := parser.sizes_left_out(raw, result)):
        # 2.5的线跟4平方的 一样一卷: another size named with no amount of its own — asked, never dropped in silence
        names = "、".join(parser.products[s].name for s in left)
        ask = Clarify("unknown_product", f"您还提到了{names}，请问也要吗？要多少？其余的我先不下单，等您确认。", list(left))
        return Understanding("clarify", [], ask, [Evidence("", f"提到了 {'、'.join(left)} 的规格但没有数量"), *base], skus)
    return _from_result(result, has_draft, base, skus, pending, t)


# 刚才说错了 / 不好意思打错了 / 更正一下: a message opening by owning a slip, before any product or amount
_SLIP_OWNED = re.compile(
    r"[^\x00]{0,6}?(?:说错|讲错|写错|打错|搞错|记错|弄错|算错|报错|少报|多报|手滑|更正|纠正)(?:了|啦)?[^\x00]{0,4}?(?=\x00)"
)
# …owned anywhere in the message, or the amount said to need adjusting (大红袍那个数量调一下，两盒 / 腻子粉要25袋才够，之前少报了)
_SLIP_ANY = re.compile(
    r"(?:说错|讲错|写错|打错|搞错|记错|弄错|算错|报错|少报|多报|手滑|(?:少|多)(?:写|说|打|记|算)|(?:写|说|打|记|算)(?:少|多))(?:了|啦)?|(?:数量|数目|个数)?(?:调|改)(?:一下|下)"
    # 刚才说的墙砖150片少了，要180: the amount said before judged wrong
    r"|(?<=\x00)(?:少了|多了|不够)(?=[\s,，。]*(?:要|得要|应该是|改成|改为)\s*\x00)"
)
# 不是3卷 是5卷: "not this amount but that one" — on a draft, a change of the line, like 改成 (rule 7)
_NOT_BUT = re.compile(r"不是\s*(?:\d|[一二两三四五六七八九十])\S{0,4}?[\s,，、]*(?:是|要)\s*(?:\d|[一二两三四五六七八九十])")
# A greeting or an address opening the message, set off by a sign or a space (老板，/ 你好 / 在吗？), and thanks or
# 麻烦了 closing it: courtesy around what the message says. 老板好 (no separator) is left whole: it is the greeting.
_COURTESY_HEAD = re.compile(
    r"^(?:(?:你好|您好|老板娘|老板|师傅|亲|美女|帅哥|在吗|在不在|哈喽|hello|hi|喂+|那个什么|那啥)(?:在吗|在不在|在么)?[\s,，.。!！~～、:：?？]+)+",
    re.IGNORECASE,
)
_COURTESY_TAIL = re.compile(
    r"(?:[\s,，.。!！~～、]+(?:谢谢(?:老板娘?|啦|了|你|您)?|多谢|麻烦(?:你|您)?了|辛苦(?:你|您)?(?:了|啦)?|拜托(?:了|啦)?)[\s,，.。!！~～]*)+$"
)


def _without_courtesy(raw: str) -> str:
    """The message without a greeting opening it and thanks closing it; '' when that is all it says."""
    return _COURTESY_TAIL.sub("", _COURTESY_HEAD.sub("", raw.strip())).strip()


_ORDER_NO = re.compile(r"订单号|单号|(?<![a-z0-9])so\s*-?\s*\d{6,}(?!\d)")  # 订单SO123456的: no \b after a 汉字


MODEL_MIN_P: Final = 0.8  # below this the fallback keeps "unknown"
MODEL_MIN_P_STATEMENT: Final = 0.95  # a complaint with no question in it: naive Bayes is over-confident


def _model_guess(masked: str) -> tuple[str, float] | None:
    """The intent model's reading of a message the rules found no cue in, gated by the message's form: a
    question's topic only when it has the form of a question (今天天气不错 is no delivery question, however
    sure the model is), a complaint only when very sure; never a hedge or small talk (those have their words: the
    model reads 随便问问 as a hedge, which asks for the help text)."""
    model = load_model()
    if model is None:
        return None
    intent, p = model.best(masked)
    if intent in QUESTION_INTENTS and intent != "complaint":
        ok = p >= MODEL_MIN_P and cues.question_cue(masked) is not None
    else:
        # …never for an A-not-A question about the goods (日期新不新): that asks what they are
        ok = intent == "complaint" and p >= MODEL_MIN_P_STATEMENT and cues.a_not_a_question(masked) is None
    return (intent, p) if ok else None


_HOW_MANY = re.compile(r"几|多少")
_NOUN_AFTER = re.compile(r"(?![吧呢啊呀吗么了的哈嘛左上就够行好都也差])[\u4e00-\u9fff]")  # a noun, no particle


def _contents_asked(survey: Survey) -> re.Match[str] | None:
    """茶具套装几个杯子: a product, right after it 几 + a unit, then a noun that is no product — what the product
    holds, not a vague amount of it (要几个蛋挞 names the product after the amount)."""
    for q in survey.quantities:
        if q.value is not None or not _HOW_MANY.match(q.text):
            continue
        after_product = any(m.end == q.start or survey.text[m.end : q.start] in ("是", "有", "里有", "里面有") for m in survey.mentions)
        noun = _NOUN_AFTER.match(survey.masked, q.end)
        # 一袋小餐包几个: one pack of the product, then how many — what it holds
        one_pack = any(
            p.value == 1 and p.unit is not None and p.unit != q.unit and p.end <= m.start and m.end == q.start
            for p in survey.quantities
            for m in survey.mentions
        ) and not survey.masked[q.end :].strip(" ?？啊呀呢")
        if (after_product and noun is not None) or one_pack:
            return re.compile(re.escape(q.text.strip())).search(survey.text, q.start)
    return None


def _pack_asked(survey: Survey) -> re.Match[str] | None:
    """泡面一箱是24包吧 / 康师傅那个一箱里头是24包不: an amount in one unit said to hold an amount in another, asked —
    what the pack holds, no order."""
    for a, b in zip(survey.quantities, survey.quantities[1:], strict=False):
        if a.unit is None or b.unit is None or a.unit == b.unit:
            continue
        between = survey.text[a.end : b.start]
        if _HOLDS.fullmatch(between) and (m := _CHECKED.match(survey.text, b.end)):
            return m
    for _, end, why in survey.not_quantities:  # 一箱是24包 read as the pack's size
        if why != "price" and (m := _CHECKED.match(survey.text, end)):
            return m
    return None


_HOLDS = re.compile(r"\s*(?:里面|里头|里边)?\s*(?:是|有|装|就是|装的是|应该是)\s*")
_CHECKED = re.compile(r"\s*(?:吧|吗|么|嘛|不|没|对吧|是吧|对不对|是不是)[\s?？~!！。]*$")


# A slip owned at the very end, then only the amount meant (…麻烦啦，不对，22个 / …哈哈 说错了 22箱 / …，应该是5箱)
_TRAILING_FIX = re.compile(
    r"[\s,，。.!！~～]*(?:不对|错了|说错了?|写错了?|打错了?|讲错了?|改成|改为|应该是|哦不|噢不|更正(?:一下)?)[\s,，。:：]*"
    r"(?P<q>(?:\d+|[一二两三四五六七八九十廿卅俩仨百]+)\s*[\u4e00-\u9fff]?)[\s吧啊呀哈。.!！~～]*$"
)


def _with_trailing_fix(parser: OrderParser, raw: str) -> tuple[str, str] | None:
    """The message with its one amount replaced by the one a trailing slip names, and the slip; None unless the
    message before the slip names exactly one product and one amount (else the parser's own correction reads it)."""
    fix = _TRAILING_FIX.search(raw)
    if fix is None or fix.start() == 0:
        return None
    head = parser.survey(raw[: fix.start()])
    if len({m.skus for m in head.mentions}) != 1 or len(head.quantities) != 1:
        return None
    new = parser.survey(fix.group("q")).quantities
    if len(new) != 1 or new[0].value is None or (new[0].unit is not None and head.quantities[0].unit not in (None, new[0].unit)):
        return None
    q = head.quantities[0]
    return head.text[: q.start] + fix.group("q").strip() + head.text[q.end :], fix.group(0).strip()


def _has_content(t: str) -> bool:
    return bool(re.search(r"[0-9a-z\u3400-\u9fff]", t))


def _empty_message(raw: str, base: list[Evidence]) -> Understanding:
    """Nothing readable after normalising: stickers are small talk; emoji alone, ？？？ and the like are unknown."""
    # [图片] / [动画表情]: what WeChat shows for a message that is no text — not a sticker with a meaning
    stickers = [s for s in _STICKER.findall(raw) if not any(w in s for w in cue("media_placeholder").words)]
    if stickers:
        return Understanding("chitchat", [], NotAnOrder(), [Evidence(f"[{stickers[0]}]", "表情，寒暄")])
    if _EMOJI.search(raw):
        return Understanding("unknown", [], NotAnOrder(), [Evidence("", "只有表情符号，无法判断意思")])
    return Understanding("unknown", [], NotAnOrder(), [Evidence("", "没有可读的文字")])


def _answer_to_pending(parser: OrderParser, raw: str, t: str, pending: str, has_draft: bool, base: list[Evidence]) -> Understanding | None:
    """对 / 是的 after a yes/no question is a yes; after 要几箱？ / 要哪一种？ it answers nothing (→ clarify);
    不是 / 不对 after 您说的3瓶是指3箱吗？ asks again; 8寸的 一个 after 要哪一种？ names the product by its size."""
    bare = re.sub(r"[\s,.!~、。;:?]", "", t)
    if _NO.match(t) and pending in YES_NO_PENDING and not (has_draft and _NOT_BUT.search(t)):
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
    if yes_text and not _yes().fullmatch(yes_text) and pending in YES_NO_PENDING:
        yes_text = _YES_AMOUNT.sub("", bare)  # 是3箱没错 / 对的，要罐装的
    if yes_text and (_yes().fullmatch(yes_text) or (pending in YES_NO_PENDING and _yes_head(t))):
        if pending in YES_NO_PENDING:
            return Understanding("confirm", [], Confirm(), [Evidence(t[:10], f"对刚才的问题（{pending}）回答“是”"), *base])
        return Understanding(
            "clarify",
            [],
            Clarify("missing_quantity", "请问具体要哪一种、要多少？"),
            [Evidence(t[:10], "“好的”没有回答刚才的问题"), *base],
            reask=True,
        )
    if pending in ("product", "quantity"):
        if m := cue("any_will_do").search(t):  # 都行 / 你推荐一个 / 你们看着弄就行: the shop never picks for them
            return Understanding(
                "clarify", [], Clarify("ambiguous_product", "请您选一种"), [Evidence(m.group(0), "没有选定哪一种"), *base], reask=True
            )
        survey = parser.survey(raw)
        named = parser.skus_named_by_spec(raw) or parser.skus_named_by_spec(_THAT_ONE.sub("的", raw))  # 大瓶那个，两箱
        if not survey.mentions and len(named) == 1 and len(survey.quantities) == 1:  # 8寸的 一个
            q = survey.quantities[0]
            if q.value is not None and q.value.denominator == 1 and q.value > 0:
                sku, qty = named[0], int(q.value)
                line = Line(sku, qty, parser.products[sku].unit, t)
                return Understanding("order", [(sku, qty)], OrderLines([line], "new"), [Evidence(t[:20], f"按规格选定 {sku}"), *base])
    return None


def _draft_fix(parser: OrderParser, t: str, wrong: re.Match[str], base: list[Evidence], skus: Sequence[str]) -> Understanding | None:
    """可乐数量不对 要6箱 with a draft: one product and the amount meant, after the words saying it is wrong."""
    # 牛奶一箱太少了 我说错了 要两箱: the amount judged too small or large is the one taken back
    named = parser.survey(t[: wrong.start()]).mentions
    after = parser.survey(t[wrong.end() :])
    if len(named) == 1 and after.quantities and not after.mentions:
        # 刚才说的墙砖150片少了，要180 / 牛奶一箱太少了 要两箱: the one product named, with the amount said after
        rest = parser.parse(named[0].text + " " + t[wrong.end() :], has_draft=False)
    else:
        rest = parser.parse(_JUDGED.sub(" ", t[: wrong.start()]) + " " + t[wrong.end() :], has_draft=False)
    if isinstance(rest, Clarify) and rest.reason == "missing_product" and len(named) == 1:
        rest = parser.parse(named[0].text + " " + t[wrong.end() :], has_draft=False)  # 牛奶一箱 … 说错了 要两箱
    if isinstance(rest, Correction) and rest.sku is not None:  # 雪碧写错了 应该是5箱
        change = rest
    elif isinstance(rest, Clarify) and rest.reason == "ambiguous_product" and rest.qty:
        # 水泥数量不对 要50袋: the draft holds one of them — the dialogue settles which
        change = Correction(None, rest.qty, rest.unit, rest.product_text, tuple(rest.candidates))
    elif isinstance(rest, OrderLines) and len(rest.lines) == 1:
        line = rest.lines[0]
        change = Correction(line.sku, line.qty, line.unit, line.matched)
    else:
        return None
    evidence = [Evidence(wrong.group(0), f"草稿的数量说错了，改成 {change.qty}{change.unit or ''}", _rule(wrong)), *base]
    return Understanding("change", [], change, evidence, tuple(skus))


# What makes one part firm beside a hedge: the hedge is about the rest (其他的过两天再说), or the firm part is a
# first instalment (先来2箱).
_THE_REST = re.compile(r"其他|其它|其余|剩下|剩余|余下|别的|另外的|先(?:来|要|拿|订|定|送|买|整|发|拉)")


# Right after a gift or extra named: declined (礼品袋不用 / 赠品就不要了 / 小样不需要)
_DECLINED = re.compile(r"[^\s,!?;。，]{0,3}?(?:就|也)?(?:不用|不要|不需要|用不着|别给|别送|别放)")
_HOW_MUCH_ASKED = re.compile(r"几|多少|吗|么|[?？]|(?:点|些|点儿)不")  # 能打几折 / 能便宜多少 / 能便宜点不: the cue asks
_CONDITION = re.compile(r"(?:要是|如果|假如|假设|万一|只要|若是)[^\s,!?;。]*$")


def _in_condition(masked: str, m: re.Match[str]) -> bool:
    """``m`` stands in an if-clause (要是便宜的话 / 如果能打折): what would make the customer buy, not a request —
    unless the clause goes on to ask it (要是拿10箱单价能少点不: the if-part is the amount, the question the price)."""
    start = max((k.end() for k in _CLAUSE_START.finditer(masked, 0, m.start())), default=0)
    end = next((k.start() for k in _CLAUSE_START.finditer(masked, m.end())), len(masked))
    if _CONDITION.search(masked, start, m.start()) is None:
        return False
    # …and 要是拿200片能打几折: the cue is itself the question asked
    asked = cues.question_cue(masked[m.start() : end]) is not None or _HOW_MUCH_ASKED.search(masked, m.start(), end) is not None
    return "的话" in masked[m.end() : end] or not asked


_CLAUSE_START = re.compile(r"[\s,!?;:、。~]")


_JUDGED = re.compile(r"(?:有点|有些)?太(?:少|多)了?|不够")


def _same_lines(result: OrderLines, line: Line) -> bool:
    return [(ln.sku, ln.qty) for ln in result.lines] == [(line.sku, line.qty)]


_NOT_SIZE_BUT = re.compile(r"不是\s*(\S{1,8}?)[\s,，]*(?:是|要|而是|换成|改成)\s*(\S{1,8})")
# Deferrals about the whole decision, never about one item of a list (…我让师傅算好了再联系你 / 我对比下价格)
_GENERAL_DEFER = re.compile(r"再联系你|再找你|再(?:同|跟|和)你|先不确认|对比|回话")
_ADD_FIRST = re.compile(r"(?:再|补|另外|还要|加|多)")
_SHOP_SLIP = re.compile(r"(?:你|你们)?(?:记成|写成|听成|弄成|打成|搞成|记错成|写错成)")


def _shop_slip(parser: OrderParser, survey: Survey, slip: re.Match[str], base: list[Evidence], skus: Sequence[str]) -> Understanding | None:
    named = {m.skus for m in survey.mentions}
    said = [q for q in survey.quantities if not (slip.end() <= q.start <= slip.end() + 1)]
    if len(named) != 1 or len(said) != 1 or len(survey.quantities) != 2:
        return None
    meant = parser.parse(f"{survey.mentions[0].text}{said[0].text}")
    if not isinstance(meant, OrderLines) or len(meant.lines) != 1:
        return None
    line = meant.lines[0]
    change = Correction(line.sku, line.qty, line.unit, line.matched)
    return Understanding("change", [], change, [Evidence(slip.group(0), f"店里记错了：改成 {line.qty}{line.unit}"), *base], tuple(skus))


_SWAP_CUE = re.compile(r"改成|换成|改为|换为|改到|换到|应该是|而是|换")
_NOT_THIS_BUT = re.compile(r"\s*的?\s*(?:是|要|而是|换成|改成|换为|改为)\s*")


def _draft_swap(parser: OrderParser, raw: str, survey: Survey) -> tuple[Correction, str] | None:
    """With a draft: 蛋糕要改成10寸的 (a kind named after 改成 / 换成, of the product named before it) or 不是茉莉花茶是白茶
    / 可乐换成雪碧 (another product in its place): the swap, with the amount said (else 0: the same)."""
    text, mentions, qs = survey.text, survey.mentions, survey.quantities
    if len(mentions) == 3 and set(mentions[1].skus) | set(mentions[2].skus) <= set(parser.skus_of_name(mentions[0].text)):
        mentions = mentions[1:]  # 啤酒改一下 青岛的换成雪花的: the kind named first, then the two of it
    if len(mentions) == 2:
        a, b = mentions
        between = text[a.end : b.start]
        negated_first = text[: a.start].rstrip().endswith("不是")
        if len(b.skus) != 1 or _NOT_THIS_BUT.fullmatch(between) is None:
            return None
        if not negated_first and not _SWAP_CUE.search(between):
            return None
        after = [q for q in qs if q.start >= b.end]
        if any(q.start < b.end for q in qs) or len(after) > 1:
            return None
        qty = _whole(after[0]) if after else 0
        if qty is None or b.skus[0] in a.skus:
            return None
        return Correction(b.skus[0], qty, parser.products[b.skus[0]].unit, b.text, replaces=a.skus), text[a.start : b.end]
    if not mentions and not qs and (kinds := _NOT_SIZE_BUT.search(text)):  # 不是六寸 是八寸: sizes alone, of the draft's item
        old, new = parser.skus_named_by_spec(kinds.group(1)), parser.skus_named_by_spec(kinds.group(2))
        if len(new) == 1 and old and new[0] not in old:
            return Correction(new[0], 0, parser.products[new[0]].unit, kinds.group(2), replaces=tuple(old)), kinds.group(0)
        return None
    cue_at = _SWAP_CUE.search(text)
    if len(mentions) != 1 or cue_at is None or mentions[0].end > cue_at.start():
        return None
    kinds = parser.skus_of_name(mentions[0].text)
    named = parser.skus_named_by_spec(
        re.split(r"[\s,，。;；]|不要|不是|别要|别拿", text[cue_at.end() :].strip())[0]
    )  # …换成4平方的 2.5的不要了
    if len(kinds) < 2 or len(named) != 1 or named[0] not in kinds or len(qs) > 1 or any(q.start < cue_at.end() for q in qs):
        return None
    qty = _whole(qs[0]) if qs else 0
    if qty is None:
        return None
    sku = named[0]
    others = tuple(s for s in kinds if s != sku)
    return Correction(sku, qty, parser.products[sku].unit, mentions[0].text, replaces=others), text[cue_at.start() :]


def _whole(q: QuantityMatch) -> int | None:
    return int(q.value) if q.value is not None and q.value.denominator == 1 and q.value > 0 else None


_SETTLE_AT = re.compile(r"(?:那就|就|还是|干脆|最后|得)(?:要|拿|来|订|定|按|整)?\s*$")
_SETTLE_AFTER = re.compile(r"\s*(?:就(?:行|够|可以|好)了?|够了|差不多了?)")  # 小餐包8袋……6袋就行了


def _settled(parser: OrderParser, survey: Survey, has_draft: bool) -> tuple[Line, str] | None:
    """One product, several amounts of it weighed in one message, the last said with 那就 / 就 / 还是 (石膏板三十张
    等下我再算算 … 三十五张才够 就三十五张): that last amount, as the order."""
    qs = survey.quantities
    if len(qs) < 2 or not survey.mentions or len({m.skus for m in survey.mentions}) != 1 or has_draft:
        return None
    last = qs[-1]
    settled_before = _SETTLE_AT.search(survey.text, 0, last.start) is not None
    if not (settled_before or _SETTLE_AFTER.match(survey.text, last.end)):
        return None
    if len({q.unit for q in qs} - {None}) > 1 or survey.mentions[-1].start > last.start:
        return None
    mention = survey.mentions[0]
    meant = parser.parse(f"{mention.text}{last.text}")
    if isinstance(meant, Clarify) and meant.reason == "ambiguous_product" and meant.qty and len(mention.skus) == 1:
        sku = mention.skus[0]  # 42.5的水泥先说20袋 … 得要25袋: the kind was settled where the product was named
        if sku in meant.candidates and meant.unit == parser.products[sku].unit:
            meant = OrderLines([Line(sku, meant.qty, meant.unit or "", mention.text)], "new")
    if not isinstance(meant, OrderLines) or len(meant.lines) != 1:
        return None
    other = parser.skus_named_by_spec(survey.text[survey.mentions[0].end : last.start])
    if other and meant.lines[0].sku not in other:
        return None  # 20袋复合水泥 哦不是 要海螺的 还是20袋: another kind named on the way — the parser reads the switch
    return meant.lines[0], last.text


# Thanks for something done before (谢谢你啊小伙子 上回帮我扛米上楼): small talk, whatever it names
_THANKS_FOR_PAST = re.compile(
    r"^(?:谢谢|多谢|感谢|谢啦|谢了)\S{0,6}[\s,，!！~]*.{0,4}?(?:上回|上次|昨天|前天|那天|之前|每次)(?:都|也|还)?(?:帮|给|替|送)"
)
_TOO_DEAR = re.compile(r"贵")
_THINK_IT_OVER = frozenset({"考虑", "想想", "再看看", "还在考虑", "犹豫", "比较一下", "货比三家", "商量", "商量下"})
_ASKING_WHAT = re.compile(r"啥情况|什么情况")
_VAGUE_MORE = re.compile(
    r"越多越好|一大堆|多(?:做|烤|拉|拿|来|给|带|送|备|弄|整|订|准备|搬|称|买)(?:一)?(?:点|些)|看着给|(?:给|来|拿|带)(?:我)?(?:一)?些(?![\u4e00-\u9fff])"
)
_STRONG_STATUS = re.compile(r"师傅|搞掂|好未|签收|出去了|(?:订|做)好了")  # 送蛋糕的师傅还有多久能到: an order on its way
_WAITED = re.compile(r"等(?:了)?(?:好久|很久|老半天|半天|一上午|一下午|一天)|(?:都|还|一直)在等|都等着(?:呢|了)")
_PUT_OFF = re.compile(r"(?:暂时|先|暂|这次|这回)(?:就)?不")  # 暂时不要 / 先不买: not this item, for now


def _drops(result: ParseResult, t: str) -> bool:
    """With a draft, the parse takes something out of it: an item or the order — or an ambiguous item whose kind is
    asked before it is taken out (月饼先不订了: the draft may hold both 月饼)."""
    if isinstance(result, RemoveItem | Cancel):
        return True
    return isinstance(result, Clarify) and result.reason == "ambiguous_product" and not result.qty and cue("remove").search(t) is not None


def _names_its_item(masked: str, m: re.Match[str]) -> bool:
    """The clause of ``m`` names a product before it (油先不买): the words are about that item, not the message."""
    start = max((k.end() for k in _CLAUSE_START.finditer(masked, 0, m.start())), default=0)
    return "\x00" in masked[start : m.start()]


_WARNED = re.compile(r"(?:别|不要|千万别|可别|小心|注意|防止|以免|免得|不能|不会|怕|担心)\S{0,2}$")


_BETWEEN_ITEM = re.compile(r"[\s的]*(?:先|再|也|就)?(?:要|来|拿|订|买|整)?[\s的]*")
_ORDERING = re.compile(r"要|来|拿|订|买|整|送|给我|帮我|弄|带|捎|留|备")
_CLAUSE_RUN = re.compile(r"[^\s,，。;；!！~、]+")
_REPROACH = re.compile(r"你们|你家|你这|送货的|快递|师傅|司机|上次|上回|之前|昨天|前天|收到|送来|送到|拿回|到手|打开|拆开")


def _without_asides(masked: str, survey: Survey) -> str:
    """``masked`` with the clauses after the first item that name no product and no amount and ask nothing blanked
    (鸡蛋要十个就行 多了放坏了可惜 / 盖碗多拿几个 打碎了也有替换): a reason or an aside about the customer's own use,
    no report of goods received — unless it points at the shop, the delivery or an earlier order (_REPROACH)."""
    first = masked.find("\x00")
    if first < 0:
        return masked
    span = next(c for c in _CLAUSE_RUN.finditer(masked) if c.start() <= first < c.end())
    opening = span.group(0)
    if _REPROACH.search(opening) or cue("past_order").search(opening) or _complaint_word(opening) or cues.complaint_cue(opening):
        return masked  # 订的冰皮月饼到了 盒子都压扁了: the goods received, then what is wrong with them
    # an item asked for: a product and an amount in that clause, side by side or with an ordering verb
    item = any(
        span.start() <= m.start
        and span.start() <= q.start
        and q.end <= span.end()
        and m.end <= span.end()
        and (
            _BETWEEN_ITEM.fullmatch(survey.text[m.end : q.start] if m.end <= q.start else survey.text[q.end : m.start]) is not None
            or _ORDERING.search(opening) is not None
        )
        for m in survey.mentions
        for q in survey.quantities
    )
    if not item:
        return masked  # 生日蛋糕晚了一个钟 …: no item asked for — nothing to set apart
    out = masked
    for c in _CLAUSE_RUN.finditer(masked):
        text = c.group(0)
        if c.start() <= first or "\x00" in text or cues.question_cue(text) or _REPROACH.search(text) or cue("past_order").search(text):
            continue
        out = out[: c.start()] + " " * len(text) + out[c.end() :]
    return out


def _complaint_word(masked: str) -> re.Match[str] | None:
    """A complaint word that reports what happened — not one warned against (可乐3箱 别送错了 / 小心别压坏)."""
    for m in cue("complaint").pattern.finditer(masked):
        if not _WARNED.search(masked, 0, m.start()):
            return m
    return None


def _clause_start(masked: str, at: int) -> int:
    return max((k.end() for k in _SEPARATORS.finditer(masked, 0, at)), default=0)


def _firm_part(
    parser: OrderParser, raw: str, t: str, has_draft: bool, *, scoped: bool = False, before: int | None = None
) -> tuple[ParseResult, str] | None:
    """先来2箱，其他的过两天再说: the clauses without a hedge word, if they order something on their own. ``scoped``:
    the hedge holds the whole message (a check or a consultation first) unless it says it is about the rest.
    ``before``: only clauses ending before this point can be firm (a hedge word holding all that follows it)."""
    if scoped and not _THE_REST.search(t):
        return None  # 想要5箱 不过得先问下老板: asking someone first holds the whole message — nothing is firm
    clauses = [c for c in _SEPARATORS.split(t) if c]
    candidates = clauses if before is None else [c for c in _SEPARATORS.split(t[:before]) if c]
    # each clause read with its products and amounts masked, as everywhere: 再拿一箱可乐 adds, it puts nothing off
    firm = [c for c in candidates if not cue("hedge").search(m := parser.survey(c).masked) and not cues.postpone_cue(m)]
    if not firm or len(firm) == len(clauses):
        return None
    text = "，".join(firm)
    result = parser.parse(text, has_draft=has_draft)
    if isinstance(result, Clarify) and result.reason in ("ambiguous_product", "unit_mismatch") and result.qty:
        return result, text  # 先来2箱啤酒 其他的再说: the firm part is ordered once it is clear which beer
    return (result, text) if isinstance(result, OrderLines) else None


def _from_result(
    result: ParseResult, has_draft: bool, evidence: list[Evidence], skus: Sequence[str], pending: str | None = None, text: str = ""
) -> Understanding:
    if isinstance(result, OrderLines) and has_draft and result.mode == "add" and result.excluded:
        # 雪碧不要了 可乐加一箱 (with a draft): a removal and an addition in one message — adding alone would drop the
        # removal silently (the draft may hold that item), so it is asked back. (An order without an add cue sets the
        # draft's lines — 大米3袋，油先不要 — and leaves the 油 out by itself.)
        ask = Clarify("unclear_correction", "这一句里既有要去掉的，也有要加的，麻烦分开说一下：先说去掉哪样，再说加什么，谢谢！")
        return Understanding("clarify", [], ask, [Evidence("", "同一句里既去掉又加：先问清楚"), *evidence], tuple(skus))
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
    changes = cue("change").search(text) or _NOT_BUT.search(text)
    if isinstance(result, Clarify) and has_draft and result.reason == "ambiguous_product" and changes:
        change = Correction(None, result.qty or 0, result.unit, result.product_text, tuple(result.candidates))
        if result.qty:  # 月饼改到10盒: the draft holds one of them — the dialogue settles which
            return Understanding("change", [], change, [Evidence(result.product_text, "改草稿里这种商品的数量"), *evidence], tuple(skus))
    if isinstance(result, Clarify) and has_draft and result.reason == "ambiguous_product" and cue("remove").search(text):
        # 沙子不要了 with a draft: a removal; which 沙子 is asked (the draft may hold both)
        return Understanding(
            "remove", [], result, [Evidence(result.product_text, "去掉草稿里的这种商品，先问是哪一种"), *evidence], tuple(skus)
        )
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
